"""The lifecycle specs, checked as data: reachability, terminals, no gap for network input, the
checks a spec makes when it is built, and an engine that asks the spec instead of restating it."""

from __future__ import annotations

import ast
import enum
import inspect
from collections.abc import Iterable
from typing import Any

import attrs
import pytest
import transitions
from helpers import Outcome, SagaPair, saga_of

from sagafsm import (
    CompensateStep,
    IllegalTransition,
    RetryPolicy,
    SagaState,
    StepState,
    _moves,
    engine,
)
from sagafsm._machine import SAGA_MACHINE, STEP_MACHINE, LifecycleMachine
from sagafsm.lifecycle import (
    LIFECYCLES,
    OPERATOR_RETRY,
    SAGA_LIFECYCLE,
    STEP_LIFECYCLE,
    IgnoredTrigger,
    LifecycleSpec,
    TimerPurpose,
    Transition,
)

SPECS = [pytest.param(SAGA_LIFECYCLE, id="saga"), pytest.param(STEP_LIFECYCLE, id="step")]

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
    """Breadth-first search written independently of LifecycleSpec.reachable."""
    rows = list(table)
    seen, frontier = {initial}, [initial]
    while frontier:
        state = frontier.pop()
        for row in rows:
            if row.source is state and row.dest not in seen:
                seen.add(row.dest)
                frontier.append(row.dest)
    return seen


@pytest.mark.parametrize("spec", SPECS)
def test_every_state_is_reachable_from_the_initial_state(spec: LifecycleSpec[Any]) -> None:
    """No state is dead code in the table, and the spec's own search agrees."""
    assert reachable(spec.initial, spec.transitions) == set(spec.states)
    for state in spec.states:
        assert spec.reachable(state) == reachable(state, spec.transitions)


@pytest.mark.parametrize("spec", SPECS)
def test_only_terminal_states_are_dead_ends(spec: LifecycleSpec[Any]) -> None:
    """A finished lifecycle never moves again, and nothing else can get stuck by construction."""
    assert [row for row in spec.transitions if row.source in spec.terminal] == []
    sources = {row.source for row in spec.transitions}
    assert set(spec.states) - sources == set(spec.terminal)


@pytest.mark.parametrize("spec", SPECS)
def test_every_terminal_state_is_reachable_from_every_state(spec: LifecycleSpec[Any]) -> None:
    """From anywhere a lifecycle can still end."""
    for state in spec.states:
        assert spec.reachable(state) & spec.terminal, state


@pytest.mark.parametrize("spec", SPECS)
def test_no_row_is_declared_twice_with_different_destinations(spec: LifecycleSpec[Any]) -> None:
    """The tables are deterministic: one destination per (trigger, source)."""
    keys = [(row.trigger, row.source) for row in spec.transitions]
    assert len(keys) == len(set(keys))


@pytest.mark.parametrize("spec", SPECS)
def test_trigger_into_names_the_row_between_two_states(spec: LifecycleSpec[Any]) -> None:
    """Each (source, dest) pair of the table has one trigger, which trigger_into returns."""
    pairs: dict[tuple[Any, Any], set[str]] = {}
    for row in spec.transitions:
        pairs.setdefault((row.source, row.dest), set()).add(row.trigger)
    assert all(len(triggers) == 1 for triggers in pairs.values())
    for (source, dest), (trigger,) in pairs.items():
        assert spec.trigger_into(source, dest) == trigger
    assert spec.trigger_into(spec.initial, spec.initial) is None


def test_the_five_states_the_design_names_exist() -> None:
    """Started, Pending, Compensating, Completed, Failed, plus the operator state."""
    names = {s.name for s in SagaState}
    assert {"STARTED", "PENDING", "COMPENSATING", "COMPLETED", "FAILED"} <= names
    terminal = {SagaState.COMPLETED, SagaState.FAILED, SagaState.OPERATOR_REQUIRED}
    assert terminal == SAGA_LIFECYCLE.terminal


def test_the_step_roles_are_the_states_the_semantics_name() -> None:
    """Landed: succeeded or timed out (the effect may be there); one timer per waiting state."""
    assert STEP_LIFECYCLE.landed == {StepState.SUCCEEDED, StepState.TIMED_OUT}
    assert dict(STEP_LIFECYCLE.waiting) == {
        StepState.EXECUTING: TimerPurpose.ACTION_TIMEOUT,
        StepState.WAITING_RETRY: TimerPurpose.ACTION_BACKOFF,
        StepState.COMPENSATING: TimerPurpose.COMPENSATION_TIMEOUT,
        StepState.WAITING_COMPENSATION_RETRY: TimerPurpose.COMPENSATION_BACKOFF,
    }
    assert LIFECYCLES == {"saga": SAGA_LIFECYCLE, "step": STEP_LIFECYCLE}


