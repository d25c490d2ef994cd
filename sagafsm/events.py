"""What the engine is told: participants' replies and fired timers.

Every event names its saga (the correlation id). Time is not part of an event: the driver passes
the current time with it (``handle(event, now=...)``), so the same event value can be replayed.
Every field is checked when the event is built: a bad value raises
:class:`~sagafsm.InvalidArgument` there, not inside the engine.

Timeouts are timers the engine armed itself: the driver reports them as :class:`TimerFired` with the
timer id from :class:`~sagafsm.commands.StartTimer`. :class:`StepTimedOut` and
:class:`CompensationTimedOut` are for drivers that detect timeouts on their own (a request with a
deadline): they act as the running step's timeout timer firing now, and are ignored otherwise.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, TypeAlias

import attrs

from ._validate import check_json_mapping, check_name, plain_json
from .errors import InvalidArgument

__all__ = [
    "StepSucceeded",
    "StepFailed",
    "StepTimedOut",
    "CompensationSucceeded",
    "CompensationFailed",
    "CompensationTimedOut",
    "TimerFired",
    "Event",
    "EVENT_TYPES",
]

NO_RESULT: Mapping[str, Any] = MappingProxyType({})


def _name(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value.__class__ is not str or not value:  # the common case costs one comparison
        check_name(value, f"{type(instance).__name__}.{attribute.name}")


def _optional_name(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is not None:
        _name(instance, attribute, value)


def _text(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if not isinstance(value, str):
        raise InvalidArgument(
            f"{type(instance).__name__}.{attribute.name} must be a string, got {value!r}"
        )


def _json_mapping(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is not NO_RESULT:
        check_json_mapping(value, f"{type(instance).__name__}.{attribute.name}")


def _optional_attempt(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is not None and (value.__class__ is not int or value < 1):
        raise InvalidArgument(
            f"{type(instance).__name__}.{attribute.name} must be a try number >= 1 or None, "
            f"got {value!r}"
        )


@attrs.frozen(kw_only=True)
class StepSucceeded:
    """The participant applied the step's action; ``result`` is what it handed back.

    The result (a JSON-able mapping, empty by default) is kept with the saga: later steps receive
    it in :attr:`ExecuteStep.results`, and the step's compensation in
    :attr:`CompensateStep.action_result`.
    """

    saga_id: str = attrs.field(validator=_name)
    step: str = attrs.field(validator=_name)
    result: Mapping[str, Any] = attrs.field(default=NO_RESULT, validator=_json_mapping)
    idempotency_key: str | None = attrs.field(default=None, validator=_optional_name)
    """The key of the command this answers, if the driver knows it: a reply to an earlier
    generation's key (a retriable step's failed try) is then ignored."""

    def __attrs_post_init__(self) -> None:
        # The event's own plain copy, taken once the result was checked: changing the caller's
        # mapping afterwards cannot slip a non-JSON value (or a cycle) past the check.
        # It is a plain dict either way, which the engine keeps as the step's result as it is.
        result = {} if self.result is NO_RESULT else plain_json(self.result)
        object.__setattr__(self, "result", result)


def checked_success(
    saga_id: str, step: str, result: Mapping[str, Any], idempotency_key: str | None
) -> StepSucceeded:
    """A :class:`StepSucceeded` from fields its driver has checked already: ``result`` a plain
    JSON mapping (the simulated participants check and copy what their service returns), the
    names non-empty strings. Only the copy is taken, not the checks again; internal, for the
    simulator's replies (:func:`sagafsm.orchestration.event_for`)."""
    event = object.__new__(StepSucceeded)
    put = object.__setattr__  # as attrs' own __init__ sets the fields of a frozen instance
    put(event, "saga_id", saga_id)
    put(event, "step", step)
    put(event, "result", plain_json(result))
    put(event, "idempotency_key", idempotency_key)
    return event


@attrs.frozen(kw_only=True)
class StepFailed:
    """Definite failure: the participant did not apply the action and never will.

    ``reason`` is kept: a saga that then fails reports it in :attr:`SagaFinished.reason`."""

    saga_id: str = attrs.field(validator=_name)
    step: str = attrs.field(validator=_name)
    reason: str = attrs.field(default="", validator=_text)
    idempotency_key: str | None = attrs.field(default=None, validator=_optional_name)
    """As for :class:`StepSucceeded`."""


@attrs.frozen(kw_only=True)
class StepTimedOut:
    """The driver gave up waiting for the step's reply."""

    saga_id: str = attrs.field(validator=_name)
    step: str = attrs.field(validator=_name)


@attrs.frozen(kw_only=True)
class CompensationSucceeded:
    """The participant applied the compensation (or found nothing to undo)."""

    saga_id: str = attrs.field(validator=_name)
    step: str = attrs.field(validator=_name)


@attrs.frozen(kw_only=True)
class CompensationFailed:
    """The participant could not apply the compensation this time."""

    saga_id: str = attrs.field(validator=_name)
    step: str = attrs.field(validator=_name)
    reason: str = attrs.field(default="", validator=_text)
    attempt: int | None = attrs.field(default=None, validator=_optional_attempt)
    """The try this answers, if the driver knows it: a failure of an earlier try that arrives
    while a later one is in flight is then ignored (a failed try leaves nothing behind, so tries
    of one compensation may get different answers)."""


@attrs.frozen(kw_only=True)
class CompensationTimedOut:
    """The driver gave up waiting for the compensation's reply."""

    saga_id: str = attrs.field(validator=_name)
    step: str = attrs.field(validator=_name)


@attrs.frozen(kw_only=True)
class TimerFired:
    """A timer the engine armed with :class:`~sagafsm.commands.StartTimer` went off."""

    saga_id: str = attrs.field(validator=_name)
    timer_id: str = attrs.field(validator=_name)


Event: TypeAlias = (
    StepSucceeded
    | StepFailed
    | StepTimedOut
    | CompensationSucceeded
    | CompensationFailed
    | CompensationTimedOut
    | TimerFired
)

EVENT_TYPES: tuple[type, ...] = (
    StepSucceeded,
    StepFailed,
    StepTimedOut,
    CompensationSucceeded,
    CompensationFailed,
    CompensationTimedOut,
    TimerFired,
)
"""Every event class: what :meth:`SagaInstance.handle` accepts."""
