"""Every mutant is caught under its exposing plan, and the correct system stays clean under it.

Also the ``selfcheck`` command, and the issue's acceptance check (at reduced size): the correct
system survives a hostile fault plan that the tutorials' orchestrator does not.
"""

from __future__ import annotations

import json

import pytest

from sagafsm.checks import PROPERTIES
from sagafsm.cli import main
from sagafsm.sim import Scenario, load_scenario, simulate
from sagafsm.sim.config import SimulationConfig, merge
from sagafsm.sim.mutants import MUTANTS, Mutant
from sagafsm.sim.selfcheck import NO_FAULTS


def exposing_config(mutant: Mutant) -> tuple[Scenario, SimulationConfig]:
    """The mutant's scenario and its exposing plan over a fault-free base, as selfcheck runs it."""
    scenario = load_scenario(mutant.scenario)
    return scenario, scenario.config(merge(NO_FAULTS, mutant.exposing))


@pytest.mark.parametrize("mutant", list(MUTANTS.values()), ids=list(MUTANTS))
def test_the_mutant_is_caught_by_a_property_it_claims(mutant: Mutant) -> None:
    """Under its exposing plan, the mutant's run breaks at least one of ``mutant.catches``."""
    scenario, config = exposing_config(mutant)
    result = simulate(scenario, config, mutant=mutant)
    assert mutant.expected_set & result.violation_counts.keys(), result.violation_counts
    caught = [v for v in result.violations if v.property in mutant.expected_set]
    assert caught and caught[0].history  # a readable history comes with it


@pytest.mark.parametrize("mutant", list(MUTANTS.values()), ids=list(MUTANTS))
def test_the_correct_system_is_clean_under_the_mutants_plan(mutant: Mutant) -> None:
    """The same plan, the correct engine and participants: no violation, every saga ended."""
    scenario, config = exposing_config(mutant)
    result = simulate(scenario, config)
    assert result.violation_counts == {}, [v.detail for v in result.violations[:5]]
    assert result.violations == ()
    assert "unfinished" not in result.outcomes
    assert sum(result.outcomes.values()) == config.sagas


def test_every_mutant_claims_known_properties() -> None:
    """A mutant's ``catches`` names properties the checkers know."""
    for mutant in MUTANTS.values():
        assert mutant.catches and set(mutant.catches) <= set(PROPERTIES), mutant.name


def test_selfcheck_json_reports_every_mutant_caught(capsys: pytest.CaptureFixture[str]) -> None:
    """``sagafsm selfcheck --json`` exits 0 with ok true and one row per mutant."""
    assert main(["selfcheck", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is True
    assert [row["mutant"] for row in report["mutants"]] == list(MUTANTS)
    for row in report["mutants"]:
        assert row["caught"] and row["correct_clean"], row
        assert row["correct_violations"] == {}
        assert row["example"]


def test_selfcheck_of_one_mutant(capsys: pytest.CaptureFixture[str]) -> None:
    """``--mutant NAME`` checks only that mutant."""
    assert main(["selfcheck", "--json", "--mutant", "forward-order-compensation"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert [row["mutant"] for row in report["mutants"]] == ["forward-order-compensation"]
    assert report["mutants"][0]["caught_by"].keys() >= {"reverse-order"}


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


def test_the_acceptance_run_catches_the_tutorial_orchestrator(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The same plan with the tutorials' orchestrator: exit 1, and its violations are listed."""
    assert main([*ACCEPTANCE, "--mutant", "tutorial-orchestrator"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["mutant"] == "tutorial-orchestrator"
    assert report["violations"]
    assert set(report["violation_counts"]) & set(MUTANTS["tutorial-orchestrator"].catches)
    first = report["violations"][0]
    assert first["saga_id"] and first["property"] in PROPERTIES and first["history"]
