"""Engine cases that mutation testing (mutation/run, issue 15) found unpinned.

Each test names what it pins; the mutants it kills are changes a reader could make by mistake
(an event dropped from the record, a guard removed, the wrong timer cancelled).
"""

from __future__ import annotations

import json
import math
from typing import Any

import attrs
import pytest
from helpers import Outcome, SagaPair, saga_of

from sagafsm import (
    CancelTimer,
    CompensateStep,
    CompensationFailed,
    CompensationSucceeded,
    CompensationTimedOut,
    ExecuteStep,
    IllegalTransition,
    InvalidArgument,
    RetryPolicy,
    SagaDefinition,
    SagaInstance,
    SagaState,
    StartTimer,
    StepFailed,
    StepState,
    StepSucceeded,
    StepTimedOut,
    TimerFired,
    TimerPurpose,
    _moves,
)
from sagafsm._machine import LifecycleMachine
from sagafsm.events import Event
from sagafsm.lifecycle import STEP_LIFECYCLE

OK, FAIL, LOST, HOLD = Outcome.OK, Outcome.FAIL, Outcome.LOST, Outcome.HOLD
ABC = saga_of("a", "b", "c")


@attrs.define
class FullRecorder:
    """Keeps every argument the engine hands a recorder, ``now`` and ``saga_id`` included."""

    moves: list[tuple[Any, ...]] = attrs.Factory(list)
    drops: list[tuple[float, str, Event, str]] = attrs.Factory(list)

    def transition(
        self, now: float, saga_id: str, step: str | None, trigger: str, source: Any, dest: Any
    ) -> None:
        self.moves.append((now, saga_id, step, trigger, source, dest))

    def ignored(self, now: float, saga_id: str, event: Event, reason: str) -> None:
        self.drops.append((now, saga_id, event, reason))


def recorded(pair: SagaPair) -> FullRecorder:
    """Swap the pair's recorder for one that keeps everything."""
    recorder = FullRecorder()
    pair.saga.recorder = recorder
    return recorder


def test_an_event_addressed_to_another_saga_is_recorded_and_changes_nothing() -> None:
    """A driver that misroutes a reply must not move this saga: the guard names the addressee."""
    pair = SagaPair(ABC).start()
    recorder = recorded(pair)
    pair.clock.now = 0.25
    misrouted = StepSucceeded(saga_id="saga-2", step="a")
    assert pair.deliver(misrouted) == []
    assert recorder.drops == [(0.25, "saga-1", misrouted, "addressed to saga 'saga-2'")]
    assert recorder.moves == []
    assert pair.saga.step_state("a") is StepState.EXECUTING


def test_a_timeout_for_a_step_not_waiting_is_recorded_with_its_reason_and_time() -> None:
    """A stale StepTimedOut is ignored, and the record says why and when."""
    pair = SagaPair(ABC).start()
    recorder = recorded(pair)
    pair.clock.now = 0.5
    stale = StepTimedOut(saga_id="saga-1", step="b")
    assert pair.deliver(stale) == []
    assert recorder.drops == [
        (0.5, "saga-1", stale, "stale timeout: the step is not waiting for that reply")
    ]


def test_a_driver_detected_timeout_cancels_exactly_the_armed_timer() -> None:
    """The CancelTimer names this saga and the timer armed for the step's reply."""
    pair = SagaPair(ABC, actions={"a": [LOST]}).start()
    armed = pair.saga.timer_id
    assert armed is not None
    out = pair.deliver(StepTimedOut(saga_id="saga-1", step="a"))
    assert out[0] == CancelTimer(saga_id="saga-1", timer_id=armed)


