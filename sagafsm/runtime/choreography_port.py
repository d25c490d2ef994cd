"""What a choreographed participant's node decides during one pass, as the runtime gathers it.

:class:`Player` is the :class:`~sagafsm.choreography.node.Port` of one participant that a
:class:`~.choreography_host.ChoreographyHost` plays: it adds the pass's time to each record, turns
each emitted event into one envelope per subscriber (and its ``send`` record), and keeps the
timers, runs and outcome for the host to write and act on once the pass commits
(:class:`Pass`). It writes nothing itself.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import attrs

from ..choreography.events import ChoreographyEvent
from ..choreography.node import RoleNode, SagaRoles
from ..messages import Envelope, MessageKind
from .choreography_wire import event_envelope
from .dialects import in_dialect
from .participant import Participant
from .store import ParticipantTx
from .timer_table import TimerTable

__all__ = ["Host", "Pass", "Player", "sql"]


class Host(Protocol):
    """What a player needs of its host."""

    @property
    def subscribers(self) -> Mapping[str, tuple[str, ...]]:
        """Event name -> the participants it is published to."""

    def next_id(self) -> int: ...


@attrs.define
class Pass:
    """What one pass decided, gathered through the port while the node runs."""

    saga_id: str
    saga: SagaRoles
    emitted: int
    now: float
    records: list[tuple[Any, ...]] = attrs.field(factory=list)
    events: list[Envelope] = attrs.field(factory=list)
    timers: dict[str, tuple[int, str, float]] = attrs.field(factory=dict)
    runs: list[Envelope] = attrs.field(factory=list)
    outcome: str | None = None


class Player:
    """One participant this host plays: its node, its timers, and the pass in progress (the
    node's port writes into it)."""

    def __init__(self, host: Host, name: str, node_args: dict[str, Any]) -> None:
        self.host = host
        self.name = name
        self.node = RoleNode(name, port=self, **node_args)
        self.timers = TimerTable()
        self.lock = asyncio.Lock()
        self.current: Pass | None = None
        self.handlers: Participant | None = None

    def _pass(self) -> Pass:
        assert self.current is not None, "the node decides only inside a pass"
        return self.current

    def record(self, kind: str, saga_id: str, *fields: Any) -> None:
        now = self._pass().now
        self._pass().records.append((now, kind, saga_id, *fields))

    def emit(self, saga_id: str, name: str, cause: str | None, data: Mapping[str, Any]) -> None:
        current = self._pass()
        current.emitted += 1
        event = ChoreographyEvent(
            saga_id=saga_id,
            event_id=f"{saga_id}/{self.name}/e{current.emitted}",
            causation_id=cause,
            name=name,
            source=self.name,
            data=data,
        )
        for dest in self.host.subscribers.get(name, ()):
            message = event_envelope(event, dest, self.host.next_id())
            current.events.append(message)
            current.records.append(
                (current.now, "send", saga_id, message.message_id, self.name, dest,
                 MessageKind.EVENT.value, "", name, 1, None)
            )  # fmt: skip
        # after its copies, as the simulator's bus writes them
        current.records.append(
            (current.now, "emit", saga_id, event.event_id, name, self.name, cause)
        )

    def run(self, message: Envelope) -> None:
        self._pass().runs.append(message)

    def arm(self, saga_id: str, role: str, token: int, delay: float, what: str) -> None:
        current = self._pass()
        current.timers[role] = (token, what, current.now + delay)

    def outcome(self, saga_id: str, state: str) -> None:
        current = self._pass()
        current.outcome = state
        current.records.append((current.now, "finish", saga_id, state, None))


async def sql(
    tx: ParticipantTx, statement: str, parameters: Sequence[Any] = ()
) -> list[tuple[Any, ...]]:
    """Run ``statement`` (written with ``?`` placeholders) in ``tx``, in the store's dialect."""
    return await tx.execute(in_dialect(statement, tx.dialect), parameters)
