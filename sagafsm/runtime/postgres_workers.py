"""Several orchestrator workers on one PostgreSQL store: :class:`WorkerRuntime`.

Each worker is a :class:`~sagafsm.runtime.runtime.Runtime` (the same loop, the same
orchestration core, the same commits and trace records) that owns nothing but what it holds the
lock of (:mod:`.postgres_shared`):

- **Per-saga serialisation.** For each batch the worker takes the row locks of the sagas the
  batch moves and reads their latest snapshots in the transaction that commits the batch. Two
  workers never apply two events of one saga at once, and a reply or timer that another worker
  already answered is found stale in the fresh snapshot. A saga this worker committed stays in
  its memory (the last ``keep`` of them): when it next moves it here and the locked row still
  holds the very snapshot text it wrote, nobody moved it since, and it is not decoded and
  restored again; any other text (another worker's move, its finish) replaces it.
- **Replies** come from the PostgreSQL transport's ``orchestrator`` queue, claimed in batches
  with ``SKIP LOCKED``: any worker takes any reply.
- **The outbox.** A worker publishes the rows it committed (in one transport transaction) and
  deletes them; they stay claimed by it for the store's ``claim_lease`` meanwhile. A relay task
  on every worker claims rows whose claim ran out (their worker died) and publishes them: a row
  is sent twice only when a worker died between publishing and marking it sent, or outlived its
  lease, and the participants' inboxes make the repeat a no-op.
- **Timers** fire from the store's timer rows, each claimed under the lease by one worker:
  a worker wakes for the timers it armed, and polls for the rest (a dead worker's, once its claim
  ran out). A timer fired twice after a lapse is stale in the second snapshot and ignored.
- **Waiting.** ``wait()`` is answered when this worker commits the finish, or when a poll of the
  store finds another worker did.

Starts are refused for a saga the store already holds (finished or not), before the commit.
Workers' clocks must agree to well within the lease: due times and claims are epoch seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict
from collections.abc import Iterable
from typing import Any, Final

import psycopg

from ..definition import SagaDefinition
from ..errors import InvalidArgument
from ..events import TimerFired
from ..history import RawRecord
from ..messages import Envelope
from . import crashpoints
from .cancelling import wait_set
from .codec import envelope_from_dict
from .commits import send_record
from .postgres_shared import LockedSagas, SharedPostgresStore
from .retries import RetryItem
from .runtime import Runtime, _Inbound, _Start
from .store import Commit, OutboxRow, SagaStatus
from .store_encoding import loads
from .transport import Transport

__all__ = ["WorkerRuntime"]

log = logging.getLogger(__name__)

_CONFLICTS: Final = (psycopg.errors.DeadlockDetected, psycopg.errors.SerializationFailure)
"""What PostgreSQL aborts a transaction with when two of them wait on each other: nothing was
committed, and the batch is applied again from the start."""
_MAX_ATTEMPTS: Final = 5
_MIN_WAIT: Final = 0.005


class WorkerRuntime(Runtime):
    """One of several workers sharing ``store`` (module docstring); the API is the
    :class:`Runtime`'s. ``timer_poll``, ``relay_poll`` and ``finish_poll`` are how often, in
    seconds at most, the worker looks for timers it did not arm, for outbox rows left by a dead
    worker, and for sagas it waits for that others finished."""

    _takes_over = False
    keep: int = 4096
    """Sagas this worker committed that it holds in memory at most (see the module docstring)."""

    def __init__(
        self,
        store: SharedPostgresStore,
        transport: Transport,
        definitions: Iterable[SagaDefinition],
        *,
        timer_poll: float = 0.5,
        relay_poll: float = 0.5,
        finish_poll: float = 0.05,
        **options: Any,
    ) -> None:
        """``options`` are :class:`Runtime`'s (``clock``, ``batch_size``, ``retry_poll``)."""
        if not isinstance(store, SharedPostgresStore):
            raise InvalidArgument(f"workers share a SharedPostgresStore, got {store!r}")
        for name, value in (
            ("timer_poll", timer_poll),
            ("relay_poll", relay_poll),
            ("finish_poll", finish_poll),
        ):
            if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
                raise InvalidArgument(f"{name} must be a positive number, got {value!r}")
        super().__init__(store, transport, definitions, **options)
        self._shared = store
        self._timer_poll = float(timer_poll)
        self._relay_poll = float(relay_poll)
        self._finish_poll = float(finish_poll)
        self._timer_wake = asyncio.Event()
        self._watching: set[str] = set()
        self._held: LockedSagas | None = None
        self._written: OrderedDict[str, str] = OrderedDict()
        """The snapshot text this worker last committed, per saga held in its core (oldest
        first): the saga's instance is current while the store holds that text."""
        self.conflicts = 0
        """Batches PostgreSQL aborted for a deadlock and this worker applied again."""

    async def open(self) -> None:
        await super().open()
        loop = asyncio.get_running_loop()
        for work, name in (
            (self._claim_timers(), "sagafsm-timer-claims"),
            (self._relay(), "sagafsm-relay"),
            (self._watch_finishes(), "sagafsm-finishes"),
        ):
            task = loop.create_task(work, name=name)
            task.add_done_callback(self._task_ended)
            self._tasks.append(task)

    async def wait(self, saga_id: str) -> SagaStatus:
        self._watching.add(saga_id)
        try:
            if not self._waiters.started_here(saga_id):
                return await super().wait(saga_id)
            # Started here: its finish is this worker's commit or the poll's find, no read now.
            finished = await asyncio.shield(self._waiters.waiter(saga_id))
        finally:
            self._watching.discard(saga_id)
        if finished is None:  # finished on another worker: its status is in the store
            finished = await self._store.status(saga_id)
            assert finished is not None
        return finished

    # -- a batch under its sagas' locks -----------------------------------------------------

    async def _apply(self, batch: list[_Start | _Inbound | RetryItem]) -> None:
        # The replies' rows are deleted by the batch's own commit (a crash keeps both or
        # neither), not acked after it in a transaction of their own.
        receipts = [i.receipt for i in batch if isinstance(i, _Inbound) and i.receipt is not None]
        batch = [
            _Inbound(i.event, i.cause, None, i.record)
            if isinstance(i, _Inbound) and i.receipt is not None
            else i
            for i in batch
        ]
        retries = [item.request.saga_id for item in batch if isinstance(item, RetryItem)]
        ids = {
            item.saga_id if isinstance(item, _Start) else item.event.saga_id
            for item in batch
            if not isinstance(item, RetryItem)
        }
        ids.update(retries)
        for attempt in range(1, _MAX_ATTEMPTS + 1):
            held: LockedSagas | None = None
            try:
                async with self._shared.locked(sorted(ids), retries, receipts) as held:
                    await self._apply_held(batch, held, ids)
                self._keep(held)
                return
            except _CONFLICTS:
                self._forget_all()
                if attempt == _MAX_ATTEMPTS or (held is not None and held.committed):
                    raise
                self.conflicts += 1  # rolled back whole: nothing of it happened
            except BaseException:
                self._forget_all()  # the store's snapshots are the truth
                raise
            finally:
                self._held = None

    async def _apply_held(
        self, batch: list[_Start | _Inbound | RetryItem], held: LockedSagas, ids: set[str]
    ) -> None:
        kept: list[_Start | _Inbound | RetryItem] = []
        for item in batch:
            if isinstance(item, _Start) and item.saga_id in held.stored:
                if not item.accepted.done():
                    item.accepted.set_exception(
                        InvalidArgument(f"a saga {item.saga_id!r} is already stored")
                    )
                continue
            if isinstance(item, RetryItem) and item.request.saga_id not in held.retries:
                self._retries_queued.discard(item.request.saga_id)  # another worker applied it
                continue
            kept.append(item)
        core, written, fresh = self._core, self._written, []
        for saga_id in ids - held.rows.keys():  # not stored (finished elsewhere and pruned, say)
            core.drop(saga_id)
            written.pop(saga_id, None)
        for saga_id, (name, snapshot) in held.rows.items():
            if snapshot is not None and self._current(saga_id, snapshot):
                continue
            core.drop(saga_id)
            written.pop(saga_id, None)
            if snapshot is not None:
                fresh.append((name, loads(snapshot)))
        core.recover(fresh, self._clock.now(), resend=False)
        self._held = held
        await super()._apply(kept)

    def _current(self, saga_id: str, snapshot: str) -> bool:
        """Whether the instance held of ``saga_id`` is the stored ``snapshot``: the store holds
        the text this worker wrote last (a broken variant trusts any instance held)."""
        return self._written.get(saga_id) == snapshot and saga_id in self._core

    def _keep(self, held: LockedSagas) -> None:
        """After a batch: hold what it committed, let go of what it only read (a stale event
        touched it), and of the oldest past ``keep``."""
        core, written = self._core, self._written
        for saga_id in held.rows.keys() - held.written.keys():
            core.drop(saga_id)
            written.pop(saga_id, None)
        for saga_id, snapshot in held.written.items():
            written.pop(saga_id, None)
            if snapshot is None:  # finished: the core dropped it
                continue
            written[saga_id] = snapshot
        while len(written) > self.keep:
            saga_id, _ = written.popitem(last=False)
            core.drop(saga_id)

    def _forget_all(self) -> None:
        self._core.crash()
        self._written.clear()

    async def _commit(self, commits: list[Commit]) -> list[OutboxRow]:
        held = self._held
        assert held is not None, "a worker commits only under its batch's locks"
        crashpoints.hit("orchestrator.before_commit")
        rows = await held.commit(commits) if commits else []
        self.commits += 1
        crashpoints.hit("orchestrator.after_commit")
        return rows

    async def _prune(self) -> None:
        with contextlib.suppress(*_CONFLICTS):  # another worker prunes the same rows: its turn
            await super()._prune()

    async def _publish(
        self,
        rows: list[OutboxRow],
        loose: list[RawRecord],
        envelopes: list[Envelope] | None = None,
    ) -> None:
        """As the :class:`Runtime`'s, with the batch's commands in one transport transaction."""
        if not rows and not loose:
            return
        now = self._clock.now()
        if envelopes is None:
            envelopes = [envelope_from_dict(row.message) for row in rows]
        await self._transport.send_many(envelopes)
        records = [*loose, *(send_record(now, envelope) for envelope in envelopes)]
        crashpoints.hit("orchestrator.after_publish")
        await self._store.mark_sent([row.id for row in rows], records)

    # -- what other workers left, and what no worker holds ----------------------------------

    def fire_due(self) -> int:
        """The timers this worker armed are hints: when one is due, claim the due timers from
        the store (another worker may have fired it already)."""
        if self._timers.pop_due(self._clock.now()):
            self._timer_wake.set()
        return 0

    async def _claim_timers(self) -> None:
        while True:
            self._timer_wake.clear()
            now = self._clock.now()
            rows, after = await self._shared.claim_timers(now, self._batch_size)
            for row in rows:
                event = TimerFired(saga_id=row.saga_id, timer_id=row.timer_id)
                record = (now, "timer_fired", row.saga_id, row.timer_id)
                self._queue.put_nowait(_Inbound(event, None, None, record))
            if len(rows) == self._batch_size:
                continue
            wait = self._timer_poll if after is None else min(self._timer_poll, after - now)
            # Not asyncio.wait_for: on Python 3.11 it can swallow close()'s cancellation when
            # a hint is due at that moment, and this loop would never end (.cancelling).
            await wait_set(self._timer_wake, max(wait, _MIN_WAIT))

    async def _relay(self) -> None:
        while True:
            rows = await self._shared.claim_outbox(self._clock.now(), self._batch_size)
            if rows:
                await self._publish(rows, [])
            if len(rows) < self._batch_size:
                await asyncio.sleep(self._relay_poll)

    async def _watch_finishes(self) -> None:
        while True:
            await asyncio.sleep(self._finish_poll)
            if self._watching:
                for saga_id in await self._shared.finished_among(sorted(self._watching)):
                    self._waiters.finished_elsewhere(saga_id)

    async def _before_receive(self) -> None:
        """Replies are claimed a batch at a time, and no more while the loop has a batch's worth
        queued, so that claims do not outlive their lease unhandled."""
        while self._queue.qsize() >= self._batch_size:
            await asyncio.sleep(_MIN_WAIT)
