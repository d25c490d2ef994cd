"""The lifecycle tables, checked as data: reachability, terminals, and no gap for network input."""

from __future__ import annotations

import enum
from collections.abc import Iterable

import pytest
import transitions

from sagafsm import IllegalTransition, SagaState, StepState
from sagafsm._machine import SAGA_LIFECYCLE, STEP_LIFECYCLE, Lifecycle
from sagafsm.lifecycle import (
    SAGA_TERMINAL,
    SAGA_TRANSITIONS,
    STEP_IGNORED,
    STEP_TERMINAL,
    STEP_TRANSITIONS,
    IgnoredTrigger,
    Transition,
)

TABLES = [
    pytest.param(SagaState, SagaState.STARTED, SAGA_TRANSITIONS, SAGA_TERMINAL, id="saga"),
    pytest.param(StepState, StepState.PENDING, STEP_TRANSITIONS, STEP_TERMINAL, id="step"),
]

# Every trigger the engine derives from a participant's reply (or a driver-detected timeout).
REPLY_TRIGGERS = (
    "succeed",
    "fail",
    "back_off",
    "compensated",
    "compensation_back_off",
    "compensation_give_up",
)


def reachable(initial: enum.Enum, table: Iterable[Transition]) -> set[enum.Enum]:
    rows = list(table)
    seen, frontier = {initial}, [initial]
    while frontier:
        state = frontier.pop()
        for row in rows:
            if row.source is state and row.dest not in seen:
                seen.add(row.dest)
                frontier.append(row.dest)
    return seen


@pytest.mark.parametrize(("states", "initial", "table", "terminal"), TABLES)
def test_every_state_is_reachable_from_the_initial_state(
    states: type[enum.Enum],
    initial: enum.Enum,
    table: tuple[Transition, ...],
    terminal: frozenset[enum.Enum],
) -> None:
    """No state is dead code in the table."""
    assert reachable(initial, table) == set(states)


@pytest.mark.parametrize(("states", "initial", "table", "terminal"), TABLES)
def test_terminal_states_have_no_way_out(
    states: type[enum.Enum],
    initial: enum.Enum,
    table: tuple[Transition, ...],
    terminal: frozenset[enum.Enum],
) -> None:
    """A finished lifecycle never moves again."""
    assert [row for row in table if row.source in terminal] == []


@pytest.mark.parametrize(("states", "initial", "table", "terminal"), TABLES)
def test_every_non_terminal_state_has_a_way_out(
    states: type[enum.Enum],
    initial: enum.Enum,
    table: tuple[Transition, ...],
    terminal: frozenset[enum.Enum],
) -> None:
    """Only terminal states are dead ends, so nothing can get stuck by construction."""
    sources = {row.source for row in table}
    assert set(states) - sources == set(terminal)


@pytest.mark.parametrize(("states", "initial", "table", "terminal"), TABLES)
def test_every_terminal_state_is_reachable_from_every_state(
    states: type[enum.Enum],
    initial: enum.Enum,
    table: tuple[Transition, ...],
    terminal: frozenset[enum.Enum],
) -> None:
    """From anywhere a lifecycle can still end."""
    for state in states:
        assert reachable(state, table) & terminal, state


@pytest.mark.parametrize(("states", "initial", "table", "terminal"), TABLES)
def test_no_row_is_declared_twice_with_different_destinations(
    states: type[enum.Enum],
    initial: enum.Enum,
    table: tuple[Transition, ...],
    terminal: frozenset[enum.Enum],
) -> None:
    """The tables are deterministic: one destination per (trigger, source)."""
    keys = [(row.trigger, row.source) for row in table]
    assert len(keys) == len(set(keys))


def test_the_five_states_the_design_names_exist() -> None:
    """Started, Pending, Compensating, Completed, Failed, plus the operator state."""
    names = {s.name for s in SagaState}
    assert {"STARTED", "PENDING", "COMPENSATING", "COMPLETED", "FAILED"} <= names
    assert {SagaState.COMPLETED, SagaState.FAILED, SagaState.OPERATOR_REQUIRED} == SAGA_TERMINAL


def test_no_trigger_and_source_is_both_declared_and_ignored() -> None:
    """A reply is either applied or dropped, never both."""
    declared = {(row.trigger, row.source) for row in STEP_TRANSITIONS}
    ignored = {(row.trigger, row.source) for row in STEP_IGNORED}
    assert declared & ignored == set()


