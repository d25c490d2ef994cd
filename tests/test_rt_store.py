"""The store protocol's semantics, run on every store (MemoryStore, SqliteStore, PostgresStore).

Each test gets a ``place``: where a store lives. ``place.store()`` is a store object on it as a
restarted process would make one (a new SqliteStore on the same file, a new PostgresStore on the
same database; the same MemoryStore object, whose data outlives close/open). The checks that
matter most are functions, run once on the real stores and once on a broken variant that they
must catch.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from sagafsm.errors import InvalidArgument, InvalidConfig
from sagafsm.runtime.errors import StoreError
from sagafsm.runtime.memory_store import MemoryStore, _MemoryTransaction
from sagafsm.runtime.postgres_store import PostgresStore
from sagafsm.runtime.sqlite_store import SqliteStore
from sagafsm.runtime.store import KEEP, Commit, InboxEntry, Keep, OutboxRow, TimerRow

AnyStore = MemoryStore | SqliteStore | PostgresStore


class Place:
    """Where one test's store lives (see the module docstring)."""

    def __init__(self, kind: str, directory: Path, url: str = "") -> None:
        self.kind = kind
        self.path = directory / "store.db"
        self.url = url
        self._memory = MemoryStore()

    def store(self, cls: type[Any] | None = None, **options: Any) -> AnyStore:
        """A store object on this place (of ``cls``, a broken subclass, if given)."""
        if self.kind == "memory":
            return (cls or MemoryStore)(**options) if cls or options else self._memory
        if self.kind == "postgres":
            return (cls or PostgresStore)(self.url, **options)  # type: ignore[no-any-return]
        return (cls or SqliteStore)(self.path, **options)  # type: ignore[no-any-return]


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def place(request: pytest.FixtureRequest, tmp_path: Path) -> Place:
    if request.param == "postgres":
        return Place("postgres", tmp_path, request.getfixturevalue("pg_url"))
    return Place(request.param, tmp_path)


def commit(
    saga_id: str,
    state: str = "running",
    snapshot: dict[str, Any] | None = None,
    *,
    started: bool = False,
    finished: bool = False,
    outbox: Sequence[dict[str, Any]] = (),
    timer: TimerRow | Keep | None = KEEP,
    records: Sequence[tuple[Any, ...]] = (),
    reason: str | None = None,
    results: dict[str, Any] | None = None,
    now: float = 1.0,
) -> Commit:
    """A commit with defaults: a running saga of definition "order" whose snapshot names it."""
    return Commit(
        saga_id=saga_id,
        definition="order",
        state=state,
        snapshot=None if finished else (snapshot or {"saga": saga_id, "state": state}),
        reason=reason,
        results=results,
        outbox=outbox,
        timer=timer,
        records=records,
        started=started,
        now=now,
    )


async def observe(store: AnyStore) -> dict[str, Any]:
    """Everything the orchestrator's side of a store reports."""
    return {
        "unsent": await store.unsent(),
        "running": await store.running(),
        "timers": await store.timers(),
        "sagas": await store.sagas(),
        "trace": await store.trace(),
        "retry_requests": await store.retry_requests(),
    }


# -- status and snapshot --------------------------------------------------------------------------


def test_a_first_commit_inserts_the_saga_status_and_snapshot(place: Place) -> None:
    """A started commit stores state, snapshot and both times; running() returns it."""

    async def body() -> None:
        async with place.store() as store:
            await store.commit([commit("a", snapshot={"x": [1, 2]}, started=True, now=5.0)])
            status = await store.status("a")
            assert status is not None
            assert (status.definition, status.state, status.snapshot) == (
                "order",
                "running",
                {"x": [1, 2]},
            )
            assert (status.started_at, status.updated_at, status.results) == (5.0, 5.0, None)
            assert [(s.saga_id, s.snapshot) for s in await store.running()] == [
                ("a", {"x": [1, 2]})
            ]
            assert await store.status("nobody") is None

    asyncio.run(body())


