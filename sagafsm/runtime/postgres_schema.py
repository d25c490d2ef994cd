"""The PostgreSQL store's schema, its numbered migrations, and every statement the store runs.

The tables are the SQLite store's (:mod:`.sqlite_schema`), column for column, in the database's
current schema (``search_path``), every name starting with ``sagafsm_``. JSON values are kept as
the same compact ASCII JSON text both other stores keep (``text``, not ``jsonb``: ``jsonb``
refuses a lone surrogate that JSON text can hold, and re-orders keys).

:func:`migrate` runs in one transaction under a transaction-scoped advisory lock, so that two
processes opening a new store at once do not both create it; it reads the version first and
refuses a database that is not a store or is newer before it changes anything.
"""

from __future__ import annotations

from typing import Final

import psycopg

from .errors import StoreError

__all__ = ["SCHEMA_VERSION", "MIGRATIONS", "migrate", "read_version"]

_V1: Final = (
    "CREATE TABLE sagafsm_meta (key text PRIMARY KEY, value bigint NOT NULL)",
    "INSERT INTO sagafsm_meta (key, value) VALUES ('boot', 0)",
    # start_seq from a sequence: a new saga sorts after every older one (start order), pruned or
    # not. saga_id UNIQUE makes a second start of one saga a refusal, not an overwrite.
    """CREATE TABLE sagafsm_sagas (
        start_seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        saga_id text NOT NULL UNIQUE,
        definition text NOT NULL,
        state text NOT NULL,
        reason text,
        results text,
        snapshot text,
        started_at double precision NOT NULL,
        updated_at double precision NOT NULL,
        resolution text)""",
    # An identity is never handed out twice, even by a transaction that rolled back.
    """CREATE TABLE sagafsm_outbox (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        saga_id text NOT NULL,
        message text NOT NULL)""",
    # The primary key is the "at most one armed timer per saga" rule.
    """CREATE TABLE sagafsm_timers (
        saga_id text PRIMARY KEY,
        timer_id text NOT NULL,
        due double precision NOT NULL)""",
    "CREATE INDEX sagafsm_timers_due ON sagafsm_timers (due)",
    """CREATE TABLE sagafsm_trace (
        seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        records text NOT NULL)""",
    # The primary key deduplicates: one entry per (participant, idempotency key). reason is the
    # JSON of the string: a handler's free text may hold NUL, which PostgreSQL text cannot.
    """CREATE TABLE sagafsm_inbox (
        participant text NOT NULL,
        key text NOT NULL,
        kind text NOT NULL,
        outcome text,
        result text,
        reason text NOT NULL,
        PRIMARY KEY (participant, key))""",
    # The PostgreSQL transport's queue, created here so that a store commit can always delete
    # the rows it consumed in the same transaction.
    """CREATE TABLE sagafsm_messages (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        dest text NOT NULL,
        body text NOT NULL,
        visible_at double precision NOT NULL DEFAULT 0)""",
    "CREATE INDEX sagafsm_messages_dest ON sagafsm_messages (dest, id)",
)

_V2: Final = (
    # The snapshot of a saga parked operator_required by a compensation that gave up, kept for
    # an operator's retry (recovery reads only ``snapshot``); NULL otherwise.
    "ALTER TABLE sagafsm_sagas ADD COLUMN parked text",
    # Operators' retry requests (sagafsm retry), one per saga; the runtime's commit that applies
    # one deletes it.
    """CREATE TABLE sagafsm_requests (
        saga_id text PRIMARY KEY,
        note text NOT NULL,
        requested_at double precision NOT NULL)""",
)

_V3: Final = (
    # Several orchestrator workers on one store (:mod:`.postgres_workers`): a row is claimed by
    # moving ``claimed_until`` (the workers' clock, epoch seconds) ahead; nobody else takes it
    # before then, and a dead worker's claim runs out. 0 means unclaimed.
    "ALTER TABLE sagafsm_outbox ADD COLUMN claimed_until double precision NOT NULL DEFAULT 0",
    "ALTER TABLE sagafsm_timers ADD COLUMN claimed_until double precision NOT NULL DEFAULT 0",
)

MIGRATIONS: Final[tuple[tuple[str, ...], ...]] = (_V1, _V2, _V3)
"""Migration ``n`` (from 1) brings a store from schema ``n - 1`` to ``n``, inside the migrating
transaction. Append only; never edit a released one."""

SCHEMA_VERSION: Final = len(MIGRATIONS)

_LOCK: Final = "SELECT pg_advisory_xact_lock(hashtextextended('sagafsm schema', 0))"
"""Held by a migrating transaction: a second process opening a new store waits, then finds it."""

