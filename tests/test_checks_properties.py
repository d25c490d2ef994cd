"""Hypothesis: the correct system breaks no property under any bounded random fault plan.

Plans come from :func:`sim_strategies.fault_plans` (sagas 5-60, every fault rate drawn, crashes,
store latency, one optional partition, every load kind). A failing example is a real bug in the
engine, the simulator or a checker: Hypothesis prints the shrunk plan. The live check (plain
tuples, as the simulator writes them) and a later check of the run's JSONL trace (typed records)
must agree, for the correct system and for mutants alike.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st
from sim_strategies import fault_plans

from sagafsm.checks import Violation, check_history
from sagafsm.history import record_from_dict
from sagafsm.sim import RunResult, Scenario, load_scenario, read_trace, simulate
from sagafsm.sim.mutants import get_mutant

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


def verdict(violations: Any) -> list[tuple[str | None, str, str]]:
    """The per-saga violations, in a comparable order (domain invariants need the live run)."""
    found: list[Violation] = [v for v in violations if v.property != "domain-invariants"]
    return sorted((v.saga_id, v.property, v.detail) for v in found)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    case=plans_for_every_scenario(max_sagas=30),
    mutant=st.sampled_from([None, "wrong-compensation-result", "compensate-read-only"]),
)
def test_a_trace_file_checked_later_gives_the_live_verdict(
    case: tuple[str, dict[str, Any]], mutant: str | None
) -> None:
    """The JSONL trace, read back as typed records, breaks exactly what the live run broke."""
    name, plan = case
    scenario = SCENARIOS[name]
    broken = get_mutant(mutant) if mutant is not None else None
    assume(broken is None or broken.refusal(scenario.definition) is None)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "run.jsonl"
        live = simulate(scenario, scenario.config(plan), trace_path=path, mutant=broken)
        records = [record_from_dict(line) for line in read_trace(path)]
    expected = verdict(live.violations)
    event("the run broke a property" if expected else "a clean run")
    assert verdict(check_history(records, scenario.definition)) == expected
