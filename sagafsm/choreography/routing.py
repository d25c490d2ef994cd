"""Who hears which event of a choreography, and how each participant tries its own step: what
every driver of :class:`~sagafsm.choreography.node.RoleNode` wires it with (the simulator's and
the runtime's alike), read from the table and the saga definition, never restated.
"""

from __future__ import annotations

from ..definition import RetryPolicy, SagaDefinition
from .node import Tries
from .projection import Role
from .table import ChoreographyDefinition

__all__ = ["consumers_of", "tries_of"]


def consumers_of(
    definition: ChoreographyDefinition, roles: tuple[Role, ...]
) -> dict[str, tuple[Role, ...]]:
    """Each event and the roles it goes to: every role with a row or a declared ignore for it,
    but the one that emits it (a role moves on its own event as it emits it)."""
    emits: dict[str, set[str]] = {}
    for step in definition.steps:
        emits.setdefault(step.name, set()).update(step.produces)
    for compensation in definition.compensations:
        emits.setdefault(compensation.step, set()).add(compensation.emits)
    events = {definition.start} | {e for r in definition.reactions for e in r.produces}
    found: dict[str, tuple[Role, ...]] = {}
    for event in sorted(events):
        who = tuple(
            r
            for r in roles
            if (event in r.spec.triggers or any(i.trigger == event for i in r.spec.ignored))
            and event not in emits.get(r.step or "", set())
            and not (r.step is None and event == definition.start)
        )
        if who:
            found[event] = who
    return found


def tries_of(definition: ChoreographyDefinition, saga: SagaDefinition) -> dict[str, Tries]:
    """Each step's tries: its namesake's in the scenario's definition, else the defaults."""
    known = {s.name: s for s in saga.steps}
    tries = {}
    for step in definition.steps:
        same = known.get(step.name)
        if same is None:
            tries[step.name] = Tries(
                timeout=saga.steps[0].timeout, retry=RetryPolicy(), compensation_retry=RetryPolicy()
            )
        else:
            tries[step.name] = Tries(
                timeout=same.timeout, retry=same.retry, compensation_retry=same.compensation_retry
            )
    return tries
