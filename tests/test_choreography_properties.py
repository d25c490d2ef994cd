"""What the validation claims, checked on generated tables by an interpreter of its own.

The interpreter below runs a table with a plain FIFO queue of events (not the causal paths the
validation explores), for every choice of failing steps, and checks the guarantees the validation
promises of any table it accepts. Tables are derived from random orchestration definitions and then
randomly broken, so both accepted and refused tables are judged.
"""

from __future__ import annotations

import itertools
from collections import deque
from typing import Any, NamedTuple

import attrs
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from sagafsm import IllegalTransition, StepKind
from sagafsm.choreography import (
    ChoreographyDefinition,
    ChoreographyStep,
    CompensationReaction,
    OutcomeReaction,
    RoleRun,
    choreography_from,
    order_saga,
    order_saga_as_written,
    problems,
    project,
)
from sagafsm.choreography.paths import consumers_of, explore
from tests.strategies import definitions


class Table(NamedTuple):
    """An unvalidated table: what ``problems`` reads."""

    name: str
    initiator: str
    start: str
    steps: tuple[ChoreographyStep, ...]
    compensations: tuple[CompensationReaction, ...]
    outcomes: tuple[OutcomeReaction, ...]


def as_table(d: ChoreographyDefinition) -> Table:
    return Table(d.name, d.initiator, d.start, d.steps, d.compensations, d.outcomes)


def emitted(table: Table) -> list[str]:
    found = [table.start]
    for r in (*table.steps, *table.compensations, *table.outcomes):
        found += r.produces
    return found


@st.composite
def broken(draw: st.DrawFn, table: Table) -> Table:
    """``table`` with one random change: an ``on`` rewired, a reaction or an event dropped."""
    events = [*emitted(table), "Stray"]
    change = draw(st.sampled_from(["step_on", "undo_on", "outcome_on", "drop_undo", "drop_one"]))
    steps, undos, outcomes = list(table.steps), list(table.compensations), list(table.outcomes)
    if change == "step_on":
        i = draw(st.integers(0, len(steps) - 1))
        steps[i] = attrs.evolve(steps[i], on=draw(st.sampled_from(events)))
    elif change == "undo_on" and undos:
        i = draw(st.integers(0, len(undos) - 1))
        on = draw(st.lists(st.sampled_from(events), unique=True, max_size=3))
        undos[i] = attrs.evolve(undos[i], on=on)
    elif change == "outcome_on":
        i = draw(st.integers(0, len(outcomes) - 1))
        on = draw(st.lists(st.sampled_from(events), unique=True, min_size=1, max_size=3))
        outcomes[i] = attrs.evolve(outcomes[i], on=on)
    elif change == "drop_undo" and undos:
        del undos[draw(st.integers(0, len(undos) - 1))]
    else:
        reactions = [r for r in [*undos, *outcomes] if len(r.on) > 1]
        if reactions:
            target = draw(st.sampled_from(reactions))
            gone = draw(st.sampled_from(target.on))
            keep = tuple(e for e in target.on if e != gone)
            undos = [attrs.evolve(r, on=keep) if r is target else r for r in undos]
            outcomes = [attrs.evolve(r, on=keep) if r is target else r for r in outcomes]
    return table._replace(steps=tuple(steps), compensations=tuple(undos), outcomes=tuple(outcomes))


@st.composite
def derived_tables(draw: st.DrawFn) -> Table:
    """A table derived from a random definition, then changed at random up to twice."""
    derived = as_table(choreography_from(draw(definitions())))
    for _ in range(draw(st.integers(0, 2))):
        derived = draw(broken(derived))
    return derived


