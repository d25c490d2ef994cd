"""Bad input is refused at the door.

Every public entry point, handed an arbitrary object in any one argument, either accepts it or
raises a :class:`~sagafsm.SagaError` that is also the builtin it resembles (``TypeError``,
``ValueError``, ``KeyError``); nothing else escapes, and a refused call leaves the instance
exactly as it was.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any
from unittest import mock

import attrs
import pytest
from helpers import Outcome, Recorder, SagaPair, saga_of
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from strategies import COMMANDS, Adversary, definitions, junk, ops

from sagafsm import (
    IllegalTransition,
    InvalidDefinition,
    Orchestrator,
    RetryPolicy,
    SagaBuilder,
    SagaDefinition,
    SagaError,
    SagaInstance,
    StepDefinition,
    StepKind,
    StepSucceeded,
)
from sagafsm._validate import is_finite_number
from sagafsm.errors import InvalidArgument, UnknownStep
from sagafsm.events import EVENT_TYPES

BUILTINS = (TypeError, ValueError, KeyError)
AB = saga_of("a", "b")
OPTIONS = ("timeout", "retry", "compensation_timeout", "compensation_retry")
VALID_STEP = {"name": "a", "participant": "p", "action": "do", "compensation": "undo"}
JUNK = settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def started(recorder: Recorder | None = None) -> SagaInstance:
    saga = SagaInstance(AB, "s", recorder=recorder)
    saga.start(0.0)
    return saga


def unchanged(saga: SagaInstance, call: Callable[[SagaInstance], object]) -> None:
    """Make the call; if it is refused, the saga (and what its recorder saw) did not move."""
    recorder = saga.recorder
    assert isinstance(recorder, Recorder)
    before, seen = saga.snapshot(), (len(recorder.moves), len(recorder.drops))
    try:
        call(saga)
    except SagaError:
        assert saga.snapshot() == before
        assert (len(recorder.moves), len(recorder.drops)) == seen
        raise


def orchestrated(call: Callable[[Orchestrator], object]) -> None:
    """The same for an orchestrator running one saga: counts and the saga stay as they were."""
    orchestrator = Orchestrator()
    orchestrator.start(AB, "s", 0.0)
    before = (orchestrator.statistics(), orchestrator.get("s").snapshot())
    try:
        call(orchestrator)
    except SagaError:
        assert (orchestrator.statistics(), orchestrator.get("s").snapshot()) == before
        raise


def _event_fields(cls: type) -> dict[str, str]:
    return {f.name: "x" for f in attrs.fields(cls) if f.default is attrs.NOTHING}


def _builder_entries() -> dict[str, Callable[[Any], object]]:
    entries: dict[str, Callable[[Any], object]] = {"SagaBuilder(name)": lambda x: SagaBuilder(x)}
    for option in OPTIONS:
        entries[f"SagaBuilder({option}=)"] = lambda x, o=option: SagaBuilder("s", **{o: x})
    for method in ("step", "read_only", "pivot", "retriable"):
        base = {"name": "a", "participant": "p", "action": "do"}
        extra = ("compensation", "kind") if method == "step" else ()
        if method == "step":
            base["compensation"] = "undo"
        for arg in (*base, *extra, *OPTIONS):
            entries[f"SagaBuilder.{method}({arg}=)"] = lambda x, m=method, a=arg, b=base: getattr(
                SagaBuilder("s"), m
            )(**{**b, a: x})
    entries["SagaBuilder.build() after a refused step"] = _build_after_refusal
    return entries


def _build_after_refusal(x: Any) -> None:
    builder = SagaBuilder("s").step(**VALID_STEP)
    try:
        builder.step("b", participant="q", action="do", compensation="undo", timeout=x)
    except InvalidDefinition:
        assert builder.build().step_names == ("a",)


def _definition_entries() -> dict[str, Callable[[Any], object]]:
    entries: dict[str, Callable[[Any], object]] = {}
    for field in attrs.fields(StepDefinition):
        entries[f"StepDefinition({field.name}=)"] = lambda x, f=field.name: StepDefinition(
            **{**VALID_STEP, f: x}
        )
    step = StepDefinition(**VALID_STEP)
    entries["SagaDefinition(name=)"] = lambda x: SagaDefinition(name=x, steps=[step])
    entries["SagaDefinition(steps=)"] = lambda x: SagaDefinition(name="s", steps=x)
    entries["SagaDefinition(steps=[x])"] = lambda x: SagaDefinition(name="s", steps=[x])
    entries["SagaDefinition(steps=[a, x])"] = lambda x: SagaDefinition(name="s", steps=[step, x])
    entries["SagaDefinition.index_of"] = lambda x: AB.index_of(x)
    for field in attrs.fields(RetryPolicy):
        entries[f"RetryPolicy({field.name}=)"] = lambda x, f=field.name: RetryPolicy(**{f: x})
    entries["RetryPolicy.backoff"] = lambda x: RetryPolicy().backoff(x)
    for cls in EVENT_TYPES:
        for field in attrs.fields(cls):
            entries[f"{cls.__name__}({field.name}=)"] = lambda x, c=cls, f=field.name: c(
                **{**_event_fields(c), f: x}
            )
    return entries


def _engine_entries() -> dict[str, Callable[[Any], object]]:
    snapshot = started().snapshot()
    event = StepSucceeded(saga_id="s", step="a")
    other = SagaInstance(AB, "t")  # adopt(now=): a saga the orchestrator does not run yet
    other.start(0.0)
    return {
        "SagaInstance(definition)": lambda x: SagaInstance(x, "s"),
        "SagaInstance(saga_id)": lambda x: SagaInstance(AB, x),
        "SagaInstance(data=)": lambda x: SagaInstance(AB, "s", data=x),
        "SagaInstance(recorder=)": lambda x: SagaInstance(AB, "s", recorder=x),
        "SagaInstance.start(now)": lambda x: unchanged(
            SagaInstance(AB, "s", recorder=Recorder()), lambda s: s.start(x)
        ),
        "SagaInstance.handle(event)": lambda x: unchanged(
            started(Recorder()), lambda s: s.handle(x, 1.0)
        ),
        "SagaInstance.handle(now=)": lambda x: unchanged(
            started(Recorder()), lambda s: s.handle(event, x)
        ),
        "SagaInstance.resume(now)": lambda x: unchanged(started(Recorder()), lambda s: s.resume(x)),
        "SagaInstance.step_state": lambda x: unchanged(
            started(Recorder()), lambda s: s.step_state(x)
        ),
        "SagaInstance.restore(definition)": lambda x: SagaInstance.restore(x, snapshot),
        "SagaInstance.restore(data)": lambda x: SagaInstance.restore(AB, x),
        "SagaInstance.restore(recorder=)": lambda x: SagaInstance.restore(AB, snapshot, recorder=x),
        "Orchestrator(recorder=)": lambda x: Orchestrator(recorder=x),
        "Orchestrator.start(definition)": lambda x: orchestrated(lambda o: o.start(x, "t", 0.0)),
        "Orchestrator.start(saga_id)": lambda x: orchestrated(lambda o: o.start(AB, x, 0.0)),
        "Orchestrator.start(now)": lambda x: orchestrated(lambda o: o.start(AB, "t", x)),
        "Orchestrator.start(data=)": lambda x: orchestrated(
            lambda o: o.start(AB, "t", 0.0, data=x)
        ),
        "Orchestrator.handle(event)": lambda x: orchestrated(lambda o: o.handle(x, 1.0)),
        "Orchestrator.handle(now)": lambda x: orchestrated(lambda o: o.handle(event, x)),
        "Orchestrator.adopt(saga)": lambda x: orchestrated(lambda o: o.adopt(x, 1.0)),
        "Orchestrator.adopt(now)": lambda x: orchestrated(
            lambda o: o.adopt(SagaInstance.restore(AB, other.snapshot()), x)
        ),
        "Orchestrator.get": lambda x: orchestrated(lambda o: o.get(x)),
    }


ENTRIES = {**_builder_entries(), **_definition_entries(), **_engine_entries()}


@JUNK
@given(x=junk())
@pytest.mark.parametrize("entry", list(ENTRIES))
def test_only_saga_errors_escape_any_public_entry_point(entry: str, x: Any) -> None:
    """Whatever one argument is, the call succeeds or raises a SagaError that is also a
    TypeError, ValueError or KeyError; instances refusing a call do not move."""
    try:
        ENTRIES[entry](x)
    except SagaError as error:
        assert isinstance(error, BUILTINS), f"{type(error).__name__} is no builtin error"
        assert not isinstance(error, IllegalTransition)


def test_every_entry_point_is_exercised() -> None:
    """The table above covers every argument of every public constructor and method."""
    builder_args = {e.split("(")[0] for e in ENTRIES if e.startswith("SagaBuilder")}
    assert builder_args >= {
        "SagaBuilder",
        "SagaBuilder.step",
        "SagaBuilder.read_only",
        "SagaBuilder.pivot",
        "SagaBuilder.retriable",
    }
    for cls in (StepDefinition, RetryPolicy, *EVENT_TYPES):
        for field in attrs.fields(cls):
            assert f"{cls.__name__}({field.name}=)" in ENTRIES
    for name in ("start", "handle", "resume", "step_state", "restore"):
        assert any(e.startswith(f"SagaInstance.{name}") for e in ENTRIES)
    for name in ("start", "handle", "adopt", "get"):
        assert any(e.startswith(f"Orchestrator.{name}") for e in ENTRIES)


@pytest.mark.parametrize(
    ("broken", "error"),
    [
        (lambda x: x.no_such_attribute, AttributeError),
        (lambda x: (_ for _ in ()).throw(SagaError("no builtin")), AssertionError),
        (lambda x: (_ for _ in ()).throw(IllegalTransition("saga", "t", "s", "x")), AssertionError),
    ],
    ids=["raw-error", "saga-error-only", "illegal-transition"],
)
def test_the_junk_check_itself_can_fail(
    broken: Callable[[Any], object], error: type[Exception], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A raw builtin error, or a SagaError that is not also the builtin, fails the property."""
    monkeypatch.setitem(ENTRIES, "broken", broken)
    inner = test_only_saga_errors_escape_any_public_entry_point.hypothesis.inner_test  # type: ignore[attr-defined]
    with pytest.raises(error):
        inner("broken", None)


