"""Deliberately broken variants of the engine, the participants and the orchestrator.

A checker is trusted only once it catches a mutant: ``sagafsm selfcheck`` runs each one under a
fault plan able to expose it (:attr:`Mutant.exposing`), and the correct system under the same plan.
These classes are wrong on purpose. Never use them for anything but that.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from ..commands import Command, SagaFinished, TimerPurpose
from ..definition import SagaDefinition
from ..engine import Recorder, SagaInstance
from ..errors import InvalidConfig
from ..events import (
    CompensationFailed,
    CompensationSucceeded,
    Event,
    StepFailed,
    StepSucceeded,
    TimerFired,
)
from ..lifecycle import SagaState, StepState

__all__ = ["Mutant", "MUTANTS", "get_mutant"]


@attrs.frozen(kw_only=True)
class Mutant:
    name: str
    description: str
    exposing: Mapping[str, Any]
    """A fault plan (configuration data, over the scenario's defaults) able to expose it."""
    catches: tuple[str, ...]
    """Properties expected to fire (selfcheck reports every property that did)."""
    scenario: str = "order_fulfillment"
    engine: type[SagaInstance] = SagaInstance
    participant_dedup: bool = True
    participant_tombstones: bool = True
    send_before_save: bool = False

    @property
    def expected_set(self) -> frozenset[str]:
        return frozenset(self.catches)


class ForwardOrderCompensation(SagaInstance):
    """Compensates the earliest landed step first."""

    __slots__ = ()

    def _compensate_next(self, below: int, now: float, out: list[Command]) -> None:
        for index in range(len(self.steps)):
            if self.steps[index].state in (StepState.SUCCEEDED, StepState.TIMED_OUT):
                self._send_compensation(index, now, out)
                return
        self._finish("compensated", None, now, out)


class NoCompensationRetry(SagaInstance):
    """Treats a failed (or timed-out) compensation as done and moves on."""

    __slots__ = ()

    def _on_compensation_failure(
        self, index: int, event: Event, now: float, out: list[Command]
    ) -> None:
        if self._step(index, "compensated", event, now):
            self._disarm(out)
            self._compensate_next(index - 1, now, out)


class CompensateAfterPivot(SagaInstance):
    """When a retriable step runs out of tries, aborts and compensates the steps before the pivot,
    as if the pivot had never landed."""

    __slots__ = ()

    def _finish(self, trigger: str, reason: str | None, now: float, out: list[Command]) -> None:
        if trigger == "escalate" and self.state is SagaState.PENDING:
            self._saga("abort", now)
            self._compensate_next(len(self.steps) - 1, now, out)
            return
        super()._finish(trigger, reason, now, out)

    def _compensate_next(self, below: int, now: float, out: list[Command]) -> None:
        for index in range(below, -1, -1):
            compensable = self.definition.steps[index].compensation is not None
            if compensable and self.steps[index].state in (
                StepState.SUCCEEDED,
                StepState.TIMED_OUT,
            ):
                self._send_compensation(index, now, out)
                return
        super()._finish("compensated", None, now, out)


class TutorialOrchestrator(SagaInstance):
    """The orchestrator of common saga tutorials (see ``shared/reference``), on this interface.

    It keeps a cursor that every success reply advances, so a duplicate reply skips a step and a
    late one moves a compensating saga forward; a timeout counts as a failure, and only steps whose
    success reply arrived are compensated (a timed-out step that landed is never undone); when
    there is nothing to compensate, no completion ever comes: the saga stays compensating.
    """

    __slots__ = ("cursor",)

    def __init__(
        self, definition: SagaDefinition, saga_id: str, *, recorder: Recorder | None = None
    ) -> None:
        super().__init__(definition, saga_id, recorder=recorder)
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
                for s in self.steps
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
        return {**super().snapshot(), "cursor": self.cursor}

    @classmethod
    def restore(
        cls, definition: SagaDefinition, data: dict[str, Any], *, recorder: Recorder | None = None
    ) -> SagaInstance:
        saga = super().restore(definition, data, recorder=recorder)
        assert isinstance(saga, TutorialOrchestrator)
        saga.cursor = int(data["cursor"])
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
            if run.state is StepState.SUCCEEDED:
                run.state = StepState.COMPENSATING
                run.compensation_attempt += 1
                out.append(self._compensate_command(earlier))

    def _force(self, state: SagaState, trigger: str, now: float) -> None:
        source, self.state = self.state, state
        if self.recorder is not None:
            self.recorder.transition(now, self.saga_id, None, trigger, source, state)


_STRESS = {"sagas": 400, "seed": 11}
MUTANTS: dict[str, Mutant] = {
    m.name: m
    for m in (
        Mutant(
            name="tutorial-orchestrator",
            description="the saga tutorials' orchestrator: compensates only replied steps, "
            "advances on late and duplicate replies, hangs when the first step fails",
            engine=TutorialOrchestrator,
            catches=("termination", "completed-exactly-once", "compensated-exactly-once"),
            exposing={
                **_STRESS,
                "step_timeout": 0.05,
                "participant": {"failure_rate": 0.1, "hang_rate": 0.05, "hang_lands": 1.0},
                "faults": {"duplicate": 0.1, "reorder": 0.1},
            },
        ),
        Mutant(
            name="no-dedup-participant",
            description="participants apply a duplicated command twice",
            participant_dedup=False,
            catches=("no-duplicate-effect",),
            exposing={**_STRESS, "faults": {"duplicate": 0.2}},
        ),
        Mutant(
            name="forward-order-compensation",
            description="compensations run in forward order",
            engine=ForwardOrderCompensation,
            catches=("reverse-order",),
            exposing={**_STRESS, "participant": {"failure_rate": 0.2}},
        ),
        Mutant(
            name="no-compensation-retry",
            description="a failed compensation is dropped, not retried",
            engine=NoCompensationRetry,
            catches=("compensated-exactly-once",),
            exposing={
                **_STRESS,
                "participant": {"failure_rate": 0.2, "compensation_failure_rate": 0.3},
            },
        ),
        Mutant(
            name="no-tombstone",
            description="an action arriving after its compensation is applied",
            participant_tombstones=False,
            catches=("no-effect-after-compensation",),
            exposing={
                **_STRESS,
                "step_timeout": 0.05,
                "faults": {"loss": 0.2, "reorder": 0.5, "reorder_delay": "uniform:0.1:1.0"},
            },
        ),
        Mutant(
            name="send-before-save",
            description="the orchestrator sends commands before saving its state",
            send_before_save=True,
            catches=("termination",),
            exposing={
                **_STRESS,
                "store_latency": 0.005,
                "faults": {"orchestrator_crash_rate": 2.0, "orchestrator_downtime": "const:0.1"},
            },
        ),
        Mutant(
            name="compensate-after-pivot",
            description="a retriable step that runs out of tries makes the saga compensate, "
            "although the pivot already landed",
            scenario="travel_booking",
            engine=CompensateAfterPivot,
            catches=("pivot-rule",),
            exposing={
                **_STRESS,
                "participants": {"mailer": {"failure_rate": 0.9}},
            },
        ),
    )
}


def get_mutant(name: str) -> Mutant:
    try:
        return MUTANTS[name]
    except KeyError:
        raise InvalidConfig(f"unknown mutant {name!r} (known: {', '.join(MUTANTS)})") from None
