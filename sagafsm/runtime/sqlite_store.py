"""The SQLite store: the embedded default, one file shared by the orchestrator, its participants and
``sagafsm status``, each process with a :class:`SqliteStore` of its own.

Why it is built this way:

- stdlib :mod:`sqlite3` on a dedicated thread per connection (a one-worker executor), and each
  store method one hop running a whole synchronous function: the event loop never blocks on the
  disk, and a commit pays one thread handoff however many statements it runs.
- WAL with ``synchronous=NORMAL``: a committed transaction survives a killed process (what the
  crash tests kill); ``FULL`` adds an fsync per commit, for power loss. Readers never wait for the
  writer. ``isolation_level=None`` and explicit ``BEGIN IMMEDIATE``: a write transaction takes the
  write lock when it starts, so it cannot fail half-way because another process wrote meanwhile
  (a deferred transaction that upgrades can, and then ``busy_timeout`` does not help).
- Writes of one store object (orchestrator commits and participant transactions) also take one
  asyncio lock, so they queue in the event loop instead of polling SQLite's lock in a sleep loop.

Batches are checked and encoded by :class:`~sagafsm.runtime.memory_store.EncodedBatch`, the same
code the memory store runs, so both refuse the same batches.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
from collections.abc import Callable, Collection, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Final, TypeVar

from ..errors import InvalidArgument
from .errors import StoreError
from .memory_store import (
    DEFAULT_RETENTION,
    EncodedBatch,
    check_retention,
    check_states,
    decode_entry,
    decode_records,
    encode_entry,
    encode_records,
    loads,
)
from .sqlite_schema import inspect, migrate
from .store import Commit, InboxEntry, OutboxRow, SagaStatus, StoredSaga, TimerRow

__all__ = ["SqliteStore"]

_T = TypeVar("_T")

SYNCHRONOUS: Final = ("NORMAL", "FULL")

_BEGIN: Final = "BEGIN IMMEDIATE"
_COMMIT: Final = "COMMIT"
_ROLLBACK: Final = "ROLLBACK"
_INSERT_SAGA: Final = (
    "INSERT INTO sagafsm_sagas (saga_id, definition, state, reason, results, snapshot, "
    "started_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)
_UPDATE_SAGA: Final = (
    "UPDATE sagafsm_sagas SET state = ?, reason = ?, results = ?, snapshot = ?, updated_at = ? "
    "WHERE saga_id = ?"
)
_SAGA_EXISTS: Final = "SELECT 1 FROM sagafsm_sagas WHERE saga_id = ?"
_INSERT_OUTBOX: Final = "INSERT INTO sagafsm_outbox (saga_id, message) VALUES (?, ?)"
_LAST_ID: Final = "SELECT last_insert_rowid()"
_ARM: Final = "INSERT OR REPLACE INTO sagafsm_timers (saga_id, timer_id, due) VALUES (?, ?, ?)"
_CANCEL: Final = "DELETE FROM sagafsm_timers WHERE saga_id = ?"
_APPEND: Final = "INSERT INTO sagafsm_trace (records) VALUES (?)"
# Inbound transport rows handled by this batch leave with it: a crash redelivers both or neither.
_CONSUME: Final = "DELETE FROM sagafsm_messages WHERE id = ?"
_SENT: Final = "DELETE FROM sagafsm_outbox WHERE id BETWEEN ? AND ?"
_BOOT: Final = "UPDATE sagafsm_meta SET value = value + 1 WHERE key = 'boot' RETURNING value"
_UNSENT: Final = "SELECT id, saga_id, message FROM sagafsm_outbox ORDER BY id"
_RUNNING: Final = (
    "SELECT saga_id, definition, snapshot FROM sagafsm_sagas WHERE snapshot IS NOT NULL "
    "ORDER BY start_seq"
)
_TIMERS: Final = "SELECT saga_id, timer_id, due FROM sagafsm_timers ORDER BY due, saga_id"
_STATUS_COLUMNS: Final = (
    "SELECT saga_id, definition, state, reason, results, snapshot, started_at, updated_at "
    "FROM sagafsm_sagas"
)
_STATUS: Final = _STATUS_COLUMNS + " WHERE saga_id = ?"
_SAGAS: Final = _STATUS_COLUMNS + " ORDER BY start_seq"
_TRACE: Final = "SELECT records FROM sagafsm_trace ORDER BY seq"
_PRUNE: Final = "DELETE FROM sagafsm_sagas WHERE snapshot IS NULL AND updated_at < ?"
_INBOX_GET: Final = (
    "SELECT kind, outcome, result, reason FROM sagafsm_inbox WHERE participant = ? AND key = ?"
)
_INBOX_PUT: Final = (
    "INSERT OR REPLACE INTO sagafsm_inbox (participant, key, kind, outcome, result, reason) "
    "VALUES (?, ?, ?, ?, ?, ?)"
)


def _rollback(conn: sqlite3.Connection) -> None:
    if conn.in_transaction:
        conn.execute(_ROLLBACK)


def _write(conn: sqlite3.Connection, statements: Sequence[tuple[str, list[Any]]]) -> None:
    """One transaction of ``executemany`` calls (empty ones skipped)."""
    conn.execute(_BEGIN)
    try:
        for sql, rows in statements:
            if rows:
                conn.executemany(sql, rows)
        conn.execute(_COMMIT)
    except BaseException:
        _rollback(conn)
        raise


def _commit(
    conn: sqlite3.Connection, batch: EncodedBatch, consumed: Sequence[int]
) -> list[OutboxRow]:
    conn.execute(_BEGIN)
    try:
        if batch.inserts:
            try:
                conn.executemany(_INSERT_SAGA, batch.inserts)
            except sqlite3.IntegrityError:
                _rollback(conn)
                for row in batch.inserts:
                    if conn.execute(_SAGA_EXISTS, (row[0],)).fetchone():
                        raise InvalidArgument(
                            f"saga {row[0]!r}: started twice (it is already stored)"
                        ) from None
                raise
        updates = batch.updates
        if updates and conn.executemany(_UPDATE_SAGA, updates).rowcount != len(updates):
            for row in updates:
                if not conn.execute(_SAGA_EXISTS, (row[5],)).fetchone():
                    raise InvalidArgument(f"saga {row[5]!r}: a commit for a saga never started")
        rows = []
        if batch.outbox:
            conn.executemany(_INSERT_OUTBOX, batch.outbox)
            # Ids are consecutive: AUTOINCREMENT under the write lock this transaction holds.
            next_id = conn.execute(_LAST_ID).fetchone()[0] - len(batch.outbox) + 1
            for (saga_id, _), message in zip(batch.outbox, batch.messages, strict=True):
                rows.append(OutboxRow(next_id, saga_id, message))
                next_id += 1
        if batch.timers:
            cancel = []
            arm = []
            for saga_id, timer in batch.timers.items():
                if timer is None:
                    cancel.append((saga_id,))
                else:
                    arm.append((saga_id, timer.timer_id, timer.due))
            if cancel:
                conn.executemany(_CANCEL, cancel)
            if arm:
                conn.executemany(_ARM, arm)
        if batch.records is not None:
            conn.execute(_APPEND, (batch.records,))
        if consumed:
            conn.executemany(_CONSUME, [(id_,) for id_ in consumed])
        conn.execute(_COMMIT)
    except BaseException:
        _rollback(conn)
        raise
    return rows


def _runs(ids: Sequence[int]) -> list[tuple[int, int]]:
    """Ids as ``(first, last)`` runs of consecutive ids: a batch's outbox rows are one run, so
    marking them sent is one ranged DELETE."""
    runs: list[tuple[int, int]] = []
    first = last = None
    for id_ in sorted(ids):
        if last is not None and id_ <= last + 1:
            last = id_
            continue
        if first is not None and last is not None:
            runs.append((first, last))
        first = last = id_
    if first is not None and last is not None:
        runs.append((first, last))
    return runs


def _boot(conn: sqlite3.Connection) -> int:
    conn.execute(_BEGIN)
    try:
        rows = conn.execute(_BOOT).fetchall()
        conn.execute(_COMMIT)
    except BaseException:
        _rollback(conn)
        raise
    value: int = rows[0][0]
    return value


def _fetch(conn: sqlite3.Connection, sql: str, parameters: Sequence[Any]) -> list[Any]:
    return conn.execute(sql, parameters).fetchall()


def _prune(conn: sqlite3.Connection, finished_before: float) -> int:
    conn.execute(_BEGIN)
    try:
        count = conn.execute(_PRUNE, (finished_before,)).rowcount
        conn.execute(_COMMIT)
    except BaseException:
        _rollback(conn)
        raise
    return count


def _status(row: Sequence[Any]) -> SagaStatus:
    saga_id, definition, state, reason, results, snapshot, started_at, updated_at = row
    return SagaStatus(
        saga_id=saga_id,
        definition=definition,
        state=state,
        reason=reason,
        results=None if results is None else loads(results),
        snapshot=None if snapshot is None else loads(snapshot),
        started_at=started_at,
        updated_at=updated_at,
    )


class SqliteStore:
    """:class:`~sagafsm.runtime.store.Store` and
    :class:`~sagafsm.runtime.store.ParticipantStore` in one SQLite file (see the module docstring).

    ``synchronous`` is ``"NORMAL"`` (default) or ``"FULL"``; ``busy_timeout`` is how many seconds
    a write waits for another process's write lock; ``retention`` is how long the runtime keeps a
    finished saga's status before it calls :meth:`prune` (this class never prunes by itself).

    Participant transactions share one connection (and thread) of their own, opened at the first
    one: they run one at a time per store object, from their first statement to their end, and the
    orchestrator's writes on this object wait for them. Processes that want participant
    transactions in parallel open stores of their own; SQLite then serialises their writes.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        synchronous: str = "NORMAL",
        busy_timeout: float = 10.0,
        retention: float = DEFAULT_RETENTION,
    ) -> None:
        self.path = os.fspath(path)
        if not isinstance(self.path, str) or not self.path:
            raise InvalidArgument(f"a SQLite store needs a file path, got {path!r}")
        if synchronous not in SYNCHRONOUS:
            raise InvalidArgument(
                f"{self.path}: synchronous must be one of {', '.join(SYNCHRONOUS)}, "
                f"got {synchronous!r}"
            )
        if not isinstance(busy_timeout, int | float) or not 0 <= busy_timeout < float("inf"):
            raise InvalidArgument(
                f"{self.path}: busy_timeout must be a finite number of seconds >= 0, "
                f"got {busy_timeout!r}"
            )
        self.synchronous = synchronous
        self.busy_timeout = float(busy_timeout)
        self.retention = check_retention(retention)
        self._executor: ThreadPoolExecutor | None = None
        self._conn: sqlite3.Connection | None = None
        self._participant_executor: ThreadPoolExecutor | None = None
        self._participant_conn: sqlite3.Connection | None = None
        self._write_lock = asyncio.Lock()

    def __repr__(self) -> str:
        return f"SqliteStore({self.path!r}, open={self._executor is not None})"

    # -- connections ------------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        """A connection with this store's settings (runs on the connection's own thread)."""
        conn = sqlite3.connect(self.path, timeout=self.busy_timeout, isolation_level=None)
        try:
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if mode != "wal":
                raise StoreError(f"{self.path}: SQLite cannot use WAL here (journal mode {mode})")
            conn.execute(f"PRAGMA synchronous = {self.synchronous}")
        except BaseException:
            conn.close()
            raise
        return conn

    def _create(self) -> sqlite3.Connection:
        """Check the file, then connect and create or migrate the schema (one transaction)."""
        inspect(self.path)  # refuses before SQLite touches anything
        try:
            conn = self._connect()
        except sqlite3.Error as error:
            raise StoreError(f"{self.path}: cannot be opened ({error})") from None
        try:
            conn.execute(_BEGIN)
            migrate(conn, self.path)
            conn.execute(_COMMIT)
        except BaseException as error:
            _rollback(conn)
            conn.close()
            if isinstance(error, sqlite3.Error):
                raise StoreError(f"{self.path}: cannot be opened ({error})") from None
            raise
        return conn

    async def open(self) -> None:
        """Create the schema, or check and migrate it. :class:`StoreError` (one line naming the
        path) for a directory, a missing or unwritable directory, a file that is not SQLite, a
        SQLite file of someone else's, or a newer schema; the file is then left as it was."""
        if self._executor is not None:
            return
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sagafsm-sqlite")
        try:
            conn = await asyncio.get_running_loop().run_in_executor(executor, self._create)
        except BaseException:
            executor.shutdown(wait=False)
            raise
        self._executor, self._conn = executor, conn
        self._write_lock = asyncio.Lock()  # the object may be reopened under another loop

    async def close(self) -> None:
        loop = asyncio.get_running_loop()
        for executor, conn in (
            (self._participant_executor, self._participant_conn),
            (self._executor, self._conn),
        ):
            if executor is not None:
                if conn is not None:
                    await loop.run_in_executor(executor, conn.close)
                executor.shutdown(wait=False)
        self._executor = self._conn = None
        self._participant_executor = self._participant_conn = None

    async def __aenter__(self) -> SqliteStore:
        await self.open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def _call(self, function: Callable[..., _T], *args: Any) -> _T:
        """One hop: run ``function(connection, *args)`` on the connection's thread."""
        executor, conn = self._executor, self._conn
        if executor is None:
            raise StoreError(f"{self.path}: the store is not open")
        return await asyncio.get_running_loop().run_in_executor(executor, function, conn, *args)

    async def pragmas(self) -> dict[str, Any]:
        """The connection's ``journal_mode``, ``synchronous`` (as a name) and ``busy_timeout``
        (ms), read back from SQLite: what the store really runs with."""
        ((journal,),) = await self._call(_fetch, "PRAGMA journal_mode", ())
        ((synchronous,),) = await self._call(_fetch, "PRAGMA synchronous", ())
        ((timeout,),) = await self._call(_fetch, "PRAGMA busy_timeout", ())
        names = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}
        return {"journal_mode": journal, "synchronous": names[synchronous], "busy_timeout": timeout}

    # -- the orchestrator's side --------------------------------------------------------------

    async def boot(self) -> int:
        async with self._write_lock:
            return await self._call(_boot)

    async def commit(
        self, commits: Sequence[Commit], consumed: Sequence[int] = ()
    ) -> list[OutboxRow]:
        batch = EncodedBatch(commits)  # here, while the caller's dicts cannot change
        async with self._write_lock:
            return await self._call(_commit, batch, consumed)

    async def mark_sent(self, ids: Sequence[int], records: Sequence[tuple[Any, ...]] = ()) -> None:
        if not ids and not records:
            return
        statements = [
            (_SENT, _runs(ids)),
            (_APPEND, [(encode_records(records),)] if records else []),
        ]
        async with self._write_lock:
            await self._call(_write, statements)

    async def append_trace(self, records: Sequence[tuple[Any, ...]]) -> None:
        if not records:
            return
        statements = [(_APPEND, [(encode_records(records),)])]
        async with self._write_lock:
            await self._call(_write, statements)

    async def unsent(self) -> list[OutboxRow]:
        rows = await self._call(_fetch, _UNSENT, ())
        return [OutboxRow(id_, saga_id, loads(message)) for id_, saga_id, message in rows]

    async def running(self) -> list[StoredSaga]:
        rows = await self._call(_fetch, _RUNNING, ())
        return [StoredSaga(saga_id, definition, loads(snap)) for saga_id, definition, snap in rows]

    async def timers(self) -> list[TimerRow]:
        rows = await self._call(_fetch, _TIMERS, ())
        return [TimerRow(saga_id, timer_id, due) for saga_id, timer_id, due in rows]

    async def status(self, saga_id: str) -> SagaStatus | None:
        rows = await self._call(_fetch, _STATUS, (saga_id,))
        return _status(rows[0]) if rows else None

    async def sagas(self, states: Collection[str] | None = None) -> list[SagaStatus]:
        check_states(states)
        sql: str = _SAGAS
        parameters: tuple[str, ...] = ()
        if states is not None:
            wanted = tuple(states)
            if not wanted:
                return []
            marks = ", ".join("?" * len(wanted))
            sql = f"{_STATUS_COLUMNS} WHERE state IN ({marks}) ORDER BY start_seq"
            parameters = wanted
        return [_status(row) for row in await self._call(_fetch, sql, parameters)]

    async def trace(self) -> list[tuple[Any, ...]]:
        rows = await self._call(_fetch, _TRACE, ())
        return decode_records(chunk for (chunk,) in rows)

    async def prune(self, finished_before: float) -> int:
        async with self._write_lock:
            return await self._call(_prune, finished_before)

    # -- the participants' side ---------------------------------------------------------------

    def transaction(self, participant: str) -> _SqliteTransaction:
        if self._executor is None:
            raise StoreError(f"{self.path}: the store is not open")
        return _SqliteTransaction(self, participant)

    async def _participant_call(self, function: Callable[..., _T], *args: Any) -> _T:
        executor = self._participant_executor
        loop = asyncio.get_running_loop()
        if executor is None:
            if self._executor is None:
                raise StoreError(f"{self.path}: the store is not open")
            executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sagafsm-participant")
            self._participant_executor = executor
            self._participant_conn = await loop.run_in_executor(executor, self._connect)
        return await loop.run_in_executor(executor, function, self._participant_conn, *args)


