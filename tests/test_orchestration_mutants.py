"""Orchestration-core cases that mutation testing (mutation/run, issue 15) found unpinned: every
field of the envelopes and events both drivers exchange, the trace records of a move, and what
a transaction tells its driver."""

from __future__ import annotations

import pytest
from helpers import saga_of

from sagafsm import (
    CompensationFailed,
    CompensationSucceeded,
    IllegalTransition,
    InvalidArgument,
    InvalidConfig,
    RetryPolicy,
    StartTimer,
    StepFailed,
    StepSucceeded,
    TimerFired,
)
from sagafsm.commands import CancelTimer, CompensateStep, ExecuteStep, SagaFinished
from sagafsm.lifecycle import SagaState, TimerPurpose
from sagafsm.messages import NO_PAYLOAD, ORCHESTRATOR, Envelope, MessageKind, Outcome
from sagafsm.orchestration import (
    BufferingRecorder,
    OrchestrationCore,
    Transaction,
    envelope_for,
    event_for,
    timer_record,
)

AB = saga_of("a", "b")

EXECUTE = ExecuteStep(
    saga_id="s1",
    step="b",
    participant="pb",
    action="do_b",
    attempt=2,
    idempotency_key="s1/b/action",
    data={"n": 1},
    results={"a": {"id": 7}},
)
COMPENSATE = CompensateStep(
    saga_id="s1",
    step="a",
    participant="pa",
    compensation="undo_a",
    attempt=3,
    idempotency_key="s1/a/compensation",
    action_key="s1/a/action",
    data={"n": 1},
    action_result={"id": 7},
)


def test_an_execute_envelope_carries_every_field_of_its_command() -> None:
    assert envelope_for(EXECUTE, 41, 40) == Envelope(
        message_id=41,
        kind=MessageKind.EXECUTE,
        saga_id="s1",
        causation_id=40,
        idempotency_key="s1/b/action",
        source=ORCHESTRATOR,
        dest="pb",
        step="b",
        operation="do_b",
        attempt=2,
        data={"n": 1},
        results={"a": {"id": 7}},
    )


def test_a_compensate_envelope_carries_every_field_of_its_command() -> None:
    assert envelope_for(COMPENSATE, 42, 40) == Envelope(
        message_id=42,
        kind=MessageKind.COMPENSATE,
        saga_id="s1",
        causation_id=40,
        idempotency_key="s1/a/compensation",
        source=ORCHESTRATOR,
        dest="pa",
        step="a",
        operation="undo_a",
        attempt=3,
        action_key="s1/a/action",
        data={"n": 1},
        results=NO_PAYLOAD,
        action_result={"id": 7},
    )


def reply(kind: MessageKind, outcome: Outcome, **fields: object) -> Envelope:
    base: dict[str, object] = dict(
        message_id=50,
        kind=kind,
        saga_id="s1",
        causation_id=41,
        idempotency_key="s1/b/action",
        source="pb",
        dest=ORCHESTRATOR,
        step="b",
        operation="do_b",
        attempt=2,
        outcome=outcome,
    )
    return Envelope(**{**base, **fields})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("envelope", "event"),
    [
        (
            reply(MessageKind.ACTION_REPLY, Outcome.SUCCEEDED, result={"ok": 1}),
            StepSucceeded(saga_id="s1", step="b", result={"ok": 1}, idempotency_key="s1/b/action"),
        ),
        (
            reply(MessageKind.ACTION_REPLY, Outcome.SUCCEEDED),
            StepSucceeded(saga_id="s1", step="b", result={}, idempotency_key="s1/b/action"),
        ),
        (
            reply(MessageKind.ACTION_REPLY, Outcome.FAILED, reason="declined"),
            StepFailed(saga_id="s1", step="b", reason="declined", idempotency_key="s1/b/action"),
        ),
        (
            reply(MessageKind.COMPENSATION_REPLY, Outcome.SUCCEEDED),
            CompensationSucceeded(saga_id="s1", step="b"),
        ),
        (
            reply(MessageKind.COMPENSATION_REPLY, Outcome.FAILED, reason="locked"),
            CompensationFailed(saga_id="s1", step="b", reason="locked", attempt=2),
        ),
    ],
    ids=["success", "success-without-result", "failure", "undone", "undo-failed"],
)
def test_each_reply_becomes_the_event_it_stands_for(envelope: Envelope, event: object) -> None:
    assert event_for(envelope) == event


def test_a_command_is_no_reply() -> None:
    with pytest.raises(Exception, match=r"^not a reply: a compensate message$"):
        event_for(envelope_for(COMPENSATE, 1, None))