def test_a_later_commit_replaces_state_and_snapshot_and_keeps_started_at(place: Place) -> None:
    """A commit that is not the first one updates the row in place."""

    async def body() -> None:
        async with place.store() as store:
            await store.commit([commit("a", started=True, now=1.0)])
            await store.commit([commit("a", "compensating", {"v": 2}, reason="no stock", now=4.0)])
            status = await store.status("a")
            assert status is not None
            assert (status.state, status.snapshot, status.reason) == (
                "compensating",
                {"v": 2},
                "no stock",
            )
            assert (status.started_at, status.updated_at) == (1.0, 4.0)

    asyncio.run(body())


def test_a_finished_saga_keeps_its_status_and_loses_snapshot_and_timer(place: Place) -> None:
    """snapshot None: the status row keeps state, reason and results; snapshot and timer go."""

    async def body() -> None:
        async with place.store() as store:
            armed = TimerRow("a", "t1", 9.0)
            await store.commit([commit("a", started=True, timer=armed), commit("b", started=True)])
            await store.commit(
                [commit("a", "failed", finished=True, reason="gave up", results={"s1": {"id": 1}})]
            )
            status = await store.status("a")
            assert status is not None
            assert (status.state, status.reason, status.results, status.snapshot) == (
                "failed",
                "gave up",
                {"s1": {"id": 1}},
                None,
            )
            assert await store.timers() == []
            assert [s.saga_id for s in await store.running()] == ["b"]

    asyncio.run(body())


def test_running_and_sagas_list_sagas_in_start_order(place: Place) -> None:
    """Start order, not name order nor update order; sagas(states) filters by state."""

    async def body() -> None:
        async with place.store() as store:
            await store.commit([commit("m", started=True), commit("z", started=True)])
            await store.commit([commit("a", started=True)])
            await store.commit(
                [commit("a", "compensating"), commit("m", "succeeded", finished=True)]
            )
            await store.commit([commit("z", "running", {"later": True})])
            assert [s.saga_id for s in await store.running()] == ["z", "a"]
            assert [s.saga_id for s in await store.sagas()] == ["m", "z", "a"]
            assert [s.saga_id for s in await store.sagas({"running", "succeeded"})] == ["m", "z"]
            assert [s.saga_id for s in await store.sagas(["compensating"])] == ["a"]
            assert await store.sagas(()) == []
            with pytest.raises(InvalidArgument, match="not the string"):
                await store.sagas("running")

    asyncio.run(body())


def test_a_saga_started_again_after_pruning_runs_last_in_start_order(place: Place) -> None:
    """Pruning the newest saga does not let a later start sort before older ones."""

    async def body() -> None:
        async with place.store() as store:
            await store.commit([commit(n, started=True) for n in ("a", "b", "c")])
            await store.commit([commit("c", "succeeded", finished=True, now=1.0)])
            assert await store.prune(2.0) == 1
            await store.commit([commit("d", started=True), commit("c", started=True)])
            assert [s.saga_id for s in await store.running()] == ["a", "b", "d", "c"]

    asyncio.run(body())


# -- timers ---------------------------------------------------------------------------------------


def test_timers_are_armed_replaced_kept_and_cancelled(place: Place) -> None:
    """A TimerRow arms (replacing the armed one), KEEP leaves it, None cancels."""

    async def body() -> None:
        async with place.store() as store:
            await store.commit(
                [
                    commit("a", started=True, timer=TimerRow("a", "t1", 5.0)),
                    commit("b", started=True, timer=TimerRow("b", "t1", 3.0)),
                ]
            )
            assert await store.timers() == [TimerRow("b", "t1", 3.0), TimerRow("a", "t1", 5.0)]
            await store.commit([commit("a", timer=TimerRow("a", "t2", 1.0)), commit("b")])
            assert await store.timers() == [TimerRow("a", "t2", 1.0), TimerRow("b", "t1", 3.0)]
            await store.commit([commit("b", timer=None), commit("a", timer=KEEP)])
            assert await store.timers() == [TimerRow("a", "t2", 1.0)]

    asyncio.run(body())