def _begin_and(
    conn: sqlite3.Connection, begin: bool, sql: str, parameters: Sequence[Any]
) -> list[Any]:
    if begin:
        conn.execute(_BEGIN)
    return conn.execute(sql, parameters).fetchall()


def _finish(
    conn: sqlite3.Connection, begin: bool, puts: list[tuple[Any, ...]], records: list[str]
) -> None:
    if begin:
        conn.execute(_BEGIN)
    try:
        if puts:
            conn.executemany(_INBOX_PUT, puts)
        if records:
            conn.executemany(_APPEND, [(chunk,) for chunk in records])
        conn.execute(_COMMIT)
    except BaseException:
        _rollback(conn)
        raise


class _SqliteTransaction:
    """A participant transaction. ``BEGIN IMMEDIATE`` rides on its first statement (an inbox read
    or :meth:`execute`); inbox writes and ledger records are staged and written with the
    ``COMMIT``, so a typical handled message costs two hops. Reads see this transaction's staged
    inbox writes."""

    __slots__ = ("_begun", "_locked", "_participant", "_puts", "_records", "_store")

    def __init__(self, store: SqliteStore, participant: str) -> None:
        self._store = store
        self._participant = participant
        self._puts: dict[str, tuple[str, str | None, str | None, str]] = {}
        self._records: list[str] = []  # one JSON list per append_trace
        self._locked = False
        self._begun = False

    async def __aenter__(self) -> _SqliteTransaction:
        return self

    async def _lock(self) -> bool:
        """Take the store's write lock if this transaction does not hold it yet; returns whether
        the next statement must begin the SQLite transaction."""
        if not self._locked:
            await self._store._write_lock.acquire()
            self._locked = True
        begin = not self._begun
        self._begun = True  # set before the hop: the hop runs even if this task is cancelled
        return begin

    async def __aexit__(self, exc_type: type[BaseException] | None, *rest: object) -> None:
        store = self._store
        try:
            if exc_type is None:
                if self._puts or self._records or self._begun:
                    begin = await self._lock()
                    puts = [(self._participant, key, *row) for key, row in self._puts.items()]
                    await store._participant_call(_finish, begin, puts, self._records)
            elif self._begun:
                await store._participant_call(_rollback)
        finally:
            if self._locked:
                self._locked = False
                store._write_lock.release()

    async def inbox_get(self, key: str) -> InboxEntry | None:
        staged = self._puts.get(key)
        if staged is not None:
            return decode_entry(staged)
        begin = await self._lock()
        rows = await self._store._participant_call(
            _begin_and, begin, _INBOX_GET, (self._participant, key)
        )
        return decode_entry(rows[0]) if rows else None

    async def inbox_put(self, key: str, entry: InboxEntry) -> None:
        self._puts[key] = encode_entry(key, entry)

    async def append_trace(self, records: Sequence[tuple[Any, ...]]) -> None:
        if records:
            self._records.append(encode_records(records))

    async def execute(self, sql: str, parameters: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run one statement of the participant's own in this transaction; its rows."""
        begin = await self._lock()
        return await self._store._participant_call(_begin_and, begin, sql, parameters)
