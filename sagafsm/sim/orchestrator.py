"""The simulated orchestrator: drives the shared orchestration core over the simulated network.

:class:`~sagafsm.orchestration.OrchestrationCore` decides (one :class:`Transaction` per event);
this module plays the store and the clock around it. A transaction commits when the store write
completes (``store_latency`` later; at once when it is 0): only then are its commands sent and its
lifecycle transitions recorded (outbox order). A crash loses every transaction not yet committed
and the orchestrator's memory; at restart it reloads every unfinished saga from the store and
re-sends what was in flight, under the same idempotency keys. Start requests count as accepted only
once their first transaction commits; those lost in a crash are retried by the client when the
orchestrator is back.

Data flows as the engine says: each saga is created with its input data (from the load
generator), commands go out as envelopes carrying the data and the earlier results (an action) or
the action's result (a compensation), and replies come back as events carrying the result
(``StepSucceeded.result``) or the reason of a failure (``StepFailed.reason``).

The ``send_before_save`` switch exists only for the mutant of the same name: it sends commands
(and accepts start requests) before the store write, as a naive orchestrator would.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any

import simpy

from ..commands import CancelTimer, Command, CompensateStep, ExecuteStep, SagaFinished, StartTimer
from ..definition import SagaDefinition
from ..engine import SagaInstance
from ..events import Event, TimerFired
from ..lifecycle import SagaState
from ..messages import ORCHESTRATOR, Message, WireMessage
from ..orchestration import (
    NO_RUNNING_SAGA,
    OrchestrationCore,
    Transaction,
    envelope_for,
    event_for,
    timer_record,
)
from .network import Network
from .store import SnapshotStore
from .timers import Timers
from .trace import Record, Trace

__all__ = ["SimOrchestrator", "TraceCounters"]


class TraceCounters:
    """Writes committed transitions to the trace, and counts them for the run: saga moves
    (occupancy) and triggers (retries...)."""

    __slots__ = ("_add_all", "saga_moved", "triggers")

    def __init__(self, trace: Trace, saga_moved: Callable[[float, str, str], None]) -> None:
        self._add_all = trace.add_all
        self.saga_moved = saga_moved
        self.triggers: Counter[tuple[str, str]] = Counter()
        """(lifecycle, trigger) -> committed transitions."""

    def emit(self, record: Record) -> None:
        self.emit_all([record])

    def emit_all(self, records: list[Record]) -> None:
        """:meth:`emit` each of ``records``, in order (one call for a whole move)."""
        self._add_all(records)
        triggers, moved = self.triggers, self.saga_moved
        for record in records:
            if record[1] == "transition":
                if record[3] is None:
                    triggers["saga", record[4]] += 1
                    moved(record[0], record[5], record[6])
                else:
                    triggers["step", record[4]] += 1


class SimOrchestrator:
    def __init__(
        self,
        env: simpy.Environment,
        definition: SagaDefinition,
        network: Network,
        store: SnapshotStore,
        trace: Trace,
        saga_data: Callable[[str], Mapping[str, Any]],
        on_finished: Callable[[str, SagaState, str | None], None],
        saga_moved: Callable[[float, str, str], None],
        *,
        store_latency: float = 0.0,
        engine: type[SagaInstance] = SagaInstance,
        send_before_save: bool = False,
    ) -> None:
        self._env = env
        self._definition = definition
        self._network = network
        self._store = store
        self._trace = trace
        # At zero latency every move commits as it is made: the store keeps the live saga
        # instead of a snapshot per move (see SnapshotStore).
        self._core = OrchestrationCore([definition], engine=engine, snapshots=store_latency > 0)
        self.recorder = self._counters = TraceCounters(trace, saga_moved)
        self._saga_data = saga_data
        self._on_finished = on_finished
        self._store_latency = store_latency
        self._send_before_save = send_before_save
        self._waiting: list[str] = []
        """Start requests not accepted yet (the orchestrator is down, or was when they came)."""
        self._unaccepted: set[str] = set()
        self._epoch = 0
        self.timers = Timers(env, self._timer_fired)
        self._carriers: dict[type, Callable[[Any, int | None], None]] = {
            ExecuteStep: self._send,
            CompensateStep: self._send,
            StartTimer: self._start_timer,
            CancelTimer: self._cancel_timer,
            SagaFinished: self._finished,
        }
        """What carries out each command class (see :meth:`_dispatch`)."""
        self.up = True
        self.crashes = 0
        network.register(ORCHESTRATOR, self._receive)

    def __len__(self) -> int:
        return len(self._core)

    def start(self, saga_id: str) -> None:
        """A new saga request. While the orchestrator is down, requests wait for its restart."""
        if not self.up:
            self._waiting.append(saga_id)
            return
        self._unaccepted.add(saga_id)
        now = self._env.now
        self._transaction(
            self._core.start(self._definition, saga_id, now, data=self._saga_data(saga_id))
        )

    def crash(self) -> bool:
        """Go down, losing memory and uncommitted work; False if it was already down."""
        if not self.up:
            return False
        self.up = False
        self.crashes += 1
        self._epoch += 1  # uncommitted transactions die with the process
        self._network.set_down(ORCHESTRATOR, "orchestrator_down")
        self._core.crash()
        self.timers.reset()
        self._waiting.extend(sorted(self._unaccepted, key=_creation_order))
        self._unaccepted.clear()
        self._trace.record(self._env.now, "crash", None, ORCHESTRATOR)
        return True

    def restart(self) -> None:
        if self.up:
            return
        self.up = True
        self._network.set_down(ORCHESTRATOR, None)
        now = self._env.now
        # The simulated store keeps snapshots only (no outbox rows): every saga re-sends what it
        # has in flight.
        name = self._definition.name
        stored = ((name, snapshot) for snapshot in self._store.load_all())
        transactions = self._core.recover(stored, now, resend=True)
        for transaction in transactions:
            self._transaction(transaction)
        self._trace.record(now, "restart", None, ORCHESTRATOR, len(transactions))
        waiting, self._waiting = self._waiting, []
        for saga_id in waiting:
            self.start(saga_id)

    # -- inbound -------------------------------------------------------------------------------

    def _receive(self, message: Message) -> None:
        # the participant checked and copied its service's result (SimParticipant._apply)
        self._handle(event_for(message, checked=True), message.message_id)

    def _timer_fired(self, saga_id: str, timer_id: str) -> None:
        self._trace.record(self._env.now, "timer_fired", saga_id, timer_id)
        self._handle(TimerFired(saga_id=saga_id, timer_id=timer_id), None)

    def _handle(self, event: Event, cause: int | None) -> None:
        now = self._env.now
        transaction = self._core.handle(event, now)
        if transaction is None:
            self._trace.record(now, "ignored", event.saga_id, type(event).__name__, NO_RUNNING_SAGA)
            return
        self._transaction(transaction, cause)

    # -- transactions --------------------------------------------------------------------------

    def _transaction(self, transaction: Transaction, cause: int | None = None) -> None:
        """Commit one engine move and then publish it (see the module docstring).

        ``cause`` is the id of the message that set it off: the commands carry it as their
        causation id."""
        records = transaction.records
        if not self._store_latency:
            self._counters.emit_all(records)
            if transaction.changed:
                self._save(transaction)
                self._publish(transaction, cause, [])
            return
        # Ignored events are recorded as they happen; the move's transitions when it commits.
        committed: list[Record] = []
        for record in records:
            if record[1] == "transition":
                committed.append(record)
            else:
                self._trace.add(record)
        if not transaction.changed:
            return
        if self._send_before_save:
            # Its transitions still happen when the write completes (if it ever does): the trace
            # shows participants acting on moves not yet committed, as a real store would.
            self._publish(transaction, cause, [])
        delay = self._env.timeout(self._store_latency, (self._epoch, transaction, cause))
        delay.callbacks.append(lambda event: self._stored(event, committed))

    def _stored(self, event: simpy.Event, records: list[Record]) -> None:
        epoch, transaction, cause = event.value  # type: ignore[misc]
        if epoch != self._epoch:
            return  # the orchestrator crashed before the write completed: it never happened
        self._save(transaction)
        if self._send_before_save:
            self._emit_committed(records)
        else:
            self._publish(transaction, cause, records)

    def _save(self, transaction: Transaction) -> None:
        saga, snapshot = transaction.saga, transaction.snapshot
        if snapshot is not None:
            self._store.save(saga.saga_id, snapshot)
        elif self._store_latency or saga.finished:
            # a snapshot is taken of every unfinished saga's move unless the commit is immediate
            self._store.delete(saga.saga_id)
        else:
            self._store.save(saga.saga_id, saga)

    def _publish(self, transaction: Transaction, cause: int | None, records: list[Record]) -> None:
        self._unaccepted.discard(transaction.saga_id)
        if records:
            self._emit_committed(records)
        for command in transaction.commands:
            self._dispatch(command, cause)

    def _emit_committed(self, records: list[Record]) -> None:
        """A transaction's transitions happen when it commits: that is when they are durable
        (and, but for the send-before-save mutant, when its commands leave)."""
        emit, now = self._counters.emit, self._env.now
        for fields in records:
            emit((now, *fields[1:]))

    def _dispatch(self, command: Command, cause: int | None) -> None:
        # by exact class, one dict look-up: the engine builds these classes, never subclasses
        carry = self._carriers.get(command.__class__)
        if carry is not None:
            carry(command, cause)
            return
        for kind, carry in self._carriers.items():  # a subclass: found once, then cached
            if isinstance(command, kind):
                self._carriers[command.__class__] = carry
                carry(command, cause)
                return

    def _send(self, command: ExecuteStep | CompensateStep, cause: int | None) -> None:
        network = self._network
        network.send(envelope_for(command, network.next_message_id(), cause, WireMessage))

    def _start_timer(self, command: StartTimer, cause: int | None) -> None:
        self._trace.add(timer_record(self._env.now, command))
        self.timers.arm(command.saga_id, command.timer_id, command.delay)

    def _cancel_timer(self, command: CancelTimer, cause: int | None) -> None:
        self.timers.cancel(command.saga_id)

    def _finished(self, command: SagaFinished, cause: int | None) -> None:
        self.timers.forget(command.saga_id)
        self._core.drop(command.saga_id)
        self._on_finished(command.saga_id, command.state, command.reason)


def _creation_order(saga_id: str) -> tuple[int, str]:
    digits = saga_id.lstrip("s")
    return (int(digits), saga_id) if digits.isdigit() else (0, saga_id)