def test_in_one_batch_the_last_timer_word_of_a_saga_wins(place: Place) -> None:
    """Two commits of one saga in one batch act as two commits in a row."""

    async def body() -> None:
        async with place.store() as store:
            await store.commit(
                [
                    commit("a", started=True, timer=TimerRow("a", "t1", 5.0)),
                    commit("a", timer=TimerRow("a", "t2", 6.0)),
                    commit("a", timer=KEEP),
                    commit("b", started=True, timer=TimerRow("b", "t1", 5.0)),
                    commit("b", timer=None),
                ]
            )
            assert await store.timers() == [TimerRow("a", "t2", 6.0)]

    asyncio.run(body())


def test_a_timer_of_another_saga_is_refused(place: Place) -> None:
    """A commit arms only its own saga's timer."""

    async def body() -> None:
        async with place.store() as store:
            with pytest.raises(InvalidArgument, match="timer of saga 'b'"):
                await store.commit([commit("a", started=True, timer=TimerRow("b", "t", 1.0))])

    asyncio.run(body())


# -- outbox ---------------------------------------------------------------------------------------


def test_outbox_rows_get_increasing_ids_in_commit_order(place: Place) -> None:
    """commit() returns the appended rows with their ids; unsent() lists them in id order."""

    async def body() -> None:
        async with place.store() as store:
            first = await store.commit(
                [
                    commit("a", started=True, outbox=[{"n": 1}, {"n": 2}]),
                    commit("b", started=True, outbox=[{"n": 3}]),
                ]
            )
            second = await store.commit([commit("a", outbox=[{"n": 4}])])
            assert first == [
                OutboxRow(1, "a", {"n": 1}),
                OutboxRow(2, "a", {"n": 2}),
                OutboxRow(3, "b", {"n": 3}),
            ]
            assert second == [OutboxRow(4, "a", {"n": 4})]
            assert await store.unsent() == first + second

    asyncio.run(body())


def test_mark_sent_removes_rows_and_ids_are_never_reused(place: Place) -> None:
    """Sent rows leave unsent(); unknown ids are ignored; a new row gets a new id."""

    async def body() -> None:
        async with place.store() as store:
            rows = await store.commit(
                [commit("a", started=True, outbox=[{"n": n} for n in range(5)])]
            )
            await store.mark_sent([rows[1].id, rows[3].id, rows[4].id, 99])
            assert [r.id for r in await store.unsent()] == [1, 3]
            await store.mark_sent([1, 3])
            assert await store.unsent() == []
            assert [r.id for r in await store.commit([commit("a", outbox=[{"n": 6}])])] == [6]

    asyncio.run(body())


# -- trace ----------------------------------------------------------------------------------------


def test_trace_keeps_the_order_of_every_append(place: Place) -> None:
    """Commits, mark_sent, append_trace and participant transactions append in that order."""

    async def body() -> None:
        async with place.store() as store:
            rows = await store.commit(
                [
                    commit(
                        "a", started=True, outbox=[{"n": 1}], records=[(1.0, "start", "a", "o")]
                    ),
                    commit("b", started=True, records=[(1.0, "start", "b", "order"), (1.0, "x")]),
                ]
            )
            await store.mark_sent([], [])
            await store.mark_sent([rows[0].id], [(2.0, "sent", "a")])
            await store.append_trace([(3.0, "deliver", "a", 7, "inventory")])
            async with store.transaction("inventory") as tx:
                await tx.append_trace([(4.0, "effect", "a", "inventory", "s1", "reserve")])
                await tx.append_trace([(4.5, "send", "a")])
            await store.commit([commit("a", records=[(5.0, "transition", "a")])])
            assert await store.trace() == [
                (1.0, "start", "a", "o"),
                (1.0, "start", "b", "order"),
                (1.0, "x"),
                (2.0, "sent", "a"),
                (3.0, "deliver", "a", 7, "inventory"),
                (4.0, "effect", "a", "inventory", "s1", "reserve"),
                (4.5, "send", "a"),
                (5.0, "transition", "a"),
            ]

    asyncio.run(body())


