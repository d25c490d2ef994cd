"""Correctness properties, checked from what the participants actually did.

Rules for this module: checkers are pure functions over trace records (see
:data:`sagafsm.sim.trace.RECORD_FIELDS`: ``(t, kind, saga_id, ...)``) and a saga definition. They
import no SimPy and trust nothing the orchestrator believes: outcomes are judged from the
participants' ledgers (``effect`` records). The same functions run after every simulation, inside
Hypothesis state-machine tests, and over a JSONL trace file.

:class:`StreamingChecker` feeds them one saga at a time and forgets a saga once it is checked, so a
million-saga run is checked in the memory of the sagas still open.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import attrs

from .definition import SagaDefinition, StepKind
from .lifecycle import (
    SAGA_TERMINAL,
    SAGA_TRANSITIONS,
    STEP_TERMINAL,
    STEP_TRANSITIONS,
    SagaState,
    StepState,
)

__all__ = [
    "PROPERTIES",
    "Violation",
    "check_saga",
    "check_history",
    "StreamingChecker",
    "format_record",
]

Record = tuple[Any, ...]

PROPERTIES: dict[str, str] = {
    "termination": "every saga reaches a final state, at the latest termination_bound "
    "simulated seconds after the last start request",
    "single-run": "every saga is started once and finishes once, across crashes",
    "completed-exactly-once": "a completed saga applied every action exactly once and "
    "no compensation",
    "compensated-exactly-once": "a failed saga compensated every landed action exactly once, "
    "and nothing whose action never landed",
    "reverse-order": "compensations run in reverse step order",
    "no-effect-after-compensation": "no action takes effect after its compensation",
    "no-duplicate-effect": "no action or compensation takes effect twice",
    "declared-transitions": "every lifecycle change is a declared transition from the current "
    "state, and nothing leaves a final state",
    "pivot-rule": "once the pivot landed, nothing is compensated and the saga does not fail",
    "domain-invariants": "the scenario's totals (stock, money...) balance once every saga ended",
}

_SAGA_ROWS = frozenset((t.trigger, t.source.value, t.dest.value) for t in SAGA_TRANSITIONS)
_STEP_ROWS = frozenset((t.trigger, t.source.value, t.dest.value) for t in STEP_TRANSITIONS)
_SAGA_FINAL = frozenset(s.value for s in SAGA_TERMINAL)
_STEP_FINAL = frozenset(s.value for s in STEP_TERMINAL)
_COMPENSATIONS = ("compensation", "compensation_noop")
_STRAGGLERS = frozenset({"send", "deliver", "drop", "duplicate", "delay", "ignored"})


@attrs.frozen(kw_only=True)
class Violation:
    """A broken property: which saga (None for a run-wide one), which property, what happened,
    and the saga's history as readable lines."""

    saga_id: str | None
    property: str
    detail: str
    history: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "saga_id": self.saga_id,
            "property": self.property,
            "detail": self.detail,
            "history": list(self.history),
        }


def format_record(record: Record) -> str:
    """One readable line for a trace record."""
    from .sim.trace import RECORD_FIELDS  # plain data, no simpy at import

    t, kind, *rest = record
    fields = dict(zip(RECORD_FIELDS.get(kind, ()), rest, strict=False))
    fields.pop("saga", None)
    text = " ".join(f"{k}={v}" for k, v in fields.items() if v is not None)
    return f"{t:10.4f}  {kind:<11} {text}".rstrip()


def check_saga(
    saga_id: str, history: Sequence[Record], definition: SagaDefinition
) -> list[Violation]:
    """Every per-saga property, over one saga's records in time order."""
    found: list[tuple[str, str]] = []
    starts = sum(1 for r in history if r[1] == "start")
    finishes = [r[3] for r in history if r[1] == "finish"]
    if starts != 1:
        found.append(("single-run", f"the saga was started {starts} times"))
    if len(finishes) > 1:
        found.append(("single-run", f"the saga finished {len(finishes)} times: {finishes}"))
    final = finishes[-1] if finishes else None
    if final is None:
        found.append(("termination", "the saga never reached a final state"))
    found += _check_ledger(history, definition, final)
    found += _check_transitions(history)
    if not found:
        return []
    lines = tuple(format_record(r) for r in history)
    return [Violation(saga_id=saga_id, property=p, detail=d, history=lines) for p, d in found]


