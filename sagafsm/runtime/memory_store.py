"""A store in dicts: the reference semantics of :class:`~sagafsm.runtime.store.Store`, for tests
and the in-process runtime.

It keeps what the SQLite store keeps, encoded the same way: snapshots, results, outbox messages,
inbox results and trace records are held as JSON text, so data that SQLite would refuse is refused
here too, and what comes back has been through JSON in both (tuples come back as lists, trace
records as tuples). The batch checks and the encoding live here, once, and the SQLite store uses
them: a Hypothesis test runs random commit sequences through both and compares everything they
report.

Its data lives as long as the object: ``close()`` then ``open()`` again finds everything, which is
how tests "restart" an in-process runtime on the same memory store.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Collection, Iterable, Sequence
from typing import Any, Final

from ..errors import InvalidArgument, InvalidConfig
from .errors import StoreError
from .store import KEEP, Commit, InboxEntry, OutboxRow, SagaStatus, StoredSaga, TimerRow

__all__ = ["MemoryStore"]

DEFAULT_RETENTION: Final = 7 * 86400.0
"""Seconds a finished saga's status is kept before :meth:`prune` may drop it (the runtime asks)."""

INBOX_KINDS: Final = frozenset({"action", "tombstone", "compensation"})

RESOLVABLE: Final = "operator_required"
"""The one state :meth:`MemoryStore.resolve` (and the SQLite store's) marks resolved."""


def _not_json(value: object) -> Any:
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _compact_encoder() -> Callable[[Any], str]:
    """Compact JSON (ASCII: lone surrogates survive SQLite) through the C encoder built once.

    ``JSONEncoder.encode`` builds a C encoder on every call, a few microseconds that a commit
    pays per snapshot, message and result. Without the circular-reference markers a cycle is a
    RecursionError (caught as "not JSON"). If this Python's private encoder API differs, the
    public encoder is used instead."""
    public = json.JSONEncoder(separators=(",", ":"), default=_not_json).encode
    try:
        make = json.encoder.c_make_encoder  # type: ignore[attr-defined]
        # (markers, default, string encoder, indent, ":", ",", sort_keys, skipkeys, allow_nan)
        options = (None, _not_json, json.encoder.encode_basestring_ascii, None, ":", ",")
        encode = make(*options, False, False, True)

        def dumps(value: Any) -> str:
            return "".join(encode(value, 0))

        probe = {"a": [1, 2.5, None, True, "\u00e9\ud800"], "b": {"c": -0.0}}
        if dumps(probe) == public(probe):
            return dumps
    except Exception:  # any difference: the public encoder will do
        pass
    return public


dumps: Final = _compact_encoder()
loads: Final = json.loads

_NOT_JSON: Final = (TypeError, ValueError, RecursionError)


class EncodedBatch:
    """A batch of :class:`Commit` checked and encoded once, before any store changes.

    ``inserts`` rows are ``(saga_id, definition, state, reason, results, snapshot, now, now)``,
    ``updates`` rows ``(state, reason, results, snapshot, now, saga_id)`` in commit order;
    ``timers`` maps a saga to the timer it ends the batch with (None: cancelled), the last
    non-KEEP word of its commits (finishing cancels); ``outbox`` rows are ``(saga_id, message)``
    beside the caller's ``messages``; ``records`` is every trace record of the batch, in order,
    as one JSON list (None if there are none). JSON values are text.
    """

    __slots__ = ("inserts", "messages", "outbox", "records", "timers", "updates")

    def __init__(self, commits: Sequence[Commit]) -> None:
        inserts: list[tuple[Any, ...]] = []
        updates: list[tuple[Any, ...]] = []
        outbox: list[tuple[str, str]] = []
        messages: list[dict[str, Any]] = []
        timers: dict[str, TimerRow | None] = {}
        records: list[tuple[Any, ...]] = []
        seen: set[str] = set()
        encode = dumps
        for commit in commits:
            saga_id = commit.saga_id
            snapshot = commit.snapshot
            results = commit.results
            try:
                snapshot_json = None if snapshot is None else encode(snapshot)
                results_json = None if results is None else encode(results)
                for message in commit.outbox:
                    outbox.append((saga_id, encode(message)))
            except _NOT_JSON as error:
                raise InvalidArgument(
                    f"saga {saga_id!r}: a commit holds data that is not JSON ({error})"
                ) from None
            messages.extend(commit.outbox)
            records.extend(commit.records)
            now = float(commit.now)
            if commit.started:
                if saga_id in seen:
                    raise InvalidArgument(f"saga {saga_id!r}: started after its first commit")
                row = (saga_id, commit.definition, commit.state, commit.reason)
                inserts.append((*row, results_json, snapshot_json, now, now))
            else:
                updates.append(
                    (commit.state, commit.reason, results_json, snapshot_json, now, saga_id)
                )
            seen.add(saga_id)
            timer = commit.timer
            if snapshot is None:
                timers[saga_id] = None
            elif timer is not KEEP:
                if timer is not None and timer.saga_id != saga_id:
                    raise InvalidArgument(
                        f"saga {saga_id!r}: its commit arms a timer of saga {timer.saga_id!r}"
                    )
                timers[saga_id] = timer
        self.inserts = inserts
        self.updates = updates
        self.outbox = outbox
        self.messages = messages
        self.timers = timers
        self.records = encode_records(records) if records else None


