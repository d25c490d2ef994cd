"""Every store implements one semantics: a random sequence of operations (commits, sends, trace
appends, participant transactions that commit or fail, prunes, resolves, retry requests, boots,
restarts) gives the same answers and the same observable state on MemoryStore, SqliteStore and
PostgresStore, after every operation.

The comparison is checked against a broken memory store too, so that it can fail.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import attrs
import psycopg
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pg_support import PostgresServerForTests
from test_rt_store import AnyStore, observe

from sagafsm.errors import InvalidArgument
from sagafsm.runtime.memory_store import MemoryStore
from sagafsm.runtime.postgres_store import PostgresStore
from sagafsm.runtime.sqlite_store import SqliteStore
from sagafsm.runtime.store import KEEP, Commit, InboxEntry, TimerRow

SAGAS = ("s0", "s1", "s2")
PARTICIPANTS = ("inv", "pay")
KEYS = ("k1", "k2")
NOT_JSON = frozenset({"not", "json"})

times = st.floats(min_value=0, max_value=100, allow_nan=False, allow_infinity=False)
scalars = st.none() | st.booleans() | st.integers(-(2**40), 2**40) | times | st.text(max_size=3)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=2) | st.dictionaries(st.text(max_size=2), inner, max_size=2)
    ),
    max_leaves=4,
)
json_data = st.dictionaries(st.sampled_from("abc"), json_values, max_size=2)
# Now and then (1 in 16) data JSON cannot hold: the store must refuse the whole batch.
data = st.integers(0, 15).flatmap(lambda n: st.just({"x": NOT_JSON}) if n == 0 else json_data)
records = st.lists(
    st.tuples(times, st.sampled_from(["start", "send", "effect"]), st.sampled_from(SAGAS), scalars),
    max_size=2,
)


@st.composite
def commits(draw: st.DrawFn) -> tuple[Commit, str]:
    """A commit, and how its ``started`` is decided when played: "auto" (the saga's first
    commit if the store does not hold it), or "as drawn" (often wrong: a refused batch)."""
    saga_id = draw(st.sampled_from(SAGAS))
    finished = draw(st.integers(0, 3)) == 0
    timer = draw(
        st.sampled_from([KEEP, None])
        | st.builds(TimerRow, st.just(saga_id), st.sampled_from(["t1", "t2"]), times)
    )
    return Commit(
        saga_id=saga_id,
        definition="order",
        state=draw(st.sampled_from(["running", "compensating", "succeeded", "operator_required"])),
        snapshot=None if finished else draw(data),
        reason=draw(st.none() | st.just("gave up")),
        results=draw(st.none() | data) if finished else None,
        outbox=draw(st.lists(data, max_size=2)),
        timer=timer,
        records=draw(records),
        started=draw(st.booleans()),
        now=draw(times),
        parked=draw(st.none() | data) if finished else None,
        retried=draw(st.booleans()),
    ), draw(st.sampled_from(["auto", "auto", "auto", "as drawn"]))


entries = st.builds(
    InboxEntry,
    st.sampled_from(["action", "tombstone", "compensation"]),
    st.none() | st.sampled_from(["succeeded", "failed"]),
    st.none() | data,
    st.text(max_size=3),
)

operations = st.one_of(
    st.tuples(
        st.just("commit"), st.lists(commits(), min_size=1, max_size=3), st.lists(st.integers(1, 3))
    ),
    st.tuples(st.just("mark_sent"), st.lists(st.integers(1, 12), max_size=4), records),
    st.tuples(st.just("append_trace"), records),
    st.tuples(
        st.just("participant"),
        st.sampled_from(PARTICIPANTS),
        st.sampled_from(KEYS),
        st.none() | entries,
        records,
        st.booleans(),
    ),
    st.tuples(st.just("prune"), times),
    st.tuples(st.just("resolve"), st.sampled_from(SAGAS), st.sampled_from(["fixed", "x"]), records),
    st.tuples(
        st.just("request_retry"), st.sampled_from(SAGAS), st.sampled_from(["back", ""]), times
    ),
    st.tuples(st.just("boot")),
    st.tuples(st.just("reopen")),
    st.tuples(st.just("sagas"), st.frozensets(st.sampled_from(["running", "succeeded"]))),
)


class HandlerBroke(Exception):
    pass


async def apply(store: AnyStore, operation: tuple[Any, ...]) -> Any:
    kind, *args = operation
    if kind == "commit":
        batch, consumed = args
        held = {status.saga_id for status in await store.sagas()}
        played = []
        for commit, mode in batch:
            if mode == "auto":
                commit = attrs.evolve(commit, started=commit.saga_id not in held)
            held.add(commit.saga_id)
            played.append(commit)
        return await store.commit(played, consumed)
    if kind == "mark_sent":
        return await store.mark_sent(*args)
    if kind == "append_trace":
        return await store.append_trace(*args)
    if kind == "prune":
        return await store.prune(*args)
    if kind == "boot":
        return await store.boot()
    if kind == "sagas":
        return await store.sagas(*args)
    if kind == "resolve":
        return await store.resolve(*args)
    if kind == "request_retry":
        return await store.request_retry(*args)
    assert kind == "participant"
    participant, key, entry, ledger, fails = args
    seen: list[Any] = []
    try:
        async with store.transaction(participant) as tx:
            seen.append(await tx.inbox_get(key))
            if entry is not None:
                await tx.inbox_put(key, entry)
                seen.append(await tx.inbox_get(key))
            await tx.append_trace(ledger)
            if fails:
                raise HandlerBroke
    except HandlerBroke:
        seen.append("rolled back")
    return seen


async def inboxes(store: AnyStore) -> list[InboxEntry | None]:
    found = []
    for participant in PARTICIPANTS:
        async with store.transaction(participant) as tx:
            found += [await tx.inbox_get(key) for key in KEYS]
    return found


async def play(reopen: Callable[[], AnyStore], ops: Sequence[tuple[Any, ...]]) -> list[Any]:
    """Every operation's answer (or the error it was refused with), each followed by the whole
    observable state."""
    log: list[Any] = []
    store = reopen()
    await store.open()
    try:
        for operation in ops:
            if operation[0] == "reopen":
                await store.close()
                store = reopen()
                await store.open()
                continue
            try:
                log.append(await apply(store, operation))
            except InvalidArgument as error:
                log.append(("refused", type(error).__name__))
            log.append(await observe(store))
            log.append([await store.status(saga_id) for saga_id in SAGAS])
        log.append(await inboxes(store))
    finally:
        await store.close()
    return log


def on_memory(ops: Sequence[tuple[Any, ...]], cls: type[MemoryStore] = MemoryStore) -> list[Any]:
    memory = cls()
    return asyncio.run(play(lambda: memory, ops))


def on_sqlite(ops: Sequence[tuple[Any, ...]]) -> list[Any]:
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "store.db"
        return asyncio.run(play(lambda: SqliteStore(path), ops))


def on_postgres(url: str, ops: Sequence[tuple[Any, ...]]) -> list[Any]:
    """On the database at ``url``, emptied first (a new database per example costs more)."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DROP SCHEMA public CASCADE")
        conn.execute("CREATE SCHEMA public")
    return asyncio.run(play(lambda: PostgresStore(url), ops))


