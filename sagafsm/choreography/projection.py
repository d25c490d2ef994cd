"""Each participant's part of a choreography, projected from the table as explicit lifecycles.

Rules for this module:

- A *role* is one participant's view of one saga for one of its steps (a participant with two
  steps plays two roles), plus the initiator's view of the saga's outcome. Each role is a
  :class:`~sagafsm.LifecycleSpec` whose triggers are the table's events: the event that starts the
  step, the success or failure event the participant itself emits, the events that start its
  compensation, the outcome events. ``"deadline passed"`` is the one trigger that is not an event
  (event names are identifiers, so it cannot clash with one).
- Every row comes from a reaction of the table; nothing here names an event. Redelivered or late
  events are declared ignored, with their reason, as the orchestration lifecycles declare late
  replies; anything else is an :class:`~sagafsm.IllegalTransition`.
- Machines are built once per definition (:func:`project` is cached), through the one adapter that
  imports ``transitions`` (:class:`sagafsm._machine.LifecycleMachine`): a saga's role is a plain
  object with a ``state`` (:class:`RoleRun`), never a ``transitions`` object of its own.
"""

from __future__ import annotations

import enum
import functools
from collections.abc import Iterable, Mapping

import attrs

from .._machine import LifecycleMachine
from ..definition import StepKind
from ..lifecycle import IgnoredTrigger, LifecycleSpec, Transition
from .table import ChoreographyDefinition, ChoreographyStep

__all__ = [
    "DEADLINE_PASSED",
    "RoleState",
    "OutcomeState",
    "Role",
    "RoleRun",
    "Projection",
    "project",
]

DEADLINE_PASSED = "deadline passed"
"""The trigger a role fires when its deadline passes in a state that waits on one."""


class RoleState(enum.Enum):
    """Where one participant is, for one of its steps, in one saga."""

    WAITING = "waiting"
    """Has not seen the event that starts its step (and may never: the saga may end before)."""
    ACTING = "acting"
    """Running its action (a retriable step retries here until it succeeds)."""
    DONE = "done"
    """Its effect landed and it emitted its success event; a compensatable step waits here, on
    its deadline, for the outcome or for the event that starts its compensation."""
    FAILED = "failed"
    """The action definitely failed (no effect) and it emitted its failure event."""
    COMPENSATING = "compensating"
    """Running its compensation (a no-op, leaving a tombstone, if its action never ran)."""
    COMPENSATED = "compensated"
    """Compensation applied; it emitted the compensation's event."""
    FINISHED = "finished"
    """Heard the saga's outcome with its effect in place: nothing more to do."""
    NOT_NEEDED = "not_needed"
    """The saga ended before its step started."""


class OutcomeState(enum.Enum):
    """The initiator's view of one saga: the names of :class:`~sagafsm.SagaState`'s first
    states and its two plain outcomes."""

    STARTED = "started"
    PENDING = "pending"
    """Emitted the start event; waiting for the event that decides the outcome."""
    COMPLETED = "completed"
    FAILED = "failed"


_R = RoleState
_ROLE_TERMINAL = frozenset({_R.FAILED, _R.COMPENSATED, _R.FINISHED, _R.NOT_NEEDED})
_ACTED = (_R.ACTING, _R.DONE, _R.FAILED, _R.FINISHED)


@attrs.frozen(kw_only=True)
class Role:
    """One role's lifecycle, and the participant that plays it."""

    participant: str
    step: str | None
    """The step, or None for the initiator's outcome role."""
    spec: LifecycleSpec[enum.Enum]
    deadline: float | None
    """How long the role may stay done before ``deadline passed`` (waiting for the outcome or
    for the event that starts its compensation)."""
    deadline_states: frozenset[enum.Enum]
    """The states with a ``deadline passed`` row: the role holds a timer while in one (in
    ``acting``, the timer is its action's tries: when they run out with no answer, the action may
    have landed, and the role compensates it)."""
    machine: LifecycleMachine = attrs.field(eq=False, repr=False)

    @property
    def name(self) -> str:
        return self.spec.name

    def fire(self, run: RoleRun, trigger: str, saga_id: str) -> None:
        """Move ``run`` along ``trigger`` (an event name, or :data:`DEADLINE_PASSED`), or raise
        :class:`~sagafsm.IllegalTransition`. Does not check ``ignored``: ask the spec first."""
        self.machine.fire(run, trigger, f"saga {saga_id!r}, {self.name}")

    def new_run(self) -> RoleRun:
        return RoleRun(self.spec.initial)


