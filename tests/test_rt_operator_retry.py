"""An operator's retry of a compensation that gave up, on the runtime: the request, applied at
open, by the loop and across a crash, on every store, and ``sagafsm retry``. The engine's move and
the checkers' reading of it are in test_engine_operator_retry.py."""

from __future__ import annotations

import asyncio
import contextlib
import io
import sqlite3
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from rt_support import settle
from test_engine_operator_retry import PARKED_REASON, TRIP

from sagafsm.checks import check_history
from sagafsm.cli import main as sagafsm
from sagafsm.errors import InvalidArgument
from sagafsm.runtime import crashpoints
from sagafsm.runtime.clock import VirtualClock
from sagafsm.runtime.crashpoints import CrashPointReached
from sagafsm.runtime.host import ParticipantHost
from sagafsm.runtime.memory_store import MemoryStore
from sagafsm.runtime.participant import Participant, Refused
from sagafsm.runtime.postgres_store import PostgresStore
from sagafsm.runtime.runtime import Runtime
from sagafsm.runtime.sqlite_store import SqliteStore
from sagafsm.runtime.transport import InProcessTransport

# -- the runtime ---------------------------------------------------------------------------------


class Desks:
    """The participants, their effects counted; the car desk's give-back fails while it is down."""

    def __init__(self) -> None:
        self.effects: Counter[str] = Counter()
        self.car_desk_down = True

    def participants(self) -> list[Participant]:
        hotels, cars, airline = Participant("hotels"), Participant("cars"), Participant("airline")

        @hotels.action("book")
        async def book(call: Any) -> dict[str, Any]:
            self.effects["book"] += 1
            return {"room": 7}

        @hotels.compensation("cancel")
        async def cancel(call: Any) -> None:
            self.effects["cancel"] += 1

        @cars.action("rent")
        async def rent(call: Any) -> dict[str, Any]:
            self.effects["rent"] += 1
            return {"car": f"c-{call.saga_id}"}

        @cars.compensation("give_back")
        async def give_back(call: Any) -> None:
            if self.car_desk_down:
                raise Refused("the car desk is down")
            self.effects["give_back"] += 1

        @airline.action("fly")
        async def fly(call: Any) -> dict[str, Any]:
            raise Refused("no seats")

        return [hotels, cars, airline]


class Service:
    """A runtime and a participant host on one store, in virtual time."""

    def __init__(self, store: Any, desks: Desks, *, retry_poll: float = 1.0) -> None:
        self.store, self.desks = store, desks
        self.transport, self.clock = InProcessTransport(), VirtualClock(1_000.0)
        self.runtime = Runtime(
            store, self.transport, [TRIP], clock=self.clock, retry_poll=retry_poll
        )

    async def __aenter__(self) -> Service:
        await self.runtime.open()
        self.host = ParticipantHost(
            self.desks.participants(), self.transport, self.store, self.clock, boot=1000
        )
        self.hosting = asyncio.create_task(self.host.run())
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.host.close()
        await self.hosting
        await self.runtime.close()

    async def finish(self, saga_id: str) -> str:
        """Run (jumping the clock to each timer) until the saga is in a final state."""
        for _ in range(200):
            await settle(
                self.runtime, self.transport, ["orchestrator", "hotels", "cars", "airline"]
            )
            status = await self.store.status(saga_id)
            if status is not None and status.snapshot is None:
                return str(status.state)
            self.clock.advance_to_next()
        raise AssertionError(f"saga {saga_id} did not finish")


def _stores(tmp_path: Path) -> dict[str, Any]:
    return {"memory": MemoryStore(), "sqlite": SqliteStore(tmp_path / "trips.db")}


