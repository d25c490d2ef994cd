"""Data and results flow through the saga: each command carries what its step needs.

The participants of :mod:`helpers` hand back results of their own making (``{"id": "a-1"}``) and
check what they are handed, so these tests judge the shapes against what was really handed out.
"""

from __future__ import annotations

import json
from typing import Any

import attrs
import pytest
from helpers import Outcome, SagaPair, saga_of
from invariants import command_violations, ledger_violations

from sagafsm import (
    CompensateStep,
    CompensationSucceeded,
    ExecuteStep,
    RetryPolicy,
    SagaFinished,
    SagaInstance,
    SagaState,
    StepFailed,
    StepSucceeded,
)

OK, FAIL, LOST, HOLD = Outcome.OK, Outcome.FAIL, Outcome.LOST, Outcome.HOLD
DATA = {"order": 7, "lines": [{"sku": "x", "qty": 2}], "gift": None}
ABC = saga_of("a", "b", "c")


def handed(pair: SagaPair, step: str) -> dict[str, Any]:
    """The result the participant handed back for the step's (latest) action."""
    key = next(c.idempotency_key for c in reversed(pair.sent(ExecuteStep)) if c.step == step)
    return dict(pair.ledger.handed[key])


def test_each_step_is_sent_the_data_and_the_results_of_the_steps_before_it() -> None:
    """ExecuteStep.data is the saga's input; ExecuteStep.results maps each earlier step, in step
    order, to the result its success reply carried."""
    pair = SagaPair(ABC, data=DATA).start().run()
    a, b, c = pair.sent(ExecuteStep)
    assert [x.data for x in (a, b, c)] == [DATA, DATA, DATA]
    assert a.results == {}
    assert b.results == {"a": {"id": "a-1"}}
    assert c.results == {"a": {"id": "a-1"}, "b": {"id": "b-2"}}
    assert list(c.results) == ["a", "b"]
    assert pair.ledger.wrong_input == []


def test_a_read_only_steps_result_is_passed_on_like_any_other() -> None:
    """A verification's answer reaches the steps after it."""
    definition = saga_of("verify", "reserve", read_only=["verify"])
    pair = SagaPair(definition, data=DATA).start().run()
    reserve = pair.sent(ExecuteStep)[-1]
    assert reserve.results == {"verify": handed(pair, "verify")}


def test_a_retry_carries_the_same_data_and_results_as_the_first_try() -> None:
    """A try that timed out is re-sent as it was, but for its attempt number."""
    pair = SagaPair(ABC, actions={"b": [LOST]}, data=DATA).start().run()
    first, second = (c for c in pair.sent(ExecuteStep) if c.step == "b")
    assert (first.attempt, second.attempt) == (1, 2)
    assert (
        (first.data, first.results) == (second.data, second.results) == (DATA, {"a": {"id": "a-1"}})
    )


def test_each_compensation_is_handed_its_own_actions_result() -> None:
    """CompensateStep.action_result is what that step's action handed back; action_replied."""
    pair = SagaPair(ABC, actions={"c": [FAIL]}, data=DATA).start().run()
    b, a = pair.sent(CompensateStep)
    assert (b.step, b.action_result, b.action_replied) == ("b", handed(pair, "b"), True)
    assert (a.step, a.action_result, a.action_replied) == ("a", handed(pair, "a"), True)
    assert b.data == a.data == DATA
    assert pair.ledger.refused == []
    assert pair.finished is not None and pair.finished.state is SagaState.FAILED


def test_a_compensation_after_a_timeout_says_no_result_arrived() -> None:
    """The step that never replied is compensated with action_result None, from data and key."""
    definition = saga_of("a", "b", "c", retry=RetryPolicy(max_attempts=2))
    pair = SagaPair(definition, actions={"b": [LOST, LOST]}, data=DATA).start().run()
    b, a = pair.sent(CompensateStep)
    assert (b.step, b.action_result, b.action_replied) == ("b", None, False)
    assert b.action_key == next(c.idempotency_key for c in pair.sent(ExecuteStep) if c.step == "b")
    assert (a.action_result, a.action_replied) == (handed(pair, "a"), True)


def test_a_success_arriving_after_the_step_was_given_up_gives_it_no_result() -> None:
    """The late reply is ignored; the compensation's retry still says no reply arrived."""
    definition = saga_of("a", "b", retry=RetryPolicy(max_attempts=1))
    pair = SagaPair(definition, actions={"b": [HOLD]}, compensations={"b": [LOST]}).start()
    pair.run(until=lambda: len(pair.sent(CompensateStep)) == 1)
    late = pair.held.pop()
    assert isinstance(late, StepSucceeded) and late.result
    assert pair.deliver(late) == []
    pair.run()
    tries = [c for c in pair.sent(CompensateStep) if c.step == "b"]
    assert [(c.attempt, c.action_result) for c in tries] == [(1, None), (2, None)]
    assert "b" not in pair.saga.results


