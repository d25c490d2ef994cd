"""A transport through PostgreSQL: messages between processes on any machines that reach the
database, in the ``sagafsm_messages`` table the PostgreSQL store's schema creates (so that the
orchestrator's store deletes the rows it consumed in its own commit).

How it keeps its promise (in order per node, at least once):

- A receiver claims rows for its node with ``FOR UPDATE SKIP LOCKED`` and moves their
  ``visible_at`` a lease ahead (the database's clock, the same for every machine): receivers of
  one node in several processes share the rows, each row handed to one of them. A row is
  deleted only when acked (or consumed by the store's commit); a receiver that dies leaves its
  rows, which come back once the lease runs out: at least once, and the inboxes deduplicate.
- A send notifies the channel ``sagafsm_messages`` with the destination in the same
  transaction; each transport listens on a connection of its own and wakes its receivers of that
  node when the send commits. Receivers poll too, with a backoff up to ``max_poll_interval``,
  so a notification lost with a broken connection costs a delay, never a message.
- A notification wakes every process's receivers of the node, and one of them takes the rows:
  with N workers, N - 1 claims come back empty for every send (two thirds of all claims with
  four). A receiver that lost such a race therefore lets the notifications go for
  ``poll_interval`` and claims once after it: under load the winner carries on, the others join
  in at that pace, and an idle node is still woken at once.

The :class:`~sagafsm.runtime.transport.Transport` protocol stays what it is, so a broker adapter
(Kafka, RabbitMQ) can take this one's place later.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import defaultdict
from collections.abc import Sequence
from typing import Any, Final

import psycopg
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from ..errors import InvalidArgument
from ..messages import Envelope
from .codec import envelope_from_dict, envelope_to_dict
from .errors import StoreError
from .postgres_inbox import Connection
from .postgres_store import migrated
from .transport import Delivery, TransportClosed, check_limit
from .urls import shown_url

__all__ = ["PostgresTransport"]

_log = logging.getLogger(__name__)

CHANNEL: Final = "sagafsm_messages"

SEND: Final = """
    WITH sent AS (
        INSERT INTO sagafsm_messages (dest, body)
        SELECT dest, body FROM unnest(%b::text[], %b::text[]) WITH ORDINALITY AS u(dest, body, ord)
        ORDER BY ord
        RETURNING dest)
    SELECT pg_notify('sagafsm_messages', dest) FROM (SELECT DISTINCT dest FROM sent) AS d"""
"""The rows, in order, and one notification per destination, delivered when this commits."""

CLAIM: Final = """
    UPDATE sagafsm_messages SET visible_at = extract(epoch FROM clock_timestamp()) + %s
    WHERE id IN (
        SELECT id FROM sagafsm_messages
        WHERE dest = %s AND visible_at <= extract(epoch FROM clock_timestamp())
        ORDER BY id LIMIT %s
        FOR UPDATE SKIP LOCKED)
    RETURNING id, body"""
"""SKIP LOCKED: a row another receiver is claiming right now is left to it, not waited for
(and not handed out twice); the lease hides it from everyone until it runs out."""

ACK: Final = "DELETE FROM sagafsm_messages WHERE id = ANY(%b::bigint[])"


class PostgresTransport:
    """Messages as rows of ``sagafsm_messages`` in the PostgreSQL database at ``url``.

    ``lease`` is how long a claimed, unacked row stays hidden before it is delivered again (the
    time a receiver gets to handle and ack it); ``poll_interval`` and ``max_poll_interval`` bound
    the backoff of a receiver that nothing woke. Opened on first use (or ``async with``); the
    database's schema is created or checked as :class:`PostgresStore` does it.
    """

    def __init__(
        self,
        url: str,
        *,
        lease: float = 30.0,
        poll_interval: float = 0.05,
        max_poll_interval: float = 1.0,
        pool_size: int = 2,
    ) -> None:
        for name, value in (
            ("lease", lease),
            ("poll_interval", poll_interval),
            ("max_poll_interval", max_poll_interval),
        ):
            if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
                raise InvalidArgument(f"{name} must be a positive number, got {value!r}")
        if max_poll_interval < poll_interval:
            raise InvalidArgument(
                f"max_poll_interval ({max_poll_interval}) must not be below "
                f"poll_interval ({poll_interval})"
            )
        if pool_size.__class__ is not int or pool_size < 1:
            raise InvalidArgument(f"pool_size must be a positive int, got {pool_size!r}")
        self.url = url
        self.name = shown_url(url)
        self._lease = float(lease)
        self._poll = float(poll_interval)
        self._max_poll = float(max_poll_interval)
        self._pool_size = pool_size
        self._pool: AsyncConnectionPool[Connection] | None = None
        self._listener: asyncio.Task[None] | None = None
        self._listening: Connection | None = None
        self._opening: asyncio.Lock | None = None
        self._closed = False
        self._waiters: defaultdict[str, set[asyncio.Future[None]]] = defaultdict(set)
        self._hearing = False
        """Listening for sends (a broken listening connection is not reopened: polls then)."""
        self._notices: defaultdict[str, int] = defaultdict(int)
        """Notifications heard, per node."""
        self._drained: dict[str, int] = {}
        """Per node, ``_notices`` when a claim last found fewer rows than it asked for."""

    async def __aenter__(self) -> PostgresTransport:
        await self.open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def _refuse_if_closed(self) -> None:
        if self._closed:
            raise TransportClosed(f"the PostgreSQL transport on {self.name} is closed")

    async def open(self) -> None:
        """Check the schema (creating it if new), open the pool, and listen for sends.
        :class:`StoreError` in one line if the database cannot be used."""
        self._refuse_if_closed()
        if self._opening is None:
            self._opening = asyncio.Lock()
        async with self._opening:
            if self._pool is not None:
                return
            await migrated(self.url, self.name)
            listener = await self._connect(autocommit=True)
            await listener.execute(f"LISTEN {CHANNEL}")
            # Autocommit: each of this transport's operations is one statement (a send with its
            # notifications, a claim, an ack), atomic on its own. In a transaction block it would
            # cost a BEGIN and a COMMIT of their own, two more round trips and statements' worth
            # of client CPU each, on every message.
            pool: AsyncConnectionPool[Connection] = AsyncConnectionPool(
                self.url,
                min_size=1,
                max_size=self._pool_size,
                kwargs={"autocommit": True},
                open=False,
                name="sagafsm-bus",
            )
            try:
                await pool.open(wait=True, timeout=10.0)
            except (PoolTimeout, psycopg.Error) as error:
                await pool.close()
                await listener.close()
                raise StoreError(f"{self.name}: cannot connect ({error})") from None
            if self._closed:  # closed while connecting: these connections are nobody's
                await pool.close()
                await listener.close()
                self._refuse_if_closed()
            self._pool = pool
            # Owned: close() cancels and awaits it, then closes its connection.
            self._listener = asyncio.ensure_future(self._listen(listener))
            self._listening = listener
            self._hearing = True

    async def _connect(self, **options: Any) -> Connection:
        try:
            return await psycopg.AsyncConnection.connect(self.url, connect_timeout=10, **options)
        except psycopg.Error as error:
            raise StoreError(
                f"{self.name}: cannot connect ({' '.join(str(error).split())})"
            ) from None

    async def _listen(self, conn: Connection) -> None:
        """Wake this object's receivers of a node when a send to it commits (anywhere). The
        connection is closed by whoever cancels this: it may be cancelled before it starts."""
        try:
            async for notice in conn.notifies():
                self._wake(notice.payload)
        except psycopg.Error as error:  # the listening connection broke: polling carries on
            _log.warning("%s: no longer listening for sends (%s); polling", self.name, error)
            self._hearing = False

    def _wake(self, node: str) -> None:
        self._notices[node] += 1
        for waiter in self._waiters.get(node, ()):
            if not waiter.done():
                waiter.set_result(None)

    async def _run(self, sql: Any, parameters: Sequence[Any]) -> list[tuple[Any, ...]]:
        self._refuse_if_closed()
        if self._pool is None:
            await self.open()
        assert self._pool is not None
        async with self._pool.connection() as conn:
            cursor = await conn.execute(sql, parameters)
            return await cursor.fetchall() if cursor.description is not None else []

    # -- the transport -----------------------------------------------------------------------

    async def send(self, message: Envelope) -> None:
        await self.send_many((message,))

    async def send_many(self, messages: Sequence[Envelope]) -> None:
        """All of ``messages`` in one transaction, in order."""
        if not messages:
            return
        bodies = [json.dumps(envelope_to_dict(m), separators=(",", ":")) for m in messages]
        await self._run(SEND, ([m.dest for m in messages], bodies))

    async def receive(self, node: str) -> Delivery:
        (delivery,) = await self.receive_many(node, 1)
        return delivery

    async def receive_many(self, node: str, limit: int) -> list[Delivery]:
        """The lowest-id visible rows for ``node`` (one to ``limit``), claimed under the lease;
        waits for a send to it (or polls, with backoff) until there is one. No claim is made
        while nothing was sent to ``node`` since a claim found it drained (its rows would be
        none: the wait comes first), nor, for ``poll_interval``, after a claim that a
        notification woke came back empty (another receiver took the rows)."""
        check_limit(limit)
        delay, woken = self._poll, False
        while True:
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._waiters[node].add(waiter)  # before the claim: a send meanwhile wakes it
            try:
                if not self._quiet(node):
                    batch = await self._claim(node, limit)
                    if batch:
                        return batch
                    if woken:  # another receiver took what woke this one: sit the next out
                        self._waiters[node].discard(waiter)
                        await asyncio.sleep(self._poll)
                        woken, delay = False, self._poll
                        continue
                await asyncio.wait((waiter,), timeout=delay)
                woken = waiter.done() and not waiter.cancelled()
                if not woken:  # a poll: rows may be visible again (a dead receiver's lease)
                    self._drained.pop(node, None)
            finally:
                self._waiters[node].discard(waiter)
                waiter.cancel()
            self._refuse_if_closed()
            delay = self._poll if woken else min(delay * 2, self._max_poll)

    def _quiet(self, node: str) -> bool:
        """Nothing was sent to ``node`` (no notification came) since a claim found it drained.
        Never while not listening: then every wait is a poll."""
        return self._hearing and self._drained.get(node) == self._notices[node]

    async def _claim(self, node: str, limit: int) -> list[Delivery]:
        notices = self._notices[node]  # before: a send committed during the claim counts after
        rows = await self._run(CLAIM, (self._lease, node, limit))
        if len(rows) < limit:
            self._drained[node] = notices
        else:
            self._drained.pop(node, None)
        return [
            Delivery(message, row_id)
            for row_id, body in sorted(rows)
            if (message := self._decode(row_id, body)) is not None
        ]

    def _decode(self, row_id: int, body: str) -> Envelope | None:
        try:
            return envelope_from_dict(json.loads(body))
        except ValueError as error:
            # Left in the table for a human, hidden by its lease: a poison row is not handed out.
            _log.warning("sagafsm_messages row %d is not an envelope, skipped: %s", row_id, error)
            return None

    async def ack(self, node: str, receipts: Sequence[int]) -> None:
        """Delete the rows; a receipt whose row is already gone is fine."""
        if receipts:
            await self._run(ACK, (list(receipts),))

    async def close(self) -> None:
        """Wake waiting receivers with TransportClosed, stop listening, close the pool."""
        if self._closed:
            return
        self._closed = True
        for node in list(self._waiters):
            self._wake(node)
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await listener
        listening, self._listening = self._listening, None
        if listening is not None:
            await listening.close()
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()

    def __repr__(self) -> str:
        return f"PostgresTransport({self.name!r}, closed={self._closed})"
