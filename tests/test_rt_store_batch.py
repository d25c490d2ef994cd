"""Participant batches (group commit) on every store: one transaction for several commands, each in
a savepoint of its own. A savepoint that fails undoes its own writes alone (in SQL its SQL too),
a later savepoint sees what the earlier ones released, and the batch commits or rolls back whole.
The rules that a naive store would break are also run against one, so the checks are known to
bite; and on SQLite the hops a batch costs are counted."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import pytest

from sagafsm.runtime.errors import StoreError
from sagafsm.runtime.memory_store import MemoryStore, _MemoryBatch, _MemorySavepoint
from sagafsm.runtime.postgres_inbox import PostgresBatch, PostgresSavepoint
from sagafsm.runtime.postgres_store import PostgresStore
from sagafsm.runtime.sqlite_inbox import SqliteBatch, SqliteSavepoint, read, statement
from sagafsm.runtime.sqlite_store import SqliteStore
from sagafsm.runtime.store import InboxEntry
from sagafsm.runtime.store_encoding import decode_entry

_T = TypeVar("_T")
AnyStore = MemoryStore | SqliteStore | PostgresStore
STORES = ["memory", "sqlite", "postgres"]
SQL_STORES = (SqliteStore, PostgresStore)
DONE = InboxEntry("action", "succeeded", {"n": 1})


# -- broken stores: each breaks one rule a batch keeps ------------------------------------------


class _LeakySavepoint(_MemorySavepoint):
    """Keeps its writes even when its command failed."""

    async def __aexit__(self, exc_type: type[BaseException] | None, *rest: object) -> None:
        await super().__aexit__(None)


class _BlindSavepoint(_MemorySavepoint):
    """Reads the store and its own writes only, not what the batch's earlier savepoints wrote."""

    async def inbox_get(self, key: str) -> InboxEntry | None:
        row = self._puts.get(key) or self._batch._store._inbox.get((self._participant, key))
        return None if row is None else decode_entry(row)


