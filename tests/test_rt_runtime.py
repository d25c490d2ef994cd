"""The asyncio runtime: sagas run to their end on real stores, recover from the store, and the
same checkers judge their trace."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
from rt_support import ORDER, Shop, host_for, run_until_finished

from sagafsm import InvalidConfig, SagaBuilder
from sagafsm._harness import RecordingTransport
from sagafsm.checks import check_history
from sagafsm.errors import InvalidArgument
from sagafsm.runtime import crashpoints
from sagafsm.runtime.clock import VirtualClock, WallClock
from sagafsm.runtime.memory_store import MemoryStore
from sagafsm.runtime.runtime import Runtime
from sagafsm.runtime.sqlite_store import SqliteStore
from sagafsm.runtime.transport import InProcessTransport


async def _run_orders(store: Any, amounts: list[int], shop: Shop | None = None) -> dict[str, Any]:
    shop = shop or Shop()
    transport, clock = InProcessTransport(), VirtualClock(1_000.0)
    async with Runtime(store, transport, [ORDER], clock=clock) as runtime:
        host = host_for(shop, transport, store, clock)
        hosting = asyncio.create_task(host.run())
        ids = [await runtime.start(ORDER, {"amount": amount}) for amount in amounts]
        statuses = await run_until_finished(runtime, transport, clock, ids)
        await host.close()
        await hosting
        trace = await store.trace()
    return {"ids": ids, "statuses": statuses, "trace": trace, "shop": shop}


def test_sagas_complete_or_compensate_and_the_checkers_find_their_trace_clean() -> None:
    run = asyncio.run(_run_orders(MemoryStore(), [10, 500, 20]))
    states = [run["statuses"][saga_id].state for saga_id in run["ids"]]
    assert states == ["completed", "failed", "completed"]
    failed = run["statuses"][run["ids"][1]]
    assert failed.reason == "step 'charge' failed: insufficient funds"
    done = run["statuses"][run["ids"][0]]
    assert done.results["reserve"] == {"reservation": f"r-{run['ids'][0]}"}
    effects = run["shop"].effects
    assert effects[run["ids"][1], "release"] == 1 and effects[run["ids"][1], "refund"] == 0
    assert check_history(run["trace"], ORDER) == []
    kinds = {record[1] for record in run["trace"]}
    assert {"start", "transition", "send", "effect", "timer", "finish", "restart"} <= kinds


def test_a_real_sqlite_store_runs_the_same_sagas(tmp_path: Path) -> None:
    async def main() -> dict[str, Any]:
        store = SqliteStore(tmp_path / "orders.db")
        shop, transport, clock = Shop(), InProcessTransport(), WallClock()
        async with Runtime(store, transport, [ORDER], clock=clock) as runtime:
            host = host_for(shop, transport, store, clock)  # type: ignore[arg-type]
            hosting = asyncio.create_task(host.run())
            ids = await asyncio.gather(
                *(runtime.start(ORDER, {"amount": 60 * (i % 3)}) for i in range(60))
            )
            statuses = await asyncio.gather(*(runtime.wait(saga_id) for saga_id in ids))
            await host.close()
            await hosting
            trace = await store.trace()
        return {"statuses": statuses, "trace": trace, "commits": runtime.commits}

    run = asyncio.run(main())
    assert [s.state for s in run["statuses"]] == ["completed", "completed", "failed"] * 20
    assert check_history(run["trace"], ORDER) == []
    assert run["commits"] < 5 * 60  # batched: fewer commits than moves


def test_a_handler_error_gets_no_reply_and_the_timeout_retries_in_virtual_time() -> None:
    """The mail handler fails unexpectedly on its first call: nobody answers, the 300 s timeout
    fires at once in virtual time, the retry goes out under the same key, the saga completes."""

    async def main() -> tuple[Any, list[Any], float]:
        store, shop = MemoryStore(), Shop()
        shop.crash_once.add("send")
        transport, clock = InProcessTransport(), VirtualClock(0.0)
        async with Runtime(store, transport, [ORDER], clock=clock) as runtime:
            host = host_for(shop, transport, store, clock)
            hosting = asyncio.create_task(host.run())
            saga_id = await runtime.start(ORDER, {"amount": 1})
            statuses = await run_until_finished(runtime, transport, clock, [saga_id])
            hosting.cancel()
            trace = await store.trace()
        return statuses[saga_id], trace, clock.now()

    status, trace, now = asyncio.run(main())
    assert status.state == "completed"
    sends = [r for r in trace if r[1] == "send" and r[7] == "notify" and r[4] == "orchestrator"]
    assert len(sends) == 2 and now >= 300.0
    assert check_history(trace, ORDER) == []


def test_recovery_re_publishes_unsent_rows_and_re_arms_timers() -> None:
    """Crash after the commit, before publishing: a new runtime on the same store sends the
    command that was committed, and the saga finishes, with one effect per step."""

    async def main() -> dict[str, Any]:
        store, shop = MemoryStore(), Shop()
        transport, clock = InProcessTransport(), VirtualClock(0.0)
        first = Runtime(store, transport, [ORDER], clock=clock)
        await first.open()
        crashpoints.arm("orchestrator.after_commit", 1, action="raise")
        try:
            saga_id = await first.start(ORDER, {"amount": 1})
        except Exception:
            saga_id = None
        finally:
            crashpoints.disarm()
        assert saga_id is None  # the start was committed, but nobody heard back
        (status,) = await store.sagas()
        assert len(await store.unsent()) == 1 and len(await store.timers()) == 1
        await first.abandon()
        second = Runtime(store, transport, [ORDER], clock=clock)
        async with second:
            assert second.recovered == 1
            host = host_for(shop, transport, store, clock)
            hosting = asyncio.create_task(host.run())
            statuses = await run_until_finished(second, transport, clock, [status.saga_id])
            hosting.cancel()
            trace = await store.trace()
        return {"status": statuses[status.saga_id], "shop": shop, "trace": trace}

    run = asyncio.run(main())
    assert run["status"].state == "completed"
    assert set(run["shop"].effects.values()) == {1}
    assert check_history(run["trace"], ORDER) == []


def test_a_stored_saga_of_an_unregistered_definition_is_refused_at_open_and_nothing_changes(
    tmp_path: Path,
) -> None:
    async def main() -> None:
        path = tmp_path / "s.db"
        transport = InProcessTransport()
        async with Runtime(SqliteStore(path), transport, [ORDER]) as runtime:
            await runtime.start(ORDER, {"amount": 1})
        before = path.read_bytes()
        other = SagaBuilder("other").pivot("x", participant="p", action="a").build()
        with pytest.raises(InvalidConfig, match="no saga definition named 'order'"):
            await Runtime(SqliteStore(path), transport, [other]).open()
        assert path.read_bytes() == before

    asyncio.run(main())


def test_start_refuses_an_unregistered_definition_and_a_closed_runtime() -> None:
    async def main() -> None:
        runtime = Runtime(MemoryStore(), InProcessTransport(), [ORDER])
        with pytest.raises(InvalidArgument, match="not open"):
            await runtime.start(ORDER)
        async with runtime:
            other = SagaBuilder("other").pivot("x", participant="p", action="a").build()
            with pytest.raises(InvalidConfig, match="not registered"):
                await runtime.start(other)
            with pytest.raises(InvalidConfig, match="no saga definition named 'nope'"):
                await runtime.start("nope")
            first = await runtime.start(ORDER, saga_id="same")
            assert first == "same"
            with pytest.raises(InvalidArgument, match="already running"):
                await runtime.start(ORDER, saga_id="same")

    asyncio.run(main())


def test_close_finishes_what_was_queued_before_it() -> None:
    """Start requests queued before close() are committed and their commands sent."""

    async def main() -> tuple[list[str], int, int]:
        store, transport = MemoryStore(), InProcessTransport()
        runtime = Runtime(store, transport, [ORDER])
        await runtime.open()
        starts = [asyncio.ensure_future(runtime.start(ORDER)) for _ in range(10)]
        await asyncio.sleep(0)  # queued, not yet committed
        await runtime.close()
        ids = await asyncio.gather(*starts)
        await store.open()
        return ids, len(await store.sagas()), transport.queued("inventory")

    ids, stored, sent = asyncio.run(main())
    assert len(set(ids)) == 10 and (stored, sent) == (10, 10)


def test_opening_prunes_finished_sagas_older_than_the_stores_retention() -> None:
    async def main() -> tuple[int, int]:
        store, clock = MemoryStore(retention=60.0), VirtualClock(0.0)
        run = await _run_orders(store, [1, 2])
        assert len(run["statuses"]) == 2
        clock.advance(61.0 + max(s.updated_at for s in run["statuses"].values()))
        async with Runtime(store, InProcessTransport(), [ORDER], clock=clock) as runtime:
            left = len(await store.sagas())
        return runtime.pruned, left

    assert asyncio.run(main()) == (2, 0)


def test_a_runtime_that_stays_open_prunes_as_its_clock_passes_the_retention() -> None:
    """Not only at open: once a tenth of the retention has passed, the next batch prunes the
    sagas finished more than the retention ago, and keeps the recent ones."""

    async def main() -> tuple[int, list[str]]:
        store, shop = MemoryStore(retention=60.0), Shop()
        transport, clock = InProcessTransport(), VirtualClock(0.0)
        async with Runtime(store, transport, [ORDER], clock=clock) as runtime:
            host = host_for(shop, transport, store, clock)
            hosting = asyncio.create_task(host.run())
            old = await runtime.start(ORDER, {"amount": 1})
            await runtime.wait(old)
            clock.advance(30.0)
            recent = await runtime.start(ORDER, {"amount": 2})
            await runtime.wait(recent)
            assert runtime.pruned == 0  # 30 s: the old one is within the retention
            clock.advance(35.0)
            await runtime.wait(await runtime.start(ORDER, {"amount": 3}))
            kept = [status.saga_id for status in await store.sagas()]
            await host.close()
            await hosting
        return runtime.pruned, [old, recent, *kept]

    pruned, (old, recent, *kept) = asyncio.run(main())
    assert pruned == 1 and old not in kept and recent in kept and len(kept) == 2


def test_wait_returns_the_status_as_stored_with_its_start_time() -> None:
    """A waiter made before the saga finished gets the stored status, started_at included."""

    async def main() -> tuple[Any, Any]:
        store, shop = MemoryStore(), Shop()
        transport, clock = InProcessTransport(), VirtualClock(100.0)
        async with Runtime(store, transport, [ORDER], clock=clock) as runtime:
            saga_id = await runtime.start(ORDER, {"amount": 1})
            waiting = asyncio.ensure_future(runtime.wait(saga_id))
            clock.advance(5.0)
            host = host_for(shop, transport, store, clock)
            hosting = asyncio.create_task(host.run())
            status = await waiting
            await host.close()
            await hosting
            return status, await store.status(saga_id)

    waited, stored = asyncio.run(main())
    assert waited == stored and waited.started_at == 100.0 and waited.updated_at == 105.0


@pytest.mark.parametrize("store_kind", ["memory", "sqlite"])
def test_wait_answers_from_memory_exactly_what_the_store_holds(
    tmp_path: Path, store_kind: str
) -> None:
    """wait() builds a finished saga's status from its last commit instead of reading it back:
    for every outcome, and for a saga recovered after a restart (whose start time only the store
    knows), it equals the stored status field for field."""

    async def main() -> list[tuple[Any, Any]]:
        store = MemoryStore() if store_kind == "memory" else SqliteStore(tmp_path / "o.db")
        # It counts deliveries not acked yet: quiet means no transaction in flight anywhere.
        shop, transport, clock = Shop(), RecordingTransport(), VirtualClock(100.0)
        first = Runtime(store, transport, [ORDER], clock=clock)
        await first.open()
        recovered = await first.start(ORDER, {"amount": 2})
        await first.abandon()  # the next runtime takes it over from the store
        clock.advance(1.0)
        async with Runtime(store, transport, [ORDER], clock=clock) as runtime:
            ids = [recovered, *[await runtime.start(ORDER, {"amount": a}) for a in (1, 500, 3)]]
            waiting = [asyncio.ensure_future(runtime.wait(saga_id)) for saga_id in ids]
            clock.advance(5.0)  # every saga finishes later than it started
            shop.crash_once.add("send")  # one saga retries its notification after a timeout
            host = host_for(shop, transport, store, clock)
            hosting = asyncio.create_task(host.run())
            deadline = time.monotonic() + 60.0
            while not all(waiter.done() for waiter in waiting):
                quiet = 0
                while quiet < 20 and time.monotonic() < deadline:
                    await asyncio.sleep(0)
                    busy = not runtime.idle or transport.in_flight
                    quiet = 0 if busy else quiet + 1
                assert time.monotonic() < deadline, "the sagas did not finish"
                if clock.advance_to_next() is None:  # a waiter may still read its status back
                    await asyncio.sleep(0.001)
            pairs = [(w.result(), await store.status(s)) for s, w in zip(ids, waiting, strict=True)]
            await host.close()
            await hosting
        return pairs

    pairs = asyncio.run(main())
    states = [waited.state for waited, _ in pairs]
    assert states == ["completed", "completed", "failed", "completed"]
    assert pairs[2][0].reason == "step 'charge' failed: insufficient funds"
    for waited, stored in pairs:
        assert waited == stored


class _CountingCalls(InProcessTransport):
    """An in-process transport that notes the size of every send and of every receive."""

    def __init__(self) -> None:
        super().__init__()
        self.sends: list[int] = []
        self.received: list[int] = []

    async def send(self, message: Any) -> None:
        self.sends.append(1)
        await super().send(message)

    async def send_many(self, messages: Any) -> None:
        self.sends.append(len(messages))
        await super().send_many(messages)

    async def receive_many(self, node: str, limit: int) -> Any:
        deliveries = await super().receive_many(node, limit)
        if node == "orchestrator":
            self.received.append(len(deliveries))
        return deliveries


def test_a_batch_goes_out_in_one_transport_call_and_its_replies_come_back_in_one() -> None:
    """Five sagas started together are one batch: their first commands reach the transport in
    one send_many (one transaction on a transport with a database), and the five replies the
    host sends together are taken off the transport in one receive."""

    async def main() -> _CountingCalls:
        store, transport, clock = MemoryStore(), _CountingCalls(), VirtualClock(1_000.0)
        async with Runtime(store, transport, [ORDER], clock=clock) as runtime:
            host = host_for(Shop(), transport, store, clock)
            hosting = asyncio.create_task(host.run())
            starts = [runtime.start(ORDER, {"amount": 10}) for _ in range(5)]
            ids = await asyncio.gather(*starts)
            await run_until_finished(runtime, transport, clock, list(ids))
            await host.close()
            await hosting
        return transport

    transport = asyncio.run(main())
    assert transport.sends[0] == 5
    assert transport.received[0] == 5
