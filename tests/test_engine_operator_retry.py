"""An operator's retry of a compensation that gave up, in the engine and in the checkers' fold:
the move itself (``SagaInstance.retry_compensation``) and how a trace holding one is read. The
runtime's side (requests, the store, ``sagafsm retry``) is in test_rt_operator_retry.py."""

from __future__ import annotations

from typing import Any

import attrs
import pytest

from sagafsm import RetryPolicy, SagaBuilder, SagaInstance
from sagafsm import _moves as moves_module
from sagafsm._machine import LifecycleMachine
from sagafsm.checks import StreamingChecker, check_saga
from sagafsm.errors import IllegalTransition, InvalidConfig
from sagafsm.events import (
    CompensationFailed,
    CompensationSucceeded,
    StepFailed,
    StepSucceeded,
    TimerFired,
)
from sagafsm.lifecycle import STEP_LIFECYCLE, SagaState, StepState
from sagafsm.orchestration import BufferingRecorder, OrchestrationCore

TRIP = (
    SagaBuilder("trip", timeout=60.0)
    .step("hotel", participant="hotels", action="book", compensation="cancel")
    .step(
        "car",
        participant="cars",
        action="rent",
        compensation="give_back",
        compensation_retry=RetryPolicy(max_attempts=2, initial_backoff=1.0),
    )
    .pivot("flight", participant="airline", action="fly")
    .build()
)
"""The flight is always refused; while the car desk is down, giving the car back fails."""

PARKED_REASON = (
    "compensation of step 'car' failed 2 times (compensating because step 'flight' failed: "
    "no seats)"
)


# -- the engine ----------------------------------------------------------------------------------


def _parked(saga_id: str = "t-1") -> SagaInstance:
    """A saga driven by hand until the car's compensation gave up."""
    saga = SagaInstance(TRIP, saga_id)
    saga.start(0.0)
    saga.handle(StepSucceeded(saga_id=saga_id, step="hotel", result={"room": 7}), 1.0)
    saga.handle(StepSucceeded(saga_id=saga_id, step="car", result={"car": "c-1"}), 2.0)
    saga.handle(StepFailed(saga_id=saga_id, step="flight", reason="no seats"), 3.0)
    saga.handle(CompensationFailed(saga_id=saga_id, step="car", attempt=1), 4.0)
    saga.handle(TimerFired(saga_id=saga_id, timer_id=saga.timer_id or ""), 5.0)
    saga.handle(CompensationFailed(saga_id=saga_id, step="car", attempt=2), 6.0)
    return saga


def test_a_retry_sends_the_compensation_again_then_compensates_the_steps_before_it() -> None:
    saga = _parked()
    assert saga.state is SagaState.OPERATOR_REQUIRED and saga.reason == PARKED_REASON
    assert saga.retryable
    restored = SagaInstance.restore(TRIP, saga.snapshot())  # as the store hands it back
    (compensate, timer) = restored.retry_compensation(10.0)
    assert (compensate.step, compensate.attempt) == ("car", 1)  # a fresh budget of tries
    assert compensate.idempotency_key == "t-1/car/compensation"  # the same key as before
    assert compensate.action_result == {"car": "c-1"}
    assert timer.step == "car" and timer.delay == TRIP.steps[1].effective_compensation_timeout
    assert restored.state is SagaState.COMPENSATING and not restored.retryable
    assert restored.step_state("car") is StepState.COMPENSATING
    assert restored.reason == "step 'flight' failed: no seats"  # what it compensates for
    out = restored.handle(CompensationSucceeded(saga_id="t-1", step="car"), 11.0)
    assert [c.step for c in out if type(c).__name__ == "CompensateStep"] == ["hotel"]
    out = restored.handle(CompensationSucceeded(saga_id="t-1", step="hotel"), 12.0)
    assert restored.state is SagaState.FAILED
    assert out[-1].reason == "step 'flight' failed: no seats"


def test_a_retried_compensation_that_fails_through_its_fresh_tries_parks_the_saga_again() -> None:
    saga = _parked()
    saga.retry_compensation(10.0)
    saga.handle(CompensationFailed(saga_id="t-1", step="car", attempt=1), 11.0)
    saga.handle(TimerFired(saga_id="t-1", timer_id=saga.timer_id or ""), 12.0)
    saga.handle(CompensationFailed(saga_id="t-1", step="car", attempt=2), 13.0)
    assert saga.state is SagaState.OPERATOR_REQUIRED and saga.reason == PARKED_REASON
    assert saga.retryable


