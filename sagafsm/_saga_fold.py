"""The per-saga properties of :mod:`sagafsm.checks`, as a fold over one saga's records.

Rules for this module: it is the checkers' engine room, and holds no public API. Each record
kind a property reads (start, finish, effect, transition, the send of a compensation) is folded
into the saga's :class:`SagaFold` as it arrives, by the functions :func:`folders` returns; any
other kind is only kept in the history, for the lines of a violation. :func:`findings` then reads
the fold once the saga can no longer change. Everything is read in record order, never by
timestamp (several records often share an instant). Every lifecycle fact is read from the specs
in :mod:`sagafsm.lifecycle`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

import attrs

from .definition import SagaDefinition, StepKind
from .history import (
    RETRY_ACTION,
    EffectRecord,
    FinishRecord,
    LedgerEffect,
    OperatorRecord,
    SendRecord,
    TransitionRecord,
    as_record,
)
from .lifecycle import SAGA_LIFECYCLE, STEP_LIFECYCLE, LifecycleSpec, SagaState, TimerPurpose
from .messages import MessageKind

__all__ = ["SagaFold", "Steps", "folders", "findings", "READ", "STRAGGLERS"]

Fields = tuple[Any, ...]
"""A record, typed or plain: read by position here."""

Finding = tuple[str, str]
"""(property, detail) of one broken property."""


@attrs.frozen
class _Table:
    """What the transition check needs of one lifecycle, as the plain strings records carry."""

    rows: frozenset[tuple[str, str, str]]
    operator: frozenset[tuple[str, str, str]]
    """The rows only an operator's command takes (declared once an operator asked for it)."""
    initial: str
    final: frozenset[str]

    @classmethod
    def of(cls, spec: LifecycleSpec[Any]) -> _Table:
        return cls(
            rows=frozenset((t.trigger, t.source.value, t.dest.value) for t in spec.transitions),
            operator=frozenset((t.trigger, t.source.value, t.dest.value) for t in spec.operator),
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
_SEND_STEP = SendRecord._fields.index("step")
_SEND_ARITY = len(SendRecord._fields)
_EFFECT_ARITY = len(EffectRecord._fields)
_TRANSITION_ARITY = len(TransitionRecord._fields)
_FINISH_ARITY = len(FinishRecord._fields)
_OPERATOR_ARITY = len(OperatorRecord._fields)
READ = frozenset({"start", "finish", "effect", "transition", "send", "operator"})
"""The record kinds a check reads (the rest of a history is kept only to be shown)."""
_SAGA, _STEP = SAGA_LIFECYCLE.name, STEP_LIFECYCLE.name
STRAGGLERS = frozenset({"send", "deliver", "drop", "duplicate", "delay", "ignored"})
"""Message traffic that may still arrive for a saga already checked and forgotten."""


@attrs.frozen
class Steps:
    """What the checks need of a definition, worked out once per definition, not per saga.

    The lifecycle fields default to the orchestration lifecycles; a choreography's checks
    (:func:`sagafsm.choreography.checking.choreography_steps`) put each role's own table there
    and switch on the two choreography extensions (see :attr:`choreography`).
    """

    names: tuple[str, ...]
    index: dict[str, int]
    read_only: frozenset[str]
    pivot: str | None
    saga_table: _Table = attrs.field(factory=lambda: _SAGA_TABLE)
    """The lifecycle of ``step=None`` transition records (the saga's, or the initiator's)."""
    step_tables: tuple[_Table, ...] | None = None
    """Each step's own lifecycle by index (None: every step follows the step lifecycle)."""
    lifecycle_names: tuple[str, ...] | None = None
    """The lifecycle name of ``step=None`` moves, then of each step's (transition coverage)."""
    sent_by: tuple[str, str] = ("executing", "compensating")  # the step lifecycle's _SENT_BY
    """The state an action's effect needs its step to have entered, then a compensation's."""
    choreography: bool = False
    """Two choreography extensions: termination also asks every role that started to have
    finished (quiescence), and ``effect-before-event`` asks each effect to be recorded before
    its role announced it (:attr:`announced`)."""
    announced: tuple[frozenset[str], frozenset[str]] = (frozenset(), frozenset())
    """Choreography: the role states in which a step's action, then its compensation, was
    already announced by an event (an effect recorded in one came after the event)."""
    undo_before: frozenset[tuple[str, str]] | None = None
    """(first, then) step pairs the table orders: ``then``'s compensation runs only after
    ``first``'s. None: the reverse step order, as orchestration implies."""

    @classmethod
    def of(cls, definition: SagaDefinition) -> Steps:
        pivot = definition.pivot
        return cls(
            names=definition.step_names,
            index={name: i for i, name in enumerate(definition.step_names)},
            read_only=frozenset(s.name for s in definition.steps if s.kind is StepKind.READ_ONLY),
            pivot=None if pivot is None else pivot.name,
        )

    def new_fold(self) -> SagaFold:
        """An empty fold for one saga of this definition."""
        if self.step_tables is None:
            initial = [_STEP_TABLE.initial] * len(self.names)
        else:
            initial = [table.initial for table in self.step_tables]
        return SagaFold(initial, self.saga_table.initial)

    def step_table(self, at: int) -> _Table:
        return _STEP_TABLE if self.step_tables is None else self.step_tables[at]


_SENT_BY = {
    purpose is TimerPurpose.ACTION_TIMEOUT: state.value
    for state, purpose in STEP_LIFECYCLE.waiting.items()
    if purpose in (TimerPurpose.ACTION_TIMEOUT, TimerPurpose.COMPENSATION_TIMEOUT)
}
"""The state whose move sends a command (it waits for the reply): an action's (key True) or a
compensation's (False), read from the step lifecycle."""
_BIT = {_SENT_BY[True]: 0, _SENT_BY[False]: 1}
"""The bit of each sending state in :attr:`SagaFold.entered` (above the step's 2i)."""
_FORWARD = frozenset({_E.ACTION, _E.ACTION_FAILED, _E.ACTION_BLOCKED})


class SagaFold:
    """One saga's history, and what the checks need of it, folded as its records arrive.

    Only the record kinds a check reads are folded (start, finish, effect, transition, the sends
    of compensations); the rest of the history (message and timer traffic, most of it) is only
    kept, for the lines of a violation. Rarely needed containers stay None until needed.
    """

    __slots__ = (
        "counts",
        "early",
        "entered",
        "entered_elsewhere",
        "finishes",
        "granted",
        "history",
        "late",
        "moves_found",
        "other_states",
        "read_only_ledger",
        "read_only_sends",
        "refused",
        "retries",
        "saga_state",
        "starts",
        "step_states",
        "undone",
    )

    def __init__(self, step_states: list[str], saga_state: str) -> None:
        self.history: list[Any] | bytearray = []
        """Every record of the saga, in order: the records, or their encodings as bytes (see
        :meth:`sagafsm.checks.StreamingChecker.observe_block`)."""
        self.starts = 0
        self.finishes: list[str] = []
        self.retries = 0
        """Operators' retries: each reopens the finish before it."""
        self.granted = 0
        """Moves along operator rows that the last operator's retry allows (saga and step)."""
        self.counts: dict[tuple[str, str], int] = {}
        """(step, effect) -> times the participants' ledgers show it."""
        self.undone: dict[str, None] = {}
        """Steps whose compensation ran, in the order it first ran (an ordered set)."""
        self.late: set[str] | None = None
        """Steps whose action took effect after their compensation ran."""
        self.refused: dict[str, int] | None = None
        self.read_only_sends: dict[str, int] | None = None
        self.read_only_ledger: dict[str, list[str]] | None = None
        # A held saga's fold is kept for its whole retention, so it is kept small: the flags and
        # states of the definition's own steps by step index, any other step's in a dict.
        self.entered = 0
        """Bit 2i (executing) and 2i+1 (compensating) set once a committed move of step i entered
        that state: the moves that send a step's commands."""
        self.entered_elsewhere: set[tuple[str, str]] | None = None
        """The same, as (step, state), for steps the definition does not have."""
        self.early: list[tuple[str, str, str]] | None = None
        """(participant, effect, step) of effects recorded before the move that sends them."""
        self.saga_state = saga_state
        self.step_states = step_states
        """Each step's state by index, as the transitions say (a copy of the initial states)."""
        self.other_states: dict[str, str] | None = None
        self.moves_found: list[Finding] | None = None


Folder = Callable[[SagaFold, Fields], None]


def folders(steps: Steps, moves: set[tuple[str, str, str, str]]) -> dict[str, Folder]:
    """The fold of each record kind a check reads, for one definition. ``moves`` collects every
    committed transition seen, as ``(lifecycle, source, trigger, dest)`` (transition coverage)."""
    read_only, index = steps.read_only, steps.index
    add_move = moves.add
    pairs: dict[tuple[str, str], tuple[str, str]] = {}
    saga_table = steps.saga_table
    step_initial = _STEP_TABLE.initial
    tables = [steps.step_table(at) for at in range(len(steps.names))]
    names = steps.lifecycle_names or (_SAGA, *[_STEP] * len(steps.names))
    sent_action, sent_compensation = steps.sent_by
    bit = {sent_action: 0, sent_compensation: 1}
    announced = steps.announced if steps.choreography else None

    def start(fold: SagaFold, record: Fields) -> None:
        fold.starts += 1

    def finish(fold: SagaFold, record: Fields) -> None:
        if len(record) != _FINISH_ARITY:
            as_record(record)  # raises, saying what the kind needs
        fold.finishes.append(record[3])

    def effect(fold: SagaFold, record: Fields) -> None:
        if len(record) != _EFFECT_ARITY:
            as_record(record)
        _, _, _, participant, step, what = record
        counts = fold.counts
        # One key tuple per (step, effect) for every saga: each held saga's dict shares them.
        pair = (step, what)
        pair = pairs.setdefault(pair, pair)
        counts[pair] = counts.get(pair, 0) + 1
        # Record order, not timestamps: several records often share an instant.
        if what in _UNDONE:
            fold.undone.setdefault(step)
        elif what == _E.ACTION and step in fold.undone:
            if fold.late is None:
                fold.late = set()
            fold.late.add(step)
        if what == _E.COMPENSATION_REFUSED:
            if fold.refused is None:
                fold.refused = {}
            fold.refused[step] = fold.refused.get(step, 0) + 1
        if step in read_only and what in _TRIED:
            if fold.read_only_ledger is None:
                fold.read_only_ledger = {}
            fold.read_only_ledger.setdefault(step, []).append(what)
        needed = sent_action if what in _FORWARD else sent_compensation
        at = index.get(step)
        if announced is not None and at is not None and what != _E.ACTION_BLOCKED:
            # a late action stopped by its tombstone has nothing to announce
            state = fold.step_states[at]
            if state in announced[0 if what in _FORWARD else 1]:
                _announced_first(fold, participant, step, what, state)
        if at is not None:
            entered = fold.entered >> (2 * at + bit[needed]) & 1
        else:
            entered = (step, needed) in (fold.entered_elsewhere or ())
        if not entered:
            if fold.early is None:
                fold.early = []
            fold.early.append((participant, what, step))

    def operator(fold: SagaFold, record: Fields) -> None:
        if len(record) != _OPERATOR_ARITY:
            as_record(record)
        if record[3] == RETRY_ACTION:
            fold.retries += 1
            fold.granted = 2  # the saga's move, then its failed step's

    def transition(fold: SagaFold, record: Fields) -> None:
        if len(record) != _TRANSITION_ARITY:
            as_record(record)
        _, _, _, step, trigger, source, dest = record
        at = None if step is None else index.get(step)
        # a step of the definition has its own table; the saga, or another step, the default
        table = tables[at] if at is not None else saga_table if step is None else _STEP_TABLE
        if (trigger, source, dest) in table.operator and fold.granted:
            fold.granted -= 1
            rows = table.operator
        else:
            fold.granted = 0
            rows = table.rows
        if step is None:
            now = fold.saga_state
            add_move((names[0], source, trigger, dest))
            fold.saga_state = dest
        elif at is not None:
            add_move((names[at + 1], source, trigger, dest))
            now = fold.step_states[at]
            fold.step_states[at] = dest
            if dest in bit:
                fold.entered |= 1 << (2 * at + bit[dest])
        else:
            add_move((_STEP, source, trigger, dest))
            others = fold.other_states = fold.other_states or {}
            now = others.get(step, step_initial)
            others[step] = dest
            if dest in _BIT:
                elsewhere = fold.entered_elsewhere = fold.entered_elsewhere or set()
                elsewhere.add((step, dest))
        if source != now or (trigger, source, dest) not in rows:
            _bad_move(fold, step, trigger, source, dest, now, rows, table)

    def send(fold: SagaFold, record: Fields) -> None:
        if record[_SEND_TYPE] != _COMPENSATE:
            return
        if len(record) != _SEND_ARITY:
            as_record(record)
        step = record[_SEND_STEP]
        if step in read_only:
            if fold.read_only_sends is None:
                fold.read_only_sends = {}
            fold.read_only_sends[step] = fold.read_only_sends.get(step, 0) + 1

    return {
        "start": start,
        "finish": finish,
        "effect": effect,
        "transition": transition,
        "send": send,
        "operator": operator,
    }


def _announced_first(fold: SagaFold, participant: str, step: str, what: str, state: str) -> None:
    """effect-before-event: a participant records its effect, then emits the event saying so."""
    if fold.moves_found is None:
        fold.moves_found = []
    fold.moves_found.append(
        (
            "effect-before-event",
            f"participant {participant!r} recorded {what} for step {step!r} after its "
            f"role had announced it (the role was already {state!r})",
        )
    )


def _bad_move(
    fold: SagaFold,
    step: str | None,
    trigger: str,
    source: str,
    dest: str,
    now: str,
    rows: frozenset[tuple[str, str, str]],
    table: _Table,
) -> None:
    """Record why a committed move breaks declared-transitions (it may break it twice), by
    ``table``, the lifecycle the move belongs to (``rows``: the rows it was judged by)."""
    where = "the saga" if step is None else f"step {step!r}"
    if fold.moves_found is None:
        fold.moves_found = []
    if source != now:
        final = " (a final state)" if now in table.final else ""
        fold.moves_found.append(
            (
                "declared-transitions",
                f"{where} moved from {source!r} while it was in {now!r}{final}",
            )
        )
    if (trigger, source, dest) in table.operator and rows is not table.operator:
        fold.moves_found.append(
            (
                "declared-transitions",
                f"{where} took the operator's transition {trigger!r}: {source} -> {dest}, "
                "with no operator's retry before it",
            )
        )
    elif (trigger, source, dest) not in rows:
        fold.moves_found.append(
            (
                "declared-transitions",
                f"{where} took the undeclared transition {trigger!r}: {source} -> {dest}",
            )
        )


def findings(fold: SagaFold, steps: Steps) -> list[Finding]:
    """Every broken per-saga property, from a saga's finished fold, in a fixed order."""
    found: list[Finding] = []
    finishes = fold.finishes
    if fold.starts != 1:
        found.append(("single-run", f"the saga was started {fold.starts} times"))
    if len(finishes) > 1 + fold.retries:
        retried = f" ({fold.retries} retried by an operator)" if fold.retries else ""
        found.append(
            ("single-run", f"the saga finished {len(finishes)} times{retried}: {finishes}")
        )
    final = finishes[-1] if finishes else None
    if final is None:
        found.append(("termination", "the saga never reached a final state"))
    elif final not in steps.saga_table.final:
        found.append(("termination", f"the saga finished in {final!r}, not a final state"))
    if steps.choreography:
        found += _check_quiescence(fold, steps)
    found += _check_ledger(fold, steps, final)
    for step, times in (fold.refused or {}).items():
        found.append(
            (
                "compensation-input",
                f"the participant of step {step!r} refused its compensation {times} "
                f"time{'s' if times > 1 else ''}: it was handed a result its action never gave",
            )
        )
    found += _check_read_only(fold, steps)
    found += fold.moves_found or ()
    found += _check_outbox_rule(fold.early or ())
    return found


def _check_ledger(fold: SagaFold, steps: Steps, final: str | None) -> Iterator[Finding]:
    counts = fold.counts
    undone, late = fold.undone, fold.late or set()
    order = list(undone)  # steps in the order their compensation first ran
    for step in steps.names:
        for effect in (_E.ACTION, _E.COMPENSATION):
            if (times := counts.get((step, effect), 0)) > 1:
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
        if (times := counts.get((step, _E.ACTION), 0)) != 1:
            yield (
                "completed-exactly-once",
                f"the saga completed but the action of step {step!r} took effect {times} times",
            )
        if step in undone:
            yield "completed-exactly-once", f"the saga completed but step {step!r} was compensated"
    for step in steps.names if final == _FAILED else ():
        if step in steps.read_only:
            continue  # nothing to undo; read-only-untouched judges any compensation it got
        landed = counts.get((step, _E.ACTION), 0)
        times = counts.get((step, _E.COMPENSATION), 0)
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
    if steps.undo_before is None:
        positions = [steps.index[step] for step in order if step in steps.index]
        if positions != sorted(positions, reverse=True):
            yield "reverse-order", f"steps were compensated in the order {order}"
    else:
        at = {step: i for i, step in enumerate(order)}
        broken = [(a, b) for a, b in steps.undo_before if a in at and b in at and at[b] < at[a]]
        if broken:
            first, then = sorted(broken)[0]
            yield (
                "reverse-order",
                f"steps were compensated in the order {order}: the table undoes {then!r} "
                f"only after {first!r}",
            )
    pivot = steps.pivot
    if pivot is not None and counts.get((pivot, _E.ACTION), 0):
        if order:
            yield "pivot-rule", f"the pivot {pivot!r} took effect, yet {order} were compensated"
        if final == _FAILED:
            yield "pivot-rule", f"the pivot {pivot!r} took effect, yet the saga failed"


def _check_quiescence(fold: SagaFold, steps: Steps) -> Iterator[Finding]:
    """Choreography: no orchestrator says a saga is over, so once nothing more can happen to it
    every role that started must stand in a final state (one that never started holds nothing)."""
    for at, step in enumerate(steps.names):
        table, state = steps.step_table(at), fold.step_states[at]
        if state != table.initial and state not in table.final:
            yield (
                "termination",
                f"the role of step {step!r} stopped in {state!r}, not a final state",
            )


def _check_read_only(fold: SagaFold, steps: Steps) -> Iterator[Finding]:
    if not steps.read_only:
        return
    sends, ledger = fold.read_only_sends or {}, fold.read_only_ledger or {}
    for step in steps.names:
        times, seen = sends.get(step, 0), ledger.get(step)
        if times or seen:
            what = f"{times} compensation{'s' if times > 1 else ''} sent" if times else "none sent"
            shown = f", its participant's ledger shows {seen}" if seen else ""
            yield "read-only-untouched", f"read-only step {step!r} was compensated: {what}{shown}"


def _check_outbox_rule(early: Iterable[tuple[str, str, str]]) -> Iterator[Finding]:
    """Effects recorded before the move that sends their command was committed: only a driver
    that publishes before it commits (and a participant acting on that) can produce one, since a
    trace is in commit order. Even when its restarted self makes the same move again and the
    inbox hides the repeat, so that every effect balances, this order shows it."""
    for participant, effect, step in early:
        needed = _SENT_BY[effect in _FORWARD]
        yield (
            "outbox-rule",
            f"participant {participant!r} recorded {effect} for step "
            f"{step!r} before the orchestrator committed the step {needed}",
        )
