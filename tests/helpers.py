"""A tiny in-memory participant pair for engine tests (the idea of h11's ``ConnectionPair``).

``SagaPair`` wires one :class:`~sagafsm.SagaInstance` to fake participants and a fake timer queue,
with zero-latency delivery. Participants answer each command with a scripted :class:`Outcome` and
keep a :class:`Ledger` of what they actually did, so tests judge semantics from effects, not from
what the engine believes.

Participants hand back a result of their own making on every success (``{"id": "b-2"}``, the same
for every reply to one key), and check what they are handed: the saga's data, the results of the
earlier steps, and, for a compensation, its own action's result. A compensation carrying another
result is refused (nothing undone, a failure reply), as the simulator's participants do.
"""

from __future__ import annotations

import enum
import heapq
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import attrs

from sagafsm import (
    CancelTimer,
    Command,
    CompensateStep,
    CompensationSucceeded,
    Event,
    ExecuteStep,
    SagaDefinition,
    SagaFinished,
    SagaInstance,
    StartTimer,
    StepFailed,
    StepSucceeded,
    TimerFired,
    TimerPurpose,
)
from sagafsm.events import CompensationFailed


class Outcome(enum.Enum):
    """How a fake participant treats one command it receives."""

    OK = "ok"
    """Apply (or find already applied) and reply with success."""
    FAIL = "fail"
    """Apply nothing and reply with a failure."""
    LOST = "lost"
    """The request never arrives: nothing applied, no reply."""
    SILENT = "silent"
    """Applied, but the reply is lost."""
    HOLD = "hold"
    """Applied; the success reply is kept in ``SagaPair.held`` until the test releases it."""


@attrs.frozen
class Effect:
    kind: str  # "action" or "compensation"
    step: str
    key: str


@attrs.define
class Ledger:
    """What the participants actually did."""

    effects: list[Effect] = attrs.Factory(list)
    applied_keys: set[str] = attrs.Factory(set)
    tombstones: set[str] = attrs.Factory(set)
    absorbed: list[Command] = attrs.Factory(list)
    """Commands that changed nothing: duplicates, and actions arriving after their tombstone."""
    handed: dict[str, Mapping[str, Any]] = attrs.Factory(dict)
    """Action key -> the result the participant handed back for it (every reply the same)."""
    refused: list[CompensateStep] = attrs.Factory(list)
    """Compensations refused because they carried a result other than their action's."""
    wrong_input: list[str] = attrs.Factory(list)
    """What a command carried that the participant did not hand out (data, earlier results)."""

    def actions(self) -> list[str]:
        return [e.step for e in self.effects if e.kind == "action"]

    def compensations(self) -> list[str]:
        return [e.step for e in self.effects if e.kind == "compensation"]

    def net(self) -> set[str]:
        """Steps whose action is applied and not compensated."""
        return set(self.actions()) - set(self.compensations())