@JUNK
@given(
    st.sampled_from(OPTIONS), st.sampled_from(["step", "read_only", "pivot", "retriable"]), junk()
)
def test_an_option_accepted_by_the_builder_is_one_a_running_saga_can_use(
    option: str, method: str, value: Any
) -> None:
    """Refused at once or never: a value that passed the builder passes build() and runs
    through failures, timeouts and compensation retries without raising."""
    builder = SagaBuilder("s")
    if method == "retriable":
        builder.pivot("p", participant="q", action="do")
    extra = {"compensation": "undo"} if method == "step" else {}
    try:
        getattr(builder, method)("x", participant="p", action="do", **extra, **{option: value})
    except InvalidDefinition:
        return
    if method in ("step", "read_only"):  # a later step fails, so "x" is compensated, if it can be
        builder.step("y", participant="q", action="do", compensation="u")
    script = [Outcome.LOST, Outcome.FAIL] * 3
    pair = SagaPair(
        builder.build(), actions={"x": script, "y": [Outcome.FAIL]}, compensations={"x": script}
    )
    pair.start().run(max_events=200)
    assert pair.finished is not None


# -- the cases of the issue, one by one ---------------------------------------------------------


@pytest.mark.parametrize(
    "event", [None, "x", {}, 3, object()], ids=["None", "'x'", "{}", "3", "object()"]
)  # ids fixed, not repr: an object's address differs in each pytest-xdist worker
def test_handle_refuses_what_is_not_an_event(event: Any) -> None:
    """handle(None), handle("x"), handle({}) raise InvalidArgument listing the event types."""
    saga = started(Recorder())
    with pytest.raises(InvalidArgument, match=r"handle\(\) takes an event \(StepSucceeded, "):
        unchanged(saga, lambda s: s.handle(event, 1.0))
    with pytest.raises(InvalidArgument, match="takes an event"):
        Orchestrator().handle(event, 1.0)


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: type(c).__name__)
def test_a_command_handed_to_handle_is_refused_by_name(command: Any) -> None:
    """The engine's own output fed back is a mistake worth naming, not an event to drop."""
    message = f"{type(command).__name__} is a command"
    with pytest.raises(InvalidArgument, match=message):
        unchanged(started(Recorder()), lambda s: s.handle(command, 1.0))
    with pytest.raises(InvalidArgument, match=message):
        orchestrated(lambda o: o.handle(command, 1.0))


