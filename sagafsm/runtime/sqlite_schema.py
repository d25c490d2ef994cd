"""The SQLite store's schema, its numbered migrations, and the checks made before a file is touched.

Rules for this module: it knows the tables and how to tell whether a file may be opened as a store;
it runs no store operation. :func:`inspect` reads a file without changing it (no ``-wal``/``-shm``
file, no new database), so a refused path is left exactly as it was; :func:`migrate` runs inside the
writer's ``BEGIN IMMEDIATE`` and repeats the check there, because another process may have created
or upgraded the store between the two.

Every table's name starts with ``sagafsm_``. A file whose only tables are ours (say the SQLite
transport created ``sagafsm_messages`` first) is a store still to be created, not someone else's.
"""

from __future__ import annotations

import os
import sqlite3
from typing import Final
from urllib.request import pathname2url

from .errors import StoreError

__all__ = ["SCHEMA_VERSION", "MIGRATIONS", "inspect", "migrate", "read_version"]

_V1: Final = (
    "CREATE TABLE IF NOT EXISTS sagafsm_meta (key TEXT PRIMARY KEY, value) WITHOUT ROWID",
    "INSERT OR IGNORE INTO sagafsm_meta (key, value) VALUES ('boot', 0)",
    # start_seq is the rowid: a new saga gets max+1, so ORDER BY start_seq is start order even
    # after older rows are pruned (and VACUUM keeps an INTEGER PRIMARY KEY). saga_id UNIQUE makes
    # a second start of one saga an error instead of a silent overwrite.
    """CREATE TABLE IF NOT EXISTS sagafsm_sagas (
        start_seq INTEGER PRIMARY KEY,
        saga_id TEXT NOT NULL UNIQUE,
        definition TEXT NOT NULL,
        state TEXT NOT NULL,
        reason TEXT,
        results TEXT,
        snapshot TEXT,
        started_at REAL NOT NULL,
        updated_at REAL NOT NULL)""",
    # AUTOINCREMENT: an outbox id is never reused, even once every row was sent and deleted.
    """CREATE TABLE IF NOT EXISTS sagafsm_outbox (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        saga_id TEXT NOT NULL,
        message TEXT NOT NULL)""",
    # The primary key is the "at most one armed timer per saga" rule.
    """CREATE TABLE IF NOT EXISTS sagafsm_timers (
        saga_id TEXT PRIMARY KEY,
        timer_id TEXT NOT NULL,
        due REAL NOT NULL) WITHOUT ROWID""",
    # One row per append (a commit batch, a mark_sent, a participant transaction): a JSON list of
    # its records, each a list. A batch pays one insert for its whole trace; seq is commit order.
    """CREATE TABLE IF NOT EXISTS sagafsm_trace (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        records TEXT NOT NULL)""",
    # The primary key deduplicates: one inbox row per (participant, idempotency key), written in
    # the transaction of the effect it remembers.
    """CREATE TABLE IF NOT EXISTS sagafsm_inbox (
        participant TEXT NOT NULL,
        key TEXT NOT NULL,
        kind TEXT NOT NULL,
        outcome TEXT,
        result TEXT,
        reason TEXT NOT NULL,
        PRIMARY KEY (participant, key)) WITHOUT ROWID""",
    # The SQLite transport's queue (its code owns the rows). Created here so that a store commit
    # can always delete the rows it consumed in the same transaction.
    """CREATE TABLE IF NOT EXISTS sagafsm_messages (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        dest TEXT NOT NULL,
        body TEXT NOT NULL,
        visible_at REAL NOT NULL DEFAULT 0)""",
    "CREATE INDEX IF NOT EXISTS sagafsm_messages_dest ON sagafsm_messages (dest, id)",
)

MIGRATIONS: Final[tuple[tuple[str, ...], ...]] = (_V1,)
"""Migration ``n`` (from 1) brings a store from schema ``n - 1`` to ``n``: a tuple of statements,
run one by one inside the writer's transaction (``executescript`` would commit first). Append
only; never edit a released one."""

