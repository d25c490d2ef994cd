"""Hypothesis strategies for sagas, and the driver that turns drawn operations into events.

An operation is abstract (``("step_ok", CURRENT)``, ``("stale_timer", 3)``); :class:`Adversary`
makes it concrete against the saga's current situation, so the same drawn list exercises late,
duplicate, unknown and stale input whatever the definition is.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Sequence
from typing import Any

from helpers import Outcome
from hypothesis import strategies as st

from sagafsm import (
    CancelTimer,
    Command,
    CompensateStep,
    CompensationFailed,
    CompensationSucceeded,
    CompensationTimedOut,
    Event,
    ExecuteStep,
    RetryPolicy,
    SagaBuilder,
    SagaDefinition,
    SagaFinished,
    SagaInstance,
    SagaState,
    StartTimer,
    StepFailed,
    StepKind,
    StepSucceeded,
    StepTimedOut,
    TimerFired,
    TimerPurpose,
)

CURRENT = -1
"""Target of an operation: the step the saga last sent a command for."""

REPLY_KINDS = ("step_ok", "step_fail", "step_timeout", "comp_ok", "comp_fail", "comp_timeout")
OP_KINDS = (*REPLY_KINDS, "timer", "timer", "stale_timer", "replay")

Op = tuple[str, int]


def retry_policies(max_attempts: int = 3) -> st.SearchStrategy[RetryPolicy]:
    return st.builds(
        RetryPolicy,
        max_attempts=st.integers(1, max_attempts),
        initial_backoff=st.sampled_from([0.0, 0.05, 0.5]),
        multiplier=st.sampled_from([1.0, 2.0]),
        max_backoff=st.just(1.0),
    )


@st.composite
def definitions(draw: st.DrawFn, max_steps: int = 5) -> SagaDefinition:
    """Valid definitions: 1-5 steps; compensatable and read-only ones in any mix, then an
    optional pivot and retriables. Read-only steps are declared both ways the API offers."""
    has_pivot = draw(st.booleans())
    retriables = draw(st.integers(0, 2)) if has_pivot else 0
    low = 0 if has_pivot else 1
    before = draw(
        st.lists(st.booleans(), min_size=low, max_size=max_steps - has_pivot - retriables)
    )
    builder = SagaBuilder("generated")

    def options() -> dict[str, Any]:
        return {
            "timeout": draw(st.sampled_from([0.5, 1.0, 2.0])),
            "retry": draw(retry_policies()),
            "compensation_retry": draw(retry_policies()),
        }

    for i, read_only in enumerate(before):
        if not read_only:
            builder.step(
                f"s{i}", participant=f"p{i}", action="do", compensation="undo", **options()
            )
        elif draw(st.booleans()):
            builder.read_only(f"v{i}", participant=f"p{i}", action="check", **options())
        else:
            builder.step(
                f"v{i}", participant=f"p{i}", action="check", kind=StepKind.READ_ONLY, **options()
            )
    if has_pivot:
        builder.pivot("pivot", participant="bank", action="charge", **options())
    for i in range(retriables):
        builder.retriable(f"r{i}", participant="mail", action="send", **options())
    return builder.build()


_JSON_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**53), 2**53),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=8),
)

json_values: st.SearchStrategy[Any] = st.recursive(
    _JSON_SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)
"""Plain JSON data, as dicts and lists (what survives a JSON round trip unchanged)."""


def json_mappings() -> st.SearchStrategy[dict[str, Any]]:
    """Saga data and step results: string-keyed JSON mappings, often empty."""
    return st.dictionaries(st.text(max_size=5), json_values, max_size=3)


def ops(max_size: int = 40) -> st.SearchStrategy[list[Op]]:
    target = st.one_of(st.just(CURRENT), st.integers(0, 5))
    return st.lists(st.tuples(st.sampled_from(OP_KINDS), target), max_size=max_size)


def scripts(definition: SagaDefinition) -> st.SearchStrategy[dict[str, list[Outcome]]]:
    """Per step, the outcomes of its first few commands (later ones succeed)."""
    outcome = st.sampled_from([Outcome.OK, Outcome.FAIL, Outcome.LOST, Outcome.SILENT])
    return st.fixed_dictionaries(
        {name: st.lists(outcome, max_size=4) for name in definition.step_names}
    )


class Adversary:
    """Feeds one saga arbitrary, concrete events chosen by abstract operations."""

    def __init__(self, saga: SagaInstance) -> None:
        self.saga = saga
        self.now = 0.0
        self.commands: list[Command] = []
        self.events: list[Event] = []
        self.history: list[Command | Event] = []
        self.times: list[float] = []
        """When each event of ``events`` was fed."""
        self.current: str = saga.definition.step_names[0]
        self.live: dict[str, StartTimer] = {}
        self.keys: dict[str, str] = {}
        """The latest idempotency key sent for each step."""
        self.dead: list[str] = []
        self._heap: list[tuple[float, int, str]] = []

    @property
    def saga_id(self) -> str:
        return self.saga.saga_id

    def start(self) -> list[Command]:
        return self.take(self.saga.start(self.now))

    def feed(self, event: Event) -> list[Command]:
        self.events.append(event)
        self.times.append(self.now)
        self.history.append(event)
        if isinstance(event, TimerFired) and event.timer_id in self.live:
            del self.live[event.timer_id]
            self.dead.append(event.timer_id)
        return self.take(self.saga.handle(event, self.now))

    def take(self, commands: Sequence[Command]) -> list[Command]:
        for command in commands:
            self.commands.append(command)
            self.history.append(command)
            if isinstance(command, (ExecuteStep, CompensateStep)):
                self.current = command.step
            if isinstance(command, ExecuteStep):
                self.keys[command.step] = command.idempotency_key
            elif isinstance(command, StartTimer):
                self.live[command.timer_id] = command
                heapq.heappush(
                    self._heap, (self.now + command.delay, len(self._heap), command.timer_id)
                )
            elif isinstance(command, CancelTimer) and command.timer_id in self.live:
                del self.live[command.timer_id]
                self.dead.append(command.timer_id)
        return list(commands)

    def next_timer(self) -> TimerFired | None:
        while self._heap:
            due, _, timer_id = heapq.heappop(self._heap)
            if timer_id in self.live:
                self.now = max(self.now, due)
                return TimerFired(saga_id=self.saga_id, timer_id=timer_id)
        return None

    def event_for(self, op: Op) -> Event:
        kind, target = op
        names = self.saga.definition.step_names
        choices = (*names, "ghost")
        step = self.current if target == CURRENT else choices[target % len(choices)]
        sid = self.saga_id
        if kind == "timer":
            return self.next_timer() or TimerFired(saga_id=sid, timer_id="never-armed")
        if kind == "stale_timer":
            timer_id = self.dead[target % len(self.dead)] if self.dead else "never-armed"
            return TimerFired(saga_id=sid, timer_id=timer_id)
        if kind == "replay" and self.events:
            return self.events[target % len(self.events)]
        key = self.keys.get(step) if target == CURRENT else None  # else: a reply without a key
        result = {"by": step, "seq": len(self.events)}
        return {
            "step_ok": StepSucceeded(saga_id=sid, step=step, result=result, idempotency_key=key),
            "step_fail": StepFailed(saga_id=sid, step=step, idempotency_key=key),
            "step_timeout": StepTimedOut(saga_id=sid, step=step),
            "comp_ok": CompensationSucceeded(saga_id=sid, step=step),
            "comp_fail": CompensationFailed(saga_id=sid, step=step),
            "comp_timeout": CompensationTimedOut(saga_id=sid, step=step),
        }.get(kind, StepSucceeded(saga_id=sid, step=step, result=result))

    def play(self, op: Op) -> list[Command]:
        return self.feed(self.event_for(op))

    def calm_event(self) -> Event | None:
        """A well-behaved world: answer the outstanding request with success, or let time pass."""
        for timer in self.live.values():
            if timer.purpose is TimerPurpose.ACTION_TIMEOUT:
                result = {"calm": len(self.events)}
                return StepSucceeded(saga_id=self.saga_id, step=timer.step, result=result)
            if timer.purpose is TimerPurpose.COMPENSATION_TIMEOUT:
                return CompensationSucceeded(saga_id=self.saga_id, step=timer.step)
        return self.next_timer()

    @property
    def finished(self) -> SagaFinished | None:
        last = self.commands[-1] if self.commands else None
        return last if isinstance(last, SagaFinished) else None


# -- bad input: what a careless caller may hand any public entry point ---------------------------


class Opaque:
    """An object of no type the library knows."""

    def __repr__(self) -> str:
        return "<opaque>"


def _nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(depth):
        value = {"deeper": value}
    return value


def _cyclic() -> dict[str, Any]:
    value: dict[str, Any] = {}
    value["self"] = value
    return value


_ONE_STEP = SagaBuilder("junk").step("a", participant="p", action="do", compensation="undo").build()
COMMANDS: list[Command] = [
    ExecuteStep(
        saga_id="s",
        step="a",
        participant="p",
        action="do",
        attempt=1,
        idempotency_key="k",
        data={},
        results={},
    ),
    CompensateStep(
        saga_id="s",
        step="a",
        participant="p",
        compensation="undo",
        attempt=1,
        idempotency_key="k2",
        action_key="k",
        data={},
        action_result=None,
    ),
    StartTimer(saga_id="s", timer_id="t", delay=1.0, purpose=TimerPurpose.ACTION_TIMEOUT, step="a"),
    CancelTimer(saga_id="s", timer_id="t"),
    SagaFinished(saga_id="s", state=SagaState.FAILED, reason="r"),
]
_STRANGERS: list[Event] = [
    StepSucceeded(saga_id="someone-else", step="a"),
    StepFailed(saga_id="someone-else", step="a", reason="no"),
    TimerFired(saga_id="someone-else", timer_id="t"),
    CompensationFailed(saga_id="someone-else", step="a", attempt=1),
]
"""Valid events for another saga: a saga ignores them, nothing raises."""

_NOT_JSON = st.one_of(
    st.builds(Opaque),
    st.just(math.nan),
    st.just(math.inf),
    st.sets(st.integers(), max_size=2),
    st.binary(max_size=2),
    st.complex_numbers(max_magnitude=5),
)


def junk() -> st.SearchStrategy[Any]:
    """Arbitrary objects: scalars of every type (NaN, infinities, huge ints included), strings,
    mappings with non-string keys or non-JSON values, nested too deep or cyclic, commands,
    events of another saga, library values in the wrong place, and plain objects."""
    return st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.sampled_from([0, -1, 10**400, -(10**400)]),
        st.floats(),
        st.sampled_from([math.nan, math.inf, -math.inf, 0.0, -0.0, 5e-324, 1.7e308]),
        st.text(max_size=6),
        st.binary(max_size=4),
        st.decimals(),
        st.fractions(max_denominator=5),
        st.lists(_JSON_SCALARS, max_size=3),
        st.tuples(st.integers()),
        st.sets(st.integers(), max_size=2),
        st.dictionaries(st.text(max_size=3), _JSON_SCALARS, max_size=3),
        st.dictionaries(
            st.one_of(st.integers(), st.none(), st.booleans()),
            st.integers(),
            min_size=1,
            max_size=2,
        ),
        st.dictionaries(st.text(max_size=3), _NOT_JSON, min_size=1, max_size=2),
        st.builds(_nested, st.sampled_from([33, 40])),
        st.builds(_cyclic),
        st.sampled_from(COMMANDS),
        st.sampled_from(_STRANGERS),
        st.builds(Opaque),
        st.sampled_from(
            [
                object(),
                int,
                len,
                str,
                StepKind.PIVOT,
                "read_only",
                SagaState.PENDING,
                TimerPurpose.ACTION_TIMEOUT,
                RetryPolicy(),
                _ONE_STEP,
                _ONE_STEP.steps[0],
            ]
        ),
        st.builds(SagaInstance, st.just(_ONE_STEP), st.just("stray")),
    )
