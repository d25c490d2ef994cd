"""The asyncio orchestrator: the shared orchestration core driven against a real store.

One task, the *loop*, owns the :class:`~sagafsm.orchestration.OrchestrationCore`: it takes a batch
of what is waiting (start requests, replies, fired timers), lets the core make a transaction of
each, commits the batch in **one store transaction** (snapshots, outbox rows, timers, trace
records), and only then publishes the commands and marks their rows sent. Two events of one saga
are never applied at once, because one task applies them all, in arrival order; a batch costs one
commit however many sagas it moves (group commit).

Recovery, when the runtime opens: every unfinished saga is restored from its snapshot, its timer
re-armed from the timer rows, and every unsent outbox row published again. A command that was
published but not marked sent before a crash goes out twice; the participant's inbox makes the
second a no-op. A command that never committed never happened: its saga's timer retries it.

An operator's retry of a saga parked ``operator_required`` by a compensation that gave up is a
request row in the store (:mod:`.retries`): those waiting are applied at open, later ones by the
loop like any other move (the store is asked every ``retry_poll`` seconds).

Time is epoch seconds from the injected clock (:mod:`sagafsm.runtime.clock`), never the event
loop's: snapshots hold absolute due times, and a restarted process must agree with them.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Iterable, Iterator, Mapping, Set
from typing import Any

from ..commands import CancelTimer, StartTimer
from ..definition import SagaDefinition
from ..errors import InvalidArgument, InvalidConfig, SagaError
from ..events import Event, TimerFired
from ..history import RETRY_ACTION, RawRecord
from ..lifecycle import SAGA_LIFECYCLE
from ..messages import ORCHESTRATOR, Envelope
from ..orchestration import NO_RUNNING_SAGA, OrchestrationCore, Transaction, event_for
from . import crashpoints
from .cancelling import cancel_all
from .clock import Clock, WallClock
from .codec import envelope_from_dict
from .commits import commit_of, send_record
from .retries import RetryItem, poll_requests, retry_refusal
from .store import Commit, OutboxRow, SagaStatus, Store
from .timer_table import TimerTable
from .transport import Transport, TransportClosed
from .waiters import FinishWaiters, quiet_future

__all__ = ["Runtime", "SagaFailedToStart"]

log = logging.getLogger(__name__)

_MESSAGE_ID_BLOCK = 2**32
_FINAL_STATES = frozenset(state.value for state in SAGA_LIFECYCLE.terminal)


class SagaFailedToStart(SagaError):
    """The runtime stopped (closed, or its loop died) before it confirmed a start request. The
    saga may still have been committed just before: start it under your own ``saga_id`` and
    look it up with :meth:`Runtime.status` to know."""


class _Start:
    __slots__ = ("accepted", "data", "definition", "saga_id")

    def __init__(
        self,
        definition: SagaDefinition,
        saga_id: str,
        data: Mapping[str, Any] | None,
        accepted: asyncio.Future[str],
    ) -> None:
        self.definition = definition
        self.saga_id = saga_id
        self.data = data
        self.accepted = accepted


class _Inbound:
    __slots__ = ("cause", "event", "receipt", "record")

    def __init__(
        self, event: Event, cause: int | None, receipt: int | None, record: RawRecord | None
    ) -> None:
        self.event = event
        self.cause = cause
        self.receipt = receipt
        self.record = record
        """A record written before the move (``timer_fired``)."""


_STOP: Any = object()
"""Queued by close(): the loop stops once the batch before it is committed and published."""


class Runtime:
    """Run sagas for real: ``async with Runtime(store, transport, [definition]) as runtime``.

    ``store`` must not be open yet (the runtime opens and closes it); ``transport`` carries
    commands to the participants and their replies back (the caller closes it). ``clock`` is the
    wall clock unless given (tests pass a :class:`~sagafsm.runtime.clock.VirtualClock`).
    ``batch_size`` caps how many events one store transaction commits. ``retry_poll`` is how
    often, in seconds, the store is asked for operators' retry requests (``sagafsm retry``).
    """

    _takes_over = True
    """Whether open() takes over every unfinished saga, timer and unsent row of the store (this
    runtime owns it); False for workers sharing a store, which load a saga when they move it
    (:mod:`.postgres_workers`)."""

    def __init__(
        self,
        store: Store,
        transport: Transport,
        definitions: Iterable[SagaDefinition],
        *,
        clock: Clock | None = None,
        batch_size: int = 256,
        retry_poll: float = 1.0,
    ) -> None:
        if batch_size < 1:
            raise InvalidArgument(f"batch_size must be at least 1, got {batch_size!r}")
        if not retry_poll > 0:
            raise InvalidArgument(f"retry_poll must be a positive number, got {retry_poll!r}")
        self._retry_poll = retry_poll
        self._retry_wake = asyncio.Event()
        self._retries_queued: set[str] = set()
        self._retried: dict[str, asyncio.Future[None]] = {}
        self._store = store
        self._transport = transport
        self._core = OrchestrationCore(definitions)
        self._clock: Clock = clock if clock is not None else WallClock()
        self._batch_size = batch_size
        self._queue: asyncio.Queue[_Start | _Inbound | RetryItem] = asyncio.Queue()
        self._timers = TimerTable()
        self._waiters = FinishWaiters()
        self._tasks: list[asyncio.Task[None]] = []
        self._message_ids: Iterator[int] = iter(())
        self._saga_ids: Iterator[int] = iter(())
        self._boot = 0
        self._busy = 0
        self._open = False
        self._closing = False
        self.recovered = 0
        """Unfinished sagas taken over from the store when the runtime opened."""
        self.pruned = 0
        """Finished sagas' statuses dropped past the store's ``retention`` (at open, then as the
        clock passes each tenth of the retention, at most an hour apart)."""
        self._retention = 0.0
        self._prune_due: float | None = None
        self.commits = 0
        """Store transactions committed by the loop (each one a batch)."""
        self.failure: BaseException | None = None
        """What stopped the runtime's loop, timers or receiver, if one of them died."""

    # -- lifecycle -----------------------------------------------------------------------------

    async def __aenter__(self) -> Runtime:
        await self.open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def open(self) -> None:
        """Open the store, recover what it holds, and start the loop, the timers and the
        receiver. Raises (StoreError, InvalidConfig for a stored saga whose definition is not
        registered) before anything in the store changes."""
        if self._open:
            raise InvalidArgument("this runtime is already open")
        await self._store.open()
        try:
            stored = await self._store.running() if self._takes_over else []
            for saga in stored:
                self._core.definition(saga.definition)  # every one known, before any change
            self._boot = await self._store.boot()
        except BaseException:
            await self._store.close()
            raise
        base = self._boot * _MESSAGE_ID_BLOCK
        self._message_ids = itertools.count(base + 1)
        self._saga_ids = itertools.count(1)
        now = self._clock.now()
        first_moves = self._core.recover(
            ((saga.definition, saga.snapshot) for saga in stored), now, resend=False
        )
        self.recovered = len(stored)
        for row in await self._store.timers() if self._takes_over else ():
            self._timers.arm(row.saga_id, row.timer_id, row.due)
        retention = getattr(self._store, "retention", None)
        if isinstance(retention, (int, float)) and retention > 0:
            self._retention = float(retention)
            # Finished sagas' statuses older than the store's retention go (an unresolved
            # operator_required saga stays): the store grows with recent sagas, not all of them.
            self.pruned = await self._store.prune(now - retention)
            self._prune_due = now + self._prune_interval()
        restart: RawRecord = (now, "restart", None, ORCHESTRATOR, len(stored))
        await self._store.append_trace([restart])
        self._open = True
        # A worker sharing the store leaves other workers' rows to its relay (their claims expire).
        unsent = await self._store.unsent() if self._takes_over else []
        for first in range(0, len(unsent), self._batch_size):  # a batch's worth at a time
            await self._publish(unsent[first : first + self._batch_size], [])
        if first_moves:
            await self._commit_and_publish(first_moves, [], [], [])
        # Retries asked for while no runtime ran: applied before open() returns, so a caller
        # can wait() on them at once.
        waiting = await self._store.retry_requests()
        if waiting:
            await self._apply([RetryItem(request) for request in waiting])
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._run_loop(), name="sagafsm-loop"),
            loop.create_task(self._timers.run(self._clock, self.fire_due), name="sagafsm-timers"),
            loop.create_task(self._run_receiver(), name="sagafsm-receiver"),
            loop.create_task(
                poll_requests(
                    self._store,
                    self._queue,
                    self._retry_poll,
                    self._retry_wake,
                    self._retries_queued,
                ),
                name="sagafsm-retries",
            ),
        ]
        for task in self._tasks:
            task.add_done_callback(self._task_ended)

    def _task_ended(self, task: asyncio.Task[None]) -> None:
        """A task that ends on its own (not cancelled) stops the runtime: every caller waiting
        on it is told, rather than left waiting forever."""
        if task.cancelled() or self._closing:
            return
        error = task.exception()
        self.failure = error if error is not None else SagaFailedToStart(f"{task.get_name()} ended")
        self._fail_waiters(self.failure)

    def _fail_waiters(self, error: BaseException) -> None:
        stopped = SagaFailedToStart(f"the runtime stopped: {error!r}")
        # Queued replies are dropped unacknowledged: the transport delivers them again.
        while not self._queue.empty():
            item = self._queue.get_nowait()
            if isinstance(item, _Start) and not item.accepted.done():
                item.accepted.set_exception(stopped)
        self._waiters.fail(stopped)
        for done in self._retried.values():
            if not done.done():
                done.set_exception(stopped)
        self._retried.clear()

    async def abandon(self) -> None:
        """Stop at once, as a killed process would: no batch is finished, nothing is flushed.
        What the store committed stays; a new Runtime on the same store recovers it. (For
        in-process crash tests; a real crash needs no call.)"""
        self._closing = True
        await cancel_all(self._tasks)
        self._tasks = []
        self._open = False
        self._fail_waiters(SagaFailedToStart("the runtime was abandoned"))
        await self._store.close()  # as the dead process's connection would be

    async def close(self) -> None:
        """Stop taking work, finish the batch in flight, and close the store."""
        if not self._open:
            return
        self._closing = True
        loop_task, *others = self._tasks
        # No new replies or timers: the loop finishes its batch and stops. (A task waiting in a
        # connection pool may lose its cancellation: it is cancelled again, see .cancelling.)
        await cancel_all(others)
        self._queue.put_nowait(_STOP)
        await asyncio.gather(loop_task, return_exceptions=True)
        self._tasks = []
        self._open = False
        self._fail_waiters(SagaFailedToStart("the runtime closed first"))
        await self._store.close()

    # -- the public API ------------------------------------------------------------------------

    async def start(
        self,
        definition: SagaDefinition | str,
        data: Mapping[str, Any] | None = None,
        *,
        saga_id: str | None = None,
    ) -> str:
        """Start a saga; returns its id once its first move is committed (durably accepted)."""
        if not self._open or self._closing:
            raise InvalidArgument("the runtime is not open")
        if self.failure is not None:
            raise SagaFailedToStart(f"the runtime stopped: {self.failure!r}")
        if isinstance(definition, str):
            definition = self._core.definition(definition)
        elif definition.name not in self._core.definitions:
            raise InvalidConfig(
                f"saga definition {definition.name!r} is not registered with this runtime"
            )
        if saga_id is None:
            saga_id = f"{definition.name}-{self._boot}-{next(self._saga_ids)}"
        accepted: asyncio.Future[str] = quiet_future()
        self._queue.put_nowait(_Start(definition, saga_id, data, accepted))
        return await accepted

    async def retry(self, saga_id: str, note: str = "") -> None:
        """An operator's retry of a parked saga's compensation (one that gave up): returns once
        the saga is compensating again, committed with an ``operator`` record carrying ``note``.
        :class:`~sagafsm.InvalidArgument`, with nothing changed, if the saga is not parked
        (see :attr:`SagaStatus.retryable`) or has a retry waiting already."""
        if not self._open or self._closing:
            raise InvalidArgument("the runtime is not open")
        if not await self._store.request_retry(saga_id, note, self._clock.now()):
            raise InvalidArgument(retry_refusal(saga_id, await self._store.status(saga_id)))
        done = self._retried.setdefault(saga_id, quiet_future())
        self._retry_wake.set()
        await asyncio.shield(done)

    async def status(self, saga_id: str) -> SagaStatus | None:
        return await self._store.status(saga_id)

    async def wait(self, saga_id: str) -> SagaStatus:
        """The saga's status once it has finished (its ``results`` and ``reason`` set)."""
        waiter = self._waiters.waiter(saga_id)
        if saga_id not in self._core:  # finished already, or not this runtime's: ask the store
            status = await self._store.status(saga_id)
            if status is None or status.state in _FINAL_STATES:
                self._waiters.discard(saga_id, waiter)
                if status is None:
                    raise InvalidArgument(f"no saga {saga_id!r} in this runtime's store")
                return status
        finished = await asyncio.shield(waiter)
        if finished is None:  # recovered at open: its started_at is in the store alone
            finished = await self._store.status(saga_id)
            assert finished is not None
        return finished

    @property
    def running(self) -> int:
        """Sagas held in memory (the unfinished ones)."""
        return len(self._core)

    @property
    def idle(self) -> bool:
        """Nothing queued and no batch in flight (timers may be armed)."""
        return self._busy == 0 and self._queue.empty()

    def next_timer(self) -> float | None:
        """The due time of the earliest armed timer."""
        return self._timers.next_due()

    # -- the loop ------------------------------------------------------------------------------

    async def _run_loop(self) -> None:
        queue, limit = self._queue, self._batch_size
        while True:
            first = await queue.get()
            if first is _STOP:
                return
            self._busy += 1
            try:
                batch = [first]
                while len(batch) < limit and not queue.empty():
                    item = queue.get_nowait()
                    if item is _STOP:
                        queue.put_nowait(item)  # after this batch
                        break
                    batch.append(item)
                await self._apply(batch)
                if self._prune_due is not None and self._clock.now() >= self._prune_due:
                    await self._prune()
            except BaseException as error:
                if not isinstance(error, (asyncio.CancelledError, crashpoints.CrashPointReached)):
                    log.exception("the sagafsm runtime loop failed")
                stopped = SagaFailedToStart(f"the runtime stopped: {error!r}")
                for item in batch:
                    if isinstance(item, _Start) and not item.accepted.done():
                        item.accepted.set_exception(stopped)
                raise
            finally:
                self._busy -= 1

    async def _apply(self, batch: list[_Start | _Inbound | RetryItem]) -> None:
        now = self._clock.now()
        core = self._core
        transactions: list[Transaction] = []
        causes: list[int | None] = []
        accepted: list[_Start] = []
        loose: list[RawRecord] = []
        receipts: list[int] = []
        retried: set[str] = set()
        for item in batch:
            if isinstance(item, RetryItem):
                request = item.request
                try:
                    transaction = core.retry(request.definition, request.snapshot, now)
                except SagaError as error:  # left in the store, for the next start to log
                    log.warning("the retry of saga %r cannot run: %s", request.saga_id, error)
                    continue
                record = (now, "operator", request.saga_id, RETRY_ACTION, request.note)
                transaction.records.insert(0, record)
                retried.add(request.saga_id)
                transactions.append(transaction)
                causes.append(None)
                continue
            if isinstance(item, _Start):
                if item.saga_id in core:
                    item.accepted.set_exception(
                        InvalidArgument(f"a saga {item.saga_id!r} is already running")
                    )
                    continue
                try:
                    transaction = core.start(item.definition, item.saga_id, now, data=item.data)
                except SagaError as error:
                    item.accepted.set_exception(error)
                    continue
                accepted.append(item)
                self._waiters.started(item.saga_id, now)
                transaction.records.insert(0, (now, "start", item.saga_id, item.definition.name))
                transactions.append(transaction)
                causes.append(None)
                continue
            if item.receipt is not None:
                receipts.append(item.receipt)
            found = core.handle(item.event, now)
            if found is not None and found.changed:
                if item.record is not None:
                    found.records.insert(0, item.record)
                transactions.append(found)
                causes.append(item.cause)
                continue
            if item.record is not None:
                loose.append(item.record)
            if found is None:
                event = item.event
                loose.append((now, "ignored", event.saga_id, type(event).__name__, NO_RUNNING_SAGA))
            else:
                loose.extend(found.records)
        await self._commit_and_publish(transactions, causes, loose, receipts, retried)
        for item in accepted:
            if not item.accepted.done():
                item.accepted.set_result(item.saga_id)
        for saga_id in retried:
            self._retries_queued.discard(saga_id)
            done = self._retried.pop(saga_id, None)
            if done is not None and not done.done():
                done.set_result(None)

    async def _commit_and_publish(
        self,
        transactions: list[Transaction],
        causes: list[int | None],
        loose: list[RawRecord],
        receipts: list[int],
        retried: Set[str] = frozenset(),
    ) -> None:
        commits: list[Commit] = []
        envelopes: list[Envelope] = []
        finished: list[Commit] = []
        message_id = self._message_ids.__next__
        for at, transaction in enumerate(transactions):
            cause = causes[at] if at < len(causes) else None
            saga_id = transaction.saga_id
            commit, sent = commit_of(transaction, cause, message_id, retried=saga_id in retried)
            commits.append(commit)
            envelopes += sent
            if transaction.finished is not None:
                finished.append(commit)
        rows = await self._commit(commits)
        if receipts:
            await self._transport.ack(ORCHESTRATOR, receipts)
        for transaction in transactions:
            timer = transaction.timer
            if isinstance(timer, StartTimer):
                self._timers.arm(transaction.saga_id, timer.timer_id, transaction.now + timer.delay)
            elif isinstance(timer, CancelTimer):
                self._timers.cancel(transaction.saga_id)
        for commit in finished:
            self._finish(commit)
        await self._publish(rows, loose, envelopes if len(envelopes) == len(rows) else None)

    async def _commit(self, commits: list[Commit]) -> list[OutboxRow]:
        """The store transaction (a broken variant overrides this to publish first)."""
        crashpoints.hit("orchestrator.before_commit")
        rows = await self._store.commit(commits) if commits else []
        self.commits += 1
        crashpoints.hit("orchestrator.after_commit")
        return rows

    async def _publish(
        self,
        rows: list[OutboxRow],
        loose: list[RawRecord],
        envelopes: list[Envelope] | None = None,
    ) -> None:
        """Send committed outbox rows, then mark them sent (with their ``send`` records).
        ``envelopes`` are the rows' messages when the caller still holds them (no decoding)."""
        if not rows and not loose:
            return
        if envelopes is None:
            envelopes = [envelope_from_dict(row.message) for row in rows]
        if envelopes:
            # One call for the batch: one transaction on a transport that has a database.
            await self._transport.send_many(envelopes)
        now = self._clock.now()
        records = list(loose)
        records += [send_record(now, envelope) for envelope in envelopes]
        crashpoints.hit("orchestrator.after_publish")
        await self._store.mark_sent([row.id for row in rows], records)

    def _prune_interval(self) -> float:
        # A tenth of the retention: a status outlives it by 10% at most; an hour at the most,
        # so a store with a long retention is not pruned in one big transaction.
        return min(self._retention / 10, 3600.0)

    async def _prune(self) -> None:
        """Between batches, as the loop is the store's one writer here: the statuses of sagas
        finished more than the retention ago go (the store keeps unresolved operator_required
        ones). The loop runs it only while it works: an idle runtime adds nothing to prune."""
        now = self._clock.now()
        self.pruned += await self._store.prune(now - self._retention)
        self._prune_due = now + self._prune_interval()

    def _finish(self, commit: Commit) -> None:
        self._core.drop(commit.saga_id)
        self._timers.cancel(commit.saga_id)
        self._waiters.finished(commit)

    # -- timers --------------------------------------------------------------------------------

    def fire_due(self) -> int:
        """Queue a TimerFired for every armed timer due by the clock's now; returns how many."""
        now = self._clock.now()
        fired = self._timers.pop_due(now)
        for saga_id, timer_id in fired:
            event = TimerFired(saga_id=saga_id, timer_id=timer_id)
            record = (now, "timer_fired", saga_id, timer_id)
            self._queue.put_nowait(_Inbound(event, None, None, record))
        return len(fired)

    # -- replies -------------------------------------------------------------------------------

    async def _run_receiver(self) -> None:
        transport, limit, put = self._transport, self._batch_size, self._queue.put_nowait
        while True:
            await self._before_receive()
            try:
                # What has come in, up to a batch, in one call: one wake-up for many replies.
                deliveries = await transport.receive_many(ORCHESTRATOR, limit)
            except TransportClosed:
                return
            dropped: list[int] = []
            for delivery in deliveries:
                message = delivery.message
                try:
                    event = event_for(message)
                except SagaError:
                    log.warning("dropped a message that is not a reply: %r", message)
                    if delivery.receipt is not None:
                        dropped.append(delivery.receipt)
                    continue
                put(_Inbound(event, message.message_id, delivery.receipt, None))
            if dropped:
                await transport.ack(ORCHESTRATOR, dropped)

    async def _before_receive(self) -> None:
        """Called before each batch is taken (a worker sharing the store holds back here)."""
