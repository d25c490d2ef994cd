"""Snapshots: a restored saga acts exactly as the original; resume re-sends what was in flight."""

from __future__ import annotations

import json
from typing import Any

import pytest
from helpers import Outcome, SagaPair, saga_of
from hypothesis import given, settings
from strategies import Adversary, Op, definitions, json_mappings, ops

from sagafsm import (
    CompensateStep,
    ExecuteStep,
    InvalidSnapshot,
    SagaDefinition,
    SagaFinished,
    SagaInstance,
    SagaState,
    StartTimer,
    TimerFired,
    TimerPurpose,
)

ABC = saga_of("a", "b", "c")


def round_trip(saga: SagaInstance) -> SagaInstance:
    text = json.dumps(saga.snapshot())
    return SagaInstance.restore(saga.definition, json.loads(text))


def played(
    definition: SagaDefinition, operations: list[Op], data: dict[str, Any] | None = None
) -> Adversary:
    run = Adversary(SagaInstance(definition, "s", data=data))
    run.start()
    for op in operations:
        run.play(op)
    return run


@settings(max_examples=60, deadline=None)
@given(definitions(), ops(max_size=30), json_mappings())
def test_a_restored_saga_answers_every_future_event_as_the_original_would(
    definition: SagaDefinition, operations: list[Op], data: dict[str, Any]
) -> None:
    """At every point of a run, snapshot, JSON, restore, replay the rest: same commands (data
    and results included), and every snapshot the run produces is accepted."""
    original = played(definition, operations, data)
    events, times = original.events, original.times
    replica = SagaInstance(definition, "s", data=data)
    past = replica.start(0.0)
    for cut in range(len(events) + 1):
        restored = round_trip(replica)
        assert restored.snapshot() == replica.snapshot()
        future = [
            command
            for event, now in zip(events[cut:], times[cut:], strict=True)
            for command in restored.handle(event, now)
        ]
        assert past + future == original.commands
        assert restored.snapshot() == original.saga.snapshot()
        if cut < len(events):
            past += replica.handle(events[cut], times[cut])


@settings(max_examples=60, deadline=None)
@given(definitions(), ops(max_size=30))
def test_resume_after_restore_resends_the_command_in_flight_under_the_same_key(
    definition: SagaDefinition, operations: list[Op]
) -> None:
    """A saga waiting on a reply re-sends that very command; one in backoff only re-arms."""
    run = played(definition, operations)
    saga = round_trip(run.saga)
    now = run.now + 0.01
    resumed = saga.resume(now)
    if run.saga.finished:
        finished = SagaFinished(
            saga_id="s", state=run.saga.state, reason=run.saga.reason, results=run.saga.results
        )
        assert resumed == [finished]
        return
    sent = [c for c in run.commands if isinstance(c, (ExecuteStep, CompensateStep))]
    timers = [c for c in resumed if isinstance(c, StartTimer)]
    assert len(timers) == 1
    assert timers[0].timer_id not in {c.timer_id for c in run.commands if isinstance(c, StartTimer)}
    purpose = run.saga.timer_purpose
    assert timers[0].purpose is purpose
    if purpose in (TimerPurpose.ACTION_TIMEOUT, TimerPurpose.COMPENSATION_TIMEOUT):
        assert resumed[0] == sent[-1]  # same step, attempt, idempotency key (and action key)
        assert len(resumed) == 2
    else:
        assert len(resumed) == 1
        assert timers[0].delay == pytest.approx(max(0.0, run.saga.timer_due - now))


def test_resume_resends_an_execute_with_its_original_idempotency_key() -> None:
    """The participant that already applied the action recognises the re-sent command."""
    pair = SagaPair(ABC, actions={"b": [Outcome.SILENT]}).start()
    pair.run(until=lambda: pair.saga.step_state("b").value == "executing")
    saga = round_trip(pair.saga)
    resumed = saga.resume(pair.clock.now)
    execute = next(c for c in resumed if isinstance(c, ExecuteStep))
    assert execute.step == "b"
    assert (
        execute.idempotency_key
        == next(c for c in pair.sent(ExecuteStep) if c.step == "b").idempotency_key
    )
    pair.participants.apply(execute)
    assert pair.ledger.actions() == ["a", "b"]


