"""A tiny in-memory participant pair for engine tests (the idea of h11's ``ConnectionPair``).

``SagaPair`` wires one :class:`~sagafsm.SagaInstance` to fake participants and a fake timer queue,
with zero-latency delivery. Participants answer each command with a scripted :class:`Outcome` and
keep a :class:`Ledger` of what they actually did, so tests judge semantics from effects, not from
what the engine believes.
"""

from __future__ import annotations

import enum
import heapq
from collections import deque
from collections.abc import Callable, Iterable, Sequence
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
    ) -> None:
        self._actions = {k: deque(v) for k, v in (actions or {}).items()}
        self._compensations = {k: deque(v) for k, v in (compensations or {}).items()}
        self.ledger = Ledger()

    def receive(self, command: ExecuteStep | CompensateStep) -> tuple[Outcome, Event | None]:
        """Handle one command; return its outcome and the reply (None if no reply)."""
        script = self._actions if isinstance(command, ExecuteStep) else self._compensations
        queue = script.get(command.step)
        outcome = queue.popleft() if queue else Outcome.OK
        if outcome is Outcome.LOST:
            return outcome, None
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

    @staticmethod
    def _success(command: ExecuteStep | CompensateStep) -> Event:
        if isinstance(command, ExecuteStep):
            key = command.idempotency_key
            return StepSucceeded(saga_id=command.saga_id, step=command.step, idempotency_key=key)
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
    ) -> None:
        self.recorder = Recorder()
        self.saga = SagaInstance(definition, saga_id, recorder=self.recorder)
        self.participants = Participants(actions, compensations)
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
    name: str = "order",
    **options: Any,
) -> SagaDefinition:
    """Compensatable steps ``names`` (undone by ``un<name>``), then a pivot, then retriables."""
    from sagafsm import SagaBuilder

    builder = SagaBuilder(name, **options)
    for step in names:
        builder.step(step, participant=f"p-{step}", action=f"do_{step}", compensation=f"un{step}")
    if pivot is not None:
        builder.pivot(pivot, participant=f"p-{pivot}", action=f"do_{pivot}")
    for step in retriable:
        builder.retriable(step, participant=f"p-{step}", action=f"do_{step}")
    return builder.build()


# -- invariants: pure functions over what the engine emitted, each returning violations ----------


_COMMANDS = (ExecuteStep, CompensateStep, StartTimer, CancelTimer, SagaFinished)


def command_violations(definition: SagaDefinition, history: Sequence[Command | Event]) -> list[str]:
    """Every rule a saga's history (events and commands, interleaved) must obey, whatever the
    replies were. A command-only history is fine too: timers then count as live until cancelled.
    """
    commands = [c for c in history if isinstance(c, _COMMANDS)]
    out: list[str] = []
    index = definition.index_of
    executed: list[int] = []
    compensated: list[int] = []
    action_keys: dict[str, set[str]] = {}
    compensation_keys: dict[str, set[str]] = {}
    live: set[str] = set()
    pivot_passed = False
    kinds = {s.name: s.kind for s in definition.steps}
    if any(isinstance(c, SagaFinished) for c in commands[:-1]):
        out.append("a command after SagaFinished")
    for command in history:
        if isinstance(command, TimerFired):
            live.discard(command.timer_id)
        elif isinstance(command, ExecuteStep):
            if index(command.step) not in executed:
                executed.append(index(command.step))
            action_keys.setdefault(command.step, set()).add(command.idempotency_key)
            if kinds[command.step].value == "retriable":
                pivot_passed = True
        elif isinstance(command, CompensateStep):
            i = index(command.step)
            if i not in executed:
                out.append(f"compensating {command.step!r}, whose action was never sent")
            if compensated and i > compensated[-1]:
                out.append(f"compensating {command.step!r} after a step below it")
            if kinds[command.step].value != "compensatable" or pivot_passed:
                out.append(f"compensating {command.step!r} at or after the pivot")
            compensated.append(i)
            compensation_keys.setdefault(command.step, set()).add(command.idempotency_key)
            if command.action_key not in action_keys.get(command.step, set()):
                out.append(f"{command.step!r}: compensation names an action key never sent")
        elif isinstance(command, StartTimer):
            if live:
                out.append(f"timer {command.timer_id} armed while {sorted(live)} still live")
            live = {command.timer_id}
        elif isinstance(command, CancelTimer):
            live.discard(command.timer_id)
    if executed != list(range(len(executed))):
        out.append(f"forward steps sent out of order: {executed}")
    # one key for every try; only a retriable step retried after a definite failure gets a new one
    out += [
        f"{s!r} executed under keys {k}"
        for s, k in action_keys.items()
        if len(k) != 1 and kinds[s].value != "retriable"
    ]
    out += [f"{s!r} undone under keys {k}" for s, k in compensation_keys.items() if len(k) != 1]
    finished = [c for c in commands if isinstance(c, SagaFinished)]
    if finished and finished[-1].state.value == "operator_required" and not finished[-1].reason:
        out.append("operator required without a reason")
    return out


def ledger_violations(
    definition: SagaDefinition, finished: SagaFinished, ledger: Ledger
) -> list[str]:
    """The design's correctness properties, judged from what the participants did."""
    out: list[str] = []
    names = definition.step_names
    actions, compensations = ledger.actions(), ledger.compensations()
    if len(actions) != len(set(actions)):
        out.append(f"an action applied twice: {actions}")
    if len(compensations) != len(set(compensations)):
        out.append(f"a compensation applied twice: {compensations}")
    if not set(compensations) <= set(actions):
        out.append(f"compensated {compensations} but applied only {actions}")
    order = [names.index(s) for s in compensations]
    if order != sorted(order, reverse=True):
        out.append(f"compensations not in reverse order: {compensations}")
    state = finished.state.value
    if state == "completed" and (actions != list(names) or compensations):
        out.append(f"completed, yet applied {actions} and compensated {compensations}")
    if state == "failed" and ledger.net():
        out.append(f"failed, yet {sorted(ledger.net())} still applied")
    kinds = {s.name: s.kind.value for s in definition.steps}
    if any(kinds[s] != "compensatable" for s in compensations):
        out.append(f"a step at or after the pivot was compensated: {compensations}")
    return out
