"""What the engine asks its driver to do.

Every command carries the saga id, which is also the correlation id of every message the driver
sends for it. Commands that reach a participant carry an idempotency key: the same key for every
try of one action (so a retry after a timeout cannot apply the action twice) and another for its
compensation. A compensation also carries its action's key, so a participant that never saw the
action can leave a tombstone that turns the late action into a no-op.

Data flows with the commands (the shapes are in each class): an :class:`ExecuteStep` carries the
saga's input data and the results of the steps before it, by step name; a :class:`CompensateStep`
carries the data and its own action's result, or ``None`` when no result ever arrived (the action
timed out: it may or may not have landed, and the participant knows which from the action key);
:class:`SagaFinished` carries every result that arrived.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeAlias

import attrs

from .lifecycle import SagaState, TimerPurpose

__all__ = [
    "TimerPurpose",
    "ExecuteStep",
    "CompensateStep",
    "StartTimer",
    "CancelTimer",
    "SagaFinished",
    "Command",
]


@attrs.frozen(kw_only=True)
class ExecuteStep:
    """Send the step's action to its participant (try number ``attempt``, 1-based).

    ``data`` is the saga's input data, as given when it started. ``results`` maps the name of each
    earlier step whose success reply arrived to the result it carried (read-only steps included),
    in step order: ``{"reserve": {"reservation_id": "r-17"}, "verify": {}}``. Both are the saga's
    own values, shared, not copied: treat them as read-only.
    """

    saga_id: str
    step: str
    participant: str
    action: str
    attempt: int
    idempotency_key: str
    data: Mapping[str, Any]
    results: Mapping[str, Mapping[str, Any]]


@attrs.frozen(kw_only=True)
class CompensateStep:
    """Send the step's compensation to its participant (try number ``attempt``, 1-based).

    ``action_result`` is the result the action's success reply carried, or ``None`` when no reply
    arrived (the action timed out after every try: it may have landed, or may land later). In that
    case the compensation works from ``data`` and ``action_key`` alone; :attr:`action_replied`
    says which case this is.
    """

    saga_id: str
    step: str
    participant: str
    compensation: str
    attempt: int
    idempotency_key: str
    action_key: str
    data: Mapping[str, Any]
    action_result: Mapping[str, Any] | None

    @property
    def action_replied(self) -> bool:
        """Whether the action's success reply arrived (and so ``action_result`` is known)."""
        return self.action_result is not None


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
    """The saga reached a final state.

    ``reason`` is None for a completed saga; for a failed one it names the step that failed and
    why (``"step 'charge' failed: card declined"``); for one that needs an operator, what could
    not be finished. ``results`` maps each step whose success reply arrived to its result.
    """

    saga_id: str
    state: SagaState
    reason: str | None = None
    results: Mapping[str, Mapping[str, Any]] = attrs.field(factory=dict)


Command: TypeAlias = ExecuteStep | CompensateStep | StartTimer | CancelTimer | SagaFinished


def action_key(saga_id: str, step: str, generation: int = 0) -> str:
    """The idempotency key of a step's action. Tries after a timeout reuse it; a retriable step
    that failed definitely is retried under the next generation's key (the failure had no effect,
    and the participant keeps answering "failed" to the old key)."""
    base = f"{saga_id}/{step}/action"
    return base if generation == 0 else f"{base}/{generation}"


def compensation_key(saga_id: str, step: str) -> str:
    return f"{saga_id}/{step}/compensation"
