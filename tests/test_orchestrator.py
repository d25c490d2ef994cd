"""The orchestrator: routes events by saga id, forgets finished sagas, counts what it drops."""

from __future__ import annotations

import contextlib

import attrs
import pytest
from helpers import Recorder, saga_of

from sagafsm import (
    CompensationSucceeded,
    ExecuteStep,
    IllegalTransition,
    Orchestrator,
    SagaFinished,
    SagaInstance,
    SagaState,
    StepFailed,
    StepSucceeded,
    TimerFired,
    UnknownSaga,
)
from sagafsm.errors import InvalidArgument

AB = saga_of("a", "b")


def test_events_are_routed_to_the_saga_they_name() -> None:
    """Two sagas of one definition advance independently."""
    orchestrator = Orchestrator()
    orchestrator.start(AB, "one", 0.0)
    orchestrator.start(AB, "two", 0.0)
    commands = orchestrator.handle(StepSucceeded(saga_id="two", step="a"), 1.0)
    assert [(c.saga_id, c.step) for c in commands if isinstance(c, ExecuteStep)] == [("two", "b")]
    assert orchestrator.get("one").step_state("a").value == "executing"
    assert orchestrator.get("two").step_state("a").value == "succeeded"


def test_a_finished_saga_is_dropped_and_counted_by_its_final_state() -> None:
    """Memory grows with sagas in flight, not with sagas started."""
    orchestrator = Orchestrator()
    for saga_id in ("ok", "bad", "running"):
        orchestrator.start(AB, saga_id, 0.0)
    orchestrator.handle(StepSucceeded(saga_id="ok", step="a"), 1.0)
    last = orchestrator.handle(StepSucceeded(saga_id="ok", step="b"), 2.0)
    assert last[-1] == SagaFinished(
        saga_id="ok", state=SagaState.COMPLETED, results={"a": {}, "b": {}}
    )
    orchestrator.handle(StepFailed(saga_id="bad", step="a"), 1.0)
    assert len(orchestrator) == 1
    stats = orchestrator.statistics()
    assert (stats.started, stats.running, stats.unroutable) == (3, 1, 0)
    assert stats.finished == {"completed": 1, "failed": 1}
    with pytest.raises(UnknownSaga):
        orchestrator.get("ok")


def test_events_for_unknown_or_dropped_sagas_are_counted_and_recorded() -> None:
    """A reply for a finished saga is normal on a real network: no error, just a count."""
    recorder = Recorder()
    orchestrator = Orchestrator(recorder=recorder)
    orchestrator.start(AB, "x", 0.0)
    orchestrator.handle(StepFailed(saga_id="x", step="a"), 1.0)
    late = StepSucceeded(saga_id="x", step="a")
    ghost = TimerFired(saga_id="nobody", timer_id="t")
    assert orchestrator.handle(late, 2.0) == []
    assert orchestrator.handle(ghost, 2.0) == []
    assert orchestrator.statistics().unroutable == 2
    assert [e for e, _ in recorder.drops] == [late, ghost]


def test_unknown_saga_is_a_key_error_with_a_readable_message() -> None:
    """get() of a saga not held raises UnknownSaga, whose str is not quoted like a KeyError."""
    with pytest.raises(KeyError) as info:
        Orchestrator().get("missing")
    assert isinstance(info.value, UnknownSaga)
    assert str(info.value) == "no running saga 'missing'"


def test_starting_a_running_saga_id_again_is_an_illegal_transition() -> None:
    """Saga ids are unique among running sagas; the first saga is left untouched."""
    orchestrator = Orchestrator()
    orchestrator.start(AB, "dup", 0.0)
    with pytest.raises(IllegalTransition):
        orchestrator.start(AB, "dup", 1.0)
    assert orchestrator.statistics().started == 1
    assert orchestrator.get("dup").step_state("a").value == "executing"


