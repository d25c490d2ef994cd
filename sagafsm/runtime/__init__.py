"""Run sagas for real: the asyncio runtime, its stores, transports, participants and clocks.

The same engine and orchestration core as the simulator, against a durable store::

    async with Runtime(SqliteStore("orders.db"), transport, [order]) as runtime:
        saga_id = await runtime.start(order, {"customer": 42})
        status = await runtime.wait(saga_id)

Participants register async handlers by the action and compensation names of the definition and
run in a :class:`ParticipantHost`, with an inbox that makes every repeated command a no-op.
Importing this package imports neither simpy nor matplotlib.
"""

from __future__ import annotations

from .clock import Clock, VirtualClock, WallClock
from .crashpoints import CRASH_POINTS, CrashPointReached
from .errors import StoreError
from .host import ParticipantHost
from .memory_store import MemoryStore
from .participant import ActionCall, CompensationCall, Participant, Refused, check_handlers
from .runtime import Runtime, SagaFailedToStart
from .sqlite_store import SqliteStore
from .sqlite_transport import SqliteTransport
from .store import InboxEntry, ParticipantStore, ParticipantTx, SagaStatus, Store
from .transport import Delivery, InProcessTransport, Transport, TransportClosed
from .urls import open_store

__all__ = [
    "ActionCall",
    "CRASH_POINTS",
    "Clock",
    "CompensationCall",
    "CrashPointReached",
    "Delivery",
    "InProcessTransport",
    "InboxEntry",
    "MemoryStore",
    "Participant",
    "ParticipantHost",
    "ParticipantStore",
    "ParticipantTx",
    "Refused",
    "Runtime",
    "SagaFailedToStart",
    "SagaStatus",
    "SqliteStore",
    "SqliteTransport",
    "Store",
    "StoreError",
    "Transport",
    "TransportClosed",
    "VirtualClock",
    "WallClock",
    "check_handlers",
    "open_store",
]