@pytest.mark.parametrize("kind", ["memory", "sqlite", "postgresql"])
def test_a_parked_saga_retried_through_the_runtime_ends_failed_with_every_effect_undone_once(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    async def main() -> tuple[list[Any], Any, Any]:
        if kind == "postgresql":
            store: Any = PostgresStore(request.getfixturevalue("pg_url"))
        else:
            store = _stores(tmp_path)[kind]
        desks = Desks()
        async with Service(store, desks) as service:
            saga_id = await service.runtime.start(TRIP, {}, saga_id="t-1")
            waiting = asyncio.ensure_future(service.runtime.wait(saga_id))
            assert await service.finish(saga_id) == "operator_required"
            parked = await store.status(saga_id)
            assert (await waiting).retryable  # from the finishing commit, as the store says
            assert (await service.runtime.wait(saga_id)).retryable  # from the store
            desks.car_desk_down = False
            await service.runtime.retry(saga_id, "the car desk is back")
            compensating = await store.status(saga_id)  # committed before retry() returns
            assert compensating.state == "compensating" and not compensating.retryable
            assert await service.finish(saga_id) == "failed"
            with pytest.raises(InvalidArgument, match="is failed, not operator_required"):
                await service.runtime.retry(saga_id)
            return await store.trace(), parked, await store.status(saga_id)

    trace, parked, final = asyncio.run(main())
    assert parked.retryable and parked.reason == PARKED_REASON
    assert final.state == "failed" and not final.retryable
    assert final.reason == "step 'flight' failed: no seats"
    assert [r[1:] for r in trace_of(trace)] == [
        ("operator", "t-1", "retry", "the car desk is back")
    ]
    assert check_history(trace, TRIP) == []
    moves = [(r[3], r[4]) for r in trace if r[1] == "transition" and r[4] == "operator_retry"]
    assert moves == [(None, "operator_retry"), ("car", "operator_retry")]


def trace_of(trace: list[Any]) -> list[Any]:
    return [record for record in trace if record[1] == "operator"]


def _cli(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = sagafsm(list(args))
    return code, out.getvalue(), err.getvalue()


def test_sagafsm_retry_stores_a_request_that_the_next_runtime_applies_as_it_opens(
    tmp_path: Path,
) -> None:
    path = tmp_path / "trips.db"
    url = f"sqlite:///{path}"
    desks = Desks()

    async def park() -> None:
        async with Service(SqliteStore(path), desks) as service:
            await service.runtime.start(TRIP, {}, saga_id="t-1")
            await service.runtime.start(TRIP, {}, saga_id="t-2")
            for saga_id in ("t-1", "t-2"):
                assert await service.finish(saga_id) == "operator_required"

    asyncio.run(park())
    assert _cli("retry", url, "nope")[0] == 2
    code, out, _ = _cli("retry", url, "t-1", "--note", "desk back")
    assert code == 0 and out.startswith("saga t-1: retry requested")
    code, _, err = _cli("retry", url, "t-1")
    assert code == 2 and "t-1' already has a retry waiting for the runtime" in err
    assert _cli("resolve", url, "t-2", "--note", "returned by hand")[0] == 0
    code, _, err = _cli("retry", url, "t-2")
    assert code == 2 and "was resolved by an operator ('returned by hand')" in err

    async def reopen() -> tuple[str, list[Any], list[Any]]:
        desks.car_desk_down = False
        store = SqliteStore(path)
        async with Service(store, desks) as service:
            applied = await store.status("t-1")  # applied before open() returned
            assert applied is not None and applied.state == "compensating"
            state = await service.finish("t-1")
            return state, await store.retry_requests(), await store.trace()

    state, waiting, trace = asyncio.run(reopen())
    assert state == "failed" and waiting == []
    with sqlite3.connect(path) as db:  # gone with the retry's commit, not just filtered out
        assert db.execute("SELECT COUNT(*) FROM sagafsm_requests").fetchone() == (0,)
    db.close()
    assert [r[1:] for r in trace_of(trace)] == [
        ("operator", "t-2", "resolve", "returned by hand"),
        ("operator", "t-1", "retry", "desk back"),
    ]
    assert check_history(trace, TRIP) == []
    assert desks.effects == Counter(book=2, rent=2, give_back=1, cancel=1)


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
def test_a_request_written_while_the_runtime_runs_is_picked_up_by_its_poll(
    kind: str, tmp_path: Path
) -> None:
    async def main() -> str:
        store, desks = _stores(tmp_path)[kind], Desks()
        async with Service(store, desks, retry_poll=0.01) as service:
            await service.runtime.start(TRIP, {}, saga_id="t-1")
            await service.finish("t-1")
            desks.car_desk_down = False
            assert await store.request_retry("t-1", "from another process", 0.0)
            assert not await store.request_retry("t-1", "twice", 0.0)
            for _ in range(500):
                status = await store.status("t-1")
                if status.state != "operator_required":
                    break
                await asyncio.sleep(0.01)
            return await service.finish("t-1")

    assert asyncio.run(main()) == "failed"


def test_a_crash_while_the_retry_commits_keeps_the_request_for_the_next_start(
    tmp_path: Path,
) -> None:
    path, desks = tmp_path / "trips.db", Desks()

    async def main() -> tuple[str, list[Any]]:
        async with Service(SqliteStore(path), desks) as service:
            await service.runtime.start(TRIP, {}, saga_id="t-1")
            await service.finish("t-1")
        async with SqliteStore(path) as store:
            assert await store.request_retry("t-1", "desk back", 0.0)
        desks.car_desk_down = False
        crashed = Service(SqliteStore(path), desks)
        crashpoints.arm("orchestrator.before_commit", 1, action="raise")
        try:
            with pytest.raises(CrashPointReached):
                await crashed.runtime.open()
        finally:
            crashpoints.disarm()
        await crashed.runtime.abandon()
        store = SqliteStore(path)
        async with Service(store, desks) as service:
            state = await service.finish("t-1")
            return state, await store.trace()

    state, trace = asyncio.run(main())
    assert state == "failed"
    assert [r[1:] for r in trace_of(trace)] == [("operator", "t-1", "retry", "desk back")]
    assert check_history(trace, TRIP) == []
