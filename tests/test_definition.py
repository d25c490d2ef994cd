"""Definitions are validated when built: one InvalidDefinition per problem, naming the step."""

from __future__ import annotations

import math
from typing import Any

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from sagafsm import (
    InvalidDefinition,
    RetryPolicy,
    SagaBuilder,
    SagaDefinition,
    SagaError,
    StepDefinition,
    StepKind,
)
from sagafsm.errors import InvalidArgument, UnknownStep


def step(name: str, kind: StepKind = StepKind.COMPENSATABLE, **fields: Any) -> StepDefinition:
    if kind is StepKind.COMPENSATABLE:
        fields.setdefault("compensation", f"undo_{name}")
    return StepDefinition(name=name, participant="p", action=f"do_{name}", kind=kind, **fields)


def test_invalid_definition_is_a_saga_error_and_a_value_error() -> None:
    """Callers that catch ValueError keep working."""
    assert issubclass(InvalidDefinition, SagaError)
    assert issubclass(InvalidDefinition, ValueError)


def test_a_well_formed_definition_keeps_its_steps_in_order() -> None:
    """compensatable, pivot, retriable: accepted, indexed by name."""
    definition = SagaDefinition(
        name="order",
        steps=[step("a"), step("b"), step("p", StepKind.PIVOT), step("r", StepKind.RETRIABLE)],
    )
    assert definition.step_names == ("a", "b", "p", "r")
    assert isinstance(definition.steps, tuple)
    assert [definition.index_of(n) for n in ("a", "b", "p", "r")] == [0, 1, 2, 3]
    assert definition.has_step("p")
    assert not definition.has_step("zzz")


def test_duplicate_step_names_are_rejected_naming_the_step() -> None:
    """Two steps called the same cannot be told apart by their replies."""
    with pytest.raises(InvalidDefinition, match="duplicate step name 'a'"):
        SagaDefinition(name="order", steps=[step("a"), step("b"), step("a")])


def test_a_compensatable_step_without_compensation_is_rejected() -> None:
    """Compensatable means it can be undone, so it must say how."""
    with pytest.raises(InvalidDefinition, match=r"'reserve'.*needs a compensation"):
        StepDefinition(name="reserve", participant="inv", action="reserve")


@pytest.mark.parametrize("kind", [StepKind.PIVOT, StepKind.RETRIABLE])
def test_a_pivot_or_retriable_step_with_a_compensation_is_rejected(kind: StepKind) -> None:
    """Nothing at or after the pivot is ever undone."""
    with pytest.raises(InvalidDefinition, match=r"'x'.*cannot have a compensation"):
        StepDefinition(name="x", participant="p", action="do", compensation="undo", kind=kind)


def test_more_than_one_pivot_is_rejected_naming_both() -> None:
    """A saga has at most one point of no return."""
    with pytest.raises(InvalidDefinition, match=r"more than one pivot.*'p1'.*'p2'"):
        SagaDefinition(name="order", steps=[step("p1", StepKind.PIVOT), step("p2", StepKind.PIVOT)])


def test_a_compensatable_step_after_the_pivot_is_rejected() -> None:
    """After the pivot the saga only goes forward; nothing there could be compensated."""
    with pytest.raises(InvalidDefinition, match=r"compensatable step 'late'.*after the pivot 'p'"):
        SagaDefinition(name="order", steps=[step("p", StepKind.PIVOT), step("late")])


def test_a_retriable_step_before_the_pivot_is_rejected() -> None:
    """Retriable steps live after the pivot; before it they could not be undone."""
    with pytest.raises(InvalidDefinition, match=r"retriable step 'r'.*before any pivot"):
        SagaDefinition(name="order", steps=[step("a"), step("r", StepKind.RETRIABLE)])


@pytest.mark.parametrize("timeout", [0, -1.0, math.nan, math.inf, "1", None, True, 10**400])
def test_a_non_positive_or_non_finite_timeout_is_rejected(timeout: Any) -> None:
    """Zero, negative, NaN, infinite, boolean, non-numeric or float-overflowing timeouts never
    arm a usable timer."""
    with pytest.raises(InvalidDefinition, match="step 'a': timeout must be a positive number"):
        step("a", timeout=timeout)


