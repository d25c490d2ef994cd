"""Two workers pick up one saga's reply and its timer at once: a deterministic interleaving,
in process, on one real PostgreSQL store.

Worker A takes the reply and holds its batch's transaction open after reading the saga; worker
B takes the saga's timer meanwhile. With the row lock, B waits for A's commit and finds the
timer stale in the snapshot A wrote: one move. The ``no-saga-lock`` variant
(:class:`~sagafsm.runtime.postgres_run.UnlockedStore`) lets B read the old snapshot while A
holds it (A waits until B has read), so both move the saga from one state, and the checkers
say so, every run: the CLI-level race test in ``test_rt_pg_workers.py`` is only a smoke test.

The same interleaving for an operator's retry that both workers' polls picked up: with the
request row's lock the second finds it applied and gone. Without that lock (a broken variant
that takes every request as still waiting) the second worker does try, and the engine refuses
it, since the saga it holds the lock of is no longer parked: two guards, each enough alone.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
from rt_support import ORDER
from test_engine_operator_retry import TRIP
from test_rt_operator_retry import Desks, Service

from sagafsm.checks import check_history
from sagafsm.errors import InvalidArgument
from sagafsm.events import TimerFired
from sagafsm.messages import Outcome, reply_to
from sagafsm.orchestration import NO_RUNNING_SAGA, event_for
from sagafsm.runtime.clock import VirtualClock
from sagafsm.runtime.postgres_run import UnleasedStore, UnlockedStore
from sagafsm.runtime.postgres_shared import LockedSagas, SharedPostgresStore
from sagafsm.runtime.postgres_store import PostgresStore
from sagafsm.runtime.postgres_workers import WorkerRuntime
from sagafsm.runtime.retries import RetryItem
from sagafsm.runtime.runtime import _Inbound
from sagafsm.runtime.transport import InProcessTransport

WAITING_ON_A_LOCK = """
    SELECT count(*) FROM pg_stat_activity
    WHERE datname = current_database() AND wait_event_type = 'Lock'"""


class _Gated(WorkerRuntime):
    """A worker that says when it has read its batch's sagas (``read``), then, once given a
    ``hold``, keeps the batch's transaction open until ``hold`` returns."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.read = asyncio.Event()
        self.hold: Any = None

    async def _apply_held(self, batch: list[Any], held: LockedSagas, ids: set[str]) -> None:
        self.read.set()
        if self.hold is not None:
            await self.hold()
        await super()._apply_held(batch, held, ids)


def _until_read_or_waiting(b: _Gated, store: SharedPostgresStore) -> Any:
    """A's hold: until B has read its batch's sagas (no lock held it back) or waits on a lock."""

    async def hold() -> None:
        for _ in range(1000):
            if b.read.is_set() or (await store._fetch(WAITING_ON_A_LOCK))[0][0] > 0:
                return
            await asyncio.sleep(0.01)
        raise AssertionError("worker B neither read the saga nor waited on its lock")

    return hold


async def _reserved(bus: InProcessTransport) -> _Inbound:
    """The inventory's reply (a success) to the saga's first command, waiting on ``bus``."""
    (delivery,) = await bus.receive_many("inventory", 1)
    reply = reply_to(
        delivery.message,
        message_id=1,
        source="inventory",
        outcome=Outcome.SUCCEEDED,
        result={"reservation": "r"},
    )
    return _Inbound(event_for(reply), reply.message_id, None, None)


async def _race(url: str, store_class: type[SharedPostgresStore]) -> dict[str, Any]:
    clock = VirtualClock(1_000.0)  # timers never come due by themselves: the test fires one
    one, two = store_class(url), store_class(url)
    a_bus, b_bus = InProcessTransport(), InProcessTransport()
    a = _Gated(one, a_bus, [ORDER], clock=clock)
    b = _Gated(two, b_bus, [ORDER], clock=clock)
    async with a, b:
        saga_id = await a.start(ORDER, {"amount": 1}, saga_id="raced")
        await _idle(a)
        reply = await _reserved(a_bus)
        (timer,) = [t for t in await one.timers() if t.saga_id == saga_id]
        fired = TimerFired(saga_id=saga_id, timer_id=timer.timer_id)
        record = (clock.now(), "timer_fired", saga_id, timer.timer_id)
        a.read.clear()
        b.read.clear()
        a.hold = _until_read_or_waiting(b, one)
        a_batch = a._apply([reply])
        moving = asyncio.ensure_future(a_batch)
        await a.read.wait()  # A holds the saga (and, with the lock, its row lock)
        await b._apply([_Inbound(fired, None, None, record)])
        await moving
        trace = await one.trace()
        status = await one.status(saga_id)
    assert status is not None
    # The saga is left halfway on purpose: that it never finished is no finding here.
    found = [v for v in check_history(trace, ORDER) if v.property != "termination"]
    stale = [r for r in trace if r[1] == "ignored" and r[2] == saga_id]
    return {"violations": sorted({v.property for v in found}), "stale": len(stale)}