def test_a_driver_detected_compensation_timeout_backs_the_compensation_off() -> None:
    """CompensationTimedOut acts as the compensation's own timer firing: its timer is cancelled
    and the compensation waits out the policy's backoff, then goes out again."""
    policy = RetryPolicy(max_attempts=3, initial_backoff=0.2)
    definition = saga_of("a", "b", compensation_retry=policy)
    pair = SagaPair(definition, actions={"b": [FAIL]}, compensations={"a": [LOST, OK]}).start()
    pair.run(until=lambda: pair.saga.step_state("a") is StepState.COMPENSATING)
    armed = pair.saga.timer_id
    assert pair.saga.timer_purpose is TimerPurpose.COMPENSATION_TIMEOUT
    out = pair.deliver(CompensationTimedOut(saga_id="saga-1", step="a"))
    assert out[0] == CancelTimer(saga_id="saga-1", timer_id=armed)
    assert pair.saga.step_state("a") is StepState.WAITING_COMPENSATION_RETRY
    assert pair.saga.timer_purpose is TimerPurpose.COMPENSATION_BACKOFF
    assert pair.clock.delays(TimerPurpose.COMPENSATION_BACKOFF) == [0.2]
    pair.run()
    assert pair.finished is not None and pair.finished.state is SagaState.FAILED
    assert pair.ledger.compensations() == ["a"]


def test_a_compensation_timeout_while_the_action_waits_is_stale() -> None:
    """CompensationTimedOut for a step whose action (not its compensation) is awaited: ignored."""
    pair = SagaPair(ABC).start()
    recorder = recorded(pair)
    stale = CompensationTimedOut(saga_id="saga-1", step="a")
    assert pair.deliver(stale) == []
    assert [reason for _, _, _, reason in recorder.drops] == [
        "stale timeout: the step is not waiting for that reply"
    ]
    assert pair.saga.step_state("a") is StepState.EXECUTING


def round_trip(saga: SagaInstance) -> SagaInstance:
    """The saga as a store would give it back: snapshot, JSON, restore."""
    return SagaInstance.restore(saga.definition, json.loads(json.dumps(saga.snapshot())))


def backing_off(definition: SagaDefinition, step: str, outcome: Outcome) -> SagaPair:
    """A pair whose ``step`` just failed or timed out once and now waits out its backoff."""
    pair = SagaPair(definition, actions={step: [outcome]}).start()
    pair.run(until=lambda: pair.saga.step_state(step) is StepState.WAITING_RETRY)
    return pair


def test_resume_during_a_backoff_waits_only_what_is_left_of_it() -> None:
    """The backoff timer is re-armed for the time remaining (none once it is overdue), under a
    fresh timer id."""
    definition = saga_of("a", "b", retry=RetryPolicy(max_attempts=3, initial_backoff=0.4))
    pair = backing_off(definition, "b", LOST)
    due = pair.saga.timer_due
    assert due == pytest.approx(pair.clock.now + 0.4)
    for now, left in ((due - 0.1, 0.1), (due + 5.0, 0.0)):
        saga = round_trip(pair.saga)
        (timer,) = saga.resume(now)
        assert isinstance(timer, StartTimer)
        assert (timer.saga_id, timer.step) == ("saga-1", "b")
        assert timer.purpose is TimerPurpose.ACTION_BACKOFF
        assert timer.delay == pytest.approx(left)
        assert timer.timer_id == saga.timer_id != pair.saga.timer_id


def test_resume_while_waiting_for_a_reply_waits_a_whole_timeout_again() -> None:
    """The re-sent action, and the re-sent compensation, each get their own full timeout."""
    definition = saga_of("a", "b", timeout=2.0, compensation_timeout=3.0)
    pair = SagaPair(definition).start()
    execute, timer = round_trip(pair.saga).resume(1.5)
    assert isinstance(execute, ExecuteStep) and isinstance(timer, StartTimer)
    assert (timer.purpose, timer.delay) == (TimerPurpose.ACTION_TIMEOUT, 2.0)
    pair = SagaPair(definition, actions={"b": [FAIL]}, compensations={"a": [HOLD]}).start()
    pair.run(until=lambda: pair.saga.step_state("a") is StepState.COMPENSATING)
    compensate, timer = round_trip(pair.saga).resume(pair.clock.now + 1.0)
    assert compensate == pair.sent(CompensateStep)[-1]
    assert isinstance(timer, StartTimer)
    assert (timer.purpose, timer.delay) == (TimerPurpose.COMPENSATION_TIMEOUT, 3.0)


