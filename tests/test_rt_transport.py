"""Transports: in order per node, at least once, and a clean end on close. The SQLite transport
is tested on real files, with a second OS process where one matters."""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import sys
import textwrap
import time
from pathlib import Path

import pytest

from sagafsm.errors import InvalidArgument
from sagafsm.messages import Envelope, MessageKind
from sagafsm.runtime.codec import envelope_to_dict
from sagafsm.runtime.sqlite_transport import SqliteTransport
from sagafsm.runtime.transport import (
    ORCHESTRATOR,
    InProcessTransport,
    Transport,
    TransportClosed,
)


def command(n: int, dest: str = "inventory") -> Envelope:
    return Envelope(
        message_id=n,
        kind=MessageKind.EXECUTE,
        saga_id=f"saga-{n}",
        causation_id=None,
        idempotency_key=f"key-{n}",
        source=ORCHESTRATOR,
        dest=dest,
        step="reserve",
        operation="reserve",
        data={"n": n, "items": [1, 2.5, "x"]},
    )


def run(coroutine: object) -> object:
    """asyncio.run with a deadline, so that a transport that never wakes fails the test."""
    return asyncio.run(asyncio.wait_for(coroutine, timeout=20))  # type: ignore[arg-type]


# -- both transports -------------------------------------------------------------------------


async def _order_and_batches(transport: Transport) -> None:
    await transport.send_many([command(1), command(2, "payment"), command(3), command(4)])
    first = await transport.receive("inventory")
    assert first.message == command(1)
    batch = await transport.receive_many("inventory", 5)
    assert [d.message for d in batch] == [command(3), command(4)]
    (payment,) = await transport.receive_many("payment", 5)
    assert payment.message == command(2, "payment")
    receipts = [d.receipt for d in (first, *batch, payment) if d.receipt is not None]
    await transport.ack("inventory", receipts)


@pytest.mark.parametrize("kind", ["in-process", "sqlite"])
def test_messages_arrive_in_send_order_per_node(kind: str, tmp_path: Path) -> None:
    """Each node gets its own messages, in order; receive_many takes what is there up to limit."""

    async def main() -> None:
        if kind == "sqlite":
            async with SqliteTransport(tmp_path / "q.db") as transport:
                await _order_and_batches(transport)
        else:
            await _order_and_batches(InProcessTransport())

    run(main())


@pytest.mark.parametrize("kind", ["in-process", "sqlite"])
def test_close_wakes_a_waiting_receiver_with_transport_closed(kind: str, tmp_path: Path) -> None:
    """A receiver blocked on an empty node ends with TransportClosed; so does a later send."""

    async def main() -> None:
        transport: Transport = (
            SqliteTransport(tmp_path / "q.db") if kind == "sqlite" else InProcessTransport()
        )
        waiting = asyncio.ensure_future(transport.receive("inventory"))
        await asyncio.sleep(0.05)
        assert not waiting.done()
        await transport.close()
        with pytest.raises(TransportClosed):
            await waiting
        with pytest.raises(TransportClosed):
            await transport.send(command(1))

    run(main())


@pytest.mark.parametrize("kind", ["in-process", "sqlite"])
def test_close_while_a_receiver_is_still_connecting_ends_it_with_transport_closed(
    kind: str, tmp_path: Path
) -> None:
    """Closed while the first receive was opening the connection (a slow machine): the receiver
    ends with TransportClosed, not with an error from the stopped database thread."""

    async def main() -> None:
        transport: Transport = (
            SqliteTransport(tmp_path / "q.db") if kind == "sqlite" else InProcessTransport()
        )
        waiting = asyncio.ensure_future(transport.receive("inventory"))
        await asyncio.sleep(0)  # the receiver is now waiting for its connection
        await transport.close()
        with pytest.raises(TransportClosed):
            await waiting

    run(main())


@pytest.mark.parametrize("kind", ["in-process", "sqlite"])
def test_a_message_sent_later_wakes_the_receiver(kind: str, tmp_path: Path) -> None:
    """receive blocks until a message comes, then returns it."""

    async def main() -> None:
        transport: Transport = (
            SqliteTransport(tmp_path / "q.db") if kind == "sqlite" else InProcessTransport()
        )
        waiting = asyncio.ensure_future(transport.receive("inventory"))
        await asyncio.sleep(0.02)
        await transport.send(command(9))
        assert (await waiting).message == command(9)
        await transport.close()

    run(main())


def test_receive_many_refuses_a_bad_limit() -> None:
    """limit is a positive int."""

    async def main() -> None:
        with pytest.raises(InvalidArgument):
            await InProcessTransport().receive_many("inventory", 0)

    run(main())


# -- SQLite: at least once, across objects and processes -------------------------------------


