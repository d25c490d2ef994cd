"""The broken engines of the mutants (:mod:`.mutants`): wrong on purpose.

Each is a :class:`~sagafsm.SagaInstance` subclass that gets one rule wrong, the way real saga
implementations do. Never use them for anything but showing that a checker catches them.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

import attrs

from .. import _snapshot
from ..commands import Command, CompensateStep, SagaFinished, TimerPurpose
from ..definition import SagaDefinition, StepKind
from ..engine import Recorder, SagaInstance
from ..events import (
    CompensationFailed,
    CompensationSucceeded,
    Event,
    StepFailed,
    StepSucceeded,
    TimerFired,
)
from ..lifecycle import STEP_LIFECYCLE, SagaState, StepState

__all__ = [
    "ForwardOrderCompensation",
    "NoCompensationRetry",
    "CompensateAfterPivot",
    "WrongCompensationResult",
    "CompensateReadOnly",
    "TutorialOrchestrator",
]


class _Unchecked(SagaInstance):
    """Restores its snapshots without checking that they tell one story.

    :meth:`SagaInstance.restore` refuses a snapshot whose states are inconsistent (compensations
    out of order, a read-only step compensating...). A mutant reaches such states on purpose, and
    a crashed orchestrator must reload them: it is the checkers' job, from the ledgers, to catch
    what the mutant did, not a refused restore's (which would stop the run as an internal error).
    """

    __slots__ = ()

    @classmethod
    def restore(
        cls,
        definition: SagaDefinition,
        data: Mapping[str, Any],
        *,
        recorder: Recorder | None = None,
    ) -> SagaInstance:
        saga = cls(definition, "restoring", recorder=recorder)
        _snapshot.load(saga, data, check_story=False)
        return saga


class ForwardOrderCompensation(_Unchecked):
    """Compensates the earliest landed step first."""

    __slots__ = ()

    def _compensate_next(self, below: int, now: float, out: list[Command]) -> None:
        landed = STEP_LIFECYCLE.landed
        for index, step in enumerate(self.definition.steps):
            if self.steps[index].state in landed and step.kind.compensable:
                self._send_compensation(index, now, out)
                return
        self._finish("compensated", self.reason, now, out)


class NoCompensationRetry(_Unchecked):
    """Treats a failed (or timed-out) compensation as done and moves on."""

    __slots__ = ()

    def _on_compensation_failure(
        self, index: int, event: Event, now: float, out: list[Command]
    ) -> None:
        if self._step(index, "compensated", event, now):
            self._disarm(out)
            self._compensate_next(index - 1, now, out)


class CompensateAfterPivot(_Unchecked):
    """When a step after the pivot cannot finish, aborts and compensates the steps before the
    pivot, as if the pivot had never landed."""

    __slots__ = ()

    def _finish(self, trigger: str, reason: str | None, now: float, out: list[Command]) -> None:
        if trigger == "escalate" and self.state is SagaState.PENDING:
            self._abort(reason or "escalated", len(self.steps) - 1, now, out)
            return
        super()._finish(trigger, reason, now, out)


class WrongCompensationResult(_Unchecked):
    """Hands a compensation the result of another step (the nearest earlier one that has a
    result, else the nearest later one): a side map kept by hand, off by one."""

    __slots__ = ()

    def _compensate_command(self, index: int) -> CompensateStep:
        command = super()._compensate_command(index)
        runs = self.steps
        others = [*range(index - 1, -1, -1), *range(index + 1, len(runs))]
        wrong = next((runs[i].result for i in others if runs[i].result is not None), None)
        return command if wrong is None else attrs.evolve(command, action_result=wrong)


@functools.lru_cache(maxsize=16)
def _read_only_as_compensatable(definition: SagaDefinition) -> SagaDefinition:
    steps = tuple(
        attrs.evolve(step, kind=StepKind.COMPENSATABLE, compensation=f"undo_{step.action}")
        if step.kind is StepKind.READ_ONLY
        else step
        for step in definition.steps
    )
    return attrs.evolve(definition, steps=steps)


class CompensateReadOnly(_Unchecked):
    """Forgets that read-only steps have nothing to undo: compensates them like the others, with
    a compensation named ``undo_<action>`` (the fake no-op compensation users wrote before
    read-only steps could be declared)."""

    __slots__ = ()

    def __init__(
        self,
        definition: SagaDefinition,
        saga_id: str,
        *,
        data: Mapping[str, Any] | None = None,
        recorder: Recorder | None = None,
    ) -> None:
        super().__init__(
            _read_only_as_compensatable(definition), saga_id, data=data, recorder=recorder
        )


class TutorialOrchestrator(SagaInstance):
    """The orchestrator of common saga tutorials (see ``shared/reference``), on this interface.

    It keeps a cursor that every success reply advances, so a duplicate reply skips a step and a
    late one moves a compensating saga forward; a timeout counts as a failure; on a failure it
    sends at once the compensation of every earlier step whose success reply arrived and that has
    a compensation (so a timed-out step that landed is never undone, and it knows nothing of a
    pivot); no compensation is retried; when there is nothing to compensate, no completion ever
    comes: the saga stays compensating. It saves its own state (cursor included), and after a
    restart only re-sends the step at its cursor.
    """

    __slots__ = ("cursor",)

    def __init__(
        self,
        definition: SagaDefinition,
        saga_id: str,
        *,
        data: Mapping[str, Any] | None = None,
        recorder: Recorder | None = None,
    ) -> None:
        super().__init__(definition, saga_id, data=data, recorder=recorder)
        self.cursor = 0

    def handle(self, event: Event, now: float) -> list[Command]:
        out: list[Command] = []
        if self.finished:
            return out
        if isinstance(event, TimerFired):
            if event.timer_id == self.timer_id:
                self.timer_id = None
                self._failed(self.timer_step, now, out)
            return out
        index = self._index(event, now)
        if index is None:
            return out
        run = self.steps[index]
        if isinstance(event, StepSucceeded):
            run.state = StepState.SUCCEEDED
            run.result = event.result
            self._disarm(out)
            self.cursor += 1
            if self.cursor >= len(self.steps):
                self._force(SagaState.COMPLETED, "complete", now)
                out.append(SagaFinished(saga_id=self.saga_id, state=self.state))
            else:
                self._execute(self.cursor, now, out)
        elif isinstance(event, StepFailed):
            self._disarm(out)
            self._failed(index, now, out)
        elif isinstance(event, CompensationSucceeded):
            run.state = StepState.COMPENSATED
            if all(
                s.state in (StepState.COMPENSATED, StepState.PENDING, StepState.FAILED)
                or step.compensation is None
                for s, step in zip(self.steps, self.definition.steps, strict=True)
            ):
                self._force(SagaState.FAILED, "compensated", now)
                out.append(SagaFinished(saga_id=self.saga_id, state=self.state))
        elif isinstance(event, CompensationFailed):
            pass  # no handling, no retry
        return out

    def start(self, now: float) -> list[Command]:
        out: list[Command] = []
        self._force(SagaState.PENDING, "begin", now)
        self._execute(0, now, out)
        return out

    def resume(self, now: float) -> list[Command]:
        out: list[Command] = []
        if self.state is SagaState.PENDING and self.cursor < len(self.steps):
            self._execute(self.cursor, now, out)
        return out

    def snapshot(self) -> dict[str, Any]:
        # Its own format: the engine's restore() would refuse its states (several compensations
        # at once, no timer while compensating), which is the point of the mutant.
        return {
            "saga_id": self.saga_id,
            "state": self.state.value,
            "data": dict(self.data),
            "cursor": self.cursor,
            "steps": [
                [r.state.value, r.attempt, r.compensation_attempt, r.result] for r in self.steps
            ],
            "timer_seq": self.timer_seq,
        }

    @classmethod
    def restore(
        cls,
        definition: SagaDefinition,
        data: Mapping[str, Any],
        *,
        recorder: Recorder | None = None,
    ) -> SagaInstance:
        saga = cls(definition, data["saga_id"], data=data["data"], recorder=recorder)
        saga.state = SagaState(data["state"])
        saga.cursor = int(data["cursor"])
        for run, (state, attempt, compensation_attempt, result) in zip(
            saga.steps, data["steps"], strict=True
        ):
            run.state = StepState(state)
            run.attempt, run.compensation_attempt, run.result = (
                attempt,
                compensation_attempt,
                result,
            )
        saga.timer_seq = int(data["timer_seq"])
        return saga

    def _execute(self, index: int, now: float, out: list[Command]) -> None:
        run = self.steps[index]
        run.state = StepState.EXECUTING
        run.attempt += 1
        out.append(self._execute_command(index))
        self._arm(
            index, TimerPurpose.ACTION_TIMEOUT, self.definition.steps[index].timeout, now, out
        )

    def _failed(self, index: int, now: float, out: list[Command]) -> None:
        self.steps[index].state = StepState.FAILED
        self._force(SagaState.COMPENSATING, "abort", now)
        for earlier in range(self.cursor - 1, -1, -1):
            run = self.steps[earlier]
            has_compensation = self.definition.steps[earlier].compensation is not None
            if run.state is StepState.SUCCEEDED and has_compensation:
                run.state = StepState.COMPENSATING
                run.compensation_attempt += 1
                out.append(self._compensate_command(earlier))

    def _force(self, state: SagaState, trigger: str, now: float) -> None:
        source, self.state = self.state, state
        if self.recorder is not None:
            self.recorder.transition(now, self.saga_id, None, trigger, source, state)
