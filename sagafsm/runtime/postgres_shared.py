"""The PostgreSQL store as several orchestrator workers share it (:mod:`.postgres_workers`).

A single :class:`~sagafsm.runtime.runtime.Runtime` owns its store: it holds every unfinished
saga in memory, fires their timers from memory and publishes whatever the outbox holds when it
opens. Workers that share one store cannot: a saga may move on any of them, a timer must fire on
exactly one, and an outbox row another worker is publishing right now is not an orphan. So this
store adds, on top of :class:`~sagafsm.runtime.postgres_store.PostgresStore`:

- :meth:`SharedPostgresStore.locked`: a transaction that first takes the row locks of the sagas
  a batch moves (``SELECT ... FOR UPDATE``, in saga id order so that two batches cannot
  deadlock) and reads their latest snapshots, then commits the batch on the same connection.
  A worker decides each move on the snapshot it holds the lock of: two workers never apply two
  events of one saga at once, and none decides on a snapshot another one has since replaced.
- claims: outbox rows come claimed by the worker that committed them, until ``claim_lease``
  seconds past the commit; :meth:`claim_outbox` (a relay) takes only rows whose claim ran out
  (their worker died), :meth:`claim_timers` only due timers nobody holds, each with
  ``FOR UPDATE SKIP LOCKED`` (a row another worker is claiming right now is skipped, not waited
  for) and under the same lease. Claims use the workers' clock (epoch seconds), as due times do.

The trace stays in causal order: a batch's records draw their ``seq`` inside its transaction,
after its sagas' locks are taken, so everything a commit caused (the next move of its saga,
a participant's effect of a command it sent) draws a later ``seq``. Records of unrelated
transactions interleave in whatever order they drew; the checkers judge each saga on its own.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from typing import Any, Final

import psycopg

from ..errors import InvalidArgument
from .postgres_inbox import Connection, begin
from .postgres_schema import CONSUME
from .postgres_store import PostgresStore
from .store import Commit, OutboxRow, StoredSaga, TimerRow
from .store_encoding import EncodedBatch, loads

__all__ = ["SharedPostgresStore", "LockedSagas", "DEFAULT_CLAIM_LEASE"]

DEFAULT_CLAIM_LEASE: Final = 5.0
"""Seconds a claimed outbox row or timer stays with its worker: longer than a batch takes on a
loaded machine, short enough that a dead worker's work is taken over while steps still retry."""

LOCK_SAGAS: Final = """
    SELECT saga_id, definition, snapshot FROM sagafsm_sagas
    WHERE saga_id = ANY(%b::text[]) ORDER BY saga_id FOR UPDATE"""
"""Finished sagas too (snapshot NULL): a start of a stored saga is refused before the commit."""

LOCK_REQUESTS: Final = (
    "SELECT saga_id FROM sagafsm_requests WHERE saga_id = ANY(%b::text[]) FOR UPDATE"
)
"""An operator's retry another worker applied first is gone: it is not applied twice."""

CLAIM_OUTBOX: Final = """
    UPDATE sagafsm_outbox AS o SET claimed_until = %s
    FROM (SELECT id FROM sagafsm_outbox WHERE claimed_until <= %s ORDER BY id LIMIT %s
          FOR UPDATE SKIP LOCKED) AS free
    WHERE o.id = free.id
    RETURNING o.id, o.saga_id, o.message"""

CLAIM_TIMERS: Final = """
    UPDATE sagafsm_timers AS t SET claimed_until = %s
    FROM (SELECT saga_id FROM sagafsm_timers WHERE due <= %s AND claimed_until <= %s
          ORDER BY due LIMIT %s FOR UPDATE SKIP LOCKED) AS free
    WHERE t.saga_id = free.saga_id
    RETURNING t.saga_id, t.timer_id, t.due"""

NEXT_CLAIMABLE: Final = "SELECT min(greatest(due, claimed_until)) FROM sagafsm_timers"
"""When the next timer can be claimed: its due time, or its claim's end if a worker holds it."""

FINISHED_AMONG: Final = (
    "SELECT saga_id FROM sagafsm_sagas WHERE saga_id = ANY(%b::text[]) AND snapshot IS NULL"
)