def encode_records(records: Sequence[tuple[Any, ...]]) -> str:
    """Trace records as one JSON list of lists (a trace row holds one append's records)."""
    try:
        return dumps(records)
    except _NOT_JSON:
        for record in records:
            try:
                dumps(record)
            except _NOT_JSON as error:
                raise InvalidArgument(
                    f"trace record {record!r} is not JSON data ({error})"
                ) from None
        raise


def decode_records(chunks: Iterable[str]) -> list[tuple[Any, ...]]:
    return [tuple(record) for chunk in chunks for record in loads(chunk)]


def encode_entry(key: str, entry: InboxEntry) -> tuple[str, str | None, str | None, str]:
    """An inbox entry as ``(kind, outcome, result, reason)`` with the result as JSON text."""
    if entry.kind not in INBOX_KINDS:
        raise InvalidArgument(
            f"inbox key {key!r}: kind {entry.kind!r} is not one of {sorted(INBOX_KINDS)}"
        )
    try:
        result = None if entry.result is None else dumps(entry.result)
    except _NOT_JSON as error:
        raise InvalidArgument(f"inbox key {key!r}: its result is not JSON ({error})") from None
    return (entry.kind, entry.outcome, result, entry.reason)


def decode_entry(row: Sequence[Any]) -> InboxEntry:
    kind, outcome, result, reason = row
    return InboxEntry(kind, outcome, None if result is None else loads(result), reason)


def check_states(states: Collection[str] | None) -> None:
    if isinstance(states, str):
        raise InvalidArgument(f"states must be a collection of names, not the string {states!r}")


def check_retention(retention: float) -> float:
    if not isinstance(retention, int | float) or not retention >= 0 or retention == float("inf"):
        raise InvalidArgument(f"retention must be finite seconds >= 0, got {retention!r}")
    return float(retention)


class MemoryStore:
    """:class:`~sagafsm.runtime.store.Store` and
    :class:`~sagafsm.runtime.store.ParticipantStore` in memory (see the module docstring).

    :meth:`ParticipantTx.execute` raises :class:`~sagafsm.errors.InvalidConfig`: participants with
    tables of their own need a SQL store. Participant transactions stage their writes and apply
    them on a clean exit; they run one at a time per store, from their first read to their end.
    """

    name: Final = "memory://"

    def __init__(self, *, retention: float = DEFAULT_RETENTION) -> None:
        self.retention = check_retention(retention)
        self._open = False
        self._boot = 0
        # saga_id -> [definition, state, reason, results, snapshot, started_at, updated_at,
        # resolution];
        # a dict keeps insertion order, which is start order.
        self._sagas: dict[str, list[Any]] = {}
        self._outbox: dict[int, tuple[str, str]] = {}
        self._next_outbox_id = 1
        self._timers: dict[str, TimerRow] = {}
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
            if row[5] not in sagas and row[5] not in started:
                raise InvalidArgument(f"saga {row[5]!r}: a commit for a saga never started")
        for saga_id, definition, state, reason, results, snapshot, now, _ in batch.inserts:
            sagas[saga_id] = [definition, state, reason, results, snapshot, now, now, None]
        for state, reason, results, snapshot, now, saga_id in batch.updates:
            saga = sagas[saga_id]
            saga[1:5] = state, reason, results, snapshot
            saga[6] = now
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

    @staticmethod
    def _status(saga_id: str, saga: list[Any]) -> SagaStatus:
        definition, state, reason, results, snapshot, started_at, updated_at, resolution = saga
        return SagaStatus(
            saga_id=saga_id,
            definition=definition,
            state=state,
            reason=reason,
            results=None if results is None else loads(results),
            snapshot=None if snapshot is None else loads(snapshot),
            started_at=started_at,
            updated_at=updated_at,
            resolution=resolution,
        )

    async def status(self, saga_id: str) -> SagaStatus | None:
        self._check_open()
        saga = self._sagas.get(saga_id)
        return None if saga is None else self._status(saga_id, saga)

    async def sagas(self, states: Collection[str] | None = None) -> list[SagaStatus]:
        self._check_open()
        check_states(states)
        wanted = None if states is None else frozenset(states)
        return [
            self._status(saga_id, saga)
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

    def transaction(self, participant: str) -> _MemoryTransaction:
        self._check_open()
        return _MemoryTransaction(self, participant)


class _MemoryTransaction:
    """A participant transaction: reads see committed entries and this transaction's own writes;
    writes are staged and applied on a clean exit. The store's participant lock is taken at the
    first read (or at the commit), so transactions that read the inbox run one at a time."""

    __slots__ = ("_locked", "_participant", "_puts", "_records", "_store")

    def __init__(self, store: MemoryStore, participant: str) -> None:
        self._store = store
        self._participant = participant
        self._puts: dict[str, tuple[str, str | None, str | None, str]] = {}
        self._records: list[str] = []  # one JSON list per append_trace
        self._locked = False

    async def __aenter__(self) -> _MemoryTransaction:
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
                participant = self._participant
                for key, row in self._puts.items():
                    store._inbox[participant, key] = row
                store._trace.extend(self._records)
        finally:
            if self._locked:
                self._locked = False
                self._store._participant_lock.release()

    async def inbox_get(self, key: str) -> InboxEntry | None:
        staged = self._puts.get(key)
        if staged is not None:
            return decode_entry(staged)
        await self._begin()
        row = self._store._inbox.get((self._participant, key))
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
