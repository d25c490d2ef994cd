"""The built-in scenarios run clean, and their domain invariants can fail."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from sagafsm.sim import load_scenario, simulate
from sagafsm.sim.scenario import builtin_scenarios


@pytest.mark.parametrize("name", ["order_fulfillment", "travel_booking"])
def test_builtin_scenarios_run_clean_under_their_default_faults(name: str) -> None:
    """Every saga ends and the domain totals balance under the scenario's own fault plan."""
    scenario = load_scenario(name)
    result = simulate(scenario, scenario.config(sagas=400))
    assert sum(result.outcomes.values()) == 400 and "unfinished" not in result.outcomes
    assert result.outcomes["completed"] > 0 and result.outcomes["failed"] > 0
    assert result.violations == ()


def test_builtin_scenarios_are_listed() -> None:
    """The scenario list the CLI prints is the simulations package's modules."""
    assert {"order_fulfillment", "travel_booking"} <= set(builtin_scenarios())


def test_a_broken_compensation_breaks_the_domain_invariants() -> None:
    """A service whose undo does nothing leaves its counter high: the invariant check fires."""
    path = Path(__file__).parent / "data" / "two_step_scenario.py"
    spec = importlib.util.spec_from_file_location("two_step_scenario", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    healthy, broken = module.scenario(), module.scenario(broken_undo=True)
    assert simulate(healthy, healthy.config(sagas=200)).violations == ()
    result = simulate(broken, broken.config(sagas=200))
    assert {v.property for v in result.violations} == {"domain-invariants"}
    assert "counter a is" in result.violations[0].detail
