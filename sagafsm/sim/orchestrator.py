"""The simulated orchestrator: drives the sans-IO engine over the simulated network.

Each event is one transaction: the engine's new state (its snapshot) and the commands it implies.
The transaction commits when the store write completes (``store_latency`` later; at once when it is
0): only then are its commands sent and its lifecycle transitions recorded (outbox order). A crash
loses every transaction not yet committed and the orchestrator's memory; at restart it reloads
every unfinished saga from the store and re-sends what was in flight, under the same idempotency
keys. Start requests count as accepted only once their first transaction commits; those lost in a
crash are retried by the client when the orchestrator is back.

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

from ..commands import (
    CancelTimer,
    Command,
    CompensateStep,
    ExecuteStep,
    SagaFinished,
    StartTimer,
)
from ..definition import SagaDefinition
from ..engine import SagaInstance
from ..events import (
    CompensationFailed,
    CompensationSucceeded,
    Event,
    StepFailed,
    StepSucceeded,
    TimerFired,
)
from ..lifecycle import SagaState
from ..messages import NO_PAYLOAD, Envelope, MessageKind, Outcome
from ..stores import SagaStore
from .network import ORCHESTRATOR, Network
from .timers import Timers
from .trace import Record, Trace

__all__ = ["SimOrchestrator", "TraceRecorder"]


class TraceRecorder:
    """The engine's :class:`~sagafsm.Recorder`: transitions and ignored events go to the trace,
    or, while a transaction is open, to its buffer (written when it commits). Committed
    transitions also feed the run's counters: saga moves (occupancy) and triggers (retries...)."""

    __slots__ = ("_record", "buffer", "saga_moved", "triggers")

    def __init__(self, trace: Trace, saga_moved: Callable[[float, str, str], None]) -> None:
        self._record = trace.record
        self.buffer: list[Record] | None = None
        self.saga_moved = saga_moved
        self.triggers: Counter[tuple[str, str]] = Counter()
        """(lifecycle, trigger) -> committed transitions."""

    def transition(
        self, now: float, saga_id: str, step: str | None, trigger: str, source: Any, dest: Any
    ) -> None:
        # ``_value_`` is the member's plain attribute; ``.value`` is a slower descriptor
        record = (now, "transition", saga_id, step, trigger, source._value_, dest._value_)
        if self.buffer is None:
            self.emit(record)
        else:
            self.buffer.append(record)

    def emit(self, record: Record) -> None:
        self._record(*record)
        if record[3] is None:
            self.triggers["saga", record[4]] += 1
            self.saga_moved(record[0], record[5], record[6])
        else:
            self.triggers["step", record[4]] += 1

    def ignored(self, now: float, saga_id: str, event: Event, reason: str) -> None:
        self._record(now, "ignored", saga_id, type(event).__name__, reason)


