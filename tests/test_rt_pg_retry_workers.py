"""An operator's retry with several orchestrator worker processes on one PostgreSQL store:
real processes (two workers and the participants), a real server, ``sagafsm retry`` from the
command line while they run.

Every worker polls the store for requests, so both see each one; the request row's lock
(``LOCK_REQUESTS``) lets one of them apply it and the other find it gone. The retried sagas
end failed with every effect undone once, each retry applied once, the checkers clean. (The
deterministic interleaving, and the broken variant that applies a request twice, are in
``test_rt_pg_worker_race.py``.)
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import multiprocessing
import time
from collections import Counter
from typing import Any

from test_engine_operator_retry import TRIP
from test_rt_operator_retry import Desks

from sagafsm.checks import check_history
from sagafsm.cli import main as sagafsm
from sagafsm.runtime.clock import WallClock
from sagafsm.runtime.host import ParticipantHost
from sagafsm.runtime.postgres_shared import SharedPostgresStore
from sagafsm.runtime.postgres_store import PostgresStore
from sagafsm.runtime.postgres_transport import PostgresTransport
from sagafsm.runtime.postgres_workers import WorkerRuntime

SAGAS = [f"t-{n}" for n in range(1, 7)]
DEADLINE = 120.0


async def _wait_for(event: Any) -> None:
    await asyncio.get_running_loop().run_in_executor(None, event.wait)


async def _work(url: str, k: int, stop: Any, ready: Any) -> int:
    store, transport = SharedPostgresStore(url), PostgresTransport(url, lease=5.0)
    async with transport, WorkerRuntime(store, transport, [TRIP], retry_poll=0.05) as runtime:
        if k == 0:
            for saga_id in SAGAS:
                await runtime.start(TRIP, {}, saga_id=saga_id)
        ready.put(k)
        await _wait_for(stop)
    return 0


async def _serve(url: str, desk_up: Any, stop: Any, ready: Any) -> int:
    store, transport, desks = PostgresStore(url), PostgresTransport(url, lease=5.0), Desks()
    async with store, transport:
        host = ParticipantHost(desks.participants(), transport, store, WallClock())
        hosting = asyncio.ensure_future(host.run())
        ready.put("participants")
        await _wait_for(desk_up)
        desks.car_desk_down = False
        await _wait_for(stop)
        await host.close()
        await hosting
    return 0


def _worker(url: str, k: int, stop: Any, ready: Any) -> None:
    raise SystemExit(asyncio.run(_work(url, k, stop, ready)))


def _participants(url: str, desk_up: Any, stop: Any, ready: Any) -> None:
    raise SystemExit(asyncio.run(_serve(url, desk_up, stop, ready)))


def _states(url: str) -> Counter[str]:
    async def read() -> Counter[str]:
        async with PostgresStore(url) as store:
            return Counter(str(s.state) for s in await store.sagas())

    return asyncio.run(read())


def _until(url: str, wanted: Counter[str]) -> None:
    end = time.monotonic() + DEADLINE
    while (found := _states(url)) != wanted:
        assert time.monotonic() < end, found
        time.sleep(0.1)


def _cli(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = sagafsm(list(args))
    return code, out.getvalue(), err.getvalue()


def test_sagafsm_retry_with_two_worker_processes_applies_each_request_once(pg_url: str) -> None:
    asyncio.run(SharedPostgresStore(pg_url).open())  # the schema, before three processes race
    spawn = multiprocessing.get_context("spawn")
    stop, desk_up, ready = spawn.Event(), spawn.Event(), spawn.Queue()
    processes = [spawn.Process(target=_participants, args=(pg_url, desk_up, stop, ready))]
    processes += [spawn.Process(target=_worker, args=(pg_url, k, stop, ready)) for k in (0, 1)]
    for process in processes:
        process.start()
    try:
        for _ in processes:
            ready.get(timeout=DEADLINE)
        _until(pg_url, Counter(operator_required=len(SAGAS)))
        desk_up.set()
        for saga_id in SAGAS:
            code, out, err = _cli("retry", pg_url, saga_id, "--note", "desk back")
            assert code == 0 and out.startswith(f"saga {saga_id}: retry requested"), err
        _until(pg_url, Counter(failed=len(SAGAS)))
    finally:
        stop.set()
        for process in processes:
            process.join(timeout=30)
            if process.is_alive():
                process.kill()
    assert [process.exitcode for process in processes] == [0, 0, 0]

    async def trace() -> list[Any]:
        async with PostgresStore(pg_url) as store:
            return await store.trace()

    records = asyncio.run(trace())
    retried = Counter(r[2] for r in records if r[1] == "operator" and r[3] == "retry")
    assert retried == Counter({saga_id: 1 for saga_id in SAGAS})
    assert check_history(records, TRIP) == []
    effects = Counter(tuple(r[3:]) for r in records if r[1] == "effect")
    assert effects == Counter({
        ("hotels", "hotel", "action"): 6, ("cars", "car", "action"): 6,
        ("airline", "flight", "action_failed"): 6,
        ("cars", "car", "compensation_failed"): 12,  # two tries each while the desk was down
        ("cars", "car", "compensation"): 6, ("hotels", "hotel", "compensation"): 6,
    })  # fmt: skip