def test_trace_records_come_back_as_tuples_with_null_as_none(place: Place) -> None:
    """A record is stored as a JSON list and read back as a tuple."""

    async def body() -> None:
        async with place.store() as store:
            record = (1.5, "send", "a", 4294967297, "o", "inv", "execute", "s1", "op", 1, None)
            await store.append_trace([record])
            (back,) = await store.trace()
            assert back == record
            assert type(back) is tuple and back[-1] is None

    asyncio.run(body())


def test_a_record_that_is_not_json_is_refused(place: Place) -> None:
    """append_trace refuses a record JSON cannot hold, naming it, and appends nothing."""

    async def body() -> None:
        async with place.store() as store:
            with pytest.raises(InvalidArgument, match="not JSON"):
                await store.append_trace([(1.0, "ok"), (2.0, "bad", object())])
            assert await store.trace() == []

    asyncio.run(body())


# -- prune and boot -------------------------------------------------------------------------------


def test_prune_drops_only_sagas_finished_before_the_time(place: Place) -> None:
    """Running sagas are never pruned; finished ones go once their last update is older."""

    async def body() -> None:
        async with place.store() as store:
            await store.commit([commit(n, started=True, now=1.0) for n in ("a", "b", "c")])
            await store.commit([commit("a", "succeeded", finished=True, now=10.0)])
            await store.commit([commit("b", "failed", finished=True, now=20.0)])
            assert await store.prune(10.0) == 0
            assert await store.prune(15.0) == 1
            assert [s.saga_id for s in await store.sagas()] == ["b", "c"]
            assert await store.prune(1000.0) == 1
            assert [s.saga_id for s in await store.sagas()] == ["c"]

    asyncio.run(body())


def test_prune_keeps_a_saga_waiting_for_an_operator_until_it_is_resolved(place: Place) -> None:
    async def body() -> None:
        async with place.store() as store:
            await store.commit([commit("x", started=True, now=1.0)])
            await store.commit([commit("x", "operator_required", finished=True, now=2.0)])
            assert await store.prune(1000.0) == 0
            assert await store.resolve("x", "refunded by hand")
            assert await store.prune(1000.0) == 1

    asyncio.run(body())


def test_boot_increments_and_persists_across_reopen(place: Place) -> None:
    """Each boot() returns one more than the last, even from a new store object."""

    async def body() -> None:
        async with place.store() as store:
            assert [await store.boot(), await store.boot()] == [1, 2]
        async with place.store() as store:
            assert await store.boot() == 3

    asyncio.run(body())


def test_everything_persists_across_close_and_reopen(place: Place) -> None:
    """A reopened store reports what the closed one held, inbox included."""

    async def body() -> None:
        async with place.store() as store:
            await store.commit(
                [
                    commit("a", started=True, outbox=[{"n": 1}], timer=TimerRow("a", "t", 2.0)),
                    commit("b", started=True, records=[(1.0, "start", "b", "order")]),
                ]
            )
            await store.commit([commit("b", "succeeded", finished=True, results={"r": 1})])
            async with store.transaction("inv") as tx:
                await tx.inbox_put("k", InboxEntry("action", "succeeded", {"id": 1}))
            before = await observe(store)
        async with place.store() as store:
            assert await observe(store) == before
            async with store.transaction("inv") as tx:
                assert await tx.inbox_get("k") == InboxEntry("action", "succeeded", {"id": 1})

    asyncio.run(body())


def test_a_store_that_is_not_open_refuses_to_work(place: Place) -> None:
    """Before open() and after close(), methods raise StoreError."""

    async def body() -> None:
        store = place.store()
        with pytest.raises(StoreError, match="not open"):
            await store.unsent()
        async with store:
            pass
        with pytest.raises(StoreError, match="not open"):
            await store.commit([commit("a", started=True)])
        with pytest.raises(StoreError, match="not open"):
            store.transaction("inv")

    asyncio.run(body())


# -- a batch is one transaction -------------------------------------------------------------------


