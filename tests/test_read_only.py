"""Read-only steps: a verification before the pivot, with nothing to undo, never compensated."""

from __future__ import annotations

import json

import pytest
from helpers import Outcome, SagaPair, saga_of
from invariants import command_violations, ledger_violations

from sagafsm import (
    Command,
    CompensateStep,
    ExecuteStep,
    InvalidDefinition,
    InvalidSnapshot,
    RetryPolicy,
    SagaBuilder,
    SagaDefinition,
    SagaInstance,
    SagaState,
    StepDefinition,
    StepKind,
    StepState,
)
from sagafsm.lifecycle import STEP_LIFECYCLE

OK, FAIL, LOST = Outcome.OK, Outcome.FAIL, Outcome.LOST


def test_a_read_only_step_is_declared_by_builder_method_or_by_kind() -> None:
    """SagaBuilder.read_only, step(kind=READ_ONLY) and StepDefinition give the same value."""
    by_method = SagaBuilder("o").read_only("verify", participant="c", action="check").build()
    by_kind = (
        SagaBuilder("o")
        .step("verify", participant="c", action="check", kind=StepKind.READ_ONLY)
        .build()
    )
    by_hand = SagaDefinition(
        name="o",
        steps=[
            StepDefinition(name="verify", participant="c", action="check", kind=StepKind.READ_ONLY)
        ],
    )
    assert by_method == by_kind == by_hand
    step = by_method.steps[0]
    assert (step.kind, step.compensation) == (StepKind.READ_ONLY, None)
    assert not step.kind.compensable and step.kind.before_pivot


def test_a_later_failure_compensates_only_the_compensatable_steps_in_reverse_order() -> None:
    """The verifications among them are skipped: no command, no effect, no timer."""
    definition = saga_of("a", "v", "b", "w", "c", read_only=["v", "w"])
    pair = SagaPair(definition, actions={"c": [FAIL]}).start().run()
    assert pair.finished is not None and pair.finished.state is SagaState.FAILED
    assert pair.sent_steps(CompensateStep) == ["b", "a"]
    assert pair.ledger.compensations() == ["b", "a"]
    assert pair.saga.step_state("v") is StepState.SUCCEEDED
    assert pair.saga.step_state("w") is StepState.SUCCEEDED
    assert pair.recorder.step_path("v") == ["send", "succeed"]
    assert ledger_violations(definition, pair.finished, pair.ledger) == []


def test_a_failing_read_only_step_aborts_and_compensates_the_steps_before_it() -> None:
    """Its definite failure is like a compensatable step's: the saga fails, undoing what landed."""
    definition = saga_of("a", "b", "v", "c", read_only=["v"])
    pair = SagaPair(definition, actions={"v": [FAIL]}).start().run()
    assert pair.finished is not None
    assert (pair.finished.state, pair.finished.reason) == (
        SagaState.FAILED,
        "step 'v' failed: scripted",
    )
    assert pair.sent_steps(CompensateStep) == ["b", "a"]
    assert "c" not in pair.sent_steps(ExecuteStep)


def test_a_read_only_step_that_never_replies_aborts_but_is_not_compensated() -> None:
    """Unlike a compensatable step, a silent verification left nothing to undo."""
    definition = saga_of("a", "v", read_only=["v"], retry=RetryPolicy(max_attempts=2))
    pair = SagaPair(definition, actions={"v": [LOST, LOST]}).start().run()
    assert pair.finished is not None
    assert (pair.finished.state, pair.finished.reason) == (
        SagaState.FAILED,
        "step 'v' got no reply after 2 tries",
    )
    assert pair.sent_steps(CompensateStep) == ["a"]
    assert pair.saga.step_state("v") is StepState.TIMED_OUT
    # the same saga with a compensatable 'v' does compensate it: the difference is the kind
    compensatable = saga_of("a", "v", retry=RetryPolicy(max_attempts=2))
    other = SagaPair(compensatable, actions={"v": [LOST, LOST]}).start().run()
    assert other.sent_steps(CompensateStep) == ["v", "a"]


def test_a_saga_of_verifications_only_fails_with_nothing_to_compensate() -> None:
    """No compensatable step at all: the failure finishes the saga on that very reply."""
    definition = saga_of("v", "w", read_only=["v", "w"])
    pair = SagaPair(definition, actions={"w": [FAIL]}).start().run()
    assert pair.finished is not None and pair.finished.state is SagaState.FAILED
    assert pair.sent(CompensateStep) == []
    assert pair.clock.live == {}


