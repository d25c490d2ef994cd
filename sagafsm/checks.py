"""Correctness properties, checked from what the participants actually did.

Rules for this module: checkers are pure functions over trace records (the typed records of
:mod:`sagafsm.history`, or the plain tuples they stand for) and a saga definition. They import no
SimPy and no driver, and trust nothing the orchestrator believes: outcomes are judged from the
participants' ledgers (``effect`` records). Every lifecycle fact (rows, initial and final states)
is read from the specs in :mod:`sagafsm.lifecycle`, never restated. The same functions run after
every simulation, inside Hypothesis state-machine tests, and over a JSONL trace file.

:class:`StreamingChecker` feeds them one saga at a time and forgets a saga once it is checked, so a
million-saga run is checked in the memory of the sagas still open.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, TypeVar, cast

import attrs

from .definition import SagaDefinition, StepKind
from .history import (
    KIND,
    SAGA,
    EffectRecord,
    FinishRecord,
    LedgerEffect,
    RawRecord,
    SendRecord,
    TraceRecord,
    TransitionRecord,
    as_record,
    format_record,
)
from .lifecycle import SAGA_LIFECYCLE, STEP_LIFECYCLE, LifecycleSpec, SagaState, TimerPurpose
from .messages import MessageKind

__all__ = [
    "PROPERTIES",
    "Violation",
    "check_saga",
    "check_history",
    "StreamingChecker",
    "format_record",
]

Record = RawRecord | TraceRecord
"""What the checkers accept: a typed record, or the plain tuple a driver wrote."""

PROPERTIES: dict[str, str] = {
    "termination": "every saga reaches a final state, at the latest termination_bound "
    "simulated seconds after the last start request",
    "single-run": "every saga is started once and finishes once, across crashes",
    "completed-exactly-once": "a completed saga applied every action exactly once and "
    "no compensation",
    "compensated-exactly-once": "a failed saga compensated every landed action exactly once, "
    "and nothing whose action never landed (a read-only step has nothing to compensate)",
    "reverse-order": "compensations run in reverse step order",
    "no-effect-after-compensation": "no action takes effect after its compensation",
    "no-duplicate-effect": "no action or compensation takes effect twice",
    "declared-transitions": "every lifecycle change is a declared transition from the current "
    "state, and nothing leaves a final state",
    "pivot-rule": "once the pivot landed, nothing is compensated and the saga does not fail",
    "read-only-untouched": "no compensation is ever sent to a read-only step",
    "compensation-input": "every compensation is handed its own action's result "
    "(participants refuse any other)",
    "outbox-rule": "a participant acts only on a committed decision: each effect comes after "
    "its step's committed move into executing (an action) or compensating (a compensation)",
    "domain-invariants": "the scenario's totals (stock, money...) balance once every saga ended",
}


@attrs.frozen
class _Table:
    """What the transition check needs of one lifecycle, as the plain strings records carry."""

    rows: frozenset[tuple[str, str, str]]
    initial: str
    final: frozenset[str]

    @classmethod
    def of(cls, spec: LifecycleSpec[Any]) -> _Table:
        return cls(
            rows=frozenset((t.trigger, t.source.value, t.dest.value) for t in spec.transitions),
            initial=spec.initial.value,
            final=frozenset(s.value for s in spec.terminal),
        )


_SAGA_TABLE = _Table.of(SAGA_LIFECYCLE)
_STEP_TABLE = _Table.of(STEP_LIFECYCLE)
_COMPLETED, _FAILED = SagaState.COMPLETED.value, SagaState.FAILED.value
_COMPENSATE = MessageKind.COMPENSATE.value
_E = LedgerEffect
_UNDONE = frozenset({_E.COMPENSATION, _E.COMPENSATION_NOOP})
"""Effects that mean the compensation ran (undid the action, or found nothing to undo)."""
_TRIED = _UNDONE | {_E.COMPENSATION_FAILED, _E.COMPENSATION_REFUSED}
"""Every effect a participant writes when a compensation reaches it."""
_SEND_TYPE = SendRecord._fields.index("type")
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


@attrs.frozen
class _Steps:
    """What the checks need of a definition, worked out once per definition, not per saga."""

    names: tuple[str, ...]
    index: dict[str, int]
    read_only: frozenset[str]
    pivot: str | None

    @classmethod
    def of(cls, definition: SagaDefinition) -> _Steps:
        pivot = definition.pivot
        return cls(
            names=definition.step_names,
            index={name: i for i, name in enumerate(definition.step_names)},
            read_only=frozenset(s.name for s in definition.steps if s.kind is StepKind.READ_ONLY),
            pivot=None if pivot is None else pivot.name,
        )


_R = TypeVar("_R", bound=TraceRecord)


def _typed(record: Record, cls: type[_R]) -> _R:
    """``record`` as a ``cls``, converted only if it is not one already."""
    if type(record) is cls:
        return record
    try:
        return cast(_R, cls._make(record))
    except TypeError:  # the wrong number of fields: as_record says what the kind needs
        return cast(_R, as_record(record))


def check_saga(
    saga_id: str, history: Sequence[Record], definition: SagaDefinition
) -> list[Violation]:
    """Every per-saga property, over one saga's records (typed or plain) in time order."""
    return _check([as_record(r) for r in history], saga_id, _Steps.of(definition))