@pytest.mark.parametrize("timeout", [0, -0.5, math.nan])
def test_a_bad_compensation_timeout_is_rejected(timeout: float) -> None:
    """The compensation timeout obeys the same rule as the action's."""
    with pytest.raises(InvalidDefinition, match="step 'a': compensation_timeout"):
        step("a", compensation_timeout=timeout)


def test_the_compensation_timeout_defaults_to_the_action_timeout() -> None:
    """Unless given, a compensation waits as long as its action."""
    assert step("a", timeout=2.5).effective_compensation_timeout == 2.5
    assert step("a", timeout=2.5, compensation_timeout=7).effective_compensation_timeout == 7


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"max_attempts": 0}, "max_attempts must be at least 1"),
        ({"max_attempts": 1.5}, "max_attempts must be an integer"),
        ({"max_attempts": True}, "max_attempts must be an integer"),
        ({"initial_backoff": -0.1}, "initial_backoff"),
        ({"initial_backoff": math.nan}, "initial_backoff"),
        ({"multiplier": 0.5}, "multiplier"),
        ({"multiplier": math.nan}, "multiplier"),
        ({"initial_backoff": 2.0, "max_backoff": 1.0}, "max_backoff"),
        ({"max_backoff": math.nan}, "max_backoff"),
        ({"max_backoff": 10**400}, "max_backoff"),
        ({"multiplier": "2"}, "multiplier"),
        ({"max_attempts": None}, "max_attempts must be an integer"),
    ],
)
def test_a_bad_retry_policy_is_rejected(fields: dict[str, Any], message: str) -> None:
    """Each broken field gets its own error that names it."""
    with pytest.raises(InvalidDefinition, match=message):
        RetryPolicy(**fields)


def test_the_retry_backoff_grows_geometrically_up_to_its_cap() -> None:
    """0.1, 0.2, 0.4, then capped at 0.5."""
    policy = RetryPolicy(max_attempts=9, initial_backoff=0.1, multiplier=2.0, max_backoff=0.5)
    assert [policy.backoff(n) for n in (1, 2, 3, 4, 8)] == pytest.approx([0.1, 0.2, 0.4, 0.5, 0.5])


def test_an_unknown_builder_option_is_rejected_naming_it() -> None:
    """A typo in an option is an error, both as a default and per step."""
    with pytest.raises(InvalidDefinition, match="unknown step option 'timout'"):
        SagaBuilder("order", timout=1.0)
    builder = SagaBuilder("order")
    with pytest.raises(InvalidDefinition, match="unknown step option 'retries'"):
        builder.step("a", participant="p", action="do", compensation="undo", retries=3)


def test_builder_defaults_apply_to_every_step_and_a_step_can_override_them() -> None:
    """Shared options are defaults, not overrides."""
    policy = RetryPolicy(max_attempts=7)
    definition = (
        SagaBuilder("order", timeout=3.0, retry=policy)
        .step("a", participant="p", action="do", compensation="undo", timeout=0.5)
        .pivot("p", participant="q", action="charge")
        .retriable("r", participant="m", action="send")
        .build()
    )
    assert [s.timeout for s in definition.steps] == [0.5, 3.0, 3.0]
    assert all(s.retry == policy for s in definition.steps)
    assert [s.kind for s in definition.steps] == [
        StepKind.COMPENSATABLE,
        StepKind.PIVOT,
        StepKind.RETRIABLE,
    ]


def test_an_empty_saga_is_rejected() -> None:
    """A saga of no steps has nothing to run."""
    with pytest.raises(InvalidDefinition, match="saga 'empty': has no steps"):
        SagaBuilder("empty").build()


@pytest.mark.parametrize("field", ["name", "participant", "action"])
def test_a_step_needs_non_empty_names(field: str) -> None:
    """Empty identifiers are rejected when built."""
    fields: dict[str, Any] = {"name": "a", "participant": "p", "action": "do", "compensation": "u"}
    fields[field] = ""
    with pytest.raises(InvalidDefinition, match=field):
        StepDefinition(**fields)


def test_a_step_kind_must_be_a_step_kind() -> None:
    """A string is not silently accepted as a kind."""
    with pytest.raises(InvalidDefinition, match="'a': kind must be a StepKind"):
        StepDefinition(name="a", participant="p", action="do", kind="pivot")  # type: ignore[arg-type]


