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
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import attrs

__all__ = ["MessageKind", "Outcome", "Envelope", "NO_PAYLOAD", "ORCHESTRATOR", "reply_to"]

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


def reply_to(
    command: Envelope,
    *,
    message_id: int,
    source: str,
    outcome: Outcome,
    result: Mapping[str, Any] | None = None,
    reason: str = "",
) -> Envelope:
    """A participant's answer to ``command``: its kind, key, step, operation and attempt, caused
    by it, addressed to the orchestrator (the simulated participants and the runtime's host both
    answer with it)."""
    kind = (
        MessageKind.ACTION_REPLY
        if command.kind is MessageKind.EXECUTE
        else MessageKind.COMPENSATION_REPLY
    )
    return Envelope(
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
