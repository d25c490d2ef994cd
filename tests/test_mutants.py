"""Every mutant is caught wherever it applies, and the correct system stays clean under its plan.

Also the ``selfcheck`` command over every (mutant, scenario) pair, mutants refused where they do not
apply, and the issue's acceptance checks (at reduced size): the correct system survives a hostile
fault plan that the tutorials' orchestrator does not, on a saga with a pivot too.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import attrs
import pytest

from sagafsm.checks import PROPERTIES
from sagafsm.cli import main
from sagafsm.history import TraceRecord, as_record
from sagafsm.sim import Scenario, load_scenario, simulate
from sagafsm.sim.config import SimulationConfig, merge
from sagafsm.sim.mutants import MUTANTS, Mutant
from sagafsm.sim.scenario import builtin_scenarios
from sagafsm.sim.selfcheck import NO_FAULTS, check_mutant
from sagafsm.sim.trace import Record

BUILTIN = builtin_scenarios()
PAIRS = [(m, s) for m in MUTANTS for s in BUILTIN]


def exposing_config(mutant: Mutant, name: str | None = None) -> tuple[Scenario, SimulationConfig]:
    """A scenario (the mutant's own by default) and the mutant's exposing plan there, over a
    fault-free base, as selfcheck runs it."""
    scenario = load_scenario(name or mutant.scenario)
    return scenario, scenario.config(merge(NO_FAULTS, mutant.plan_for(scenario.name)))


def traced(
    scenario: Scenario, config: SimulationConfig, mutant: Mutant | None
) -> list[TraceRecord]:
    """Every record of a run, typed."""
    records: list[Record] = []
    simulate(scenario, config, mutant=mutant, observe=records.append)
    return [as_record(r) for r in records]


@pytest.mark.parametrize("mutant", list(MUTANTS.values()), ids=list(MUTANTS))
def test_the_mutant_is_caught_on_its_own_scenario_with_a_readable_history(mutant: Mutant) -> None:
    """Under its exposing plan, the mutant's run breaks one of ``mutant.catches``, with history."""
    scenario, config = exposing_config(mutant)
    result = simulate(scenario, config, mutant=mutant)
    assert mutant.expected_set & result.violation_counts.keys(), result.violation_counts
    caught = [v for v in result.violations if v.property in mutant.expected_set]
    assert caught and caught[0].history


def test_every_mutant_claims_known_properties() -> None:
    """A mutant's ``catches`` names properties the checkers know, the new ones included."""
    for mutant in MUTANTS.values():
        assert mutant.catches and set(mutant.catches) <= set(PROPERTIES), mutant.name
    assert {"compensation-input", "read-only-untouched"} <= set(PROPERTIES)


def test_mutant_refusals_follow_what_each_saga_has() -> None:
    """A mutant applies exactly where its saga has what it needs, and says so in one line."""
    definitions = {name: load_scenario(name).definition for name in BUILTIN}
    order, travel = definitions["order_fulfillment"], definitions["travel_booking"]
    assert MUTANTS["compensate-after-pivot"].refusal(travel) is None
    assert "pivot" in (MUTANTS["compensate-after-pivot"].refusal(order) or "")
    assert MUTANTS["compensate-read-only"].refusal(order) is None
    assert "read-only" in (MUTANTS["compensate-read-only"].refusal(travel) or "")
    one_step = attrs.evolve(order, steps=order.steps[:2])  # verify, reserve: one compensatable
    assert "2 compensatable steps" in (MUTANTS["wrong-compensation-result"].refusal(one_step) or "")
    assert MUTANTS["no-tombstone"].refusal(one_step) is None
    for mutant in MUTANTS.values():
        for definition in definitions.values():
            reason = mutant.refusal(definition)
            assert reason is None or "\n" not in reason


@pytest.mark.parametrize(("mutant", "scenario"), PAIRS)
def test_every_mutant_runs_or_is_refused_on_every_builtin_scenario(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], mutant: str, scenario: str
) -> None:
    """``simulate --mutant`` either runs (exit 0 or 1, never 3) or exits 2 with one line, before
    any work: no trace file is written."""
    trace = tmp_path / "t.jsonl"
    argv = ["simulate", scenario, "--sagas", "40", "--mutant", mutant, "--trace", str(trace)]
    status = main([*argv, "--json"])
    captured = capsys.readouterr()
    reason = MUTANTS[mutant].refusal(load_scenario(scenario).definition)
    if reason is None:
        assert status in (0, 1), captured.err
        assert json.loads(captured.out)["mutant"] == mutant and trace.exists()
    else:
        assert status == 2 and captured.out == "" and not trace.exists()
        assert captured.err.splitlines() == [
            f"sagafsm simulate: error: mutant {mutant!r} does not apply to scenario "
            f"{scenario!r}: {reason}"
        ]