def _not_parked() -> dict[str, SagaInstance]:
    begun = SagaInstance(TRIP, "begun")
    begun.start(0.0)
    failed = _parked("failed")
    failed.retry_compensation(7.0)
    failed.handle(CompensationSucceeded(saga_id="failed", step="car"), 8.0)
    failed.handle(CompensationSucceeded(saga_id="failed", step="hotel"), 9.0)
    notify = (
        SagaBuilder("mail", timeout=1.0)
        .pivot("pay", participant="p", action="pay")
        .retriable("mail", participant="m", action="send", retry=RetryPolicy(max_attempts=1))
        .build()
    )
    escalated = SagaInstance(notify, "escalated")
    escalated.start(0.0)
    escalated.handle(StepSucceeded(saga_id="escalated", step="pay"), 1.0)
    escalated.handle(StepFailed(saga_id="escalated", step="mail"), 2.0)
    assert escalated.state is SagaState.OPERATOR_REQUIRED  # but no compensation gave up
    return {
        "not started": SagaInstance(TRIP, "new"),
        "running": begun,
        "failed": failed,
        "operator_required by a retriable step": escalated,
    }


@pytest.mark.parametrize("case", sorted(_not_parked()))
def test_a_saga_no_compensation_of_which_gave_up_refuses_a_retry_and_is_unchanged(
    case: str,
) -> None:
    saga = _not_parked()[case]
    before = saga.snapshot()
    assert not saga.retryable
    with pytest.raises(IllegalTransition, match="whose compensations did not give up"):
        saga.retry_compensation(20.0)
    assert saga.snapshot() == before and not saga.broken


# -- the checkers' reading of a retry ------------------------------------------------------------


def _moves(saga: str, moves: list[tuple[str | None, str, str, str]]) -> list[tuple[Any, ...]]:
    return [(1.0, "transition", saga, step, trigger, a, b) for step, trigger, a, b in moves]


def _retried(action: str = "retry", *, extra: list[tuple[Any, ...]] = ()) -> list[tuple[Any, ...]]:
    """A trip whose car could not be given back, retried by an operator, then undone: records
    as a driver writes them (``action`` the operator record's; ``extra`` after the retry's
    moves)."""
    s = "t-1"
    return [
        (0.0, "start", s, "trip"),
        *_moves(s, [(None, "begin", "started", "pending")]),
        *_moves(s, [("hotel", "send", "pending", "executing")]),
        (0.1, "effect", s, "hotels", "hotel", "action"),
        *_moves(s, [("hotel", "succeed", "executing", "succeeded")]),
        *_moves(s, [("car", "send", "pending", "executing")]),
        (0.2, "effect", s, "cars", "car", "action"),
        *_moves(s, [("car", "succeed", "executing", "succeeded")]),
        *_moves(s, [("flight", "send", "pending", "executing")]),
        *_moves(s, [("flight", "fail", "executing", "failed")]),
        *_moves(s, [(None, "abort", "pending", "compensating")]),
        *_moves(s, [("car", "compensate", "succeeded", "compensating")]),
        (0.3, "effect", s, "cars", "car", "compensation_failed"),
        *_moves(s, [("car", "compensation_give_up", "compensating", "compensation_failed")]),
        *_moves(s, [(None, "escalate", "compensating", "operator_required")]),
        (0.4, "finish", s, "operator_required", PARKED_REASON),
        (5.0, "operator", s, action, "the car desk is back"),
        *_moves(s, [(None, "operator_retry", "operator_required", "compensating")]),
        *_moves(s, [("car", "operator_retry", "compensation_failed", "compensating")]),
        *extra,
        (5.1, "effect", s, "cars", "car", "compensation"),
        *_moves(s, [("car", "compensated", "compensating", "compensated")]),
        *_moves(s, [("hotel", "compensate", "succeeded", "compensating")]),
        (5.2, "effect", s, "hotels", "hotel", "compensation"),
        *_moves(s, [("hotel", "compensated", "compensating", "compensated")]),
        *_moves(s, [(None, "compensated", "compensating", "failed")]),
        (5.3, "finish", s, "failed", "step 'flight' failed: no seats"),
    ]


def found(records: list[tuple[Any, ...]]) -> list[tuple[str, str]]:
    return [(v.property, v.detail) for v in check_saga("t-1", records, TRIP)]


def test_a_retried_saga_with_its_operator_record_is_clean() -> None:
    assert found(_retried()) == []


def test_a_resolve_record_grants_no_operator_move() -> None:
    """Only a retry opens the operator's rows: a resolution leaves the saga final."""
    assert found(_retried("resolve")) == [
        ("single-run", "the saga finished 2 times: ['operator_required', 'failed']"),
        (
            "declared-transitions",
            "the saga took the operator's transition 'operator_retry': operator_required -> "
            "compensating, with no operator's retry before it",
        ),
        (
            "declared-transitions",
            "step 'car' took the operator's transition 'operator_retry': compensation_failed -> "
            "compensating, with no operator's retry before it",
        ),
    ]


