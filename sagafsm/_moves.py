"""How one saga moves: the primitives under :class:`~sagafsm.engine.SagaInstance`.

:class:`SagaMoves` fires lifecycle triggers (through the shared machines of :mod:`._machine`),
builds the commands a move implies, and arms or cancels the saga's one timer. What an event
*means* (which move to make) is decided in :mod:`sagafsm.engine`; nothing here reacts to events.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from ._machine import SAGA_MACHINE, STEP_MACHINE
from .commands import (
    CancelTimer,
    Command,
    CompensateStep,
    ExecuteStep,
    SagaFinished,
    StartTimer,
    action_key,
    compensation_key,
)
from .definition import SagaDefinition
from .errors import IllegalTransition, InvalidArgument
from .events import EVENT_TYPES, Event, StepFailed, StepSucceeded
from .lifecycle import STEP_LIFECYCLE, SagaState, StepState, TimerPurpose

__all__ = ["Recorder", "StepRun", "SagaMoves", "refuse_event"]

_P = TimerPurpose
_EXECUTING, _COMPENSATING = StepState.EXECUTING, StepState.COMPENSATING


class Recorder(Protocol):
    """Receives the engine's trace records. Drivers implement it; the engine only calls it."""

    def transition(
        self,
        now: float,
        saga_id: str,
        step: str | None,
        trigger: str,
        source: Any,
        dest: Any,
    ) -> None:
        """A lifecycle moved: ``step`` is None for the saga's own lifecycle."""

    def ignored(self, now: float, saga_id: str, event: Event, reason: str) -> None:
        """An event changed nothing (late, duplicate, unknown reply; stale timer)."""


class StepRun:
    """The run-time state of one step of one saga: the model the step machine drives."""

    __slots__ = ("attempt", "compensation_attempt", "generation", "result", "state")

    def __init__(self) -> None:
        self.state = STEP_LIFECYCLE.initial
        self.attempt = 0
        self.compensation_attempt = 0
        self.generation = 0
        """Bumped when a retriable step failed: its retry needs a fresh idempotency key."""
        self.result: Mapping[str, Any] | None = None
        """What the action's success reply carried; None until one arrived."""


