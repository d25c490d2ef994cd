"""Choreographed sagas under faults: the same network, ledgers and checkers as orchestration, and
the checkers' choreography extensions each shown catching a broken variant."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sagafsm.choreography import order_saga_as_written
from sagafsm.choreography.examples import order_saga_as_written_unchecked
from sagafsm.cli import main
from sagafsm.errors import InvalidDefinition
from sagafsm.sim import load_scenario, simulate
from sagafsm.sim.mutants import MUTANTS
from sagafsm.sim.selfcheck import check_mutant

CHOREOGRAPHY_MUTANTS = [m.name for m in MUTANTS.values() if m.style == "choreography"]


def _run(sagas: int = 300, seed: int = 3, **overrides: object):  # type: ignore[no-untyped-def]
    scenario = load_scenario("order_fulfillment")
    return simulate(
        scenario, scenario.config(sagas=sagas, seed=seed, style="choreography", **overrides)
    )


def test_the_choreographed_order_saga_is_clean_under_every_message_fault() -> None:
    """The Done-when plan (loss, duplicates, reordering, failing steps) leaves no violation, and
    both outcomes and redeliveries really happened."""
    result = _run(
        sagas=600,
        faults__loss=0.05,
        faults__duplicate=0.2,
        faults__reorder=0.2,
        participant__failure_rate=0.1,
    )
    assert result.violations == ()
    assert result.outcomes["completed"] > 0 and result.outcomes["failed"] > 0
    assert result.faults["loss"] > 0 and result.faults["event_redelivered"] > 0
    assert sum(result.outcomes.values()) == 600


def test_a_choreographed_run_is_a_function_of_its_seed() -> None:
    """Same seed, same digest; another seed, another trace."""
    assert _run(sagas=80, seed=5).digest == _run(sagas=80, seed=5).digest
    assert _run(sagas=80, seed=5).digest != _run(sagas=80, seed=6).digest


@settings(max_examples=6)
@given(
    seed=st.integers(0, 10_000),
    loss=st.sampled_from([0.0, 0.1, 0.3]),
    duplicate=st.sampled_from([0.0, 0.3]),
    hang=st.sampled_from([0.0, 0.3]),
)
def test_the_correct_choreography_stays_clean_whatever_the_faults(
    seed: int, loss: float, duplicate: float, hang: float
) -> None:
    """Lost, duplicated events and actions that never answer: deadlines and deduplication keep
    every saga correct."""
    result = _run(
        sagas=60,
        seed=seed,
        faults__loss=loss,
        faults__duplicate=duplicate,
        participant__hang_rate=hang,
    )
    assert result.violations == (), result.violations[0]


@pytest.mark.parametrize("name", CHOREOGRAPHY_MUTANTS)
def test_each_choreography_mutant_is_caught_and_the_correct_system_stays_clean(name: str) -> None:
    """selfcheck's row: the expected property fires on the mutant, nothing on the correct run."""
    row = check_mutant(MUTANTS[name], load_scenario("order_fulfillment"))
    assert row.caught, row.caught_by
    assert row.correct_violations == {}


def test_selfcheck_lists_at_least_four_choreography_mutants() -> None:
    """The notes' table as written and three broken participants."""
    assert {"tutorial-choreography", "no-dedup-events", "no-deadline",
            "emit-before-compensating"} <= set(CHOREOGRAPHY_MUTANTS)  # fmt: skip


def test_the_bypass_is_only_for_mutants_the_builder_still_refuses_the_notes_table() -> None:
    """order_saga_as_written() does not build; the unchecked definition exists, and merges the
    two releases of the inventory into one compensation on both events."""
    with pytest.raises(InvalidDefinition):
        order_saga_as_written().build()
    table = order_saga_as_written_unchecked()
    release = table.compensation_of("reserve_inventory")
    assert release is not None and set(release.on) == {"PaymentFailed", "ShipmentFailed"}


# The checkers' choreography extensions on hand-made histories: test_choreography_checks.py.


# -- the command line -------------------------------------------------------------------------


