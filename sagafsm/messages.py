"""Message envelopes: what travels between an orchestrator and its participants.

Every message names its saga (``saga_id``, the correlation id), the message that caused it
(``causation_id``), and, for commands and their replies, the idempotency key of the operation.
What a command hands its participant, and what a reply hands back, are typed fields, one per
thing carried (the shapes are those of :mod:`sagafsm.commands` and :mod:`sagafsm.events`):

========================  ==========================================================
kind                      carries
========================  ==========================================================
``execute``               ``data`` (the saga's input), ``results`` (earlier steps')
``compensate``            ``data``, ``action_key``, ``action_result`` (None: no reply)
``action_reply``          ``outcome``; ``result`` on success, ``reason`` on failure
``compensation_reply``    ``outcome``; ``reason`` on failure
========================  ==========================================================
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any, Protocol, TypeVar, overload

import attrs

__all__ = [
    "MessageKind",
    "Outcome",
    "Carried",
    "Envelope",
    "Message",
    "WireMessage",
    "NO_PAYLOAD",
    "ORCHESTRATOR",
    "reply_to",
]

ORCHESTRATOR = "orchestrator"
"""The node name of the orchestrator: the source of every command, the destination of replies."""

NO_PAYLOAD: Mapping[str, Any] = MappingProxyType({})
"""The empty mapping every envelope shares where a field has nothing to carry."""


class MessageKind(enum.Enum):
    EXECUTE = "execute"
    COMPENSATE = "compensate"
    ACTION_REPLY = "action_reply"
    COMPENSATION_REPLY = "compensation_reply"
    EVENT = "event"
    """A choreographed saga's event, from one participant to another (the runtime's
    :mod:`~sagafsm.runtime.choreography_wire`): no orchestrator sends or receives one."""


class Outcome(enum.Enum):
    """A participant's answer to one command."""

    SUCCEEDED = "succeeded"
    FAILED = "failed"


@attrs.frozen(kw_only=True)
class Envelope:
    message_id: int
    kind: MessageKind
    saga_id: str
    causation_id: int | None
    idempotency_key: str
    source: str
    dest: str
    step: str
    operation: str
    """The action or compensation name (for a reply: the one it answers)."""
    attempt: int = 1
    outcome: Outcome | None = None
    """Set on replies only."""
    action_key: str | None = None
    """On compensations: the key of the action they undo (for tombstones)."""
    data: Mapping[str, Any] = NO_PAYLOAD
    """On commands: the saga's input data."""
    results: Mapping[str, Mapping[str, Any]] = NO_PAYLOAD
    """On actions: the result of each earlier step whose success reply arrived, by step name."""
    action_result: Mapping[str, Any] | None = None
    """On compensations: the result the action's success reply carried; None if none arrived."""
    result: Mapping[str, Any] | None = None
    """On a successful action reply: the action's result."""
    reason: str = ""
    """On a failed reply: why (``"insufficient funds"``, ``"injected failure"``...)."""

    @property
    def correlation_id(self) -> str:
        return self.saga_id


class Carried(Protocol):
    """What a network reads of a message: an :class:`Envelope`, a :class:`WireMessage`, or a
    choreography event (:mod:`sagafsm.sim.choreography_bus`)."""

    @property
    def message_id(self) -> int: ...
    @property
    def kind(self) -> enum.Enum: ...
    @property
    def saga_id(self) -> str: ...
    @property
    def source(self) -> str: ...
    @property
    def dest(self) -> str: ...
    @property
    def step(self) -> str: ...
    @property
    def operation(self) -> str: ...
    @property
    def attempt(self) -> int: ...
    @property
    def outcome(self) -> enum.Enum | None: ...