def test_a_duplicate_success_with_another_result_does_not_replace_the_first() -> None:
    """The result kept is the one of the reply that moved the step; a duplicate changes nothing."""
    saga = SagaInstance(ABC, "s")
    saga.start(0.0)
    saga.handle(StepSucceeded(saga_id="s", step="a", result={"n": 1}), 0.1)
    assert saga.handle(StepSucceeded(saga_id="s", step="a", result={"n": 2}), 0.2) == []
    assert saga.results == {"a": {"n": 1}}
    out = saga.handle(StepSucceeded(saga_id="s", step="b", result={"n": 3}), 0.3)
    execute = next(c for c in out if isinstance(c, ExecuteStep))
    assert execute.results == {"a": {"n": 1}, "b": {"n": 3}}


def test_a_retriable_steps_result_is_that_of_the_try_that_succeeded() -> None:
    """After a definite failure the retry goes out under a fresh key; its reply's result counts."""
    definition = saga_of("a", pivot="p", retriable=["r", "s"], retry=RetryPolicy(max_attempts=3))
    pair = SagaPair(definition, actions={"r": [FAIL]}).start().run()
    keys = [c.idempotency_key for c in pair.sent(ExecuteStep) if c.step == "r"]
    assert len(set(keys)) == 2
    assert pair.sent(ExecuteStep)[-1].results["r"] == pair.ledger.handed[keys[-1]]


def test_results_survive_a_snapshot_and_restore() -> None:
    """A saga restored mid-run hands the later steps and the compensations the same results."""
    pair = SagaPair(ABC, actions={"c": [HOLD]}, data=DATA).start()
    pair.run(until=lambda: bool(pair.held))
    restored = SagaInstance.restore(ABC, json.loads(json.dumps(pair.saga.snapshot())))
    assert restored.data == DATA
    assert restored.results == pair.saga.results == {"a": handed(pair, "a"), "b": handed(pair, "b")}
    out = restored.handle(StepFailed(saga_id="saga-1", step="c", reason="no stock"), 1.0)
    compensate = next(c for c in out if isinstance(c, CompensateStep))
    assert (compensate.step, compensate.action_result, compensate.data) == (
        "b",
        handed(pair, "b"),
        DATA,
    )


def test_a_snapshot_shares_nothing_with_the_live_saga() -> None:
    """Changing a snapshot's nested data or results afterwards leaves the saga as it was."""
    saga = SagaInstance(ABC, "s", data={"customer": {"name": "ada"}, "tags": ("a", "b")})
    saga.start(0.0)
    saga.handle(StepSucceeded(saga_id="s", step="a", result={"ids": [1, 2]}), 0.1)
    snapshot = saga.snapshot()
    assert snapshot["data"]["tags"] == ["a", "b"]  # plain JSON: a tuple comes back as a list
    assert json.loads(json.dumps(snapshot)) == snapshot
    snapshot["data"]["customer"]["name"] = "eve"
    snapshot["steps"][0][4]["ids"].append(3)
    assert saga.data["customer"] == {"name": "ada"}
    assert saga.results == {"a": {"ids": [1, 2]}}
    restored = SagaInstance.restore(ABC, saga.snapshot())
    assert restored.snapshot() == saga.snapshot()


def test_changing_a_result_after_its_event_was_built_changes_nothing() -> None:
    """The event keeps a plain copy of the checked result: a set (not JSON) or a cycle slipped
    into the caller's mapping afterwards never reaches the saga, its snapshot or its moves."""
    saga = SagaInstance(ABC, "s", data=DATA)
    saga.start(0.0)
    given: dict[str, Any] = {"ids": [1]}
    event = StepSucceeded(saga_id="s", step="a", result=given)
    given["bad"] = {1, 2}
    given["self"] = given
    commands = saga.handle(event, 0.1)
    assert saga.results == {"a": {"ids": [1]}}
    assert isinstance(commands[1], ExecuteStep) and commands[1].results == {"a": {"ids": [1]}}
    assert json.loads(json.dumps(saga.snapshot())) == saga.snapshot()


def test_a_completed_saga_finishes_with_every_result_and_no_reason() -> None:
    """SagaFinished.results maps every step to its result."""
    pair = SagaPair(ABC).start().run()
    assert pair.finished == SagaFinished(
        saga_id="saga-1",
        state=SagaState.COMPLETED,
        reason=None,
        results={s: handed(pair, s) for s in "abc"},
    )