def test_simulate_style_choreography_prints_the_same_json_keys(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """--style choreography: the keys of an orchestrated run, style recorded in the config."""
    small = ["simulate", "order_fulfillment", "--sagas", "100", "--seed", "2", "--json"]
    assert main(small) == 0
    orchestrated = json.loads(capsys.readouterr().out)
    assert main([*small, "--style", "choreography"]) == 0
    choreographed = json.loads(capsys.readouterr().out)
    assert choreographed.keys() == orchestrated.keys()
    assert choreographed["config"]["style"] == "choreography"
    assert choreographed["metrics"]["messages_per_saga"] > 0


def test_an_orchestrator_mutant_with_style_choreography_is_bad_input(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """One line, exit 2, before the run."""
    args = ["simulate", "order_fulfillment", "--sagas", "10", "--style", "choreography"]
    assert main([*args, "--mutant", "send-before-save"]) == 2
    assert "orchestration style" in capsys.readouterr().err


def test_a_choreography_mutant_run_exits_one(capsys: pytest.CaptureFixture[str]) -> None:
    """The Done-when faults on the notes' table as written: violations, exit 1."""
    args = ["simulate", "order_fulfillment", "--style", "choreography", "--sagas", "200",
            "--step-failure-rate", "0.1", "--mutant", "tutorial-choreography"]  # fmt: skip
    assert main(args) == 1


def test_explore_shrinks_the_no_deadline_mutant_to_one_hung_action() -> None:
    """explore runs a choreography mutant choreographed: one saga, one action that never
    answers, one try; the saved plan says style = choreography."""
    from sagafsm.sim.explore import search

    found = search(load_scenario("order_fulfillment"), MUTANTS["no-deadline"], max_examples=200)
    assert found is not None and found.sagas == 1 and found.faults == 1
    assert found.data["style"] == "choreography"
    assert found.data["faults"]["targeted"][0]["fault"] == "hang"
    assert {v.property for v in found.violations} == {"termination"}


def test_exhaustive_exploration_of_the_correct_choreography_finds_nothing() -> None:
    """Every placement of one fault on one choreographed saga: no violation."""
    from sagafsm.sim.explore import exhaustive

    report = exhaustive(
        load_scenario("order_fulfillment"), sagas=1, pairs=False, style="choreography"
    )
    assert report.single > 100 and report.violating == 0


def test_the_text_report_says_the_run_was_choreographed(capsys: pytest.CaptureFixture[str]) -> None:
    """The header and the orchestrator line say there was no orchestrator."""
    assert main(["simulate", "order_fulfillment", "--sagas", "50", "--style", "choreography"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].endswith(", choreographed")
    assert "orchestrator        none: choreographed" in out


def test_the_occupancy_of_a_choreography_shows_sagas_undoing_their_steps() -> None:
    """A choreographed saga counts as compensating from the first role that starts undoing its
    step (it has no saga lifecycle to say so), and as pending before: with failing steps, both
    bands are there, and sagas in flight add up the same."""
    result = _run(sagas=400, participant__failure_rate=0.2)
    series = result.metrics["occupancy"]["series"]
    assert set(series) >= {"pending", "compensating"}
    assert sum(series["compensating"]) > 0 and sum(series["pending"]) > 0
    assert min(min(values) for values in series.values()) >= -1e-9


def test_emit_records_form_each_saga_s_causal_tree(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Every emitted event is an ``emit`` record with its id and its cause: the start event has
    none, every other cause is an event of the same saga emitted before it (or None, for an
    event a deadline caused), and each success event is caused by the event that started its
    step."""
    path = tmp_path / "trace.jsonl"
    scenario = load_scenario("order_fulfillment")
    config = scenario.config(sagas=200, seed=4, style="choreography", faults__loss=0.05)
    simulate(scenario, config, trace_path=path)
    emitted: dict[str, dict[str, str]] = {}
    starts = 0
    for line in path.read_text().splitlines():
        record = json.loads(line)
        if record["kind"] != "emit":
            continue
        seen = emitted.setdefault(record["saga"], {})
        if record["name"] == "OrderFulfillmentStarted":
            assert record["cause"] is None
            starts += 1
        elif record["cause"] is not None:
            assert record["cause"] in seen, record
        if record["name"] == "ReserveInventorySucceeded":
            assert seen[record["cause"]] == "VerifyCustomerSucceeded"
        seen[record["event"]] = record["name"]
    assert starts == 200


def _crashing(sagas: int, seed: int) -> Any:
    """Three step participants down 60 times each for 50 ms, at random moments of the run
    (random: windows in step with the bus's fixed redelivery period would defeat it)."""
    draw = random.Random(seed)
    windows = []
    for name in ("customers", "inventory", "payment"):
        for _ in range(60):
            start = round(draw.uniform(0.0, sagas / 50), 3)  # arrivals at 50 sagas/s
            windows.append({"participant": name, "start": start, "end": start + 0.05})
    return _run(
        sagas=sagas, seed=seed, faults__participant_crashes=windows,
        participant__failure_rate=0.3,
    )  # fmt: skip


def test_a_compensation_a_participant_crash_abandons_is_run_again_at_its_restart(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A compensation has no timer to try it again: one in service (or queued) when its
    participant crashes is run again when the participant restarts, as the runtime runs its
    pending ones. Without that, the sagas whose compensation the crash took stay compensating
    for ever, and the checkers say so."""
    from sagafsm.sim.choreography_node import RoleHost

    result = _crashing(1000, 1)
    assert result.violations == (), result.violations[:3]
    assert result.faults["participant_crash"] > 0 and result.faults["compensation_rerun"] > 0
    assert result.outcomes.get("failed", 0) > 100

    monkeypatch.setattr(RoleHost, "restarted", lambda self: 0)  # the broken variant
    broken = _crashing(1000, 1)
    counts = broken.violation_counts
    assert counts.get("termination", 0) > 0 or counts.get("compensated-exactly-once", 0) > 0


def test_exhaustive_pairs_a_fault_with_a_participant_crash_during_what_the_fault_set_off(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A pair of exhaustive placements is a fault and a participant crash just after a delivery
    of that fault's own run: payment fails, inventory hears it and compensates, and a crash lands
    while the compensation is in service. The correct participants run it again at the restart;
    the broken variant that does not is caught on that very pair."""
    from sagafsm.sim.choreography_node import RoleHost
    from sagafsm.sim.explore import Placement, _arrivals, plan_data

    scenario = load_scenario("order_fulfillment")
    fault = Placement(saga=0, fault="fail", step="process_payment")

    def pairs() -> list[list[Placement]]:
        data = plan_data(scenario, None, 1, [fault], style="choreography")
        records: list[Any] = []
        simulate(scenario, scenario.config(data), observe=records.append)
        crash = [Placement(fault="participant_crash", participant=who, at=at)
                 for who, at in _arrivals(scenario, records) if who == "inventory"]  # fmt: skip
        return [[fault, c] for c in crash]

    def violating() -> int:
        plans = [plan_data(scenario, None, 1, pair, style="choreography") for pair in pairs()]
        return sum(bool(simulate(scenario, scenario.config(p)).violations) for p in plans)

    assert pairs() and violating() == 0
    monkeypatch.setattr(RoleHost, "restarted", lambda self: 0)
    assert violating() >= 1