def test_an_object_that_only_claims_to_be_an_event_is_refused() -> None:
    """A test double with spec=StepSucceeded passes isinstance, but is not an event."""
    double = mock.Mock(spec=StepSucceeded)
    assert isinstance(double, StepSucceeded)
    with pytest.raises(InvalidArgument, match="takes an event"):
        unchanged(started(Recorder()), lambda s: s.handle(double, 1.0))
    with pytest.raises(InvalidArgument, match="takes an event"):
        orchestrated(lambda o: o.handle(double, 1.0))


def test_a_saga_of_something_that_is_not_a_definition_is_refused() -> None:
    """SagaInstance("not a definition", "id") names what it got."""
    with pytest.raises(InvalidArgument, match="definition must be a SagaDefinition, got 'not a"):
        SagaInstance("not a definition", "id")  # type: ignore[arg-type]


def test_the_state_of_an_unknown_step_is_unknown_step_a_key_error() -> None:
    """step_state("nosuch") raises UnknownStep, which callers can catch as KeyError."""
    with pytest.raises(KeyError) as info:
        started().step_state("nosuch")
    assert isinstance(info.value, UnknownStep)
    assert str(info.value) == "saga 'order' has no step 'nosuch' (its steps: a, b)"


@pytest.mark.parametrize("now", ["x", None, math.nan, math.inf, -math.inf, True, 10**400, [1]])
def test_a_time_that_is_not_a_finite_number_is_refused_everywhere(now: Any) -> None:
    """start, handle and resume (and the orchestrator's) refuse now="x", now=nan..."""
    with pytest.raises(InvalidArgument, match="now must be a finite number of seconds"):
        SagaInstance(AB, "s").start(now)
    for call in (
        lambda s: s.handle(StepSucceeded(saga_id="s", step="a"), now),
        lambda s: s.resume(now),
    ):
        with pytest.raises(InvalidArgument, match="now must be a finite number"):
            unchanged(started(Recorder()), call)
    with pytest.raises(InvalidArgument, match="now must be a finite number"):
        Orchestrator().start(AB, "s", now)