@attrs.define(eq=False)
class RoleRun:
    """One saga's instance of a role: just its state (identity equality, as the adapter needs)."""

    state: enum.Enum


@attrs.frozen(kw_only=True)
class Projection:
    """Every role of a choreography, the initiator's first."""

    definition: ChoreographyDefinition
    roles: tuple[Role, ...]

    def role(self, name: str) -> Role:
        """The role called ``name`` (``"orders"``, ``"inventory/reserve_inventory"``)."""
        for role in self.roles:
            if role.name == name:
                return role
        known = ", ".join(r.name for r in self.roles)
        raise KeyError(f"no role {name!r} (roles: {known})")

    def of(self, participant: str) -> tuple[Role, ...]:
        """The roles ``participant`` plays, in table order."""
        return tuple(r for r in self.roles if r.participant == participant)

    def roles_for(self, event: str) -> tuple[Role, ...]:
        """The roles with a row or a declared ignore for ``event``: who must receive it."""
        return tuple(
            r
            for r in self.roles
            if event in r.spec.triggers or any(i.trigger == event for i in r.spec.ignored)
        )


def _rows(trigger: str, sources: Iterable[enum.Enum], dest: enum.Enum) -> list[Transition]:
    return [Transition(trigger, s, dest) for s in sources]


def _ignore(
    rows: list[Transition], trigger: str, sources: Iterable[enum.Enum], reason: str
) -> list[IgnoredTrigger]:
    declared = {(t.trigger, t.source) for t in rows}
    return [IgnoredTrigger(trigger, s, reason) for s in sources if (trigger, s) not in declared]


def _step_role(definition: ChoreographyDefinition, step: ChoreographyStep) -> Role:
    compensation = definition.compensation_of(step.name)
    undo_on = compensation.on if compensation is not None else ()
    completed = [o.event for o in definition.outcomes if o.completed]
    failed = [o.event for o in definition.outcomes if not o.completed]
    outcomes = completed + failed
    rows = [Transition(step.on, _R.WAITING, _R.ACTING)]
    if step.kind is StepKind.RETRIABLE:
        rows.append(Transition("retry", _R.ACTING, _R.ACTING))
    rows.append(Transition(step.success, _R.ACTING, _R.DONE))
    if step.failure is not None:
        rows.append(Transition(step.failure, _R.ACTING, _R.FAILED))
    deadline_states: frozenset[enum.Enum] = frozenset()
    if compensation is not None:
        for event in undo_on:
            # a compensation that overtakes its action runs as a no-op and leaves a tombstone
            rows += _rows(event, (_R.DONE, _R.WAITING), _R.COMPENSATING)
        rows.append(Transition(DEADLINE_PASSED, _R.DONE, _R.COMPENSATING))
        # its action's tries ran out with no answer: it may have landed, so it is undone
        rows.append(Transition(DEADLINE_PASSED, _R.ACTING, _R.COMPENSATING))
        # the saga failed while its effect stood (a deadline elsewhere started the undoing)
        rows += [Transition(event, _R.DONE, _R.COMPENSATING) for event in failed]
        rows.append(Transition(compensation.emits, _R.COMPENSATING, _R.COMPENSATED))
        deadline_states = frozenset({_R.DONE, _R.ACTING})
    # a read-only step finishes whatever the outcome; a landed effect that can be undone, the
    # pivot and retriable steps only by completion (after them, the saga cannot fail)
    ends = outcomes if step.kind is StepKind.READ_ONLY else completed
    rows += [Transition(event, _R.DONE, _R.FINISHED) for event in ends]
    rows += [Transition(event, _R.WAITING, _R.NOT_NEEDED) for event in failed]
    ignored = _ignore(rows, step.on, _ACTED, "duplicate: it already acted on this event")
    ignored += _ignore(
        rows,
        step.on,
        (_R.COMPENSATING, _R.COMPENSATED, _R.NOT_NEEDED),
        "late: compensated or ended first (a tombstone if it never acted), so it does nothing",
    )
    for event in undo_on:
        ignored += _ignore(
            rows,
            event,
            (_R.COMPENSATING, _R.COMPENSATED),
            "duplicate: the compensation already ran",
        )
    for event in outcomes:
        ignored += _ignore(rows, event, _ROLE_TERMINAL, "the role already ended")
    for event in failed:
        ignored += _ignore(
            rows,
            event,
            (_R.ACTING, _R.COMPENSATING),
            "it finishes what it is doing first (what lands is undone by its own deadline)",
        )
    used = {t.dest for t in rows}
    spec: LifecycleSpec[enum.Enum] = LifecycleSpec(
        name=f"{step.participant}/{step.name}",
        states=RoleState,
        initial=_R.WAITING,
        terminal=frozenset(s for s in _ROLE_TERMINAL if s in used),
        transitions=rows,
        ignored=ignored,
        landed=frozenset({_R.DONE}) if compensation is not None else frozenset(),
    )
    deadline = step.deadline if compensation is not None else None
    return Role(
        participant=step.participant,
        step=step.name,
        spec=spec,
        deadline=deadline,
        deadline_states=deadline_states,
        machine=LifecycleMachine(spec),
    )


