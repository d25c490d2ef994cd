"""What the checkers read of a choreography: its roles' lifecycles in place of the orchestration's.

A choreographed saga is judged by the same checkers as an orchestrated one
(:class:`sagafsm.checks.StreamingChecker`), from the participants' ledgers. Only what the checks
read of the saga changes (:class:`sagafsm._saga_fold.Steps`): the initiator's outcome role
stands where the saga lifecycle stood (its final states are ``completed`` and ``failed`` too), each
step's role where the step lifecycle stood, and two choreography extensions are on: termination
by quiescence (every role that started must end in a final state) and ``effect-before-event``.
Reverse order is the order the table implies: a compensation started by another's event runs
after it.
"""

from __future__ import annotations

from .._saga_fold import Steps, _Table
from ..definition import StepKind
from .projection import Projection, RoleState, project
from .table import ChoreographyDefinition

__all__ = ["choreography_steps", "undo_order"]


def undo_order(definition: ChoreographyDefinition) -> frozenset[tuple[str, str]]:
    """(first, then) pairs: ``then``'s compensation is started, directly or down a chain, by the
    event ``first``'s compensation emits, so the table says ``first`` is undone before ``then``."""
    started_by = {c.emits: c.step for c in definition.compensations}
    direct = {
        (started_by[event], c.step)
        for c in definition.compensations
        for event in c.on
        if event in started_by
    }
    pairs = set(direct)
    while True:
        more = {(a, d) for a, b in pairs for c, d in direct if b == c} - pairs
        if not more:
            return frozenset((a, b) for a, b in pairs if a != b)
        pairs |= more


def choreography_steps(
    definition: ChoreographyDefinition, projection: Projection | None = None
) -> Steps:
    """The :class:`~sagafsm._saga_fold.Steps` the checkers read for ``definition``'s sagas."""
    projection = projection or project(definition)
    outcome, *roles = projection.roles
    pivot = next((s.name for s in definition.steps if s.kind is StepKind.PIVOT), None)
    names = tuple(s.name for s in definition.steps)
    return Steps(
        names=names,
        index={name: i for i, name in enumerate(names)},
        read_only=frozenset(s.name for s in definition.steps if s.kind is StepKind.READ_ONLY),
        pivot=pivot,
        saga_table=_Table.of(outcome.spec),
        step_tables=tuple(_Table.of(role.spec) for role in roles),
        lifecycle_names=(outcome.name, *(role.name for role in roles)),
        sent_by=(RoleState.ACTING.value, RoleState.COMPENSATING.value),
        choreography=True,
        announced=(
            frozenset(s.value for s in (RoleState.DONE, RoleState.FAILED, RoleState.FINISHED)),
            frozenset({RoleState.COMPENSATED.value}),
        ),
        undo_before=undo_order(definition),
    )