def test_the_timer_record_is_the_same_for_both_drivers() -> None:
    command = StartTimer(
        saga_id="s1", timer_id="s1#3", delay=0.5, purpose=TimerPurpose.ACTION_BACKOFF, step="b"
    )
    assert timer_record(2.0, command) == (2.0, "timer", "s1", "s1#3", 0.5, "action_backoff", "b")


def test_a_move_hands_its_driver_the_trace_records_of_that_move_only() -> None:
    core = OrchestrationCore([AB])
    started = core.start(AB, "s1", 0.0)
    assert started.records == [
        (0.0, "transition", "s1", None, "begin", "started", "pending"),
        (0.0, "transition", "s1", "a", "send", "pending", "executing"),
    ]
    core.handle(StepSucceeded(saga_id="s1", step="a"), 0.1)
    again = core.handle(StepSucceeded(saga_id="s1", step="a"), 0.2)
    assert again is not None
    assert again.records == [
        (0.2, "ignored", "s1", "StepSucceeded", "duplicate: the step already succeeded")
    ]


def test_the_buffer_hands_its_records_over_once() -> None:
    buffer = BufferingRecorder()
    buffer.ignored(1.0, "s1", StepSucceeded(saga_id="s1", step="a"), "why")
    assert buffer.take() == [(1.0, "ignored", "s1", "StepSucceeded", "why")]
    assert buffer.take() == []


def test_a_transaction_names_its_saga_and_definition() -> None:
    core = OrchestrationCore([AB])
    transaction = core.start(AB, "s1", 0.0)
    assert (transaction.saga_id, transaction.definition) == ("s1", "order")
    assert repr(transaction) == "<Transaction s1 2 commands>"
    assert transaction.now == 0.0 and transaction.saga is core.get("s1")


def test_a_move_that_cancels_a_timer_and_arms_none_reports_the_cancel() -> None:
    """The last timer command counts: a success cancels the timeout and the next send arms a new
    one; the final success only cancels."""
    core = OrchestrationCore([AB])
    core.start(AB, "s1", 0.0)
    moved = core.handle(StepSucceeded(saga_id="s1", step="a"), 0.1)
    assert moved is not None
    assert [type(c) for c in moved.commands] == [CancelTimer, ExecuteStep, StartTimer]
    assert moved.timer is moved.commands[-1]
    done = core.handle(StepSucceeded(saga_id="s1", step="b"), 0.2)
    assert done is not None
    assert isinstance(done.timer, CancelTimer) and isinstance(done.finished, SagaFinished)
    assert done.finished.state is SagaState.COMPLETED
    assert done.now == 0.2 and not done.started and not moved.started
    bare = Transaction(done.saga, [], [], 0.3)
    assert bare.timer is None and bare.finished is None and not bare.started
    assert not bare.changed
    assert Transaction(done.saga, [done.commands[0]], [], 0.3).changed


def test_a_core_without_snapshots_takes_none() -> None:
    core = OrchestrationCore([AB], snapshots=False)
    transaction = core.start(AB, "s1", 0.0)
    assert transaction.changed and transaction.snapshot is None


def test_a_transition_alone_makes_a_move_worth_committing() -> None:
    """No command, one lifecycle move: ``changed``, and a snapshot to commit."""
    saga = OrchestrationCore([AB]).start(AB, "s1", 0.0).saga
    record = (0.1, "transition", "s1", "a", "send", "pending", "executing")
    moved = Transaction(saga, [], [record], 0.1)
    assert moved.changed and moved.snapshot == saga.snapshot()
    ignored = Transaction(saga, [], [(0.1, "ignored", "s1", "StepSucceeded", "why")], 0.1)
    assert not ignored.changed and ignored.snapshot is None


def test_registering_the_same_definition_twice_is_fine_and_lookups_name_what_is_known() -> None:
    core = OrchestrationCore([AB, AB])
    core.register(AB)
    assert dict(core.definitions) == {"order": AB}
    assert core.definition("order") is AB
    with pytest.raises(InvalidConfig) as info:
        core.definition("refund")
    assert str(info.value) == "no saga definition named 'refund' is registered (registered: order)"
    core.register(saga_of("x", name="refund"))
    with pytest.raises(InvalidConfig, match=r"\(registered: order, refund\)$"):
        core.definition("mail")
    with pytest.raises(InvalidArgument) as refused:
        core.register("AB")  # type: ignore[arg-type]
    assert str(refused.value) == "a definition must be a SagaDefinition, got 'AB'"
    with pytest.raises(InvalidConfig, match=r"\(registered: none\)$"):
        OrchestrationCore().definition("order")


def test_start_registers_a_new_definition_and_the_core_counts_its_sagas() -> None:
    core = OrchestrationCore()
    core.start(AB, "s1", 0.0)
    core.start(AB, "s2", 0.0)
    assert core.definition("order") is AB
    assert len(core) == 2 and "s2" in core and "s3" not in core
    core.drop("s1")
    core.drop("s1")  # dropping twice is harmless
    assert len(core) == 1 and core.get("s1") is None


