"""The PostgreSQL store's participant side: a batch of commands in one transaction, each command in
a savepoint of its own (the SQLite store's design, :mod:`.sqlite_inbox`, on a pooled connection).

Why it is built this way:

- A batch holds one pooled connection from its first statement to its end; the batches and
  transactions of one store object take one asyncio lock, so they run one at a time (the
  protocol's word), while other processes' run beside them.
- Between processes, reading an inbox key first takes a transaction-scoped advisory lock on
  ``(participant, key)``: two workers handed the same command (at least once) take turns, and
  the second reads the first's inbox row, so the effect runs once. A batch takes the locks of
  every key it reads ahead in one sorted statement, so two batches cannot deadlock.
- Inbox writes and ledger records are staged in Python and written with the ``COMMIT``; a
  command's ``SAVEPOINT`` exists in the database only once its handler runs SQL of its own, and
  ``RELEASE``/``ROLLBACK TO`` wait for the next statement. What a failed command staged is
  dropped; what its SQL did is rolled back to its savepoint.
- A statement, once sent, runs to its end even if the task awaiting it is cancelled (a handler's
  timeout): the next statement, a ``ROLLBACK TO`` say, relies on what it did.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable, Sequence
from typing import Any, TypeAlias

import psycopg
from psycopg_pool import AsyncConnectionPool

from . import postgres_schema as _sql
from .store import InboxEntry
from .store_encoding import InboxRow, decode_entry, dumps, encode_entry, encode_records, loads

__all__ = [
    "begin",
    "Connection",
    "Cursor",
    "PostgresBatch",
    "PostgresSavepoint",
    "PostgresTransaction",
]

_IDLE = psycopg.pq.TransactionStatus.IDLE

Connection: TypeAlias = psycopg.AsyncConnection[tuple[Any, ...]]
Cursor: TypeAlias = psycopg.AsyncCursor[tuple[Any, ...]]
_At = tuple[str, str]
"""(participant, idempotency key)."""


async def begin(conn: Connection) -> None:
    """Open a transaction on ``conn`` (in pipeline mode: queued with what follows, no round trip
    of its own). The pools' connections are in autocommit, so that a one-statement operation
    pays no BEGIN and COMMIT; a transaction of several statements starts with this."""
    if conn.info.transaction_status == _IDLE:
        await conn.execute("BEGIN")


class PostgresBatch:
    """A :class:`~sagafsm.runtime.store.ParticipantBatch` (see the module docstring)."""

    __slots__ = ("_cache", "_conn", "_count", "_lock", "_locked", "_pending", "_pool", "_puts",
                 "_records")  # fmt: skip

    def __init__(self, lock: asyncio.Lock, pool: AsyncConnectionPool[Connection]) -> None:
        self._lock = lock
        self._pool = pool
        self._locked = False
        self._conn: Connection | None = None
        self._pending: list[str] = []
        """Savepoint statements to run first in the next hop."""
        self._puts: dict[_At, InboxRow] = {}
        """Inbox writes of the savepoints released so far."""
        self._records: list[str] = []
        self._cache: dict[_At, InboxRow | None] = {}
        """Inbox entries read so far (None: no entry); their keys are locked."""
        self._count = 0

    async def __aenter__(self) -> PostgresBatch:
        return self

    async def _hop(
        self, statements: Sequence[tuple[Any, Sequence[Any]]], *, commit: bool = False
    ) -> list[tuple[Any, ...]]:
        """The pending savepoint statements, then ``statements`` (then the COMMIT), in one round
        trip; the last one's rows. The lock and a connection are taken at the first hop."""
        if not self._locked:
            await self._lock.acquire()
            self._locked = True
        if self._conn is None:
            self._conn = await self._pool.getconn()
        pending, self._pending = self._pending, []
        work = [*((sql, ()) for sql in pending), *statements]
        hop = asyncio.ensure_future(_run(self._conn, work, commit))
        try:
            return await asyncio.shield(hop)
        except asyncio.CancelledError:
            hop.add_done_callback(_retrieve)
            raise

    async def __aexit__(self, exc_type: type[BaseException] | None, *rest: object) -> None:
        try:
            if exc_type is None:
                if self._puts or self._records or self._conn is not None:
                    await self._hop(self._finish_statements(), commit=True)
            elif self._conn is not None:
                # The exception in flight says what happened: a rollback that fails too (the
                # connection broke, say) is not reported over it.
                with contextlib.suppress(Exception):
                    await self._conn.rollback()
        finally:
            conn, self._conn = self._conn, None
            if conn is not None:
                await self._pool.putconn(conn)
            if self._locked:
                self._locked = False
                self._lock.release()

    def _finish_statements(self) -> list[tuple[Any, Sequence[Any]]]:
        statements: list[tuple[Any, Sequence[Any]]] = []
        if self._puts:
            rows = [(p, k, kind, outcome, result, dumps(reason))
                    for (p, k), (kind, outcome, result, reason) in self._puts.items()]  # fmt: skip
            columns = [list(column) for column in zip(*rows, strict=True)]
            statements.append((_sql.INBOX_PUT, columns))
        if self._records:
            records = self._records
            joined = records[0] if len(records) == 1 else f"[{','.join(r[1:-1] for r in records)}]"
            statements.append((_sql.APPEND, (joined,)))
        return statements

    async def _read(self, keys: Sequence[_At]) -> None:
        """Lock these keys and read their inbox entries into the cache (one hop)."""
        columns = [[p for p, _ in keys], [k for _, k in keys]]
        rows = await self._hop([(_sql.LOCK_KEYS, columns), (_sql.INBOX_GET, columns)])
        for participant, key, kind, outcome, result, reason in rows:
            found = None if kind is None else (kind, outcome, result, loads(reason))
            self._cache[participant, key] = found

    async def prefetch(self, keys: Iterable[_At]) -> None:
        """Lock and read the inbox entries of these keys in one hop."""
        known = self._puts.keys() | self._cache.keys()
        wanted = [at for at in dict.fromkeys(keys) if at not in known]
        if wanted:
            await self._read(wanted)

    def savepoint(self, participant: str) -> PostgresSavepoint:
        self._count += 1
        return PostgresSavepoint(self, participant, f"sagafsm_{self._count}")