def test_a_retry_grants_two_moves_the_saga_s_and_one_step_s() -> None:
    """A third move along an operator row after one retry is flagged (here a step the
    definition does not have, parked as the table allows)."""
    parked = _moves("t-1", [
        ("spare", "send", "pending", "executing"),
        ("spare", "succeed", "executing", "succeeded"),
        ("spare", "compensate", "succeeded", "compensating"),
        ("spare", "compensation_give_up", "compensating", "compensation_failed"),
    ])  # fmt: skip
    records = _retried()
    at = records.index((5.0, "operator", "t-1", "retry", "the car desk is back"))
    records[at:at] = parked
    records[at + len(parked) + 3 : at + len(parked) + 3] = _moves(
        "t-1", [("spare", "operator_retry", "compensation_failed", "compensating")]
    )
    assert found(records) == [
        (
            "declared-transitions",
            "step 'spare' took the operator's transition 'operator_retry': compensation_failed "
            "-> compensating, with no operator's retry before it",
        )
    ]


def test_an_engine_move_between_them_ends_what_the_retry_granted() -> None:
    """The retry's moves come right after its record: an engine move first spends the grant."""
    records = _retried()
    at = records.index((5.0, "operator", "t-1", "retry", "the car desk is back"))
    records[at + 1 : at + 1] = _moves("t-1", [("spare", "send", "pending", "executing")])
    details = [d for p, d in found(records) if p == "declared-transitions"]
    assert details == [
        "the saga took the operator's transition 'operator_retry': operator_required -> "
        "compensating, with no operator's retry before it",
        "step 'car' took the operator's transition 'operator_retry': compensation_failed -> "
        "compensating, with no operator's retry before it",
    ]


def test_each_retry_reopens_one_finish_only() -> None:
    records = [*_retried(), (6.0, "finish", "t-1", "failed", "again")]
    assert found(records) == [
        (
            "single-run",
            "the saga finished 3 times (1 retried by an operator): "
            "['operator_required', 'failed', 'failed']",
        )
    ]


def test_a_saga_retried_twice_may_finish_three_times() -> None:
    """The retried compensation gives up again and parks the saga a second time; a second retry
    reopens that finish too, and the run is clean."""
    records = _retried()
    at = records.index((5.1, "effect", "t-1", "cars", "car", "compensation"))
    records[at:at] = [
        (5.05, "effect", "t-1", "cars", "car", "compensation_failed"),
        *_moves("t-1", [
            ("car", "compensation_give_up", "compensating", "compensation_failed"),
            (None, "escalate", "compensating", "operator_required"),
        ]),
        (5.06, "finish", "t-1", "operator_required", PARKED_REASON),
        (5.07, "operator", "t-1", "retry", "the car desk is back, really"),
        *_moves("t-1", [
            (None, "operator_retry", "operator_required", "compensating"),
            ("car", "operator_retry", "compensation_failed", "compensating"),
        ]),
    ]  # fmt: skip
    assert found(records) == []
    records.append((6.0, "finish", "t-1", "failed", "again"))
    assert found(records) == [
        (
            "single-run",
            "the saga finished 4 times (2 retried by an operator): "
            "['operator_required', 'operator_required', 'failed', 'failed']",
        )
    ]


def test_a_retried_saga_is_judged_by_its_last_finish() -> None:
    """Without the hotel's cancellation the parked saga would pass (operator_required asks
    nothing of the ledger); failed, its last finish, it must not."""
    records = [r for r in _retried() if r[3:] != ("hotels", "hotel", "compensation")]
    assert found(records) == [
        (
            "compensated-exactly-once",
            "the action of step 'hotel' took effect but was compensated 0 times",
        )
    ]


def test_a_short_operator_record_is_refused_with_its_kind() -> None:
    checker = StreamingChecker(TRIP)
    with pytest.raises(ValueError, match="a record of kind 'operator' has 5 items"):
        checker.observe((1.0, "operator", "t-1", "retry"))


# -- the move's edges, found by the mutation run -------------------------------------------------


def test_a_refused_retry_says_which_lifecycle_trigger_and_state() -> None:
    saga = SagaInstance(TRIP, "new")
    with pytest.raises(IllegalTransition) as info:
        saga.retry_compensation(1.0)
    error = info.value
    assert (error.lifecycle, error.trigger, error.state) == ("saga", "operator_retry", "started")
    assert str(error) == (
        "saga new, whose compensations did not give up: the saga lifecycle has no transition "
        "'operator_retry' from state 'started'"
    )