class SagaMoves:
    """The state of one saga and the moves it can make; :class:`SagaInstance` drives it."""

    __slots__ = (
        "_broken",
        "data",
        "definition",
        "reason",
        "recorder",
        "saga_id",
        "state",
        "steps",
        "timer_due",
        "timer_id",
        "timer_purpose",
        "timer_seq",
        "timer_step",
    )

    definition: SagaDefinition
    saga_id: str
    data: Mapping[str, Any]
    state: SagaState
    reason: str | None
    steps: list[StepRun]
    timer_id: str | None
    timer_purpose: TimerPurpose | None
    timer_step: int
    timer_due: float
    timer_seq: int
    recorder: Recorder | None
    _broken: IllegalTransition | None

    @property
    def results(self) -> dict[str, Mapping[str, Any]]:
        """Each step whose success reply arrived, by name, with its result, in step order."""
        names = self.definition.step_names
        return {
            names[i]: result
            for i, run in enumerate(self.steps)
            if (result := run.result) is not None
        }

    def _send(self, index: int, now: float, out: list[Command]) -> None:
        run = self.steps[index]
        self._step_into(index, _EXECUTING, now)
        run.attempt += 1
        out.append(self._execute_command(index))
        self._arm(index, _P.ACTION_TIMEOUT, self.definition.steps[index].timeout, now, out)

    def _send_compensation(
        self, index: int, now: float, out: list[Command], *, trigger: str | None = None
    ) -> None:
        """Send step ``index``'s compensation: by the row that leads into compensating, or by
        ``trigger`` (an operator's row, which :meth:`_step_into` never picks)."""
        run = self.steps[index]
        if trigger is None:
            self._step_into(index, _COMPENSATING, now)
        else:
            self._step(index, trigger, None, now)
        run.compensation_attempt += 1
        out.append(self._compensate_command(index))
        delay = self.definition.steps[index].effective_compensation_timeout
        self._arm(index, _P.COMPENSATION_TIMEOUT, delay, now, out)

    def _execute_command(self, index: int) -> ExecuteStep:
        step = self.definition.steps[index]
        names = self.definition.step_names
        runs = self.steps
        return ExecuteStep(
            saga_id=self.saga_id,
            step=step.name,
            participant=step.participant,
            action=step.action,
            attempt=runs[index].attempt,
            idempotency_key=action_key(self.saga_id, step.name, runs[index].generation),
            data=self.data,
            results={
                names[i]: result for i in range(index) if (result := runs[i].result) is not None
            },
        )

    def _compensate_command(self, index: int) -> CompensateStep:
        step = self.definition.steps[index]
        run = self.steps[index]
        compensation = step.compensation
        if compensation is None:  # unreachable: only compensable steps are compensated
            raise IllegalTransition("step", "compensate", run.state.value, step.name)
        return CompensateStep(
            saga_id=self.saga_id,
            step=step.name,
            participant=step.participant,
            compensation=compensation,
            attempt=run.compensation_attempt,
            idempotency_key=compensation_key(self.saga_id, step.name),
            action_key=action_key(self.saga_id, step.name, run.generation),
            data=self.data,
            action_result=run.result,
        )

    def _finished_command(self) -> SagaFinished:
        return SagaFinished(
            saga_id=self.saga_id, state=self.state, reason=self.reason, results=self.results
        )

    def _arm(
        self, index: int, purpose: TimerPurpose, delay: float, now: float, out: list[Command]
    ) -> None:
        self.timer_seq += 1
        timer_id = f"{self.saga_id}#{self.timer_seq}"
        self.timer_id, self.timer_purpose, self.timer_step = timer_id, purpose, index
        self.timer_due = now + delay
        out.append(
            StartTimer(
                saga_id=self.saga_id,
                timer_id=timer_id,
                delay=delay,
                purpose=purpose,
                step=self.definition.steps[index].name,
            )
        )

    def _disarm(self, out: list[Command]) -> None:
        if self.timer_id is not None:
            out.append(CancelTimer(saga_id=self.saga_id, timer_id=self.timer_id))
            self.timer_id = self.timer_purpose = None

    def _finish(self, trigger: str, reason: str | None, now: float, out: list[Command]) -> None:
        self._disarm(out)
        self._saga(trigger, now)
        self.reason = reason
        out.append(self._finished_command())

    def _saga(self, trigger: str, now: float) -> None:
        source = self.state
        SAGA_MACHINE.fire(self, trigger, "saga {}", self.saga_id)
        if self.recorder is not None:
            self.recorder.transition(now, self.saga_id, None, trigger, source, self.state)

    def _step_into(self, index: int, dest: StepState, now: float) -> None:
        """Move a step into ``dest`` by whichever row of the table leads there from its state."""
        source = self.steps[index].state
        trigger = STEP_LIFECYCLE.trigger_into(source, dest)
        if trigger is None:
            name = self.definition.steps[index].name
            raise IllegalTransition(
                "step", f"into {dest.value}", source.value, f"saga {self.saga_id} step {name!r}"
            )
        self._step(index, trigger, None, now)

    def _step(self, index: int, trigger: str, event: Event | None, now: float) -> bool:
        """Fire a step trigger; False (and recorded) if the table declares it ignored."""
        run = self.steps[index]
        source = run.state
        if event is not None and not STEP_LIFECYCLE.allows(trigger, source):
            reason = STEP_LIFECYCLE.ignored_reason(trigger, source)
            if reason is not None:
                self._ignored(event, now, reason)
                return False
        name = self.definition.steps[index].name
        STEP_MACHINE.fire(run, trigger, "saga {} step {!r}", self.saga_id, name)
        if self.recorder is not None:
            self.recorder.transition(now, self.saga_id, name, trigger, source, run.state)
        return True

    def _index(self, event: Event, now: float) -> int | None:
        step: str = event.step  # type: ignore[union-attr]  # every non-timer event names a step
        if not self.definition.has_step(step):
            self._ignored(event, now, f"unknown step {step!r}")
            return None
        return self.definition.index_of(step)

    def _stale_key(self, index: int, event: StepSucceeded | StepFailed, now: float) -> bool:
        """Whether a reply carries a key other than the step's current one (recorded if so)."""
        key = event.idempotency_key
        if key is None:
            return False
        generation = self.steps[index].generation
        if key == action_key(self.saga_id, event.step, generation):
            return False
        earlier = {action_key(self.saga_id, event.step, g) for g in range(generation)}
        self._ignored(
            event,
            now,
            "stale: answers a failed earlier try of a retriable step"
            if key in earlier
            else "unknown: the key names no try of this step",
        )
        return True

    def _ignored(self, event: Event, now: float, reason: str) -> None:
        if self.recorder is not None:
            self.recorder.ignored(now, self.saga_id, event, reason)

    def _check_usable(self) -> None:
        if self._broken is not None:
            raise self._broken


def refuse_event(event: object) -> None:
    """Raise the InvalidArgument that explains why ``event`` is not an event."""
    if isinstance(event, (ExecuteStep, CompensateStep, StartTimer, CancelTimer, SagaFinished)):
        raise InvalidArgument(
            f"handle() takes an event, and {type(event).__name__} is a command "
            "(the engine's output: the driver carries it out)"
        )
    raise InvalidArgument(
        f"handle() takes an event ({', '.join(t.__name__ for t in EVENT_TYPES)}), got {event!r}"
    )