def test_a_retriable_try_that_timed_out_and_then_failed_backs_off_again() -> None:
    """The back_off self-loop: in WAITING_RETRY a failure is a row, not an ignored reply."""
    assert STEP_LIFECYCLE.allows("back_off", StepState.WAITING_RETRY)
    assert STEP_LIFECYCLE.ignored_reason("back_off", StepState.WAITING_RETRY) is None
    model = Model(StepState.WAITING_RETRY)
    STEP_MACHINE.fire(model, "back_off", "step r")
    assert model.state is StepState.WAITING_RETRY


def test_ignored_entries_are_unique_and_have_a_reason() -> None:
    """Each ignored pair is listed once, with a reason that starts with its category."""
    keys = [(row.trigger, row.source) for row in STEP_LIFECYCLE.ignored]
    assert len(keys) == len(set(keys))
    categories = ("unknown", "duplicate", "conflicting", "late")
    assert all(row.reason.startswith(categories) for row in STEP_LIFECYCLE.ignored)


@pytest.mark.parametrize("trigger", REPLY_TRIGGERS)
@pytest.mark.parametrize("state", list(StepState))
def test_every_reply_trigger_is_declared_or_ignored_in_every_step_state(
    trigger: str, state: StepState
) -> None:
    """Network input can arrive in any state, so it must never hit a gap in the table."""
    declared = STEP_LIFECYCLE.allows(trigger, state)
    ignored = STEP_LIFECYCLE.ignored_reason(trigger, state) is not None
    assert declared != ignored


@pytest.mark.parametrize(
    ("machine", "spec"), [(SAGA_MACHINE, SAGA_LIFECYCLE), (STEP_MACHINE, STEP_LIFECYCLE)]
)
def test_the_machine_triggers_are_exactly_the_spec_triggers(
    machine: LifecycleMachine, spec: LifecycleSpec[Any]
) -> None:
    """The adapter adds no trigger (auto transitions are off) and drops none."""
    assert machine.spec is spec
    assert set(machine.triggers) == set(spec.triggers) == {row.trigger for row in spec.rows}


class Model:
    def __init__(self, state: enum.Enum) -> None:
        self.state = state


@pytest.mark.parametrize(
    ("machine", "row"),
    [(SAGA_MACHINE, row) for row in SAGA_LIFECYCLE.transitions]
    + [(STEP_MACHINE, row) for row in STEP_LIFECYCLE.transitions],
    ids=lambda x: f"{x.trigger}-{x.source.name}" if isinstance(x, Transition) else x.name,
)
def test_firing_each_declared_row_lands_on_its_destination(
    machine: LifecycleMachine, row: Transition
) -> None:
    """The transitions machine does what the table says, row by row."""
    model = Model(row.source)
    machine.fire(model, row.trigger, "test")
    assert model.state is row.dest


UNDECLARED_SAGA_MOVES = [
    (trigger, state)
    for trigger in SAGA_LIFECYCLE.triggers
    for state in SagaState
    if not SAGA_LIFECYCLE.allows(trigger, state)
    and not SAGA_LIFECYCLE.allows_operator(trigger, state)
]


@pytest.mark.parametrize(("trigger", "state"), UNDECLARED_SAGA_MOVES)
def test_an_undeclared_saga_move_raises_illegal_transition_and_changes_nothing(
    trigger: str, state: SagaState
) -> None:
    """Every (trigger, state) off the table is a typed error, never a MachineError."""
    model = Model(state)
    with pytest.raises(IllegalTransition) as info:
        SAGA_MACHINE.fire(model, trigger, "saga x")
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
        STEP_MACHINE.fire(Model(StepState.PENDING), "explode", "step y")


def test_machines_are_shared_and_hold_no_model() -> None:
    """Building a machine is done once, at import; instances own no machine."""
    assert SAGA_MACHINE._machine.models == []
    assert STEP_MACHINE._machine.models == []


# -- the checks a spec makes when it is built ----------------------------------------------------


class Light(enum.Enum):
    OFF = "off"
    ON = "on"
    BROKEN = "broken"


def light(**changes: Any) -> LifecycleSpec[Light]:
    fields: dict[str, Any] = {
        "name": "light",
        "states": Light,
        "initial": Light.OFF,
        "terminal": frozenset({Light.BROKEN}),
        "transitions": [
            Transition("flip", Light.OFF, Light.ON),
            Transition("flip", Light.ON, Light.OFF),
            Transition("smash", Light.ON, Light.BROKEN),
        ],
        "ignored": [IgnoredTrigger("smash", Light.OFF, "unknown: nothing to smash")],
    }
    return LifecycleSpec(**{**fields, **changes})


