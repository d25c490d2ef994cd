"""Late replies that answer an earlier try: found in review, pinned here."""

from __future__ import annotations

from sagafsm import (
    CompensationFailed,
    ExecuteStep,
    RetryPolicy,
    SagaBuilder,
    SagaInstance,
    SagaState,
    StartTimer,
    StepFailed,
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
