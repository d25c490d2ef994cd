"""Events on the simulated network: published at least once, acknowledged, deduplicated by id.

With no orchestrator to send a command again, the emitter of an event keeps it until each
subscriber acknowledges it (an outbox relay, or a broker's redelivery): it publishes it again every
``redeliver_after`` seconds, up to ``tries`` times, then gives it up (the event is lost for good;
the deadlines of the participants waiting on it take over). The event and its acknowledgement both
cross the same network as orchestration's commands and replies, with the same faults, so a
subscriber may see an event twice or never: it deduplicates by event id (:mod:`.choreography_node`).
"""

from __future__ import annotations

import enum
from collections import Counter
from collections.abc import Mapping
from typing import Any

import attrs
import simpy

from ..choreography.events import ChoreographyEvent
from .network import Network

__all__ = ["WireKind", "EventMessage", "EventBus"]


class WireKind(enum.Enum):
    EVENT = "event"
    ACK = "event_ack"


@attrs.frozen(kw_only=True, slots=True)
class EventMessage:
    """One copy of an event (or of its acknowledgement) on its way to one participant; the
    network reads it as it reads an envelope (``operation`` is the event's name)."""

    message_id: int
    kind: WireKind
    event: ChoreographyEvent
    source: str
    dest: str
    attempt: int = 1
    step: str = ""
    outcome: None = None

    @property
    def saga_id(self) -> str:
        return self.event.saga_id

    @property
    def operation(self) -> str:
        return self.event.name


class EventBus:
    """Publishes each event to every participant that reacts to it, until each acknowledges."""

    def __init__(
        self,
        env: simpy.Environment,
        network: Network,
        subscribers: Mapping[str, tuple[str, ...]],
        *,
        redeliver_after: float,
        tries: int,
        faults: Counter[str],
    ) -> None:
        self._env = env
        self._network = network
        self._subscribers = subscribers
        self._redeliver_after = redeliver_after
        self._tries = tries
        self._faults = faults
        self._unacked: dict[tuple[str, str], EventMessage] = {}
        """(event id, subscriber) -> the last copy sent, until the subscriber acknowledges."""
        self._issued: dict[str, int] = {}
        """Saga -> events emitted so far (event ids are ``<saga>/e<n>``)."""
        self.published = 0

    def publish(
        self,
        source: str,
        saga_id: str,
        name: str,
        causation_id: str | None,
        data: Mapping[str, Any],
    ) -> ChoreographyEvent:
        """Emit event ``name`` of ``saga_id`` to its subscribers; returns the event."""
        count = self._issued[saga_id] = self._issued.get(saga_id, 0) + 1
        event = ChoreographyEvent(
            saga_id=saga_id,
            event_id=f"{saga_id}/e{count}",
            causation_id=causation_id,
            name=name,
            source=source,
            data=data,
        )
        self.published += 1
        for dest in self._subscribers.get(name, ()):
            self._send(event, dest, 1)
        return event

    def acknowledged(self, message: EventMessage) -> None:
        """``message`` (an ack) says its sender has the event: stop publishing it there."""
        self._unacked.pop((message.event.event_id, message.source), None)

    def acknowledge(self, message: EventMessage) -> None:
        """Answer an event delivered here with an acknowledgement to its emitter."""
        network = self._network
        network.send(
            EventMessage(
                message_id=network.next_message_id(),
                kind=WireKind.ACK,
                event=message.event,
                source=message.dest,
                dest=message.source,
                attempt=message.attempt,
            )
        )

    def forget(self, saga_id: str) -> None:
        """The saga's retention ran out: nothing of it is published again."""
        self._issued.pop(saga_id, None)
        for key in [k for k, m in self._unacked.items() if m.event.saga_id == saga_id]:
            del self._unacked[key]

    def _send(self, event: ChoreographyEvent, dest: str, attempt: int) -> None:
        network = self._network
        message = EventMessage(
            message_id=network.next_message_id(),
            kind=WireKind.EVENT,
            event=event,
            source=event.source,
            dest=dest,
            attempt=attempt,
        )
        self._unacked[event.event_id, dest] = message
        network.send(message)
        timer = self._env.timeout(self._redeliver_after, message)
        timer.callbacks.append(self._redeliver)

    def _redeliver(self, timer: simpy.Event) -> None:
        message: EventMessage = timer.value  # type: ignore[assignment]  # what _send put there
        key = (message.event.event_id, message.dest)
        if self._unacked.get(key) is not message:
            return  # acknowledged (or forgotten) since
        if message.attempt >= self._tries:
            del self._unacked[key]
            self._faults["event_given_up"] += 1
            return
        self._faults["event_redelivered"] += 1
        self._send(message.event, message.dest, message.attempt + 1)
