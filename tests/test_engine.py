"""The engine's semantics, one example per rule, judged from what the participants did."""

from __future__ import annotations

import attrs
import pytest
import transitions
from helpers import Outcome, SagaPair, saga_of

from sagafsm import (
    CompensateStep,
    CompensationSucceeded,
    ExecuteStep,
    IllegalTransition,
    RetryPolicy,
    SagaError,
    SagaFinished,
    SagaState,
    StepFailed,
    StepState,
    StepSucceeded,
    StepTimedOut,
    TimerFired,
    TimerPurpose,
    _moves,
)
from sagafsm._machine import LifecycleMachine
from sagafsm.lifecycle import STEP_LIFECYCLE

OK, FAIL, LOST, SILENT, HOLD = Outcome.OK, Outcome.FAIL, Outcome.LOST, Outcome.SILENT, Outcome.HOLD
ABC = saga_of("a", "b", "c")


def finished_state(pair: SagaPair) -> SagaState | None:
    return None if pair.finished is None else pair.finished.state


def test_every_step_succeeds_so_the_saga_completes_with_nothing_compensated() -> None:
    """The happy path applies each action once, in order, and cancels every timer."""
    pair = SagaPair(ABC).start().run()
    assert finished_state(pair) is SagaState.COMPLETED
    assert pair.ledger.actions() == ["a", "b", "c"]
    assert pair.ledger.compensations() == []
    assert pair.clock.live == {}
    assert pair.saga.finished


def test_first_step_failing_fails_the_saga_at_once_with_nothing_compensated() -> None:
    """A definite failure of step one ends the saga FAILED on that very reply, without a hang."""
    pair = SagaPair(ABC, actions={"a": [FAIL]}).start()
    commands = pair.deliver(pair.inbox.popleft())
    assert commands[-1] == SagaFinished(
        saga_id="saga-1", state=SagaState.FAILED, reason="step 'a' failed: scripted", results={}
    )
    assert pair.sent_steps(CompensateStep) == []
    assert pair.ledger.effects == []
    assert pair.clock.live == {}


def test_last_step_failing_compensates_every_earlier_step_in_reverse_order() -> None:
    """The failed step has no effect, so only the earlier ones are undone, last first."""
    pair = SagaPair(ABC, actions={"c": [FAIL]}).start().run()
    assert finished_state(pair) is SagaState.FAILED
    assert pair.ledger.actions() == ["a", "b"]
    assert pair.ledger.compensations() == ["b", "a"]
    assert pair.ledger.net() == set()
    assert pair.saga.step_state("c") is StepState.FAILED


def test_a_failing_retriable_step_after_the_pivot_is_retried_until_it_succeeds() -> None:
    """After the pivot nothing is compensated: the retriable step is simply tried again."""
    definition = saga_of("a", pivot="p", retriable=["r"], retry=RetryPolicy(max_attempts=4))
    pair = SagaPair(definition, actions={"r": [FAIL, FAIL, FAIL]}).start().run()
    assert finished_state(pair) is SagaState.COMPLETED
    tries = [c for c in pair.sent(ExecuteStep) if c.step == "r"]
    assert [c.attempt for c in tries] == [1, 2, 3, 4]
    assert len({c.idempotency_key for c in tries}) == 4  # a definite failure: a fresh key each time
    assert pair.ledger.actions() == ["a", "p", "r"]
    assert pair.sent(CompensateStep) == []


def test_a_retriable_step_that_keeps_failing_asks_for_an_operator_and_compensates_nothing() -> None:
    """When a retriable step's tries run out the saga stops for a person, naming the step."""
    definition = saga_of("a", pivot="p", retriable=["r"], retry=RetryPolicy(max_attempts=2))
    pair = SagaPair(definition, actions={"r": [FAIL, FAIL]}).start().run()
    assert pair.finished is not None
    assert pair.finished.state is SagaState.OPERATOR_REQUIRED
    assert "'r'" in (pair.finished.reason or "")
    assert pair.ledger.compensations() == []


def test_a_definite_pivot_failure_compensates_the_steps_before_it() -> None:
    """The pivot failing means it had no effect; the compensatable steps are undone."""
    definition = saga_of("a", "b", pivot="p", retriable=["r"])
    pair = SagaPair(definition, actions={"p": [FAIL]}).start().run()
    assert finished_state(pair) is SagaState.FAILED
    assert pair.ledger.compensations() == ["b", "a"]
    assert "r" not in pair.sent_steps(ExecuteStep)