@pytest.mark.slow
@settings(max_examples=50, deadline=None)
@given(st.lists(operations, max_size=10))
def test_memory_and_sqlite_stores_agree_on_every_sequence(ops: list[tuple[Any, ...]]) -> None:
    """Same answers, same refusals, same state after each operation, on both stores."""
    assert on_memory(ops) == on_sqlite(ops)


def test_memory_and_postgres_stores_agree_on_every_sequence(
    pg_server: PostgresServerForTests,
) -> None:
    """The same comparison on PostgreSQL, on one database of the test's own."""
    url = pg_server.new_database()

    @settings(max_examples=50, deadline=None)
    @given(st.lists(operations, max_size=10))
    def agree(ops: list[tuple[Any, ...]]) -> None:
        assert on_memory(ops) == on_postgres(url, ops)

    try:
        agree()
    finally:
        pg_server.drop_database(url)


class KeepsTimersOfFinishedSagas(MemoryStore):
    """Broken: a finished saga's timer stays armed."""

    async def commit(self, commits: Sequence[Commit], consumed: Sequence[int] = ()) -> Any:
        armed = dict(self._timers)
        rows = await super().commit(commits, consumed)
        for one in commits:
            if one.snapshot is None and one.saga_id in armed:
                self._timers[one.saga_id] = armed[one.saga_id]
        return rows


def test_the_comparison_catches_a_store_that_keeps_a_finished_sagas_timer() -> None:
    """The same comparison, on a store that breaks one rule, finds a difference."""
    ops: list[tuple[Any, ...]] = [
        ("commit", [(Commit(saga_id="s0", definition="d", state="running", snapshot={},
                            timer=TimerRow("s0", "t1", 5.0)), "auto")], []),
        ("commit", [(Commit(saga_id="s0", definition="d", state="failed", snapshot=None),
                     "auto")], []),
    ]  # fmt: skip
    assert on_memory(ops) == on_sqlite(ops)
    assert on_memory(ops, KeepsTimersOfFinishedSagas) != on_sqlite(ops)


class KeepsAppliedRetryRequests(MemoryStore):
    """Broken: the commit that applies a retry request leaves the request behind."""

    async def commit(self, commits: Sequence[Commit], consumed: Sequence[int] = ()) -> Any:
        waiting = dict(self._requests)
        rows = await super().commit(commits, consumed)
        self._requests.update(waiting)
        return rows


def test_the_comparison_catches_a_store_that_keeps_an_applied_retry_request() -> None:
    """Parked, retried, parked again: a request left behind would retry it with nobody asking."""

    def move(state: str, **fields: Any) -> tuple[Any, ...]:
        return (
            "commit",
            [(Commit(saga_id="s0", definition="d", state=state, **fields), "auto")],
            [],
        )

    ops: list[tuple[Any, ...]] = [
        move("running", snapshot={}),
        move("operator_required", snapshot=None, parked={"at": 1}),
        ("request_retry", "s0", "back", 2.0),
        move("compensating", snapshot={}, retried=True),
        move("operator_required", snapshot=None, parked={"at": 2}),
    ]
    assert on_memory(ops) == on_sqlite(ops)
    assert on_memory(ops, KeepsAppliedRetryRequests) != on_sqlite(ops)


def test_the_postgres_comparison_catches_a_broken_postgres_store(pg_url: str) -> None:
    """On PostgreSQL too the comparison bites: a store whose prune also drops running sagas."""

    class PrunesRunningSagas(PostgresStore):
        async def prune(self, finished_before: float) -> int:
            async with self._transaction() as conn:
                await conn.execute("DELETE FROM sagafsm_sagas WHERE updated_at < %s",
                                   (finished_before,))  # fmt: skip
            return 0

    ops: list[tuple[Any, ...]] = [
        ("commit", [(Commit(saga_id="s0", definition="d", state="running", snapshot={},
                            now=1.0), "auto")], []),
        ("prune", 5.0),
    ]  # fmt: skip
    assert on_memory(ops) == on_postgres(pg_url, ops)

    def broken() -> list[Any]:
        return asyncio.run(play(lambda: PrunesRunningSagas(pg_url), ops))

    on_postgres(pg_url, [])  # empty again
    assert on_memory(ops) != broken()
