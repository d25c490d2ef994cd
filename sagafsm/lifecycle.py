"""The saga and step lifecycles, declared as data: one :class:`LifecycleSpec` value each.

Rules for this module (it is the single source of truth for both lifecycles):

- Each lifecycle is one value, :data:`SAGA_LIFECYCLE` or :data:`STEP_LIFECYCLE`: its states,
  initial state, final states, transition rows, ignored replies, and the roles some states play
  (a step whose effect may have landed; a step waiting on a timer, and which). The
  ``transitions`` adapter, the engine, the checkers, the diagrams, the docs and the benchmark
  baseline all read them from here.
- Every legal move is one row ``(trigger, source, dest)``. A move that is not a row does not
  exist: no ``if`` elsewhere may invent one. The engine asks a spec which trigger leads where
  (:meth:`LifecycleSpec.trigger_into`) instead of branching on states.
- Replies that a real network delivers late, twice, or for a step that is no longer running are
  declared in ``ignored`` with the reason they are dropped. The engine records them and changes
  nothing; anything neither declared nor ignored is an :class:`~sagafsm.IllegalTransition`.
- A final state can be *parked*: the engine's own moves never leave it, but an operator's
  command may, by one of the rows in ``operator`` (an ``operator_required`` saga whose
  compensation gave up is sent back to compensating when a person asks for a retry). Those rows
  are declared like any other, and the checkers accept them only after an operator's record.
- This module knows nothing of the ``transitions`` library (``_machine`` builds machines from these
  specs), of time, of messages, or of any driver. The engine decides *which* trigger an event
  means; the specs decide whether that trigger may fire.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from typing import Any, Generic, NamedTuple, TypeVar

import attrs

__all__ = [
    "SagaState",
    "StepState",
    "TimerPurpose",
    "Transition",
    "IgnoredTrigger",
    "LifecycleSpec",
    "SAGA_LIFECYCLE",
    "STEP_LIFECYCLE",
    "LIFECYCLES",
    "OPERATOR_RETRY",
]


class SagaState(enum.Enum):
    """Where a saga is in its life; ``COMPLETED``, ``FAILED``, ``OPERATOR_REQUIRED`` are final."""

    # Members are singletons compared by identity, so they hash by identity too: ``Enum``'s own
    # ``__hash__`` is a Python function (hash of the name), and the engine's table look-ups hash
    # a member about 30 times a saga. Neither hash is the same from one process to the next
    # (strings' are salted), so no iteration order changes in kind.
    __hash__ = object.__hash__

    STARTED = "started"
    """Created and saved; no command sent yet."""
    PENDING = "pending"
    """Running its forward steps, one at a time."""
    COMPENSATING = "compensating"
    """A step failed: undoing, in reverse order, each earlier step that landed or may have."""
    COMPLETED = "completed"
    """Every step's action succeeded."""
    FAILED = "failed"
    """Failed, and every landed effect was compensated: the world is back where it started."""
    OPERATOR_REQUIRED = "operator_required"
    """Could not finish on its own (a compensation kept failing, the pivot's outcome is unknown,
    a retriable step kept failing): a person must act. The saga keeps the reason."""


class StepState(enum.Enum):
    """Where one step of one saga is in its life."""

    # Members are singletons compared by identity, so they hash by identity too: ``Enum``'s own
    # ``__hash__`` is a Python function (hash of the name), and the engine's table look-ups hash
    # a member about 30 times a saga. Neither hash is the same from one process to the next
    # (strings' are salted), so no iteration order changes in kind.
    __hash__ = object.__hash__

    PENDING = "pending"
    """Not sent yet (and never sent, if the saga stopped before reaching it)."""
    EXECUTING = "executing"
    """Action sent; waiting for its reply or its timeout."""
    WAITING_RETRY = "waiting_retry"
    """The action timed out (or a retriable step failed); waiting out the backoff."""
    SUCCEEDED = "succeeded"
    """The action's effect landed."""
    FAILED = "failed"
    """Definite failure: the action had no effect, so it is never compensated."""
    TIMED_OUT = "timed_out"
    """No reply after every retry: the effect may have landed, so it is compensated too."""
    COMPENSATING = "compensating"
    """Compensation sent; waiting for its reply or its timeout."""
    WAITING_COMPENSATION_RETRY = "waiting_compensation_retry"
    """The compensation failed or timed out; waiting out the backoff before resending."""
    COMPENSATED = "compensated"
    """The compensation was applied (or was a no-op because the action never landed)."""
    COMPENSATION_FAILED = "compensation_failed"
    """The compensation's retries ran out: the saga needs an operator."""


