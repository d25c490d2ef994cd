"""The saga and step lifecycles, declared as data.

Rules for this module (it is the single source of truth for both lifecycles):

- Every legal move is one row ``(trigger, source, dest)`` of ``SAGA_TRANSITIONS`` or
  ``STEP_TRANSITIONS``. A move that is not a row does not exist: no ``if`` elsewhere may invent one.
- Replies that a real network delivers late, twice, or for a step that is no longer running are
  declared in ``STEP_IGNORED`` with the reason they are dropped. The engine records them and
  changes nothing; anything neither declared nor ignored is an :class:`~sagafsm.IllegalTransition`.
- This module knows nothing of the ``transitions`` library (``_machine`` builds machines from these
  tables), of time, of messages, or of any driver. The engine decides *which* trigger an event
  means; the tables decide whether that trigger may fire.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from typing import NamedTuple

__all__ = [
    "SagaState",
    "StepState",
    "Transition",
    "IgnoredTrigger",
    "SAGA_TRANSITIONS",
    "STEP_TRANSITIONS",
    "STEP_IGNORED",
    "SAGA_TERMINAL",
    "STEP_TERMINAL",
]


class SagaState(enum.Enum):
    """Where a saga is in its life; ``COMPLETED``, ``FAILED``, ``OPERATOR_REQUIRED`` are final."""

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


class Transition(NamedTuple):
    trigger: str
    source: enum.Enum
    dest: enum.Enum


class IgnoredTrigger(NamedTuple):
    trigger: str
    source: enum.Enum
    reason: str


def _rows(trigger: str, sources: Iterable[enum.Enum], dest: enum.Enum) -> list[Transition]:
    return [Transition(trigger, source, dest) for source in sources]


_S = SagaState
SAGA_TRANSITIONS: tuple[Transition, ...] = (
    Transition("begin", _S.STARTED, _S.PENDING),
    Transition("complete", _S.PENDING, _S.COMPLETED),
    Transition("abort", _S.PENDING, _S.COMPENSATING),
    Transition("compensated", _S.COMPENSATING, _S.FAILED),
    *_rows("escalate", (_S.PENDING, _S.COMPENSATING), _S.OPERATOR_REQUIRED),
)
SAGA_TERMINAL = frozenset({_S.COMPLETED, _S.FAILED, _S.OPERATOR_REQUIRED})

_T = StepState
STEP_TRANSITIONS: tuple[Transition, ...] = (
    Transition("send", _T.PENDING, _T.EXECUTING),
    # A reply during the backoff answers the earlier attempt (same idempotency key): it counts.
    *_rows("succeed", (_T.EXECUTING, _T.WAITING_RETRY), _T.SUCCEEDED),
    *_rows("fail", (_T.EXECUTING, _T.WAITING_RETRY), _T.FAILED),
    Transition("back_off", _T.EXECUTING, _T.WAITING_RETRY),
    Transition("retry", _T.WAITING_RETRY, _T.EXECUTING),
    Transition("give_up", _T.EXECUTING, _T.TIMED_OUT),
    *_rows("compensate", (_T.SUCCEEDED, _T.TIMED_OUT), _T.COMPENSATING),
    *_rows("compensated", (_T.COMPENSATING, _T.WAITING_COMPENSATION_RETRY), _T.COMPENSATED),
    Transition("compensation_back_off", _T.COMPENSATING, _T.WAITING_COMPENSATION_RETRY),
    Transition("compensation_retry", _T.WAITING_COMPENSATION_RETRY, _T.COMPENSATING),
    Transition("compensation_give_up", _T.COMPENSATING, _T.COMPENSATION_FAILED),
)
STEP_TERMINAL = frozenset({_T.FAILED, _T.COMPENSATED, _T.COMPENSATION_FAILED})

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


STEP_IGNORED: tuple[IgnoredTrigger, ...] = (
    *_ignore(_ACTION_REPLIES, (_T.PENDING,), "unknown: the action was never sent"),
    *_ignore(_ACTION_SUCCESS, (_T.SUCCEEDED,), "duplicate: the step already succeeded"),
    *_ignore(_ACTION_FAILURE, (_T.SUCCEEDED,), "conflicting: the step already succeeded"),
    *_ignore(_ACTION_FAILURE, (_T.FAILED,), "duplicate: the step already failed"),
    *_ignore(_ACTION_SUCCESS, (_T.FAILED,), "conflicting: the step already failed"),
    *_ignore(("back_off",), (_T.WAITING_RETRY,), "duplicate: a retry is already scheduled"),
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
