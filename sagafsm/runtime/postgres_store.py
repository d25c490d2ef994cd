"""The PostgreSQL store: the one to share between machines, several orchestrator workers and
participant services on one database, each process with a :class:`PostgresStore` of its own.

Why it is built this way:

- psycopg 3's asyncio connections from a :class:`psycopg_pool.AsyncConnectionPool`: the event
  loop never blocks on the network, and a participant transaction holds one connection while
  orchestrator commits go on on another.
- A commit is one transaction of a few statements, each taking the whole batch as arrays
  (``unnest``): its cost grows with the number of statements, not of sagas.
- The semantics are the SQLite store's, checked by the same tests: batches are checked and
  encoded by :class:`~sagafsm.runtime.store_encoding.EncodedBatch` (the memory and SQLite stores'
  code), and a refused batch is refused before anything that draws an id runs, so that ids come
  out as they do on the other stores.
- The pool's connections are in autocommit: a read or a one-statement write is one statement
  and one round trip, with no BEGIN and COMMIT of its own; a transaction of several statements
  sends its ``BEGIN`` explicitly, in the pipeline with its first statements
  (:func:`begin`), so that it costs no round trip of its own either.
- Writes of one store object take one asyncio lock (outbox ids then follow commit order within
  a process, as on SQLite); between processes, a saga's row lock serialises its moves and
  advisory locks serialise participants' handling of one key (:mod:`.postgres_inbox`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Collection, Sequence
from contextlib import asynccontextmanager
from typing import Any, Final

import psycopg
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from ..errors import InvalidArgument
from . import postgres_schema as _sql
from .errors import StoreError
from .postgres_inbox import Connection, Cursor, PostgresBatch, PostgresTransaction, begin
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
from .urls import shown_url

__all__ = ["PostgresStore", "migrated"]

DEFAULT_POOL_SIZE: Final = 4


def _columns(rows: Sequence[tuple[Any, ...]], width: int) -> list[list[Any]]:
    """Rows as one list per column (the arrays a batch statement unnests)."""
    return [list(column) for column in zip(*rows, strict=True)] if rows else [[]] * width


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__


async def migrated(
    url: str, name: str, *, adopt: bool = False, upgrade: bool = True, connect_timeout: int = 10
) -> None:
    """Connect once and create, check or migrate the schema (:func:`.postgres_schema.migrate`);
    :class:`StoreError` in one line naming ``name`` if the database cannot be used."""
    try:
        conn = await psycopg.AsyncConnection.connect(url, connect_timeout=connect_timeout)
    except psycopg.Error as error:
        raise StoreError(f"{name}: cannot connect ({_one_line(error)})") from None
    try:
        await _sql.migrate(conn, name, adopt=adopt, upgrade=upgrade)
    except psycopg.Error as error:
        raise StoreError(f"{name}: cannot be opened ({_one_line(error)})") from None
    finally:
        await conn.close()


class PostgresStore:
    """:class:`~sagafsm.runtime.store.Store` and
    :class:`~sagafsm.runtime.store.ParticipantStore` in a PostgreSQL database (see the module
    docstring).

    ``url`` is a libpq connection URI (``postgresql://user:password@host:port/database``, with
    query parameters libpq knows). ``pool_size`` is the most connections this object opens (at
    least 2: participant transactions hold one while commits use another). ``connect_timeout``
    bounds each connection attempt, in seconds. ``retention``, ``migrate`` and ``adopt`` mean
    what they mean for :class:`~sagafsm.runtime.sqlite_store.SqliteStore`.
    """

    dialect: Final = "postgresql"
    """The SQL its participant transactions speak (``ParticipantTx.dialect``)."""

    def __init__(
        self,
        url: str,
        *,
        pool_size: int = DEFAULT_POOL_SIZE,
        connect_timeout: float = 10.0,
        retention: float = DEFAULT_RETENTION,
        migrate: bool = True,
        adopt: bool = False,
    ) -> None:
        if not isinstance(url, str) or not url:
            raise InvalidArgument(f"a PostgreSQL store needs a connection URL, got {url!r}")
        self.url = url
        self.name = shown_url(url)
        if pool_size.__class__ is not int or pool_size < 2:
            raise InvalidArgument(f"{self.name}: pool_size must be an int >= 2, got {pool_size!r}")
        if not isinstance(connect_timeout, int | float) or not 0 < connect_timeout < float("inf"):
            raise InvalidArgument(
                f"{self.name}: connect_timeout must be finite seconds > 0, got {connect_timeout!r}"
            )
        for flag, value in (("migrate", migrate), ("adopt", adopt)):
            if not isinstance(value, bool):
                raise InvalidArgument(f"{self.name}: {flag} must be a bool, got {value!r}")
        self.pool_size = pool_size
        self.connect_timeout = float(connect_timeout)
        self.retention = check_retention(retention)
        self.migrate = migrate
        self.adopt = adopt
        self._pool: AsyncConnectionPool[Connection] | None = None
        self._write_lock = asyncio.Lock()
        self._participant_lock = asyncio.Lock()

    def __repr__(self) -> str:
        return f"PostgresStore({self.name!r}, open={self._pool is not None})"

    # -- connections ------------------------------------------------------------------------

    async def open(self) -> None:
        """Connect, then create the schema, or check and migrate it, in one transaction.
        :class:`StoreError` (one line naming the URL, its password masked) for a server that
        cannot be reached or refuses the login, a database that is not a sagafsm store, or a
        newer schema; the database is then left as it was."""
        if self._pool is not None:
            return
        timeout = max(1, round(self.connect_timeout))
        await migrated(
            self.url, self.name, adopt=self.adopt, upgrade=self.migrate, connect_timeout=timeout
        )
        pool: AsyncConnectionPool[Connection] = AsyncConnectionPool(
            self.url,
            min_size=1,
            max_size=self.pool_size,
            kwargs={"connect_timeout": timeout, "autocommit": True},
            open=False,
            name="sagafsm",
        )
        try:
            await pool.open(wait=True, timeout=self.connect_timeout)
        except (PoolTimeout, psycopg.Error) as error:
            await pool.close()
            raise StoreError(f"{self.name}: cannot connect ({_one_line(error)})") from None
        self._pool = pool
        self._write_lock = asyncio.Lock()  # the object may be reopened under another loop
        self._participant_lock = asyncio.Lock()

    async def close(self) -> None:
        """Close the pool; the store counts as closed from the first moment."""
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()

    async def __aenter__(self) -> PostgresStore:
        await self.open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def _open_pool(self) -> AsyncConnectionPool[Connection]:
        if self._pool is None:
            raise StoreError(f"{self.name}: the store is not open")
        return self._pool

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[Connection]:
        """A pooled connection in a transaction of several statements: committed on a clean
        exit, else rolled back."""
        async with self._open_pool().connection() as conn, conn.transaction():
            yield conn

    async def _fetch(self, sql: Any, parameters: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """One statement (a transaction of its own, in autocommit); its rows."""
        async with self._open_pool().connection() as conn:
            cursor = await conn.execute(sql, parameters)
            return await cursor.fetchall() if cursor.description is not None else []

    async def _count(self, sql: Any, parameters: Sequence[Any] = ()) -> int:
        """One statement; how many rows it changed."""
        async with self._open_pool().connection() as conn:
            return (await conn.execute(sql, parameters)).rowcount

    # -- the orchestrator's side --------------------------------------------------------------

    async def boot(self) -> int:
        async with self._write_lock:
            (row,) = await self._fetch(_sql.BOOT)
        value: int = row[0]
        return value

    async def commit(
        self, commits: Sequence[Commit], consumed: Sequence[int] = ()
    ) -> list[OutboxRow]:
        batch = EncodedBatch(commits)  # here, while the caller's dicts cannot change
        async with self._write_lock, self._open_pool().connection() as conn:
            return await self._commit_on(conn, batch, consumed, self._claimed_until(commits))

    async def _commit_on(
        self,
        conn: Connection,
        batch: EncodedBatch,
        consumed: Sequence[int],
        claimed_until: float,
    ) -> list[OutboxRow]:
        """Write ``batch`` and commit, on ``conn`` (in a transaction already or not: a worker
        sharing the store holds its sagas' row locks from before it decided the moves)."""
        try:
            try:
                async with conn.pipeline():
                    await begin(conn)  # unless the caller holds its sagas' locks in one already
                    await self._write_sagas(conn, batch)
                    outbox = await self._write_rest(conn, batch, consumed, claimed_until)
                    await conn.commit()
            except BaseException:
                with contextlib.suppress(psycopg.Error):
                    await conn.rollback()
                raise
            # The COMMIT went with the last statements, in one round trip; the ids came back.
            if outbox is None:
                return []
            ids = sorted(row[0] for row in await outbox.fetchall())
        except psycopg.DataError as error:  # what text cannot hold (a NUL in a name, say)
            raise InvalidArgument(f"a commit PostgreSQL cannot keep ({_one_line(error)})") from None
        return [
            OutboxRow(id_, saga_id, message)
            for id_, (saga_id, _), message in zip(ids, batch.outbox, batch.messages, strict=True)
        ]

    @staticmethod
    async def _write_sagas(conn: Connection, batch: EncodedBatch) -> None:
        """Status rows first, checked before anything else is sent: a refused batch draws no
        outbox id (ids stay as on SQLite). One round trip, the BEGIN with it."""
        inserting = updating = None
        last = {row[-1]: row for row in batch.updates}  # each update replaces every column
        if batch.inserts:
            inserting = await conn.execute(_sql.INSERT_SAGAS, _columns(batch.inserts, 8))
        if last:
            updating = await conn.execute(_sql.UPDATE_SAGAS, _columns(list(last.values()), 7))
        if inserting is not None:
            inserted = {row[0] for row in await inserting.fetchall()}
            for row in batch.inserts:
                if row[0] not in inserted:
                    raise InvalidArgument(f"saga {row[0]!r}: started twice (it is already stored)")
        if updating is not None:
            updated = {row[0] for row in await updating.fetchall()}
            for saga_id in last:
                if saga_id not in updated:
                    raise InvalidArgument(f"saga {saga_id!r}: a commit for a saga never started")

    def _claimed_until(self, commits: Sequence[Commit]) -> float:
        """Until when the outbox rows of a commit stay claimed by their writer: never past
        their commit here (one runtime publishes what it commits and, at open, whatever it
        finds); a store shared by several workers claims them (:mod:`.postgres_workers`)."""
        return 0.0

    @staticmethod
    async def _write_rest(
        conn: Connection, batch: EncodedBatch, consumed: Sequence[int], claimed_until: float
    ) -> Cursor | None:
        """The rest of the batch, sent without waiting; the outbox insert's cursor, whose ids
        are read once the transaction has committed."""
        outbox = None
        if batch.outbox:
            outbox = await conn.execute(
                _sql.INSERT_OUTBOX, [claimed_until, *_columns(batch.outbox, 2)]
            )
        cancel = [saga_id for saga_id, timer in batch.timers.items() if timer is None]
        arm = [(t.saga_id, t.timer_id, float(t.due)) for t in batch.timers.values() if t]
        if cancel:
            await conn.execute(_sql.CANCEL, (cancel,))
        if arm:
            await conn.execute(_sql.ARM, _columns(arm, 3))
        if batch.records is not None:
            await conn.execute(_sql.APPEND, (batch.records,))
        if batch.retried:
            await conn.execute(_sql.RETRIED, ([saga_id for (saga_id,) in batch.retried],))
        if consumed:
            await conn.execute(_sql.CONSUME, (list(consumed),))
        return outbox

    async def mark_sent(self, ids: Sequence[int], records: Sequence[tuple[Any, ...]] = ()) -> None:
        if not ids and not records:
            return
        # One statement either way (the delete and the records together in one, atomic).
        if not records:
            async with self._write_lock:
                await self._count(_sql.SENT, (list(ids),))
            return
        encoded = encode_records(records)
        async with self._write_lock:
            if ids:
                await self._count(_sql.SENT_APPEND, (list(ids), encoded))
            else:
                await self._count(_sql.APPEND, (encoded,))

    async def append_trace(self, records: Sequence[tuple[Any, ...]]) -> None:
        if not records:
            return
        encoded = encode_records(records)
        async with self._write_lock:
            await self._count(_sql.APPEND, (encoded,))

    async def unsent(self) -> list[OutboxRow]:
        rows = await self._fetch(_sql.UNSENT)
        return [OutboxRow(id_, saga_id, loads(message)) for id_, saga_id, message in rows]

    async def running(self) -> list[StoredSaga]:
        rows = await self._fetch(_sql.RUNNING)
        return [StoredSaga(saga_id, definition, loads(snap)) for saga_id, definition, snap in rows]

    async def timers(self) -> list[TimerRow]:
        rows = await self._fetch(_sql.TIMERS)
        return [TimerRow(saga_id, timer_id, due) for saga_id, timer_id, due in rows]

    async def status(self, saga_id: str) -> SagaStatus | None:
        rows = await self._fetch(_sql.STATUS, (saga_id,))
        return status_from_row(rows[0]) if rows else None

    async def sagas(self, states: Collection[str] | None = None) -> list[SagaStatus]:
        check_states(states)
        if states is None:
            rows = await self._fetch(_sql.SAGAS)
        else:
            wanted = list(states)
            if not wanted:
                return []
            rows = await self._fetch(_sql.SAGAS_IN, (wanted,))
        return [status_from_row(row) for row in rows]

    async def trace(self) -> list[tuple[Any, ...]]:
        rows = await self._fetch(_sql.TRACE)
        return decode_records(chunk for (chunk,) in rows)

    async def prune(self, finished_before: float) -> int:
        """Drop the status rows of finished sagas whose last commit's ``now`` is earlier than
        ``finished_before``; running sagas, the outbox and the trace are kept."""
        async with self._write_lock:
            return await self._count(_sql.PRUNE, (float(finished_before),))

    async def resolve(
        self, saga_id: str, resolution: str, records: Sequence[tuple[Any, ...]] = ()
    ) -> bool:
        encoded = encode_records(records) if records else None
        async with self._write_lock, self._transaction() as conn:
            cursor = await conn.execute(_sql.RESOLVE, (str(resolution), saga_id, RESOLVABLE))
            changed = cursor.rowcount == 1
            if changed and encoded is not None:
                await conn.execute(_sql.APPEND, (encoded,))
        return changed

    async def request_retry(self, saga_id: str, note: str, now: float) -> bool:
        async with self._write_lock:
            return await self._count(_sql.REQUEST_RETRY, (str(note), float(now), saga_id)) == 1

    async def retry_requests(self) -> list[RetryRequest]:
        rows = await self._fetch(_sql.RETRY_REQUESTS)
        return [
            RetryRequest(saga_id, name, loads(parked), note) for saga_id, name, parked, note in rows
        ]

    # -- the participants' side ---------------------------------------------------------------

    def transaction(self, participant: str) -> PostgresTransaction:
        return PostgresTransaction(self._participant_lock, self._open_pool(), participant)

    def batch(self) -> PostgresBatch:
        return PostgresBatch(self._participant_lock, self._open_pool())