def test_a_restored_retriable_step_that_failed_retries_under_the_same_fresh_key() -> None:
    """``generation`` survives the snapshot: the retry after a restore uses the key the
    original would have used, not the failed try's."""
    definition = saga_of("a", pivot="p", retriable=["r"], retry=RetryPolicy(max_attempts=3))
    pair = backing_off(definition, "r", FAIL)
    failed_key = next(c for c in pair.sent(ExecuteStep) if c.step == "r").idempotency_key
    restored = round_trip(pair.saga)
    assert restored.steps[2].generation == pair.saga.steps[2].generation == 1
    fired = TimerFired(saga_id="saga-1", timer_id=pair.saga.timer_id or "")
    original = [c for c in pair.saga.handle(fired, 1.0) if isinstance(c, ExecuteStep)]
    again = [c for c in restored.handle(fired, 1.0) if isinstance(c, ExecuteStep)]
    assert again == original
    assert again[0].idempotency_key != failed_key


def test_resuming_a_finished_saga_reports_how_it_finished() -> None:
    """A saga that ended before the crash answers resume with its SagaFinished, nothing else."""
    pair = SagaPair(ABC, actions={"c": [FAIL]}).start().run()
    assert round_trip(pair.saga).resume(9.0) == [pair.finished]


def test_a_running_saga_with_no_timer_cannot_be_resumed() -> None:
    """restore() refuses such a snapshot; a saga forced into that shape refuses resume too."""
    saga = round_trip(SagaPair(ABC).start().saga)
    saga.timer_purpose = None
    with pytest.raises(IllegalTransition) as info:
        saga.resume(1.0)
    assert str(info.value) == (
        "saga saga-1: the saga lifecycle has no transition 'resume' from state 'pending'"
    )
    assert not saga.broken


def finish_reason(pair: SagaPair) -> tuple[SagaState, str | None]:
    assert pair.finished is not None, "the saga did not finish"
    return pair.finished.state, pair.finished.reason


def test_every_finish_reason_reads_exactly_as_documented() -> None:
    """The reason a user reads in SagaFinished, for each way a saga can end badly."""
    retry3 = RetryPolicy(max_attempts=3)
    once = RetryPolicy(max_attempts=1)
    cases = [
        (SagaPair(ABC, actions={"b": [FAIL]}), SagaState.FAILED, "step 'b' failed: scripted"),
        (
            SagaPair(saga_of("a", "b", retry=once), actions={"b": [LOST]}),
            SagaState.FAILED,
            "step 'b' got no reply after 1 try",
        ),
        (
            SagaPair(saga_of("a", "b", retry=retry3), actions={"b": [LOST] * 3}),
            SagaState.FAILED,
            "step 'b' got no reply after 3 tries",
        ),
        (
            SagaPair(saga_of("a", pivot="p", retry=retry3), actions={"p": [LOST] * 3}),
            SagaState.OPERATOR_REQUIRED,
            "pivot step 'p' got no reply after 3 tries: its outcome is unknown",
        ),
        (
            SagaPair(
                saga_of("a", pivot="p", retriable=["r"], retry=retry3), actions={"r": [FAIL] * 3}
            ),
            SagaState.OPERATOR_REQUIRED,
            "retriable step 'r' failed 3 times",
        ),
        (
            SagaPair(
                saga_of("a", "b", compensation_retry=RetryPolicy(max_attempts=2)),
                actions={"b": [FAIL]},
                compensations={"a": [FAIL, LOST]},
            ),
            SagaState.OPERATOR_REQUIRED,
            "compensation of step 'a' failed 2 times "
            "(compensating because step 'b' failed: scripted)",
        ),
    ]
    for pair, state, reason in cases:
        assert finish_reason(pair.start().run()) == (state, reason)
        assert pair.saga.reason == reason


def test_a_failure_without_a_reason_names_only_the_step() -> None:
    """No reason given: no dangling colon in the saga's reason."""
    pair = SagaPair(ABC).start()
    pair.inbox.clear()
    pair.deliver(StepFailed(saga_id="saga-1", step="a"))
    assert finish_reason(pair) == (SagaState.FAILED, "step 'a' failed")


