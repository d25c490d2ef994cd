"""Where an orchestrator keeps its sagas between events: the saga store.

A store keeps, for each unfinished saga, its latest snapshot (:meth:`SagaInstance.snapshot`) and the
saga's input data. The snapshot holds the data and every step's result too (what a restored saga
needs); the data is kept beside it for stores that index or query it. The orchestrator saves before
it sends the commands a new state implies (outbox order), so after a crash everything that was sent
can be re-derived from the store.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, Protocol

__all__ = ["SagaStore", "InMemoryStore", "StoredSaga"]

StoredSaga = tuple[dict[str, Any], Mapping[str, Any]]
"""(snapshot, saga input data)."""


class SagaStore(Protocol):
    def save(self, saga_id: str, snapshot: dict[str, Any], data: Mapping[str, Any]) -> None:
        """Insert or replace the saga's snapshot."""

    def delete(self, saga_id: str) -> None:
        """Forget a finished saga. Deleting an unknown saga is not an error."""

    def load_all(self) -> Iterator[tuple[str, StoredSaga]]:
        """Every saga stored, in the order they were first saved."""

    def __len__(self) -> int: ...


class InMemoryStore:
    """A dict. Survives a simulated orchestrator crash because the simulator keeps it aside."""

    def __init__(self) -> None:
        self._sagas: dict[str, StoredSaga] = {}
        self.writes = 0

    def save(self, saga_id: str, snapshot: dict[str, Any], data: Mapping[str, Any]) -> None:
        self._sagas[saga_id] = (snapshot, data)
        self.writes += 1

    def delete(self, saga_id: str) -> None:
        self._sagas.pop(saga_id, None)

    def load_all(self) -> Iterator[tuple[str, StoredSaga]]:
        yield from list(self._sagas.items())

    def __len__(self) -> int:
        return len(self._sagas)
