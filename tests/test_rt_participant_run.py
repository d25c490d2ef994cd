"""The host's consumers: every participant served from the transport, replies to the
orchestrator, commands acked after their reply, and a close that lets the command in hand
finish."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sagafsm.messages import Envelope, MessageKind, Outcome
from sagafsm.runtime.clock import WallClock
from sagafsm.runtime.host import ParticipantHost
from sagafsm.runtime.memory_store import MemoryStore
from sagafsm.runtime.participant import ActionCall, Participant
from sagafsm.runtime.sqlite_store import SqliteStore
from sagafsm.runtime.sqlite_transport import SqliteTransport
from sagafsm.runtime.transport import ORCHESTRATOR, InProcessTransport, Transport


def command(n: int, dest: str, saga: str | None = None) -> Envelope:
    return Envelope(
        message_id=n, kind=MessageKind.EXECUTE, saga_id=saga or f"saga-{n}", causation_id=None,
        idempotency_key=f"key-{n}", source=ORCHESTRATOR, dest=dest, step="work",
        operation="work",
    )  # fmt: skip


def worker(name: str, gate: asyncio.Event | None = None) -> Participant:
    """Answers {"by": name}; saga "wait" waits for ``gate``; saga "boom" raises."""
    participant = Participant(name)

    @participant.action("work")
    async def work(call: ActionCall) -> Mapping[str, Any] | None:
        if call.saga_id == "wait" and gate is not None:
            await gate.wait()
        if call.saga_id == "boom":
            raise RuntimeError("boom")
        return {"by": name, "saga": call.saga_id}

    return participant


async def replies(transport: Transport, count: int) -> list[Envelope]:
    got: list[Envelope] = []
    while len(got) < count:
        got += [d.message for d in await transport.receive_many(ORCHESTRATOR, count)]
    return got


def test_every_participant_is_served_and_replies_reach_the_orchestrator() -> None:
    """Commands for two participants: each answered by its own, once; close ends run()."""

    async def main() -> None:
        async with MemoryStore() as store:
            transport = InProcessTransport()
            host = ParticipantHost(
                [worker("a"), worker("b")], transport, store, WallClock(), boot=1
            )
            async with asyncio.TaskGroup() as group:
                running = group.create_task(host.run())
                await transport.send_many([command(n, "ab"[n % 2]) for n in range(6)])
                got = await replies(transport, 6)
                await host.close()
            assert running.done()
            assert sorted(m.causation_id or 0 for m in got) == list(range(6))
            for reply in got:
                assert reply.result == {"by": "ab"[(reply.causation_id or 0) % 2],
                                        "saga": reply.saga_id}  # fmt: skip
            assert host.statistics().replies == 6

    asyncio.run(asyncio.wait_for(main(), timeout=20))


def test_close_lets_the_command_in_hand_finish_and_takes_no_more() -> None:
    """close() while a handler waits: close returns only after that command's reply was sent;
    a command sent afterwards stays queued."""

    async def main() -> None:
        gate = asyncio.Event()
        async with MemoryStore() as store:
            transport = InProcessTransport()
            host = ParticipantHost([worker("a", gate)], transport, store, WallClock(), boot=1)
            async with asyncio.TaskGroup() as group:
                group.create_task(host.run())
                await transport.send(command(1, "a", saga="wait"))
                while host.statistics().received == 0:
                    await asyncio.sleep(0.001)
                closing = group.create_task(host.close())
                await asyncio.sleep(0.05)
                assert not closing.done()  # the handler still waits
                await transport.send(command(2, "a"))
                gate.set()
                await closing
            (delivery,) = await transport.receive_many(ORCHESTRATOR, 10)
            reply = delivery.message
            assert reply.outcome is Outcome.SUCCEEDED and reply.causation_id == 1
            assert transport.queued("a") == 1

    asyncio.run(asyncio.wait_for(main(), timeout=20))


def test_a_closed_transport_ends_the_run_cleanly() -> None:
    """The transport closes under the host: run() returns, no error."""

    async def main() -> None:
        async with MemoryStore() as store:
            transport = InProcessTransport()
            host = ParticipantHost([worker("a")], transport, store, WallClock(), boot=1)
            running = asyncio.ensure_future(host.run())
            await asyncio.sleep(0.01)
            await transport.close()
            await running

    asyncio.run(asyncio.wait_for(main(), timeout=20))


def test_over_sqlite_each_command_is_acked_after_its_reply(tmp_path: Path) -> None:
    """Store and transport in one file: after the host ran, the commands' rows are gone (the
    abandoned one too) and only the replies wait for the orchestrator."""
    path = tmp_path / "saga.db"

    async def main() -> None:
        async with SqliteStore(path) as store:
            boot = await store.boot()
            async with SqliteTransport(path) as theirs, SqliteTransport(path) as ours:
                host = ParticipantHost([worker("a")], theirs, store, WallClock(), boot=boot)
                async with asyncio.TaskGroup() as group:
                    group.create_task(host.run())
                    await ours.send_many(
                        [command(1, "a"), command(2, "a", saga="boom"), command(3, "a")]
                    )
                    got = await replies(ours, 2)
                    while host.statistics().received < 3:
                        await asyncio.sleep(0.005)
                    await host.close()
                assert sorted(m.causation_id or 0 for m in got) == [1, 3]
                assert {m.message_id >> 32 for m in got} == {boot}
        with sqlite3.connect(path) as db:
            dests = db.execute("SELECT dest FROM sagafsm_messages").fetchall()
        assert dests == [(ORCHESTRATOR,), (ORCHESTRATOR,)]

    asyncio.run(asyncio.wait_for(main(), timeout=20))
