"""What only the SQLite store does: the file, its settings, refusals that leave a file untouched,
participants' own tables in the inbox transaction, and the transport rows a commit consumes."""

from __future__ import annotations

import asyncio
import os
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest
from test_rt_store import commit

from sagafsm.errors import InvalidArgument
from sagafsm.runtime.errors import StoreError
from sagafsm.runtime.sqlite_schema import MIGRATIONS, SCHEMA_VERSION, migrate, read_version
from sagafsm.runtime.sqlite_store import SqliteStore
from sagafsm.runtime.store import InboxEntry, TimerRow


def listing(directory: Path) -> dict[str, bytes]:
    """Every file under ``directory`` with its bytes (directories as b"<dir>")."""
    found = {}
    for root, dirs, files in os.walk(directory):
        for name in dirs:
            found[os.path.relpath(os.path.join(root, name), directory)] = b"<dir>"
        for name in files:
            full = os.path.join(root, name)
            found[os.path.relpath(full, directory)] = Path(full).read_bytes()
    return found


def raw(path: Path, *statements: str) -> None:
    conn = sqlite3.connect(path)
    for statement in statements:
        conn.execute(statement)
    conn.commit()
    conn.close()


def test_the_store_runs_in_wal_with_synchronous_normal_by_default(tmp_path: Path) -> None:
    """PRAGMAs read back from the store's connections say WAL, NORMAL and the busy timeout."""

    async def body() -> None:
        async with SqliteStore(tmp_path / "s.db", busy_timeout=2.5) as store:
            assert await store.pragmas() == {
                "journal_mode": "wal",
                "synchronous": "NORMAL",
                "busy_timeout": 2500,
            }
            async with store.transaction("inv") as tx:  # the participants' connection
                assert await tx.execute("PRAGMA synchronous") == [(1,)]
                assert await tx.execute("PRAGMA journal_mode") == [("wal",)]
        conn = sqlite3.connect(tmp_path / "s.db")
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)  # kept in the file
        conn.close()

    asyncio.run(body())


def test_synchronous_full_is_what_the_connections_run_with(tmp_path: Path) -> None:
    """synchronous="FULL" reaches both connections."""

    async def body() -> None:
        async with SqliteStore(tmp_path / "s.db", synchronous="FULL") as store:
            assert (await store.pragmas())["synchronous"] == "FULL"
            async with store.transaction("inv") as tx:
                assert await tx.execute("PRAGMA synchronous") == [(2,)]

    asyncio.run(body())


@pytest.mark.parametrize(
    "options",
    [
        {"synchronous": "OFF"},
        {"synchronous": "normal "},
        {"busy_timeout": -1},
        {"busy_timeout": "1"},
    ],
    ids=str,
)
def test_settings_other_than_normal_or_full_are_refused(
    tmp_path: Path, options: dict[str, object]
) -> None:
    """Only NORMAL and FULL, and a finite busy timeout >= 0."""
    with pytest.raises(InvalidArgument):
        SqliteStore(tmp_path / "s.db", **options)  # type: ignore[arg-type]


def test_closing_the_store_leaves_only_its_file(tmp_path: Path) -> None:
    """Once both connections are closed SQLite removes the -wal and -shm files."""

    async def body() -> None:
        async with SqliteStore(tmp_path / "s.db") as store:
            await store.commit([commit("a", started=True)])
            async with store.transaction("inv") as tx:
                await tx.inbox_put("k", InboxEntry("tombstone"))
            assert len(os.listdir(tmp_path)) == 3
        assert os.listdir(tmp_path) == ["s.db"]

    asyncio.run(body())


# -- participants' own tables ---------------------------------------------------------------------


