"""The sans-IO saga engine: one :class:`SagaInstance` per running saga.

Rules for this module:

- It turns events (replies, fired timers) into commands (send, compensate, arm or cancel a timer,
  finish). It does no I/O, reads no clock and draws no random number: the driver passes ``now``
  with every event, and delays leave as :class:`~sagafsm.commands.StartTimer` commands.
- It decides *which* trigger an event means (by step kind and tries left); whether the trigger may
  fire is the lifecycle tables' business (:mod:`sagafsm.lifecycle`). Triggers the tables declare
  ignored (late, duplicate, unknown replies) are recorded and change nothing.
- Steps run one at a time, so at most one step is active and at most one timer is armed.
- Everything a saga is can be written as plain data (:meth:`SagaInstance.snapshot`) and read back
  (:meth:`SagaInstance.restore`); the restored saga behaves exactly as the original would have.

Semantics are those of DESIGN.md: a definite failure is not compensated; every earlier step whose
effect landed, or may have (timed out), is compensated once, in reverse order; timeouts and failed
compensations are retried with backoff; when compensation retries run out, or the pivot's outcome
cannot be known, the saga ends in ``OPERATOR_REQUIRED`` with the reason.
"""

from __future__ import annotations

from typing import Any, Protocol

from ._machine import SAGA_LIFECYCLE, STEP_LIFECYCLE
from .commands import (
    CancelTimer,
    Command,
    CompensateStep,
    ExecuteStep,
    SagaFinished,
    StartTimer,
    TimerPurpose,
    action_key,
    compensation_key,
)
from .definition import SagaDefinition, StepKind
from .errors import InvalidSnapshot
from .events import (
    CompensationFailed,
    CompensationSucceeded,
    CompensationTimedOut,
    Event,
    StepFailed,
    StepSucceeded,
    StepTimedOut,
    TimerFired,
)
from .lifecycle import SAGA_TERMINAL, SagaState, StepState

__all__ = ["SagaInstance", "Recorder", "SNAPSHOT_VERSION"]

SNAPSHOT_VERSION = 1

_LANDED = (StepState.SUCCEEDED, StepState.TIMED_OUT)
_P = TimerPurpose


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


class _StepRun:
    """The run-time state of one step of one saga: the model the step machine drives."""

    __slots__ = ("attempt", "compensation_attempt", "generation", "state")

    def __init__(self) -> None:
        self.state = StepState.PENDING
        self.attempt = 0
        self.compensation_attempt = 0
        self.generation = 0
        """Bumped when a retriable step failed: its retry needs a fresh idempotency key."""