def test_ignored_entries_are_unique_and_have_a_reason() -> None:
    """Each ignored pair is listed once, with a reason that starts with its category."""
    keys = [(row.trigger, row.source) for row in STEP_IGNORED]
    assert len(keys) == len(set(keys))
    categories = ("unknown", "duplicate", "conflicting", "late")
    assert all(row.reason.startswith(categories) for row in STEP_IGNORED)


def test_ignored_entries_name_real_triggers_and_states() -> None:
    """The ignore list cannot mention a trigger the table does not have."""
    triggers = {row.trigger for row in STEP_TRANSITIONS}
    assert {row.trigger for row in STEP_IGNORED} <= triggers
    assert all(isinstance(row.source, StepState) for row in STEP_IGNORED)


@pytest.mark.parametrize("trigger", REPLY_TRIGGERS)
@pytest.mark.parametrize("state", list(StepState))
def test_every_reply_trigger_is_declared_or_ignored_in_every_step_state(
    trigger: str, state: StepState
) -> None:
    """Network input can arrive in any state, so it must never hit a gap in the table."""
    declared = STEP_LIFECYCLE.allows(trigger, state)
    ignored = STEP_LIFECYCLE.ignored_reason(trigger, state) is not None
    assert declared != ignored


def test_the_machine_triggers_are_exactly_the_table_triggers() -> None:
    """The adapter adds no trigger (auto transitions are off) and drops none."""
    assert set(SAGA_LIFECYCLE.triggers) == {row.trigger for row in SAGA_TRANSITIONS}
    assert set(STEP_LIFECYCLE.triggers) == {row.trigger for row in STEP_TRANSITIONS}


class Model:
    def __init__(self, state: enum.Enum) -> None:
        self.state = state


@pytest.mark.parametrize("row", STEP_TRANSITIONS, ids=lambda r: f"{r.trigger}-{r.source.name}")
def test_firing_each_declared_step_row_lands_on_its_destination(row: Transition) -> None:
    """The transitions machine does what the table says, row by row."""
    model = Model(row.source)
    STEP_LIFECYCLE.fire(model, row.trigger, "test")
    assert model.state is row.dest


@pytest.mark.parametrize("row", SAGA_TRANSITIONS, ids=lambda r: f"{r.trigger}-{r.source.name}")
def test_firing_each_declared_saga_row_lands_on_its_destination(row: Transition) -> None:
    """Same for the saga lifecycle."""
    model = Model(row.source)
    SAGA_LIFECYCLE.fire(model, row.trigger, "test")
    assert model.state is row.dest


UNDECLARED_SAGA_MOVES = [
    (trigger, state)
    for trigger in SAGA_LIFECYCLE.triggers
    for state in SagaState
    if not SAGA_LIFECYCLE.allows(trigger, state)
]


@pytest.mark.parametrize(("trigger", "state"), UNDECLARED_SAGA_MOVES)
def test_an_undeclared_saga_move_raises_illegal_transition_and_changes_nothing(
    trigger: str, state: SagaState
) -> None:
    """Every (trigger, state) off the table is a typed error, never a MachineError."""
    model = Model(state)
    with pytest.raises(IllegalTransition) as info:
        SAGA_LIFECYCLE.fire(model, trigger, "saga x")
    assert not isinstance(info.value, transitions.MachineError)
    assert (info.value.trigger, info.value.state, info.value.subject) == (
        trigger,
        state.value,
        "saga x",
    )
    assert model.state is state


def test_an_unknown_trigger_raises_illegal_transition() -> None:
    """A trigger the machine does not have is the same typed error."""
    with pytest.raises(IllegalTransition, match="'explode'"):
        STEP_LIFECYCLE.fire(Model(StepState.PENDING), "explode", "step y")


def test_a_table_that_declares_and_ignores_the_same_pair_is_refused() -> None:
    """The adapter checks the disjointness itself when a lifecycle is built."""

    class Light(enum.Enum):
        OFF = "off"
        ON = "on"

    with pytest.raises(ValueError, match="both declared and ignored"):
        Lifecycle(
            "light",
            Light,
            Light.OFF,
            [Transition("flip", Light.OFF, Light.ON)],
            [IgnoredTrigger("flip", Light.OFF, "oops")],
        )


def test_lifecycles_share_one_machine_each() -> None:
    """Building a lifecycle is done once, at import; instances own no machine."""
    assert SAGA_LIFECYCLE._machine.models == []
    assert STEP_LIFECYCLE._machine.models == []