def test_execute_runs_in_the_inbox_transaction_and_commits_with_it(tmp_path: Path) -> None:
    """A user table row and the inbox row commit together; another connection then sees both."""

    async def body() -> None:
        async with SqliteStore(tmp_path / "s.db") as store:
            async with store.transaction("inv") as tx:
                await tx.execute("CREATE TABLE stock (item TEXT PRIMARY KEY, n INTEGER)")
                await tx.execute("INSERT INTO stock VALUES (?, ?)", ("apple", 3))
            async with store.transaction("inv") as tx:
                assert await tx.inbox_get("k") is None
                await tx.execute("UPDATE stock SET n = n - 1 WHERE item = ?", ("apple",))
                assert await tx.execute("SELECT item, n FROM stock") == [("apple", 2)]
                await tx.inbox_put("k", InboxEntry("action", "succeeded", {"left": 2}))
        conn = sqlite3.connect(tmp_path / "s.db")
        assert conn.execute("SELECT n FROM stock").fetchall() == [(2,)]
        assert conn.execute("SELECT key, kind FROM sagafsm_inbox").fetchall() == [("k", "action")]
        conn.close()

    asyncio.run(body())


def test_execute_rolls_back_with_the_inbox_transaction(tmp_path: Path) -> None:
    """An exception undoes the user's writes and the inbox row together."""

    async def body() -> None:
        async with SqliteStore(tmp_path / "s.db") as store:
            async with store.transaction("inv") as tx:
                await tx.execute("CREATE TABLE stock (item TEXT PRIMARY KEY, n INTEGER)")
                await tx.execute("INSERT INTO stock VALUES ('apple', 3)")
            with pytest.raises(KeyError):
                async with store.transaction("inv") as tx:
                    await tx.execute("UPDATE stock SET n = 0")
                    await tx.inbox_put("k", InboxEntry("action", "succeeded"))
                    raise KeyError("crash")
            async with store.transaction("inv") as tx:
                assert await tx.execute("SELECT n FROM stock") == [(3,)]
                assert await tx.inbox_get("k") is None

    asyncio.run(body())


def test_two_store_objects_on_one_file_serialise_their_transactions(tmp_path: Path) -> None:
    """Two processes' stores (two objects) race for one key: SQLite's lock lets one effect run."""

    async def body() -> None:
        path = tmp_path / "s.db"
        async with SqliteStore(path) as one, SqliteStore(path) as two:
            ran = []

            async def handle(store: SqliteStore) -> None:
                async with store.transaction("inv") as tx:
                    entry = await tx.inbox_get("key")
                    await asyncio.sleep(0.02)
                    if entry is None:
                        ran.append(store)
                        await tx.inbox_put("key", InboxEntry("action", "succeeded"))

            await asyncio.gather(handle(one), handle(two))
            assert len(ran) == 1
            await one.commit([commit("a", started=True)])
            assert [s.saga_id for s in await two.running()] == ["a"]

    asyncio.run(body())


# -- the transport's rows -------------------------------------------------------------------------


def test_a_commit_deletes_the_transport_rows_it_consumed(tmp_path: Path) -> None:
    """consumed ids leave sagafsm_messages with the commit; a refused batch keeps them."""

    async def body() -> None:
        path = tmp_path / "s.db"
        async with SqliteStore(path) as store:
            raw(
                path,
                "INSERT INTO sagafsm_messages (dest, body) VALUES ('orchestrator', '{}')",
                "INSERT INTO sagafsm_messages (dest, body) VALUES ('orchestrator', '{}')",
                "INSERT INTO sagafsm_messages (dest, body) VALUES ('orchestrator', '{}')",
            )
            await store.commit([commit("a", started=True)], consumed=[1, 3])
            with pytest.raises(InvalidArgument):
                await store.commit([commit("b", started=True), commit("a", started=True)], [2])
            conn = sqlite3.connect(path)
            assert conn.execute("SELECT id FROM sagafsm_messages").fetchall() == [(2,)]
            conn.close()

    asyncio.run(body())