class SimOrchestrator:
    def __init__(
        self,
        env: simpy.Environment,
        definition: SagaDefinition,
        network: Network,
        store: SagaStore,
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
        self._recorder = self.recorder = TraceRecorder(trace, saga_moved)
        self._saga_data = saga_data
        self._on_finished = on_finished
        self._store_latency = store_latency
        self._engine = engine
        self._send_before_save = send_before_save
        self._sagas: dict[str, SagaInstance] = {}
        self._waiting: list[str] = []
        """Start requests not accepted yet (the orchestrator is down, or was when they came)."""
        self._unaccepted: set[str] = set()
        self._epoch = 0
        self.timers = Timers(env, self._timer_fired)
        self.up = True
        self.crashes = 0
        network.register(ORCHESTRATOR, self._receive)

    def __len__(self) -> int:
        return len(self._sagas)

    def start(self, saga_id: str) -> None:
        """A new saga request. While the orchestrator is down, requests wait for its restart."""
        if not self.up:
            self._waiting.append(saga_id)
            return
        saga = self._engine(
            self._definition, saga_id, data=self._saga_data(saga_id), recorder=self._recorder
        )
        self._sagas[saga_id] = saga
        self._unaccepted.add(saga_id)
        self._transaction(saga, saga.start)

    def crash(self) -> bool:
        """Go down, losing memory and uncommitted work; False if it was already down."""
        if not self.up:
            return False
        self.up = False
        self.crashes += 1
        self._epoch += 1  # uncommitted transactions die with the process
        self._network.set_down(ORCHESTRATOR, "orchestrator_down")
        self._sagas.clear()
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
        recovered = 0
        for saga_id, (snapshot, _) in self._store.load_all():
            saga = self._engine.restore(self._definition, snapshot, recorder=self._recorder)
            self._sagas[saga_id] = saga
            recovered += 1
            self._transaction(saga, saga.resume)
        self._trace.record(now, "restart", None, ORCHESTRATOR, recovered)
        waiting, self._waiting = self._waiting, []
        for saga_id in waiting:
            self.start(saga_id)

    # -- inbound -------------------------------------------------------------------------------

    def _receive(self, message: Envelope) -> None:
        saga_id = message.saga_id
        succeeded = message.outcome is Outcome.SUCCEEDED
        event: Event
        step = message.step
        if message.kind is MessageKind.ACTION_REPLY:
            key = message.idempotency_key
            if succeeded:
                event = StepSucceeded(
                    saga_id=saga_id, step=step, result=message.result or {}, idempotency_key=key
                )
            else:
                event = StepFailed(
                    saga_id=saga_id, step=step, reason=message.reason, idempotency_key=key
                )
        elif succeeded:
            event = CompensationSucceeded(saga_id=saga_id, step=step)
        else:
            event = CompensationFailed(
                saga_id=saga_id, step=step, reason=message.reason, attempt=message.attempt
            )
        saga = self._sagas.get(saga_id)
        if saga is None:
            self._recorder.ignored(self._env.now, saga_id, event, "no running saga with that id")
            return
        self._transaction(saga, lambda now: saga.handle(event, now), message.message_id)

    def _timer_fired(self, saga_id: str, timer_id: str) -> None:
        self._trace.record(self._env.now, "timer_fired", saga_id, timer_id)
        saga = self._sagas[saga_id]
        event = TimerFired(saga_id=saga_id, timer_id=timer_id)
        self._transaction(saga, lambda now: saga.handle(event, now))

    # -- transactions --------------------------------------------------------------------------

    def _transaction(
        self,
        saga: SagaInstance,
        step: Callable[[float], list[Command]],
        cause: int | None = None,
    ) -> None:
        """Run one engine step; commit its state and commands (see the module docstring).

        ``cause`` is the id of the message that set it off: the commands carry it as their
        causation id."""
        now = self._env.now
        if not self._store_latency:
            self._commit(saga, step(now), cause)
            return
        recorder = self._recorder
        buffer: list[Record] = []
        recorder.buffer = buffer
        try:
            commands = step(now)
        finally:
            recorder.buffer = None
        if not commands:
            return
        snapshot = None if saga.finished else saga.snapshot()
        data = self._saga_data(saga.saga_id)
        if self._send_before_save:
            self._publish(saga.saga_id, commands, cause, buffer)
            buffer = []
        value = (self._epoch, saga, snapshot, commands, cause, data)
        delay = self._env.timeout(self._store_latency, value)
        delay.callbacks.append(lambda event: self._stored(event, buffer))

    def _stored(self, event: simpy.Event, records: list[Record]) -> None:
        epoch, saga, snapshot, commands, cause, data = event.value  # type: ignore[misc]
        if epoch != self._epoch:
            return  # the orchestrator crashed before the write completed: it never happened
        self._save(saga.saga_id, snapshot, data)
        if not self._send_before_save:
            self._publish(saga.saga_id, commands, cause, records)

    def _commit(self, saga: SagaInstance, commands: list[Command], cause: int | None) -> None:
        if not commands:
            return  # nothing changed (an ignored event)
        data = self._saga_data(saga.saga_id)
        self._save(saga.saga_id, None if saga.finished else saga.snapshot(), data)
        self._publish(saga.saga_id, commands, cause, None)

    def _save(self, saga_id: str, snapshot: dict[str, Any] | None, data: Mapping[str, Any]) -> None:
        if snapshot is None:
            self._store.delete(saga_id)
        else:
            self._store.save(saga_id, snapshot, data)

    def _publish(
        self,
        saga_id: str,
        commands: list[Command],
        cause: int | None,
        records: list[Record] | None,
    ) -> None:
        self._unaccepted.discard(saga_id)
        if records:
            # The transaction's transitions happen when it commits: that is when they are
            # durable, and when its commands leave.
            emit, now = self._recorder.emit, self._env.now
            for fields in records:
                emit((now, *fields[1:]))
        for command in commands:
            self._dispatch(command, cause)

    def _dispatch(self, command: Command, cause: int | None) -> None:
        if isinstance(command, (ExecuteStep, CompensateStep)):
            self._send(command, cause)
        elif isinstance(command, StartTimer):
            self._trace.record(
                self._env.now,
                "timer",
                command.saga_id,
                command.timer_id,
                command.delay,
                command.purpose.value,
                command.step,
            )
            self.timers.arm(command.saga_id, command.timer_id, command.delay)
        elif isinstance(command, CancelTimer):
            self.timers.cancel(command.saga_id)
        elif isinstance(command, SagaFinished):
            self.timers.forget(command.saga_id)
            self._sagas.pop(command.saga_id, None)
            self._on_finished(command.saga_id, command.state, command.reason)

    def _send(self, command: ExecuteStep | CompensateStep, cause: int | None) -> None:
        network = self._network
        if isinstance(command, ExecuteStep):
            kind, operation, action_key = MessageKind.EXECUTE, command.action, None
            results, action_result = command.results, None
        else:
            kind, operation, action_key = (
                MessageKind.COMPENSATE,
                command.compensation,
                command.action_key,
            )
            results, action_result = NO_PAYLOAD, command.action_result
        message = Envelope(
            message_id=network.next_message_id(),
            kind=kind,
            saga_id=command.saga_id,
            causation_id=cause,
            idempotency_key=command.idempotency_key,
            source=ORCHESTRATOR,
            dest=command.participant,
            step=command.step,
            operation=operation,
            attempt=command.attempt,
            action_key=action_key,
            data=command.data,
            results=results,
            action_result=action_result,
        )
        network.send(message)


def _creation_order(saga_id: str) -> tuple[int, str]:
    digits = saga_id.lstrip("s")
    return (int(digits), saga_id) if digits.isdigit() else (0, saga_id)
