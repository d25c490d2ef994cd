"""The SQLite store's participant side: a batch of commands in one transaction, each command in a
savepoint of its own, and the statements they run.

Why it is built this way:

- Every participant transaction of a store object runs on one connection (and thread) of its
  own and holds the store's write lock from its first statement to its end
  (:class:`~sagafsm.runtime.sqlite_store.SqliteStore` says why). The host therefore handles the
  commands it has ready together, in one transaction (group commit), instead of queueing one
  transaction per command behind that lock.
- A hop to the connection's thread costs more than the statements it runs, so each hop does as
  much as it can. ``BEGIN IMMEDIATE`` rides on the first statement (the batch's inbox reads,
  :meth:`SqliteBatch.prefetch`); inbox writes and ledger records are staged in Python and
  written with the ``COMMIT``; ``SAVEPOINT``, ``RELEASE`` and ``ROLLBACK TO`` wait for the next
  hop and run first in it. A command's savepoint exists in SQLite only once its handler runs SQL
  of its own (``call.db.execute``): its inbox and ledger writes are undone by dropping what
  Python staged. A batch whose handlers run no SQL costs two hops, however many commands it has.
- A hop runs to its end even if the task awaiting it is cancelled (a handler's timeout): the next
  hop, a ``ROLLBACK TO`` say, relies on what it did, and a hop dropped from the executor's queue
  could have taken the ``BEGIN`` with it.

A standalone transaction (``store.transaction(name)``) is the one savepoint of a batch of its own.
Statements here are plain synchronous :mod:`sqlite3`, like those of :mod:`.sqlite_schema`.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, Final, TypeVar

from .sqlite_schema import APPEND, BEGIN, COMMIT, rollback
from .store import InboxEntry
from .store_encoding import InboxRow, decode_entry, encode_entry, encode_records

__all__ = ["SqliteBatch", "SqliteSavepoint", "SqliteTransaction"]

_T = TypeVar("_T")
Hop = Callable[..., Awaitable[Any]]
"""Runs ``function(connection, *args)`` on the participants' connection thread."""

_At = tuple[str, str]
"""(participant, idempotency key)."""

INBOX_GET: Final = (
    "SELECT kind, outcome, result, reason FROM sagafsm_inbox WHERE participant = ? AND key = ?"
)
# The inbox's primary key: one entry per (participant, key); a later entry replaces it.
INBOX_PUT: Final = (
    "INSERT OR REPLACE INTO sagafsm_inbox (participant, key, kind, outcome, result, reason) "
    "VALUES (?, ?, ?, ?, ?, ?)"
)


class SqliteBatch:
    """A :class:`~sagafsm.runtime.store.ParticipantBatch` (see the module docstring). ``lock`` is
    the store's write lock, taken at the first hop and held to the end; ``call`` makes a hop."""

    __slots__ = ("_begun", "_cache", "_call", "_count", "_lock", "_locked", "_pending", "_puts",
                 "_records")  # fmt: skip

    def __init__(self, lock: asyncio.Lock, call: Hop) -> None:
        self._lock = lock
        self._call = call
        self._locked = False
        self._begun = False
        self._pending: list[str] = []
        """Savepoint statements to run first in the next hop."""
        self._puts: dict[_At, InboxRow] = {}
        """Inbox writes of the savepoints released so far."""
        self._records: list[str] = []  # one JSON list per append_trace, likewise
        self._cache: dict[_At, InboxRow | None] = {}
        """What :meth:`prefetch` read (None: no entry)."""
        self._count = 0

    async def __aenter__(self) -> SqliteBatch:
        return self

    async def _hop(self, function: Callable[..., _T], *args: Any) -> _T:
        """One hop in this transaction: the write lock taken if not yet, ``BEGIN`` if this is
        the transaction's first statement, and the pending savepoint statements run first."""
        if not self._locked:
            await self._lock.acquire()
            self._locked = True
        begin = not self._begun
        pending, self._pending = self._pending, []
        self._begun = True  # before the hop, which runs to its end whatever happens to us
        result: _T = await self._call(function, begin, pending, *args)
        return result

    async def __aexit__(self, exc_type: type[BaseException] | None, *rest: object) -> None:
        try:
            if exc_type is None:
                if self._puts or self._records or self._begun:
                    puts = [(*at, *row) for at, row in self._puts.items()]
                    await self._hop(finish, puts, self._records)
            elif self._begun:
                # The exception in flight says what happened (a cancellation must stay one): a
                # rollback that fails too is not reported over it. A connection the store closed
                # meanwhile rolled back as it closed.
                with contextlib.suppress(Exception):
                    await self._call(abort)
        finally:
            if self._locked:
                self._locked = False
                self._lock.release()

    async def prefetch(self, keys: Iterable[_At]) -> None:
        """``BEGIN`` and the inbox reads of these keys in one hop."""
        known = self._puts.keys() | self._cache.keys()
        wanted = [at for at in dict.fromkeys(keys) if at not in known]
        if wanted:
            rows = await self._hop(read, wanted)
            self._cache.update(zip(wanted, rows, strict=True))

    def savepoint(self, participant: str) -> SqliteSavepoint:
        self._count += 1
        return SqliteSavepoint(self, participant, f"sagafsm_{self._count}")