def test_a_timed_out_step_is_retried_under_the_same_idempotency_key() -> None:
    """A lost request is sent again, same key, higher attempt; the action lands once."""
    pair = SagaPair(ABC, actions={"b": [LOST, SILENT, OK]}).start().run()
    tries = [c for c in pair.sent(ExecuteStep) if c.step == "b"]
    assert [c.attempt for c in tries] == [1, 2, 3]
    assert len({c.idempotency_key for c in tries}) == 1
    assert finished_state(pair) is SagaState.COMPLETED
    assert pair.ledger.actions() == ["a", "b", "c"]
    assert [c.attempt for c in pair.ledger.absorbed] == [3]  # the third try found it applied


def test_a_success_arriving_during_the_backoff_counts() -> None:
    """The late reply answers the earlier try: the saga moves on and sends no retry."""
    pair = SagaPair(ABC, actions={"b": [HOLD]}).start()
    pair.run(until=lambda: pair.saga.step_state("b") is StepState.WAITING_RETRY)
    pair.deliver(pair.held.pop())
    assert pair.saga.step_state("b") is StepState.SUCCEEDED
    pair.run()
    assert finished_state(pair) is SagaState.COMPLETED
    assert [c.attempt for c in pair.sent(ExecuteStep) if c.step == "b"] == [1]
    assert pair.clock.delays(TimerPurpose.ACTION_BACKOFF) == [0.05]


def test_a_step_that_times_out_on_every_try_is_compensated_too() -> None:
    """An indeterminate step may have landed, so it is undone before the earlier ones."""
    definition = saga_of("a", "b", "c", retry=RetryPolicy(max_attempts=2))
    pair = SagaPair(definition, actions={"b": [HOLD, LOST]}).start().run()
    assert finished_state(pair) is SagaState.FAILED
    assert pair.sent_steps(CompensateStep) == ["b", "a"]
    assert pair.ledger.compensations() == ["b", "a"]
    assert pair.ledger.net() == set()
    late = pair.held.pop()
    assert pair.deliver(late) == []
    assert any(reason.startswith("late") for reason in pair.recorder.reasons_for(late))


def test_a_compensation_that_overtakes_its_action_leaves_a_tombstone() -> None:
    """The action arriving after its compensation is a no-op: nothing stays applied."""
    definition = saga_of("a", "b", retry=RetryPolicy(max_attempts=1))
    pair = SagaPair(definition, actions={"b": [LOST]}).start().run()
    assert finished_state(pair) is SagaState.FAILED
    late_action = next(c for c in pair.sent(ExecuteStep) if c.step == "b")
    pair.participants.apply(late_action)  # the lost request finally arrives
    assert pair.ledger.actions() == ["a"]
    assert pair.ledger.absorbed == [late_action]


def test_a_duplicate_success_is_ignored_and_does_not_advance_the_saga_twice() -> None:
    """A second identical reply changes nothing, sends nothing, and is recorded."""
    pair = SagaPair(ABC, actions={"a": [HOLD]}).start()
    reply = pair.held.pop()
    first = pair.deliver(reply)
    assert [c.step for c in first if isinstance(c, ExecuteStep)] == ["b"]
    assert pair.deliver(reply) == []
    assert any(r.startswith("duplicate") for r in pair.recorder.reasons_for(reply))
    pair.run()
    assert pair.sent_steps(ExecuteStep) == ["a", "b", "c"]


def test_a_duplicate_compensation_success_does_not_skip_a_compensation() -> None:
    """Replaying the compensation reply of one step cannot count for the step below it."""
    pair = SagaPair(ABC, actions={"c": [FAIL]}, compensations={"b": [HOLD]}).start()
    pair.run(until=lambda: bool(pair.held))
    reply = pair.held.pop()
    pair.deliver(reply)
    assert pair.deliver(reply) == []
    assert pair.saga.step_state("a") is StepState.COMPENSATING
    pair.run()
    assert pair.ledger.compensations() == ["b", "a"]