def test_a_well_formed_spec_is_accepted() -> None:
    """The fixture itself passes, so each failure below is caused by its one change."""
    spec = light()
    assert spec.allows("flip", Light.OFF)
    assert spec.ignored_reason("smash", Light.OFF) == "unknown: nothing to smash"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        pytest.param(
            {"transitions": [Transition("go", Light.OFF, SagaState.PENDING)]},
            "another lifecycle",
            id="row-to-a-foreign-state",
        ),
        pytest.param(
            {"transitions": [Transition("go", StepState.PENDING, Light.ON)]},
            "another lifecycle",
            id="row-from-a-foreign-state",
        ),
        pytest.param(
            {"transitions": [Transition("fix", Light.BROKEN, Light.OFF)], "ignored": []},
            "leaves a final state",
            id="row-out-of-a-final-state",
        ),
        pytest.param(
            {"ignored": [IgnoredTrigger("flip", Light.OFF, "oops")]},
            "both declared and ignored",
            id="declared-and-ignored",
        ),
        pytest.param(
            {"ignored": [IgnoredTrigger("unplug", Light.OFF, "unknown")]},
            r"ignored \('unplug', <Light.OFF: 'off'>\) names a state or trigger it does not have",
            id="ignored-unknown-trigger",
        ),
        pytest.param(
            {"ignored": [IgnoredTrigger("smash", SagaState.FAILED, "late")]},
            "does not have",
            id="ignored-foreign-state",
        ),
        pytest.param(
            {"initial": StepState.PENDING}, "light: initial names a foreign", id="foreign-initial"
        ),
        pytest.param(
            {"terminal": frozenset({SagaState.FAILED})},
            "light: terminal names a foreign",
            id="foreign-terminal",
        ),
        pytest.param(
            {"landed": frozenset({StepState.SUCCEEDED})},
            "light: landed names a foreign",
            id="foreign-landed",
        ),
        pytest.param(
            {"waiting": {StepState.EXECUTING: TimerPurpose.ACTION_TIMEOUT}},
            "light: waiting names a foreign",
            id="foreign-waiting",
        ),
        pytest.param(
            {"waiting": {Light.BROKEN: TimerPurpose.ACTION_TIMEOUT}},
            "final state waits",
            id="final-state-waiting",
        ),
        pytest.param(
            {"operator": [Transition("fix", Light.BROKEN, SagaState.PENDING)]},
            r"light: operator row Transition\(trigger='fix', .*\) names a state of another "
            "lifecycle",
            id="operator-row-to-a-foreign-state",
        ),
        pytest.param(
            {"operator": [Transition("fix", SagaState.FAILED, Light.OFF)]},
            r"light: operator row Transition\(trigger='fix', .*\) names a state of another "
            "lifecycle",
            id="operator-row-from-a-foreign-state",
        ),
        pytest.param(
            {"operator": [Transition("fix", Light.ON, Light.OFF)]},
            r"light: operator row Transition\(trigger='fix', .*\) does not lead from a final "
            "state to a running one",
            id="operator-row-from-a-running-state",
        ),
        pytest.param(
            {"operator": [Transition("fix", Light.BROKEN, Light.BROKEN)]},
            r"light: operator row Transition\(trigger='fix', .*\) does not lead from a final "
            "state to a running one",
            id="operator-row-into-a-final-state",
        ),
        pytest.param(
            {"operator": [Transition("flip", Light.BROKEN, Light.OFF)]},
            r"light: operator row Transition\(trigger='flip', .*\) reuses an engine trigger",
            id="operator-row-with-an-engine-trigger",
        ),
    ],
)
def test_a_bad_spec_is_refused_when_it_is_built(changes: dict[str, Any], message: str) -> None:
    """Table bugs are caught at import, naming the lifecycle, not while a saga runs."""
    with pytest.raises(ValueError, match=message) as info:
        light(**changes)
    assert "light" in str(info.value)


def test_an_operator_row_leaves_a_final_state_for_a_running_one() -> None:
    """The one row shape a final state may have: taken only by an operator, listed after the
    engine's rows, and invisible to ``allows`` (the engine's own moves)."""
    fix = Transition("fix", Light.BROKEN, Light.OFF)
    spec = light(operator=[fix])
    assert spec.rows == (*spec.transitions, fix) and spec.triggers[-1] == "fix"
    assert spec.allows_operator("fix", Light.BROKEN) and not spec.allows("fix", Light.BROKEN)


@pytest.mark.parametrize("spec", [SAGA_LIFECYCLE, STEP_LIFECYCLE], ids=lambda s: s.name)
def test_allows_operator_is_exactly_the_operator_rows(spec: LifecycleSpec[Any]) -> None:
    """Every (trigger, state) pair: an operator may fire it iff an operator row starts there."""
    rows = {(row.trigger, row.source) for row in spec.operator}
    assert rows == {(OPERATOR_RETRY, state) for state in spec.terminal if state.value in (
        "operator_required", "compensation_failed")}  # fmt: skip
    for trigger in (*spec.triggers, "nope"):
        for state in spec.states:
            assert spec.allows_operator(trigger, state) is ((trigger, state) in rows)