def test_statistics_are_a_frozen_snapshot() -> None:
    """The returned value cannot be changed, and does not move when the orchestrator does."""
    orchestrator = Orchestrator()
    orchestrator.start(AB, "x", 0.0)
    stats = orchestrator.statistics()
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        stats.running = 7  # type: ignore[misc]
    orchestrator.handle(StepFailed(saga_id="x", step="a"), 1.0)
    assert (stats.running, dict(stats.finished)) == (1, {})
    assert orchestrator.statistics().finished == {"failed": 1}


def test_statistics_cannot_be_used_to_change_the_counters() -> None:
    """Mutating the mapping handed out (if it allows it) leaves the orchestrator's counts alone."""
    orchestrator = Orchestrator()
    orchestrator.start(AB, "x", 0.0)
    orchestrator.handle(StepFailed(saga_id="x", step="a"), 1.0)
    finished = orchestrator.statistics().finished
    with contextlib.suppress(TypeError):
        finished["failed"] = 99  # type: ignore[index]
    assert orchestrator.statistics().finished == {"failed": 1}


def test_an_adopted_saga_resends_its_command_in_flight() -> None:
    """A restored saga handed to a new orchestrator re-sends its pending command and runs on."""
    first = Orchestrator()
    first.start(AB, "x", 0.0)
    first.handle(StepSucceeded(saga_id="x", step="a", result={"n": 1}), 1.0)
    snapshot = first.get("x").snapshot()
    second = Orchestrator()
    resent = second.adopt(SagaInstance.restore(AB, snapshot), 5.0)
    assert [(c.step, c.attempt) for c in resent if isinstance(c, ExecuteStep)] == [("b", 1)]
    done = second.handle(StepSucceeded(saga_id="x", step="b", result={"n": 2}), 6.0)
    assert done[-1] == SagaFinished(
        saga_id="x", state=SagaState.COMPLETED, results={"a": {"n": 1}, "b": {"n": 2}}
    )
    assert len(second) == 0


def test_many_sagas_through_one_orchestrator_leave_nothing_behind() -> None:
    """After a thousand sagas have finished, none is held."""
    orchestrator = Orchestrator()
    for i in range(1000):
        sid = f"s{i}"
        orchestrator.start(AB, sid, 0.0)
        orchestrator.handle(StepSucceeded(saga_id=sid, step="a"), 0.0)
        if i % 2:
            orchestrator.handle(StepSucceeded(saga_id=sid, step="b"), 0.0)
        else:
            orchestrator.handle(StepFailed(saga_id=sid, step="b"), 0.0)
            orchestrator.handle(CompensationSucceeded(saga_id=sid, step="a"), 0.0)
    assert len(orchestrator) == 0
    assert orchestrator.statistics().finished == {"completed": 500, "failed": 500}


def test_a_saga_started_with_data_carries_it_in_every_command() -> None:
    """Orchestrator.start(..., data=) is the saga's input: each step is sent it."""
    orchestrator = Orchestrator()
    data = {"order": 1, "items": ["x"]}
    first = orchestrator.start(AB, "x", 0.0, data=data)
    second = orchestrator.handle(StepSucceeded(saga_id="x", step="a", result={"id": 9}), 1.0)
    sent = [c for c in first + second if isinstance(c, ExecuteStep)]
    assert [(c.step, c.data, c.results) for c in sent] == [
        ("a", data, {}),
        ("b", data, {"a": {"id": 9}}),
    ]


def test_a_refused_start_leaves_no_saga_behind() -> None:
    """Bad data is refused before the saga is held or counted."""
    orchestrator = Orchestrator()
    with pytest.raises(InvalidArgument, match="saga data"):
        orchestrator.start(AB, "x", 0.0, data={"bad": {1, 2}})
    assert len(orchestrator) == 0
    assert orchestrator.statistics().started == 0
    orchestrator.start(AB, "x", 0.0)  # the id is still free
    assert len(orchestrator) == 1
