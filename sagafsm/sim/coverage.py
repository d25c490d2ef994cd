"""Which declared lifecycle transitions a run exercised, and which it never did."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..history import KIND, RawRecord, TraceRecord, TransitionRecord, as_record
from ..lifecycle import LIFECYCLES, SAGA_LIFECYCLE, STEP_LIFECYCLE

__all__ = ["Coverage"]

Row = tuple[str, str, str]
"""``(source, trigger, dest)``, as a transition record carries them."""

_DECLARED: dict[str, frozenset[Row]] = {
    name: frozenset((t.source.value, t.trigger, t.dest.value) for t in spec.transitions)
    for name, spec in LIFECYCLES.items()
}
_SAGA, _STEP = SAGA_LIFECYCLE.name, STEP_LIFECYCLE.name


class Coverage:
    """Collects ``(source, trigger, dest)`` of every transition record, per lifecycle."""

    def __init__(self) -> None:
        self.seen: dict[str, set[Row]] = {name: set() for name in _DECLARED}

    def observe(self, record: RawRecord | TraceRecord) -> None:
        """One record of a run (a trace listener: anything but a transition passes untyped)."""
        if record[KIND] == "transition":
            self._add(as_record(record))  # type: ignore[arg-type]  # the kind says which type

    def observe_history(self, history: list[RawRecord | TraceRecord]) -> None:
        """Every transition of one saga's history (what the checker hands over per saga, its
        transitions already typed)."""
        for record in history:
            if record[KIND] == "transition":
                self._add(as_record(record))  # type: ignore[arg-type]  # the kind says which

    def observe_moves(self, moves: Iterable[tuple[str, str, str, str]]) -> None:
        """Committed transitions as ``(lifecycle, source, trigger, dest)`` (what
        :attr:`sagafsm.checks.StreamingChecker.moves` collects over a run)."""
        for lifecycle, *row in moves:
            self.seen.setdefault(lifecycle, set()).add((row[0], row[1], row[2]))

    def _add(self, move: TransitionRecord) -> None:
        lifecycle = _SAGA if move.step is None else _STEP
        self.seen[lifecycle].add((move.source, move.trigger, move.dest))

    def merge(self, other: Coverage) -> None:
        for lifecycle, rows in other.seen.items():
            self.seen[lifecycle] |= rows

    def uncovered(self) -> dict[str, list[Row]]:
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