def test_read_only_steps_before_a_pivot_run_and_the_saga_completes() -> None:
    """The pivot and the retriable steps after it run as usual, with the verifications' results."""
    definition = saga_of("v", "a", pivot="p", retriable=["r"], read_only=["v"])
    pair = SagaPair(definition).start().run()
    assert pair.finished is not None and pair.finished.state is SagaState.COMPLETED
    assert command_violations(definition, pair.history) == []


def test_a_read_only_step_after_the_pivot_is_refused() -> None:
    """Read-only steps abort the saga when they fail, which the pivot forbids."""
    builder = (
        SagaBuilder("o")
        .pivot("p", participant="bank", action="charge")
        .read_only("v", participant="c", action="check")
    )
    with pytest.raises(InvalidDefinition, match="read-only step 'v' comes after the pivot 'p'"):
        builder.build()


def test_a_read_only_step_with_a_compensation_is_refused() -> None:
    """It has no effect to undo, so a compensation would be sent for nothing."""
    with pytest.raises(InvalidDefinition, match=r"'v'.*cannot have a compensation.*no effect"):
        StepDefinition(
            name="v",
            participant="c",
            action="check",
            compensation="uncheck",
            kind=StepKind.READ_ONLY,
        )
    with pytest.raises(InvalidDefinition, match="cannot have a compensation"):
        SagaBuilder("o").step(
            "v", participant="c", action="check", compensation="uncheck", kind=StepKind.READ_ONLY
        )
    with pytest.raises(InvalidDefinition, match="read-only step cannot have a compensation"):
        SagaBuilder("o").read_only("v", participant="c", action="check", compensation="uncheck")


def test_a_compensatable_step_without_a_compensation_is_still_refused() -> None:
    """The message says how to declare a step with nothing to undo."""
    with pytest.raises(InvalidDefinition, match=r"needs a compensation.*read-only"):
        SagaBuilder("o").step("verify", participant="c", action="check")


def test_a_snapshot_with_a_compensated_read_only_step_is_refused() -> None:
    """restore() knows a read-only step is never compensated."""
    definition = saga_of("a", "v", "b", read_only=["v"])
    pair = SagaPair(definition, actions={"b": [FAIL]}, compensations={"a": [LOST]}).start()
    pair.run(until=lambda: bool(pair.sent(CompensateStep)))
    snapshot = json.loads(json.dumps(pair.saga.snapshot()))
    SagaInstance.restore(definition, snapshot)  # the real one is fine
    snapshot["steps"][1][0], snapshot["steps"][1][2] = "compensated", 1
    with pytest.raises(InvalidSnapshot, match="'v' is compensated, but a read_only step"):
        SagaInstance.restore(definition, snapshot)


class CompensateReadOnly(SagaInstance):
    """A broken engine that compensates read-only steps too (with a made-up compensation)."""

    __slots__ = ()

    def _compensate_next(self, below: int, now: float, out: list[Command]) -> None:
        for index in range(below, -1, -1):
            if self.steps[index].state in STEP_LIFECYCLE.landed:
                self._send_compensation(index, now, out)
                return
        self._finish("compensated", self.reason, now, out)

    def _compensate_command(self, index: int) -> CompensateStep:
        step = self.definition.steps[index]
        run = self.steps[index]
        return CompensateStep(
            saga_id=self.saga_id,
            step=step.name,
            participant=step.participant,
            compensation=step.compensation or f"undo_{step.action}",
            attempt=run.compensation_attempt,
            idempotency_key=f"{self.saga_id}/{step.name}/compensation",
            action_key=f"{self.saga_id}/{step.name}/action",
            data=self.data,
            action_result=run.result,
        )


def test_the_invariants_catch_a_compensated_read_only_step() -> None:
    """The checks the tests above rely on fail on an engine that compensates verifications."""
    definition = saga_of("a", "v", "b", read_only=["v"])
    pair = SagaPair(definition, actions={"b": [FAIL]})
    pair.saga = CompensateReadOnly(definition, "saga-1", recorder=pair.recorder)
    pair.start().run()
    assert pair.sent_steps(CompensateStep) == ["v", "a"]
    assert "compensating 'v', a read_only step" in command_violations(definition, pair.history)
    assert pair.finished is not None
    assert any("read-only" in v for v in ledger_violations(definition, pair.finished, pair.ledger))