def test_a_file_holding_only_sagafsm_tables_becomes_a_store(tmp_path: Path) -> None:
    """The transport may create its queue table first: the store adopts the file, rows kept."""
    path = tmp_path / "s.db"
    raw(
        path,
        "CREATE TABLE sagafsm_messages (id INTEGER PRIMARY KEY AUTOINCREMENT, dest TEXT NOT NULL,"
        " body TEXT NOT NULL, visible_at REAL NOT NULL DEFAULT 0)",
        "INSERT INTO sagafsm_messages (dest, body) VALUES ('inv', '{}')",
    )

    async def body() -> None:
        async with SqliteStore(path) as store:
            await store.commit([commit("a", started=True)], consumed=[1])
            assert [s.saga_id for s in await store.running()] == ["a"]

    asyncio.run(body())


def test_an_empty_file_becomes_a_store(tmp_path: Path) -> None:
    """A zero-byte file is an empty SQLite database (say from mkstemp)."""
    (tmp_path / "s.db").touch()

    async def body() -> None:
        async with SqliteStore(tmp_path / "s.db") as store:
            assert await store.boot() == 1

    asyncio.run(body())


# -- refusals leave everything as it was ----------------------------------------------------------

PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00"


def _text(path: Path) -> None:
    path.write_text("orders, one a line\n")


def _png(path: Path) -> None:
    path.write_bytes(PNG)


def _sqlite_header_then_garbage(path: Path) -> None:
    path.write_bytes(b"SQLite format 3\x00" + b"\xff" * 200)


def _foreign(path: Path) -> None:
    raw(path, "CREATE TABLE users (name TEXT)", "INSERT INTO users VALUES ('ann')")


BAD_FILES: dict[str, tuple[Callable[[Path], None], str]] = {
    "text": (_text, "not a SQLite database"),
    "png": (_png, "not a SQLite database"),
    "corrupt": (_sqlite_header_then_garbage, "not a SQLite database"),
    "foreign": (_foreign, "not a sagafsm store (it has tables users)"),
}


def assert_refused(
    path: Path, expected: str, *, shm_in_use: bool = False, store: type[SqliteStore] = SqliteStore
) -> None:
    """Opening ``path`` raises a one-line StoreError naming it; nothing under its directory
    changes (no -wal/-shm, no new file, the same bytes). ``shm_in_use``: a -shm file of another
    program's open connection may change (SQLite's shared-memory index, which every reader of a
    WAL database writes its read mark into); the database and its -wal may not."""
    directory = path.parent if path.parent.exists() else path.parent.parent

    def listing_now() -> dict[str, bytes]:
        found = listing(directory)
        if shm_in_use:
            found[path.name + "-shm"] = b"(in use)"
        return found

    before = listing_now()
    with pytest.raises(StoreError) as raised:
        asyncio.run(store(path).open())
    message = str(raised.value)
    assert "\n" not in message
    assert str(path) in message
    assert expected in message
    assert listing_now() == before


@pytest.mark.parametrize("kind", list(BAD_FILES))
def test_a_file_that_is_not_a_store_is_refused_and_left_alone(tmp_path: Path, kind: str) -> None:
    """Text, PNG, corrupt and foreign SQLite files: StoreError naming the file, bytes unchanged."""
    make, expected = BAD_FILES[kind]
    make(tmp_path / "orders.db")
    assert_refused(tmp_path / "orders.db", expected)


def test_a_store_of_a_newer_schema_is_refused_and_left_alone(tmp_path: Path) -> None:
    """A schema this code does not know: the message says both versions."""
    path = tmp_path / "orders.db"

    async def create() -> None:
        async with SqliteStore(path) as store:
            await store.commit([commit("a", started=True)])

    asyncio.run(create())
    raw(path, "UPDATE sagafsm_meta SET value = 99 WHERE key = 'schema_version'")
    assert os.listdir(tmp_path) == ["orders.db"]
    assert_refused(
        path, f"written by a newer sagafsm (schema 99, this one reads up to {SCHEMA_VERSION})"
    )


