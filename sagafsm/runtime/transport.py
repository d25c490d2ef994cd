"""How envelopes travel between the orchestrator and participants: at least once.

A :class:`Transport` sends an envelope to the node named by its ``dest`` (a participant's name,
or :data:`ORCHESTRATOR`) and hands it to that node's :meth:`Transport.receive` as a
:class:`Delivery`. The receiver acks a delivery once what it did with it is committed; a
transport that outlives its process (:class:`~sagafsm.runtime.sqlite_transport.SqliteTransport`)
delivers an unacked message again after a restart. Nothing here deduplicates: duplicates are
the inbox's and the engine's business, which is why "at least once" is enough.

:class:`InProcessTransport` is the one-process transport (tests, one service running its own
sagas): a queue per node in memory, so nothing survives the process, and acks are no-ops.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict, deque
from collections.abc import Iterable, Sequence
from typing import Any, Protocol

import attrs

from ..errors import InvalidArgument, SagaError
from ..messages import ORCHESTRATOR, Envelope

__all__ = [
    "ORCHESTRATOR",
    "Delivery",
    "Transport",
    "TransportClosed",
    "InProcessTransport",
    "receive_until",
]


class TransportClosed(SagaError, RuntimeError):
    """The transport was closed: raised by :meth:`Transport.receive` (waiting receivers are woken
    with it, which is how a consumer loop ends cleanly) and by sending after :meth:`close`.
    Never raised for a message that merely is not there yet: receive waits for it."""


@attrs.frozen
class Delivery:
    """One message handed to a receiver. ``receipt`` is what :meth:`Transport.ack` takes (the
    SQLite row id); None for a transport whose acks are no-ops."""

    message: Envelope
    receipt: int | None = None


class Transport(Protocol):
    async def send(self, message: Envelope) -> None:
        """Hand ``message`` to the node ``message.dest``."""

    async def send_many(self, messages: Sequence[Envelope]) -> None:
        """Send several messages, in order (one database transaction where there is one)."""

    async def receive(self, node: str) -> Delivery:
        """The next message for ``node``, waiting for one; :class:`TransportClosed` once closed."""

    async def receive_many(self, node: str, limit: int) -> list[Delivery]:
        """One to ``limit`` messages for ``node``, in order, waiting for the first."""

    async def ack(self, node: str, receipts: Sequence[int]) -> None:
        """What was done with these deliveries is committed: do not deliver them again."""

    async def close(self) -> None:
        """Stop: wake every waiting receiver with :class:`TransportClosed`."""


async def receive_until(
    transport: Transport, node: str, limit: int, stop: asyncio.Future[Any]
) -> list[Delivery]:
    """The next deliveries for ``node`` (one to ``limit``), or none once ``stop`` is done or the
    transport is closed. The receive is raced against the stop, not only cancelled: one that
    returned as the stop came still hands out its deliveries."""
    if stop.done():
        return []
    receive = asyncio.ensure_future(transport.receive_many(node, limit))
    try:
        await asyncio.wait((receive, stop), return_when=asyncio.FIRST_COMPLETED)
    finally:
        if not receive.done():
            receive.cancel()
            await asyncio.wait((receive,))
    if receive.cancelled() or isinstance(receive.exception(), TransportClosed):
        return []
    return receive.result()


def check_limit(limit: int) -> int:
    if limit.__class__ is not int or limit < 1:
        raise InvalidArgument(f"limit must be a positive int, got {limit!r}")
    return limit


class InProcessTransport:
    """A queue per node, in memory: delivered in send order, exactly once unless sent twice.

    Receivers of one node are served in the order they began to wait. ``close()`` wakes them all
    with :class:`TransportClosed`; messages still queued then are dropped (nothing in memory
    survives its process anyway).
    """

    def __init__(self) -> None:
        self._queues: defaultdict[str, deque[Envelope]] = defaultdict(deque)
        self._waiters: defaultdict[str, deque[asyncio.Future[None]]] = defaultdict(deque)
        self._closed = False
        self.sent = 0
        """How many messages were sent (a counter for tests and statistics)."""

    def queued(self, node: str) -> int:
        """How many messages wait for ``node``."""
        return len(self._queues.get(node, ()))

    async def send(self, message: Envelope) -> None:
        self._put((message,))

    async def send_many(self, messages: Sequence[Envelope]) -> None:
        self._put(messages)

    def _put(self, messages: Iterable[Envelope]) -> None:
        if self._closed:
            raise TransportClosed("the in-process transport is closed")
        for message in messages:
            self._queues[message.dest].append(message)
            self.sent += 1
            self._wake_one(message.dest)

    def _wake_one(self, node: str) -> None:
        waiters = self._waiters.get(node)
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    async def receive(self, node: str) -> Delivery:
        (delivery,) = await self.receive_many(node, 1)
        return delivery

    async def receive_many(self, node: str, limit: int) -> list[Delivery]:
        check_limit(limit)
        queue = self._queues[node]
        while not queue:
            if self._closed:
                raise TransportClosed("the in-process transport is closed")
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._waiters[node].append(waiter)
            try:
                await waiter
            except asyncio.CancelledError:
                # Woken and cancelled at once: pass the wake-up on, or a message would wait.
                if waiter.done() and not waiter.cancelled():
                    self._wake_one(node)
                raise
        if self._closed:
            raise TransportClosed("the in-process transport is closed")
        batch = [Delivery(queue.popleft()) for _ in range(min(limit, len(queue)))]
        if queue:
            self._wake_one(node)  # more for another waiting receiver of this node
        return batch

    async def ack(self, node: str, receipts: Sequence[int]) -> None:
        """Nothing to do: a message in memory is gone once received."""

    async def close(self) -> None:
        self._closed = True
        for waiters in self._waiters.values():
            while waiters:
                waiter = waiters.popleft()
                if not waiter.done():
                    waiter.set_result(None)
        self._queues.clear()

    def __repr__(self) -> str:
        queued = sum(len(queue) for queue in self._queues.values())
        return f"InProcessTransport(queued={queued}, closed={self._closed})"
