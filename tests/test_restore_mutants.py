"""Snapshot refusals that mutation testing (mutation/run, issue 15) found loosely pinned: each
broken snapshot is refused with its whole message, which is what a user reads."""

from __future__ import annotations

from typing import Any

import pytest
from helpers import Outcome, saga_of
from test_restore import ABC, changed, executing_b, snapshot_when, timer

from sagafsm import InvalidSnapshot, SagaInstance, StepState

WHERE = "snapshot of saga 'saga-1'"
TIMER_ID, PURPOSE, TIMER_STEP = 0, 1, 2
AFTER_PIVOT = saga_of("a", pivot="p", retriable=["r"])
VERIFIED = saga_of("v", "a", read_only=["v"])


def pivot_done_retriable_unsent() -> dict[str, Any]:
    """The pivot succeeded and the retriable step after it was never sent: no run stops so."""
    data = snapshot_when(AFTER_PIVOT, lambda p: p.saga.step_state("r") is StepState.EXECUTING)
    data["steps"][2] = ["pending", 0, 0, 0, None]
    data["timer"] = None
    return data


CASES = [
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


def test_a_saga_running_its_read_only_step_restores() -> None:
    """A read-only step at work is no failure: the saga is pending, nothing to compensate."""
    data = snapshot_when(
        VERIFIED,
        lambda p: p.saga.step_state("v") is StepState.WAITING_RETRY,
        actions={"v": [Outcome.LOST]},
    )
    assert SagaInstance.restore(VERIFIED, data).snapshot() == data