def _check(history: list[Record], saga_id: str, steps: _Steps) -> list[Violation]:
    """Check one saga, typing the records it reads *in place* (the list is the caller's own):
    whoever reads the history next (transition coverage) finds them typed."""
    starts = 0
    finishes: list[str] = []
    effects: list[EffectRecord] = []
    transitions: list[TransitionRecord] = []
    compensations_sent: list[SendRecord] = []
    # One pass sorts out the records the checks read and types each of them once, now rather
    # than on arrival: typed records that live only while their saga is checked cost the garbage
    # collector nothing, whereas the retention keeps arrivals alive for a minute of simulated
    # time. Message and timer traffic, most of a history, is never read by field: left as is.
    entered: set[tuple[str, str]] = set()
    """(step, executing or compensating): the committed moves that send a step's commands."""
    early: list[EffectRecord] = []
    for at, record in enumerate(history):
        kind = record[KIND]
        if kind == "effect":
            history[at] = effect = _typed(record, EffectRecord)
            effects.append(effect)
            if (effect.step, _SENT_BY[effect.effect in _FORWARD]) not in entered:
                early.append(effect)
        elif kind == "transition":
            history[at] = move = _typed(record, TransitionRecord)
            transitions.append(move)
            if move.step is not None and move.dest in _SENDING:
                entered.add((move.step, move.dest))
        elif kind == "send":
            if record[_SEND_TYPE] == _COMPENSATE:
                history[at] = sent = _typed(record, SendRecord)
                compensations_sent.append(sent)
        elif kind == "start":
            starts += 1
        elif kind == "finish":
            history[at] = finish = _typed(record, FinishRecord)
            finishes.append(finish.state)
    found: list[tuple[str, str]] = []
    if starts != 1:
        found.append(("single-run", f"the saga was started {starts} times"))
    if len(finishes) > 1:
        found.append(("single-run", f"the saga finished {len(finishes)} times: {finishes}"))
    final = finishes[-1] if finishes else None
    if final is None:
        found.append(("termination", "the saga never reached a final state"))
    elif final not in _SAGA_TABLE.final:
        found.append(("termination", f"the saga finished in {final!r}, not a final state"))
    found += _check_ledger(effects, steps, final)
    found += _check_compensation_input(effects)
    found += _check_read_only(effects, compensations_sent, steps)
    found += _check_transitions(transitions)
    found += _check_outbox_rule(early)
    if not found:
        return []
    lines = tuple(format_record(r) for r in history)
    return [Violation(saga_id=saga_id, property=p, detail=d, history=lines) for p, d in found]