class PostgresSavepoint:
    """One command's part of a batch: reads see its own writes, then those of the savepoints
    released before it, then the database (read under the key's lock)."""

    dialect = "postgresql"
    """What :meth:`execute` speaks (see the protocol)."""

    __slots__ = ("_batch", "_name", "_opened", "_participant", "_puts", "_records")

    def __init__(self, batch: PostgresBatch, participant: str, name: str) -> None:
        self._batch = batch
        self._participant = participant
        self._name = name
        self._opened = False
        self._puts: dict[str, InboxRow] = {}
        self._records: list[str] = []

    async def __aenter__(self) -> PostgresSavepoint:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, *rest: object) -> None:
        batch, name = self._batch, self._name
        if exc_type is None:
            for key, row in self._puts.items():
                batch._puts[self._participant, key] = row
            batch._records.extend(self._records)
            if self._opened:
                batch._pending.append(f"RELEASE SAVEPOINT {name}")
        elif self._opened:
            batch._pending += (f"ROLLBACK TO SAVEPOINT {name}", f"RELEASE SAVEPOINT {name}")

    async def inbox_get(self, key: str) -> InboxEntry | None:
        row = self._puts.get(key)
        if row is None:
            batch, at = self._batch, (self._participant, key)
            if at in batch._puts:
                row = batch._puts[at]
            else:
                if at not in batch._cache:
                    await batch._read([at])
                row = batch._cache[at]
        return None if row is None else decode_entry(row)

    async def inbox_put(self, key: str, entry: InboxEntry) -> None:
        self._puts[key] = encode_entry(key, entry)

    async def append_trace(self, records: Sequence[tuple[Any, ...]]) -> None:
        if records:
            self._records.append(encode_records(records))

    async def execute(self, sql: str, parameters: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run one statement of the participant's own in this savepoint (psycopg placeholders,
        ``%s``); its rows (none for a statement that returns none)."""
        batch = self._batch
        if not self._opened:
            self._opened = True
            batch._pending.append(f"SAVEPOINT {self._name}")
        return await batch._hop([(sql, parameters)])


class PostgresTransaction(PostgresSavepoint):
    """A participant transaction on its own: the one savepoint of a batch of its own."""

    __slots__ = ()

    def __init__(
        self, lock: asyncio.Lock, pool: AsyncConnectionPool[Connection], participant: str
    ) -> None:
        super().__init__(PostgresBatch(lock, pool), participant, "sagafsm_1")

    async def __aexit__(self, exc_type: type[BaseException] | None, *rest: object) -> None:
        try:
            await super().__aexit__(exc_type, *rest)
        finally:
            await self._batch.__aexit__(exc_type, *rest)


async def _run(
    conn: Connection, work: Sequence[tuple[Any, Sequence[Any]]], commit: bool = False
) -> list[tuple[Any, ...]]:
    """The statements (and the COMMIT) in one round trip (psycopg's pipeline mode), the first
    hop's with the BEGIN (the pool's connections are in autocommit); the last statement's
    rows."""
    if len(work) == 1 and not commit and conn.info.transaction_status != _IDLE:
        cursor = await conn.execute(*work[0])
        return await cursor.fetchall() if cursor.description is not None else []
    async with conn.pipeline():
        await begin(conn)
        cursors = [await conn.execute(sql, parameters) for sql, parameters in work]
        if commit:
            await conn.commit()
    last = cursors[-1] if cursors else None
    return await last.fetchall() if last is not None and last.description is not None else []


def _retrieve(hop: asyncio.Future[Any]) -> None:
    if not hop.cancelled():
        hop.exception()