def test_a_compensation_failing_a_few_times_is_retried_with_the_policy_backoff() -> None:
    """Failed compensations wait 0.1, 0.3, then the 0.5 cap before each new try."""
    policy = RetryPolicy(max_attempts=5, initial_backoff=0.1, multiplier=3.0, max_backoff=0.5)
    definition = saga_of("a", "b", compensation_retry=policy)
    pair = SagaPair(definition, actions={"b": [FAIL]}, compensations={"a": [FAIL, FAIL, FAIL]})
    pair.start().run()
    assert finished_state(pair) is SagaState.FAILED
    assert pair.clock.delays(TimerPurpose.COMPENSATION_BACKOFF) == pytest.approx([0.1, 0.3, 0.5])
    tries = [c for c in pair.sent(CompensateStep) if c.step == "a"]
    assert [c.attempt for c in tries] == [1, 2, 3, 4]
    assert len({c.idempotency_key for c in tries}) == 1
    assert pair.ledger.compensations() == ["a"]
    assert pair.clock.now == pytest.approx(0.9)


def test_a_compensation_that_never_succeeds_asks_for_an_operator_naming_the_step() -> None:
    """Compensation retries run out: a distinct terminal state, with the reason, never silent."""
    definition = saga_of("a", "b", "c", compensation_retry=RetryPolicy(max_attempts=3))
    pair = SagaPair(definition, actions={"c": [FAIL]}, compensations={"b": [FAIL, LOST, FAIL]})
    pair.start().run()
    assert pair.finished is not None
    assert pair.finished.state is SagaState.OPERATOR_REQUIRED
    assert "'b'" in (pair.finished.reason or "")
    assert pair.saga.reason == pair.finished.reason
    assert [c.step for c in pair.sent(CompensateStep)] == ["b", "b", "b"]
    assert pair.saga.step_state("b") is StepState.COMPENSATION_FAILED
    assert pair.clock.live == {}


def test_a_pivot_that_times_out_on_every_try_asks_for_an_operator() -> None:
    """The pivot's outcome is unknown, so neither going on nor undoing is safe."""
    definition = saga_of("a", pivot="p", retriable=["r"], retry=RetryPolicy(max_attempts=2))
    pair = SagaPair(definition, actions={"p": [LOST, LOST]}).start().run()
    assert pair.finished is not None
    assert pair.finished.state is SagaState.OPERATOR_REQUIRED
    assert "'p'" in (pair.finished.reason or "")
    assert pair.sent(CompensateStep) == []
    assert "r" not in pair.sent_steps(ExecuteStep)


def test_a_timer_that_was_cancelled_is_ignored_when_it_fires_anyway() -> None:
    """A stale timer is recorded and changes nothing; an unknown timer id likewise."""
    pair = SagaPair(ABC).start()
    first_timer = pair.clock.started[0]
    pair.step()  # a succeeds: its timeout timer is cancelled
    for timer_id in (first_timer.timer_id, "no-such-timer"):
        event = TimerFired(saga_id="saga-1", timer_id=timer_id)
        assert pair.deliver(event) == []
        assert any(r.startswith("stale") for r in pair.recorder.reasons_for(event))
    assert pair.saga.step_state("b") is StepState.EXECUTING


def test_a_reply_naming_an_unknown_step_is_ignored() -> None:
    """Unknown step names and steps never sent are recorded, not raised."""
    pair = SagaPair(ABC).start()
    for event in (
        StepSucceeded(saga_id="saga-1", step="zzz"),
        StepFailed(saga_id="saga-1", step="c"),
        CompensationSucceeded(saga_id="saga-1", step="a"),
    ):
        assert pair.deliver(event) == []
        assert len(pair.recorder.reasons_for(event)) == 1
    assert pair.saga.state is SagaState.PENDING
    assert [s.state for s in pair.saga.steps] == [
        StepState.EXECUTING,
        StepState.PENDING,
        StepState.PENDING,
    ]


def test_a_driver_detected_timeout_acts_as_the_running_timer_firing() -> None:
    """StepTimedOut backs the running step off and cancels its timeout timer; others: ignored."""
    pair = SagaPair(ABC, actions={"a": [LOST]}).start()
    other = StepTimedOut(saga_id="saga-1", step="b")
    assert pair.deliver(other) == []
    pair.deliver(StepTimedOut(saga_id="saga-1", step="a"))
    assert pair.saga.step_state("a") is StepState.WAITING_RETRY
    assert [t.purpose for t in pair.clock.live.values()] == [TimerPurpose.ACTION_BACKOFF]
    pair.run()
    assert finished_state(pair) is SagaState.COMPLETED