def test_with_the_row_lock_the_second_worker_finds_the_timer_stale(pg_url: str) -> None:
    found = asyncio.run(_race(pg_url, SharedPostgresStore))
    assert found == {"violations": [], "stale": 1}


@pytest.mark.parametrize("attempt", range(3))
def test_without_it_both_move_the_saga_from_one_snapshot_and_the_checkers_say_so(
    pg_url: str, attempt: int
) -> None:
    """Three times, to show it is not luck: the interleaving is forced, not raced."""
    found = asyncio.run(_race(pg_url, UnlockedStore))
    assert found["stale"] == 0 and found["violations"] == ["declared-transitions"], found


class _EveryRequestWaiting(SharedPostgresStore):
    """The broken variant: every retry given is taken as still waiting, unlocked."""

    _lock_requests = "SELECT saga_id FROM unnest(%b::text[]) AS r(saga_id)"


async def _retried_by_both(url: str, store_class: type[SharedPostgresStore]) -> int:
    """Park a saga (one runtime, in virtual time), then let two workers apply the operator's
    retry at once, A holding its batch open until B has read or waits: how many times the
    retry was applied."""
    async with Service(PostgresStore(url), Desks()) as service:
        await service.runtime.start(TRIP, {}, saga_id="t-1")
        assert await service.finish("t-1") == "operator_required"
    clock = VirtualClock(2_000.0)
    one, two = store_class(url), store_class(url)
    a = _Gated(one, InProcessTransport(), [TRIP], clock=clock, retry_poll=3600.0)
    b = _Gated(two, InProcessTransport(), [TRIP], clock=clock, retry_poll=3600.0)

    async with a, b:
        for worker in (a, b):  # their polls leave it alone: the test hands it to both
            worker._retries_queued.add("t-1")
        assert await one.request_retry("t-1", "desk back", clock.now())
        (request,) = await one.retry_requests()
        a.hold = _until_read_or_waiting(b, one)
        moving = asyncio.ensure_future(a._apply([RetryItem(request)]))
        await a.read.wait()
        await b._apply([RetryItem(request)])
        await moving
        trace = await one.trace()
    return sum(1 for r in trace if r[1] == "operator" and r[3] == "retry")


def test_a_retry_both_workers_picked_up_is_applied_once(pg_url: str) -> None:
    assert asyncio.run(_retried_by_both(pg_url, SharedPostgresStore)) == 1


