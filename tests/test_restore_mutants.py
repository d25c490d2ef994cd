"""Snapshot refusals that mutation testing (mutation/run, issue 15) found loosely pinned: each
broken snapshot is refused with its whole message, which is what a user reads."""

from __future__ import annotations

import math
from typing import Any

import pytest
from helpers import Outcome, saga_of
from test_restore import (
    ABC,
    ATTEMPT,
    COMPENSATION_ATTEMPT,
    GENERATION,
    PIVOTED,
    RESULT,
    STATE,
    changed,
    executing_b,
    pivot_lost,
    snapshot_when,
    step,
    timer,
)

from sagafsm import InvalidSnapshot, RetryPolicy, SagaInstance, StepState

WHERE = "snapshot of saga 'saga-1'"
TIMER_ID, PURPOSE, TIMER_STEP = 0, 1, 2
AFTER_PIVOT = saga_of("a", pivot="p", retriable=["r"])
VERIFIED = saga_of("v", "a", read_only=["v"])
RETRIED = saga_of("a", pivot="p", retriable=["r"], retry=RetryPolicy(max_attempts=3))
TRIED_ONCE = saga_of("a", pivot="p", retriable=["r"], retry=RetryPolicy(max_attempts=1))
FAIL, OK = Outcome.FAIL, Outcome.OK


def retriable_failed() -> dict[str, Any]:
    """r failed on all 3 tries: two keys spent (the last failure needs no retry)."""
    return snapshot_when(RETRIED, actions={"r": [FAIL] * 3})


def compensation_backing_off() -> dict[str, Any]:
    return snapshot_when(
        ABC,
        lambda p: p.saga.step_state("a") is StepState.WAITING_COMPENSATION_RETRY,
        actions={"b": [FAIL]},
        compensations={"a": [FAIL, OK]},
    )


def pivot_done_retriable_unsent() -> dict[str, Any]:
    """The pivot succeeded and the retriable step after it was never sent: no run stops so."""
    data = snapshot_when(AFTER_PIVOT, lambda p: p.saga.step_state("r") is StepState.EXECUTING)
    data["steps"][2] = ["pending", 0, 0, 0, None]
    data["timer"] = None
    return data