class _NoSqlSavepoint(SqliteSavepoint):
    """Runs the handler's SQL without a SAVEPOINT: a failed command's SQL stays in the batch."""

    async def execute(self, sql: str, parameters: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return await self._batch._hop(statement, sql, parameters)


class _BlindSqlSavepoint(SqliteSavepoint):
    """Skips the batch's staged writes when it reads (sees only what was read ahead)."""

    async def inbox_get(self, key: str) -> InboxEntry | None:
        row, at = self._puts.get(key), (self._participant, key)
        if row is None:
            batch = self._batch
            row = batch._cache[at] if at in batch._cache else (await batch._hop(read, [at]))[0]
        return None if row is None else decode_entry(row)


def _memory_with(savepoint: type[_MemorySavepoint]) -> type[MemoryStore]:
    class Batch(_MemoryBatch):
        def savepoint(self, participant: str) -> _MemorySavepoint:
            return savepoint(self, participant)

    class Broken(MemoryStore):
        def batch(self) -> Batch:
            return Batch(self)

    return Broken


def _sqlite_with(savepoint: type[SqliteSavepoint]) -> type[SqliteStore]:
    class Batch(SqliteBatch):
        def savepoint(self, participant: str) -> SqliteSavepoint:
            self._count += 1
            return savepoint(self, participant, f"sagafsm_{self._count}")

    class Broken(SqliteStore):
        def batch(self) -> Batch:
            return Batch(self._write_lock, self._participant_call)

    return Broken


class _NoSqlPgSavepoint(PostgresSavepoint):
    """PostgreSQL: runs the handler's SQL without a SAVEPOINT."""

    async def execute(self, sql: str, parameters: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return await self._batch._hop([(sql, parameters)])


class _BlindPgSavepoint(PostgresSavepoint):
    """PostgreSQL: skips the batch's staged writes when it reads."""

    async def inbox_get(self, key: str) -> InboxEntry | None:
        row, at = self._puts.get(key), (self._participant, key)
        if row is None:
            batch = self._batch
            if at not in batch._cache:
                await batch._read([at])
            row = batch._cache[at]
        return None if row is None else decode_entry(row)


def _postgres_with(savepoint: type[PostgresSavepoint]) -> type[PostgresStore]:
    class Batch(PostgresBatch):
        def savepoint(self, participant: str) -> PostgresSavepoint:
            self._count += 1
            return savepoint(self, participant, f"sagafsm_{self._count}")

    class Broken(PostgresStore):
        def batch(self) -> Batch:
            return Batch(self._participant_lock, self._open_pool())

    return Broken


BROKEN: dict[str, tuple[type[MemoryStore], type[SqliteStore], type[PostgresStore]]] = {
    "leaky": (
        _memory_with(_LeakySavepoint),
        _sqlite_with(_NoSqlSavepoint),
        _postgres_with(_NoSqlPgSavepoint),
    ),
    "blind": (
        _memory_with(_BlindSavepoint),
        _sqlite_with(_BlindSqlSavepoint),
        _postgres_with(_BlindPgSavepoint),
    ),
}


class CountingStore(SqliteStore):
    """Counts the hops to the participants' connection."""

    hops = 0

    async def _participant_call(self, function: Callable[..., _T], *args: Any) -> _T:
        self.hops += 1
        return await super()._participant_call(function, *args)


# -- the rig ------------------------------------------------------------------------------------


@pytest.fixture
def where(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    """Where a test's store lives: a SQLite path, or (for kind "postgres") a fresh database."""
    if request.node.callspec.params.get("kind") == "postgres":
        return request.getfixturevalue("pg_url")
    return tmp_path / "saga.db"


@asynccontextmanager
async def opened(kind: str, where: Any, broken: str | None = None) -> AsyncIterator[Any]:
    """A store of ``kind`` (SQL stores: with a ``stock`` table), or its broken variant."""
    memory, sqlite, postgres = BROKEN[broken] if broken else (MemoryStore, SqliteStore,
                                                                PostgresStore)  # fmt: skip
    classes: dict[str, Any] = {"sqlite": sqlite, "postgres": postgres}
    store: Any = memory() if kind == "memory" else classes[kind](where)
    async with store:
        if kind != "memory":
            async with store.transaction("setup") as tx:
                await tx.execute("CREATE TABLE stock (item TEXT)")
        yield store


def play(
    kind: str, where: Any, check: Callable[[Any], Coroutine[Any, Any, None]], **how: Any
) -> None:
    async def main() -> None:
        async with opened(kind, where, **how) as store:
            await check(store)

    asyncio.run(asyncio.wait_for(main(), 30))


async def stock(store: Any) -> list[str]:
    if not isinstance(store, SQL_STORES):
        return []
    async with store.transaction("observer") as tx:
        return [item for (item,) in await tx.execute("SELECT item FROM stock ORDER BY item")]


async def entries(store: Any, participant: str, *keys: str) -> list[InboxEntry | None]:
    async with store.transaction(participant) as tx:
        return [await tx.inbox_get(key) for key in keys]


async def command(tx: Any, store: Any, key: str, *, fail: bool = False) -> None:
    """What the host writes for a command: an inbox entry, a ledger record, the handler's SQL."""
    await tx.inbox_put(key, DONE)
    await tx.append_trace([(1.0, "effect", key, "inv", "step", "action")])
    if isinstance(store, SqliteStore):
        await tx.execute("INSERT INTO stock VALUES (?)", (key,))
    elif isinstance(store, PostgresStore):
        await tx.execute("INSERT INTO stock VALUES (%s)", (key,))
    if fail:
        raise RuntimeError(f"{key} broke")


# -- the rules ----------------------------------------------------------------------------------


async def a_failed_savepoint_undoes_only_its_own(store: Any) -> None:
    async with store.batch() as batch:
        await batch.prefetch([("inv", "a"), ("inv", "b"), ("inv", "c")])
        async with batch.savepoint("inv") as tx:
            await command(tx, store, "a")
        with pytest.raises(RuntimeError, match="b broke"):
            async with batch.savepoint("inv") as tx:
                await command(tx, store, "b", fail=True)
        async with batch.savepoint("inv") as tx:
            assert await tx.inbox_get("b") is None
            await command(tx, store, "c")
    assert await entries(store, "inv", "a", "b", "c") == [DONE, None, DONE]
    assert [r[2] for r in await store.trace()] == ["a", "c"]
    assert await stock(store) == (["a", "c"] if isinstance(store, SQL_STORES) else [])


@pytest.mark.parametrize("kind", STORES)
def test_a_failed_savepoint_undoes_its_own_writes_and_the_batch_commits_the_rest(
    kind: str, where: Any
) -> None:
    """Three commands, the middle one raises: its inbox entry, ledger record and (SQLite) table
    row are gone; the other two commit, in one transaction."""
    play(kind, where, a_failed_savepoint_undoes_only_its_own)


@pytest.mark.parametrize("kind", STORES)
def test_the_savepoint_check_bites_a_store_that_keeps_a_failed_commands_writes(
    kind: str, where: Any
) -> None:
    """The same check fails on a store whose savepoints do not undo (SQLite: no SAVEPOINT, so
    the failed handler's row leaks into the batch's commit)."""
    with pytest.raises(AssertionError):
        play(kind, where, a_failed_savepoint_undoes_only_its_own, broken="leaky")


async def later_savepoints_see_earlier_ones(store: Any) -> None:
    async with store.transaction("inv") as tx:
        await tx.inbox_put("old", InboxEntry("tombstone"))
    async with store.batch() as batch:
        await batch.prefetch([("inv", "old"), ("inv", "new"), ("pay", "new")])
        async with batch.savepoint("inv") as tx:
            assert await tx.inbox_get("new") is None
            await tx.inbox_put("new", DONE)
            assert await tx.inbox_get("new") == DONE  # its own write
            await tx.inbox_put("old", InboxEntry("compensation", "succeeded"))
        async with batch.savepoint("inv") as tx:
            assert await tx.inbox_get("new") == DONE  # released before, read ahead as missing
            assert await tx.inbox_get("old") == InboxEntry("compensation", "succeeded")
        async with batch.savepoint("pay") as tx:
            assert await tx.inbox_get("new") is None  # another participant's inbox
            assert await tx.inbox_get("unread") is None  # not read ahead: read now


@pytest.mark.parametrize("kind", STORES)
def test_a_savepoint_reads_what_earlier_savepoints_of_its_batch_wrote(
    kind: str, where: Any
) -> None:
    """Reads see the savepoint's own writes, then those the batch's earlier savepoints released
    (over what was read ahead), then the store; each participant its own inbox."""
    play(kind, where, later_savepoints_see_earlier_ones)


@pytest.mark.parametrize("kind", STORES)
def test_the_visibility_check_bites_a_store_whose_savepoints_read_past_the_batch(
    kind: str, where: Any
) -> None:
    """The same check fails on a store whose savepoints do not consult the batch's writes."""
    with pytest.raises(AssertionError):
        play(kind, where, later_savepoints_see_earlier_ones, broken="blind")


@pytest.mark.parametrize("kind", STORES)
def test_an_exception_out_of_the_batch_rolls_every_savepoint_back(kind: str, where: Any) -> None:
    """Released savepoints are part of the batch: a batch that fails keeps none of them."""

    async def check(store: Any) -> None:
        with pytest.raises(KeyError):
            async with store.batch() as batch:
                async with batch.savepoint("inv") as tx:
                    await command(tx, store, "a")
                raise KeyError("crash")
        assert await entries(store, "inv", "a") == [None]
        assert await store.trace() == []
        assert await stock(store) == []

    play(kind, where, check)


@pytest.mark.parametrize("kind", STORES)
def test_batches_and_transactions_of_one_store_run_one_at_a_time(kind: str, where: Any) -> None:
    """A transaction begun while a batch holds the store waits for it, and sees its writes."""

    async def check(store: Any) -> None:
        seen: list[InboxEntry | None] = []

        async def later() -> None:
            async with store.transaction("inv") as tx:
                seen.append(await tx.inbox_get("a"))

        async with store.batch() as batch:
            await batch.prefetch([("inv", "a")])
            waiting = asyncio.ensure_future(later())
            await asyncio.sleep(0.02)
            assert not waiting.done()
            async with batch.savepoint("inv") as tx:
                await tx.inbox_put("a", DONE)
        await waiting
        assert seen == [DONE]

    play(kind, where, check)


def test_a_batch_without_sql_of_its_own_costs_two_hops(tmp_path: Path) -> None:
    """SQLite: the BEGIN rides on the read-ahead, every savepoint's writes on the COMMIT; a
    savepoint that runs SQL adds one hop (SAVEPOINT rides on its statement, RELEASE on the
    COMMIT)."""

    async def main() -> None:
        store = CountingStore(tmp_path / "saga.db")
        async with store:
            keys = [("inv", f"k{n}") for n in range(5)]
            async with store.batch() as batch:
                await batch.prefetch(keys)
                for _, key in keys:
                    async with batch.savepoint("inv") as tx:
                        assert await tx.inbox_get(key) is None
                        await tx.inbox_put(key, DONE)
                        await tx.append_trace([(1.0, "effect", key, "inv", "s", "action")])
            assert store.hops == 2
            async with store.batch() as batch:
                await batch.prefetch([("inv", "x")])
                async with batch.savepoint("inv") as tx:
                    await tx.execute("CREATE TABLE t (x)")
                async with batch.savepoint("inv") as tx:
                    await tx.inbox_put("x", DONE)
            assert store.hops == 5
            assert len(await store.trace()) == 5

    asyncio.run(asyncio.wait_for(main(), 30))


def test_a_hop_asked_for_while_the_store_closes_is_refused_and_holds_no_lock(
    tmp_path: Path,
) -> None:
    """close() and a transaction's first hop at the same moment: the hop is refused
    (StoreError), and no connection is left holding the write lock, so the file can be written
    at once."""

    async def main() -> None:
        store = SqliteStore(tmp_path / "saga.db")
        await store.open()
        tx = store.transaction("inv")
        closing = asyncio.ensure_future(store.close())
        await asyncio.sleep(0)  # close() is under way, its threads at work
        with pytest.raises(StoreError, match="not open"):
            async with tx:
                await tx.inbox_get("k")
        await closing
        conn = sqlite3.connect(tmp_path / "saga.db", timeout=0.2, isolation_level=None)
        conn.execute("BEGIN IMMEDIATE")  # "database is locked" if a transaction kept the lock
        conn.execute("ROLLBACK")
        conn.close()

    asyncio.run(asyncio.wait_for(main(), 30))