def test_an_unacked_message_is_delivered_again_by_a_new_transport(tmp_path: Path) -> None:
    """Receive three, ack one, drop the transport (as a killed process would): a new transport on
    the file delivers the two unacked ones, in id order, and never the acked one."""
    path = tmp_path / "q.db"

    async def first() -> None:
        transport = SqliteTransport(path)
        await transport.send_many([command(1), command(2), command(3)])
        batch = await transport.receive_many("inventory", 10)
        assert [d.message.message_id for d in batch] == [1, 2, 3]
        assert batch[1].receipt is not None
        await transport.ack("inventory", [batch[1].receipt])
        assert len(transport.claimed("inventory")) == 2
        await transport.close()

    async def second() -> list[int]:
        async with SqliteTransport(path) as transport:
            batch = await transport.receive_many("inventory", 10)
            await transport.ack("inventory", [d.receipt for d in batch if d.receipt])
            return [d.message.message_id for d in batch]

    run(first())
    assert run(second()) == [1, 3]
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT count(*) FROM sagafsm_messages").fetchone() == (0,)


def test_one_transport_never_hands_out_a_claimed_row_twice(tmp_path: Path) -> None:
    """An unacked row stays in the table but is not delivered again by the same object."""

    async def main() -> None:
        async with SqliteTransport(tmp_path / "q.db") as transport:
            await transport.send(command(1))
            assert (await transport.receive("inventory")).message.message_id == 1
            waiting = asyncio.ensure_future(transport.receive("inventory"))
            await asyncio.sleep(0.1)
            assert not waiting.done()
            await transport.send(command(2))
            assert (await waiting).message.message_id == 2

    run(main())


_SENDER = textwrap.dedent(
    """
    import asyncio, sys
    sys.path.insert(0, {tests!r})
    from test_rt_transport import command
    from sagafsm.runtime.sqlite_transport import SqliteTransport

    async def main():
        async with SqliteTransport({path!r}) as transport:
            await transport.send_many([command(5), command(6)])

    asyncio.run(main())
    """
)


def test_messages_from_another_process_arrive_by_polling(tmp_path: Path) -> None:
    """A receiver waiting in this process gets what another OS process inserts."""
    path = tmp_path / "q.db"

    async def main() -> list[int]:
        async with SqliteTransport(path, poll_interval=0.002, max_poll_interval=0.02) as t:
            waiting = asyncio.ensure_future(t.receive_many("inventory", 10))
            await asyncio.sleep(0.05)
            script = _SENDER.format(tests=str(Path(__file__).parent), path=str(path))
            sender = await asyncio.create_subprocess_exec(sys.executable, "-c", script)
            assert await sender.wait() == 0
            ids = [d.message.message_id for d in await waiting]
            while len(ids) < 2:
                ids += [d.message.message_id for d in await t.receive_many("inventory", 10)]
            return ids

    assert run(main()) == [5, 6]


def test_a_row_not_visible_yet_waits_for_its_time(tmp_path: Path) -> None:
    """visible_at in the future hides a row; the transport delivers the visible one after it."""
    path = tmp_path / "q.db"

    async def main() -> None:
        async with SqliteTransport(path) as transport:
            await transport.send(command(1))  # creates the table
            body = json.dumps(envelope_to_dict(command(0)))
            with sqlite3.connect(path) as db:
                db.execute(
                    "INSERT INTO sagafsm_messages(dest, body, visible_at) VALUES (?, ?, ?)",
                    ("inventory", body, time.time() + 0.3),
                )
            batch = await transport.receive_many("inventory", 10)
            assert [d.message.message_id for d in batch] == [1]
            later = await transport.receive("inventory")
            assert later.message.message_id == 0

    run(main())


def test_a_row_that_is_not_an_envelope_is_skipped_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A poison row is logged, not handed out, and does not block the rows behind it."""
    path = tmp_path / "q.db"

    async def main() -> None:
        async with SqliteTransport(path) as transport:
            await transport.send(command(1))
            await transport.receive_many("inventory", 5)
            with sqlite3.connect(path) as db:
                db.execute(
                    "INSERT INTO sagafsm_messages(dest, body) VALUES ('inventory', '{\"x\": 1}')"
                )
            await transport.send(command(2))
            assert (await transport.receive("inventory")).message.message_id == 2

    with caplog.at_level(logging.WARNING, logger="sagafsm.runtime.sqlite_transport"):
        run(main())
    assert "is not an envelope" in caplog.text


def test_claims_of_rows_deleted_elsewhere_are_forgotten(tmp_path: Path) -> None:
    """A row consumed by someone else (the store's commit) drops out of the claimed set."""
    path = tmp_path / "q.db"

    async def main() -> None:
        async with SqliteTransport(path) as transport:
            await transport.send_many([command(1), command(2)])
            batch = await transport.receive_many("inventory", 1)
            assert transport.claimed("inventory") == {batch[0].receipt}
            with sqlite3.connect(path) as db:
                db.execute("DELETE FROM sagafsm_messages WHERE id = ?", (batch[0].receipt,))
            await transport.receive("inventory")  # reads every visible row: 1 is gone
            assert len(transport.claimed("inventory")) == 1
            assert batch[0].receipt not in transport.claimed("inventory")

    run(main())


@pytest.mark.parametrize(
    "options",
    [
        {"poll_interval": 0},
        {"max_poll_interval": -1},
        {"poll_interval": 0.1, "max_poll_interval": 0.01},
    ],
)
def test_bad_poll_intervals_are_refused(options: dict[str, float], tmp_path: Path) -> None:
    """Intervals are positive and the maximum is not below the start."""
    with pytest.raises(InvalidArgument):
        SqliteTransport(tmp_path / "q.db", **options)
