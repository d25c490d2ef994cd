"""A transport through a SQLite file: messages between OS processes on one machine.

Every message is a row of ``sagafsm_messages`` (the same table the SQLite store's schema
creates, so the orchestrator's store can delete consumed rows in its own commit). A receiver
claims rows for its node in id order and keeps the claimed ids in memory; a row is deleted only
when acked. So a process killed between receiving and acking leaves its rows behind, and the next
transport object on the file (a restarted process) delivers them again: at least once.

One receiving transport object per node: claims live in memory, so two processes receiving for
the same node would both be handed every row (still at least once, but each row twice).

Rows sent by this object wake its own receivers at once; rows from another process are found by
polling, with a backoff from ``poll_interval`` up to ``max_poll_interval`` while nothing comes.
All SQL runs on one thread of its own (stdlib ``sqlite3`` objects stay on their thread), each
call one hop to it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sqlite3
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Final, TypeVar

from ..errors import InvalidArgument
from ..messages import Envelope
from .codec import envelope_from_dict, envelope_to_dict
from .errors import StoreError
from .transport import Delivery, TransportClosed, check_limit

__all__ = ["SqliteTransport", "MESSAGES_TABLE"]

_log = logging.getLogger(__name__)
_T = TypeVar("_T")

MESSAGES_TABLE: Final = (
    "CREATE TABLE IF NOT EXISTS sagafsm_messages("
    "id INTEGER PRIMARY KEY AUTOINCREMENT, dest TEXT NOT NULL, body TEXT NOT NULL, "
    "visible_at REAL NOT NULL DEFAULT 0)"
)
"""The queue table, exactly as the SQLite store's schema defines it. AUTOINCREMENT: an id is
never reused, so a claim or receipt held in memory can never name another, later message."""

MESSAGES_INDEX: Final = (
    "CREATE INDEX IF NOT EXISTS sagafsm_messages_dest ON sagafsm_messages (dest, id)"
)
"""A node's rows in id order without a scan (the store's schema creates the same index)."""

_DELETE_CHUNK: Final = 500


class SqliteTransport:
    """Messages as rows of ``sagafsm_messages`` in the SQLite file at ``path``.

    Opened on first use (or ``async with``); :meth:`close` wakes waiting receivers with
    :class:`~sagafsm.runtime.transport.TransportClosed`. ``visible_at`` (epoch seconds, wall
    clock) hides a row until then; this transport sends rows visible at once.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        poll_interval: float = 0.005,
        max_poll_interval: float = 0.05,
        busy_timeout: float = 10.0,
    ) -> None:
        for name, value in (
            ("poll_interval", poll_interval),
            ("max_poll_interval", max_poll_interval),
            ("busy_timeout", busy_timeout),
        ):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise InvalidArgument(f"{name} must be a positive number, got {value!r}")
        if max_poll_interval < poll_interval:
            raise InvalidArgument(
                f"max_poll_interval ({max_poll_interval}) must not be below "
                f"poll_interval ({poll_interval})"
            )
        self._path = os.fspath(path)
        self._poll = float(poll_interval)
        self._max_poll = float(max_poll_interval)
        self._busy_ms = int(busy_timeout * 1000)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sagafsm-transport")
        self._db: sqlite3.Connection | None = None
        self._opening: asyncio.Lock | None = None
        self._closed = False
        self._claimed: defaultdict[str, set[int]] = defaultdict(set)
        """Per node, the ids handed out and not acked yet (rows still in the table)."""
        self._waiters: defaultdict[str, set[asyncio.Future[None]]] = defaultdict(set)
        """Receivers polling for a node, woken early when this object sends to it."""

    async def __aenter__(self) -> SqliteTransport:
        await self.open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # -- the database thread -----------------------------------------------------------------

    async def _run(self, function: Callable[..., _T], *args: Any) -> _T:
        """``function(connection, *args)`` on the database thread. The connection is taken now:
        a close() queued behind this call closes it only after the call ran."""
        if self._db is None:
            await self.open()
        assert self._db is not None
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, function, self._db, *args)

    async def open(self) -> None:
        """Connect, and create the queue table if the file has none; idempotent."""
        if self._closed:
            raise TransportClosed(f"the SQLite transport on {self._path} is closed")
        if self._opening is None:
            self._opening = asyncio.Lock()
        async with self._opening:
            if self._db is None:
                loop = asyncio.get_running_loop()
                db = await loop.run_in_executor(self._executor, self._connect)
                if self._closed:  # closed while connecting: the connection is nobody's
                    db.close()
                    raise TransportClosed(f"the SQLite transport on {self._path} is closed")
                self._db = db

    def _connect(self) -> sqlite3.Connection:
        try:
            db = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as error:
            raise StoreError(f"cannot open SQLite transport file {self._path}: {error}") from None
        try:
            db.execute(f"PRAGMA busy_timeout={self._busy_ms}")
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute(MESSAGES_TABLE)
            db.execute(MESSAGES_INDEX)
        except sqlite3.Error as error:
            db.close()
            raise StoreError(f"cannot use {self._path} as a SQLite transport: {error}") from None
        return db

    @staticmethod
    def _insert(db: sqlite3.Connection, rows: list[tuple[str, str]]) -> None:
        db.execute("BEGIN IMMEDIATE")
        try:
            db.executemany(
                "INSERT INTO sagafsm_messages(dest, body, visible_at) VALUES (?, ?, 0)", rows
            )
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    @staticmethod
    def _select(db: sqlite3.Connection, node: str, limit: int, now: float) -> list[tuple[int, str]]:
        # Reads only: the claim itself is the in-memory set (one receiving object per node).
        rows = db.execute(
            "SELECT id, body FROM sagafsm_messages WHERE dest = ? AND visible_at <= ? "
            "ORDER BY id LIMIT ?",
            (node, now, limit),
        )
        return rows.fetchall()

    @staticmethod
    def _delete(db: sqlite3.Connection, ids: list[int]) -> None:
        db.execute("BEGIN IMMEDIATE")
        try:
            for start in range(0, len(ids), _DELETE_CHUNK):
                chunk = ids[start : start + _DELETE_CHUNK]
                marks = ",".join("?" * len(chunk))
                db.execute(f"DELETE FROM sagafsm_messages WHERE id IN ({marks})", chunk)
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    # -- the transport -----------------------------------------------------------------------

    async def send(self, message: Envelope) -> None:
        await self.send_many((message,))

    async def send_many(self, messages: Sequence[Envelope]) -> None:
        """All of ``messages`` in one transaction, in order."""
        if not messages:
            return
        rows = [(m.dest, json.dumps(envelope_to_dict(m), separators=(",", ":"))) for m in messages]
        await self._run(self._insert, rows)
        for dest in {m.dest for m in messages}:
            for waiter in self._waiters.get(dest, ()):
                if not waiter.done():
                    waiter.set_result(None)

    async def receive(self, node: str) -> Delivery:
        (delivery,) = await self.receive_many(node, 1)
        return delivery

    async def receive_many(self, node: str, limit: int) -> list[Delivery]:
        """The lowest-id unclaimed rows for ``node`` (one to ``limit``), claimed; waits, polling
        with backoff, until there is one."""
        check_limit(limit)
        delay = self._poll
        while True:
            claimed = self._claimed[node]
            # The first `limit` unclaimed rows lie within the first limit + len(claimed) rows.
            window = limit + len(claimed)
            rows = await self._run(self._select, node, window, time.time())
            claimed = self._claimed[node]  # another receiver may have claimed while we read
            if len(rows) < window:
                # Every visible row was read: a claim whose row is gone was consumed elsewhere
                # (the orchestrator's store deletes its rows in its own commit).
                claimed &= {row_id for row_id, _ in rows}
            batch: list[Delivery] = []
            for row_id, body in rows:
                if row_id in claimed:
                    continue
                claimed.add(row_id)
                message = self._decode(row_id, body)
                if message is not None:
                    batch.append(Delivery(message, row_id))
                    if len(batch) == limit:
                        break
            if batch:
                return batch
            await self._wait(node, delay)
            delay = min(delay * 2, self._max_poll)

    def _decode(self, row_id: int, body: str) -> Envelope | None:
        try:
            return envelope_from_dict(json.loads(body))
        except ValueError as error:  # json.JSONDecodeError is one too
            # Claimed and left in the table for a human: a poison row is not handed out.
            _log.warning("sagafsm_messages row %d is not an envelope, skipped: %s", row_id, error)
            return None

    async def _wait(self, node: str, delay: float) -> None:
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        waiters = self._waiters[node]
        waiters.add(waiter)
        try:
            await asyncio.wait((waiter,), timeout=delay)
        finally:
            waiters.discard(waiter)
            waiter.cancel()
        if self._closed:
            raise TransportClosed(f"the SQLite transport on {self._path} is closed")

    async def ack(self, node: str, receipts: Sequence[int]) -> None:
        """Delete the rows (one transaction); a receipt whose row is already gone is fine."""
        if not receipts:
            return
        await self._run(self._delete, list(receipts))
        self._claimed[node].difference_update(receipts)

    def claimed(self, node: str) -> frozenset[int]:
        """The row ids handed out for ``node`` and not acked yet."""
        return frozenset(self._claimed.get(node, ()))

    async def close(self) -> None:
        """Wake waiting receivers with TransportClosed, then close the connection; idempotent."""
        if self._closed:
            return
        self._closed = True
        for waiters in self._waiters.values():
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)
        db, self._db = self._db, None
        if db is not None:
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(self._executor, db.close)
        self._executor.shutdown(wait=True)

    def __repr__(self) -> str:
        return f"SqliteTransport({self._path!r}, closed={self._closed})"