async def check_a_refused_batch_changes_nothing(store: AnyStore, bad: Commit) -> None:
    """A batch whose second commit is refused leaves the store as it was, ids included."""
    await store.commit([commit("a", started=True, outbox=[{"n": 0}], records=[(0.0, "start")])])
    before = await observe(store)
    good = commit(
        "b",
        started=True,
        outbox=[{"n": 1}],
        timer=TimerRow("b", "t", 1.0),
        records=[(1.0, "start", "b")],
    )
    with pytest.raises(InvalidArgument):
        await store.commit([good, bad])
    assert await observe(store) == before
    assert await store.status("b") is None
    rows = await store.commit([commit("c", started=True, outbox=[{"n": 2}])])
    assert [r.id for r in rows] == [2]


REFUSED = {
    "started twice": commit("a", started=True),
    "never started": commit("x"),
    "not JSON": commit("a", snapshot={"data": object()}),
    "record not JSON": commit("a", records=[(1.0, {1, 2})]),
}


@pytest.mark.parametrize("bad", REFUSED.values(), ids=list(REFUSED))
def test_a_batch_is_atomic(place: Place, bad: Commit) -> None:
    """A refused commit (some fail inside the SQL transaction) takes its whole batch with it."""

    async def body() -> None:
        async with place.store() as store:
            await check_a_refused_batch_changes_nothing(store, bad)

    asyncio.run(body())


def saga_by_saga(cls: type[AnyStore]) -> type[AnyStore]:
    """A broken store: each commit of a batch is a transaction of its own."""

    class SagaBySaga(cls):  # type: ignore[valid-type,misc]
        async def commit(self, commits: Sequence[Commit], consumed: Sequence[int] = ()) -> Any:
            rows = []
            for one in commits:
                rows += await super().commit([one], consumed)
            return rows

    return SagaBySaga


@pytest.mark.parametrize(
    "bad", [REFUSED["started twice"], REFUSED["not JSON"]], ids=["twice", "json"]
)
def test_the_atomicity_check_catches_a_store_that_commits_saga_by_saga(
    place: Place, bad: Commit
) -> None:
    """The check above fails on a store whose batch is not one transaction."""

    async def body() -> None:
        cls = {"memory": MemoryStore, "sqlite": SqliteStore, "postgres": PostgresStore}[place.kind]
        async with place.store(saga_by_saga(cls)) as store:
            with pytest.raises(AssertionError):
                await check_a_refused_batch_changes_nothing(store, bad)

    asyncio.run(body())


# -- participant transactions ---------------------------------------------------------------------


def test_a_participant_transaction_commits_its_inbox_and_ledger(place: Place) -> None:
    """On a clean exit inbox writes and ledger records are kept; reads see staged writes."""

    async def body() -> None:
        async with place.store() as store:
            async with store.transaction("inv") as tx:
                assert await tx.inbox_get("k1") is None
                await tx.inbox_put("k1", InboxEntry("action", "succeeded", {"id": 7}))
                await tx.inbox_put("k2", InboxEntry("tombstone"))
                assert await tx.inbox_get("k1") == InboxEntry("action", "succeeded", {"id": 7})
                await tx.append_trace([(1.0, "effect", "a", "inv", "s1", "reserve")])
            async with store.transaction("inv") as tx:
                assert await tx.inbox_get("k1") == InboxEntry("action", "succeeded", {"id": 7})
                assert await tx.inbox_get("k2") == InboxEntry("tombstone", None, None, "")
                await tx.inbox_put("k2", InboxEntry("compensation", "succeeded"))
            async with store.transaction("inv") as tx:
                assert await tx.inbox_get("k2") == InboxEntry("compensation", "succeeded")
            async with store.transaction("payments") as tx:
                assert await tx.inbox_get("k1") is None  # each participant has its own inbox
            assert await store.trace() == [(1.0, "effect", "a", "inv", "s1", "reserve")]

    asyncio.run(body())


