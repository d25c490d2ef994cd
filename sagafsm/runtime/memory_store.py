"""A store in dicts: the reference semantics of :class:`~sagafsm.runtime.store.Store`, for tests
and the in-process runtime.

It keeps what the SQLite store keeps, encoded the same way (:mod:`.store_encoding`): snapshots,
results, outbox messages, inbox results and trace records are held as JSON text, so data that
SQLite would refuse is refused here too, and what comes back has been through JSON in both. A
Hypothesis test runs random commit sequences through both and compares everything they report.

Its data lives as long as the object: ``close()`` then ``open()`` again finds everything, which is
how tests "restart" an in-process runtime on the same memory store.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Iterable, Sequence
from typing import Any, Final

from ..errors import InvalidArgument, InvalidConfig
from .errors import StoreError
from .store import (
    Commit,
    InboxEntry,
    OutboxRow,
    RetryRequest,
    SagaStatus,
    StoredSaga,
    TimerRow,
)
from .store_encoding import (
    DEFAULT_RETENTION,
    RESOLVABLE,
    EncodedBatch,
    InboxRow,
    check_retention,
    check_states,
    decode_entry,
    decode_records,
    encode_entry,
    encode_records,
    loads,
    status_from_row,
)

__all__ = ["MemoryStore"]


class MemoryStore:
    """:class:`~sagafsm.runtime.store.Store` and
    :class:`~sagafsm.runtime.store.ParticipantStore` in memory (see the module docstring).

    :meth:`ParticipantTx.execute` raises :class:`~sagafsm.errors.InvalidConfig`: participants with
    tables of their own need a SQL store. Participant transactions stage their writes and apply
    them on a clean exit; they run one at a time per store, from their first read to their end.
    """

    dialect: Final = "memory"
    """The SQL its participant transactions speak (``ParticipantTx.dialect``)."""

    name: Final = "memory://"

    def __init__(self, *, retention: float = DEFAULT_RETENTION) -> None:
        self.retention = check_retention(retention)
        self._open = False
        self._boot = 0
        # saga_id -> [definition, state, reason, results, snapshot, started_at, updated_at,
        # resolution, parked];
        # a dict keeps insertion order, which is start order.
        self._sagas: dict[str, list[Any]] = {}
        self._outbox: dict[int, tuple[str, str]] = {}
        self._next_outbox_id = 1
        self._timers: dict[str, TimerRow] = {}
        self._requests: dict[str, tuple[str, float]] = {}  # saga_id -> (note, requested_at)
        self._trace: list[str] = []  # one JSON list of records per append
        self._inbox: dict[tuple[str, str], tuple[str, str | None, str | None, str]] = {}
        self._participant_lock = asyncio.Lock()

    def __repr__(self) -> str:
        return f"MemoryStore(sagas={len(self._sagas)}, open={self._open})"

    def _check_open(self) -> None:
        if not self._open:
            raise StoreError(f"{self.name}: the store is not open")

    async def open(self) -> None:
        # A fresh lock: the object may be reopened under another event loop.
        self._participant_lock = asyncio.Lock()
        self._open = True

    async def close(self) -> None:
        self._open = False

    async def __aenter__(self) -> MemoryStore:
        await self.open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def boot(self) -> int:
        self._check_open()
        self._boot += 1
        return self._boot

    async def commit(
        self, commits: Sequence[Commit], consumed: Sequence[int] = ()
    ) -> list[OutboxRow]:
        self._check_open()
        batch = EncodedBatch(commits)
        sagas = self._sagas
        # Every check before the first change: a refused batch leaves nothing behind.
        for row in batch.inserts:
            if row[0] in sagas:
                raise InvalidArgument(f"saga {row[0]!r}: started twice (it is already stored)")
        started = {row[0] for row in batch.inserts}
        for row in batch.updates:
            if row[-1] not in sagas and row[-1] not in started:
                raise InvalidArgument(f"saga {row[-1]!r}: a commit for a saga never started")
        for saga_id, definition, state, reason, results, snapshot, now, _ in batch.inserts:
            sagas[saga_id] = [definition, state, reason, results, snapshot, now, now, None, None]
        for state, reason, results, snapshot, parked, now, saga_id in batch.updates:
            saga = sagas[saga_id]
            saga[1:5] = state, reason, results, snapshot
            saga[6], saga[8] = now, parked
        for (saga_id,) in batch.retried:
            self._requests.pop(saga_id, None)
        rows = []
        next_id = self._next_outbox_id
        for (saga_id, message), original in zip(batch.outbox, batch.messages, strict=True):
            self._outbox[next_id] = (saga_id, message)
            rows.append(OutboxRow(next_id, saga_id, original))
            next_id += 1
        self._next_outbox_id = next_id
        for saga_id, timer in batch.timers.items():
            if timer is None:
                self._timers.pop(saga_id, None)
            else:
                self._timers[saga_id] = timer
        if batch.records is not None:
            self._trace.append(batch.records)
        return rows

    async def mark_sent(self, ids: Sequence[int], records: Sequence[tuple[Any, ...]] = ()) -> None:
        self._check_open()
        encoded = encode_records(records) if records else None
        for id_ in ids:
            self._outbox.pop(id_, None)
        if encoded is not None:
            self._trace.append(encoded)

    async def unsent(self) -> list[OutboxRow]:
        self._check_open()
        return [
            OutboxRow(id_, saga_id, loads(message))
            for id_, (saga_id, message) in sorted(self._outbox.items())
        ]

    async def running(self) -> list[StoredSaga]:
        self._check_open()
        return [
            StoredSaga(saga_id, saga[0], loads(saga[4]))
            for saga_id, saga in self._sagas.items()
            if saga[4] is not None
        ]

    async def timers(self) -> list[TimerRow]:
        self._check_open()
        return sorted(self._timers.values(), key=lambda timer: (timer.due, timer.saga_id))

    async def status(self, saga_id: str) -> SagaStatus | None:
        self._check_open()
        saga = self._sagas.get(saga_id)
        return None if saga is None else status_from_row((saga_id, *saga))

    async def sagas(self, states: Collection[str] | None = None) -> list[SagaStatus]:
        self._check_open()
        check_states(states)
        wanted = None if states is None else frozenset(states)
        return [
            status_from_row((saga_id, *saga))
            for saga_id, saga in self._sagas.items()
            if wanted is None or saga[1] in wanted
        ]

    async def append_trace(self, records: Sequence[tuple[Any, ...]]) -> None:
        self._check_open()
        if records:
            self._trace.append(encode_records(records))

    async def trace(self) -> list[tuple[Any, ...]]:
        self._check_open()
        return decode_records(self._trace)

    async def prune(self, finished_before: float) -> int:
        """Drop the status of finished sagas whose last commit's ``now`` is earlier than
        ``finished_before``; running sagas, the outbox and the trace are kept, and so is a saga
        waiting for an operator until it is resolved."""
        self._check_open()
        gone = [
            saga_id
            for saga_id, saga in self._sagas.items()
            if saga[4] is None
            and saga[6] < finished_before
            and not (saga[1] == RESOLVABLE and saga[7] is None)
        ]
        for saga_id in gone:
            del self._sagas[saga_id]
        return len(gone)

    async def resolve(
        self, saga_id: str, resolution: str, records: Sequence[tuple[Any, ...]] = ()
    ) -> bool:
        self._check_open()
        encoded = encode_records(records) if records else None
        saga = self._sagas.get(saga_id)
        if saga is None or saga[1] != RESOLVABLE or saga[7] is not None:
            return False
        saga[7] = str(resolution)
        if encoded is not None:
            self._trace.append(encoded)
        return True

    async def request_retry(self, saga_id: str, note: str, now: float) -> bool:
        self._check_open()
        saga = self._sagas.get(saga_id)
        if saga is None or saga[8] is None or saga[7] is not None or saga_id in self._requests:
            return False
        self._requests[saga_id] = (str(note), float(now))
        return True

    async def retry_requests(self) -> list[RetryRequest]:
        self._check_open()
        waiting = sorted(self._requests.items(), key=lambda item: (item[1][1], item[0]))
        return [
            RetryRequest(saga_id, self._sagas[saga_id][0], loads(self._sagas[saga_id][8]), note)
            for saga_id, (note, _) in waiting
            if self._sagas.get(saga_id, [None] * 9)[8] is not None
        ]

    def transaction(self, participant: str) -> _MemoryTransaction:
        self._check_open()
        return _MemoryTransaction(self, participant)

    def batch(self) -> _MemoryBatch:
        self._check_open()
        return _MemoryBatch(self)


class _MemoryBatch:
    """One participant transaction holding savepoints of many commands: released savepoints'
    writes are staged here and applied on a clean exit. The store's participant lock is taken at
    the first read (or at the commit), so batches and transactions that read the inbox run one at
    a time."""

    __slots__ = ("_locked", "_puts", "_records", "_store")

    def __init__(self, store: MemoryStore) -> None:
        self._store = store
        self._puts: dict[tuple[str, str], InboxRow] = {}
        self._records: list[str] = []  # one JSON list per append_trace
        self._locked = False

    async def __aenter__(self) -> _MemoryBatch:
        return self

    async def _begin(self) -> None:
        if not self._locked:
            await self._store._participant_lock.acquire()
            self._locked = True

    async def __aexit__(self, exc_type: type[BaseException] | None, *rest: object) -> None:
        try:
            if exc_type is None and (self._puts or self._records):
                await self._begin()
                store = self._store
                store._check_open()
                store._inbox.update(self._puts)
                store._trace.extend(self._records)
        finally:
            if self._locked:
                self._locked = False
                self._store._participant_lock.release()

    async def prefetch(self, keys: Iterable[tuple[str, str]]) -> None:
        """Nothing to read ahead in memory; the batch begins (takes the lock)."""
        await self._begin()

    def savepoint(self, participant: str) -> _MemorySavepoint:
        return _MemorySavepoint(self, participant)


class _MemorySavepoint:
    """One participant's part of a batch: reads see its own writes, then those of the savepoints
    released before it, then the store; a clean exit hands its writes to the batch, an exception
    drops them."""

    dialect = "memory"
    """What :meth:`execute` speaks (see the protocol)."""

    __slots__ = ("_batch", "_participant", "_puts", "_records")

    def __init__(self, batch: _MemoryBatch, participant: str) -> None:
        self._batch = batch
        self._participant = participant
        self._puts: dict[str, InboxRow] = {}
        self._records: list[str] = []

    async def __aenter__(self) -> _MemorySavepoint:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, *rest: object) -> None:
        if exc_type is None:
            batch, participant = self._batch, self._participant
            for key, row in self._puts.items():
                batch._puts[participant, key] = row
            batch._records.extend(self._records)

    async def _begin(self) -> None:
        await self._batch._begin()

    async def inbox_get(self, key: str) -> InboxEntry | None:
        row = self._puts.get(key)
        if row is None:
            await self._begin()
            at = (self._participant, key)
            row = self._batch._puts.get(at) or self._batch._store._inbox.get(at)
        return None if row is None else decode_entry(row)

    async def inbox_put(self, key: str, entry: InboxEntry) -> None:
        self._puts[key] = encode_entry(key, entry)

    async def append_trace(self, records: Sequence[tuple[Any, ...]]) -> None:
        if records:
            self._records.append(encode_records(records))

    async def execute(self, sql: str, parameters: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        raise InvalidConfig(
            f"participant {self._participant!r}: ParticipantTx.execute needs a SQL store "
            f"(sqlite:///PATH), not {MemoryStore.name}"
        )


class _MemoryTransaction(_MemorySavepoint):
    """A participant transaction on its own: the one savepoint of a batch of its own, committed
    (or rolled back) with it."""

    __slots__ = ()

    def __init__(self, store: MemoryStore, participant: str) -> None:
        super().__init__(_MemoryBatch(store), participant)

    async def __aexit__(self, exc_type: type[BaseException] | None, *rest: object) -> None:
        try:
            await super().__aexit__(exc_type, *rest)
        finally:
            await self._batch.__aexit__(exc_type, *rest)
