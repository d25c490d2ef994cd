"""The simulated orchestrator's store: each unfinished saga's latest snapshot, in a dict.

It models the part of a store that survives a crash (the simulator keeps this object aside when
the orchestrator goes down). The store's write latency is modelled by the orchestrator
(``store_latency``), and its outbox by re-sending, at restart, what every saga has in flight: the
real stores, with real outboxes and timer rows, are in :mod:`sagafsm.runtime`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

__all__ = ["SnapshotStore"]


class SnapshotStore:
    def __init__(self) -> None:
        self._sagas: dict[str, dict[str, Any]] = {}
        self.writes = 0

    def save(self, saga_id: str, snapshot: dict[str, Any]) -> None:
        """Insert or replace the saga's snapshot."""
        self._sagas[saga_id] = snapshot
        self.writes += 1

    def delete(self, saga_id: str) -> None:
        """Forget a finished saga; deleting an unknown saga is not an error."""
        self._sagas.pop(saga_id, None)

    def load_all(self) -> Iterator[dict[str, Any]]:
        """Every snapshot stored, in the order the sagas were first saved."""
        yield from list(self._sagas.values())

    def __len__(self) -> int:
        return len(self._sagas)