def test_a_participant_transaction_rolls_back_on_an_exception(place: Place) -> None:
    """An exception in the block keeps neither its inbox writes nor its ledger records."""

    async def body() -> None:
        async with place.store() as store:
            with pytest.raises(RuntimeError, match="handler broke"):
                async with store.transaction("inv") as tx:
                    assert await tx.inbox_get("k") is None
                    await tx.inbox_put("k", InboxEntry("action", "succeeded", {"id": 1}))
                    await tx.append_trace([(1.0, "effect", "a", "inv", "s1", "reserve")])
                    raise RuntimeError("handler broke")
            async with store.transaction("inv") as tx:
                assert await tx.inbox_get("k") is None
            assert await store.trace() == []

    asyncio.run(body())


def test_an_inbox_entry_of_an_unknown_kind_is_refused(place: Place) -> None:
    """Kinds are action, tombstone and compensation; results must be JSON."""

    async def body() -> None:
        async with place.store() as store, store.transaction("inv") as tx:
            with pytest.raises(InvalidArgument, match="kind 'done'"):
                await tx.inbox_put("k", InboxEntry("done"))
            with pytest.raises(InvalidArgument, match="not JSON"):
                await tx.inbox_put("k", InboxEntry("action", "succeeded", {"x": object()}))

    asyncio.run(body())


async def runs_of_two_racing_handlers(store: AnyStore) -> int:
    """Two handlers of one message race: each reads the inbox and runs the effect if the key is
    missing. Returns how many ran it."""
    ran = []

    async def handle() -> None:
        async with store.transaction("inv") as tx:
            entry = await tx.inbox_get("key")
            await asyncio.sleep(0.01)  # the other handler gets every chance to read too
            if entry is None:
                ran.append(1)
                await tx.inbox_put("key", InboxEntry("action", "succeeded", {}))

    await asyncio.gather(handle(), handle())
    return len(ran)


def test_racing_participant_transactions_run_one_effect(place: Place) -> None:
    """One participant's transactions are serialised: the second sees the first's inbox row."""

    async def body() -> None:
        async with place.store() as store:
            assert await runs_of_two_racing_handlers(store) == 1

    asyncio.run(body())


def test_the_race_check_catches_unserialised_transactions() -> None:
    """The check above fails on a store whose transactions do not take the lock."""

    class Unlocked(_MemoryTransaction):
        async def _begin(self) -> None:
            pass

    class Broken(MemoryStore):
        def transaction(self, participant: str) -> Unlocked:
            return Unlocked(self, participant)

    async def body() -> None:
        async with Broken() as store:
            assert await runs_of_two_racing_handlers(store) == 2

    asyncio.run(body())


def test_orchestrator_commits_go_on_while_a_participant_transaction_is_open(place: Place) -> None:
    """A commit waits for an open participant transaction and then lands (no deadlock)."""

    async def body() -> None:
        async with place.store() as store:
            async with store.transaction("inv") as tx:
                await tx.inbox_get("k")
                pending = asyncio.ensure_future(store.commit([commit("a", started=True)]))
                await asyncio.sleep(0.01)
                await tx.inbox_put("k", InboxEntry("action", "succeeded"))
            await asyncio.wait_for(pending, 5)
            assert [s.saga_id for s in await store.running()] == ["a"]

    asyncio.run(body())


def test_memory_execute_says_it_needs_a_sql_store() -> None:
    """A memory store has no tables for participants: execute() raises InvalidConfig."""

    async def body() -> None:
        async with MemoryStore() as store, store.transaction("inv") as tx:
            with pytest.raises(InvalidConfig, match=r"needs a SQL store \(sqlite:///PATH\)"):
                await tx.execute("SELECT 1")

    asyncio.run(body())


def test_retention_is_kept_for_the_runtime_and_checked(place: Place) -> None:
    """Stores carry their retention (seconds); a negative or infinite one is refused."""
    assert place.store().retention == 7 * 86400
    assert place.store(retention=60).retention == 60.0
    for bad in (-1, float("inf"), float("nan"), "1"):
        with pytest.raises(InvalidArgument):
            place.store(retention=bad)