def _outcome_role(definition: ChoreographyDefinition) -> Role:
    _O = OutcomeState
    rows = [Transition(definition.start, _O.STARTED, _O.PENDING)]
    for outcome in definition.outcomes:
        rows += [
            Transition(event, _O.PENDING, _O.COMPLETED if outcome.completed else _O.FAILED)
            for event in outcome.on
        ]
    final = (_O.COMPLETED, _O.FAILED)
    ignored = _ignore(rows, definition.start, final, "duplicate: the saga already started")
    for outcome in definition.outcomes:
        for event in outcome.on:
            ignored += _ignore(rows, event, final, "late: the outcome was already announced")
    spec: LifecycleSpec[enum.Enum] = LifecycleSpec(
        name=definition.initiator,
        states=OutcomeState,
        initial=_O.STARTED,
        terminal=frozenset(final),
        transitions=rows,
        ignored=ignored,
    )
    return Role(
        participant=definition.initiator,
        step=None,
        spec=spec,
        # what the initiator does when its deadline passes comes with the fault semantics
        deadline=definition.deadline,
        deadline_states=frozenset(),
        machine=LifecycleMachine(spec),
    )


@functools.lru_cache(maxsize=128)
def project(definition: ChoreographyDefinition) -> Projection:
    """Every role of ``definition``, machines included, built once per definition."""
    roles = [_outcome_role(definition), *(_step_role(definition, s) for s in definition.steps)]
    return Projection(definition=definition, roles=tuple(roles))


def reachable_spec(role: Role) -> LifecycleSpec[enum.Enum]:
    """``role.spec`` over only the states its rows reach (a role uses some of
    :class:`RoleState`'s): what its diagrams draw, so that no state stands unconnected."""
    spec = role.spec
    kept = [s for s in spec.states if s in spec.reachable(spec.initial)]
    states = enum.Enum(  # type: ignore[misc]  # a functional Enum named after the role
        f"{spec.states.__name__}Of{len(kept)}", [(s.name, s.value) for s in kept]
    )
    same: Mapping[enum.Enum, enum.Enum] = {s: states[s.name] for s in kept}
    return LifecycleSpec(
        name=spec.name,
        states=states,
        initial=same[spec.initial],
        terminal=frozenset(same[s] for s in spec.terminal if s in same),
        transitions=[Transition(t.trigger, same[t.source], same[t.dest]) for t in spec.transitions],
        ignored=[
            IgnoredTrigger(i.trigger, same[i.source], i.reason)
            for i in spec.ignored
            if i.source in same
        ],
        landed=frozenset(same[s] for s in spec.landed if s in same),
    )