def test_resume_resends_a_compensation_with_its_original_keys() -> None:
    """A compensation in flight is re-sent under its key and its action's key."""
    pair = SagaPair(ABC, actions={"c": [Outcome.FAIL]}, compensations={"b": [Outcome.LOST]}).start()
    pair.run(until=lambda: bool(pair.sent(CompensateStep)))
    resumed = round_trip(pair.saga).resume(pair.clock.now)
    assert resumed[0] == pair.sent(CompensateStep)[-1]


def test_a_stale_timer_from_before_the_restore_is_ignored() -> None:
    """resume arms a fresh timer; the one armed before the crash no longer counts."""
    pair = SagaPair(ABC, actions={"a": [Outcome.LOST]}).start()
    old = pair.clock.started[-1].timer_id
    saga = round_trip(pair.saga)
    saga.resume(0.0)
    assert saga.handle(TimerFired(saga_id="saga-1", timer_id=old), 1.0) == []
    assert saga.step_state("a").value == "executing"


def test_resuming_a_saga_saved_before_it_started_starts_it() -> None:
    """A snapshot taken right after creation resumes by sending the first step."""
    saga = round_trip(SagaInstance(ABC, "x"))
    commands = saga.resume(0.0)
    assert [c.step for c in commands if isinstance(c, ExecuteStep)] == ["a"]
    assert saga.state is SagaState.PENDING


def good_snapshot() -> dict[str, Any]:
    saga = SagaInstance(ABC, "x")
    saga.start(0.0)
    return json.loads(json.dumps(saga.snapshot()))


def test_a_snapshot_of_another_saga_is_refused() -> None:
    """Different definition name, or a different number of steps, is an InvalidSnapshot."""
    with pytest.raises(InvalidSnapshot, match="'order'"):
        SagaInstance.restore(saga_of("a", "b", "c", name="refund"), good_snapshot())
    with pytest.raises(InvalidSnapshot, match=r"definition 'order' has \['a', 'b'\]"):
        SagaInstance.restore(saga_of("a", "b"), good_snapshot())


def test_a_snapshot_of_a_definition_whose_steps_changed_is_refused() -> None:
    """Same name and step count, other steps: their states would be pinned on the wrong steps."""
    with pytest.raises(InvalidSnapshot, match="steps"):
        SagaInstance.restore(saga_of("a", "x", "c"), good_snapshot())


def rows(**fields: Any) -> list[list[Any]]:
    """The good snapshot's step rows, with the given columns replaced (or cut with ``cut=n``)."""
    steps: list[list[Any]] = good_snapshot()["steps"]
    for row in steps:
        for column, value in fields.items():
            if column == "cut":
                del row[value:]
            else:
                row[{"state": 0, "attempt": 1}[column]] = value
    return steps


def broken(**changes: Any) -> dict[str, Any]:
    data = good_snapshot()
    for key, value in changes.items():
        if value is KeyError:
            del data[key]
        else:
            data[key] = value
    return data


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(broken(version=99), id="version"),
        pytest.param(broken(state="dancing"), id="state"),
        pytest.param(broken(steps=rows(cut=2)), id="step-row"),
        pytest.param(broken(steps=rows(state="bogus")), id="step-state"),
        pytest.param(broken(steps=rows(attempt="one")), id="attempt"),
        pytest.param(broken(timer=["x#1", "nap", 0, 0.0]), id="timer-purpose"),
        pytest.param(broken(timer=["x#1"]), id="timer-shape"),
        pytest.param(broken(timer=["x#1", "action_timeout", 3, 0.0]), id="timer-step-too-big"),
        pytest.param(broken(timer=["x#1", "action_timeout", -1, 0.0]), id="timer-step-negative"),
        pytest.param(broken(timer_seq=KeyError), id="missing-key"),
        pytest.param(broken(steps=None), id="steps-none"),
        pytest.param([], id="not-a-mapping"),
        pytest.param("snapshot", id="a-string"),
    ],
)
def test_malformed_snapshot_data_is_an_invalid_snapshot(data: Any) -> None:
    """Whatever is wrong with the data, the error is InvalidSnapshot (also a ValueError)."""
    with pytest.raises(InvalidSnapshot) as info:
        SagaInstance.restore(ABC, data)
    assert isinstance(info.value, ValueError)


def test_snapshots_are_plain_json_data() -> None:
    """json round trip preserves the snapshot exactly, floats included."""
    pair = SagaPair(ABC, actions={"b": [Outcome.LOST]}).start()
    pair.run(until=lambda: pair.saga.step_state("b").value == "waiting_retry")
    data = pair.saga.snapshot()
    assert json.loads(json.dumps(data)) == data