@pytest.mark.parametrize("saga_id", [None, "", 5, ["s"]])
def test_a_saga_id_that_is_not_a_non_empty_string_is_refused(saga_id: Any) -> None:
    """saga_id=None and friends, in the engine, the orchestrator and every event."""
    with pytest.raises(InvalidArgument, match="saga_id must be a non-empty string"):
        SagaInstance(AB, saga_id)
    with pytest.raises(InvalidArgument, match="saga_id must be a non-empty string"):
        Orchestrator().start(AB, saga_id, 0.0)
    with pytest.raises(InvalidArgument, match=r"StepSucceeded\.saga_id"):
        StepSucceeded(saga_id=saga_id, step="a")


@pytest.mark.parametrize(
    "data", [{"x": {1, 2}}, {1: "a"}, {"x": math.nan}, [("a", 1)], "data", {"x": object()}]
)
def test_saga_data_and_results_must_be_json_mappings(data: Any) -> None:
    """Anything a store could not write, or a participant could not read, is refused."""
    with pytest.raises(InvalidArgument, match="saga data must"):
        SagaInstance(AB, "s", data=data)
    with pytest.raises(InvalidArgument, match=r"StepSucceeded\.result must"):
        StepSucceeded(saga_id="s", step="a", result=data)


def test_the_builder_refuses_bad_options_at_once_not_at_build_or_while_running() -> None:
    """retriable(..., retry=3), SagaBuilder(..., compensation_retry="nope"), timeout=True,
    compensation=5: each raises InvalidDefinition on the very call."""
    builder = SagaBuilder("s").pivot("p", participant="q", action="do")
    with pytest.raises(InvalidDefinition, match="retry must be a RetryPolicy, got 3"):
        builder.retriable("r", participant="m", action="send", retry=3)
    with pytest.raises(InvalidDefinition, match="compensation_retry must be a RetryPolicy"):
        SagaBuilder("s", compensation_retry="nope")
    with pytest.raises(InvalidDefinition, match="timeout must be a positive number, got True"):
        SagaBuilder("s").step("a", participant="p", action="do", compensation="u", timeout=True)
    with pytest.raises(InvalidDefinition, match="compensation must be a non-empty string"):
        SagaBuilder("s").step("a", participant="p", action="do", compensation=5)  # type: ignore[arg-type]
    with pytest.raises(InvalidDefinition, match="kind must be a StepKind"):
        SagaBuilder("s").step("a", participant="p", action="do", kind="pivot")  # type: ignore[arg-type]
    assert builder.build().step_names == ("p",)


def test_a_recorder_without_the_recorder_methods_is_refused_where_it_is_given() -> None:
    """Not later, when the first transition is recorded: also by the orchestrator."""
    for bad in (object(), "log", print):
        with pytest.raises(InvalidArgument, match="recorder must have"):
            SagaInstance(AB, "s", recorder=bad)  # type: ignore[arg-type]
        with pytest.raises(InvalidArgument, match="recorder must have"):
            Orchestrator(recorder=bad)  # type: ignore[arg-type]