@st.composite
def wired_tables(draw: st.DrawFn) -> Table:
    """A table wired at random: 1-4 steps of any kind, each reacting to any earlier event, each
    compensatable step undone on any events, outcomes on any events (mostly refused)."""
    kinds = draw(st.lists(st.sampled_from(list(StepKind)), min_size=1, max_size=4))
    events = ["Go"]
    steps = []
    for i, kind in enumerate(kinds):
        on = draw(st.sampled_from(events))
        failure = None if kind is StepKind.RETRIABLE else f"F{i}"
        steps.append(
            ChoreographyStep(
                name=f"s{i}",
                on=on,
                participant=f"p{i}",
                action="do",
                success=f"S{i}",
                failure=failure,
                kind=kind,
                deadline=1.0,
                compensation="undo" if kind is StepKind.COMPENSATABLE else None,
            )
        )
        events += [f"S{i}"] + ([failure] if failure else [])
    undos = []
    for i, kind in enumerate(kinds):
        if kind is StepKind.COMPENSATABLE:
            on = draw(st.lists(st.sampled_from(events), unique=True, max_size=2))
            undos.append(CompensationReaction(step=f"s{i}", on=on, emits=f"U{i}"))
            events.append(f"U{i}")
    some = st.lists(st.sampled_from(events), unique=True, min_size=1, max_size=3)
    outcomes = (
        OutcomeReaction(event="Done", on=draw(some), completed=True),
        OutcomeReaction(event="Failed", on=draw(some), completed=False),
    )
    return Table("wired", "starter", "Go", tuple(steps), tuple(undos), outcomes)


def tables() -> st.SearchStrategy[Table]:
    return st.one_of(derived_tables(), wired_tables())


def run(table: Table, failing: set[str]) -> list[tuple[str, Any, Any]]:
    """A FIFO run: each reaction fires once per event it consumes; steps in ``failing`` fail."""
    log: list[tuple[str, Any, Any]] = []
    queue = deque([table.start])
    applied = {undo.emits: undo.step for undo in table.compensations}
    while queue and len(log) < 500:
        name = queue.popleft()
        log.append(("event", name, None))
        if name in applied:  # a compensation counts as done once its event is out
            log.append(("undone", applied[name], None))
        for step in table.steps:
            if step.on == name:
                ok = step.name not in failing or step.failure is None
                log.append(("step", step, ok))
                queue.append(step.success if ok else step.failure)
        for undo in table.compensations:
            if name in undo.on:
                log.append(("undo", undo.step, None))
                queue.append(undo.emits)
        for outcome in table.outcomes:
            if name in outcome.on:
                log.append(("outcome", outcome.event, outcome.completed))
    return log


def violations(table: Table, failing: set[str]) -> list[str]:
    """What the validation promises, judged on one FIFO run."""
    log = run(table, failing)
    consumed = {
        e for r in (*table.steps, *table.compensations, *table.outcomes) for e in r.consumes
    }
    terminal = {o.event for o in table.outcomes}
    found = []
    outcomes = [(i, x) for i, (kind, x, _) in enumerate(log) if kind == "outcome"]
    if len(outcomes) != 1:
        found.append(f"{len(outcomes)} outcomes")
    landed = [(i, x) for i, (kind, x, ok) in enumerate(log) if kind == "step" and ok]
    undone = [(i, x) for i, (kind, x, _) in enumerate(log) if kind == "undo"]
    undone_names = [name for _, name in undone]
    if len(undone_names) != len(set(undone_names)):
        found.append("a step compensated twice")
    for _, name in undone:
        if name not in [s.name for _, s in landed]:
            found.append(f"{name} compensated without landing")
    pivot_at = next((i for i, s in landed if s.kind is StepKind.PIVOT), None)
    if pivot_at is not None and any(i > pivot_at for i, _ in undone):
        found.append("compensated after the pivot")
    for _, name, _ in (x for x in log if x[0] == "event" and x[1] not in consumed):
        if name not in terminal:
            found.append(f"{name} consumed by nothing")
    if len(outcomes) == 1:
        at, _ = outcomes[0]
        completed = log[at][2]
        if completed:
            if failing & {s.name for s in table.steps if s.failure} or undone:
                ran = {s.name for kind, s, _ in log if kind == "step"}
                if undone or failing & ran:
                    found.append("completed after a failure or a compensation")
            if {s.name for _, s in landed if _ < at} != {s.name for s in table.steps}:
                found.append("completed before every step succeeded")
        else:
            done = [(i, x) for i, (kind, x, _) in enumerate(log) if kind == "undone"]
            before = {name: i for i, name in done if i < at}
            order = [s.name for _, s in landed if s.kind is StepKind.COMPENSATABLE]
            if any(name not in before for name in order):
                found.append("failed with a landed step not compensated before")
            elif [before[n] for n in order] != sorted((before[n] for n in order), reverse=True):
                found.append("compensated out of reverse order")
    return found