class LockedSagas:
    """The open transaction of one batch: ``rows`` the locked rows of the sagas it moves
    (saga id: definition and snapshot text, None once finished), ``stored`` every id of the
    batch the store holds (finished ones too), ``retries`` the operators' requests still
    waiting. :meth:`commit` writes and commits; ``written`` is then each committed saga's
    snapshot text, as stored (None: finished)."""

    def __init__(
        self,
        store: SharedPostgresStore,
        conn: Connection,
        rows: Sequence[tuple[Any, ...]],
        retries: set[str],
        consumed: Sequence[int] = (),
    ) -> None:
        self._store = store
        self._conn = conn
        self._consumed = consumed
        self.rows: dict[str, tuple[str, str | None]] = {i: (name, snap) for i, name, snap in rows}
        self.stored = set(self.rows)
        self.retries = retries
        self.committed = False
        self.written: dict[str, str | None] = {}

    @property
    def sagas(self) -> list[StoredSaga]:
        """The unfinished ones, their snapshots decoded."""
        return [StoredSaga(i, name, loads(snap)) for i, (name, snap) in self.rows.items() if snap]

    async def commit(self, commits: Sequence[Commit]) -> list[OutboxRow]:
        store, batch = self._store, EncodedBatch(commits)
        rows = await store._commit_on(
            self._conn, batch, self._consumed, store._claimed_until(commits)
        )
        self.committed = True
        self.written = {row[0]: row[5] for row in batch.inserts}
        self.written.update((row[-1], row[3]) for row in batch.updates)
        return rows


class SharedPostgresStore(PostgresStore):
    """:class:`PostgresStore` for several workers (module docstring). ``claim_lease`` is how
    long, in seconds, a worker's claim on an outbox row or a timer lasts; the other options are
    :class:`PostgresStore`'s."""

    def __init__(self, url: str, *, claim_lease: float = DEFAULT_CLAIM_LEASE, **options: Any):
        super().__init__(url, **options)
        if isinstance(claim_lease, bool) or not isinstance(claim_lease, int | float):
            raise InvalidArgument(f"{self.name}: claim_lease must be seconds, got {claim_lease!r}")
        if not 0 < claim_lease < float("inf"):
            raise InvalidArgument(f"{self.name}: claim_lease must be > 0, got {claim_lease!r}")
        self.claim_lease = float(claim_lease)

    def _claimed_until(self, commits: Sequence[Commit]) -> float:
        return max((commit.now for commit in commits), default=0.0) + self.claim_lease

    _lock_sagas: str = LOCK_SAGAS
    """The locking read (a broken variant reads without the lock)."""
    _lock_requests: str = LOCK_REQUESTS
    """The operators' requests still waiting, locked (a broken variant takes every one given as
    waiting, and applies a request another worker applied already)."""

    @contextlib.asynccontextmanager
    async def locked(
        self, saga_ids: Sequence[str], retries: Sequence[str] = (), consumed: Sequence[int] = ()
    ) -> AsyncIterator[LockedSagas]:
        """A transaction holding the row locks of ``saga_ids`` (see the module docstring),
        rolled back on an exception, committed by :meth:`LockedSagas.commit` (or on a clean
        exit, if nothing was committed: the locks are let go). ``consumed`` are transport rows
        (replies) the transaction deletes, whether it commits moves or not."""
        async with self._open_pool().connection() as conn:
            try:
                async with conn.pipeline():
                    await begin(conn)
                    sagas = await conn.execute(self._lock_sagas, (sorted(set(saga_ids)),))
                    requests = None
                    if retries:
                        requests = await conn.execute(self._lock_requests, (list(retries),))
                    rows = await sagas.fetchall()
                    waiting = {row[0] for row in await requests.fetchall()} if requests else set()
                held = LockedSagas(self, conn, rows, waiting, consumed)
                yield held
                if not held.committed:
                    if consumed:
                        await conn.execute(CONSUME, (list(consumed),))
                    await conn.commit()
            except BaseException:
                with contextlib.suppress(psycopg.Error):
                    await conn.rollback()
                raise

    async def claim_outbox(self, now: float, limit: int) -> list[OutboxRow]:
        """Outbox rows nobody holds (their worker died before it marked them sent), claimed for
        ``claim_lease`` seconds: this worker publishes them."""
        rows = await self._fetch(CLAIM_OUTBOX, (now + self.claim_lease, now, limit))
        return [OutboxRow(i, saga_id, loads(message)) for i, saga_id, message in sorted(rows)]

    async def claim_timers(self, now: float, limit: int) -> tuple[list[TimerRow], float | None]:
        """Due timers nobody holds, claimed for ``claim_lease`` seconds (this worker fires
        them), and when the next one can be claimed (None: no timer armed)."""
        # Two statements in one round trip; the second is a hint, it need not agree with the first.
        async with self._open_pool().connection() as conn:
            async with conn.pipeline():
                until = now + self.claim_lease
                claimed = await conn.execute(CLAIM_TIMERS, (until, now, now, limit))
                following = await conn.execute(NEXT_CLAIMABLE)
            rows = await claimed.fetchall()
            after = await following.fetchone()
        timers = [TimerRow(saga_id, timer_id, due) for saga_id, timer_id, due in rows]
        return sorted(timers, key=lambda t: (t.due, t.saga_id)), after[0] if after else None

    async def finished_among(self, saga_ids: Sequence[str]) -> list[str]:
        """Which of ``saga_ids`` have finished (on any worker)."""
        if not saga_ids:
            return []
        return [row[0] for row in await self._fetch(FINISHED_AMONG, (list(saga_ids),))]
