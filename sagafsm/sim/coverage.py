"""Which declared lifecycle transitions a run exercised, and which it never did."""

from __future__ import annotations

from typing import Any

from ..lifecycle import SAGA_TRANSITIONS, STEP_TRANSITIONS
from .trace import Record

__all__ = ["Coverage"]

_DECLARED = {
    "saga": {(t.source.value, t.trigger, t.dest.value) for t in SAGA_TRANSITIONS},
    "step": {(t.source.value, t.trigger, t.dest.value) for t in STEP_TRANSITIONS},
}


class Coverage:
    """Collects ``(source, trigger, dest)`` of every transition record, per lifecycle."""

    def __init__(self) -> None:
        self.seen: dict[str, set[tuple[str, str, str]]] = {"saga": set(), "step": set()}

    def observe(self, record: Record) -> None:
        if record[1] == "transition":
            lifecycle = "saga" if record[3] is None else "step"
            self.seen[lifecycle].add((record[5], record[4], record[6]))

    def observe_history(self, history: list[Record]) -> None:
        """Every transition of one saga's history (what the checker hands over per saga)."""
        saga, step = self.seen["saga"], self.seen["step"]
        for record in history:
            if record[1] == "transition":
                (saga if record[3] is None else step).add((record[5], record[4], record[6]))

    def merge(self, other: Coverage) -> None:
        for lifecycle, rows in other.seen.items():
            self.seen[lifecycle] |= rows

    def uncovered(self) -> dict[str, list[tuple[str, str, str]]]:
        return {name: sorted(rows - self.seen[name]) for name, rows in _DECLARED.items()}

    def summary(self) -> dict[str, Any]:
        uncovered = self.uncovered()
        return {
            name: {
                "covered": len(rows & self.seen[name]),
                "declared": len(rows),
                "uncovered": [f"{s} --{t}--> {d}" for s, t, d in uncovered[name]],
            }
            for name, rows in _DECLARED.items()
        }