class Participants:
    """Every participant of a saga, scripted per step; one shared ledger."""

    def __init__(
        self,
        actions: dict[str, Sequence[Outcome]] | None = None,
        compensations: dict[str, Sequence[Outcome]] | None = None,
        data: Mapping[str, Any] | None = None,
    ) -> None:
        self._actions = {k: deque(v) for k, v in (actions or {}).items()}
        self._compensations = {k: deque(v) for k, v in (compensations or {}).items()}
        self.data = {} if data is None else data
        self.ledger = Ledger()
        self._latest: dict[str, str] = {}
        """Step -> the key of its latest action the participant handed a result for."""

    def receive(self, command: ExecuteStep | CompensateStep) -> tuple[Outcome, Event | None]:
        """Handle one command; return its outcome and the reply (None if no reply)."""
        script = self._actions if isinstance(command, ExecuteStep) else self._compensations
        queue = script.get(command.step)
        outcome = queue.popleft() if queue else Outcome.OK
        if outcome is Outcome.LOST:
            return outcome, None
        self._check_input(command)
        if isinstance(command, CompensateStep) and not self._own_result(command):
            self.ledger.refused.append(command)
            return Outcome.FAIL, self._failure(command)
        if outcome is Outcome.FAIL and command.idempotency_key not in self.ledger.applied_keys:
            return outcome, self._failure(command)
        # a key already applied is answered with success, whatever the script says
        self.apply(command)
        if outcome is Outcome.SILENT:
            return outcome, None
        return outcome, self._success(command)

    def apply(self, command: ExecuteStep | CompensateStep) -> None:
        """Apply a command the participant's way: dedup by key, tombstones for early undo."""
        ledger = self.ledger
        if command.idempotency_key in ledger.applied_keys:
            ledger.absorbed.append(command)
            return
        if isinstance(command, ExecuteStep):
            if command.idempotency_key in ledger.tombstones:
                ledger.absorbed.append(command)
                return
            ledger.applied_keys.add(command.idempotency_key)
            ledger.effects.append(Effect("action", command.step, command.idempotency_key))
            return
        ledger.applied_keys.add(command.idempotency_key)
        if command.action_key in ledger.applied_keys:
            ledger.effects.append(Effect("compensation", command.step, command.idempotency_key))
        else:  # the action never arrived: leave a tombstone so it becomes a no-op
            ledger.tombstones.add(command.action_key)

    def _check_input(self, command: ExecuteStep | CompensateStep) -> None:
        wrong = self.ledger.wrong_input
        if command.data != self.data:
            wrong.append(f"{command.step!r} was handed data {command.data!r}")
        if isinstance(command, ExecuteStep):
            handed = {step: self.ledger.handed[key] for step, key in self._latest.items()}
            for step, result in command.results.items():
                if handed.get(step) != result:
                    wrong.append(f"{command.step!r} was handed {step!r}'s result {result!r}")

    def _own_result(self, command: CompensateStep) -> bool:
        """A compensation carries its own action's result, or says no reply arrived (None)."""
        if command.action_result is None:
            return True
        return self.ledger.handed.get(command.action_key) == command.action_result

    def _success(self, command: ExecuteStep | CompensateStep) -> Event:
        if isinstance(command, ExecuteStep):
            key = command.idempotency_key
            handed = self.ledger.handed
            if key not in handed:
                handed[key] = {"id": f"{command.step}-{len(handed) + 1}"}
            self._latest[command.step] = key
            return StepSucceeded(
                saga_id=command.saga_id, step=command.step, result=handed[key], idempotency_key=key
            )
        return CompensationSucceeded(saga_id=command.saga_id, step=command.step)

    @staticmethod
    def _failure(command: ExecuteStep | CompensateStep) -> Event:
        if isinstance(command, ExecuteStep):
            key = command.idempotency_key
            return StepFailed(
                saga_id=command.saga_id, step=command.step, reason="scripted", idempotency_key=key
            )
        return CompensationFailed(saga_id=command.saga_id, step=command.step, reason="scripted")


@attrs.frozen
class Timer:
    due: float
    seq: int
    command: StartTimer


class FakeClock:
    """A virtual clock and the timers armed on it; cancelled timers never fire."""

    def __init__(self) -> None:
        self.now = 0.0
        self._heap: list[tuple[float, int, StartTimer]] = []
        self._seq = 0
        self.live: dict[str, StartTimer] = {}
        self.started: list[StartTimer] = []
        self.fired: list[StartTimer] = []

    def start(self, command: StartTimer) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (self.now + command.delay, self._seq, command))
        self.live[command.timer_id] = command
        self.started.append(command)

    def cancel(self, timer_id: str) -> None:
        self.live.pop(timer_id, None)

    def pop(self) -> TimerFired | None:
        """Advance to the next live timer and return its firing (None if no timer is live)."""
        while self._heap:
            due, _, command = heapq.heappop(self._heap)
            if command.timer_id in self.live:
                del self.live[command.timer_id]
                self.now = max(self.now, due)
                self.fired.append(command)
                return TimerFired(saga_id=command.saga_id, timer_id=command.timer_id)
        return None

    def delays(self, purpose: TimerPurpose) -> list[float]:
        return [t.delay for t in self.started if t.purpose is purpose]


