"""Message envelopes: what travels between an orchestrator and its participants.

Every message names its saga (``saga_id``, the correlation id), the message that caused it
(``causation_id``), and, for commands and their replies, the idempotency key of the operation.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import attrs

__all__ = ["MessageKind", "Outcome", "Envelope"]

_NO_PAYLOAD: Mapping[str, Any] = MappingProxyType({})


class MessageKind(enum.Enum):
    EXECUTE = "execute"
    COMPENSATE = "compensate"
    ACTION_REPLY = "action_reply"
    COMPENSATION_REPLY = "compensation_reply"


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
    payload: Mapping[str, Any] = _NO_PAYLOAD

    @property
    def correlation_id(self) -> str:
        return self.saga_id
