"""What the engine is told: participants' replies and fired timers.

Every event names its saga (the correlation id). Time is not part of an event: the driver passes
the current time with it (``handle(event, now=...)``), so the same event value can be replayed.

Timeouts are timers the engine armed itself: the driver reports them as :class:`TimerFired` with the
timer id from :class:`~sagafsm.commands.StartTimer`. :class:`StepTimedOut` and
:class:`CompensationTimedOut` are for drivers that detect timeouts on their own (a request with a
deadline): they act as the running step's timeout timer firing now, and are ignored otherwise.
"""

from __future__ import annotations

from typing import TypeAlias

import attrs

__all__ = [
    "StepSucceeded",
    "StepFailed",
    "StepTimedOut",
    "CompensationSucceeded",
    "CompensationFailed",
    "CompensationTimedOut",
    "TimerFired",
    "Event",
]


@attrs.frozen(kw_only=True)
class StepSucceeded:
    """The participant applied the step's action."""

    saga_id: str
    step: str
    idempotency_key: str | None = None
    """The key of the command this answers, if the driver knows it: a reply to an earlier
    generation's key (a retriable step's failed try) is then ignored."""


@attrs.frozen(kw_only=True)
class StepFailed:
    """Definite failure: the participant did not apply the action and never will."""

    saga_id: str
    step: str
    reason: str = ""
    idempotency_key: str | None = None
    """As for :class:`StepSucceeded`."""


@attrs.frozen(kw_only=True)
class StepTimedOut:
    """The driver gave up waiting for the step's reply."""

    saga_id: str
    step: str


@attrs.frozen(kw_only=True)
class CompensationSucceeded:
    """The participant applied the compensation (or found nothing to undo)."""

    saga_id: str
    step: str


@attrs.frozen(kw_only=True)
class CompensationFailed:
    """The participant could not apply the compensation this time."""

    saga_id: str
    step: str
    reason: str = ""
    attempt: int | None = None
    """The try this answers, if the driver knows it: a failure of an earlier try that arrives
    while a later one is in flight is then ignored (a failed try leaves nothing behind, so tries
    of one compensation may get different answers)."""


@attrs.frozen(kw_only=True)
class CompensationTimedOut:
    """The driver gave up waiting for the compensation's reply."""

    saga_id: str
    step: str


@attrs.frozen(kw_only=True)
class TimerFired:
    """A timer the engine armed with :class:`~sagafsm.commands.StartTimer` went off."""

    saga_id: str
    timer_id: str


Event: TypeAlias = (
    StepSucceeded
    | StepFailed
    | StepTimedOut
    | CompensationSucceeded
    | CompensationFailed
    | CompensationTimedOut
    | TimerFired
)