def test_a_late_failure_of_an_earlier_compensation_try_is_recorded_as_stale() -> None:
    """The ignored record says which try the failure answered."""
    policy = RetryPolicy(max_attempts=3)
    definition = saga_of("a", "b", compensation_retry=policy)
    pair = SagaPair(definition, actions={"b": [FAIL]}, compensations={"a": [LOST, HOLD]}).start()
    pair.run(until=lambda: pair.saga.steps[0].compensation_attempt == 2)
    recorder = recorded(pair)
    late = CompensationFailed(saga_id="saga-1", step="a", attempt=1)
    assert pair.deliver(late) == []
    assert [reason for _, _, _, reason in recorder.drops] == [
        "stale: answers an earlier try of the compensation"
    ]
    assert pair.saga.step_state("a") is StepState.COMPENSATING
    current = pair.deliver(CompensationFailed(saga_id="saga-1", step="a", attempt=2))
    assert pair.saga.step_state("a") is StepState.WAITING_COMPENSATION_RETRY
    assert any(isinstance(c, StartTimer) for c in current)


def delivered_with(pair: SagaPair, recorder: FullRecorder) -> None:
    """Run the pair to its end, checking after each event that every record it made carries the
    time the event was handled."""
    seen_moves = seen_drops = 0
    while pair.step() is not None:
        now = pair.clock.now
        assert all(m[0] == now for m in recorder.moves[seen_moves:])
        assert all(d[0] == now for d in recorder.drops[seen_drops:])
        seen_moves, seen_drops = len(recorder.moves), len(recorder.drops)


def test_every_record_carries_the_time_of_its_event() -> None:
    """Backing off, failing, compensating, giving up: each move is recorded at its own time."""
    retry2 = RetryPolicy(max_attempts=2)
    pairs = [
        SagaPair(saga_of("a", pivot="p", retriable=["r"], retry=retry2), actions={"r": [FAIL] * 2}),
        SagaPair(
            saga_of("a", "b", compensation_retry=retry2),
            actions={"b": [FAIL]},
            compensations={"a": [FAIL, FAIL]},
        ),
        SagaPair(saga_of("a", "b", retry=retry2), actions={"b": [LOST, LOST]}),
        SagaPair(saga_of("a", pivot="p", retry=retry2), actions={"p": [LOST, LOST]}),
    ]
    for pair in pairs:
        pair.start()
        recorder = recorded(pair)
        delivered_with(pair, recorder)
        assert pair.finished is not None
        assert recorder.moves and all(isinstance(m[0], float) for m in recorder.moves)


def test_a_failure_after_a_retriable_step_succeeded_is_recorded_as_conflicting() -> None:
    """The ignored record names the very event that was dropped."""
    definition = saga_of("a", pivot="p", retriable=["r", "s"], retry=RetryPolicy(max_attempts=3))
    pair = SagaPair(definition, actions={"s": [HOLD]}).start()
    pair.run(until=lambda: pair.saga.step_state("r") is StepState.SUCCEEDED)
    recorder = recorded(pair)
    late = StepFailed(saga_id="saga-1", step="r")
    assert pair.deliver(late) == []
    assert [(e, r) for _, _, e, r in recorder.drops] == [
        (late, "conflicting: the step already succeeded")
    ]


def test_a_late_compensation_failure_after_its_only_try_succeeded_is_recorded() -> None:
    """With one compensation try, a failure arriving after the success would give up: the table
    drops it, and the record names it."""
    definition = saga_of("a", "b", compensation_retry=RetryPolicy(max_attempts=1))
    pair = SagaPair(definition, actions={"b": [FAIL]}).start().run()
    assert pair.saga.step_state("a") is StepState.COMPENSATED
    recorder = recorded(pair)
    late = CompensationFailed(saga_id="saga-1", step="a")
    assert pair.deliver(late) == []
    assert [(e, r) for _, _, e, r in recorder.drops] == [
        (late, "late: the compensation already succeeded")
    ]


