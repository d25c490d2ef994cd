"""The simulated orchestrator: drives the sans-IO engine over the simulated network.

It saves each saga's snapshot to the store *before* sending the commands the new state implies
(outbox order). A crash wipes its memory (running sagas, timers); at restart it reloads every
unfinished saga from the store and re-sends what was in flight, under the same idempotency keys.
"""

from __future__ import annotations

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
from ..messages import Envelope, MessageKind, Outcome
from ..stores import SagaStore
from .network import ORCHESTRATOR, Network
from .timers import Timers
from .trace import Trace

__all__ = ["SimOrchestrator", "TraceRecorder"]


class TraceRecorder:
    """The engine's :class:`~sagafsm.Recorder`: transitions and ignored events go to the trace."""

    __slots__ = ("_record", "saga_transition")

    def __init__(
        self, trace: Trace, saga_transition: Callable[[float, SagaState, SagaState], None]
    ) -> None:
        self._record = trace.record
        self.saga_transition = saga_transition

    def transition(
        self, now: float, saga_id: str, step: str | None, trigger: str, source: Any, dest: Any
    ) -> None:
        self._record(now, "transition", saga_id, step, trigger, source.value, dest.value)
        if step is None:
            self.saga_transition(now, source, dest)

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
        recorder: TraceRecorder,
        saga_data: Callable[[str], Mapping[str, Any]],
        on_finished: Callable[[str, SagaState, str | None], None],
    ) -> None:
        self._env = env
        self._definition = definition
        self._network = network
        self._store = store
        self._trace = trace
        self._recorder = recorder
        self._saga_data = saga_data
        self._on_finished = on_finished
        self._sagas: dict[str, SagaInstance] = {}
        self._waiting: list[str] = []
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
        saga = SagaInstance(self._definition, saga_id, recorder=self._recorder)
        self._sagas[saga_id] = saga
        self._commit(saga, saga.start(self._env.now))

    def crash(self) -> None:
        if not self.up:
            return
        self.up = False
        self.crashes += 1
        self._network.set_down(ORCHESTRATOR, "orchestrator_down")
        self._sagas.clear()
        self.timers.reset()
        self._trace.record(self._env.now, "crash", None, ORCHESTRATOR)

    def restart(self) -> None:
        if self.up:
            return
        self.up = True
        self._network.set_down(ORCHESTRATOR, None)
        now = self._env.now
        recovered = 0
        for saga_id, (snapshot, _) in self._store.load_all():
            saga = SagaInstance.restore(self._definition, snapshot, recorder=self._recorder)
            self._sagas[saga_id] = saga
            recovered += 1
            self._commit(saga, saga.resume(now))
        self._trace.record(now, "restart", None, ORCHESTRATOR, recovered)
        waiting, self._waiting = self._waiting, []
        for saga_id in waiting:
            self.start(saga_id)

    # -- inbound -------------------------------------------------------------------------------

    def _receive(self, message: Envelope) -> None:
        now = self._env.now
        saga_id = message.saga_id
        saga = self._sagas.get(saga_id)
        succeeded = message.outcome is Outcome.SUCCEEDED
        event: Event
        if message.kind is MessageKind.ACTION_REPLY:
            key = message.idempotency_key
            event = (
                StepSucceeded(saga_id=saga_id, step=message.step, idempotency_key=key)
                if succeeded
                else StepFailed(saga_id=saga_id, step=message.step, idempotency_key=key)
            )
        else:
            event = (
                CompensationSucceeded(saga_id=saga_id, step=message.step)
                if succeeded
                else CompensationFailed(saga_id=saga_id, step=message.step)
            )
        if saga is None:
            self._recorder.ignored(now, saga_id, event, "no running saga with that id")
            return
        self._commit(saga, saga.handle(event, now))

    def _timer_fired(self, saga_id: str, timer_id: str) -> None:
        now = self._env.now
        self._trace.record(now, "timer_fired", saga_id, timer_id)
        saga = self._sagas[saga_id]
        self._commit(saga, saga.handle(TimerFired(saga_id=saga_id, timer_id=timer_id), now))

    # -- outbound ------------------------------------------------------------------------------

    def _commit(self, saga: SagaInstance, commands: list[Command]) -> None:
        if not commands:
            return  # nothing changed (an ignored event)
        saga_id = saga.saga_id
        data = self._saga_data(saga_id)
        if saga.finished:
            self._store.delete(saga_id)
        else:
            self._store.save(saga_id, saga.snapshot(), data)
        for command in commands:
            self._dispatch(command, data)

    def _dispatch(self, command: Command, data: Mapping[str, Any]) -> None:
        network = self._network
        if isinstance(command, ExecuteStep):
            network.send(
                Envelope(
                    message_id=network.next_message_id(),
                    kind=MessageKind.EXECUTE,
                    saga_id=command.saga_id,
                    causation_id=None,
                    idempotency_key=command.idempotency_key,
                    source=ORCHESTRATOR,
                    dest=command.participant,
                    step=command.step,
                    operation=command.action,
                    attempt=command.attempt,
                    payload=data,
                )
            )
        elif isinstance(command, CompensateStep):
            network.send(
                Envelope(
                    message_id=network.next_message_id(),
                    kind=MessageKind.COMPENSATE,
                    saga_id=command.saga_id,
                    causation_id=None,
                    idempotency_key=command.idempotency_key,
                    source=ORCHESTRATOR,
                    dest=command.participant,
                    step=command.step,
                    operation=command.compensation,
                    attempt=command.attempt,
                    action_key=command.action_key,
                    payload=data,
                )
            )
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
            del self._sagas[command.saga_id]
            self._on_finished(command.saga_id, command.state, command.reason)