def test_a_saga_of_something_other_than_steps_is_rejected() -> None:
    """Each element of steps must be a StepDefinition."""
    with pytest.raises(InvalidDefinition, match="step 1 is not a StepDefinition"):
        SagaDefinition(name="order", steps=[step("a"), "b"])  # type: ignore[list-item]


def test_definitions_are_frozen() -> None:
    """Values never change once built."""
    definition = SagaDefinition(name="order", steps=[step("a")])
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        definition.name = "other"  # type: ignore[misc]
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        definition.steps[0].timeout = 3.0  # type: ignore[misc]


@pytest.mark.parametrize("field", ["initial_backoff", "multiplier", "max_backoff"])
def test_an_infinite_retry_parameter_is_rejected(field: str) -> None:
    """An infinite wait is a timer that never fires: the saga would hang."""
    fields: dict[str, Any] = {"initial_backoff": 0.0, "max_backoff": 1.0, field: math.inf}
    with pytest.raises(InvalidDefinition, match=field):
        RetryPolicy(**fields)


def test_the_backoff_stays_at_its_cap_however_many_tries_failed() -> None:
    """A long retry budget never overflows the float exponent: the wait is the cap."""
    policy = RetryPolicy(max_attempts=5000, initial_backoff=0.1, multiplier=2.0, max_backoff=9.0)
    assert policy.backoff(4999) == 9.0


@pytest.mark.parametrize("failed_attempt", [0, -1, 1.5, "2", None, True])
def test_backoff_of_something_other_than_a_try_number_is_refused(failed_attempt: Any) -> None:
    """RetryPolicy.backoff takes a try number >= 1; anything else is an InvalidArgument."""
    with pytest.raises(InvalidArgument, match="failed_attempt"):
        RetryPolicy().backoff(failed_attempt)


def test_index_of_an_unknown_step_is_unknown_step_a_key_error() -> None:
    """index_of names the saga and its steps; an unhashable name is the same error."""
    definition = SagaDefinition(name="order", steps=[step("a"), step("b")])
    for name in ("zzz", ["a"]):
        with pytest.raises(UnknownStep, match=r"saga 'order' has no step .* \(its steps: a, b\)"):
            definition.index_of(name)  # type: ignore[arg-type]
    assert issubclass(UnknownStep, KeyError) and issubclass(UnknownStep, SagaError)
    assert not definition.has_step(["a"])  # type: ignore[arg-type]


def test_the_pivot_property_finds_the_pivot_or_none() -> None:
    """SagaDefinition.pivot is the pivot step, or None for a saga without one."""
    with_pivot = SagaDefinition(name="o", steps=[step("a"), step("p", StepKind.PIVOT)])
    assert with_pivot.pivot is with_pivot.steps[1]
    assert SagaDefinition(name="o", steps=[step("a")]).pivot is None


def test_step_kinds_say_whether_they_are_compensated_and_where_they_stand() -> None:
    """Only compensatable steps are undone; compensatable and read-only come before the pivot."""
    assert [k for k in StepKind if k.compensable] == [StepKind.COMPENSATABLE]
    assert [k for k in StepKind if k.before_pivot] == [StepKind.COMPENSATABLE, StepKind.READ_ONLY]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"timeout": True}, "timeout must be a positive number"),
        ({"retry": 3}, "retry must be a RetryPolicy"),
        ({"compensation_retry": "nope"}, "compensation_retry must be a RetryPolicy"),
        ({"compensation_timeout": -1}, "compensation_timeout"),
    ],
)
def test_a_bad_option_is_refused_when_given_not_at_build(
    options: dict[str, Any], message: str
) -> None:
    """As a builder default and per step, on every kind of step, before build() is reached."""
    with pytest.raises(InvalidDefinition, match=f"saga 'order': {message}"):
        SagaBuilder("order", **options)
    for method in ("step", "read_only", "pivot", "retriable"):
        builder = SagaBuilder("order")
        extra = {"compensation": "undo"} if method == "step" else {}
        with pytest.raises(InvalidDefinition, match=message):
            getattr(builder, method)("a", participant="p", action="do", **extra, **options)
        assert builder._steps == []  # nothing half-added


