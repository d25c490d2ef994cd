"""open_store(url): which store a URL names, and the URLs refused (before anything is created)."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from sagafsm.runtime.errors import StoreError
from sagafsm.runtime.memory_store import MemoryStore
from sagafsm.runtime.postgres_store import PostgresStore
from sagafsm.runtime.sqlite_store import SqliteStore
from sagafsm.runtime.urls import open_store


def test_sqlite_urls_with_three_slashes_are_relative_and_with_four_absolute() -> None:
    """sqlite:///orders.db is ./orders.db; sqlite:////var/x.db is /var/x.db."""
    relative = open_store("sqlite:///data/orders.db")
    absolute = open_store("sqlite:////var/lib/orders.db")
    assert isinstance(relative, SqliteStore) and relative.path == "data/orders.db"
    assert isinstance(absolute, SqliteStore) and absolute.path == "/var/lib/orders.db"


@pytest.mark.parametrize("path", ["orders.db", "x/orders.sqlite", "/tmp/o.sqlite3", "O.DB"])
def test_a_bare_path_with_a_sqlite_suffix_is_a_sqlite_store(path: str) -> None:
    """.db, .sqlite and .sqlite3 name SQLite files."""
    store = open_store(path)
    assert isinstance(store, SqliteStore) and store.path == path


def test_memory_url_gives_a_memory_store_and_options_reach_the_store() -> None:
    """memory:// and sqlite:// pass their options to the constructor."""
    memory = open_store("memory://", retention=5)
    assert isinstance(memory, MemoryStore) and memory.retention == 5.0
    sqlite = open_store("sqlite:///o.db", synchronous="FULL", busy_timeout=1, retention=9)
    assert isinstance(sqlite, SqliteStore)
    assert (sqlite.synchronous, sqlite.busy_timeout, sqlite.retention) == ("FULL", 1.0, 9.0)
    with pytest.raises(StoreError, match="no option synchronous"):
        open_store("memory://", synchronous="FULL")


def test_a_relative_sqlite_url_opens_in_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The store file appears where the URL says, relative to the working directory."""
    monkeypatch.chdir(tmp_path)

    async def body() -> None:
        async with open_store("sqlite:///orders.db") as store:
            assert await store.boot() == 1

    asyncio.run(body())
    assert os.listdir(tmp_path) == ["orders.db"]


def test_postgresql_urls_name_a_postgres_store_not_connected_yet() -> None:
    """postgresql:// and postgres:// give a PostgresStore with the options passed on; nothing
    connects before open()."""
    store = open_store("postgresql://saga:s3cret@db.example/orders", pool_size=8)
    assert isinstance(store, PostgresStore)
    assert (store.url, store.pool_size) == ("postgresql://saga:s3cret@db.example/orders", 8)
    assert store.name == "postgresql://saga:***@db.example/orders"
    assert isinstance(open_store("postgres://db/orders"), PostgresStore)
    with pytest.raises(StoreError, match="not a store URL"):
        open_store("postgresqlx://db/orders")


@pytest.mark.parametrize(
    "url",
    [
        "mysql://db/orders",
        "sqlite://",
        "sqlite:///",
        "sqlite://host/orders.db",
        "sqlite:///dir/",
        "sqlite:///orders.db?mode=ro",
        "orders.txt",
        "",
        "memory",
        "memory:///x",
    ],
)
def test_other_urls_are_refused_naming_the_url(url: str, tmp_path: Path) -> None:
    """Anything else is a StoreError that names the URL; nothing is created."""
    with pytest.raises(StoreError) as raised:
        open_store(url)
    assert url in str(raised.value)
    assert "\n" not in str(raised.value)
