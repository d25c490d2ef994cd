"""restore() validates the whole snapshot: types, ranges, and one story told by the saga's
state, its steps' states, their results and its timer. Whatever it accepts runs."""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Callable
from typing import Any

import pytest
from helpers import Outcome, SagaPair, saga_of
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from strategies import Adversary, Op, definitions, json_values, ops

from sagafsm import (
    InvalidSnapshot,
    RetryPolicy,
    SagaDefinition,
    SagaInstance,
    SagaState,
    StepState,
    TimerPurpose,
)
from sagafsm.lifecycle import STEP_LIFECYCLE

OK, FAIL, LOST, HOLD = Outcome.OK, Outcome.FAIL, Outcome.LOST, Outcome.HOLD
ABC = saga_of("a", "b", "c", retry=RetryPolicy(max_attempts=3))
PIVOTED = saga_of("a", pivot="p", retry=RetryPolicy(max_attempts=3))
STATE, ATTEMPT, COMPENSATION_ATTEMPT, GENERATION, RESULT = range(5)
TIMER_ID, PURPOSE, TIMER_STEP, DUE = range(4)


def snapshot_when(
    definition: SagaDefinition,
    until: Callable[[SagaPair], bool] | None = None,
    **scripts: Any,
) -> dict[str, Any]:
    """A real snapshot, taken when ``until`` holds (or once the saga finished), as JSON data."""
    pair = SagaPair(definition, **scripts).start()
    pair.run(until=None if until is None else lambda: until(pair))
    return json.loads(json.dumps(pair.saga.snapshot()))


def executing_b() -> dict[str, Any]:
    return snapshot_when(ABC, lambda p: p.saga.step_state("b") is StepState.EXECUTING)


def backing_off_b() -> dict[str, Any]:
    return snapshot_when(
        ABC, lambda p: p.saga.step_state("b") is StepState.WAITING_RETRY, actions={"b": [LOST]}
    )


def compensating_a() -> dict[str, Any]:
    return snapshot_when(
        ABC,
        lambda p: p.saga.step_state("a") is StepState.COMPENSATING,
        actions={"c": [FAIL]},
        compensations={"a": [LOST]},
    )


def failed() -> dict[str, Any]:
    return snapshot_when(ABC, actions={"c": [FAIL]})


def completed() -> dict[str, Any]:
    return snapshot_when(ABC)


def compensating_timed_out_b() -> dict[str, Any]:
    """b got no reply after every try, so it is undone first (it has no result to undo)."""
    return snapshot_when(
        ABC,
        lambda p: p.saga.step_state("b") is StepState.COMPENSATING,
        actions={"b": [LOST] * 3},
        compensations={"b": [LOST]},
    )


def pivot_lost() -> dict[str, Any]:
    return snapshot_when(PIVOTED, actions={"p": [LOST, LOST, LOST]})


def compensation_given_up() -> dict[str, Any]:
    return snapshot_when(ABC, actions={"b": [FAIL]}, compensations={"a": [FAIL] * 5})


def changed(base: Callable[[], dict[str, Any]], *edits: tuple[tuple[Any, ...], Any]) -> Any:
    """The base snapshot with each value at a path (keys and indexes) replaced."""
    data = base()
    for path, value in edits:
        target = data
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
    return data


def step(index: int, column: int) -> tuple[Any, ...]:
    return ("steps", index, column)


def timer(column: int) -> tuple[Any, ...]:
    return ("timer", column)


@pytest.mark.parametrize(
    "base",
    [
        executing_b,
        backing_off_b,
        compensating_a,
        failed,
        pivot_lost,
        compensation_given_up,
        completed,
        compensating_timed_out_b,
    ],
    ids=lambda f: f.__name__,
)
def test_the_fixtures_are_valid_snapshots(base: Callable[[], dict[str, Any]]) -> None:
    """Each case below breaks one thing in one of these, which restore() accepts as they are."""
    data = base()
    definition = PIVOTED if base is pivot_lost else ABC
    assert SagaInstance.restore(definition, data).snapshot() == data