_TABLES: Final = (
    "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"
)


async def read_version(conn: psycopg.AsyncConnection[tuple[object, ...]], name: str,
                       *, adopt: bool = False) -> int:  # fmt: skip
    """The schema version of the store ``conn`` is on: 0 for a database still to be created.

    Raises :class:`StoreError` for a schema of tables of its own and no ``sagafsm_meta`` (unless
    ``adopt``), and for a version newer than :data:`SCHEMA_VERSION`."""
    tables = [str(row[0]) for row in await (await conn.execute(_TABLES)).fetchall()]
    if "sagafsm_meta" not in tables:
        foreign = sorted(t for t in tables if not t.startswith("sagafsm_"))
        if foreign and not adopt:
            shown = ", ".join(foreign[:3]) + (", ..." if len(foreign) > 3 else "")
            raise StoreError(
                f"{name}: not a sagafsm store (it has tables {shown}); to add sagafsm's tables "
                "to this application database, open it with PostgresStore(url, adopt=True)"
            )
        return 0
    cursor = await conn.execute("SELECT value FROM sagafsm_meta WHERE key = 'schema_version'")
    row = await cursor.fetchone()
    if row is None or not isinstance(row[0], int):
        raise StoreError(f"{name}: not a sagafsm store (sagafsm_meta has no schema_version)")
    version: int = row[0]
    if version > SCHEMA_VERSION:
        raise StoreError(
            f"{name}: this store was written by a newer sagafsm "
            f"(schema {version}, this one reads up to {SCHEMA_VERSION})"
        )
    return version


async def migrate(conn: psycopg.AsyncConnection[tuple[object, ...]], name: str,
                  *, adopt: bool = False, upgrade: bool = True) -> int:  # fmt: skip
    """Check, then create or upgrade the schema, in one transaction; returns the version found.
    ``upgrade=False`` changes nothing and refuses a store older than this code."""
    async with conn.transaction():
        await conn.execute(_LOCK)
        found = await read_version(conn, name, adopt=adopt)
        if not upgrade and found < SCHEMA_VERSION:
            if found == 0:
                raise StoreError(f"{name}: not a sagafsm store (it holds no schema)")
            raise StoreError(
                f"{name}: its schema is version {found}, older than this sagafsm's "
                f"{SCHEMA_VERSION}; this command does not upgrade it (a runtime of this version "
                "does, when it opens the store)"
            )
        for version in range(found + 1, SCHEMA_VERSION + 1):
            for statement in MIGRATIONS[version - 1]:
                await conn.execute(statement)
            await conn.execute(
                "INSERT INTO sagafsm_meta (key, value) VALUES ('schema_version', %s) "
                "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
                (version,),
            )
    return found


# -- the orchestrator's statements ---------------------------------------------------------------
# Batches arrive as columns (one array per column) and each statement handles the whole batch:
# one round trip per statement, however many sagas the batch holds. Arrays go in binary (%b):
# the text format escapes every quote of every JSON value, in Python, and cost more than SQL.

INSERT_SAGAS: Final = """
    INSERT INTO sagafsm_sagas (saga_id, definition, state, reason, results, snapshot,
                               started_at, updated_at)
    SELECT saga_id, definition, state, reason, results, snapshot, started_at, updated_at
    FROM unnest(%b::text[], %b::text[], %b::text[], %b::text[], %b::text[], %b::text[],
                %b::float8[], %b::float8[]) WITH ORDINALITY
         AS u(saga_id, definition, state, reason, results, snapshot, started_at, updated_at, ord)
    ORDER BY ord
    ON CONFLICT (saga_id) DO NOTHING
    RETURNING saga_id"""
"""A saga already stored is not inserted (and not returned): the caller refuses the batch."""

UPDATE_SAGAS: Final = """
    UPDATE sagafsm_sagas AS s
    SET state = u.state, reason = u.reason, results = u.results, snapshot = u.snapshot,
        parked = u.parked, updated_at = u.updated_at
    FROM unnest(%b::text[], %b::text[], %b::text[], %b::text[], %b::text[], %b::float8[],
                %b::text[])
         AS u(state, reason, results, snapshot, parked, updated_at, saga_id)
    WHERE s.saga_id = u.saga_id
    RETURNING s.saga_id"""
"""One row per saga (the caller keeps each saga's last update). The UPDATE's row lock holds a
saga's row to the commit: two processes moving one saga take turns."""

INSERT_OUTBOX: Final = """
    INSERT INTO sagafsm_outbox (saga_id, message, claimed_until)
    SELECT saga_id, message, %s FROM unnest(%b::text[], %b::text[]) WITH ORDINALITY
         AS u(saga_id, message, ord)
    ORDER BY ord
    RETURNING id"""