class SagaInstance:
    """One saga: the model the saga machine drives, and the step runs it owns."""

    __slots__ = (
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

    def __init__(
        self, definition: SagaDefinition, saga_id: str, *, recorder: Recorder | None = None
    ) -> None:
        self.definition = definition
        self.saga_id = saga_id
        self.state = SagaState.STARTED
        self.reason: str | None = None
        self.steps = [_StepRun() for _ in definition.steps]
        self.timer_id: str | None = None
        self.timer_purpose: TimerPurpose | None = None
        self.timer_step = -1
        self.timer_due = 0.0
        self.timer_seq = 0
        self.recorder = recorder

    def __repr__(self) -> str:
        return f"<SagaInstance {self.saga_id} {self.definition.name} {self.state.value}>"

    @property
    def finished(self) -> bool:
        return self.state in SAGA_TERMINAL

    def step_state(self, step: str) -> StepState:
        return self.steps[self.definition.index_of(step)].state

    # -- driving -------------------------------------------------------------------------------

    def start(self, now: float) -> list[Command]:
        """Begin the saga: send its first step. Raises IllegalTransition if already begun."""
        out: list[Command] = []
        self._saga("begin", now)
        self._send(0, now, out)
        return out

    def handle(self, event: Event, now: float) -> list[Command]:
        """Apply one event; return the commands it implies (often none)."""
        out: list[Command] = []
        if event.saga_id != self.saga_id:
            self._ignored(event, now, f"addressed to saga {event.saga_id!r}")
            return out
        if isinstance(event, TimerFired):
            if event.timer_id != self.timer_id:
                self._ignored(event, now, "stale timer: it was cancelled or replaced")
            else:
                self._timer_fired(now, out)
            return out
        index = self._index(event, now)
        if index is None:
            return out
        if isinstance(event, (StepSucceeded, StepFailed)) and self._stale_key(index, event, now):
            return out
        if isinstance(event, StepSucceeded):
            self._on_action_success(index, event, now, out)
        elif isinstance(event, StepFailed):
            self._on_action_failure(index, event, now, out)
        elif isinstance(event, CompensationSucceeded):
            if self._step(index, "compensated", event, now):
                self._disarm(out)
                self._compensate_next(index - 1, now, out)
        elif isinstance(event, CompensationFailed):
            attempt = event.attempt
            if attempt is not None and attempt != self.steps[index].compensation_attempt:
                self._ignored(event, now, "stale: answers an earlier try of the compensation")
            else:
                self._on_compensation_failure(index, event, now, out)
        elif isinstance(event, (StepTimedOut, CompensationTimedOut)):
            purpose = (
                _P.ACTION_TIMEOUT if isinstance(event, StepTimedOut) else _P.COMPENSATION_TIMEOUT
            )
            armed = self.timer_id
            if armed is not None and self.timer_step == index and self.timer_purpose is purpose:
                # the driver's own timer for this wait is pointless now: cancel it
                out.append(CancelTimer(saga_id=self.saga_id, timer_id=armed))
                self._timer_fired(now, out)
            else:
                self._ignored(event, now, "stale timeout: the step is not waiting for that reply")
        return out

    def resume(self, now: float) -> list[Command]:
        """After a restore from a store: re-send what was in flight and re-arm the timer.

        The idempotency keys are the saved ones, so a participant that already applied a re-sent
        command does not apply it again.
        """
        out: list[Command] = []
        if self.state is SagaState.STARTED:
            return self.start(now)
        if self.finished:
            out.append(SagaFinished(saga_id=self.saga_id, state=self.state, reason=self.reason))
            return out
        purpose, index = self.timer_purpose, self.timer_step
        if purpose is None:  # unreachable for a saga built by this engine
            raise InvalidSnapshot(f"saga {self.saga_id}: running but no timer armed")
        delay = max(0.0, self.timer_due - now)
        if purpose is _P.ACTION_TIMEOUT:
            out.append(self._execute_command(index))
            delay = self.definition.steps[index].timeout
        elif purpose is _P.COMPENSATION_TIMEOUT:
            out.append(self._compensate_command(index))
            delay = self.definition.steps[index].effective_compensation_timeout
        self._arm(index, purpose, delay, now, out)
        return out

    # -- reactions -----------------------------------------------------------------------------

    def _on_action_success(self, index: int, event: Event, now: float, out: list[Command]) -> None:
        if not self._step(index, "succeed", event, now):
            return
        self._disarm(out)
        if index + 1 < len(self.steps):
            self._send(index + 1, now, out)
        else:
            self._finish("complete", None, now, out)

    def _on_action_failure(self, index: int, event: Event, now: float, out: list[Command]) -> None:
        definition = self.definition.steps[index]
        run = self.steps[index]
        retriable = definition.kind is StepKind.RETRIABLE
        if retriable and run.attempt < definition.retry.max_attempts:
            if run.state is StepState.WAITING_RETRY and self._current_key(index, event):
                # The try that timed out did fail for good, and its key with it: the retry
                # already scheduled must go out under a fresh key.
                run.generation += 1
            if self._step(index, "back_off", event, now):
                run.generation += 1
                self._disarm(out)
                self._arm(index, _P.ACTION_BACKOFF, definition.retry.backoff(run.attempt), now, out)
            return
        if not self._step(index, "fail", event, now):
            return
        self._disarm(out)
        if retriable:
            self._finish(
                "escalate",
                f"retriable step {definition.name!r} failed {run.attempt} times",
                now,
                out,
            )
        else:
            self._saga("abort", now)
            self._compensate_next(index - 1, now, out)

    def _on_compensation_failure(
        self, index: int, event: Event, now: float, out: list[Command]
    ) -> None:
        definition = self.definition.steps[index]
        run = self.steps[index]
        policy = definition.compensation_retry
        if run.compensation_attempt < policy.max_attempts:
            if self._step(index, "compensation_back_off", event, now):
                self._disarm(out)
                delay = policy.backoff(run.compensation_attempt)
                self._arm(index, _P.COMPENSATION_BACKOFF, delay, now, out)
        elif self._step(index, "compensation_give_up", event, now):
            self._disarm(out)
            self._finish(
                "escalate",
                f"compensation of step {definition.name!r} failed {run.compensation_attempt} times",
                now,
                out,
            )

    def _timer_fired(self, now: float, out: list[Command]) -> None:
        index, purpose = self.timer_step, self.timer_purpose
        self.timer_id = self.timer_purpose = None
        definition = self.definition.steps[index]
        run = self.steps[index]
        if purpose is _P.ACTION_BACKOFF:
            self._send(index, now, out)
        elif purpose is _P.COMPENSATION_BACKOFF:
            self._send_compensation(index, now, out)
        elif purpose is _P.COMPENSATION_TIMEOUT:
            self._on_compensation_failure(
                index, CompensationTimedOut(saga_id=self.saga_id, step=definition.name), now, out
            )
        elif run.attempt < definition.retry.max_attempts:
            self._step(index, "back_off", None, now)
            self._arm(index, _P.ACTION_BACKOFF, definition.retry.backoff(run.attempt), now, out)
        else:
            self._step(index, "give_up", None, now)
            if definition.kind is StepKind.COMPENSATABLE:
                self._saga("abort", now)
                self._compensate_next(index, now, out)
            else:
                self._finish(
                    "escalate",
                    f"{definition.kind.value} step {definition.name!r} got no reply after "
                    f"{run.attempt} tries: its outcome is unknown",
                    now,
                    out,
                )

    def _compensate_next(self, below: int, now: float, out: list[Command]) -> None:
        """Compensate the highest step at or below ``below`` whose effect landed or may have."""
        for index in range(below, -1, -1):
            if self.steps[index].state in _LANDED:
                self._send_compensation(index, now, out)
                return
        self._finish("compensated", None, now, out)

    # -- primitives ----------------------------------------------------------------------------

    def _send(self, index: int, now: float, out: list[Command]) -> None:
        run = self.steps[index]
        self._step(index, "send" if run.state is StepState.PENDING else "retry", None, now)
        run.attempt += 1
        out.append(self._execute_command(index))
        self._arm(index, _P.ACTION_TIMEOUT, self.definition.steps[index].timeout, now, out)

    def _send_compensation(self, index: int, now: float, out: list[Command]) -> None:
        run = self.steps[index]
        retry = run.state is StepState.WAITING_COMPENSATION_RETRY
        self._step(index, "compensation_retry" if retry else "compensate", None, now)
        run.compensation_attempt += 1
        out.append(self._compensate_command(index))
        delay = self.definition.steps[index].effective_compensation_timeout
        self._arm(index, _P.COMPENSATION_TIMEOUT, delay, now, out)

    def _execute_command(self, index: int) -> ExecuteStep:
        step = self.definition.steps[index]
        return ExecuteStep(
            saga_id=self.saga_id,
            step=step.name,
            participant=step.participant,
            action=step.action,
            attempt=self.steps[index].attempt,
            idempotency_key=action_key(self.saga_id, step.name, self.steps[index].generation),
        )

    def _compensate_command(self, index: int) -> CompensateStep:
        step = self.definition.steps[index]
        assert step.compensation is not None  # only compensatable steps land before an abort
        return CompensateStep(
            saga_id=self.saga_id,
            step=step.name,
            participant=step.participant,
            compensation=step.compensation,
            attempt=self.steps[index].compensation_attempt,
            idempotency_key=compensation_key(self.saga_id, step.name),
            action_key=action_key(self.saga_id, step.name, self.steps[index].generation),
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
        out.append(SagaFinished(saga_id=self.saga_id, state=self.state, reason=reason))

    def _saga(self, trigger: str, now: float) -> None:
        source = self.state
        SAGA_LIFECYCLE.fire(self, trigger, f"saga {self.saga_id}")
        if self.recorder is not None:
            self.recorder.transition(now, self.saga_id, None, trigger, source, self.state)

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
        STEP_LIFECYCLE.fire(run, trigger, f"saga {self.saga_id} step {name!r}")
        if self.recorder is not None:
            self.recorder.transition(now, self.saga_id, name, trigger, source, run.state)
        return True

    def _index(self, event: Event, now: float) -> int | None:
        step: str = event.step  # type: ignore[union-attr]  # every non-timer event names a step
        if not self.definition.has_step(step):
            self._ignored(event, now, f"unknown step {step!r}")
            return None
        return self.definition.index_of(step)

    def _current_key(self, index: int, event: Event) -> bool:
        """Whether a reply answers the step's current key (True when the driver gave none)."""
        key = getattr(event, "idempotency_key", None)
        current = action_key(
            self.saga_id, self.definition.steps[index].name, self.steps[index].generation
        )
        return key is None or key == current

    def _stale_key(self, index: int, event: StepSucceeded | StepFailed, now: float) -> bool:
        generation = self.steps[index].generation
        key = event.idempotency_key
        if (
            generation
            and key is not None
            and key != action_key(self.saga_id, event.step, generation)
        ):
            self._ignored(event, now, "stale: answers a failed earlier try of a retriable step")
            return True
        return False

    def _ignored(self, event: Event, now: float, reason: str) -> None:
        if self.recorder is not None:
            self.recorder.ignored(now, self.saga_id, event, reason)

    # -- snapshots -----------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """Everything this saga is, as JSON-compatible data."""
        return {
            "version": SNAPSHOT_VERSION,
            "saga_id": self.saga_id,
            "definition": self.definition.name,
            "step_names": list(self.definition.step_names),
            "state": self.state.value,
            "reason": self.reason,
            "steps": [
                [r.state.value, r.attempt, r.compensation_attempt, r.generation] for r in self.steps
            ],
            "timer": None
            if self.timer_id is None or self.timer_purpose is None
            else [self.timer_id, self.timer_purpose.value, self.timer_step, self.timer_due],
            "timer_seq": self.timer_seq,
        }

    @classmethod
    def restore(
        cls,
        definition: SagaDefinition,
        data: dict[str, Any],
        *,
        recorder: Recorder | None = None,
    ) -> SagaInstance:
        """Rebuild a saga from :meth:`snapshot` data. Raises InvalidSnapshot if it does not fit."""
        try:
            if data["version"] != SNAPSHOT_VERSION:
                raise InvalidSnapshot(f"unsupported snapshot version {data['version']!r}")
            if data["definition"] != definition.name:
                raise InvalidSnapshot(
                    f"snapshot is of saga {data['definition']!r}, not {definition.name!r}"
                )
            if len(data["steps"]) != len(definition.steps):
                raise InvalidSnapshot(
                    f"snapshot has {len(data['steps'])} steps, "
                    f"definition {definition.name!r} has {len(definition.steps)}"
                )
            if list(data["step_names"]) != list(definition.step_names):
                raise InvalidSnapshot(
                    f"snapshot has steps {data['step_names']!r}, "
                    f"definition {definition.name!r} has {list(definition.step_names)!r}"
                )
            saga = cls(definition, str(data["saga_id"]), recorder=recorder)
            saga.state = SagaState(data["state"])
            saga.reason = data["reason"]
            for run, (state, attempt, compensation_attempt, generation) in zip(
                saga.steps, data["steps"], strict=True
            ):
                run.state = StepState(state)
                run.attempt = int(attempt)
                run.compensation_attempt = int(compensation_attempt)
                run.generation = int(generation)
            if data["timer"] is not None:
                timer_id, purpose, step, due = data["timer"]
                saga.timer_id = str(timer_id)
                saga.timer_purpose = TimerPurpose(purpose)
                saga.timer_step = int(step)
                if not 0 <= saga.timer_step < len(definition.steps):
                    raise InvalidSnapshot(f"snapshot timer names no step of the saga: {step!r}")
                saga.timer_due = float(due)
            saga.timer_seq = int(data["timer_seq"])
        except (KeyError, TypeError, ValueError) as error:
            if isinstance(error, InvalidSnapshot):
                raise
            raise InvalidSnapshot(f"malformed saga snapshot: {error!r}") from None
        return saga
