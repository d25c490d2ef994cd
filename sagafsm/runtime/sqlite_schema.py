"""The SQLite store's file side: its schema and numbered migrations, the checks made before a file
is touched, and every statement the orchestrator's store operations run, each operation one
synchronous function (the participants' inbox statements are in :mod:`.sqlite_inbox`).

Rules for this module: it is plain synchronous :mod:`sqlite3` and knows nothing of asyncio; each
function below takes a connection and runs on that connection's own thread (the store hands it
there, one hop per operation). A function that writes is one ``BEGIN IMMEDIATE`` ... ``COMMIT``
and rolls back on any exception. :func:`inspect` reads a file without changing it (no
``-wal``/``-shm`` file, no new database), so a refused path is left exactly as it was;
:func:`migrate` runs inside the writer's ``BEGIN IMMEDIATE`` and repeats the check there, because
another process may have created or upgraded the store between the two.

Every table's name starts with ``sagafsm_``. A file whose only tables are ours (say the SQLite
transport created ``sagafsm_messages`` first) is a store still to be created, not someone else's.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Sequence
from typing import Any, Final
from urllib.request import pathname2url

from ..errors import InvalidArgument
from .errors import StoreError
from .store import OutboxRow
from .store_encoding import EncodedBatch

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

_V2: Final = (
    # An operator's note on an operator_required saga (sagafsm resolve); NULL until then.
    "ALTER TABLE sagafsm_sagas ADD COLUMN resolution TEXT",
)

_V3: Final = (
    # The snapshot of a saga parked operator_required by a compensation that gave up, kept for
    # an operator's retry (recovery reads only ``snapshot``); NULL otherwise.
    "ALTER TABLE sagafsm_sagas ADD COLUMN parked TEXT",
    # Operators' retry requests (sagafsm retry), one per saga; the runtime's commit that applies
    # one deletes it.
    """CREATE TABLE sagafsm_requests (
        saga_id TEXT PRIMARY KEY,
        note TEXT NOT NULL,
        requested_at REAL NOT NULL)""",
)

MIGRATIONS: Final[tuple[tuple[str, ...], ...]] = (_V1, _V2, _V3)
"""Migration ``n`` (from 1) brings a store from schema ``n - 1`` to ``n``: a tuple of statements,
run one by one inside the writer's transaction (``executescript`` would commit first). Append
only; never edit a released one."""

SCHEMA_VERSION: Final = len(MIGRATIONS)
"""The newest schema this code reads and writes."""

_HEADER: Final = b"SQLite format 3\x00"


def _ours(table: str) -> bool:
    return table.startswith(("sagafsm_", "sqlite_"))


def read_version(conn: sqlite3.Connection, name: str, *, adopt: bool = False) -> int:
    """The schema version of the store in ``conn``: 0 for a database still to be created.

    Raises :class:`StoreError` for a database with tables of its own and no ``sagafsm_meta``
    (unless ``adopt``: an application's database that is to hold sagafsm's tables beside its
    own), and for a schema newer than :data:`SCHEMA_VERSION`."""
    tables = [row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    if "sagafsm_meta" not in tables:
        foreign = sorted(t for t in tables if not _ours(t))
        if foreign and not adopt:
            shown = ", ".join(foreign[:3]) + (", ..." if len(foreign) > 3 else "")
            raise StoreError(
                f"{name}: not a sagafsm store (it has tables {shown}); to add sagafsm's tables "
                "to this application database, open it with SqliteStore(path, adopt=True)"
            )
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


def inspect(path: str, *, adopt: bool = False) -> int:
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
        return read_version(conn, path, adopt=adopt)
    except sqlite3.DatabaseError as error:
        raise StoreError(f"{path}: not a SQLite database ({error})") from None
    finally:
        conn.close()


def migrate(conn: sqlite3.Connection, name: str, *, adopt: bool = False) -> int:
    """Create or upgrade the schema; the caller holds ``BEGIN IMMEDIATE``. Returns the version
    found (0 for a new store)."""
    found = read_version(conn, name, adopt=adopt)
    for version in range(found + 1, SCHEMA_VERSION + 1):
        for statement in MIGRATIONS[version - 1]:
            conn.execute(statement)
        conn.execute(
            "INSERT OR REPLACE INTO sagafsm_meta (key, value) VALUES ('schema_version', ?)",
            (version,),
        )
    return found


# -- the statements, and the functions that run them on a connection's thread ----------

# The write lock is taken at BEGIN: a transaction cannot fail half-way because another process
# wrote first (a deferred one upgrading to write can, and busy_timeout does not help it then).
BEGIN: Final = "BEGIN IMMEDIATE"
COMMIT: Final = "COMMIT"
ROLLBACK: Final = "ROLLBACK"
INSERT_SAGA: Final = (
    "INSERT INTO sagafsm_sagas (saga_id, definition, state, reason, results, snapshot, "
    "started_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)
UPDATE_SAGA: Final = (
    "UPDATE sagafsm_sagas SET state = ?, reason = ?, results = ?, snapshot = ?, parked = ?, "
    "updated_at = ? WHERE saga_id = ?"
)
SAGA_EXISTS: Final = "SELECT 1 FROM sagafsm_sagas WHERE saga_id = ?"
INSERT_OUTBOX: Final = "INSERT INTO sagafsm_outbox (saga_id, message) VALUES (?, ?)"
LAST_ID: Final = "SELECT last_insert_rowid()"  # after executemany: the last outbox id
# The timers' primary key: arming replaces the saga's one armed timer.
ARM: Final = "INSERT OR REPLACE INTO sagafsm_timers (saga_id, timer_id, due) VALUES (?, ?, ?)"
CANCEL: Final = "DELETE FROM sagafsm_timers WHERE saga_id = ?"
APPEND: Final = "INSERT INTO sagafsm_trace (records) VALUES (?)"
# Inbound transport rows handled by this batch leave with it: a crash redelivers both or neither.
CONSUME: Final = "DELETE FROM sagafsm_messages WHERE id = ?"
SENT: Final = "DELETE FROM sagafsm_outbox WHERE id BETWEEN ? AND ?"
BOOT: Final = "UPDATE sagafsm_meta SET value = value + 1 WHERE key = 'boot' RETURNING value"
UNSENT: Final = "SELECT id, saga_id, message FROM sagafsm_outbox ORDER BY id"
RUNNING: Final = (
    "SELECT saga_id, definition, snapshot FROM sagafsm_sagas WHERE snapshot IS NOT NULL "
    "ORDER BY start_seq"
)
TIMERS: Final = "SELECT saga_id, timer_id, due FROM sagafsm_timers ORDER BY due, saga_id"
STATUS_COLUMNS: Final = (
    "SELECT saga_id, definition, state, reason, results, snapshot, started_at, updated_at, "
    "resolution, CASE WHEN parked IS NULL THEN NULL ELSE 1 END FROM sagafsm_sagas"
)
STATUS: Final = STATUS_COLUMNS + " WHERE saga_id = ?"
SAGAS: Final = STATUS_COLUMNS + " ORDER BY start_seq"
TRACE: Final = "SELECT records FROM sagafsm_trace ORDER BY seq"
PRUNE: Final = (
    "DELETE FROM sagafsm_sagas WHERE snapshot IS NULL AND updated_at < ?"
    " AND NOT (state = 'operator_required' AND resolution IS NULL)"
)
"""A saga waiting for an operator stays until it is resolved, however old."""
# The WHERE makes a second resolve (another operator at the same moment) change nothing.
RESOLVE: Final = (
    "UPDATE sagafsm_sagas SET resolution = ? WHERE saga_id = ? AND state = ? AND resolution IS NULL"
)
# A request only for a parked saga nobody resolved, and one at a time (the primary key).
REQUEST_RETRY: Final = (
    "INSERT OR IGNORE INTO sagafsm_requests (saga_id, note, requested_at) SELECT saga_id, ?, ? "
    "FROM sagafsm_sagas WHERE saga_id = ? AND parked IS NOT NULL AND resolution IS NULL"
)
RETRY_REQUESTS: Final = (
    "SELECT r.saga_id, s.definition, s.parked, r.note FROM sagafsm_requests r "
    "JOIN sagafsm_sagas s ON s.saga_id = r.saga_id WHERE s.parked IS NOT NULL "
    "ORDER BY r.requested_at, r.saga_id"
)
RETRIED: Final = "DELETE FROM sagafsm_requests WHERE saga_id = ?"


def rollback(conn: sqlite3.Connection) -> None:
    if conn.in_transaction:
        conn.execute(ROLLBACK)


def write(conn: sqlite3.Connection, statements: Sequence[tuple[str, list[Any]]]) -> None:
    """One transaction of ``executemany`` calls (empty ones skipped)."""
    conn.execute(BEGIN)
    try:
        for sql, rows in statements:
            if rows:
                conn.executemany(sql, rows)
        conn.execute(COMMIT)
    except BaseException:
        rollback(conn)
        raise


def commit(
    conn: sqlite3.Connection, batch: EncodedBatch, consumed: Sequence[int]
) -> list[OutboxRow]:
    conn.execute(BEGIN)
    try:
        if batch.inserts:
            try:
                conn.executemany(INSERT_SAGA, batch.inserts)
            except sqlite3.IntegrityError:
                rollback(conn)
                for row in batch.inserts:
                    if conn.execute(SAGA_EXISTS, (row[0],)).fetchone():
                        raise InvalidArgument(
                            f"saga {row[0]!r}: started twice (it is already stored)"
                        ) from None
                raise
        updates = batch.updates
        if updates and conn.executemany(UPDATE_SAGA, updates).rowcount != len(updates):
            for row in updates:
                if not conn.execute(SAGA_EXISTS, (row[-1],)).fetchone():
                    raise InvalidArgument(f"saga {row[-1]!r}: a commit for a saga never started")
        rows = []
        if batch.outbox:
            conn.executemany(INSERT_OUTBOX, batch.outbox)
            # Ids are consecutive: AUTOINCREMENT under the write lock this transaction holds.
            next_id = conn.execute(LAST_ID).fetchone()[0] - len(batch.outbox) + 1
            for (saga_id, _), message in zip(batch.outbox, batch.messages, strict=True):
                rows.append(OutboxRow(next_id, saga_id, message))
                next_id += 1
        if batch.timers:
            cancel = []
            arm = []
            for saga_id, timer in batch.timers.items():
                if timer is None:
                    cancel.append((saga_id,))
                else:
                    arm.append((saga_id, timer.timer_id, timer.due))
            if cancel:
                conn.executemany(CANCEL, cancel)
            if arm:
                conn.executemany(ARM, arm)
        if batch.records is not None:
            conn.execute(APPEND, (batch.records,))
        if batch.retried:
            conn.executemany(RETRIED, batch.retried)
        if consumed:
            conn.executemany(CONSUME, [(id_,) for id_ in consumed])
        conn.execute(COMMIT)
    except BaseException:
        rollback(conn)
        raise
    return rows


def runs(ids: Sequence[int]) -> list[tuple[int, int]]:
    """Ids as ``(first, last)`` runs of consecutive ids: a batch's outbox rows are one run, so
    marking them sent is one ranged DELETE."""
    runs: list[tuple[int, int]] = []
    first = last = None
    for id_ in sorted(ids):
        if last is not None and id_ <= last + 1:
            last = id_
            continue
        if first is not None and last is not None:
            runs.append((first, last))
        first = last = id_
    if first is not None and last is not None:
        runs.append((first, last))
    return runs


def boot(conn: sqlite3.Connection) -> int:
    conn.execute(BEGIN)
    try:
        rows = conn.execute(BOOT).fetchall()
        conn.execute(COMMIT)
    except BaseException:
        rollback(conn)
        raise
    value: int = rows[0][0]
    return value


def fetch(conn: sqlite3.Connection, sql: str, parameters: Sequence[Any]) -> list[Any]:
    return conn.execute(sql, parameters).fetchall()


def prune(conn: sqlite3.Connection, finished_before: float) -> int:
    conn.execute(BEGIN)
    try:
        count = conn.execute(PRUNE, (finished_before,)).rowcount
        conn.execute(COMMIT)
    except BaseException:
        rollback(conn)
        raise
    return count


def request_retry(conn: sqlite3.Connection, row: tuple[str, float, str]) -> bool:
    conn.execute(BEGIN)
    try:
        changed = conn.execute(REQUEST_RETRY, row).rowcount == 1
        conn.execute(COMMIT)
    except BaseException:
        rollback(conn)
        raise
    return changed


def resolve(conn: sqlite3.Connection, row: tuple[str, str, str], records: str | None) -> bool:
    conn.execute(BEGIN)
    try:
        changed = conn.execute(RESOLVE, row).rowcount == 1
        if changed and records is not None:
            conn.execute(APPEND, (records,))
        conn.execute(COMMIT)
    except BaseException:
        rollback(conn)
        raise
    return changed
