"""The orchestration core both drivers share: transactions, what must be committed, recovery."""

from __future__ import annotations

from typing import Any

import attrs
import pytest
from helpers import saga_of

from sagafsm import (
    CompensateStep,
    ExecuteStep,
    IllegalTransition,
    InvalidConfig,
    RetryPolicy,
    SagaBuilder,
    SagaInstance,
    StartTimer,
    StepFailed,
    StepSucceeded,
    TimerFired,
)
from sagafsm.commands import CancelTimer
from sagafsm.errors import InvalidArgument
from sagafsm.messages import ORCHESTRATOR, Envelope, MessageKind, Outcome, WireMessage, reply_to
from sagafsm.orchestration import OrchestrationCore, Transaction, envelope_for, event_for

AB = saga_of("a", "b")
RETRIABLE = (
    SagaBuilder("mailer", timeout=1.0)
    .pivot("b", participant="q", action="do_b")
    .retriable("mail", participant="m", action="send", retry=RetryPolicy(max_attempts=3))
    .build()
)


def _timer_id(transaction: Transaction) -> str:
    timer = transaction.timer
    assert isinstance(timer, StartTimer)
    return timer.timer_id


def test_a_start_is_a_transaction_with_its_snapshot_its_command_and_its_records() -> None:
    core = OrchestrationCore([AB])
    transaction = core.start(AB, "s1", 0.0, data={"n": 1})
    assert transaction.changed and transaction.started
    assert transaction.snapshot == core.get("s1").snapshot()  # type: ignore[union-attr]
    assert [c.step for c in transaction.outbound] == ["a"]
    assert isinstance(transaction.timer, StartTimer)
    assert [r[1] for r in transaction.records] == ["transition", "transition"]  # saga, step a
    assert transaction.finished is None


def test_the_snapshot_is_the_state_at_the_move_not_later() -> None:
    """A driver whose commit completes later (the simulator's store latency) stores the state
    of the move it commits."""
    core = OrchestrationCore([AB])
    first = core.start(AB, "s1", 0.0)
    core.handle(StepSucceeded(saga_id="s1", step="a"), 0.1)
    assert first.snapshot is not None
    assert first.snapshot["steps"][0][0] == "executing"


def test_an_ignored_event_changes_nothing_and_needs_no_commit() -> None:
    core = OrchestrationCore([AB])
    core.start(AB, "s1", 0.0)
    core.handle(StepSucceeded(saga_id="s1", step="a"), 0.1)
    again = core.handle(StepSucceeded(saga_id="s1", step="a"), 0.2)
    assert again is not None
    assert not again.changed and again.snapshot is None and again.commands == []
    assert [r[1] for r in again.records] == ["ignored"]


def test_a_move_that_sends_nothing_but_changes_the_saga_must_be_committed() -> None:
    """A timed-out try that then fails spends its key: no command, but a crash must not forget
    it (the old simulator saved only moves that sent something)."""
    core = OrchestrationCore([RETRIABLE])
    core.start(RETRIABLE, "s1", 0.0)
    sent = core.handle(StepSucceeded(saga_id="s1", step="b"), 0.1)
    assert sent is not None
    (first,) = sent.outbound
    core.handle(TimerFired(saga_id="s1", timer_id=_timer_id(sent)), 1.1)  # timed out: backing off
    late = core.handle(
        StepFailed(saga_id="s1", step="mail", idempotency_key=first.idempotency_key), 1.2
    )
    assert late is not None and late.commands == []
    assert late.changed
    assert late.snapshot is not None and late.snapshot["steps"][1][3] == 1  # the next generation


def test_a_finished_saga_has_no_snapshot_and_stays_until_dropped() -> None:
    core = OrchestrationCore([AB])
    core.start(AB, "s1", 0.0)
    core.handle(StepSucceeded(saga_id="s1", step="a"), 0.1)
    done = core.handle(StepSucceeded(saga_id="s1", step="b"), 0.2)
    assert done is not None and done.finished is not None and done.snapshot is None
    assert "s1" in core  # until the driver's commit is durable
    core.drop("s1")
    assert "s1" not in core and core.handle(StepSucceeded(saga_id="s1", step="b"), 0.3) is None


def test_recovery_with_resend_re_sends_what_is_in_flight_under_the_same_keys() -> None:
    core = OrchestrationCore([AB])
    first = core.start(AB, "s1", 0.0)
    stored = [(AB.name, first.snapshot)]
    core.crash()
    assert len(core) == 0
    (again,) = core.recover(stored, 0.5, resend=True)
    assert [c.idempotency_key for c in again.outbound] == [
        c.idempotency_key for c in first.outbound
    ]
    assert isinstance(again.timer, StartTimer)


def test_recovery_without_resend_leaves_sending_to_the_outbox() -> None:
    core = OrchestrationCore([AB])
    first = core.start(AB, "s1", 0.0)
    core.crash()
    assert core.recover([(AB.name, first.snapshot)], 0.5, resend=False) == []
    assert "s1" in core
    moved = core.handle(StepSucceeded(saga_id="s1", step="a"), 0.6)
    assert moved is not None and [c.step for c in moved.outbound] == ["b"]


