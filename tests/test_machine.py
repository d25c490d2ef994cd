"""The ``transitions`` adapter's fast path: the table it reads out of a built machine moves every
model exactly as ``Event.trigger`` does, and is refused for any machine whose moves do more."""

from __future__ import annotations

import enum
from typing import Any

import pytest
from transitions import Machine

from sagafsm import IllegalTransition
from sagafsm._machine import SAGA_MACHINE, STEP_MACHINE, LifecycleMachine, read_table
from sagafsm.lifecycle import SAGA_LIFECYCLE, STEP_LIFECYCLE, LifecycleSpec, StepState

SPECS = [pytest.param(SAGA_LIFECYCLE, id="saga"), pytest.param(STEP_LIFECYCLE, id="step")]


class Model:
    def __init__(self, state: enum.Enum) -> None:
        self.state = state


def outcome(machine: LifecycleMachine, trigger: str, state: enum.Enum) -> tuple[Any, ...]:
    """Where one move from ``state`` lands, or the error it raises (every field of it)."""
    model = Model(state)
    try:
        machine.fire(model, trigger, "subject")
    except IllegalTransition as error:
        return (
            "error",
            error.lifecycle,
            error.trigger,
            error.state,
            error.subject,
            str(error),
            model.state,
        )
    return ("moved", model.state)


@pytest.mark.parametrize("spec", SPECS)
def test_every_trigger_in_every_state_lands_where_trigger_lands(spec: LifecycleSpec[Any]) -> None:
    """Each (trigger, state) pair, an unknown trigger included, fired through the fast table
    and through ``Event.trigger``: the same destination, or the same error."""
    fast, slow = LifecycleMachine(spec), LifecycleMachine(spec, fast=False)
    assert fast.fast and not slow.fast
    pairs = [(trigger, state) for trigger in (*spec.triggers, "explode") for state in spec.states]
    moved = 0
    for trigger, state in pairs:
        expected = outcome(slow, trigger, state)
        assert outcome(fast, trigger, state) == expected, (trigger, state)
        moved += expected[0] == "moved"
    assert moved == len(spec.rows)  # every row moved, every other pair raised


@pytest.mark.parametrize("spec", SPECS)
def test_the_table_read_from_the_machine_is_the_specs_rows(spec: LifecycleSpec[Any]) -> None:
    """What the adapter reads back out of ``transitions`` is the table it handed in."""
    machine = LifecycleMachine(spec)
    assert read_table(machine._machine) == {(t.trigger, t.source): t.dest for t in spec.rows}


def test_the_shared_machines_take_the_fast_path() -> None:
    """The engine's two machines are callback-free, so their moves skip ``trigger``."""
    assert SAGA_MACHINE.fast and STEP_MACHINE.fast


class Light(enum.Enum):
    RED = "red"
    GREEN = "green"


def light(**options: Any) -> Machine:
    """A two-state machine, its one transition or the machine itself carrying ``options``."""
    move: dict[str, Any] = {"trigger": "go", "source": Light.RED, "dest": Light.GREEN}
    machine_options = {k: v for k, v in options.items() if k not in _TRANSITION_OPTIONS}
    move.update({k: v for k, v in options.items() if k in _TRANSITION_OPTIONS})
    states: list[Any] = list(Light)
    if "on_enter" in options:
        machine_options.pop("on_enter")
        states = [{"name": Light.RED}, {"name": Light.GREEN, "on_enter": options["on_enter"]}]
    return Machine(
        model=None,
        states=states,
        initial=Light.RED,
        transitions=[move],
        auto_transitions=False,
        **machine_options,
    )


_TRANSITION_OPTIONS = frozenset({"conditions", "unless", "before", "after", "prepare", "dest"})


def always(*_: Any) -> bool:
    return True


def test_a_plain_machine_gives_its_table() -> None:
    """The control for the refusals below: without any extra, the one move is read."""
    assert read_table(light()) == {("go", Light.RED): Light.GREEN}


@pytest.mark.parametrize(
    "options",
    [
        {"conditions": always},
        {"unless": always},
        {"before": always},
        {"after": always},
        {"prepare": always},
        {"dest": None},  # an internal transition
        {"on_enter": always},
        {"before_state_change": always},
        {"after_state_change": always},
        {"prepare_event": always},
        {"finalize_event": always},
        {"on_exception": always},
        {"on_final": always},
        {"queued": True},
        {"ignore_invalid_triggers": True},
    ],
    ids=lambda options: next(iter(options)),
)
def test_a_machine_whose_moves_do_more_than_set_the_state_is_refused(
    options: dict[str, Any],
) -> None:
    """Conditions, callbacks or other processing anywhere: no table, so every move goes
    through ``trigger`` and runs them."""
    assert read_table(light(**options)) is None


def test_a_refused_move_names_its_subject_filled_in_from_its_parts() -> None:
    """The engine hands fire() a format string and its parts, filled in only for the error."""
    model = Model(StepState.SUCCEEDED)
    with pytest.raises(IllegalTransition, match=r"saga s7 step 'charge'"):
        STEP_MACHINE.fire(model, "start", "saga {} step {!r}", "s7", "charge")
    with pytest.raises(IllegalTransition, match=r"plain \{\}"):
        STEP_MACHINE.fire(model, "start", "plain {}")
    assert model.state is StepState.SUCCEEDED