# -- the lines a user reads ----------------------------------------------------------------------

_NOT_A_NAME = st.one_of(
    st.just(""), st.none(), st.booleans(), st.integers(), st.floats(), st.binary(max_size=3),
    st.lists(st.text(max_size=2), max_size=2),
)  # fmt: skip
"""What a saga or step name cannot be: empty, or not a string."""


@given(_NOT_A_NAME)
def test_a_saga_name_that_is_not_a_non_empty_string_is_refused_in_one_line(name: Any) -> None:
    """By the builder, before any step is added, and by a SagaDefinition made directly."""
    line = f"saga name must be a non-empty string, got {name!r}"
    with pytest.raises(InvalidDefinition) as refused:
        SagaBuilder(name)
    assert str(refused.value) == line
    with pytest.raises(InvalidDefinition) as refused:
        SagaDefinition(name=name, steps=[step("a")])
    assert str(refused.value) == line


@given(st.one_of(st.just(""), st.booleans(), st.integers(), st.binary(max_size=3)))
def test_a_compensation_that_is_not_a_non_empty_string_is_refused_in_one_line(
    compensation: Any,
) -> None:
    """None means "no compensation"; an empty string or a non-string is a mistake, not None."""
    with pytest.raises(InvalidDefinition) as refused:
        StepDefinition(name="a", participant="p", action="do", compensation=compensation)
    assert str(refused.value) == (
        f"step 'a': compensation must be a non-empty string or None, got {compensation!r}"
    )


@pytest.mark.parametrize("steps", ["ab", b"ab", {"a": 1}, 5, None])
def test_steps_that_are_not_a_sequence_of_steps_are_refused_in_one_line(steps: Any) -> None:
    """A string is iterable but is not a list of steps; neither is a mapping or a number."""
    with pytest.raises(InvalidDefinition) as refused:
        SagaDefinition(name="order", steps=steps)
    assert str(refused.value) == (f"saga steps must be a sequence of StepDefinition, got {steps!r}")


@pytest.mark.parametrize(
    ("build", "line"),
    [
        (
            lambda: StepDefinition(name="reserve", participant="inv", action="reserve"),
            "step 'reserve': a compensatable step needs a compensation "
            "(declare a step with nothing to undo as read-only)",
        ),
        (
            lambda: step("verify", StepKind.READ_ONLY, compensation="undo"),
            "step 'verify': a read-only step cannot have a compensation (it has no effect to undo)",
        ),
        (
            lambda: step("charge", StepKind.PIVOT, compensation="refund"),
            "step 'charge': a pivot step cannot have a compensation "
            "(nothing at or after the pivot is ever undone)",
        ),
        (
            lambda: step("notify", StepKind.RETRIABLE, compensation="unsend"),
            "step 'notify': a retriable step cannot have a compensation "
            "(nothing at or after the pivot is ever undone)",
        ),
        (
            lambda: SagaDefinition(
                name="order", steps=[step("p", StepKind.PIVOT), step("v", StepKind.READ_ONLY)]
            ),
            "saga 'order': read-only step 'v' comes after the pivot 'p'",
        ),
        (
            lambda: SagaDefinition(name="order", steps=[step("p", StepKind.PIVOT), step("late")]),
            "saga 'order': compensatable step 'late' comes after the pivot 'p'",
        ),
        (
            lambda: SagaBuilder("order", timout=1.0),
            "saga 'order': unknown step option 'timout' "
            "(known: compensation_retry, compensation_timeout, retry, timeout)",
        ),
    ],
    ids=[
        "no compensation",
        "read-only compensated",
        "pivot compensated",
        "retriable compensated",
        "read-only after the pivot",
        "compensatable after the pivot",
        "unknown option",
    ],
)
def test_each_step_kind_rule_is_refused_with_the_line_that_explains_it(
    build: Any, line: str
) -> None:
    """The whole line, as a user reads it: the step, the rule it breaks, and why the rule holds
    (kinds are written as in the docs, read-only with a hyphen)."""
    with pytest.raises(InvalidDefinition) as refused:
        build()
    assert str(refused.value) == line