def test_recovery_refuses_an_unregistered_definition_and_a_saga_running_twice() -> None:
    core = OrchestrationCore([AB])
    first = core.start(AB, "s1", 0.0)
    with pytest.raises(InvalidConfig, match="no saga definition named 'other'"):
        core.recover([("other", first.snapshot)], 0.1, resend=False)
    with pytest.raises(IllegalTransition):
        core.recover([(AB.name, first.snapshot)], 0.1, resend=False)
    with pytest.raises(IllegalTransition):
        core.start(AB, "s1", 0.2)


def test_two_different_definitions_under_one_name_are_refused() -> None:
    other = saga_of("a", "c")
    assert other.name == AB.name
    with pytest.raises(InvalidConfig, match="two different saga definitions"):
        OrchestrationCore([AB, other])
    with pytest.raises(InvalidArgument):
        OrchestrationCore(["AB"])  # type: ignore[list-item]


def test_the_engine_class_is_the_drivers_to_choose() -> None:
    class Counting(SagaInstance):
        __slots__ = ()
        made = 0

        def __init__(self, *args: object, **kwargs: object) -> None:
            type(self).made += 1
            super().__init__(*args, **kwargs)  # type: ignore[arg-type]

    core = OrchestrationCore([AB], engine=Counting)
    core.start(AB, "s1", 0.0)
    assert Counting.made == 1


def test_commands_and_replies_cross_as_envelopes() -> None:
    core = OrchestrationCore([AB])
    core.start(AB, "s1", 0.0)
    step_a = core.handle(StepSucceeded(saga_id="s1", step="a", result={"id": 7}), 0.2)
    assert step_a is not None
    (execute,) = step_a.outbound
    assert isinstance(execute, ExecuteStep)
    envelope = envelope_for(execute, 41, 40)
    assert (envelope.kind, envelope.source, envelope.dest) == (
        MessageKind.EXECUTE,
        ORCHESTRATOR,
        execute.participant,
    )
    assert envelope.results == {"a": {"id": 7}} and envelope.causation_id == 40
    failed = core.handle(StepFailed(saga_id="s1", step="b", reason="declined"), 0.3)
    assert failed is not None
    (compensate,) = failed.outbound
    assert isinstance(compensate, CompensateStep)
    undo = envelope_for(compensate, 42, None)
    assert undo.kind is MessageKind.COMPENSATE and undo.action_result == {"id": 7}
    assert isinstance(failed.timer, (StartTimer, CancelTimer))
    reply = envelope.__class__(
        message_id=43,
        kind=MessageKind.ACTION_REPLY,
        saga_id="s1",
        causation_id=41,
        idempotency_key=envelope.idempotency_key,
        source=envelope.dest,
        dest=ORCHESTRATOR,
        step="b",
        operation=envelope.operation,
        outcome=Outcome.SUCCEEDED,
        result={"ok": True},
    )
    event = event_for(reply)
    assert isinstance(event, StepSucceeded) and event.result == {"ok": True}
    with pytest.raises(InvalidArgument, match="not a reply"):
        event_for(envelope)


def test_the_simulators_wire_message_has_the_envelopes_fields_and_defaults() -> None:
    """WireMessage cannot drift from Envelope: the same field names, and built with only the
    required fields, the same defaults (it converts to an equal Envelope)."""
    assert sorted(WireMessage.__slots__) == sorted(a.name for a in attrs.fields(Envelope))
    required: dict[str, Any] = {
        "message_id": 1,
        "kind": MessageKind.EXECUTE,
        "saga_id": "s1",
        "causation_id": None,
        "idempotency_key": "k",
        "source": ORCHESTRATOR,
        "dest": "pa",
        "step": "a",
        "operation": "do_a",
    }
    assert WireMessage(**required).envelope() == Envelope(**required)


def test_commands_and_replies_built_as_wire_messages_are_the_same_messages() -> None:
    """envelope_for and reply_to with ``make=WireMessage`` give what they give by default,
    field for field, for an action, a compensation and both replies."""
    core = OrchestrationCore([AB])
    core.start(AB, "s1", 0.0)
    moved = core.handle(StepSucceeded(saga_id="s1", step="a", result={"id": 7}), 0.2)
    assert moved is not None
    failed = core.handle(StepFailed(saga_id="s1", step="b", reason="no"), 0.3)
    assert failed is not None
    for command in (*moved.outbound, *failed.outbound):
        wire = envelope_for(command, 5, 4, WireMessage)
        assert type(wire) is WireMessage
        assert wire.envelope() == envelope_for(command, 5, 4)
        for outcome, result in ((Outcome.SUCCEEDED, {"x": 1}), (Outcome.FAILED, None)):
            fields: dict[str, Any] = {
                "message_id": 6,
                "source": "pa",
                "outcome": outcome,
                "result": result,
                "reason": "r",
            }
            answer = reply_to(wire, **fields, make=WireMessage)
            assert type(answer) is WireMessage
            assert answer.envelope() == reply_to(wire.envelope(), **fields)
            assert event_for(answer, checked=True) == event_for(answer.envelope())
