"""What only the PostgreSQL store has to get right: a database it must refuse (unreachable, newer,
someone else's) is refused in one line and left as it was; two processes opening a new store at
once create it once; and two processes handling one participant key take turns (store objects
of their own stand for the processes: each has its own pool, as a process would).

The protocol's semantics themselves run on PostgreSQL in test_rt_store.py,
test_rt_store_batch.py and test_rt_store_equivalence.py.
"""

from __future__ import annotations

import asyncio
from typing import Any

import psycopg
import pytest

from sagafsm.runtime import postgres_schema
from sagafsm.runtime.errors import StoreError
from sagafsm.runtime.postgres_inbox import PostgresBatch
from sagafsm.runtime.postgres_store import PostgresStore
from sagafsm.runtime.store import InboxEntry
from sagafsm.runtime.store_encoding import loads


def tables(url: str) -> list[tuple[Any, ...]]:
    """Every table of the database's public schema and what it holds: to show nothing changed."""
    with psycopg.connect(url) as conn:
        names = [row[0] for row in conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' "
            "ORDER BY table_name").fetchall()]  # fmt: skip
        return [(name, conn.execute(f"SELECT * FROM {name}").fetchall()) for name in names]


def opened(url: str, **options: Any) -> None:
    async def body() -> None:
        async with PostgresStore(url, **options):
            pass

    asyncio.run(body())


def test_an_unreachable_server_is_one_line_with_the_password_masked() -> None:
    """Nothing listens on port 1: StoreError naming the URL, its password masked."""
    with pytest.raises(StoreError) as raised:
        opened("postgresql://saga:s3cret@127.0.0.1:1/orders", connect_timeout=2)
    message = str(raised.value)
    assert message.startswith("postgresql://saga:***@127.0.0.1:1/orders: cannot connect (")
    assert "s3cret" not in message and "\n" not in message


def test_a_missing_database_is_refused(pg_url: str) -> None:
    """A database name that is not on the server: one line, cannot connect."""
    missing = pg_url.replace("/sagafsm_test_", "/nobody_", 1)
    with pytest.raises(StoreError, match=r"cannot connect \(.*nobody_"):
        opened(missing)


def test_a_database_of_someone_elses_is_refused_and_left_as_it_was(pg_url: str) -> None:
    """Tables of its own and no sagafsm_meta: refused (a typo must not grow sagafsm's tables in
    an application's database); adopt=True adds them beside the application's."""
    with psycopg.connect(pg_url) as conn:
        conn.execute("CREATE TABLE customers (id int)")
        conn.execute("INSERT INTO customers VALUES (1)")
    before = tables(pg_url)
    with pytest.raises(StoreError, match=r"not a sagafsm store \(it has tables customers\)"):
        opened(pg_url)
    assert tables(pg_url) == before
    opened(pg_url, adopt=True)
    assert "sagafsm_meta" in [name for name, _ in tables(pg_url)]


def test_a_newer_schema_is_refused_and_left_as_it_was(pg_url: str) -> None:
    """A store a newer sagafsm wrote: refused, not a row changed."""
    opened(pg_url)
    with psycopg.connect(pg_url) as conn:
        conn.execute("UPDATE sagafsm_meta SET value = 99 WHERE key = 'schema_version'")
    before = tables(pg_url)
    with pytest.raises(StoreError, match=r"newer sagafsm \(schema 99, this one reads up to 3\)"):
        opened(pg_url)
    assert tables(pg_url) == before


def test_without_migrate_an_empty_database_is_refused_and_not_created(pg_url: str) -> None:
    """An operator's command (migrate=False) on a database with no store creates nothing."""
    with pytest.raises(StoreError, match=r"not a sagafsm store \(it holds no schema\)"):
        opened(pg_url, migrate=False)
    assert tables(pg_url) == []
    opened(pg_url)
    opened(pg_url, migrate=False)


def test_bad_options_are_refused_before_connecting() -> None:
    """pool_size below 2 (a participant transaction and a commit need one each), a
    connect_timeout that is not positive."""
    with pytest.raises(ValueError, match="pool_size must be an int >= 2"):
        PostgresStore("postgresql://db/x", pool_size=1)
    with pytest.raises(ValueError, match="connect_timeout must be finite seconds > 0"):
        PostgresStore("postgresql://db/x", connect_timeout=0)


def test_two_processes_creating_one_store_at_once_create_it_once(pg_url: str) -> None:
    """Four stores open a new database at the same moment: one creates the schema, the others
    wait on the advisory lock and find it (no 'relation already exists')."""

    async def body() -> list[int]:
        stores = [PostgresStore(pg_url) for _ in range(4)]
        await asyncio.gather(*(store.open() for store in stores))
        boots = [await store.boot() for store in stores]
        for store in stores:
            await store.close()
        return boots

    assert asyncio.run(body()) == [1, 2, 3, 4]


async def runs_of_two_processes_handling_one_key(url: str, store_class: type[Any]) -> int:
    """Two store objects (two processes) handle one command at once: each reads the key and
    runs the effect if it is missing. Returns how many ran it."""
    ran = []

    async def handle(store: Any) -> None:
        async with store.transaction("inv") as tx:
            entry = await tx.inbox_get("key")
            await asyncio.sleep(0.05)  # the other one gets every chance to read too
            if entry is None:
                ran.append(1)
                await tx.inbox_put("key", InboxEntry("action", "succeeded", {}))

    async with store_class(url) as one, store_class(url) as two:
        await asyncio.gather(handle(one), handle(two))
    return len(ran)


class _UnlockedBatch(PostgresBatch):
    """Broken: reads inbox keys without their advisory lock."""

    async def _read(self, keys: Any) -> None:
        columns = [[p for p, _ in keys], [k for _, k in keys]]
        rows = await self._hop([(postgres_schema.INBOX_GET, columns)])
        for participant, key, kind, outcome, result, reason in rows:
            found = None if kind is None else (kind, outcome, result, loads(reason))
            self._cache[participant, key] = found


class _Unlocked(PostgresStore):
    def transaction(self, participant: str) -> Any:
        tx = super().transaction(participant)
        tx._batch = _UnlockedBatch(self._participant_lock, self._open_pool())
        return tx


def test_two_processes_handling_one_key_run_its_effect_once(pg_url: str) -> None:
    """The second waits on the key's lock, then reads the first's inbox row."""
    assert asyncio.run(runs_of_two_processes_handling_one_key(pg_url, PostgresStore)) == 1


def test_the_key_lock_check_catches_a_store_that_reads_without_the_lock(pg_url: str) -> None:
    """The same check on a store whose reads take no lock: both run the effect."""
    assert asyncio.run(runs_of_two_processes_handling_one_key(pg_url, _Unlocked)) == 2
