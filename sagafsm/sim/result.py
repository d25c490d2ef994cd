"""What a simulation run returns: outcomes, violations, digest, metrics — as a frozen value."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from .metrics import DurationHistogram

__all__ = ["RunResult", "Violation"]


@attrs.frozen(kw_only=True)
class Violation:
    """A broken correctness property: which saga (None for a run-wide property), which property,
    and a sentence saying what happened."""

    saga_id: str | None
    property: str
    detail: str

    def to_json(self) -> dict[str, Any]:
        return {"saga_id": self.saga_id, "property": self.property, "detail": self.detail}


@attrs.frozen(kw_only=True)
class RunResult:
    scenario: str
    seed: int
    sagas: int
    outcomes: Mapping[str, int]
    """Final state name -> count; sums to ``sagas`` (``unfinished`` counts the rest, if any)."""
    violations: tuple[Violation, ...]
    digest: str
    """SHA-256 of the whole trace: equal digests, identical runs."""
    sim_time: float
    wall_seconds: float
    events: int
    """Trace records: sends, deliveries, drops, timers, transitions, ledger effects..."""
    messages: Mapping[str, int]
    faults: Mapping[str, int]
    """Injected fault kind -> count."""
    metrics: Mapping[str, Any]
    durations: Mapping[str, DurationHistogram] = attrs.field(factory=dict, eq=False, repr=False)
    """Saga durations by outcome, for figures (not part of the JSON)."""

    @property
    def ok(self) -> bool:
        return not self.violations

    @property
    def sagas_per_wall_second(self) -> float:
        return self.sagas / self.wall_seconds if self.wall_seconds > 0 else 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario,
            "seed": self.seed,
            "sagas": self.sagas,
            "outcomes": dict(self.outcomes),
            "violations": [v.to_json() for v in self.violations],
            "digest": self.digest,
            "sim_time": self.sim_time,
            "wall_seconds": self.wall_seconds,
            "events": self.events,
            "messages": dict(self.messages),
            "faults": dict(self.faults),
            "metrics": dict(self.metrics),
        }