def test_the_interpreter_sees_what_the_validation_refuses() -> None:
    """The oracle is not blind: on the notes' table it finds each flaw the validation names."""
    draft = order_saga_as_written()._draft()  # a table build() refuses
    table = Table(
        draft.name, draft.initiator, draft.start, draft.steps, draft.compensations, draft.outcomes
    )
    assert "InventoryReservationFailed consumed by nothing" in violations(
        table, {"reserve_inventory"}
    )
    assert "failed with a landed step not compensated before" in violations(
        table, {"process_payment"}
    )
    assert "0 outcomes" in violations(table, {"create_shipment"})
    assert violations(as_table(order_saga()), {"create_shipment"}) == []


def failable(table: Table) -> list[str]:
    return [s.name for s in table.steps if s.failure is not None]


@pytest.mark.slow
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tables())
def test_every_accepted_table_keeps_its_guarantees_on_every_run(table: Table) -> None:
    """No problem found ⇒ for every set of failing steps, the FIFO run has one outcome, a
    completion only when all succeeded, a failure only after every landed step was undone once,
    in reverse order, nothing after the pivot, no event left unconsumed."""
    found = problems(table)
    event(f"{table.name}: {'refused' if found else 'accepted'}")
    if found:
        return
    ChoreographyDefinition(**table._asdict(), deadline=1.0)  # the definition agrees
    names = failable(table)
    for size in range(len(names) + 1):
        for failing in itertools.combinations(names, size):
            assert violations(table, set(failing)) == [], failing


@settings(max_examples=100, deadline=None)
@given(definitions())
def test_every_derived_table_is_accepted_and_every_dropped_compensation_refused(
    definition: Any,
) -> None:
    """choreography_from gives a valid table; removing one compensation reaction, or one event
    that starts a compensation or an outcome, is always refused."""
    table = as_table(choreography_from(definition))
    assert problems(table) == []
    for i in range(len(table.compensations)):
        dropped = table.compensations[:i] + table.compensations[i + 1 :]
        assert problems(table._replace(compensations=dropped)), f"dropped undo {i}"
    for kind in ("compensations", "outcomes"):
        reactions = getattr(table, kind)
        for i, reaction in enumerate(reactions):
            for gone in reaction.on:
                keep = tuple(e for e in reaction.on if e != gone)
                if not keep and kind == "outcomes":
                    continue  # an outcome with no event is refused when it is made
                fewer = attrs.evolve(reaction, on=keep)
                changed = (*reactions[:i], fewer, *reactions[i + 1 :])
                assert problems(table._replace(**{kind: changed})), f"{kind} {i} without {gone}"


@pytest.mark.slow
@settings(max_examples=100, deadline=None)
@given(definitions())
def test_the_projected_roles_follow_every_path_to_a_final_state(definition: Any) -> None:
    """Each role, handed every event of a path it has a row or a declared ignore for, moves
    only along its table and ends in a final state; the initiator's matches the outcome."""
    choreography = choreography_from(definition)
    projection = project(choreography)
    assert project(choreography) is projection  # built once per definition
    for path in explore(choreography, consumers_of(choreography)):
        runs = {role.name: RoleRun(role.spec.initial) for role in projection.roles}
        for occurrence in path.occurrences:
            for role in projection.roles_for(occurrence.event):
                state = runs[role.name].state
                if role.spec.ignored_reason(occurrence.event, state) is None:
                    role.fire(runs[role.name], occurrence.event, "s1")
        for role in projection.roles:
            assert runs[role.name].state in role.spec.terminal, (role.name, path.describe())
        completed = all(ok for _, ok in path.choices)
        assert runs[choreography.initiator].state.value == ("completed" if completed else "failed")


def test_a_role_refuses_an_event_its_table_does_not_declare() -> None:
    """The adapter's IllegalTransition, not transitions' MachineError, for an undeclared move."""
    role = project(order_saga()).role("inventory/reserve_inventory")
    run_ = role.new_run()
    try:
        role.fire(run_, "InventoryReserved", "s1")  # its success before it acted
    except IllegalTransition as error:
        assert "inventory/reserve_inventory" in str(error)
    else:
        raise AssertionError("an undeclared move was applied")
