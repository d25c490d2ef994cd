"""What a choreographed participant keeps and sends on the runtime: its tables, and events as
envelopes.

An event travels on the runtime's transports (in process, SQLite, PostgreSQL) as an
:class:`~sagafsm.messages.Envelope` of kind ``event``: ``idempotency_key`` is the event id (what
a receiver deduplicates by), ``operation`` the event's name, ``data`` what the event carries, plus
its causation id under :data:`CAUSE` (an envelope's own ``causation_id`` is a message number, and
an event is caused by another event).

Each participant keeps, in the store's database and in the transaction of what it does:

- ``choreography_sagas``: its :class:`~sagafsm.choreography.node.SagaRoles` of each saga (roles'
  states, the event ids it has seen), and how many events it emitted there (its event ids are
  ``<saga>/<participant>/e<n>``, unique without asking anyone);
- ``choreography_timers``: its own deadlines, one row per role (a role holds one timer at a
  time: a newer one replaces it), with the epoch second it is due; read back on a restart;
- ``choreography_outbox``: events committed and not yet published (published after the commit,
  deleted once published: a crash in between publishes them again, and receivers deduplicate);
- ``choreography_pending``: compensations decided and not yet run (a compensation has no timer
  to try it again after a crash: it is run again on a restart, and the inbox makes a repeat a
  no-op). An action's tries are its timer's: a try lost with a crash is tried again when its
  timer comes due.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from ..choreography.events import ChoreographyEvent
from ..errors import InvalidConfig
from ..messages import Envelope, MessageKind

__all__ = ["CAUSE", "TABLES", "schema", "event_envelope", "envelope_event"]

CAUSE: Final = "causation_id"

TABLES: Final = (
    "choreography_sagas",
    "choreography_timers",
    "choreography_outbox",
    "choreography_pending",
)

_COMMON: Final = (
    "CREATE TABLE IF NOT EXISTS choreography_sagas (participant TEXT NOT NULL, "
    "saga_id TEXT NOT NULL, state TEXT NOT NULL, emitted INTEGER NOT NULL, "
    "PRIMARY KEY (participant, saga_id))",
    "CREATE TABLE IF NOT EXISTS choreography_timers (participant TEXT NOT NULL, "
    "saga_id TEXT NOT NULL, role TEXT NOT NULL, token INTEGER NOT NULL, what TEXT NOT NULL, "
    "due DOUBLE PRECISION NOT NULL, PRIMARY KEY (participant, saga_id, role))",
    "CREATE TABLE IF NOT EXISTS choreography_pending (participant TEXT NOT NULL, "
    "key TEXT NOT NULL, message TEXT NOT NULL, PRIMARY KEY (participant, key))",
)
_OUTBOX: Final = {
    # AUTOINCREMENT / BIGSERIAL: ids grow in commit order per participant, and are never reused
    "sqlite": "CREATE TABLE IF NOT EXISTS choreography_outbox ("
    "id INTEGER PRIMARY KEY AUTOINCREMENT, participant TEXT NOT NULL, message TEXT NOT NULL)",
    "postgresql": "CREATE TABLE IF NOT EXISTS choreography_outbox ("
    "id BIGSERIAL PRIMARY KEY, participant TEXT NOT NULL, message TEXT NOT NULL)",
}


def schema(dialect: str) -> tuple[str, ...]:
    """The statements that create the tables (idempotent), in ``dialect``."""
    if dialect not in _OUTBOX:
        raise InvalidConfig(
            f"a choreography on the runtime keeps its roles in SQL tables; a store of dialect "
            f"{dialect!r} has none (use sqlite:///PATH or postgresql://...)"
        )
    return (*_COMMON, _OUTBOX[dialect])


def event_envelope(event: ChoreographyEvent, dest: str, message_id: int) -> Envelope:
    """``event`` on its way to ``dest``."""
    return Envelope(
        message_id=message_id,
        kind=MessageKind.EVENT,
        saga_id=event.saga_id,
        causation_id=None,
        idempotency_key=event.event_id,
        source=event.source,
        dest=dest,
        step="",
        operation=event.name,
        data={**event.data, CAUSE: event.causation_id},
    )


def envelope_event(message: Envelope) -> ChoreographyEvent:
    """The event an ``event`` envelope carries (:func:`event_envelope` inverted)."""
    data: Mapping[str, Any] = message.data
    return ChoreographyEvent(
        saga_id=message.saga_id,
        event_id=message.idempotency_key,
        causation_id=data.get(CAUSE),
        name=message.operation,
        source=message.source,
        data={k: v for k, v in data.items() if k != CAUSE},
    )