def test_adopt_refuses_what_is_not_a_saga() -> None:
    """The orchestrator takes over only SagaInstance objects."""
    with pytest.raises(InvalidArgument, match=r"adopt\(\) takes a SagaInstance"):
        Orchestrator().adopt(AB.steps[0], 0.0)  # type: ignore[arg-type]


def test_an_event_of_another_saga_is_ignored_not_refused() -> None:
    """A well-formed event for another saga is recorded and changes nothing."""
    recorder = Recorder()
    saga = started(recorder)
    before = saga.snapshot()
    stranger = StepSucceeded(saga_id="other", step="a")
    assert saga.handle(stranger, 1.0) == []
    assert saga.snapshot() == before
    assert recorder.reasons_for(stranger) == ["addressed to saga 'other'"]


def test_errors_are_saga_errors_and_the_builtin_they_resemble() -> None:
    """InvalidArgument is a TypeError and a ValueError; UnknownStep a KeyError."""
    assert issubclass(InvalidArgument, SagaError)
    assert issubclass(InvalidArgument, TypeError) and issubclass(InvalidArgument, ValueError)
    assert issubclass(UnknownStep, SagaError) and issubclass(UnknownStep, KeyError)


# -- a refused call never leaves a saga half-moved ---------------------------------------------

_NOT_A_TIME = junk().filter(lambda x: not is_finite_number(x))
_BAD_CALLS = st.one_of(
    st.tuples(st.just("handle"), junk()),
    st.tuples(st.just("handle_at"), _NOT_A_TIME),
    st.tuples(st.just("start"), junk()),
    st.tuples(st.just("resume"), _NOT_A_TIME),
    st.tuples(st.just("step_state"), junk()),
)


def _bad_call(saga: SagaInstance, kind: str, value: Any) -> None:
    if kind == "handle":
        saga.handle(value, 0.5)
    elif kind == "handle_at":
        saga.handle(StepSucceeded(saga_id=saga.saga_id, step=saga.definition.step_names[0]), value)
    elif kind == "start":
        saga.start(value)
    elif kind == "resume":
        saga.resume(value)
    else:
        saga.step_state(value)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    definitions(),
    ops(max_size=25),
    st.lists(st.tuples(st.integers(0, 25), _BAD_CALLS), max_size=12),
)
def test_bad_calls_in_the_middle_of_a_run_change_nothing(
    definition: SagaDefinition, operations: list[Any], bad: list[tuple[int, tuple[str, Any]]]
) -> None:
    """Interleave refused calls with a hostile run: each leaves the snapshot as it was, records
    nothing, and the run's commands are those of a twin that never saw them."""
    recorder = Recorder()
    run = Adversary(SagaInstance(definition, "s", recorder=recorder))
    twin = Adversary(SagaInstance(definition, "s"))
    run.start()
    twin.start()
    for i, op in enumerate(operations):
        for _, (kind, value) in (b for b in bad if b[0] == i):
            before, seen = run.saga.snapshot(), (len(recorder.moves), len(recorder.drops))
            try:
                _bad_call(run.saga, kind, value)
            except SagaError as error:
                assert isinstance(error, (*BUILTINS, IllegalTransition))
                assert (len(recorder.moves), len(recorder.drops)) == seen
            assert run.saga.snapshot() == before
        event = twin.event_for(op)
        twin.feed(event)
        run.now = twin.now
        run.feed(event)
    assert run.commands == twin.commands
    assert run.saga.snapshot() == twin.saga.snapshot()
    assert not run.saga.broken


def test_a_refused_start_of_a_running_saga_id_leaves_the_orchestrator_as_it_was() -> None:
    """The second start is an IllegalTransition; the first saga and the counts do not move."""
    with pytest.raises(IllegalTransition):
        orchestrated(lambda o: o.start(AB, "s", 1.0))


def test_a_read_only_kind_is_a_step_kind_not_a_string() -> None:
    """kind="read_only" is refused: the enum is the API."""
    with pytest.raises(InvalidDefinition, match="kind must be a StepKind, got 'read_only'"):
        StepDefinition(name="v", participant="p", action="check", kind="read_only")  # type: ignore[arg-type]
    assert StepDefinition(name="v", participant="p", action="check", kind=StepKind.READ_ONLY)