def _check_ledger(
    history: Sequence[Record], definition: SagaDefinition, final: str | None
) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    effects = [(r[0], r[4], r[5]) for r in history if r[1] == "effect"]
    counts: Counter[tuple[str, str]] = Counter((step, effect) for _, step, effect in effects)
    steps = definition.step_names
    for step in steps:
        for effect in ("action", "compensation"):
            if counts[step, effect] > 1:
                found.append(
                    (
                        "no-duplicate-effect",
                        f"the {effect} of step {step!r} took effect {counts[step, effect]} times",
                    )
                )
        # Record order, not timestamps: several records often share an instant.
        undone = next(
            (i for i, (_, s, e) in enumerate(effects) if s == step and e in _COMPENSATIONS),
            None,
        )
        if undone is not None and any(
            s == step and e == "action" for _, s, e in effects[undone + 1 :]
        ):
            found.append(
                (
                    "no-effect-after-compensation",
                    f"the action of step {step!r} took effect after its compensation",
                )
            )
    if final == SagaState.COMPLETED.value:
        for step in steps:
            if counts[step, "action"] != 1:
                found.append(
                    (
                        "completed-exactly-once",
                        f"the saga completed but step {step!r}'s action took effect "
                        f"{counts[step, 'action']} times",
                    )
                )
            if counts[step, "compensation"] or counts[step, "compensation_noop"]:
                found.append(
                    (
                        "completed-exactly-once",
                        f"the saga completed but step {step!r} was compensated",
                    )
                )
    if final == SagaState.FAILED.value:
        for step in steps:
            landed, undone = counts[step, "action"], counts[step, "compensation"]
            if landed and undone != 1:
                found.append(
                    (
                        "compensated-exactly-once",
                        f"step {step!r}'s action took effect but was compensated {undone} times",
                    )
                )
            elif not landed and undone:
                found.append(
                    (
                        "compensated-exactly-once",
                        f"step {step!r} was compensated but its action never took effect",
                    )
                )
    order = []
    for _, step, effect in effects:
        if effect in _COMPENSATIONS and step not in order:
            order.append(step)
    positions = [definition.index_of(step) for step in order if definition.has_step(step)]
    if positions != sorted(positions, reverse=True):
        found.append(("reverse-order", f"steps were compensated in the order {order}"))
    pivot = next((s.name for s in definition.steps if s.kind is StepKind.PIVOT), None)
    if pivot is not None and counts[pivot, "action"]:
        if order:
            found.append(
                ("pivot-rule", f"the pivot {pivot!r} took effect, yet {order} were compensated")
            )
        if final == SagaState.FAILED.value:
            found.append(("pivot-rule", f"the pivot {pivot!r} took effect, yet the saga failed"))
    return found


def _check_transitions(history: Sequence[Record]) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    current: dict[str | None, str] = {}
    for record in history:
        if record[1] != "transition":
            continue
        _, _, _, step, trigger, source, dest = record
        rows, initial, final = (
            (_SAGA_ROWS, SagaState.STARTED.value, _SAGA_FINAL)
            if step is None
            else (_STEP_ROWS, StepState.PENDING.value, _STEP_FINAL)
        )
        where = "the saga" if step is None else f"step {step!r}"
        now = current.get(step, initial)
        if source != now:
            found.append(
                (
                    "declared-transitions",
                    f"{where} moved from {source!r} while it was in {now!r}"
                    + (" (a final state)" if now in final else ""),
                )
            )
        if (trigger, source, dest) not in rows:
            found.append(
                (
                    "declared-transitions",
                    f"{where} took the undeclared transition {trigger!r}: {source} -> {dest}",
                )
            )
        current[step] = dest
    return found


def check_history(records: Iterable[Record], definition: SagaDefinition) -> list[Violation]:
    """Check a whole run's records (e.g. read back from a trace file) at once."""
    checker = StreamingChecker(definition)
    for record in records:
        checker.observe(record)
    return checker.finish()


class StreamingChecker:
    """Collects each saga's records, checks it when it can no longer change, then forgets it.

    A saga is checked when a ``forget`` record says the participants dropped its idempotency
    records (nothing of it can happen after that), or at :meth:`finish` for the rest.
    """

    def __init__(
        self,
        definition: SagaDefinition,
        *,
        max_reported: int = 1000,
        on_checked: Callable[[list[Record]], None] | None = None,
    ) -> None:
        self.definition = definition
        self.max_reported = max_reported
        self.on_checked = on_checked
        """Called with each saga's history once it is checked (transition coverage uses it)."""
        self._open: dict[str, list[Record]] = {}
        self.violations: list[Violation] = []
        self.counts: Counter[str] = Counter()
        self.checked = 0

    def observe(self, record: Record) -> None:
        saga_id = record[2]
        if saga_id is None:
            return
        if record[1] == "forget":
            history = self._open.pop(saga_id, None)
            if history is not None:
                self._check(saga_id, history)
            return
        history = self._open.get(saga_id)
        if history is None:
            if record[1] in _STRAGGLERS:
                # Message traffic of a saga already checked and forgotten (a reply held back past
                # the retention): participants refuse it, so it cannot change the verdict.
                return
            history = self._open[saga_id] = []
        history.append(record)

    def _check(self, saga_id: str, history: list[Record]) -> None:
        self.checked += 1
        if self.on_checked is not None:
            self.on_checked(history)
        for violation in check_saga(saga_id, history, self.definition):
            self.counts[violation.property] += 1
            if len(self.violations) < self.max_reported:
                self.violations.append(violation)

    def finish(self) -> list[Violation]:
        """Check every saga still open; return every violation found (up to ``max_reported``)."""
        for saga_id, history in self._open.items():
            self._check(saga_id, history)
        self._open.clear()
        return self.violations

    def __len__(self) -> int:
        return len(self._open)