CASES = [
    ("attempt=-5", changed(executing_b, (step(1, ATTEMPT), -5)), "attempt must be an integer >= 0"),
    ("attempt=1.7", changed(executing_b, (step(1, ATTEMPT), 1.7)), "attempt must be an integer"),
    ("attempt=True", changed(executing_b, (step(1, ATTEMPT), True)), "attempt must be an integer"),
    ("attempt>max", changed(executing_b, (step(1, ATTEMPT), 4)), "at most 3"),
    ("pending-with-tries", changed(executing_b, (step(2, ATTEMPT), 1)), "'c' is pending after 1"),
    ("due=nan", changed(executing_b, (timer(DUE), math.nan)), "due time must be a finite number"),
    ("due=inf", changed(executing_b, (timer(DUE), math.inf)), "due time must be a finite number"),
    ("due=10**400", changed(executing_b, (timer(DUE), 10**400)), "due time must be a finite"),
    ("due=str", changed(executing_b, (timer(DUE), "soon")), "due time must be a finite number"),
    (
        "completed-while-running",
        changed(executing_b, (("state",), "completed")),
        "the saga is completed, but its steps .* say pending",
    ),
    (
        "finished-with-timer",
        changed(failed, (("timer",), ["saga-1#6", "action_timeout", 0, 1.0])),
        "a failed saga has a timer armed",
    ),
    ("running-without-timer", changed(executing_b, (("timer",), None)), "timer must be armed"),
    (
        "timer-purpose-mismatch",
        changed(executing_b, (timer(PURPOSE), "action_backoff")),
        "'b' is executing, so its action_timeout timer must be armed",
    ),
    (
        "backoff-timer-while-compensating",
        changed(compensating_a, (timer(PURPOSE), "action_backoff")),
        "compensation_timeout timer must be armed",
    ),
    ("timer-on-another-step", changed(executing_b, (timer(TIMER_STEP), 0)), "must be armed"),
    ("timer-not-the-last-armed", changed(executing_b, (timer(TIMER_ID), "saga-1#1")), "last one"),
    ("timer_seq<0", changed(executing_b, (("timer_seq",), -1)), "timer_seq must be an integer"),
    (
        "result-on-a-pending-step",
        changed(executing_b, (step(2, RESULT), {"x": 1})),
        "'c' has a result, but its success reply did not arrive",
    ),
    (
        "result-on-a-failed-step",
        changed(failed, (step(2, RESULT), {"x": 1})),
        "'c' has a result, but its success reply did not arrive",
    ),
    (
        "result-on-an-executing-step",
        changed(executing_b, (step(1, RESULT), {})),
        "'b' has a result",
    ),
    (
        "no-result-on-a-succeeded-step",
        changed(executing_b, (step(0, RESULT), None)),
        "'a' has no result, but its success reply did arrive",
    ),
    (
        "result-not-a-mapping",
        changed(executing_b, (step(0, RESULT), [1, 2])),
        "result must be a JSON mapping or null",
    ),
    (
        "steps-out-of-order",
        changed(
            executing_b, (step(0, STATE), "pending"), (step(0, ATTEMPT), 0), (step(0, RESULT), None)
        ),
        "'a' is pending, yet a later step was sent",
    ),
    (
        "compensation-bottom-up",
        changed(compensating_a, (step(1, STATE), "succeeded"), (step(1, COMPENSATION_ATTEMPT), 0)),
        "compensations run top down, one at a time; its steps are",
    ),
    (
        "compensated-with-no-culprit",
        changed(executing_b, (step(0, STATE), "compensated"), (step(0, COMPENSATION_ATTEMPT), 1)),
        "'saga-1': a step is compensated although no step before the pivot failed; its steps are",
    ),
    (
        "compensation-stopped",
        changed(
            compensating_a,
            (step(0, STATE), "succeeded"),
            (step(0, COMPENSATION_ATTEMPT), 0),
            (("timer",), None),
        ),
        "its compensation stopped",
    ),
    (
        "failed-with-a-step-left-applied",
        changed(failed, (step(0, STATE), "succeeded"), (step(0, COMPENSATION_ATTEMPT), 0)),
        "compensation stopped",
    ),
    (
        "pending-with-a-reason",
        changed(executing_b, (("reason",), "why not")),
        "a pending saga has no reason to give",
    ),
    (
        "failed-without-a-reason",
        changed(failed, (("reason",), None)),
        "a failed saga has no reason$",
    ),
    (
        "backing-off-with-no-tries-left",
        changed(backing_off_b, (step(1, ATTEMPT), 3)),
        "'b' is waiting_retry after 3 of 3 tries",
    ),
    (
        "timed-out-with-tries-left",
        changed(pivot_lost, (step(1, ATTEMPT), 2)),
        "'p' is timed_out after 2 of 3 tries",
    ),
    (
        "compensation-given-up-early",
        changed(compensation_given_up, (step(0, COMPENSATION_ATTEMPT), 4)),
        "'a' is compensation_failed after 4 of 5 compensation tries",
    ),
    (
        "compensating-without-compensation-tries",
        changed(compensating_a, (step(0, COMPENSATION_ATTEMPT), 0)),
        "'a' is compensating after 0 of 5 compensation tries",
    ),
    (
        "generation-on-a-compensatable-step",
        changed(executing_b, (step(1, GENERATION), 1)),
        "generation must be an integer >= 0 and at most 0",
    ),
    ("data-not-json", changed(executing_b, (("data",), {"x": math.nan})), "data must be a JSON"),
    ("data-not-a-mapping", changed(executing_b, (("data",), [1])), "data must be a JSON mapping"),
    ("saga_id-empty", changed(executing_b, (("saga_id",), "")), "saga_id must be a non-empty"),
    ("saga_id-int", changed(executing_b, (("saga_id",), 5)), "saga_id must be a non-empty"),
    ("step-state-of-a-saga", changed(executing_b, (step(0, STATE), "completed")), "must be one of"),
    ("version-as-string", changed(executing_b, (("version",), "2")), "unsupported snapshot"),
    ("version-as-bool", changed(executing_b, (("version",), True)), "unsupported snapshot"),
    ("reason-not-a-string", changed(failed, (("reason",), 3)), "reason must be a string"),
]