"""Identities are drawn in ``ord`` order: sorted, the ids returned follow the batch's order.
The rows come claimed until the first parameter: the committing worker publishes them itself,
and other workers' relays leave them alone unless it dies (:mod:`.postgres_workers`)."""

ARM: Final = """
    INSERT INTO sagafsm_timers (saga_id, timer_id, due)
    SELECT * FROM unnest(%b::text[], %b::text[], %b::float8[])
    ON CONFLICT (saga_id) DO UPDATE SET timer_id = EXCLUDED.timer_id, due = EXCLUDED.due,
        claimed_until = 0"""
"""A timer armed again is a new timer: unclaimed, whoever claimed the one it replaces."""
CANCEL: Final = "DELETE FROM sagafsm_timers WHERE saga_id = ANY(%b::text[])"
APPEND: Final = "INSERT INTO sagafsm_trace (records) VALUES (%s)"
# Inbound transport rows handled by this batch leave with it: a crash redelivers both or neither.
CONSUME: Final = "DELETE FROM sagafsm_messages WHERE id = ANY(%b::bigint[])"
SENT: Final = "DELETE FROM sagafsm_outbox WHERE id = ANY(%b::bigint[])"
SENT_APPEND: Final = f"WITH sent AS ({SENT}) {APPEND}"
"""Rows marked sent and their ``send`` records, in one statement."""
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
STATUS: Final = STATUS_COLUMNS + " WHERE saga_id = %s"
SAGAS: Final = STATUS_COLUMNS + " ORDER BY start_seq"
SAGAS_IN: Final = STATUS_COLUMNS + " WHERE state = ANY(%b::text[]) ORDER BY start_seq"
TRACE: Final = "SELECT records FROM sagafsm_trace ORDER BY seq"
PRUNE: Final = (
    "DELETE FROM sagafsm_sagas WHERE snapshot IS NULL AND updated_at < %s"
    " AND NOT (state = 'operator_required' AND resolution IS NULL)"
)
"""A saga waiting for an operator stays until it is resolved, however old."""
# The WHERE makes a second resolve (another operator at the same moment) change nothing.
RESOLVE: Final = (
    "UPDATE sagafsm_sagas SET resolution = %s "
    "WHERE saga_id = %s AND state = %s AND resolution IS NULL"
)
# A request only for a parked saga nobody resolved, and one at a time (the primary key).
REQUEST_RETRY: Final = (
    "INSERT INTO sagafsm_requests (saga_id, note, requested_at) SELECT saga_id, %s, %s "
    "FROM sagafsm_sagas WHERE saga_id = %s AND parked IS NOT NULL AND resolution IS NULL "
    "ON CONFLICT (saga_id) DO NOTHING"
)
RETRY_REQUESTS: Final = (
    "SELECT r.saga_id, s.definition, s.parked, r.note FROM sagafsm_requests r "
    "JOIN sagafsm_sagas s ON s.saga_id = r.saga_id WHERE s.parked IS NOT NULL "
    "ORDER BY r.requested_at, r.saga_id"
)
RETRIED: Final = "DELETE FROM sagafsm_requests WHERE saga_id = ANY(%b::text[])"

# -- the participants' statements -----------------------------------------------------------------

LOCK_KEYS: Final = """
    SELECT pg_advisory_xact_lock(h) FROM (
        SELECT DISTINCT hashtextextended(participant || '/' || key, 0) AS h
        FROM unnest(%b::text[], %b::text[]) AS u(participant, key)
        ORDER BY h) AS sorted"""
"""Closes the read-decide-write race of two processes handling one key: the second waits for
the first's commit, then reads its inbox row. Sorted, so that two batches cannot deadlock; a
statement of its own, because a statement reads with the snapshot it started with."""

INBOX_GET: Final = """
    SELECT u.participant, u.key, i.kind, i.outcome, i.result, i.reason
    FROM unnest(%b::text[], %b::text[]) AS u(participant, key)
    LEFT JOIN sagafsm_inbox AS i ON i.participant = u.participant AND i.key = u.key"""

INBOX_PUT: Final = """
    INSERT INTO sagafsm_inbox (participant, key, kind, outcome, result, reason)
    SELECT * FROM unnest(%b::text[], %b::text[], %b::text[], %b::text[], %b::text[], %b::text[])
    ON CONFLICT (participant, key) DO UPDATE SET kind = EXCLUDED.kind,
        outcome = EXCLUDED.outcome, result = EXCLUDED.result, reason = EXCLUDED.reason"""
"""The inbox's primary key: one entry per (participant, key); a later entry replaces it."""
