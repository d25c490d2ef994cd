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

This module is the asyncio side of the orchestrator's store (threads, locks, open and close);
every statement it runs, and the synchronous function running it, is in :mod:`.sqlite_schema`;
the participants' transactions, batches and savepoints are in :mod:`.sqlite_inbox`. Batches are
checked and encoded by :class:`~sagafsm.runtime.store_encoding.EncodedBatch`, the code the memory
store runs, so both refuse the same batches.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
from collections.abc import Callable, Collection, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Final, TypeVar

from ..errors import InvalidArgument
from . import sqlite_schema as _sql
from .errors import StoreError
from .sqlite_inbox import SqliteBatch, SqliteTransaction
from .store import Commit, OutboxRow, RetryRequest, SagaStatus, StoredSaga, TimerRow
from .store_encoding import (
    DEFAULT_RETENTION,
    RESOLVABLE,
    EncodedBatch,
    check_retention,
    check_states,
    decode_records,
    encode_records,
    loads,
    status_from_row,
)

__all__ = ["SqliteStore"]

_T = TypeVar("_T")

SYNCHRONOUS: Final = ("NORMAL", "FULL")


class SqliteStore:
    """:class:`~sagafsm.runtime.store.Store` and
    :class:`~sagafsm.runtime.store.ParticipantStore` in one SQLite file (see the module docstring).

    ``synchronous`` is ``"NORMAL"`` (default) or ``"FULL"``; ``busy_timeout`` is how many seconds
    a write waits for another process's write lock; ``retention`` is how long the runtime keeps a
    finished saga's status before it calls :meth:`prune` (this class never prunes by itself).
    ``migrate=False`` opens only a store already at this version's schema (an operator's command
    must not upgrade a file under a running runtime of the version before): a missing, empty or
    older store is refused with :class:`StoreError`. ``adopt=True`` lets an application's own
    database (tables of its own, none of sagafsm's) become the store: sagafsm's tables, all named
    ``sagafsm_*``, are created beside the application's, so a handler's writes to them and the
    inbox commit in one transaction. Without it such a file is refused, in case the path is a typo.

    Participant transactions share one connection (and thread) of their own, opened at the first
    one: they run one at a time per store object, from their first statement to their end, and the
    orchestrator's writes on this object wait for them. Processes that want participant
    transactions in parallel open stores of their own; SQLite then serialises their writes.
    """

    dialect: Final = "sqlite"
    """The SQL its participant transactions speak (``ParticipantTx.dialect``)."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        synchronous: str = "NORMAL",
        busy_timeout: float = 10.0,
        retention: float = DEFAULT_RETENTION,
        migrate: bool = True,
        adopt: bool = False,
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
        for flag, value in (("migrate", migrate), ("adopt", adopt)):
            if not isinstance(value, bool):
                raise InvalidArgument(f"{self.path}: {flag} must be a bool, got {value!r}")
        self.synchronous = synchronous
        self.migrate = migrate
        self.adopt = adopt
        self.busy_timeout = float(busy_timeout)
        self.retention = check_retention(retention)
        self._executor: ThreadPoolExecutor | None = None
        self._conn: sqlite3.Connection | None = None
        self._participant_executor: ThreadPoolExecutor | None = None
        self._participant_conn: sqlite3.Connection | None = None
        self._write_lock = asyncio.Lock()

    @property
    def name(self) -> str:
        """How messages name this store (as the other stores' ``name``): its path."""
        return self.path

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
        found = _sql.inspect(self.path, adopt=self.adopt)  # refuses before SQLite touches it
        if not self.migrate and found < _sql.SCHEMA_VERSION:
            if found == 0:
                raise StoreError(f"{self.path}: not a sagafsm store (it holds no schema)")
            raise StoreError(
                f"{self.path}: its schema is version {found}, older than this sagafsm's "
                f"{_sql.SCHEMA_VERSION}; this command does not upgrade it (a runtime of this "
                "version does, when it opens the store)"
            )
        try:
            conn = self._connect()
        except sqlite3.Error as error:
            raise StoreError(f"{self.path}: cannot be opened ({error})") from None
        try:
            conn.execute(_sql.BEGIN)
            _sql.migrate(conn, self.path, adopt=self.adopt)
            conn.execute(_sql.COMMIT)
        except BaseException as error:
            _sql.rollback(conn)
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
        """Close both connections. The store counts as closed from the first moment: a hop asked
        for meanwhile is refused, and one asked for before runs first (each connection's hops
        and its close queue on its own thread)."""
        loop = asyncio.get_running_loop()
        participants, executor, conn = self._participant_executor, self._executor, self._conn
        self._executor = self._conn = self._participant_executor = None
        if participants is not None:
            await loop.run_in_executor(participants, self._close_participant_connection)
            participants.shutdown(wait=False)
        if executor is not None:
            if conn is not None:
                await loop.run_in_executor(executor, conn.close)
            executor.shutdown(wait=False)

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
        ((journal,),) = await self._call(_sql.fetch, "PRAGMA journal_mode", ())
        ((synchronous,),) = await self._call(_sql.fetch, "PRAGMA synchronous", ())
        ((timeout,),) = await self._call(_sql.fetch, "PRAGMA busy_timeout", ())
        names = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}
        return {"journal_mode": journal, "synchronous": names[synchronous], "busy_timeout": timeout}

    # -- the orchestrator's side --------------------------------------------------------------

    async def boot(self) -> int:
        async with self._write_lock:
            return await self._call(_sql.boot)

    async def commit(
        self, commits: Sequence[Commit], consumed: Sequence[int] = ()
    ) -> list[OutboxRow]:
        batch = EncodedBatch(commits)  # here, while the caller's dicts cannot change
        async with self._write_lock:
            return await self._call(_sql.commit, batch, consumed)

    async def mark_sent(self, ids: Sequence[int], records: Sequence[tuple[Any, ...]] = ()) -> None:
        if not ids and not records:
            return
        statements = [
            (_sql.SENT, _sql.runs(ids)),
            (_sql.APPEND, [(encode_records(records),)] if records else []),
        ]
        async with self._write_lock:
            await self._call(_sql.write, statements)

    async def append_trace(self, records: Sequence[tuple[Any, ...]]) -> None:
        if not records:
            return
        statements = [(_sql.APPEND, [(encode_records(records),)])]
        async with self._write_lock:
            await self._call(_sql.write, statements)

    async def unsent(self) -> list[OutboxRow]:
        rows = await self._call(_sql.fetch, _sql.UNSENT, ())
        return [OutboxRow(id_, saga_id, loads(message)) for id_, saga_id, message in rows]

    async def running(self) -> list[StoredSaga]:
        rows = await self._call(_sql.fetch, _sql.RUNNING, ())
        return [StoredSaga(saga_id, definition, loads(snap)) for saga_id, definition, snap in rows]

    async def timers(self) -> list[TimerRow]:
        rows = await self._call(_sql.fetch, _sql.TIMERS, ())
        return [TimerRow(saga_id, timer_id, due) for saga_id, timer_id, due in rows]

    async def status(self, saga_id: str) -> SagaStatus | None:
        rows = await self._call(_sql.fetch, _sql.STATUS, (saga_id,))
        return status_from_row(rows[0]) if rows else None

    async def sagas(self, states: Collection[str] | None = None) -> list[SagaStatus]:
        check_states(states)
        sql: str = _sql.SAGAS
        parameters: tuple[str, ...] = ()
        if states is not None:
            wanted = tuple(states)
            if not wanted:
                return []
            marks = ", ".join("?" * len(wanted))
            sql = f"{_sql.STATUS_COLUMNS} WHERE state IN ({marks}) ORDER BY start_seq"
            parameters = wanted
        return [status_from_row(row) for row in await self._call(_sql.fetch, sql, parameters)]

    async def trace(self) -> list[tuple[Any, ...]]:
        rows = await self._call(_sql.fetch, _sql.TRACE, ())
        return decode_records(chunk for (chunk,) in rows)

    async def prune(self, finished_before: float) -> int:
        """Drop the status rows of finished sagas whose last commit's ``now`` is earlier than
        ``finished_before``; running sagas, the outbox and the trace are kept."""
        async with self._write_lock:
            return await self._call(_sql.prune, finished_before)

    async def resolve(
        self, saga_id: str, resolution: str, records: Sequence[tuple[Any, ...]] = ()
    ) -> bool:
        encoded = encode_records(records) if records else None
        async with self._write_lock:
            return await self._call(_sql.resolve, (str(resolution), saga_id, RESOLVABLE), encoded)

    async def request_retry(self, saga_id: str, note: str, now: float) -> bool:
        async with self._write_lock:
            return await self._call(_sql.request_retry, (str(note), float(now), saga_id))

    async def retry_requests(self) -> list[RetryRequest]:
        rows = await self._call(_sql.fetch, _sql.RETRY_REQUESTS, ())
        return [
            RetryRequest(saga_id, name, loads(parked), note) for saga_id, name, parked, note in rows
        ]

    # -- the participants' side ---------------------------------------------------------------

    def transaction(self, participant: str) -> SqliteTransaction:
        if self._executor is None:
            raise StoreError(f"{self.path}: the store is not open")
        return SqliteTransaction(self._write_lock, self._participant_call, participant)

    def batch(self) -> SqliteBatch:
        if self._executor is None:
            raise StoreError(f"{self.path}: the store is not open")
        return SqliteBatch(self._write_lock, self._participant_call)

    async def _participant_call(self, function: Callable[..., _T], *args: Any) -> _T:
        """One hop on the participants' thread, whose connection its first hop opens. Once
        submitted, the hop runs to its end even if the caller is cancelled: the next hop relies
        on what it did."""
        if self._executor is None:
            raise StoreError(f"{self.path}: the store is not open")
        executor = self._participant_executor
        if executor is None:
            executor = ThreadPoolExecutor(1, thread_name_prefix="sagafsm-participant")
            self._participant_executor = executor
        loop = asyncio.get_running_loop()
        hop = loop.run_in_executor(executor, self._on_participant_thread, function, args)
        try:
            return await asyncio.shield(hop)
        except asyncio.CancelledError:
            hop.add_done_callback(_retrieve)  # nobody awaits it now: its error is no news
            raise

    def _on_participant_thread(self, function: Callable[..., _T], args: tuple[Any, ...]) -> _T:
        """Runs ``function(connection, *args)`` on the participants' thread, which alone touches
        that connection (opening it here, at the first hop, leaves no moment at which a close
        could miss a connection being opened)."""
        conn = self._participant_conn
        if conn is None:
            conn = self._participant_conn = self._connect()
        return function(conn, *args)

    def _close_participant_connection(self) -> None:
        conn, self._participant_conn = self._participant_conn, None
        if conn is not None:
            conn.close()  # rolls back a transaction left open (its batch was abandoned)


def _retrieve(hop: asyncio.Future[Any]) -> None:
    if not hop.cancelled():
        hop.exception()
