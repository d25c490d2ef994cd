"""A participant of a choreographed saga in the simulator: the sans-IO rules over SimPy.

Every rule a choreographed participant follows is in :class:`sagafsm.choreography.node.RoleNode`
(the runtime drives the same one). This driver adds what a simulated service has around it: the
bus it hears events on (each one acknowledged, then deduplicated by the node), its ledger
(:class:`~.participant.SimParticipant`, the very one orchestration uses: idempotency keys,
tombstones, fates, capacity), simulated timers, and the trace with simulated time.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any

import simpy

from ..choreography.node import RoleNode, SagaRoles, Switches, Tries
from ..choreography.projection import Role
from ..choreography.table import ChoreographyDefinition
from ..messages import Envelope, Message, MessageKind
from .choreography_bus import EventBus, EventMessage, WireKind
from .participant import Reply, SimParticipant
from .trace import Trace

__all__ = ["Tries", "Switches", "RoleHost"]


class RoleHost:
    """One participant's roles in every open saga of a run."""

    def __init__(
        self,
        env: simpy.Environment,
        name: str,
        definition: ChoreographyDefinition,
        roles: tuple[Role, ...],
        consumers: Mapping[str, tuple[Role, ...]],
        bus: EventBus,
        trace: Trace,
        tries: Mapping[str, Tries],
        alive: Callable[[str], bool],
        on_outcome: Callable[[str, str], None],
        counts: Counter[tuple[str, str]],
        switches: Switches,
        *,
        on_compensating: Callable[[str], None] = lambda saga_id: None,
    ) -> None:
        self.name = name
        self._on_compensating = on_compensating
        """Called as a role of a saga moves into compensating (what the run's occupancy reads:
        a choreographed saga has no lifecycle of its own to say it is undoing its steps)."""
        self._env = env
        self._bus = bus
        self._trace = trace
        self._alive = alive
        self._on_outcome = on_outcome
        self._node = RoleNode(name, definition, roles, consumers, tries, self, counts, switches)
        self._sagas: dict[str, SagaRoles] = {}
        self.ledger: SimParticipant | None = None
        """The participant's ledger (None for an initiator that runs no step)."""
        self._pending: dict[str, Envelope] = {}
        """Compensations handed to the ledger and not answered yet, by idempotency key."""
        self._abandoned: set[str] = set()
        """Those of them a crash abandoned: run again when the participant restarts."""

    # -- events in -----------------------------------------------------------------------------

    def receive(self, message: EventMessage) -> None:
        if message.kind is WireKind.ACK:
            self._bus.acknowledged(message)
            return
        self._bus.acknowledge(message)
        event = message.event
        if not self._alive(event.saga_id):
            return  # the saga ended longer ago than the retention: nothing left to do
        self._node.received(self._saga(event.saga_id), event)

    def start(self, saga_id: str, order: Mapping[str, Any], start: str) -> None:
        """The initiator starts a saga: its outcome role moves, then it emits the start event."""
        self._node.start(saga_id, self._saga(saga_id), order, start)

    def forget(self, saga_id: str) -> list[str]:
        """Drop the saga (its retention ran out); returns the idempotency keys its steps used
        here, for the ledger to forget too."""
        saga = self._sagas.pop(saga_id, None)
        return [] if saga is None else self._node.keys(saga_id, saga)

    # -- crashes -------------------------------------------------------------------------------

    def crashed(self) -> None:
        """The participant went down: the compensations its ledger had in hand are abandoned
        (the ledger rolls them back). A compensation has no timer of its own to try it again,
        so they are run again at the restart, as a real participant runs its pending ones."""
        self._abandoned.update(self._pending)

    def restarted(self) -> int:
        """Run the abandoned compensations again; how many there were."""
        again = sorted(self._abandoned)  # (sorted: the run does not depend on set order)
        self._abandoned.clear()
        for key in again:
            assert self.ledger is not None  # (only a ledger's operations can be abandoned)
            self.ledger.receive(self._pending[key])
        return len(again)

    def _saga(self, saga_id: str) -> SagaRoles:
        saga = self._sagas.get(saga_id)
        if saga is None:
            saga = self._sagas[saga_id] = self._node.new_saga()
        return saga

    def answered(self, message: Message, reply: Reply) -> None:
        """The ledger's outcome of one operation (the hook :class:`SimParticipant` calls)."""
        if message.kind is MessageKind.COMPENSATE:
            self._pending.pop(message.idempotency_key, None)
            self._abandoned.discard(message.idempotency_key)
        saga = self._sagas.get(message.saga_id)
        if saga is not None:
            self._node.answered(saga, message, reply)

    # -- the port the node decides through -----------------------------------------------------

    def record(self, kind: str, saga_id: str, *fields: Any) -> None:
        self._trace.record(self._env.now, kind, saga_id, *fields)
        if kind == "transition" and fields[3] == "compensating" != fields[2]:
            self._on_compensating(saga_id)

    def emit(self, saga_id: str, name: str, cause: str | None, data: Mapping[str, Any]) -> None:
        event = self._bus.publish(self.name, saga_id, name, cause, data)
        self._trace.record(self._env.now, "emit", saga_id, event.event_id, name, self.name, cause)

    def run(self, message: Envelope) -> None:
        assert self.ledger is not None
        if message.kind is MessageKind.COMPENSATE:
            self._pending[message.idempotency_key] = message
        self.ledger.receive(message)

    def outcome(self, saga_id: str, state: str) -> None:
        self._on_outcome(saga_id, state)

    def arm(self, saga_id: str, role: str, token: int, delay: float, what: str) -> None:
        timer = self._env.timeout(delay, (saga_id, role, token, what))
        timer.callbacks.append(self._timer_fired)

    def _timer_fired(self, timer: simpy.Event) -> None:
        saga_id, name, token, what = timer.value  # type: ignore[misc]  # what arm put there
        saga = self._sagas.get(saga_id)
        if saga is not None:  # (else the saga was forgotten)
            self._node.timer_fired(saga_id, saga, name, token, what)