def test_starting_a_saga_twice_raises_illegal_transition() -> None:
    """Misuse is a typed error that is also a RuntimeError."""
    pair = SagaPair(ABC).start()
    with pytest.raises(IllegalTransition) as info:
        pair.saga.start(0.0)
    assert isinstance(info.value, SagaError)
    assert isinstance(info.value, RuntimeError)
    assert "begin" in str(info.value)


def test_starting_a_finished_saga_raises_illegal_transition_not_machine_error() -> None:
    """transitions.MachineError never crosses the public API."""
    pair = SagaPair(ABC).start().run()
    with pytest.raises(IllegalTransition) as info:
        pair.saga.start(1.0)
    assert not isinstance(info.value, transitions.MachineError)
    assert info.value.state == "completed"


def test_events_after_the_saga_finished_change_nothing() -> None:
    """Every reply and timer for a finished saga is absorbed, without a command."""
    pair = SagaPair(ABC, actions={"c": [FAIL]}).start().run()
    assert pair.saga.state is SagaState.FAILED
    stale = [TimerFired(saga_id="saga-1", timer_id=t.timer_id) for t in pair.clock.started]
    replies = [StepSucceeded(saga_id="saga-1", step=s) for s in "abc"] + [
        CompensationSucceeded(saga_id="saga-1", step=s) for s in "abc"
    ]
    for event in [*stale, *replies]:
        assert pair.deliver(event) == []
    assert pair.saga.state is SagaState.FAILED


def test_the_recorder_sees_the_saga_lifecycle_in_order() -> None:
    """begin, abort, compensated: the saga's own moves, none invented."""
    pair = SagaPair(ABC, actions={"b": [FAIL]}).start().run()
    assert pair.recorder.saga_path() == ["begin", "abort", "compensated"]
    assert pair.recorder.step_path("a") == ["send", "succeed", "compensate", "compensated"]
    assert pair.recorder.step_path("b") == ["send", "fail"]
    assert pair.recorder.step_path("c") == []


def test_a_late_reply_to_a_failed_try_of_a_retriable_step_is_ignored() -> None:
    """Once retried under a fresh key, a success carrying the old key does not count."""
    definition = saga_of("a", pivot="p", retriable=["r", "s"], retry=RetryPolicy(max_attempts=3))
    pair = SagaPair(definition, actions={"r": [FAIL, LOST]}).start()
    pair.run(until=lambda: len([c for c in pair.sent(ExecuteStep) if c.step == "r"]) == 2)
    first, second = (c for c in pair.sent(ExecuteStep) if c.step == "r")
    old = StepSucceeded(saga_id="saga-1", step="r", idempotency_key=first.idempotency_key)
    assert pair.deliver(old) == []
    assert pair.saga.step_state("r") is StepState.EXECUTING
    fresh = StepSucceeded(saga_id="saga-1", step="r", idempotency_key=second.idempotency_key)
    assert [c.step for c in pair.deliver(fresh) if isinstance(c, ExecuteStep)] == ["s"]


def test_a_move_that_fails_halfway_leaves_the_saga_broken_for_good(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Only a broken table can cause it: the error is raised again by every later call, so a
    half-moved saga is never driven further (h11's ERROR state)."""
    spec = attrs.evolve(
        STEP_LIFECYCLE,
        transitions=[t for t in STEP_LIFECYCLE.transitions if t.trigger != "compensate"],
    )
    monkeypatch.setattr(_moves, "STEP_LIFECYCLE", spec)
    monkeypatch.setattr(_moves, "STEP_MACHINE", LifecycleMachine(spec))
    pair = SagaPair(ABC, actions={"c": [FAIL]}).start()
    with pytest.raises(IllegalTransition, match="into compensating") as first:
        pair.run()
    assert pair.saga.broken
    for call in (
        lambda: pair.saga.handle(StepSucceeded(saga_id="saga-1", step="a"), 1.0),
        lambda: pair.saga.resume(1.0),
        lambda: pair.saga.start(1.0),
    ):
        with pytest.raises(IllegalTransition) as again:
            call()
        assert again.value is first.value
    assert not SagaPair(ABC).start().run().saga.broken