def test_a_foreign_database_in_use_in_wal_mode_is_left_alone(tmp_path: Path) -> None:
    """Another program has the file open in WAL mode: its -wal and -shm files are not touched."""
    path = tmp_path / "orders.db"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("CREATE TABLE users (name TEXT)")
    conn.execute("INSERT INTO users VALUES ('ann')")
    try:
        assert sorted(os.listdir(tmp_path)) == ["orders.db", "orders.db-shm", "orders.db-wal"]
        assert_refused(path, "not a sagafsm store", shm_in_use=True)
    finally:
        conn.close()


class ChecksOnlyAfterConnecting(SqliteStore):
    """Broken: connects (switching the file to WAL) before checking what the file is."""

    def _create(self) -> sqlite3.Connection:
        conn = self._connect()
        try:
            conn.execute("BEGIN IMMEDIATE")
            migrate(conn, self.path)
            conn.execute("COMMIT")
        except BaseException:
            conn.close()
            raise
        return conn


def test_the_refusal_check_catches_a_store_that_connects_before_checking(tmp_path: Path) -> None:
    """The check above fails on a store that refuses only once connected: the file changed."""
    _foreign(tmp_path / "orders.db")
    with pytest.raises(AssertionError):
        assert_refused(
            tmp_path / "orders.db", "not a sagafsm store", store=ChecksOnlyAfterConnecting
        )


def test_a_directory_is_refused(tmp_path: Path) -> None:
    """A path naming a directory: StoreError, nothing created in it."""
    (tmp_path / "orders.db").mkdir()
    assert_refused(tmp_path / "orders.db", "is a directory")


def test_a_missing_directory_is_refused_and_not_created(tmp_path: Path) -> None:
    """The parent directory must exist; the store does not create it."""
    assert_refused(tmp_path / "nowhere" / "orders.db", "does not exist")
    assert not (tmp_path / "nowhere").exists()


def test_a_parent_that_is_a_file_is_refused(tmp_path: Path) -> None:
    """``notes.txt/orders.db``: the parent is not a directory."""
    (tmp_path / "notes.txt").write_text("x")
    assert_refused(tmp_path / "notes.txt" / "orders.db", "is not a directory")


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root writes anywhere")
def test_an_unwritable_directory_is_refused(tmp_path: Path) -> None:
    """SQLite needs to write its -wal file beside the database."""
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        assert_refused(locked / "orders.db", "is not writable")
    finally:
        locked.chmod(0o755)


# -- the schema -----------------------------------------------------------------------------------


def test_reopening_a_store_changes_none_of_its_rows(tmp_path: Path) -> None:
    """open() on an existing store migrates nothing and keeps every row."""
    path = tmp_path / "s.db"

    async def body() -> None:
        async with SqliteStore(path) as store:
            await store.commit([commit("a", started=True, timer=TimerRow("a", "t", 1.0))])
        conn = sqlite3.connect(path)
        before = conn.execute("SELECT * FROM sagafsm_meta ORDER BY key").fetchall()
        conn.close()
        async with SqliteStore(path):
            pass
        conn = sqlite3.connect(path)
        assert conn.execute("SELECT * FROM sagafsm_meta ORDER BY key").fetchall() == before
        assert before == [("boot", 0), ("schema_version", SCHEMA_VERSION)]
        conn.close()

    asyncio.run(body())


def test_the_check_inside_the_writers_transaction_refuses_too(tmp_path: Path) -> None:
    """migrate() repeats the refusals (another process may have changed the file meanwhile)."""
    conn = sqlite3.connect(tmp_path / "s.db", isolation_level=None)
    conn.execute("CREATE TABLE users (name TEXT)")
    with pytest.raises(StoreError, match="not a sagafsm store"):
        migrate(conn, "s.db")
    conn.execute("DROP TABLE users")
    assert migrate(conn, "s.db") == 0
    assert read_version(conn, "s.db") == SCHEMA_VERSION
    newer = SCHEMA_VERSION + 1
    conn.execute(f"UPDATE sagafsm_meta SET value = {newer} WHERE key = 'schema_version'")
    with pytest.raises(StoreError, match=f"schema {newer}"):
        migrate(conn, "s.db")
    conn.execute("DELETE FROM sagafsm_meta WHERE key = 'schema_version'")
    with pytest.raises(StoreError, match="no schema_version"):
        read_version(conn, "s.db")
    conn.close()