def test_without_the_request_lock_the_engine_refuses_the_second_application(
    pg_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    assert asyncio.run(_retried_by_both(pg_url, _EveryRequestWaiting)) == 1
    refused = [r for r in caplog.records if "the retry of saga 't-1' cannot run" in r.message]
    assert len(refused) == 1, caplog.text


# -- a saga held in memory between batches ----------------------------------------------------


class _Trusting(_Gated):
    """The broken variant: moves any saga it holds from memory, whoever moved it since."""

    def _current(self, saga_id: str, snapshot: str) -> bool:
        return saga_id in self._core


class _Counting(_Gated):
    reused = 0

    def _current(self, saga_id: str, snapshot: str) -> bool:
        current = super()._current(saga_id, snapshot)
        self.reused += current
        return current


async def _idle(worker: WorkerRuntime) -> None:
    """Until the worker's loop has finished its batch (the test then applies one itself)."""
    while not worker.idle:
        await asyncio.sleep(0)


async def _moved_elsewhere(url: str, a_class: type[_Gated]) -> dict[str, Any]:
    """A starts a saga and moves it once (from memory the second time); B takes the reply to
    its first step; then A gets that step's timer, stale by now."""
    clock = VirtualClock(1_000.0)
    one, two = SharedPostgresStore(url), SharedPostgresStore(url)
    a_bus = InProcessTransport()
    a = a_class(one, a_bus, [ORDER], clock=clock)
    b = _Gated(two, InProcessTransport(), [ORDER], clock=clock)
    async with a, b:
        saga_id = await a.start(ORDER, {"amount": 1}, saga_id="held")
        await _idle(a)
        (timer,) = [t for t in await one.timers() if t.saga_id == saga_id]
        fired = TimerFired(saga_id=saga_id, timer_id=timer.timer_id)
        record = (clock.now(), "timer_fired", saga_id, timer.timer_id)
        reply = await _reserved(a_bus)
        await b._apply([reply])
        await a._apply([_Inbound(fired, None, None, record)])
        trace = await one.trace()
    found = [v for v in check_history(trace, ORDER) if v.property != "termination"]
    stale = [r for r in trace if r[1] == "ignored" and r[2] == saga_id]
    return {
        "violations": sorted({v.property for v in found}),
        "stale": len(stale),
        "reused": getattr(a, "reused", None),
    }


def test_a_saga_another_worker_moved_is_read_again_not_moved_from_memory(pg_url: str) -> None:
    found = asyncio.run(_moved_elsewhere(pg_url, _Counting))
    assert found == {"violations": [], "stale": 1, "reused": 0}


def test_the_trusting_variant_moves_it_from_its_stale_memory_and_is_caught(pg_url: str) -> None:
    found = asyncio.run(_moved_elsewhere(pg_url, _Trusting))
    assert found["stale"] == 0 and found["violations"] == ["declared-transitions"], found


@contextlib.asynccontextmanager
async def _started(
    url: str, worker_class: type[_Gated], saga_id: str
) -> AsyncIterator[tuple[_Gated, SharedPostgresStore, _Inbound]]:
    """One worker that started ``saga_id`` (and holds it), its store, the first step's reply."""
    clock, bus = VirtualClock(1_000.0), InProcessTransport()
    one = SharedPostgresStore(url)
    async with worker_class(one, bus, [ORDER], clock=clock) as a:
        await a.start(ORDER, {"amount": 1}, saga_id=saga_id)
        await _idle(a)
        yield a, one, await _reserved(bus)


def test_a_saga_no_one_else_moved_is_moved_from_memory(pg_url: str) -> None:
    async def scenario() -> int:
        async with _started(pg_url, _Counting, "mine") as (a, one, reply):
            await a._apply([reply])
            moves = [r[3:5] for r in await one.trace() if r[1] == "transition"]
            assert ("reserve", "succeed") in moves and ("charge", "send") in moves, moves
            assert isinstance(a, _Counting)
            return a.reused

    assert asyncio.run(scenario()) == 1


class _KeepsTheUnstored(_Gated):
    """The broken variant: lets go only of sagas whose row it read, not of those gone."""

    async def _apply_held(self, batch: list[Any], held: LockedSagas, ids: set[str]) -> None:
        await super()._apply_held(batch, held, set(held.rows))


async def _pruned_meanwhile(url: str, worker_class: type[_Gated]) -> list[Any]:
    """A holds a saga in memory; its row goes (another worker finished it, retention pruned
    it: here, a DELETE); then a late reply for it comes to A."""
    async with _started(url, worker_class, "gone") as (a, one, reply):
        await one._count("DELETE FROM sagafsm_sagas WHERE saga_id = 'gone'")
        await a._apply([reply])
        return [r[1:] for r in await one.trace() if r[1] == "ignored"]


def test_a_saga_gone_from_the_store_is_let_go_and_its_late_reply_ignored(pg_url: str) -> None:
    assert asyncio.run(_pruned_meanwhile(pg_url, _Gated)) == [
        ("ignored", "gone", "StepSucceeded", NO_RUNNING_SAGA)
    ]


def test_the_variant_that_keeps_it_moves_a_saga_the_store_no_longer_has(pg_url: str) -> None:
    with pytest.raises(InvalidArgument, match="a commit for a saga never started"):
        asyncio.run(_pruned_meanwhile(pg_url, _KeepsTheUnstored))


# -- the outbox claim's lease -------------------------------------------------------------------


class _HeldBeforePublishing(_Gated):
    """Runs ``hold`` between a batch's commit and the publishing of its commands."""

    async def _publish(self, rows: Any, loose: Any, envelopes: Any = None) -> None:
        if self.hold is not None and rows:
            await self.hold()
        await super()._publish(rows, loose, envelopes)


async def _relayed_meanwhile(url: str, store_class: type[SharedPostgresStore]) -> int:
    """A commits a saga's first command; before A publishes it, B's relay looks for rows whose
    claim ran out: how many it takes (and would send a second time)."""
    clock = VirtualClock(1_000.0)
    one, two = store_class(url), store_class(url)
    a = _HeldBeforePublishing(one, InProcessTransport(), [ORDER], clock=clock, relay_poll=3600.0)
    b = _Gated(two, InProcessTransport(), [ORDER], clock=clock, relay_poll=3600.0)
    relayed: list[Any] = []

    async def b_relays() -> None:
        relayed.extend(await two.claim_outbox(clock.now(), 100))

    async with a, b:
        a.hold = b_relays
        await a.start(ORDER, {"amount": 1}, saga_id="sent")
    return len(relayed)


def test_a_live_workers_committed_row_is_not_relayed_by_another(pg_url: str) -> None:
    assert asyncio.run(_relayed_meanwhile(pg_url, SharedPostgresStore)) == 0


def test_without_the_lease_another_relay_takes_it_and_sends_it_twice(pg_url: str) -> None:
    assert asyncio.run(_relayed_meanwhile(pg_url, UnleasedStore)) == 1