def test_the_shipped_specs_pass_their_own_checks_again() -> None:
    """Rebuilding each spec from its fields raises nothing and gives an equal value."""
    for spec in (SAGA_LIFECYCLE, STEP_LIFECYCLE):
        assert attrs.evolve(spec) == spec


# -- the engine asks the spec instead of restating it --------------------------------------------

_STATE_ENUMS = {"StepState", "SagaState"}


def _state_literals(source: str) -> list[str]:
    """Comparisons in Python source that test against a named lifecycle state, directly
    (``StepState.FAILED``) or through a module alias (``_T = StepState.FAILED``)."""
    tree = ast.parse(source)
    aliases: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign):
            target, value = node.targets[0], node.value
            pairs = (
                zip(target.elts, value.elts, strict=False)
                if isinstance(target, ast.Tuple) and isinstance(value, ast.Tuple)
                else [(target, value)]
            )
            aliases |= {
                t.id
                for t, v in pairs
                if isinstance(t, ast.Name) and any(_is_state(n, set()) for n in ast.walk(v))
            }
    return [
        ast.unparse(node)
        for node in ast.walk(tree)
        if isinstance(node, ast.Compare)
        and any(
            _is_state(n, aliases) for side in (node.left, *node.comparators) for n in ast.walk(side)
        )
    ]


def _is_state(node: ast.AST, aliases: set[str]) -> bool:
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
        return node.value.id in _STATE_ENUMS
    return isinstance(node, ast.Name) and node.id in aliases


@pytest.mark.parametrize("module", [engine, _moves], ids=["engine", "_moves"])
def test_the_engine_never_compares_a_state_with_a_named_state(module: Any) -> None:
    """Which state is initial, final, landed or waiting is the spec's to say."""
    assert _state_literals(inspect.getsource(module)) == []


def test_the_state_comparison_finder_itself_can_fail() -> None:
    """The AST check above notices a comparison with a named state, directly or via an alias."""
    source = (
        "_T, _X = StepState.FAILED, 3\n"
        "if a is _T: pass\n"
        "if b in (SagaState.PENDING,): pass\n"
        "if c is d or e == _X: pass\n"
    )
    assert _state_literals(source) == ["a is _T", "b in (SagaState.PENDING,)"]


def renamed(spec: LifecycleSpec[Any], names: dict[str, str]) -> LifecycleSpec[Any]:
    """The spec with some triggers renamed in its rows and ignored entries."""
    return attrs.evolve(
        spec,
        transitions=[t._replace(trigger=names.get(t.trigger, t.trigger)) for t in spec.transitions],
        ignored=[i._replace(trigger=names.get(i.trigger, i.trigger)) for i in spec.ignored],
    )


def test_the_triggers_that_move_a_step_into_a_state_come_from_the_spec(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Rename send, retry, compensate and compensation_retry in the table: the engine follows."""
    names = {
        "send": "dispatch",
        "retry": "resend",
        "compensate": "undo",
        "compensation_retry": "undo_again",
    }
    spec = renamed(STEP_LIFECYCLE, names)
    monkeypatch.setattr(_moves, "STEP_LIFECYCLE", spec)
    monkeypatch.setattr(_moves, "STEP_MACHINE", LifecycleMachine(spec))
    definition = saga_of("a", "b", retry=RetryPolicy(max_attempts=2))
    pair = SagaPair(
        definition,
        actions={"a": [Outcome.LOST], "b": [Outcome.FAIL]},
        compensations={"a": [Outcome.FAIL]},
    )
    pair.start().run()
    assert pair.finished is not None and pair.finished.state is SagaState.FAILED
    assert pair.recorder.step_path("a") == [
        "dispatch",
        "back_off",
        "resend",
        "succeed",
        "undo",
        "compensation_back_off",
        "undo_again",
        "compensated",
    ]


def test_which_steps_get_compensated_comes_from_the_spec(monkeypatch: pytest.MonkeyPatch) -> None:
    """Drop TIMED_OUT from the spec's landed states: a timed-out step is then left alone."""
    definition = saga_of("a", "b", retry=RetryPolicy(max_attempts=1))
    timed_out = {"b": [Outcome.LOST]}
    assert SagaPair(definition, actions=timed_out).start().run().sent_steps(CompensateStep) == [
        "b",
        "a",
    ]
    narrower = attrs.evolve(STEP_LIFECYCLE, landed=frozenset({StepState.SUCCEEDED}))
    monkeypatch.setattr(engine, "STEP_LIFECYCLE", narrower)
    pair = SagaPair(definition, actions=timed_out).start().run()
    assert pair.sent_steps(CompensateStep) == ["a"]
