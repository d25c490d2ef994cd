"""What the engine asks its driver to do.

Every command carries the saga id, which is also the correlation id of every message the driver
sends for it. Commands that reach a participant carry an idempotency key: the same key for every
try of one action (so a retry after a timeout cannot apply the action twice) and another for its
compensation. A compensation also carries its action's key, so a participant that never saw the
action can leave a tombstone that turns the late action into a no-op.
"""

from __future__ import annotations

import enum
from typing import TypeAlias

import attrs

from .lifecycle import SagaState

__all__ = [
    "TimerPurpose",
    "ExecuteStep",
    "CompensateStep",
    "StartTimer",
    "CancelTimer",
    "SagaFinished",
    "Command",
]


class TimerPurpose(enum.Enum):
    ACTION_TIMEOUT = "action_timeout"
    ACTION_BACKOFF = "action_backoff"
    COMPENSATION_TIMEOUT = "compensation_timeout"
    COMPENSATION_BACKOFF = "compensation_backoff"


@attrs.frozen(kw_only=True)
class ExecuteStep:
    """Send the step's action to its participant (try number ``attempt``, 1-based)."""

    saga_id: str
    step: str
    participant: str
    action: str
    attempt: int
    idempotency_key: str


@attrs.frozen(kw_only=True)
class CompensateStep:
    """Send the step's compensation to its participant (try number ``attempt``, 1-based)."""

    saga_id: str
    step: str
    participant: str
    compensation: str
    attempt: int
    idempotency_key: str
    action_key: str


@attrs.frozen(kw_only=True)
class StartTimer:
    """Arm a timer; report it with :class:`~sagafsm.events.TimerFired` after ``delay`` seconds."""

    saga_id: str
    timer_id: str
    delay: float
    purpose: TimerPurpose
    step: str


@attrs.frozen(kw_only=True)
class CancelTimer:
    """The timer is no longer needed. If it fires anyway, the engine ignores it."""

    saga_id: str
    timer_id: str


@attrs.frozen(kw_only=True)
class SagaFinished:
    """The saga reached a final state; ``reason`` says why when it needs an operator."""

    saga_id: str
    state: SagaState
    reason: str | None = None


Command: TypeAlias = ExecuteStep | CompensateStep | StartTimer | CancelTimer | SagaFinished


def action_key(saga_id: str, step: str, generation: int = 0) -> str:
    """The idempotency key of a step's action. Tries after a timeout reuse it; a retriable step
    that failed definitely is retried under the next generation's key (the failure had no effect,
    and the participant keeps answering "failed" to the old key)."""
    base = f"{saga_id}/{step}/action"
    return base if generation == 0 else f"{base}/{generation}"


def compensation_key(saga_id: str, step: str) -> str:
    return f"{saga_id}/{step}/compensation"
