"""The explorer finds seeded mutants, shrinks them to a few faults, and finds nothing in the
correct system."""

from __future__ import annotations

from pathlib import Path

import pytest

from sagafsm.sim import load_scenario, simulate
from sagafsm.sim.config import load_config_file
from sagafsm.sim.explore import exhaustive, plan_data, save_plan, search
from sagafsm.sim.mutants import MUTANTS
from sagafsm.sim.trace import Record


@pytest.mark.slow
@pytest.mark.parametrize(
    "name",
    [
        "tutorial-orchestrator",
        "forward-order-compensation",
        "no-tombstone",
        "send-before-save",
        "compensate-after-pivot",
        "wrong-compensation-result",
        "compensate-read-only",
    ],
)
def test_search_finds_a_mutant_and_shrinks_it_to_a_few_faults(name: str) -> None:
    """A violation is found and shrunk to one saga and at most three faults (none at all for a
    mutant that breaks a rule with no fault: sending before the commit always races it, and the
    tutorial orchestrator records no step moves, so both break the outbox rule at once)."""
    mutant = MUTANTS[name]
    found = search(load_scenario(mutant.scenario), mutant, max_examples=400)
    assert found is not None
    fewest = 0 if name in ("send-before-save", "tutorial-orchestrator") else 1
    assert found.sagas == 1 and fewest <= found.faults <= 3
    assert {v.property for v in found.violations} & set(mutant.catches)


def test_search_finds_nothing_in_the_correct_system() -> None:
    """The same search over the correct engine comes back empty."""
    assert search(load_scenario("order_fulfillment"), None, max_examples=150) is None


def test_exhaustive_counts_every_placement_and_the_correct_system_survives_them() -> None:
    """Every single-fault placement on one saga runs clean, and the count is stated."""
    scenario = load_scenario("order_fulfillment")
    report = exhaustive(scenario, None, pairs=False)
    records: list[Record] = []
    simulate(scenario, scenario.config(plan_data(scenario, None, 1, [])), observe=records.append)
    messages = sum(1 for r in records if r[1] == "send")
    assert messages == 2 * len(scenario.definition.steps)  # a command and its reply per step
    step_faults, message_faults = 4, 3
    # Placements cover twice the messages of a fault-free run, plus an orchestrator crash after
    # each message, plus a crash of its participant after each command it is delivered.
    expected = len(scenario.definition.steps) * step_faults + 2 * messages * message_faults
    commands = len(scenario.definition.steps)
    assert report.single == expected + messages + commands
    assert report.violating == 0 and report.first is None


def test_exhaustive_finds_a_single_fault_that_breaks_a_mutant() -> None:
    """With one try per action, one late message is enough to expose a missing tombstone."""
    report = exhaustive(
        load_scenario("order_fulfillment"),
        MUTANTS["no-tombstone"],
        pairs=False,
        retry_attempts=1,
    )
    assert report.violating > 0 and report.first is not None
    assert report.first.faults == 1


def test_a_saved_counterexample_replays_to_the_same_violation(tmp_path: Path) -> None:
    """The saved TOML is a configuration: loading and running it reproduces the violation."""
    mutant = MUTANTS["forward-order-compensation"]
    scenario = load_scenario(mutant.scenario)
    found = search(scenario, mutant, max_examples=200)
    assert found is not None
    path = tmp_path / "counterexample.toml"
    save_plan(found.data, path)
    config = load_config_file(path, defaults=scenario.defaults)
    assert config.mutant == mutant.name and config.scenario == scenario.name
    again = simulate(scenario, config, mutant=mutant)
    assert [v.detail for v in again.violations] == [v.detail for v in found.violations]
