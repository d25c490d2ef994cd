"""The simulated orchestrator's store: each unfinished saga's latest snapshot, in a dict.

It models the part of a store that survives a crash (the simulator keeps this object aside when
the orchestrator goes down). The store's write latency is modelled by the orchestrator
(``store_latency``), and its outbox by re-sending, at restart, what every saga has in flight: the
real stores, with real outboxes and timer rows, are in :mod:`sagafsm.runtime`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ..engine import SagaInstance

__all__ = ["SnapshotStore"]


class SnapshotStore:
    """Each unfinished saga's last committed state: a snapshot, or the live saga itself.

    With no write latency every move commits the moment it is made, so the live saga *is* its
    last committed state until the orchestrator crashes (and, lost with the orchestrator's memory,
    it never moves again): the store keeps the saga and snapshots it only when it is read back,
    instead of taking a snapshot per move."""

    def __init__(self) -> None:
        self._sagas: dict[str, dict[str, Any] | SagaInstance] = {}
        self.writes = 0

    def save(self, saga_id: str, snapshot: dict[str, Any] | SagaInstance) -> None:
        """Insert or replace the saga's snapshot (or the saga, as above)."""
        self._sagas[saga_id] = snapshot
        self.writes += 1

    def delete(self, saga_id: str) -> None:
        """Forget a finished saga; deleting an unknown saga is not an error."""
        self._sagas.pop(saga_id, None)

    def load_all(self) -> Iterator[dict[str, Any]]:
        """Every snapshot stored, in the order the sagas were first saved."""
        for stored in list(self._sagas.values()):
            yield stored.snapshot() if isinstance(stored, SagaInstance) else stored

    def __len__(self) -> int:
        return len(self._sagas)