def test_a_saga_that_never_began_starts_on_recovery_even_without_resend() -> None:
    """Its first move was never made, so no outbox row can make it: recover makes it."""
    from sagafsm import SagaInstance

    stored = [(AB.name, SagaInstance(AB, "s1").snapshot())]
    core = OrchestrationCore([AB])
    (first,) = core.recover(stored, 0.5, resend=False)
    assert [c.step for c in first.outbound] == ["a"]
    assert first.records[0] == (0.5, "transition", "s1", None, "begin", "started", "pending")


def test_a_crash_loses_the_records_not_yet_handed_over() -> None:
    core = OrchestrationCore([AB])
    first = core.start(AB, "s1", 0.0)
    core._recorder.ignored(0.1, "s1", StepSucceeded(saga_id="s1", step="z"), "lost")
    core.crash()
    (again,) = core.recover([(AB.name, first.snapshot)], 0.5, resend=True)
    assert all(record[1] != "ignored" for record in again.records)


def test_recovery_with_resend_re_arms_the_timer_of_a_saga_backing_off() -> None:
    definition = saga_of("a", retry=RetryPolicy(max_attempts=2, initial_backoff=0.4))
    core = OrchestrationCore([definition])
    started = core.start(definition, "s1", 0.0)
    timer = started.timer
    assert isinstance(timer, StartTimer)
    backing_off = core.handle(TimerFired(saga_id="s1", timer_id=timer.timer_id), 1.0)
    assert backing_off is not None and backing_off.snapshot is not None
    core.crash()
    (again,) = core.recover([(definition.name, backing_off.snapshot)], 1.1, resend=True)
    assert again.outbound == []
    assert isinstance(again.timer, StartTimer)
    assert again.timer.purpose is TimerPurpose.ACTION_BACKOFF
    assert again.timer.delay == pytest.approx(0.3)


def test_a_saga_recovered_twice_or_started_twice_is_refused_naming_it() -> None:
    core = OrchestrationCore([AB])
    first = core.start(AB, "s1", 0.0)
    stored = [(AB.name, first.snapshot)]
    with pytest.raises(IllegalTransition) as adopt:
        core.recover(stored, 0.1, resend=False)
    assert str(adopt.value) == (
        "saga s1: the saga lifecycle has no transition 'adopt' from state 'running'"
    )
    with pytest.raises(IllegalTransition) as begin:
        core.start(AB, "s1", 0.2)
    assert str(begin.value) == (
        "saga s1: the saga lifecycle has no transition 'begin' from state 'running'"
    )


def test_a_recovered_saga_records_its_moves_like_any_other() -> None:
    """The restored engine writes to the core's recorder: its next move has trace records, and
    the re-send's transaction carries the time of the recovery."""
    core = OrchestrationCore([AB])
    first = core.start(AB, "s1", 0.0)
    core.crash()
    (again,) = core.recover([(AB.name, first.snapshot)], 0.5, resend=True)
    assert again.now == 0.5
    moved = core.handle(StepSucceeded(saga_id="s1", step="a"), 0.6)
    assert moved is not None
    assert moved.records == [
        (0.6, "transition", "s1", "a", "succeed", "executing", "succeeded"),
        (0.6, "transition", "s1", "b", "send", "pending", "executing"),
    ]


def test_a_checked_reply_becomes_the_same_event_with_its_own_copy_of_the_result() -> None:
    """``checked=True`` builds the event the checked path builds (equal, same type), with a
    plain copy of the result that shares nothing with the reply's."""
    result = {"id": 7, "seats": [1, 2], "nested": {"a": (3,)}}
    answer = reply(MessageKind.ACTION_REPLY, Outcome.SUCCEEDED, result=result)
    event, trusted = event_for(answer), event_for(answer, checked=True)
    assert type(trusted) is StepSucceeded and trusted == event
    assert trusted.result == {"id": 7, "seats": [1, 2], "nested": {"a": [3]}}
    assert trusted.result is not result and trusted.result["seats"] is not result["seats"]
    empty = reply(MessageKind.ACTION_REPLY, Outcome.SUCCEEDED, result=None)
    assert event_for(empty, checked=True).result == {}


def test_only_an_unchecked_reply_has_its_result_checked() -> None:
    """A reply from elsewhere is checked as any event; one built from checked values is not
    checked again (that check is what ``checked`` saves)."""
    bad = reply(MessageKind.ACTION_REPLY, Outcome.SUCCEEDED, result={"when": float("nan")})
    with pytest.raises(InvalidArgument, match="JSON"):
        event_for(bad)
    assert event_for(bad, checked=True).result["when"] != 0.0