def _check_ledger(
    effects: list[EffectRecord], steps: _Steps, final: str | None
) -> Iterator[tuple[str, str]]:
    counts: Counter[tuple[str, str]] = Counter((e.step, e.effect) for e in effects)
    # Record order, not timestamps: several records often share an instant.
    undone: set[str] = set()
    late: set[str] = set()
    order: list[str] = []  # steps in the order their compensation first ran
    for e in effects:
        if e.effect in _UNDONE:
            if e.step not in undone:
                undone.add(e.step)
                order.append(e.step)
        elif e.effect == _E.ACTION and e.step in undone:
            late.add(e.step)
    for step in steps.names:
        for effect in (_E.ACTION, _E.COMPENSATION):
            if (times := counts[step, effect]) > 1:
                yield (
                    "no-duplicate-effect",
                    f"the {effect} of step {step!r} took effect {times} times",
                )
        if step in late:
            yield (
                "no-effect-after-compensation",
                f"the action of step {step!r} took effect after its compensation",
            )
    for step in steps.names if final == _COMPLETED else ():
        if (times := counts[step, _E.ACTION]) != 1:
            yield (
                "completed-exactly-once",
                f"the saga completed but the action of step {step!r} took effect {times} times",
            )
        if step in undone:
            yield "completed-exactly-once", f"the saga completed but step {step!r} was compensated"
    for step in steps.names if final == _FAILED else ():
        if step in steps.read_only:
            continue  # nothing to undo; read-only-untouched judges any compensation it got
        landed, times = counts[step, _E.ACTION], counts[step, _E.COMPENSATION]
        if landed and times != 1:
            yield (
                "compensated-exactly-once",
                f"the action of step {step!r} took effect but was compensated {times} times",
            )
        elif not landed and times:
            yield (
                "compensated-exactly-once",
                f"step {step!r} was compensated but its action never took effect",
            )
    positions = [steps.index[step] for step in order if step in steps.index]
    if positions != sorted(positions, reverse=True):
        yield "reverse-order", f"steps were compensated in the order {order}"
    pivot = steps.pivot
    if pivot is not None and counts[pivot, _E.ACTION]:
        if order:
            yield "pivot-rule", f"the pivot {pivot!r} took effect, yet {order} were compensated"
        if final == _FAILED:
            yield "pivot-rule", f"the pivot {pivot!r} took effect, yet the saga failed"


def _check_compensation_input(effects: list[EffectRecord]) -> Iterator[tuple[str, str]]:
    refused = Counter(e.step for e in effects if e.effect == _E.COMPENSATION_REFUSED)
    for step, times in refused.items():
        yield (
            "compensation-input",
            f"the participant of step {step!r} refused its compensation {times} "
            f"time{'s' if times > 1 else ''}: it was handed a result its action never gave",
        )


def _check_read_only(
    effects: list[EffectRecord], sent: list[SendRecord], steps: _Steps
) -> Iterator[tuple[str, str]]:
    if not steps.read_only:
        return
    sends = Counter(s.step for s in sent if s.step in steps.read_only)
    ledger: dict[str, list[str]] = {}
    for e in effects:
        if e.step in steps.read_only and e.effect in _TRIED:
            ledger.setdefault(e.step, []).append(e.effect)
    for step in steps.names:
        times, seen = sends[step], ledger.get(step)
        if times or seen:
            what = f"{times} compensation{'s' if times > 1 else ''} sent" if times else "none sent"
            shown = f", its participant's ledger shows {seen}" if seen else ""
            yield "read-only-untouched", f"read-only step {step!r} was compensated: {what}{shown}"


