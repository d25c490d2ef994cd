"""``selfcheck``: every mutant must be caught, and the correct system must stay clean.

Each mutant runs on each built-in scenario, under the fault plan that exposes it there (on top of
a fault-free base, so what exposes it is exactly that plan); the correct engine, participants and
orchestrator run under the same plan. A mutant that does not apply to a scenario (it needs a pivot,
a read-only step...) is reported as such, with the reason, and does not run.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

import attrs

from ..checks import PROPERTIES
from .config import merge
from .coverage import Coverage
from .mutants import MUTANTS, Mutant
from .result import RunResult
from .run import simulate
from .scenario import Scenario, builtin_scenarios, load_scenario

__all__ = ["NO_FAULTS", "SelfcheckRow", "check_mutant", "run_selfcheck"]

NO_FAULTS: dict[str, Any] = {
    "participant": {"failure_rate": 0.0, "hang_rate": 0.0, "compensation_failure_rate": 0.0},
    "faults": {"loss": 0.0, "duplicate": 0.0, "reorder": 0.0, "orchestrator_crash_rate": 0.0},
}
"""Turns off every fault of a scenario's default plan."""


@attrs.frozen(kw_only=True)
class SelfcheckRow:
    """One mutant on one scenario."""

    mutant: str
    scenario: str
    description: str
    expected: tuple[str, ...]
    not_applicable: str | None = None
    """Why the mutant does not apply to this scenario (it did not run); None if it ran."""
    caught_by: dict[str, int] = attrs.field(factory=dict)
    """Property -> violations found in the mutant's run."""
    correct_violations: dict[str, int] = attrs.field(factory=dict)
    """Property -> violations found in the correct system's run (must be empty)."""
    example: str | None = None
    """One violation of the mutant's run, as a sentence."""

    @property
    def applicable(self) -> bool:
        return self.not_applicable is None

    @property
    def caught(self) -> bool | None:
        """Whether a property the mutant is expected to break fired (None: it did not run)."""
        if not self.applicable:
            return None
        return bool(set(self.expected) & self.caught_by.keys())

    @property
    def unknown_expected(self) -> tuple[str, ...]:
        """Expected properties the checkers do not define: they cannot fire."""
        return tuple(p for p in self.expected if p not in PROPERTIES)

    @property
    def ok(self) -> bool:
        return not self.applicable or (bool(self.caught) and not self.correct_violations)

    def to_json(self) -> dict[str, Any]:
        return {
            "mutant": self.mutant,
            "scenario": self.scenario,
            "description": self.description,
            "applicable": self.applicable,
            "not_applicable": self.not_applicable,
            "caught": self.caught,
            "expected": list(self.expected),
            "expected_counts": {p: self.caught_by.get(p, 0) for p in self.expected},
            "unknown_expected": list(self.unknown_expected),
            "caught_by": self.caught_by,
            "correct_clean": not self.correct_violations if self.applicable else None,
            "correct_violations": self.correct_violations,
            "example": self.example,
        }


def _example(mutant: Mutant, result: RunResult) -> str | None:
    if not result.violations:
        return None
    first = next(
        (v for v in result.violations if v.property in mutant.expected_set),
        result.violations[0],
    )
    return f"[{first.property}] saga {first.saga_id}: {first.detail}"


def check_mutant(
    mutant: Mutant,
    scenario: Scenario | None = None,
    coverage: Coverage | None = None,
    correct_runs: dict[str, RunResult] | None = None,
) -> SelfcheckRow:
    """Run ``mutant`` on ``scenario`` (default: :attr:`Mutant.scenario`), and the correct system
    under the same plan. ``correct_runs`` caches the correct system's runs by plan, across
    mutants that share one."""
    scenario = scenario or load_scenario(mutant.scenario)
    row = SelfcheckRow(
        mutant=mutant.name,
        scenario=scenario.name,
        description=mutant.description,
        expected=mutant.catches,
    )
    refusal = mutant.refusal(scenario.definition)
    if refusal is not None:
        return attrs.evolve(row, not_applicable=refusal)
    plan = merge(NO_FAULTS, mutant.plan_for(scenario.name))
    config = scenario.config(plan)
    broken = simulate(scenario, config, mutant=mutant)
    key = f"{scenario.name} {json.dumps(plan, sort_keys=True)}"
    correct = None if correct_runs is None else correct_runs.get(key)
    if correct is None:
        observe = coverage.observe if coverage is not None else None
        correct = simulate(scenario, config, observe=observe)
        if correct_runs is not None:
            correct_runs[key] = correct
    return attrs.evolve(
        row,
        caught_by=dict(broken.violation_counts),
        correct_violations=dict(correct.violation_counts),
        example=_example(mutant, broken),
    )


def run_selfcheck(
    names: Iterable[str] | None = None,
    progress: Callable[[str, str], None] | None = None,
    coverage: Coverage | None = None,
    scenarios: Iterable[str] | None = None,
) -> list[SelfcheckRow]:
    """One row per (mutant, scenario): every mutant (or ``names``) on every built-in scenario (or
    ``scenarios``), in catalogue order, then scenario order."""
    loaded = [load_scenario(name) for name in (scenarios or builtin_scenarios())]
    correct_runs: dict[str, RunResult] = {}
    rows = []
    for name in names or MUTANTS:
        for scenario in loaded:
            if progress is not None:
                progress(name, scenario.name)
            rows.append(check_mutant(MUTANTS[name], scenario, coverage, correct_runs))
    return rows