@pytest.mark.parametrize("version", range(1, SCHEMA_VERSION))
def test_a_store_of_an_older_schema_is_migrated_and_keeps_its_rows(
    tmp_path: Path, version: int
) -> None:
    """A file written at schema ``version`` opens at the newest schema, its sagas still there."""
    path = tmp_path / "s.db"
    conn = sqlite3.connect(path, isolation_level=None)
    for migration in MIGRATIONS[:version]:
        for statement in migration:
            conn.execute(statement)
    conn.execute(f"INSERT INTO sagafsm_meta VALUES ('schema_version', {version})")
    conn.execute(
        "INSERT INTO sagafsm_sagas (saga_id, definition, state, snapshot, started_at, updated_at)"
        " VALUES ('a', 'order', 'running', '{\"v\": 1}', 1.0, 2.0)"
    )
    conn.close()

    async def body() -> None:
        async with SqliteStore(path) as store:
            assert [(s.saga_id, s.snapshot) for s in await store.running()] == [("a", {"v": 1})]
            await store.commit([commit("a", "succeeded", finished=True)])
            status = await store.status("a")
            assert status is not None and status.state == "succeeded"

    asyncio.run(body())
    conn = sqlite3.connect(path)
    assert read_version(conn, "s.db") == SCHEMA_VERSION
    conn.close()


def test_adopt_adds_the_store_to_an_application_database_and_shares_its_transactions(
    tmp_path: Path,
) -> None:
    """An application's database (its own tables, none of sagafsm's) becomes the store with
    adopt=True: sagafsm's tables go in beside the application's, which keep their rows, and a
    handler's write to an application table commits with its inbox row. Without adopt it stays
    refused (the path may be a typo), and once adopted it opens as any store."""
    from sagafsm import SagaBuilder
    from sagafsm.runtime.clock import VirtualClock
    from sagafsm.runtime.host import ParticipantHost
    from sagafsm.runtime.participant import ActionCall, Participant
    from sagafsm.runtime.runtime import Runtime
    from sagafsm.runtime.transport import InProcessTransport

    path = tmp_path / "app.db"
    raw(
        path,
        "CREATE TABLE users (name TEXT)",
        "INSERT INTO users VALUES ('ann')",
        "CREATE TABLE orders (saga_id TEXT PRIMARY KEY)",
    )
    assert_refused(path, "not a sagafsm store (it has tables orders, users); to add")
    definition = SagaBuilder("order", timeout=5.0).pivot("book", participant="shop", action="book")
    order = definition.build()
    shop = Participant("shop")

    @shop.action("book")
    async def book(call: ActionCall) -> dict[str, str]:
        await call.db.execute("INSERT INTO orders (saga_id) VALUES (?)", [call.saga_id])
        return {}

    async def body() -> str:
        store = SqliteStore(path, adopt=True)
        transport, clock = InProcessTransport(), VirtualClock()
        async with Runtime(store, transport, [order], clock=clock) as runtime:
            host = ParticipantHost([shop], transport, store, clock)
            hosting = asyncio.create_task(host.run())
            status = await runtime.wait(await runtime.start(order, {}))
            await host.close()
            await hosting
        async with SqliteStore(path) as again:  # a store now: no adopt needed
            assert await again.status(status.saga_id) == status
        return status.saga_id

    saga_id = asyncio.run(body())
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT name FROM users").fetchall() == [("ann",)]
    assert conn.execute("SELECT saga_id FROM orders").fetchall() == [(saga_id,)]
    (inbox,) = conn.execute("SELECT COUNT(*) FROM sagafsm_inbox").fetchone()
    assert inbox == 1
    conn.close()
