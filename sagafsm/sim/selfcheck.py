"""``selfcheck``: every mutant must be caught, and the correct system must stay clean.

Each mutant runs under its exposing fault plan (on top of a fault-free base, so what exposes it is
exactly that plan); the correct engine, participants and orchestrator run under the same plan.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import attrs

from .config import merge
from .coverage import Coverage
from .mutants import MUTANTS, Mutant
from .run import simulate
from .scenario import load_scenario

__all__ = ["NO_FAULTS", "SelfcheckRow", "run_selfcheck"]

NO_FAULTS: dict[str, Any] = {
    "participant": {"failure_rate": 0.0, "hang_rate": 0.0, "compensation_failure_rate": 0.0},
    "faults": {"loss": 0.0, "duplicate": 0.0, "reorder": 0.0, "orchestrator_crash_rate": 0.0},
}
"""Turns off every fault of a scenario's default plan."""


@attrs.frozen(kw_only=True)
class SelfcheckRow:
    mutant: str
    scenario: str
    description: str
    expected: tuple[str, ...]
    caught_by: dict[str, int]
    """Property -> violations found in the mutant's run."""
    correct_violations: dict[str, int]
    """Property -> violations found in the correct system's run (must be empty)."""
    example: str | None
    """One violation of the mutant's run, as a sentence."""

    @property
    def caught(self) -> bool:
        return bool(set(self.expected) & self.caught_by.keys())

    @property
    def ok(self) -> bool:
        return self.caught and not self.correct_violations

    def to_json(self) -> dict[str, Any]:
        return {
            "mutant": self.mutant,
            "scenario": self.scenario,
            "description": self.description,
            "caught": self.caught,
            "expected": list(self.expected),
            "caught_by": self.caught_by,
            "correct_clean": not self.correct_violations,
            "correct_violations": self.correct_violations,
            "example": self.example,
        }


def check_mutant(mutant: Mutant, coverage: Coverage | None = None) -> SelfcheckRow:
    scenario = load_scenario(mutant.scenario)
    config = scenario.config(merge(NO_FAULTS, mutant.exposing))
    broken = simulate(scenario, config, mutant=mutant)
    correct = simulate(scenario, config, observe=coverage.observe if coverage is not None else None)
    example = None
    if broken.violations:
        first = next(
            (v for v in broken.violations if v.property in mutant.expected_set),
            broken.violations[0],
        )
        example = f"[{first.property}] saga {first.saga_id}: {first.detail}"
    return SelfcheckRow(
        mutant=mutant.name,
        scenario=mutant.scenario,
        description=mutant.description,
        expected=mutant.catches,
        caught_by=dict(broken.violation_counts),
        correct_violations=dict(correct.violation_counts),
        example=example,
    )


def run_selfcheck(
    names: Iterable[str] | None = None,
    progress: Callable[[str], None] | None = None,
    coverage: Coverage | None = None,
) -> list[SelfcheckRow]:
    rows = []
    for name in names or MUTANTS:
        if progress is not None:
            progress(name)
        rows.append(check_mutant(MUTANTS[name], coverage))
    return rows