class SagaPair:
    """One saga, its participants and its clock, with zero-latency delivery."""

    def __init__(
        self,
        definition: SagaDefinition,
        *,
        actions: dict[str, Sequence[Outcome]] | None = None,
        compensations: dict[str, Sequence[Outcome]] | None = None,
        saga_id: str = "saga-1",
        data: Mapping[str, Any] | None = None,
    ) -> None:
        self.recorder = Recorder()
        self.saga = SagaInstance(definition, saga_id, data=data, recorder=self.recorder)
        self.participants = Participants(actions, compensations, data)
        self.clock = FakeClock()
        self.commands: list[Command] = []
        self.history: list[Command | Event] = []
        self.inbox: deque[Event] = deque()
        self.held: list[Event] = []
        self.finished: SagaFinished | None = None

    @property
    def ledger(self) -> Ledger:
        return self.participants.ledger

    def start(self) -> SagaPair:
        self.take(self.saga.start(self.clock.now))
        return self

    def deliver(self, event: Event) -> list[Command]:
        """Hand one event to the saga now; dispatch and return the commands it implies."""
        self.history.append(event)
        commands = self.saga.handle(event, self.clock.now)
        self.take(commands)
        return commands

    def take(self, commands: Iterable[Command]) -> None:
        for command in commands:
            if self.finished is not None:
                raise AssertionError(f"command after SagaFinished: {command!r}")
            self.commands.append(command)
            self.history.append(command)
            if isinstance(command, (ExecuteStep, CompensateStep)):
                outcome, reply = self.participants.receive(command)
                if outcome is Outcome.HOLD:
                    self.held.append(reply)  # type: ignore[arg-type]
                elif reply is not None:
                    self.inbox.append(reply)
            elif isinstance(command, StartTimer):
                self.clock.start(command)
            elif isinstance(command, CancelTimer):
                self.clock.cancel(command.timer_id)
            elif isinstance(command, SagaFinished):
                self.finished = command

    def step(self) -> Event | None:
        """Deliver the next reply, or else fire the next live timer; None if nothing is left."""
        event = self.inbox.popleft() if self.inbox else self.clock.pop()
        if event is not None:
            self.deliver(event)
        return event

    def run(self, until: Callable[[], bool] | None = None, max_events: int = 1_000) -> SagaPair:
        """Step until ``until()`` holds, or until nothing is left to do."""
        for _ in range(max_events):
            if until is not None and until():
                return self
            if self.step() is None:
                if until is not None:
                    raise AssertionError("ran out of events before the condition held")
                return self
        raise AssertionError(f"no quiescence after {max_events} events: the saga hangs")

    def sent(self, kind: type[Command]) -> list[Command]:
        return [c for c in self.commands if isinstance(c, kind)]

    def sent_steps(self, kind: type[ExecuteStep] | type[CompensateStep]) -> list[str]:
        return [c.step for c in self.commands if isinstance(c, kind)]


@attrs.define
class Recorder:
    """A :class:`~sagafsm.Recorder` that keeps every transition and every ignored event."""

    moves: list[tuple[str | None, str, Any, Any]] = attrs.Factory(list)
    drops: list[tuple[Event, str]] = attrs.Factory(list)

    def transition(
        self, now: float, saga_id: str, step: str | None, trigger: str, source: Any, dest: Any
    ) -> None:
        self.moves.append((step, trigger, source, dest))

    def ignored(self, now: float, saga_id: str, event: Event, reason: str) -> None:
        self.drops.append((event, reason))

    def reasons_for(self, event: Event) -> list[str]:
        return [reason for e, reason in self.drops if e == event]

    def step_path(self, step: str) -> list[str]:
        """The step's triggers, in order."""
        return [trigger for s, trigger, _, _ in self.moves if s == step]

    def saga_path(self) -> list[str]:
        return [trigger for s, trigger, _, _ in self.moves if s is None]


def saga_of(
    *names: str,
    pivot: str | None = None,
    retriable: Sequence[str] = (),
    read_only: Sequence[str] = (),
    name: str = "order",
    **options: Any,
) -> SagaDefinition:
    """Steps ``names`` (compensatable, undone by ``un<name>``; read-only if also in
    ``read_only``), then a pivot, then retriables."""
    from sagafsm import SagaBuilder

    builder = SagaBuilder(name, **options)
    for step in names:
        if step in read_only:
            builder.read_only(step, participant=f"p-{step}", action=f"do_{step}")
        else:
            builder.step(
                step, participant=f"p-{step}", action=f"do_{step}", compensation=f"un{step}"
            )
    if pivot is not None:
        builder.pivot(pivot, participant=f"p-{pivot}", action=f"do_{pivot}")
    for step in retriable:
        builder.retriable(step, participant=f"p-{step}", action=f"do_{step}")
    return builder.build()