@pytest.mark.parametrize(
    ("args", "options", "message"),
    [
        (("x", "s"), {}, "definition must be a SagaDefinition, got 'x'"),
        ((ABC, ""), {}, "saga_id must be a non-empty string, got ''"),
        (
            (ABC, "s"),
            {"data": {"x": math.nan}},
            "saga data must hold only JSON data (str keys; None, bool, int, finite float, str, "
            "lists and mappings), got {'x': nan}",
        ),
        (
            (ABC, "s"),
            {"recorder": 5},
            "recorder must have transition() and ignored() methods, got 5",
        ),
    ],
    ids=["definition", "saga-id", "data", "recorder"],
)
def test_a_saga_built_from_bad_input_is_refused_naming_the_input(
    args: tuple[Any, ...], options: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidArgument) as info:
        SagaInstance(*args, **options)
    assert str(info.value) == message


def test_handing_the_engine_a_non_event_names_what_it_got() -> None:
    saga = SagaInstance(ABC, "s")
    with pytest.raises(InvalidArgument, match=r"\), got 'x'$"):
        saga.handle("x", 0.0)  # type: ignore[arg-type]


def test_timer_ids_count_up_from_one() -> None:
    pair = SagaPair(ABC).start().run()
    assert [t.timer_id for t in pair.clock.started] == ["saga-1#1", "saga-1#2", "saga-1#3"]


def test_each_ignored_event_is_recorded_with_its_time_and_itself() -> None:
    """Stale timers, unknown steps, stale keys, stale compensation failures: each drop record
    names the event and the time it was handled."""
    pair = SagaPair(ABC, actions={"b": [FAIL]}, compensations={"a": [LOST, HOLD]}).start()
    old_timer = pair.clock.started[0].timer_id
    pair.run(until=lambda: pair.saga.steps[0].compensation_attempt == 2)
    recorder = recorded(pair)
    pair.clock.now = 7.5
    events = [
        TimerFired(saga_id="saga-1", timer_id=old_timer),
        StepSucceeded(saga_id="saga-1", step="zzz"),
        StepSucceeded(saga_id="saga-1", step="a", idempotency_key="forged"),
        StepFailed(saga_id="saga-1", step="a", idempotency_key="forged"),
        CompensationFailed(saga_id="saga-1", step="a", attempt=1),
        CompensationSucceeded(saga_id="saga-1", step="c"),
    ]
    for event in events:
        assert pair.deliver(event) == []
    assert [(now, saga, event) for now, saga, event, _ in recorder.drops] == [
        (7.5, "saga-1", event) for event in events
    ]


def test_a_timer_that_fired_is_not_cancelled_afterwards() -> None:
    """Giving up after the last timeout finishes the saga with nothing to cancel: the timer that
    fired is gone."""
    definition = saga_of("a", pivot="p", retry=RetryPolicy(max_attempts=2))
    pair = SagaPair(definition, actions={"p": [LOST, LOST]}).start()
    pair.run(until=lambda: pair.saga.steps[1].attempt == 2)
    fired = pair.clock.pop()
    assert fired is not None
    assert pair.deliver(fired) == [pair.finished]
    compensation = saga_of("a", "b", compensation_retry=RetryPolicy(max_attempts=1))
    pair = SagaPair(compensation, actions={"b": [FAIL]}, compensations={"a": [LOST]}).start()
    pair.run(until=lambda: pair.saga.step_state("a") is StepState.COMPENSATING)
    fired = pair.clock.pop()
    assert fired is not None
    assert pair.deliver(fired) == [pair.finished]


def test_a_start_that_fails_halfway_leaves_the_saga_broken(monkeypatch: pytest.MonkeyPatch) -> None:
    """A table with no row into executing: the saga began but its first step cannot be sent."""
    spec = attrs.evolve(
        STEP_LIFECYCLE, transitions=[t for t in STEP_LIFECYCLE.transitions if t.trigger != "send"]
    )
    monkeypatch.setattr(_moves, "STEP_LIFECYCLE", spec)
    monkeypatch.setattr(_moves, "STEP_MACHINE", LifecycleMachine(spec))
    saga = SagaInstance(ABC, "s")
    with pytest.raises(IllegalTransition) as first:
        saga.start(0.0)
    assert saga.broken
    with pytest.raises(IllegalTransition) as again:
        saga.resume(1.0)
    assert again.value is first.value