class SqliteSavepoint:
    """One command's part of a batch: reads see its own writes, then those of the savepoints
    released before it, then what the batch read ahead, then the database."""

    dialect = "sqlite"
    """What :meth:`execute` speaks (see the protocol)."""

    __slots__ = ("_batch", "_name", "_opened", "_participant", "_puts", "_records")

    def __init__(self, batch: SqliteBatch, participant: str, name: str) -> None:
        self._batch = batch
        self._participant = participant
        self._name = name
        self._opened = False
        """The SAVEPOINT statement was issued (the handler ran SQL)."""
        self._puts: dict[str, InboxRow] = {}
        self._records: list[str] = []

    async def __aenter__(self) -> SqliteSavepoint:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, *rest: object) -> None:
        batch, name = self._batch, self._name
        if exc_type is None:
            for key, row in self._puts.items():
                batch._puts[self._participant, key] = row
            batch._records.extend(self._records)
            if self._opened:
                batch._pending.append(f"RELEASE {name}")
        elif self._opened:
            # Undoes the handler's SQL alone; the batch goes on (a failed handler is no reason
            # to lose the others' work).
            batch._pending += (f"ROLLBACK TO {name}", f"RELEASE {name}")

    async def inbox_get(self, key: str) -> InboxEntry | None:
        row = self._puts.get(key)
        if row is None:
            batch, at = self._batch, (self._participant, key)
            if at in batch._puts:
                row = batch._puts[at]
            elif at in batch._cache:
                row = batch._cache[at]
            else:
                (row,) = await batch._hop(read, [at])
        return None if row is None else decode_entry(row)

    async def inbox_put(self, key: str, entry: InboxEntry) -> None:
        self._puts[key] = encode_entry(key, entry)

    async def append_trace(self, records: Sequence[tuple[Any, ...]]) -> None:
        if records:
            self._records.append(encode_records(records))

    async def execute(self, sql: str, parameters: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run one statement of the participant's own in this savepoint; its rows."""
        batch = self._batch
        if not self._opened:
            self._opened = True
            batch._pending.append(f"SAVEPOINT {self._name}")
        return await batch._hop(statement, sql, parameters)


class SqliteTransaction(SqliteSavepoint):
    """A participant transaction on its own: the one savepoint of a batch of its own, committed
    (or rolled back) with it."""

    __slots__ = ()

    def __init__(self, lock: asyncio.Lock, call: Hop, participant: str) -> None:
        super().__init__(SqliteBatch(lock, call), participant, "sagafsm_1")

    async def __aexit__(self, exc_type: type[BaseException] | None, *rest: object) -> None:
        try:
            await super().__aexit__(exc_type, *rest)
        finally:
            await self._batch.__aexit__(exc_type, *rest)


# -- the statements, each hop one function on the connection's thread ----------------------------


def _prepare(conn: sqlite3.Connection, begin: bool, pending: Sequence[str]) -> None:
    if begin:
        conn.execute(BEGIN)
    for sql in pending:
        conn.execute(sql)


def read(
    conn: sqlite3.Connection, begin: bool, pending: Sequence[str], keys: Sequence[_At]
) -> list[InboxRow | None]:
    _prepare(conn, begin, pending)
    return [conn.execute(INBOX_GET, at).fetchone() for at in keys]


def statement(
    conn: sqlite3.Connection, begin: bool, pending: Sequence[str], sql: str, parameters: Any
) -> list[Any]:
    _prepare(conn, begin, pending)
    return conn.execute(sql, parameters).fetchall()


def finish(
    conn: sqlite3.Connection,
    begin: bool,
    pending: Sequence[str],
    puts: list[tuple[Any, ...]],
    records: list[str],
) -> None:
    """The staged writes and the ``COMMIT``; the ledger as one trace row (its chunks are JSON
    lists, joined into one)."""
    try:
        _prepare(conn, begin, pending)
        if puts:
            conn.executemany(INBOX_PUT, puts)
        if records:
            joined = records[0] if len(records) == 1 else f"[{','.join(r[1:-1] for r in records)}]"
            conn.execute(APPEND, (joined,))
        conn.execute(COMMIT)
    except BaseException:
        rollback(conn)
        raise


def abort(conn: sqlite3.Connection) -> None:
    rollback(conn)