SCHEMA_VERSION: Final = len(MIGRATIONS)
"""The newest schema this code reads and writes."""

_HEADER: Final = b"SQLite format 3\x00"


def _ours(table: str) -> bool:
    return table.startswith(("sagafsm_", "sqlite_"))


def read_version(conn: sqlite3.Connection, name: str) -> int:
    """The schema version of the store in ``conn``: 0 for a database still to be created.

    Raises :class:`StoreError` for a database with tables of its own and no ``sagafsm_meta``, and
    for a schema newer than :data:`SCHEMA_VERSION`."""
    tables = [row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    if "sagafsm_meta" not in tables:
        foreign = sorted(t for t in tables if not _ours(t))
        if foreign:
            shown = ", ".join(foreign[:3]) + (", ..." if len(foreign) > 3 else "")
            raise StoreError(f"{name}: not a sagafsm store (it has tables {shown})")
        return 0
    row = conn.execute("SELECT value FROM sagafsm_meta WHERE key = 'schema_version'").fetchone()
    if row is None or not isinstance(row[0], int):
        raise StoreError(f"{name}: not a sagafsm store (sagafsm_meta has no schema_version)")
    version: int = row[0]
    if version > SCHEMA_VERSION:
        raise StoreError(
            f"{name}: this store was written by a newer sagafsm "
            f"(schema {version}, this one reads up to {SCHEMA_VERSION})"
        )
    return version


def inspect(path: str) -> int:
    """Check, without changing anything, that ``path`` can be opened as a store; return its schema
    version (0: to be created). Raises :class:`StoreError` with a one-line message naming it."""
    if os.path.isdir(path):
        raise StoreError(f"{path}: is a directory, not a store file")
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        problem = "is not a directory" if os.path.exists(parent) else "does not exist"
        raise StoreError(f"{path}: {parent} {problem}")
    # SQLite writes its -wal and -shm files beside the database.
    if not os.access(parent, os.W_OK | os.X_OK):
        raise StoreError(f"{path}: directory {parent} is not writable")
    if not os.path.exists(path):
        return 0
    if not os.access(path, os.R_OK | os.W_OK):
        raise StoreError(f"{path}: the file is not readable and writable")
    try:
        with open(path, "rb") as file:
            header = file.read(len(_HEADER))
    except OSError as error:
        raise StoreError(f"{path}: cannot be read ({error.strerror})") from None
    if not header:
        return 0  # an empty file is an empty SQLite database
    if header != _HEADER:
        raise StoreError(f"{path}: not a SQLite database")
    # Read-only; and with no -wal file beside it, immutable too, so that SQLite creates no
    # -wal/-shm file of its own (the main file then holds every committed transaction).
    uri = "file:" + pathname2url(os.path.abspath(path)) + "?mode=ro"
    if not os.path.exists(path + "-wal"):
        uri += "&immutable=1"
    try:
        conn = sqlite3.connect(uri, uri=True)
    except sqlite3.Error as error:
        raise StoreError(f"{path}: cannot be opened ({error})") from None
    try:
        return read_version(conn, path)
    except sqlite3.DatabaseError as error:
        raise StoreError(f"{path}: not a SQLite database ({error})") from None
    finally:
        conn.close()


def migrate(conn: sqlite3.Connection, name: str) -> int:
    """Create or upgrade the schema; the caller holds ``BEGIN IMMEDIATE``. Returns the version
    found (0 for a new store)."""
    found = read_version(conn, name)
    for version in range(found + 1, SCHEMA_VERSION + 1):
        for statement in MIGRATIONS[version - 1]:
            conn.execute(statement)
        conn.execute(
            "INSERT OR REPLACE INTO sagafsm_meta (key, value) VALUES ('schema_version', ?)",
            (version,),
        )
    return found
