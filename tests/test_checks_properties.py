"""Hypothesis: the correct system breaks no property under any bounded random fault plan.

Plans come from :func:`sim_strategies.fault_plans` (sagas 5-60, every fault rate drawn, crashes,
store latency, one optional partition, every load kind). A failing example is a real bug in the
engine, the simulator or a checker: Hypothesis prints the shrunk plan.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sim_strategies import fault_plans

from sagafsm.sim import RunResult, Scenario, load_scenario, simulate

SCENARIOS = {name: load_scenario(name) for name in ("order_fulfillment", "travel_booking")}

FAST = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
HEAVY = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def run_plan(scenario: Scenario, plan: dict[str, Any]) -> RunResult:
    return simulate(scenario, scenario.config(plan))


def assert_clean(result: RunResult, plan: dict[str, Any]) -> None:
    """No violation, and every saga reached a final state."""
    problems = [f"[{v.property}] {v.saga_id}: {v.detail}" for v in result.violations[:5]]
    assert result.violation_counts == {}, (plan, problems)
    assert result.violations == ()
    assert "unfinished" not in result.outcomes, (plan, result.outcomes)
    assert sum(result.outcomes.values()) == result.sagas, (plan, result.outcomes)


def plans_for_every_scenario(max_sagas: int = 60) -> st.SearchStrategy[tuple[str, dict[str, Any]]]:
    return st.sampled_from(sorted(SCENARIOS)).flatmap(
        lambda name: st.tuples(st.just(name), fault_plans(SCENARIOS[name], max_sagas=max_sagas))
    )


@pytest.mark.parametrize("name", sorted(SCENARIOS))
@FAST
@given(data=st.data())
def test_the_correct_system_breaks_no_property(name: str, data: st.DataObject) -> None:
    """Any bounded fault plan: zero violations, every saga ends."""
    scenario = SCENARIOS[name]
    plan = data.draw(fault_plans(scenario), label="plan")
    assert_clean(run_plan(scenario, plan), plan)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(SCENARIOS))
@HEAVY
@given(data=st.data())
def test_the_correct_system_breaks_no_property_heavy(name: str, data: st.DataObject) -> None:
    """The same, with more examples (slow)."""
    scenario = SCENARIOS[name]
    plan = data.draw(fault_plans(scenario), label="plan")
    assert_clean(run_plan(scenario, plan), plan)


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=plans_for_every_scenario(max_sagas=30))
def test_the_same_plan_twice_gives_the_same_digest(case: tuple[str, dict[str, Any]]) -> None:
    """A run is a pure function of (scenario, plan): same digest, outcomes and violations."""
    name, plan = case
    first = run_plan(SCENARIOS[name], plan)
    second = run_plan(SCENARIOS[name], plan)
    assert first.digest == second.digest
    assert first.events == second.events
    assert first.outcomes == second.outcomes
    assert first.violation_counts == second.violation_counts