class TimerPurpose(enum.Enum):
    """What a saga's one armed timer waits for (each belongs to one waiting step state)."""

    # Members are singletons compared by identity, so they hash by identity too: ``Enum``'s own
    # ``__hash__`` is a Python function (hash of the name), and the engine's table look-ups hash
    # a member about 30 times a saga. Neither hash is the same from one process to the next
    # (strings' are salted), so no iteration order changes in kind.
    __hash__ = object.__hash__

    ACTION_TIMEOUT = "action_timeout"
    ACTION_BACKOFF = "action_backoff"
    COMPENSATION_TIMEOUT = "compensation_timeout"
    COMPENSATION_BACKOFF = "compensation_backoff"


class Transition(NamedTuple):
    trigger: str
    source: enum.Enum
    dest: enum.Enum


class IgnoredTrigger(NamedTuple):
    trigger: str
    source: enum.Enum
    reason: str


def _frozen_rows(rows: Iterable[Transition]) -> tuple[Transition, ...]:
    return tuple(rows)


def _frozen_ignored(rows: Iterable[IgnoredTrigger]) -> tuple[IgnoredTrigger, ...]:
    return tuple(rows)


S = TypeVar("S", bound=enum.Enum)


@attrs.frozen(kw_only=True)
class LifecycleSpec(Generic[S]):
    """One lifecycle, as data: everything any other module may know about it.

    Built once, at import; the checks in ``__attrs_post_init__`` catch a table bug then (a row,
    an ignored reply or a role naming a state of another lifecycle, an ignored trigger the rows
    do not have, a row that is also ignored, a final state with a way out or a timer to wait on,
    an operator's row that does not leave a final state for a running one):
    a ``ValueError`` naming the lifecycle.
    """

    name: str
    states: type[S]
    initial: S
    terminal: frozenset[S]
    transitions: tuple[Transition, ...] = attrs.field(converter=_frozen_rows)
    ignored: tuple[IgnoredTrigger, ...] = attrs.field(converter=_frozen_ignored, default=())
    landed: frozenset[S] = frozenset()
    """States in which the effect of an action has landed, or may have, and is not undone yet:
    when the saga aborts, a compensatable step in one of them is compensated."""
    waiting: Mapping[S, TimerPurpose] = attrs.field(factory=dict)
    """The states in which a step is active (waiting for a reply or a backoff), each with the
    purpose of the timer that must be armed meanwhile. At most one step of a saga is in one."""
    operator: tuple[Transition, ...] = attrs.field(converter=_frozen_rows, default=())
    """Rows only an operator's command takes, each from a final (parked) state back to a running
    one; the engine's own moves never take them, and ``allows``/``trigger_into`` ignore them."""
    _into: Mapping[tuple[enum.Enum, enum.Enum], str] = attrs.field(init=False, repr=False)
    _rows: frozenset[tuple[str, enum.Enum]] = attrs.field(init=False, repr=False)
    _reasons: Mapping[tuple[str, enum.Enum], str] = attrs.field(init=False, repr=False)

    def __attrs_post_init__(self) -> None:
        members = set(self.states)
        for row in self.transitions:
            if row.source not in members or row.dest not in members:
                raise ValueError(f"{self.name}: row {row} names a state of another lifecycle")
            if row.source in self.terminal:
                raise ValueError(f"{self.name}: row {row} leaves a final state")
        triggers = {row.trigger for row in self.transitions}
        for row in self.operator:
            if row.source not in members or row.dest not in members:
                raise ValueError(
                    f"{self.name}: operator row {row} names a state of another lifecycle"
                )
            if row.source not in self.terminal or row.dest in self.terminal:
                raise ValueError(
                    f"{self.name}: operator row {row} does not lead from a final state to a "
                    "running one"
                )
            if row.trigger in triggers:
                raise ValueError(f"{self.name}: operator row {row} reuses an engine trigger")
        for entry in self.ignored:
            if entry.source not in members or entry.trigger not in triggers:
                raise ValueError(
                    f"{self.name}: ignored {entry[:2]} names a state or trigger it does not have"
                )
        roles = {"initial": {self.initial}, "terminal": self.terminal, "landed": self.landed}
        for role, states in {**roles, "waiting": set(self.waiting)}.items():
            foreign = [s for s in states if s not in members]
            if foreign:
                raise ValueError(f"{self.name}: {role} names a foreign state {foreign[0]!r}")
        if self.terminal & set(self.waiting):
            raise ValueError(f"{self.name}: a final state waits on a timer")
        into: dict[tuple[enum.Enum, enum.Enum], str] = {}
        for row in self.transitions:
            into.setdefault((row.source, row.dest), row.trigger)
        rows = frozenset((t.trigger, t.source) for t in self.transitions)
        reasons = {(i.trigger, i.source): i.reason for i in self.ignored}
        overlap = rows & reasons.keys()
        if overlap:
            raise ValueError(f"{self.name}: both declared and ignored: {sorted(map(str, overlap))}")
        object.__setattr__(self, "_into", into)
        object.__setattr__(self, "_rows", rows)
        object.__setattr__(self, "_reasons", reasons)

    @property
    def rows(self) -> tuple[Transition, ...]:
        """Every declared row: the engine's, then the operator's."""
        return self.transitions + self.operator

    @property
    def triggers(self) -> tuple[str, ...]:
        """Every trigger, in the order of first appearance in the table (operator's rows last)."""
        return tuple(dict.fromkeys(t.trigger for t in self.rows))

    def allows(self, trigger: str, state: enum.Enum) -> bool:
        return (trigger, state) in self._rows

    def allows_operator(self, trigger: str, state: enum.Enum) -> bool:
        """Whether an operator's command may fire ``trigger`` in ``state`` (an operator row)."""
        return any(row.trigger == trigger and row.source is state for row in self.operator)

    def ignored_reason(self, trigger: str, state: enum.Enum) -> str | None:
        """Why ``trigger`` is dropped in ``state``, if the table declares it dropped."""
        return self._reasons.get((trigger, state))

    def trigger_into(self, source: enum.Enum, dest: enum.Enum) -> str | None:
        """The trigger of the row from ``source`` to ``dest`` (None if there is none)."""
        return self._into.get((source, dest))

    def reachable(self, source: S) -> frozenset[S]:
        """Every state reachable from ``source`` along the rows, ``source`` included."""
        seen: set[S] = {source}
        frontier = [source]
        while frontier:
            state = frontier.pop()
            for row in self.transitions:
                dest: S = row.dest  # type: ignore[assignment]  # rows stay in their lifecycle
                if row.source is state and dest not in seen:
                    seen.add(dest)
                    frontier.append(dest)
        return frozenset(seen)