@pytest.mark.parametrize(
    ("reason", "expected"),
    [("card declined", "step 'b' failed: card declined"), ("", "step 'b' failed")],
)
def test_a_declined_step_fails_the_saga_with_a_reason_naming_it(reason: str, expected: str) -> None:
    """The participant's reason follows the step's name; the results of the others are kept."""
    saga = SagaInstance(ABC, "s")
    saga.start(0.0)
    saga.handle(StepSucceeded(saga_id="s", step="a", result={"id": 1}), 0.1)
    saga.handle(StepFailed(saga_id="s", step="b", reason=reason), 0.2)
    out = saga.handle(CompensationSucceeded(saga_id="s", step="a"), 0.3)
    assert out[-1] == SagaFinished(
        saga_id="s", state=SagaState.FAILED, reason=expected, results={"a": {"id": 1}}
    )


def test_a_timed_out_step_fails_the_saga_with_a_reason_naming_it() -> None:
    """No reply after every try: the reason says how many tries went out."""
    definition = saga_of("a", "b", retry=RetryPolicy(max_attempts=2))
    pair = SagaPair(definition, actions={"b": [LOST, LOST]}).start().run()
    assert pair.finished is not None
    assert (pair.finished.state, pair.finished.reason) == (
        SagaState.FAILED,
        "step 'b' got no reply after 2 tries",
    )
    assert pair.finished.results == {"a": handed(pair, "a")}


@pytest.mark.parametrize(
    ("definition", "actions", "compensations", "reason"),
    [
        pytest.param(
            saga_of("a", pivot="p", retriable=["r"], retry=RetryPolicy(max_attempts=2)),
            {"r": [FAIL, FAIL]},
            {},
            "retriable step 'r' failed 2 times",
            id="retriable-failed",
        ),
        pytest.param(
            saga_of("a", pivot="p", retry=RetryPolicy(max_attempts=2)),
            {"p": [LOST, LOST]},
            {},
            "pivot step 'p' got no reply after 2 tries: its outcome is unknown",
            id="pivot-silent",
        ),
        pytest.param(
            saga_of("a", pivot="p", retriable=["r"], retry=RetryPolicy(max_attempts=1)),
            {"r": [LOST]},
            {},
            "retriable step 'r' got no reply after 1 try: its outcome is unknown",
            id="retriable-silent",
        ),
        pytest.param(
            saga_of("a", "b", compensation_retry=RetryPolicy(max_attempts=2)),
            {"b": [FAIL]},
            {"a": [FAIL, FAIL]},
            "compensation of step 'a' failed 2 times (compensating because step 'b' failed: "
            "scripted)",
            id="compensation-gave-up",
        ),
    ],
)
def test_an_escalation_says_what_a_person_must_look_at(
    definition: Any, actions: Any, compensations: Any, reason: str
) -> None:
    """OPERATOR_REQUIRED comes with the reason, in the saga and in SagaFinished."""
    pair = SagaPair(definition, actions=actions, compensations=compensations).start().run()
    assert pair.finished is not None
    assert (pair.finished.state, pair.finished.reason) == (SagaState.OPERATOR_REQUIRED, reason)
    assert pair.saga.reason == reason
    assert command_violations(definition, pair.history) == []


class WrongResult(SagaInstance):
    """A broken engine: hands each compensation the result of another step."""

    __slots__ = ()

    def _compensate_command(self, index: int) -> CompensateStep:
        command = super()._compensate_command(index)
        other = next(r.result for i, r in enumerate(self.steps) if i != index and r.result)
        return attrs.evolve(command, action_result=other)


def test_the_participants_refuse_a_compensation_handed_another_steps_result() -> None:
    """The check behind every test above can fail: a wrong result is refused and reported."""
    pair = SagaPair(ABC, actions={"c": [FAIL]})
    pair.saga = WrongResult(ABC, "saga-1", recorder=pair.recorder)
    pair.start().run()
    assert pair.ledger.refused
    assert pair.ledger.compensations() == []
    assert pair.finished is not None
    violations = ledger_violations(ABC, pair.finished, pair.ledger)
    assert any("refused" in v for v in violations)
    assert any("compensation carries" in v for v in command_violations(ABC, pair.history))


def test_the_participants_notice_a_step_handed_the_wrong_results() -> None:
    """An ExecuteStep carrying results nobody handed out is reported."""
    pair = SagaPair(ABC)
    pair.participants.receive(
        ExecuteStep(
            saga_id="saga-1",
            step="b",
            participant="p-b",
            action="do_b",
            attempt=1,
            idempotency_key="k",
            data={"not": "the data"},
            results={"a": {"id": "forged"}},
        )
    )
    assert len(pair.ledger.wrong_input) == 2