CASES = [
    (
        "a-key-spent-by-the-only-try",
        TRIED_ONCE,
        changed(lambda: snapshot_when(TRIED_ONCE, actions={"r": [FAIL]}), (step(2, GENERATION), 1)),
        f"{WHERE}: step 'r' generation must be an integer >= 0 and at most 0, got 1",
    ),
    (
        "result-not-json",
        ABC,
        changed(executing_b, (step(0, RESULT), {"x": math.nan})),
        f"{WHERE}: step 'a' result must be a JSON mapping or null, got {{'x': nan}}",
    ),
    (
        "timer-not-the-last-armed",
        ABC,
        changed(executing_b, (timer(TIMER_ID), "saga-1#1")),
        f"{WHERE}: the armed timer is the last one armed, saga-1#2, not 'saga-1#1'",
    ),
    (
        "no-step-rows",
        ABC,
        changed(executing_b, (("steps",), [])),
        f"{WHERE}: steps must be a list of 3 rows, got []",
    ),
    (
        "saga-state-unknown",
        ABC,
        changed(executing_b, (("state",), "asleep")),
        f"{WHERE}: state must be one of 'started', 'pending', 'compensating', 'completed', "
        "'failed', 'operator_required', got 'asleep'",
    ),
    ("not-a-mapping", ABC, [1, 2], "a saga snapshot is a mapping, got [1, 2]"),
    (
        "keys-missing",
        ABC,
        {k: v for k, v in executing_b().items() if k not in ("timer", "reason")},
        "saga snapshot lacks 'reason', 'timer'",
    ),
    (
        "step-state-unknown",
        ABC,
        changed(executing_b, (step(0, STATE), "nope")),
        f"{WHERE}: step 'a' state must be one of 'pending', 'executing', 'waiting_retry', "
        "'succeeded', 'failed', 'timed_out', 'compensating', 'waiting_compensation_retry', "
        "'compensated', 'compensation_failed', got 'nope'",
    ),
    (
        "compensation-attempt-past-the-policy",
        ABC,
        changed(executing_b, (step(0, COMPENSATION_ATTEMPT), 9)),
        f"{WHERE}: step 'a' compensation_attempt must be an integer >= 0 and at most 5, got 9",
    ),
    (
        "attempt-negative",
        ABC,
        changed(executing_b, (step(2, ATTEMPT), -1)),
        f"{WHERE}: step 'c' attempt must be an integer >= 0 and at most 3, got -1",
    ),
    (
        "timer-seq-negative",
        ABC,
        changed(executing_b, (("timer_seq",), -1)),
        f"{WHERE}: timer_seq must be an integer >= 0, got -1",
    ),
    (
        "step-row-short",
        ABC,
        changed(executing_b, (("steps", 1), [1, 2])),
        f"{WHERE}: step 'b' must be [state, attempt, compensation_attempt, generation, result], "
        "got [1, 2]",
    ),
    (
        "a-key-spent-by-the-last-failure",
        RETRIED,
        changed(retriable_failed, (step(2, GENERATION), 3)),
        f"{WHERE}: step 'r' generation must be an integer >= 0 and at most 2, got 3",
    ),
    (
        "pivot-compensated",
        PIVOTED,
        changed(pivot_lost, (step(1, STATE), "compensated"), (step(1, COMPENSATION_ATTEMPT), 1)),
        f"{WHERE}: step 'p' is compensated, but a pivot step has no compensation",
    ),
    (
        "timer-of-three-fields",
        ABC,
        changed(executing_b, (("timer",), [1, 2, 3])),
        f"{WHERE}: timer must be [id, purpose, step, due] or null, got [1, 2, 3]",
    ),
    (
        "timer-id-empty",
        ABC,
        changed(executing_b, (timer(TIMER_ID), "")),
        f"{WHERE}: timer id must be a non-empty string, got ''",
    ),
    (
        "timer-id-a-number",
        ABC,
        changed(executing_b, (timer(TIMER_ID), 5)),
        f"{WHERE}: timer id must be a non-empty string, got 5",
    ),
    (
        "timer-purpose-unknown",
        ABC,
        changed(executing_b, (timer(PURPOSE), "nap")),
        f"{WHERE}: timer purpose must be one of 'action_timeout', 'action_backoff', "
        "'compensation_timeout', 'compensation_backoff', got 'nap'",
    ),
    (
        "timer-step-past-the-end",
        ABC,
        changed(executing_b, (timer(TIMER_STEP), 3)),
        f"{WHERE}: timer names no step of the saga: 3",
    ),
    (
        "timer-step-a-bool",
        ABC,
        changed(executing_b, (timer(TIMER_STEP), True)),
        f"{WHERE}: timer names no step of the saga: True",
    ),
    (
        "nothing-follows-the-pivot",
        AFTER_PIVOT,
        changed(pivot_done_retriable_unsent),
        f"{WHERE}: step 'p' is succeeded and nothing follows it; "
        "its steps are ['succeeded', 'succeeded', 'pending']",
    ),
]


@pytest.mark.parametrize(
    ("definition", "data", "message"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_a_broken_snapshot_is_refused_with_its_whole_message(
    definition: Any, data: Any, message: str
) -> None:
    with pytest.raises(InvalidSnapshot) as info:
        SagaInstance.restore(definition, data)
    assert str(info.value) == message


@pytest.mark.parametrize("base", [retriable_failed, compensation_backing_off])
def test_these_states_restore_as_they_are(base: Any) -> None:
    """A retriable step that used every try, and a compensation waiting out its backoff."""
    data = base()
    definition = RETRIED if base is retriable_failed else ABC
    assert SagaInstance.restore(definition, data).snapshot() == data


def test_a_saga_running_its_read_only_step_restores() -> None:
    """A read-only step at work is no failure: the saga is pending, nothing to compensate."""
    data = snapshot_when(
        VERIFIED,
        lambda p: p.saga.step_state("v") is StepState.WAITING_RETRY,
        actions={"v": [Outcome.LOST]},
    )
    assert SagaInstance.restore(VERIFIED, data).snapshot() == data
