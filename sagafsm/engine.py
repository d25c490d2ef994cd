"""The sans-IO saga engine: one :class:`SagaInstance` per running saga.

Rules for this module:

- It turns events (replies, fired timers) into commands (send, compensate, arm or cancel a timer,
  finish). It does no I/O, reads no clock and draws no random number: the driver passes ``now``
  with every event, and delays leave as :class:`~sagafsm.commands.StartTimer` commands.
- It decides *which* trigger an event means (by step kind and tries left); whether the trigger may
  fire, which trigger leads into a state, which states have landed and which wait on which timer
  are the lifecycle specs' business (:mod:`sagafsm.lifecycle`): nothing here branches on a state.
  Triggers the specs declare ignored (late, duplicate, unknown replies) are recorded and change
  nothing.
- Steps run one at a time, so at most one step is active and at most one timer is armed.
- Data flows through it: the saga's input data and each step's result travel with the commands
  (:mod:`sagafsm.commands` documents the shapes) and are part of the snapshot.
- Bad input is refused at the door (:class:`~sagafsm.InvalidArgument`), before anything changes.
- Everything a saga is can be written as plain data (:meth:`SagaInstance.snapshot`) and read back
  (:meth:`SagaInstance.restore`, in :mod:`sagafsm._snapshot`); the restored saga behaves exactly as
  the original would have.

Semantics are those of DESIGN.md: a definite failure is not compensated; every earlier step whose
effect landed, or may have (timed out), is compensated once, in reverse order; read-only steps are
never compensated; timeouts and failed compensations are retried with backoff; when compensation
retries run out, or the pivot's outcome cannot be known, the saga ends in ``OPERATOR_REQUIRED`` with
the reason.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from . import _snapshot
from ._moves import Recorder, SagaMoves, StepRun, refuse_event
from ._validate import check_json_mapping, check_name, check_now, check_recorder, plain_json
from .commands import (
    CancelTimer,
    Command,
)
from .definition import SagaDefinition, StepKind
from .errors import IllegalTransition, InvalidArgument
from .events import (
    EVENT_TYPES,
    CompensationFailed,
    CompensationSucceeded,
    CompensationTimedOut,
    Event,
    StepFailed,
    StepSucceeded,
    StepTimedOut,
    TimerFired,
)
from .lifecycle import OPERATOR_RETRY, SAGA_LIFECYCLE, STEP_LIFECYCLE, StepState, TimerPurpose

__all__ = ["SagaInstance", "Recorder", "SNAPSHOT_VERSION", "refuse_event"]

SNAPSHOT_VERSION = _snapshot.VERSION

_P = TimerPurpose
_BECAUSE = " (compensating because "


class SagaInstance(SagaMoves):
    """One saga: the model the saga machine drives, and the step runs it owns.

    ``data`` is the saga's input (a JSON-able mapping, empty by default); it travels with every
    command and is part of the snapshot.

    A call that is refused (a bad argument, an event that is not an event, ``start`` twice) raises
    before anything changes: the instance is exactly as it was. An :class:`IllegalTransition`
    raised from inside a move (only a broken table or subclass can cause one) leaves the instance
    *broken*, as h11's ``Connection`` enters its ERROR state: every later call raises that error
    again, so a half-moved saga is never driven further.
    """

    __slots__ = ()

    def __init__(
        self,
        definition: SagaDefinition,
        saga_id: str,
        *,
        data: Mapping[str, Any] | None = None,
        recorder: Recorder | None = None,
    ) -> None:
        if not isinstance(definition, SagaDefinition):
            raise InvalidArgument(f"definition must be a SagaDefinition, got {definition!r}")
        check_name(saga_id, "saga_id")
        # A plain copy: the caller changing its own mapping later cannot move the saga (and a
        # driver can json.dumps what the commands carry).
        data = {} if data is None else plain_json(check_json_mapping(data, "saga data"))
        check_recorder(recorder)
        self.definition = definition
        self.saga_id = saga_id
        self.data = data
        self.state = SAGA_LIFECYCLE.initial
        self.reason: str | None = None
        self.steps = [StepRun() for _ in definition.steps]
        self.timer_id: str | None = None
        self.timer_purpose: TimerPurpose | None = None
        self.timer_step = -1
        self.timer_due = 0.0
        self.timer_seq = 0
        self.recorder = recorder
        self._broken: IllegalTransition | None = None

    def __repr__(self) -> str:
        return f"<SagaInstance {self.saga_id} {self.definition.name} {self.state.value}>"

    @property
    def finished(self) -> bool:
        return self.state in SAGA_LIFECYCLE.terminal

    @property
    def broken(self) -> bool:
        """Whether a move failed halfway (see the class docstring)."""
        return self._broken is not None

    def step_state(self, step: str) -> StepState:
        """The state of one step; :class:`~sagafsm.UnknownStep` if the saga has no such step."""
        return self.steps[self.definition.index_of(step)].state

    # -- driving -------------------------------------------------------------------------------

    def start(self, now: float) -> list[Command]:
        """Begin the saga: send its first step. Raises IllegalTransition if already begun."""
        now = check_now(now)
        self._check_usable()
        out: list[Command] = []
        self._saga("begin", now)  # refused before anything changes if the saga already began
        try:
            self._send(0, now, out)
        except IllegalTransition as error:
            self._broken = error
            raise
        return out

    def handle(self, event: Event, now: float) -> list[Command]:
        """Apply one event; return the commands it implies (often none)."""
        if type(event) not in EVENT_TYPES:  # not __class__, which a test double can fake
            refuse_event(event)
        now = check_now(now)
        self._check_usable()
        try:
            return self._handle(event, now)
        except IllegalTransition as error:
            self._broken = error
            raise

    def resume(self, now: float) -> list[Command]:
        """After a restore from a store: re-send what was in flight and re-arm the timer.

        The idempotency keys are the saved ones, so a participant that already applied a re-sent
        command does not apply it again.
        """
        now = check_now(now)
        self._check_usable()
        out: list[Command] = []
        if self.state is SAGA_LIFECYCLE.initial:
            return self.start(now)
        if self.finished:
            out.append(self._finished_command())
            return out
        purpose, index = self.timer_purpose, self.timer_step
        if purpose is None:  # restore() refuses such a snapshot
            raise IllegalTransition("saga", "resume", self.state.value, f"saga {self.saga_id}")
        delay = max(0.0, self.timer_due - now)
        step = self.definition.steps[index]
        if purpose is _P.ACTION_TIMEOUT:  # the action may not have left: send it again
            out.append(self._execute_command(index))
            delay = step.timeout
        elif purpose is _P.COMPENSATION_TIMEOUT:
            out.append(self._compensate_command(index))
            delay = step.effective_compensation_timeout
        self._arm(index, purpose, delay, now, out)
        return out

    def retry_compensation(self, now: float) -> list[Command]:
        """An operator's retry of the compensation that gave up: the saga goes back to
        compensating (the lifecycles' ``operator_retry`` rows), that step's compensation is sent
        again under the same idempotency key with a fresh budget of tries, and on success the
        earlier steps are compensated as usual.

        Refused with :class:`~sagafsm.IllegalTransition`, before anything changes, unless the
        saga is ``operator_required`` because a compensation gave up (a retriable step or a pivot
        whose outcome is unknown has no compensation to retry: an operator resolves those).
        """
        now = check_now(now)
        self._check_usable()
        index = self._parked_step()
        if index is None:
            raise IllegalTransition(
                "saga",
                OPERATOR_RETRY,
                self.state.value,
                f"saga {self.saga_id}, whose compensations did not give up",
            )
        out: list[Command] = []
        try:
            self._saga(OPERATOR_RETRY, now)
            # Back to the reason it was compensating for: the escalation's text wraps it.
            self.reason = (self.reason or "").partition(_BECAUSE)[2][:-1] or self.reason
            self.steps[index].compensation_attempt = 0
            self._send_compensation(index, now, out, trigger=OPERATOR_RETRY)
        except IllegalTransition as error:
            self._broken = error
            raise
        return out

    @property
    def retryable(self) -> bool:
        """Whether :meth:`retry_compensation` would take this saga (a compensation gave up)."""
        return self._parked_step() is not None

    def _parked_step(self) -> int | None:
        """The step whose compensation gave up, if the operator's rows can retry this saga."""
        if not SAGA_LIFECYCLE.allows_operator(OPERATOR_RETRY, self.state):
            return None
        for index, run in enumerate(self.steps):
            if STEP_LIFECYCLE.allows_operator(OPERATOR_RETRY, run.state):
                return index
        return None

    # -- snapshots (the format lives in sagafsm._snapshot) -------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """Everything this saga is, as JSON-compatible data."""
        return _snapshot.dump(self)

    @classmethod
    def restore(
        cls,
        definition: SagaDefinition,
        data: Mapping[str, Any],
        *,
        recorder: Recorder | None = None,
    ) -> SagaInstance:
        """Rebuild a saga from :meth:`snapshot` data.

        Raises :class:`~sagafsm.InvalidSnapshot` if the data is malformed, of another definition,
        or inconsistent (a finished saga with a step still running, a running one with no timer,
        a timer that does not match its step's state, counts out of range...).
        """
        saga = cls(definition, "restoring", recorder=recorder)
        _snapshot.load(saga, data)
        return saga

    # -- reactions -----------------------------------------------------------------------------

    def _handle(self, event: Event, now: float) -> list[Command]:
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
        if isinstance(event, StepSucceeded):
            if not self._stale_key(index, event, now):
                self._on_action_success(index, event, now, out)
        elif isinstance(event, StepFailed):
            if not self._stale_key(index, event, now):
                self._on_action_failure(index, event, now, out)
        elif isinstance(event, CompensationSucceeded):
            if self._step(index, "compensated", event, now):
                self._disarm(out)
                self._compensate_next(index - 1, now, out)
        elif isinstance(event, CompensationFailed):
            attempt, tries = event.attempt, self.steps[index].compensation_attempt
            if attempt is not None and tries and attempt != tries:
                self._ignored(event, now, "stale: answers an earlier try of the compensation")
            else:
                self._on_compensation_failure(index, event, now, out)
        else:
            self._on_timeout_event(index, event, now, out)
        return out

    def _on_timeout_event(
        self, index: int, event: StepTimedOut | CompensationTimedOut, now: float, out: list[Command]
    ) -> None:
        purpose = _P.ACTION_TIMEOUT if isinstance(event, StepTimedOut) else _P.COMPENSATION_TIMEOUT
        armed = self.timer_id
        if armed is not None and self.timer_step == index and self.timer_purpose is purpose:
            # the driver's own timer for this wait is pointless now: cancel it
            out.append(CancelTimer(saga_id=self.saga_id, timer_id=armed))
            self._timer_fired(now, out)
        else:
            self._ignored(event, now, "stale timeout: the step is not waiting for that reply")

    def _on_action_success(
        self, index: int, event: StepSucceeded, now: float, out: list[Command]
    ) -> None:
        if not self._step(index, "succeed", event, now):
            return
        self.steps[index].result = event.result  # the event's own checked plain copy
        self._disarm(out)
        if index + 1 < len(self.steps):
            self._send(index + 1, now, out)
        else:
            self._finish("complete", None, now, out)

    def _on_action_failure(
        self, index: int, event: StepFailed, now: float, out: list[Command]
    ) -> None:
        definition = self.definition.steps[index]
        run = self.steps[index]
        retriable = definition.kind is StepKind.RETRIABLE
        if retriable and run.attempt < definition.retry.max_attempts:
            if self._step(index, "back_off", event, now):
                # The failed try's key is spent: the retry needs a fresh one. A try fails at most
                # once, so keys never outnumber tries: a key-less duplicate failure arriving when
                # every key but the unsent next one is spent (generation == attempt) spends none.
                if run.generation < run.attempt:
                    run.generation += 1
                if self.timer_purpose is not _P.ACTION_BACKOFF:
                    self._disarm(out)
                    delay = definition.retry.backoff(run.attempt)
                    self._arm(index, _P.ACTION_BACKOFF, delay, now, out)
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
            because = f": {event.reason}" if event.reason else ""
            self._abort(f"step {definition.name!r} failed{because}", index - 1, now, out)

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
                f"compensation of step {definition.name!r} failed {run.compensation_attempt} "
                f"times{_BECAUSE}{self.reason})",
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
            tries = "1 try" if run.attempt == 1 else f"{run.attempt} tries"
            no_reply = f"step {definition.name!r} got no reply after {tries}"
            if definition.kind.before_pivot:
                self._abort(no_reply, index, now, out)
            else:
                self._finish(
                    "escalate",
                    f"{definition.kind.value} {no_reply}: its outcome is unknown",
                    now,
                    out,
                )

    def _abort(self, reason: str, below: int, now: float, out: list[Command]) -> None:
        self._saga("abort", now)
        self.reason = reason
        self._compensate_next(below, now, out)

    def _compensate_next(self, below: int, now: float, out: list[Command]) -> None:
        """Compensate the highest compensatable step at or below ``below`` whose effect landed
        or may have."""
        landed = STEP_LIFECYCLE.landed
        steps = self.definition.steps
        for index in range(below, -1, -1):
            if self.steps[index].state in landed and steps[index].kind.compensable:
                self._send_compensation(index, now, out)
                return
        self._finish("compensated", self.reason, now, out)