class Message(Carried, Protocol):
    """What is read of a message: an :class:`Envelope`, or the simulator's :class:`WireMessage`."""

    @property
    def kind(self) -> MessageKind: ...
    @property
    def causation_id(self) -> int | None: ...
    @property
    def idempotency_key(self) -> str: ...
    @property
    def outcome(self) -> Outcome | None: ...
    @property
    def action_key(self) -> str | None: ...
    @property
    def data(self) -> Mapping[str, Any]: ...
    @property
    def results(self) -> Mapping[str, Mapping[str, Any]]: ...
    @property
    def action_result(self) -> Mapping[str, Any] | None: ...
    @property
    def result(self) -> Mapping[str, Any] | None: ...
    @property
    def reason(self) -> str: ...


class WireMessage:
    """The simulator's own envelope: the fields and defaults of :class:`Envelope` in a plain
    slotted class, built in a third of the time (a frozen attrs instance sets each field through
    ``object.__setattr__``). Internal: it never leaves the simulated network, where nothing
    changes a message once sent; :meth:`envelope` gives the public frozen value."""

    __slots__ = (
        "action_key",
        "action_result",
        "attempt",
        "causation_id",
        "data",
        "dest",
        "idempotency_key",
        "kind",
        "message_id",
        "operation",
        "outcome",
        "reason",
        "result",
        "results",
        "saga_id",
        "source",
        "step",
    )

    def __init__(
        self,
        *,
        message_id: int,
        kind: MessageKind,
        saga_id: str,
        causation_id: int | None,
        idempotency_key: str,
        source: str,
        dest: str,
        step: str,
        operation: str,
        attempt: int = 1,
        outcome: Outcome | None = None,
        action_key: str | None = None,
        data: Mapping[str, Any] = NO_PAYLOAD,
        results: Mapping[str, Mapping[str, Any]] = NO_PAYLOAD,
        action_result: Mapping[str, Any] | None = None,
        result: Mapping[str, Any] | None = None,
        reason: str = "",
    ) -> None:
        self.message_id = message_id
        self.kind = kind
        self.saga_id = saga_id
        self.causation_id = causation_id
        self.idempotency_key = idempotency_key
        self.source = source
        self.dest = dest
        self.step = step
        self.operation = operation
        self.attempt = attempt
        self.outcome = outcome
        self.action_key = action_key
        self.data = data
        self.results = results
        self.action_result = action_result
        self.result = result
        self.reason = reason

    def envelope(self) -> Envelope:
        """The same message as the public frozen value."""
        return Envelope(**{name: getattr(self, name) for name in self.__slots__})

    def __repr__(self) -> str:
        return f"<WireMessage {self.message_id} {self.kind.value} {self.saga_id} {self.step}>"


_M = TypeVar("_M", bound=Message)


@overload
def reply_to(
    command: Message,
    *,
    message_id: int,
    source: str,
    outcome: Outcome,
    result: Mapping[str, Any] | None = None,
    reason: str = "",
) -> Envelope: ...
@overload
def reply_to(
    command: Message,
    *,
    message_id: int,
    source: str,
    outcome: Outcome,
    result: Mapping[str, Any] | None = None,
    reason: str = "",
    make: Callable[..., _M],
) -> _M: ...
def reply_to(
    command: Message,
    *,
    message_id: int,
    source: str,
    outcome: Outcome,
    result: Mapping[str, Any] | None = None,
    reason: str = "",
    make: Callable[..., Message] = Envelope,
) -> Message:
    """A participant's answer to ``command``: its kind, key, step, operation and attempt, caused
    by it, addressed to the orchestrator (the simulated participants and the runtime's host both
    answer with it). ``make`` builds it: an :class:`Envelope`, or the simulator's
    :class:`WireMessage`."""
    kind = (
        MessageKind.ACTION_REPLY
        if command.kind is MessageKind.EXECUTE
        else MessageKind.COMPENSATION_REPLY
    )
    return make(
        message_id=message_id,
        kind=kind,
        saga_id=command.saga_id,
        causation_id=command.message_id,
        idempotency_key=command.idempotency_key,
        source=source,
        dest=ORCHESTRATOR,
        step=command.step,
        operation=command.operation,
        attempt=command.attempt,
        outcome=outcome,
        result=result,
        reason=reason,
    )