_SENT_BY = {
    purpose is TimerPurpose.ACTION_TIMEOUT: state.value
    for state, purpose in STEP_LIFECYCLE.waiting.items()
    if purpose in (TimerPurpose.ACTION_TIMEOUT, TimerPurpose.COMPENSATION_TIMEOUT)
}
"""The state whose move sends a command (it waits for the reply): an action's (key True) or a
compensation's (False), read from the step lifecycle."""
_SENDING = frozenset(_SENT_BY.values())
_FORWARD = frozenset({_E.ACTION, _E.ACTION_FAILED, _E.ACTION_BLOCKED})


def _check_outbox_rule(early: list[EffectRecord]) -> Iterator[tuple[str, str]]:
    """Effects recorded before the move that sends their command was committed: only a driver
    that publishes before it commits (and a participant acting on that) can produce one, since a
    trace is in commit order. Even when its restarted self makes the same move again and the
    inbox hides the repeat, so that every effect balances, this order shows it."""
    for effect in early:
        needed = _SENT_BY[effect.effect in _FORWARD]
        yield (
            "outbox-rule",
            f"participant {effect.participant!r} recorded {effect.effect} for step "
            f"{effect.step!r} before the orchestrator committed the step {needed}",
        )


def _check_transitions(transitions: list[TransitionRecord]) -> Iterator[tuple[str, str]]:
    current: dict[str | None, str] = {}
    for move in transitions:
        step = move.step
        table = _SAGA_TABLE if step is None else _STEP_TABLE
        where = "the saga" if step is None else f"step {step!r}"
        now = current.get(step, table.initial)
        if move.source != now:
            final = " (a final state)" if now in table.final else ""
            yield (
                "declared-transitions",
                f"{where} moved from {move.source!r} while it was in {now!r}{final}",
            )
        if (move.trigger, move.source, move.dest) not in table.rows:
            yield (
                "declared-transitions",
                f"{where} took the undeclared transition {move.trigger!r}: "
                f"{move.source} -> {move.dest}",
            )
        current[step] = move.dest


def check_history(records: Iterable[Record], definition: SagaDefinition) -> list[Violation]:
    """Check a whole run's records (typed or plain; e.g. read back from a trace file) at once."""
    checker = StreamingChecker(definition)
    for record in records:
        checker.observe(record)
    return checker.finish()


class StreamingChecker:
    """Collects each saga's records, checks it when it can no longer change, then forgets it.

    A saga is checked when a ``forget`` record says the participants dropped its idempotency
    records (nothing of it can happen after that), or at :meth:`finish` for the rest. Records
    are kept as they come; each one a check reads is typed once, when its saga is checked.
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
        """Called with each saga's history once it is checked (transition coverage uses it):
        the records the checks read (transitions, effects...) are typed by then."""
        self._steps = _Steps.of(definition)
        self._open: dict[str, list[Record]] = {}
        self.violations: list[Violation] = []
        self.counts: Counter[str] = Counter()
        self.checked = 0

    def observe(self, record: Record) -> None:
        # Called for every record of a run: look at the shared header before converting.
        saga_id = record[SAGA]
        if saga_id is None:
            return
        kind = record[KIND]
        if kind == "forget":
            history = self._open.pop(saga_id, None)
            if history is not None:
                self._check(saga_id, history)
            return
        history = self._open.get(saga_id)
        if history is None:
            if kind in _STRAGGLERS:
                # Message traffic of a saga already checked and forgotten (a reply held back past
                # the retention): participants refuse it, so it cannot change the verdict.
                return
            history = self._open[saga_id] = []
        history.append(record)

    def _check(self, saga_id: str, history: list[Record]) -> None:
        self.checked += 1
        for violation in _check(history, saga_id, self._steps):
            self.counts[violation.property] += 1
            if len(self.violations) < self.max_reported:
                self.violations.append(violation)
        if self.on_checked is not None:
            self.on_checked(history)

    def finish(self) -> list[Violation]:
        """Check every saga still open; return every violation found (up to ``max_reported``)."""
        for saga_id, history in self._open.items():
            self._check(saga_id, history)
        self._open.clear()
        return self.violations

    def __len__(self) -> int:
        return len(self._open)