def _rows(trigger: str, sources: Iterable[enum.Enum], dest: enum.Enum) -> list[Transition]:
    return [Transition(trigger, source, dest) for source in sources]


_S = SagaState
_SAGA_ROWS = (
    Transition("begin", _S.STARTED, _S.PENDING),
    Transition("complete", _S.PENDING, _S.COMPLETED),
    Transition("abort", _S.PENDING, _S.COMPENSATING),
    Transition("compensated", _S.COMPENSATING, _S.FAILED),
    *_rows("escalate", (_S.PENDING, _S.COMPENSATING), _S.OPERATOR_REQUIRED),
)
OPERATOR_RETRY = "operator_retry"
"""The trigger of an operator's retry of a compensation that gave up (saga and step alike)."""
_SAGA_OPERATOR_ROWS = (Transition(OPERATOR_RETRY, _S.OPERATOR_REQUIRED, _S.COMPENSATING),)

_T = StepState
_STEP_ROWS = (
    Transition("send", _T.PENDING, _T.EXECUTING),
    # A reply during the backoff answers the earlier attempt (same idempotency key): it counts.
    *_rows("succeed", (_T.EXECUTING, _T.WAITING_RETRY), _T.SUCCEEDED),
    *_rows("fail", (_T.EXECUTING, _T.WAITING_RETRY), _T.FAILED),
    Transition("back_off", _T.EXECUTING, _T.WAITING_RETRY),
    # A retriable step's try that timed out then fails definitely: its key is spent, and the
    # retry already scheduled goes out under a fresh one.
    Transition("back_off", _T.WAITING_RETRY, _T.WAITING_RETRY),
    Transition("retry", _T.WAITING_RETRY, _T.EXECUTING),
    Transition("give_up", _T.EXECUTING, _T.TIMED_OUT),
    *_rows("compensate", (_T.SUCCEEDED, _T.TIMED_OUT), _T.COMPENSATING),
    *_rows("compensated", (_T.COMPENSATING, _T.WAITING_COMPENSATION_RETRY), _T.COMPENSATED),
    Transition("compensation_back_off", _T.COMPENSATING, _T.WAITING_COMPENSATION_RETRY),
    Transition("compensation_retry", _T.WAITING_COMPENSATION_RETRY, _T.COMPENSATING),
    Transition("compensation_give_up", _T.COMPENSATING, _T.COMPENSATION_FAILED),
)
_STEP_OPERATOR_ROWS = (Transition(OPERATOR_RETRY, _T.COMPENSATION_FAILED, _T.COMPENSATING),)