def test_simulate_refuses_a_mutant_that_does_not_apply() -> None:
    """The library refuses it too (InvalidConfig), before the run starts."""
    from sagafsm import InvalidConfig

    scenario = load_scenario("travel_booking")
    with pytest.raises(InvalidConfig, match="needs a read-only step"):
        simulate(scenario, scenario.config(sagas=5), mutant=MUTANTS["compensate-read-only"])


@pytest.mark.slow
def test_selfcheck_json_covers_every_mutant_on_every_scenario(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``sagafsm selfcheck --json``: one row per (mutant, scenario), in catalogue order; where a
    mutant applies it is caught and the correct system is clean; elsewhere the row says why not."""
    assert main(["selfcheck", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is True
    assert [(row["mutant"], row["scenario"]) for row in report["mutants"]] == PAIRS
    refused = set()
    for row in report["mutants"]:
        if not row["applicable"]:
            refused.add((row["mutant"], row["scenario"]))
            assert row["not_applicable"] and row["caught"] is None and row["caught_by"] == {}
            continue
        assert row["caught"] and row["correct_clean"], row
        assert row["correct_violations"] == {} and row["example"]
        assert any(row["expected_counts"].values()) and row["unknown_expected"] == []
    assert refused == {
        ("compensate-after-pivot", "order_fulfillment"),
        ("compensate-read-only", "travel_booking"),
        ("tutorial-choreography", "travel_booking"),  # the notes' order saga needs its services
    }


def test_selfcheck_of_one_mutant_on_one_scenario(capsys: pytest.CaptureFixture[str]) -> None:
    """``--mutant NAME --scenario NAME`` checks only that pair."""
    argv = ["selfcheck", "--json", "--mutant", "forward-order-compensation"]
    assert main([*argv, "--scenario", "travel_booking"]) == 0
    report = json.loads(capsys.readouterr().out)
    (row,) = report["mutants"]
    assert (row["mutant"], row["scenario"]) == ("forward-order-compensation", "travel_booking")
    assert row["caught_by"].keys() >= {"reverse-order"}


def test_selfcheck_reports_a_mutant_it_does_not_catch(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A "mutant" that breaks nothing, or claims a property no checker defines, is reported as not
    caught (exit 1), with what was expected: selfcheck can fail."""
    harmless = Mutant(
        name="harmless",
        description="the correct system",
        exposing={"sagas": 50},
        catches=("reverse-order", "no-such-property"),
    )
    monkeypatch.setitem(MUTANTS, "harmless", harmless)
    argv = ["selfcheck", "--mutant", "harmless", "--scenario", "order_fulfillment"]
    assert main([*argv, "--json"]) == 1
    (row,) = json.loads(capsys.readouterr().out)["mutants"]
    assert row["caught"] is False and row["correct_clean"] is True
    assert row["expected_counts"] == {"reverse-order": 0, "no-such-property": 0}
    assert row["unknown_expected"] == ["no-such-property"]
    assert main(argv) == 1
    out = capsys.readouterr().out
    assert "harmless" in out and " NO " in out and "no property 'no-such-property'" in out
    assert "FAILED" in out


def test_selfcheck_row_of_a_mutant_that_does_not_apply_runs_nothing() -> None:
    """check_mutant on a scenario the mutant cannot break: a not-applicable row, ok."""
    row = check_mutant(MUTANTS["compensate-read-only"], load_scenario("travel_booking"))
    assert not row.applicable and row.caught is None and row.ok
    assert "read-only" in (row.not_applicable or "")


def test_selfcheck_of_an_unknown_mutant_is_a_one_line_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``--mutant no-such`` exits 2 with one line on stderr naming the known mutants."""
    assert main(["selfcheck", "--mutant", "no-such"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("sagafsm selfcheck: error: unknown mutant 'no-such'")
    assert "tutorial-orchestrator" in lines[0]
    assert "Traceback" not in captured.err


# -- the new mutants, and what catches them ----------------------------------------------------


def refused(records: list[TraceRecord]) -> Counter[str]:
    """Step -> compensations its participant refused."""
    return Counter(
        r.step for r in records if r.kind == "effect" and r.effect == "compensation_refused"
    )


@pytest.mark.parametrize("name", ["order_fulfillment", "travel_booking"])
def test_a_compensation_handed_another_steps_result_is_refused(name: str) -> None:
    """wrong-compensation-result: participants refuse those compensations (their ledgers say so)
    and compensation-input fires; the correct system under the same plan hands every compensation
    its own result: nothing refused."""
    mutant = MUTANTS["wrong-compensation-result"]
    scenario, config = exposing_config(mutant, name)
    records = traced(scenario, config, mutant)
    assert refused(records)
    result = simulate(scenario, config, mutant=mutant)
    assert result.violation_counts["compensation-input"] > 0
    assert not refused(traced(scenario, config, None))


def test_compensating_a_read_only_step_is_caught() -> None:
    """compensate-read-only sends compensations to verify_customer; the correct system never
    does, though the same sagas fail after it."""
    mutant = MUTANTS["compensate-read-only"]
    scenario, config = exposing_config(mutant)

    def sent(records: list[TraceRecord]) -> Counter[str]:
        return Counter(r.op for r in records if r.kind == "send" and r.step == "verify_customer")

    assert sent(traced(scenario, config, mutant))["undo_verify_customer"] > 0
    correct = traced(scenario, config, None)
    assert sent(correct)["verify_customer"] > 0 and sent(correct)["undo_verify_customer"] == 0
    assert any(r.kind == "finish" and r.state == "failed" for r in correct)
    result = simulate(scenario, config, mutant=mutant)
    assert result.violation_counts["read-only-untouched"] > 0


# -- the acceptance checks -------------------------------------------------------------


def test_the_tutorial_orchestrator_on_a_saga_with_a_pivot_is_caught_without_a_traceback(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The issue's command: exit 1 with violations, nothing on stderr. The tutorial compensates
    only steps that have a compensation: never the pivot or the retriable step."""
    argv = ["simulate", "travel_booking", "--sagas", "300", "--mutant", "tutorial-orchestrator"]
    assert main([*argv, "--step-failure-rate", "0.2", "--json"]) == 1
    captured = capsys.readouterr()
    assert captured.err == ""
    report = json.loads(captured.out)
    assert report["violations"] and report["violation_counts"]["pivot-rule"] > 0
    scenario = load_scenario("travel_booking")
    config = scenario.config(sagas=300, participant__failure_rate=0.2)
    records = traced(scenario, config, MUTANTS["tutorial-orchestrator"])
    compensated = {r.step for r in records if r.kind == "send" and r.type == "compensate"}
    assert compensated and compensated <= {"book_flight", "book_hotel", "rent_car"}


ACCEPTANCE = [
    "simulate",
    "order_fulfillment",
    "--sagas",
    "1500",
    "--seed",
    "3",
    "--loss",
    "0.05",
    "--duplicate",
    "0.2",
    "--reorder",
    "0.2",
    "--step-failure-rate",
    "0.1",
    "--timeout",
    "0.2",
    "--crash-orchestrator",
    "0.1",
    "--json",
]
"""The issue's acceptance run, at 1500 sagas."""


def test_the_acceptance_run_is_clean(capsys: pytest.CaptureFixture[str]) -> None:
    """The correct system under the hostile plan: exit 0, no violation, every saga ended."""
    assert main(ACCEPTANCE) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["violations"] == [] and report["violation_counts"] == {}
    assert "unfinished" not in report["outcomes"]
    assert sum(report["outcomes"].values()) == 1500
    faults = report["faults"]
    assert faults["loss"] > 0 and faults["duplicate"] > 0 and faults["step_failure"] > 0


@pytest.mark.slow
def test_the_acceptance_run_catches_the_tutorial_orchestrator(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The same plan with the tutorials' orchestrator (crashes included): exit 1, and its
    violations are listed."""
    assert main([*ACCEPTANCE, "--mutant", "tutorial-orchestrator"]) == 1
    captured = capsys.readouterr()
    assert captured.err == ""
    report = json.loads(captured.out)
    assert report["mutant"] == "tutorial-orchestrator"
    assert report["violations"]
    assert set(report["violation_counts"]) & set(MUTANTS["tutorial-orchestrator"].catches)
    first = report["violations"][0]
    assert first["saga_id"] and first["property"] in PROPERTIES and first["history"]