@pytest.mark.parametrize(("data", "message"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_an_inconsistent_snapshot_is_refused_naming_the_problem(data: Any, message: str) -> None:
    """Each broken snapshot raises InvalidSnapshot (a ValueError) that says what is wrong."""
    definition = PIVOTED if data["step_names"] == list(PIVOTED.step_names) else ABC
    with pytest.raises(InvalidSnapshot, match=message) as info:
        SagaInstance.restore(definition, data)
    assert isinstance(info.value, ValueError)


def test_a_retriable_step_cannot_have_spent_more_keys_than_it_had_tries() -> None:
    """generation counts failed tries, each spending a key: never more than the tries sent."""
    definition = saga_of("a", pivot="p", retriable=["r"], retry=RetryPolicy(max_attempts=3))
    data = snapshot_when(
        definition,
        lambda p: p.saga.step_state("r") is StepState.WAITING_RETRY,
        actions={"r": [FAIL]},
    )
    assert data["steps"][2][ATTEMPT] == data["steps"][2][GENERATION] == 1
    SagaInstance.restore(definition, data)
    data["steps"][2][GENERATION] = 2
    with pytest.raises(InvalidSnapshot, match="'r' has spent 2 keys in 1 tries"):
        SagaInstance.restore(definition, data)


def test_extra_keys_are_ignored_so_a_subclass_may_store_more() -> None:
    """A snapshot with a key restore() does not know still restores."""
    data = {**executing_b(), "cursor": 3}
    assert SagaInstance.restore(ABC, data).step_state("b") is StepState.EXECUTING


def test_a_refused_snapshot_builds_nothing() -> None:
    """restore() checks everything before writing anything: there is no half-restored saga."""
    data = changed(executing_b, (("timer",), None))
    with pytest.raises(InvalidSnapshot):
        SagaInstance.restore(ABC, data)
    assert SagaInstance.restore(ABC, executing_b()).timer_purpose is TimerPurpose.ACTION_TIMEOUT


# -- random corruptions ---------------------------------------------------------------------------

STEP_WORDS = [s.value for s in StepState]
SAGA_WORDS = [s.value for s in SagaState]
PURPOSES = [p.value for p in TimerPurpose]
ANYTHING = st.one_of(
    json_values,
    st.sampled_from(STEP_WORDS + SAGA_WORDS + PURPOSES),
    st.sampled_from([math.nan, math.inf, 10**400, True, None, [], {}]),
)


def plausible(value: Any) -> st.SearchStrategy[Any]:
    """Another value of the same kind, so that many corruptions pass the type checks and test
    the consistency checks behind them."""
    if isinstance(value, str):
        for words in (STEP_WORDS, SAGA_WORDS, PURPOSES):
            if value in words:
                return st.sampled_from(words)
        return st.sampled_from([value + "x", "s#1", "s#2", "s#3"])
    if isinstance(value, bool) or value is None:
        return st.one_of(st.none(), st.just({}), st.just({"by": "x"}), st.text(max_size=3))
    if isinstance(value, int):
        return st.integers(max(0, value - 2), value + 2)
    if isinstance(value, float):
        return st.sampled_from([0.0, value / 2, value + 1.0, value * 10])
    return st.one_of(st.just({}), st.just({"by": "x"}), st.none())


def paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every place in nested JSON data, as the keys and indexes leading there."""
    found: list[tuple[Any, ...]] = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, item in value.items():
            found += paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += paths(item, (*prefix, index))
    return found


@st.composite
def corrupted(draw: st.DrawFn, snapshot: dict[str, Any]) -> Any:
    """The snapshot with one to three places replaced by another value, or removed."""
    data = copy.deepcopy(snapshot)
    for _ in range(draw(st.integers(1, 3))):
        where = paths(data)
        if not where:
            break
        path = draw(st.sampled_from(where))
        target = data
        for key in path[:-1]:
            target = target[key]
        how = draw(st.integers(0, 9))
        if how == 0:
            del target[path[-1]]
        else:
            target[path[-1]] = draw(ANYTHING if how == 1 else plausible(target[path[-1]]))
    return data


def played(definition: SagaDefinition, operations: list[Op]) -> Adversary:
    run = Adversary(SagaInstance(definition, "s", data={"n": 1}))
    run.start()
    for op in operations:
        run.play(op)
    return run


@pytest.mark.slow
@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
@given(definitions(), ops(max_size=20), st.data())
def test_a_corrupted_snapshot_is_refused_or_restores_to_a_saga_that_runs_to_an_end(
    definition: SagaDefinition, operations: list[Op], data: st.DataObject
) -> None:
    """Nothing but InvalidSnapshot escapes restore(); a saga it accepts re-snapshots to itself,
    resumes, and finishes once the world calms down, every snapshot on the way accepted too."""
    run = played(definition, operations)
    snapshot = json.loads(json.dumps(run.saga.snapshot()))
    for bad in data.draw(st.lists(corrupted(snapshot), min_size=1, max_size=8)):
        try:
            saga = SagaInstance.restore(definition, bad)
        except InvalidSnapshot:
            continue
        runs_to_an_end(saga, run.now)


def runs_to_an_end(saga: SagaInstance, now: float) -> None:
    definition = saga.definition
    assert SagaInstance.restore(definition, saga.snapshot()).snapshot() == saga.snapshot()
    world = Adversary(saga)
    world.now = now
    world.take(saga.resume(world.now))
    for _ in range(4 * len(definition.steps) + 4):
        if saga.finished:
            break
        event = world.calm_event()
        assert event is not None, f"hangs: nothing in flight in {saga.snapshot()}"
        world.feed(event)
        SagaInstance.restore(definition, json.loads(json.dumps(saga.snapshot())))
    assert saga.finished, saga.snapshot()
    assert settled_violations(saga) == []


def settled_violations(saga: SagaInstance) -> list[str]:
    """What a finished saga's steps must look like, whatever state it was restored in."""
    states = [run.state for run in saga.steps]
    kinds = [step.kind for step in saga.definition.steps]
    out = [f"step {i} still {s.value}" for i, s in enumerate(states) if s in STEP_LIFECYCLE.waiting]
    sent = [i for i, s in enumerate(states) if s is not StepState.PENDING]
    if sent and any(s is StepState.PENDING for s in states[: sent[-1]]):
        out.append(f"a step was skipped: {[s.value for s in states]}")
    if saga.state is SagaState.COMPLETED and set(states) != {StepState.SUCCEEDED}:
        out.append(f"completed with steps {[s.value for s in states]}")
    if saga.state is SagaState.FAILED and any(
        k.compensable and s in STEP_LIFECYCLE.landed | {StepState.COMPENSATION_FAILED}
        for k, s in zip(kinds, states, strict=True)
    ):
        out.append(f"failed with an effect left in place: {[s.value for s in states]}")
    succeeded = STEP_LIFECYCLE.reachable(StepState.SUCCEEDED)
    out += [
        f"step {i} has a result but never succeeded"
        for i, run in enumerate(saga.steps)
        if run.result is not None and run.state not in succeeded
    ]
    return out
