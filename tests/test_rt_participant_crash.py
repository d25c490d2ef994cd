"""A participant process killed with SIGKILL at each of its crash points, then restarted: the
command is delivered again, the effect is applied exactly once (in the ledger and in the
participant's own table), and the orchestrator gets its reply."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import textwrap
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from sagafsm.messages import Envelope, MessageKind, Outcome
from sagafsm.runtime import crashpoints
from sagafsm.runtime.clock import WallClock
from sagafsm.runtime.host import ParticipantHost
from sagafsm.runtime.participant import ActionCall, Participant
from sagafsm.runtime.sqlite_store import SqliteStore
from sagafsm.runtime.sqlite_transport import SqliteTransport
from sagafsm.runtime.transport import ORCHESTRATOR

_CHILD = textwrap.dedent(
    """
    import asyncio, sys
    sys.path.insert(0, {tests!r})
    from test_rt_participant_crash import serve
    asyncio.run(serve({path!r}))
    """
)


async def serve(path: str) -> None:
    """The participant process: an ``inventory`` that books into its own table, forever."""
    inventory = Participant("inventory")

    @inventory.action("reserve")
    async def reserve(call: ActionCall) -> Mapping[str, Any] | None:
        await call.db.execute("INSERT INTO reservations VALUES (?)", (call.saga_id,))
        return {"reserved": call.saga_id}

    async with SqliteStore(path) as store, SqliteTransport(path) as transport:
        async with store.transaction("inventory") as tx:
            await tx.execute("CREATE TABLE IF NOT EXISTS reservations (saga TEXT)")
        host = ParticipantHost([inventory], transport, store, WallClock(), boot=await store.boot())
        await host.run()


async def start(path: Path, crash_at: str | None) -> asyncio.subprocess.Process:
    env = {k: v for k, v in os.environ.items() if k != crashpoints.ENVIRONMENT_VARIABLE}
    if crash_at is not None:
        env[crashpoints.ENVIRONMENT_VARIABLE] = crash_at
    script = _CHILD.format(tests=str(Path(__file__).parent), path=str(path))
    return await asyncio.create_subprocess_exec(sys.executable, "-c", script, env=env)


@pytest.mark.slow
@pytest.mark.parametrize("point", ["participant.before_commit", "participant.after_commit"])
def test_a_participant_killed_at_a_crash_point_applies_the_effect_once(
    point: str, tmp_path: Path
) -> None:
    """Killed before its commit: nothing kept, the restart runs the handler. Killed after: the
    effect is kept, the restart answers from the inbox. Either way: one effect, one row, one
    reply reaching the orchestrator, and the command's row acked."""
    path = tmp_path / "saga.db"

    async def main() -> None:
        async with SqliteStore(path) as store, SqliteTransport(path) as orchestrator:
            execute = Envelope(
                message_id=1, kind=MessageKind.EXECUTE, saga_id="s", causation_id=None,
                idempotency_key="s/a", source=ORCHESTRATOR, dest="inventory", step="reserve",
                operation="reserve",
            )  # fmt: skip
            await orchestrator.send(execute)
            killed = await start(path, point)
            assert await asyncio.wait_for(killed.wait(), 20) == -signal.SIGKILL
            effects = [r[5] for r in await store.trace() if r[1] == "effect"]
            assert effects == ([] if point == "participant.before_commit" else ["action"])

            restarted = await start(path, None)
            try:
                reply = (await asyncio.wait_for(orchestrator.receive(ORCHESTRATOR), 20)).message
                assert reply.outcome is Outcome.SUCCEEDED and reply.result == {"reserved": "s"}
                assert reply.causation_id == 1
                while await _rows(store, "inventory"):
                    await asyncio.sleep(0.01)  # wait for the restarted host's ack
            finally:
                restarted.send_signal(signal.SIGTERM)
                await restarted.wait()
            trace = await store.trace()
            assert [r[5] for r in trace if r[1] == "effect"] == ["action"]
            async with store.transaction("inventory") as tx:
                assert await tx.execute("SELECT saga FROM reservations") == [("s",)]
            assert await _rows(store, "inventory") == 0

    asyncio.run(asyncio.wait_for(main(), timeout=60))


async def _rows(store: SqliteStore, dest: str) -> int:
    async with store.transaction("observer") as tx:
        rows = await tx.execute("SELECT count(*) FROM sagafsm_messages WHERE dest = ?", (dest,))
    return int(rows[0][0])
