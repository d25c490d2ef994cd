"""The PostgreSQL transport on a real server: in order per node, a clean end on close, at least
once (an unacked row comes back when its lease runs out), receivers of one node in two processes
sharing the rows (SKIP LOCKED) without a row handed to both, and a send in another process waking
a receiver at once (LISTEN/NOTIFY), each with a broken variant the check catches."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from test_rt_transport import _order_and_batches, command, run

from sagafsm.runtime import postgres_transport
from sagafsm.runtime.errors import StoreError
from sagafsm.runtime.postgres_transport import PostgresTransport
from sagafsm.runtime.transport import TransportClosed


def test_messages_arrive_in_send_order_per_node(pg_url: str) -> None:
    """Each node gets its own messages, in order; receive_many takes what is there up to limit."""

    async def main() -> None:
        async with PostgresTransport(pg_url) as transport:
            await _order_and_batches(transport)

    run(main())


def test_close_wakes_a_waiting_receiver_with_transport_closed(pg_url: str) -> None:
    """A receiver blocked on an empty node ends with TransportClosed; so does a later send."""

    async def main() -> None:
        transport = PostgresTransport(pg_url)
        waiting = asyncio.ensure_future(transport.receive("inventory"))
        await asyncio.sleep(0.3)
        assert not waiting.done()
        await transport.close()
        with pytest.raises(TransportClosed):
            await waiting
        with pytest.raises(TransportClosed):
            await transport.send(command(1))

    run(main())


def test_an_unreachable_database_is_one_line() -> None:
    """Nothing listens on port 1: StoreError naming the URL, its password masked."""

    async def main() -> None:
        async with PostgresTransport("postgresql://u:s3cret@127.0.0.1:1/db"):
            pass

    with pytest.raises(StoreError, match=r"^postgresql://u:\*\*\*@127.0.0.1:1/db: cannot connect"):
        run(main())


def test_an_unacked_message_comes_back_when_its_lease_runs_out(pg_url: str) -> None:
    """A receiver that died holding a row (its transport gone, no ack): another process gets it
    once the lease ran out; an acked row never comes back."""

    async def main() -> None:
        async with PostgresTransport(pg_url, lease=0.5) as dying:
            await dying.send_many([command(1), command(2)])
            first, second = await dying.receive_many("inventory", 2)
            assert first.receipt is not None
            await dying.ack("inventory", [first.receipt])
        async with PostgresTransport(pg_url, lease=0.5) as restarted:
            started = time.monotonic()
            again = await restarted.receive("inventory")
            assert again.message == second.message == command(2)
            assert time.monotonic() - started > 0.3  # hidden while its lease ran

    run(main())


async def shares(url: str, transport_class: type[Any]) -> list[int]:
    """Two transports (two processes) receive 40 rows of one node at once, until 40 were handed
    out or none comes for a second; every row id either was handed (one handed to both appears
    twice)."""
    async with PostgresTransport(url) as sender:
        await sender.send_many([command(n) for n in range(40)])
    handed: list[int] = []

    async def receiver(transport: Any) -> None:
        while len(handed) < 40:
            try:
                batch = await asyncio.wait_for(transport.receive_many("inventory", 3), 1.0)
            except TimeoutError:
                return
            handed.extend(d.message.message_id for d in batch)
            await asyncio.sleep(0.001)

    async with transport_class(url) as one, transport_class(url) as two:
        await asyncio.gather(receiver(one), receiver(two))
    return handed


class _ClaimsNothing(PostgresTransport):
    """Broken: reads rows without claiming them (no lease, no SKIP LOCKED)."""

    async def _run(self, sql: Any, parameters: Any) -> list[tuple[Any, ...]]:
        if sql is postgres_transport.CLAIM:
            _, node, limit = parameters
            sql = "SELECT id, body FROM sagafsm_messages WHERE dest = %s ORDER BY id LIMIT %s"
            parameters = (node, limit)
        return await super()._run(sql, parameters)


def test_two_receivers_of_one_node_share_its_rows_each_row_once(pg_url: str) -> None:
    """Every row handed out exactly once between the two (a dead one's rows come back later)."""
    assert sorted(run(shares(pg_url, PostgresTransport))) == list(range(40))  # type: ignore[arg-type]


def test_the_sharing_check_catches_receivers_that_do_not_claim(pg_url: str) -> None:
    """The same check on receivers that read without claiming: rows handed to both."""
    handed: Any = run(shares(pg_url, _ClaimsNothing))
    assert len(handed) > len(set(handed))


class _Deaf(PostgresTransport):
    """Broken: hears the notifications and wakes nobody."""

    def _wake(self, node: str) -> None:
        pass


async def wake_time(url: str, transport_class: type[PostgresTransport]) -> float:
    """Seconds from another process's send to the receiver having it, with polling slowed to
    10 s (so only a notification can wake it in time)."""
    async with transport_class(url, poll_interval=10, max_poll_interval=10) as receiver:
        waiting = asyncio.ensure_future(receiver.receive("inventory"))
        await asyncio.sleep(0.3)  # the receiver found nothing and waits
        async with PostgresTransport(url) as sender:
            started = time.monotonic()
            await sender.send(command(5))
            try:
                await asyncio.wait_for(waiting, 5)
            except TimeoutError:
                return float("inf")
            return time.monotonic() - started


def test_a_send_from_another_process_wakes_a_waiting_receiver_at_once(pg_url: str) -> None:
    """LISTEN/NOTIFY: the receiver has it well before its next poll (10 s away)."""
    assert asyncio.run(wake_time(pg_url, PostgresTransport)) < 3


def test_the_wake_check_catches_a_receiver_that_does_not_listen(pg_url: str) -> None:
    """Without its listener the same receiver waits out its poll (past the 5 s the check waits)."""
    assert asyncio.run(wake_time(pg_url, _Deaf)) == float("inf")


class _Counting(PostgresTransport):
    """Counts its claims (the statements a receiver makes)."""

    claims = 0

    async def _claim(self, node: str, limit: int) -> Any:
        self.claims += 1
        return await super()._claim(node, limit)


class _ClaimsFirst(_Counting):
    """The old receiver: claims as soon as it is called, whether anything was sent or not."""

    def _quiet(self, node: str) -> bool:
        return False


async def quiet_claims(url: str, transport_class: type[_Counting]) -> tuple[int, list[int]]:
    """Claims a receiver makes in 0.3 s on a node it found drained, nothing sent meanwhile
    (polling slowed to 10 s); then what it receives of a send."""
    receiving = transport_class(url, poll_interval=10, max_poll_interval=10)
    async with receiving as receiver, PostgresTransport(url) as sender:
        await sender.send(command(1))
        await receiver.receive_many("inventory", 10)
        looking = asyncio.ensure_future(receiver.receive_many("inventory", 10))
        await asyncio.sleep(0.3)  # the send's notification came in; a claim found nothing
        looking.cancel()
        before = receiver.claims
        waiting = asyncio.ensure_future(receiver.receive_many("inventory", 10))
        await asyncio.sleep(0.3)
        quiet = receiver.claims - before
        await sender.send(command(2))
        got = await asyncio.wait_for(waiting, 5)
    return quiet, [delivery.message.message_id for delivery in got]


def test_a_drained_node_is_claimed_again_only_once_a_send_to_it_is_heard(pg_url: str) -> None:
    """With N processes listening, every claim saved is N - 1 saved per send."""
    assert asyncio.run(quiet_claims(pg_url, _Counting)) == (0, [2])


def test_the_quiet_check_catches_a_receiver_that_claims_first(pg_url: str) -> None:
    assert asyncio.run(quiet_claims(pg_url, _ClaimsFirst)) == (1, [2])
