"""A participant's business logic: async handlers registered by action and compensation name.

::

    inventory = Participant("inventory")

    @inventory.action("reserve")
    async def reserve(call: ActionCall) -> Mapping[str, Any] | None: ...

    @inventory.compensation("release")
    async def release(call: CompensationCall) -> None: ...

A handler sees only what its command carries, as read-only copies, and the participant's
transaction (``call.db``): what it writes there commits with the inbox entry that remembers the
command, or rolls back with it. Everything around the handler (the inbox rules, the ledger, the
reply) is the :class:`~sagafsm.runtime.host.ParticipantHost`'s, so a handler holds business logic
only. The outcome is told by how the handler returns:

- an action returns a mapping of JSON data: success, and that is the step's result;
- it raises :class:`Refused` (or returns None): a definite failure, the saga compensates;
- it raises anything else, or hangs: nothing is kept and nobody answers, so the orchestrator's
  timeout retries it by the step's policy;
- a compensation returns: done; it raises: this try failed (nothing kept), the engine retries.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Iterable, Mapping
from types import MappingProxyType
from typing import Any, TypeVar

import attrs

from .._validate import check_name, plain_json
from ..definition import SagaDefinition
from ..errors import InvalidArgument, InvalidConfig
from ..messages import Envelope
from .store import ParticipantTx

__all__ = [
    "Participant",
    "Refused",
    "ActionCall",
    "CompensationCall",
    "ActionHandler",
    "CompensationHandler",
    "check_handlers",
]


class Refused(Exception):
    """Raised by a handler: a definite failure, with the reason the failure reply gives.

    From an action: the step failed (the saga compensates what came before), ledger
    ``action_failed``. From a compensation: this try failed, ledger ``compensation_failed``.
    Not a :class:`~sagafsm.errors.SagaError`: it is the user's code speaking, not sagafsm's.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = str(reason)


def read_only(mapping: Mapping[str, Any]) -> Mapping[str, Any]:
    """A read-only deep copy: the handler cannot change the saga's data through it."""
    return MappingProxyType(plain_json(mapping))


@attrs.frozen(kw_only=True)
class ActionCall:
    """What an action handler is handed: the command's fields, and the transaction ``db``."""

    saga_id: str
    step: str
    action: str
    attempt: int
    idempotency_key: str
    data: Mapping[str, Any]
    """The saga's input data (read-only)."""
    results: Mapping[str, Mapping[str, Any]]
    """Earlier steps' results, by step name (read-only)."""
    db: ParticipantTx


@attrs.frozen(kw_only=True)
class CompensationCall:
    """What a compensation handler is handed. ``action_result`` is the result this participant
    itself handed out for the action under ``action_key`` (the one to undo), read-only."""

    saga_id: str
    step: str
    compensation: str
    attempt: int
    idempotency_key: str
    data: Mapping[str, Any]
    action_key: str
    action_result: Mapping[str, Any]
    db: ParticipantTx


def action_call(message: Envelope, db: ParticipantTx) -> ActionCall:
    """What an execute command hands its handler."""
    return ActionCall(
        saga_id=message.saga_id,
        step=message.step,
        action=message.operation,
        attempt=message.attempt,
        idempotency_key=message.idempotency_key,
        data=read_only(message.data),
        results=MappingProxyType({step: read_only(r) for step, r in message.results.items()}),
        db=db,
    )


def compensation_call(
    message: Envelope, action_key: str, action_result: Mapping[str, Any], db: ParticipantTx
) -> CompensationCall:
    """What a compensate command hands its handler, with the result this participant kept."""
    return CompensationCall(
        saga_id=message.saga_id,
        step=message.step,
        compensation=message.operation,
        attempt=message.attempt,
        idempotency_key=message.idempotency_key,
        data=read_only(message.data),
        action_key=action_key,
        action_result=read_only(action_result),
        db=db,
    )


ActionHandler = Callable[[ActionCall], Awaitable[Mapping[str, Any] | None]]
CompensationHandler = Callable[[CompensationCall], Awaitable[None]]
_H = TypeVar("_H", bound=Callable[..., Awaitable[Any]])


class Participant:
    """A named registry of action and compensation handlers (coroutine functions)."""

    def __init__(self, name: str) -> None:
        self.name = check_name(name, "a participant's name")
        self._actions: dict[str, ActionHandler] = {}
        self._compensations: dict[str, CompensationHandler] = {}

    @property
    def actions(self) -> Mapping[str, ActionHandler]:
        return MappingProxyType(self._actions)

    @property
    def compensations(self) -> Mapping[str, CompensationHandler]:
        return MappingProxyType(self._compensations)

    def action(self, name: str) -> Callable[[_H], _H]:
        """Register the decorated coroutine function as the handler of action ``name``."""
        return self._register(self._actions, "action", name)

    def compensation(self, name: str) -> Callable[[_H], _H]:
        """Register the decorated coroutine function as the handler of compensation ``name``."""
        return self._register(self._compensations, "compensation", name)

    def _register(self, table: dict[str, Any], what: str, name: str) -> Callable[[_H], _H]:
        check_name(name, f"participant {self.name!r}: the {what}'s name")

        def register(handler: _H) -> _H:
            is_async: bool = inspect.iscoroutinefunction(handler)  # (no narrowing of handler)
            if not is_async:
                raise InvalidArgument(
                    f"participant {self.name!r} {what} {name!r}: the handler must be an async "
                    f"function (async def), got {handler!r}"
                )
            if name in table:
                raise InvalidArgument(
                    f"participant {self.name!r} already has a handler for {what} {name!r}"
                )
            table[name] = handler
            return handler

        return register

    def __repr__(self) -> str:
        return (
            f"Participant({self.name!r}, actions={sorted(self._actions)}, "
            f"compensations={sorted(self._compensations)})"
        )


def check_handlers(
    definitions: Iterable[SagaDefinition], participants: Iterable[Participant]
) -> None:
    """Every step's participant is there with a handler for its action and (if the step has one)
    its compensation; raises :class:`~sagafsm.errors.InvalidConfig` naming the first one missing,
    or two participants of one name. A participant no definition names is fine."""
    by_name: dict[str, Participant] = {}
    for each in participants:
        if each.name in by_name:
            raise InvalidConfig(f"two participants are named {each.name!r}")
        by_name[each.name] = each
    for definition in definitions:
        for step in definition.steps:
            where = f"saga {definition.name!r} step {step.name!r}"
            participant = by_name.get(step.participant)
            if participant is None:
                known = ", ".join(repr(name) for name in by_name) or "none"
                raise InvalidConfig(
                    f"{where}: no participant named {step.participant!r} (participants: {known})"
                )
            if step.action not in participant.actions:
                raise InvalidConfig(
                    f"{where}: participant {participant.name!r} has no handler for action "
                    f"{step.action!r}"
                )
            if step.compensation is not None and step.compensation not in participant.compensations:
                raise InvalidConfig(
                    f"{where}: participant {participant.name!r} has no handler for compensation "
                    f"{step.compensation!r}"
                )
