"""Late replies that answer an earlier try: found in review, pinned here."""

from __future__ import annotations

from helpers import Recorder

from sagafsm import (
    CompensationFailed,
    ExecuteStep,
    RetryPolicy,
    SagaBuilder,
    SagaInstance,
    SagaState,
    StartTimer,
    StepFailed,
    StepState,
    StepSucceeded,
    TimerFired,
)
from sagafsm.commands import TimerPurpose


def _timer(commands: list) -> str:
    return next(c.timer_id for c in commands if isinstance(c, StartTimer))


def test_a_late_failure_of_an_earlier_compensation_try_is_ignored() -> None:
    """Try 1 timed out, try 2 is in flight; try 1's failure must not count as try 2's."""
    definition = (
        SagaBuilder("s", timeout=1.0, compensation_retry=RetryPolicy(max_attempts=2))
        .step("a", participant="p", action="do_a", compensation="undo_a")
        .step("b", participant="q", action="do_b", compensation="undo_b")
        .build()
    )
    saga = SagaInstance(definition, "s1")
    saga.start(0.0)
    saga.handle(StepSucceeded(saga_id="s1", step="a"), 0.1)
    out = saga.handle(StepFailed(saga_id="s1", step="b"), 0.2)  # compensate a, try 1
    out = saga.handle(TimerFired(saga_id="s1", timer_id=_timer(out)), 1.2)  # timed out: back off
    out = saga.handle(TimerFired(saga_id="s1", timer_id=_timer(out)), 1.3)  # try 2 goes out
    assert saga.steps[0].compensation_attempt == 2
    late = saga.handle(CompensationFailed(saga_id="s1", step="a", attempt=1), 1.4)
    assert late == [] and saga.state is SagaState.COMPENSATING
    failed = saga.handle(CompensationFailed(saga_id="s1", step="a", attempt=2), 1.5)
    assert saga.state is SagaState.OPERATOR_REQUIRED and failed


def test_a_retriable_step_whose_timed_out_try_failed_retries_under_a_fresh_key() -> None:
    """The key of the try that failed is dead: the scheduled retry must not reuse it."""
    definition = (
        SagaBuilder("s", timeout=1.0)
        .step("a", participant="p", action="do_a", compensation="undo_a")
        .pivot("b", participant="q", action="do_b")
        .retriable("mail", participant="m", action="send", retry=RetryPolicy(max_attempts=3))
        .build()
    )
    saga = SagaInstance(definition, "s1")
    saga.start(0.0)
    saga.handle(StepSucceeded(saga_id="s1", step="a"), 0.1)
    out = saga.handle(StepSucceeded(saga_id="s1", step="b"), 0.2)
    first = next(c for c in out if isinstance(c, ExecuteStep))
    out = saga.handle(TimerFired(saga_id="s1", timer_id=_timer(out)), 1.2)  # timed out
    assert any(c.purpose is TimerPurpose.ACTION_BACKOFF for c in out if isinstance(c, StartTimer))
    saga.handle(StepFailed(saga_id="s1", step="mail", idempotency_key=first.idempotency_key), 1.21)
    out = saga.handle(TimerFired(saga_id="s1", timer_id=saga.timer_id or ""), 1.3)
    retry = next(c for c in out if isinstance(c, ExecuteStep))
    assert retry.idempotency_key != first.idempotency_key


def _retriable_saga() -> tuple[SagaInstance, ExecuteStep, list]:
    """A saga whose retriable step 'mail' timed out once and is backing off (3 tries)."""
    definition = (
        SagaBuilder("s", timeout=1.0)
        .pivot("b", participant="q", action="do_b")
        .retriable("mail", participant="m", action="send", retry=RetryPolicy(max_attempts=3))
        .build()
    )
    recorder = Recorder()
    saga = SagaInstance(definition, "s1", recorder=recorder)
    saga.start(0.0)
    out = saga.handle(StepSucceeded(saga_id="s1", step="b"), 0.1)
    first = next(c for c in out if isinstance(c, ExecuteStep))
    saga.handle(TimerFired(saga_id="s1", timer_id=_timer(out)), 1.1)  # timed out: backing off
    return saga, first, recorder.moves


def test_a_timed_out_try_that_then_fails_takes_the_back_off_self_loop() -> None:
    """WAITING_RETRY -> WAITING_RETRY along back_off; the backoff timer already armed stays."""
    saga, first, moves = _retriable_saga()
    armed = saga.timer_id
    out = saga.handle(
        StepFailed(saga_id="s1", step="mail", idempotency_key=first.idempotency_key), 1.2
    )
    assert out == []  # the retry is already scheduled: no new timer
    assert saga.timer_id == armed
    assert moves[-1] == ("mail", "back_off", StepState.WAITING_RETRY, StepState.WAITING_RETRY)
    assert saga.steps[1].generation == 1


def test_a_keyless_duplicate_of_that_failure_spends_no_further_key() -> None:
    """Each try fails at most once: repeated key-less failures cannot push the key count past
    the tries sent, so the saga's snapshot stays one restore() accepts."""
    saga, first, _ = _retriable_saga()
    for _ in range(4):
        saga.handle(StepFailed(saga_id="s1", step="mail"), 1.2)
    assert (saga.steps[1].attempt, saga.steps[1].generation) == (1, 1)
    restored = SagaInstance.restore(saga.definition, saga.snapshot())
    out = restored.handle(TimerFired(saga_id="s1", timer_id=saga.timer_id or ""), 1.3)
    retry = next(c for c in out if isinstance(c, ExecuteStep))
    assert retry.idempotency_key != first.idempotency_key
    assert retry.idempotency_key.endswith("/1")


def test_a_reply_carrying_a_key_the_step_never_sent_is_ignored() -> None:
    """Even before any retry under a fresh key, a reply must answer the step's current key."""
    definition = SagaBuilder("s").step("a", participant="p", action="do", compensation="u").build()
    recorder = Recorder()
    saga = SagaInstance(definition, "s1", recorder=recorder)
    saga.start(0.0)
    forged = StepSucceeded(saga_id="s1", step="a", idempotency_key="s1/a/action/7")
    assert saga.handle(forged, 0.1) == []
    assert recorder.reasons_for(forged) == ["unknown: the key names no try of this step"]
    assert saga.step_state("a") is StepState.EXECUTING
    real = StepSucceeded(saga_id="s1", step="a", idempotency_key="s1/a/action")
    assert saga.handle(real, 0.2)[-1].state is SagaState.COMPLETED  # type: ignore[union-attr]


def test_a_compensation_failure_for_a_step_never_compensated_is_called_unknown() -> None:
    """A try number on a compensation that was never sent is not 'an earlier try': the table's
    own reason says what it is."""
    definition = (
        SagaBuilder("s")
        .step("a", participant="p", action="do_a", compensation="undo_a")
        .step("b", participant="q", action="do_b", compensation="undo_b")
        .build()
    )
    recorder = Recorder()
    saga = SagaInstance(definition, "s1", recorder=recorder)
    saga.start(0.0)
    saga.handle(StepSucceeded(saga_id="s1", step="a"), 0.1)
    stray = CompensationFailed(saga_id="s1", step="a", attempt=1)
    assert saga.handle(stray, 0.2) == []
    assert recorder.reasons_for(stray) == ["unknown: no compensation was sent for this step"]
    assert saga.step_state("a") is StepState.SUCCEEDED