# Triggers a participant's reply can ask for. The engine picks one by the step's kind and the tries
# left (a failure backs off while tries remain); whichever it picks, a reply that reaches a step
# in one of the states below is dropped, for the reason given.
_ACTION_SUCCESS = ("succeed",)
_ACTION_FAILURE = ("fail", "back_off")
_ACTION_REPLIES = _ACTION_SUCCESS + _ACTION_FAILURE
_COMPENSATION_SUCCESS = ("compensated",)
_COMPENSATION_FAILURE = ("compensation_back_off", "compensation_give_up")
_COMPENSATION_REPLIES = _COMPENSATION_SUCCESS + _COMPENSATION_FAILURE


def _ignore(
    triggers: Iterable[str], sources: Iterable[enum.Enum], reason: str
) -> list[IgnoredTrigger]:
    return [IgnoredTrigger(t, s, reason) for t in triggers for s in sources]


_STEP_IGNORED = (
    *_ignore(_ACTION_REPLIES, (_T.PENDING,), "unknown: the action was never sent"),
    *_ignore(_ACTION_SUCCESS, (_T.SUCCEEDED,), "duplicate: the step already succeeded"),
    *_ignore(_ACTION_FAILURE, (_T.SUCCEEDED,), "conflicting: the step already succeeded"),
    *_ignore(_ACTION_FAILURE, (_T.FAILED,), "duplicate: the step already failed"),
    *_ignore(_ACTION_SUCCESS, (_T.FAILED,), "conflicting: the step already failed"),
    *_ignore(
        _ACTION_REPLIES,
        (
            _T.TIMED_OUT,
            _T.COMPENSATING,
            _T.WAITING_COMPENSATION_RETRY,
            _T.COMPENSATED,
            _T.COMPENSATION_FAILED,
        ),
        "late: the step was given up or compensated; the participant's tombstone absorbs it",
    ),
    *_ignore(
        _COMPENSATION_REPLIES,
        (_T.PENDING, _T.EXECUTING, _T.WAITING_RETRY, _T.SUCCEEDED, _T.FAILED, _T.TIMED_OUT),
        "unknown: no compensation was sent for this step",
    ),
    *_ignore(
        _COMPENSATION_SUCCESS, (_T.COMPENSATED,), "duplicate: the step was already compensated"
    ),
    *_ignore(
        _COMPENSATION_FAILURE,
        (_T.WAITING_COMPENSATION_RETRY,),
        "duplicate: a compensation retry is already scheduled",
    ),
    *_ignore(_COMPENSATION_FAILURE, (_T.COMPENSATED,), "late: the compensation already succeeded"),
    *_ignore(
        _COMPENSATION_REPLIES,
        (_T.COMPENSATION_FAILED,),
        "late: the compensation was given up and handed to an operator",
    ),
)


SAGA_LIFECYCLE: LifecycleSpec[SagaState] = LifecycleSpec(
    name="saga",
    states=SagaState,
    initial=_S.STARTED,
    terminal=frozenset({_S.COMPLETED, _S.FAILED, _S.OPERATOR_REQUIRED}),
    transitions=_SAGA_ROWS,
    operator=_SAGA_OPERATOR_ROWS,
)
"""The saga lifecycle."""

STEP_LIFECYCLE: LifecycleSpec[StepState] = LifecycleSpec(
    name="step",
    states=StepState,
    initial=_T.PENDING,
    terminal=frozenset({_T.FAILED, _T.COMPENSATED, _T.COMPENSATION_FAILED}),
    transitions=_STEP_ROWS,
    operator=_STEP_OPERATOR_ROWS,
    ignored=_STEP_IGNORED,
    landed=frozenset({_T.SUCCEEDED, _T.TIMED_OUT}),
    waiting={
        _T.EXECUTING: TimerPurpose.ACTION_TIMEOUT,
        _T.WAITING_RETRY: TimerPurpose.ACTION_BACKOFF,
        _T.COMPENSATING: TimerPurpose.COMPENSATION_TIMEOUT,
        _T.WAITING_COMPENSATION_RETRY: TimerPurpose.COMPENSATION_BACKOFF,
    },
)
"""The lifecycle of one step of one saga."""

LIFECYCLES: Mapping[str, LifecycleSpec[Any]] = {
    spec.name: spec for spec in (SAGA_LIFECYCLE, STEP_LIFECYCLE)
}