def test_the_retry_s_moves_are_recorded_at_its_time() -> None:
    recorder = BufferingRecorder()
    saga = SagaInstance.restore(TRIP, _parked().snapshot(), recorder=recorder)
    saga.retry_compensation(42.0)
    moves = [r for r in recorder.take() if r[4] == "operator_retry"]
    assert [(r[0], r[3]) for r in moves] == [(42.0, None), (42.0, "car")]


def test_the_reason_restored_is_the_one_the_escalation_wrapped_even_when_it_quotes_the_marker() -> (
    None
):
    """A participant's reason may itself say "(compensating because ...)": the first marker is
    the escalation's own."""
    saga = SagaInstance(TRIP, "t-1")
    saga.start(0.0)
    saga.handle(StepSucceeded(saga_id="t-1", step="hotel"), 1.0)
    saga.handle(StepSucceeded(saga_id="t-1", step="car"), 2.0)
    reason = "no seats (compensating because of the strike)"
    saga.handle(StepFailed(saga_id="t-1", step="flight", reason=reason), 3.0)
    saga.handle(CompensationFailed(saga_id="t-1", step="car", attempt=1), 4.0)
    saga.handle(TimerFired(saga_id="t-1", timer_id=saga.timer_id or ""), 5.0)
    saga.handle(CompensationFailed(saga_id="t-1", step="car", attempt=2), 6.0)
    saga.retry_compensation(7.0)
    assert saga.reason == f"step 'flight' failed: {reason}"


def test_a_retry_that_breaks_halfway_leaves_the_saga_broken(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A step machine without the operator's row (only a broken table): the saga moved, its
    step cannot, and the saga refuses every later call with that error."""
    spec = attrs.evolve(STEP_LIFECYCLE, operator=())
    monkeypatch.setattr(moves_module, "STEP_MACHINE", LifecycleMachine(spec))
    saga = _parked()
    with pytest.raises(IllegalTransition) as first:
        saga.retry_compensation(10.0)
    assert saga.broken
    with pytest.raises(IllegalTransition) as again:
        saga.handle(CompensationSucceeded(saga_id="t-1", step="car"), 11.0)
    assert again.value is first.value


# -- the orchestration core's retry --------------------------------------------------------------


def test_the_core_retries_a_parked_snapshot_and_holds_the_saga_again() -> None:
    core = OrchestrationCore([TRIP])
    transaction = core.retry("trip", _parked().snapshot(), 30.0)
    assert "t-1" in core and core.get("t-1") is transaction.saga
    assert transaction.saga_id == "t-1" and transaction.now == 30.0
    (compensate,) = transaction.outbound
    assert (compensate.step, compensate.attempt) == ("car", 1)
    assert transaction.timer is not None and transaction.snapshot is not None
    assert [r[:5] for r in transaction.records] == [
        (30.0, "transition", "t-1", None, "operator_retry"),
        (30.0, "transition", "t-1", "car", "operator_retry"),
    ]


def test_the_core_refuses_a_retry_of_a_saga_it_runs() -> None:
    core = OrchestrationCore([TRIP])
    parked = _parked().snapshot()
    core.retry("trip", parked, 30.0)
    with pytest.raises(IllegalTransition) as info:
        core.retry("trip", parked, 31.0)
    error = info.value
    assert (error.lifecycle, error.trigger, error.state) == ("saga", "operator_retry", "running")
    assert str(error).startswith("saga t-1: the saga lifecycle has no transition")


def test_the_core_holds_nothing_when_a_retry_is_refused() -> None:
    core = OrchestrationCore([TRIP])
    with pytest.raises(InvalidConfig, match="no saga definition named 'cruise'"):
        core.retry("cruise", _parked().snapshot(), 30.0)
    with pytest.raises(IllegalTransition, match="whose compensations did not give up"):
        core.retry("trip", SagaInstance(TRIP, "new").snapshot(), 30.0)
    assert len(core) == 0


def test_a_fold_whose_first_move_is_an_operator_row_flags_it() -> None:
    """Nothing granted before any record: the fold starts with no operator's move allowed."""
    records = [
        (0.0, "start", "t-1", "trip"),
        *_moves("t-1", [(None, "operator_retry", "operator_required", "compensating")]),
    ]
    details = [d for p, d in found(records) if p == "declared-transitions"]
    assert (
        "the saga took the operator's transition 'operator_retry': operator_required -> "
        "compensating, with no operator's retry before it"
    ) in details
