"""A choreography as one global table: frozen values, validated when built.

Rules for this module:

- A choreographed saga has no orchestrator. It is declared once, as a table of *reactions*: on
  event E, participant P runs action A and emits a success or a failure event
  (:class:`ChoreographyStep`); on an event, the participant of an earlier step runs that step's
  compensation and emits an event once it is applied (:class:`CompensationReaction`); on an event,
  the initiator announces the saga's outcome (:class:`OutcomeReaction`). The initiator emits the
  start event.
- Each value checks its own fields when it is made (a bad name or number is an
  :class:`~sagafsm.InvalidDefinition` at once). Rules about the table as a whole (who consumes
  what, every failure path compensated, every path terminal) live in
  :mod:`sagafsm.choreography.validation`; :class:`ChoreographyDefinition` raises the first problem
  it finds, and :meth:`ChoreographyBuilder.problems` lists them all.
- Events are identifiers (``OrderCreated``): they name lifecycle triggers in the projections and
  nodes in the diagrams. Each event has exactly one emitter, so whoever receives it knows what
  happened; at run time an event also carries a saga id, its own id and the id of the event that
  caused it (:mod:`sagafsm.choreography.events`).
"""

from __future__ import annotations

import contextlib
import contextvars
import math
from collections.abc import Iterable, Iterator
from typing import Any

import attrs

from ..definition import StepKind
from ..errors import InvalidDefinition

__all__ = [
    "ChoreographyStep",
    "CompensationReaction",
    "OutcomeReaction",
    "Reaction",
    "ChoreographyDefinition",
]


def check_event(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value.isidentifier():
        raise InvalidDefinition(f"{what} must be an event name (an identifier), got {value!r}")
    return value


def check_text(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value:
        raise InvalidDefinition(f"{what} must be a non-empty string, got {value!r}")
    return value


def check_deadline(value: Any, what: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise InvalidDefinition(f"{what}: deadline must be a positive number, got {value!r}")
    if not math.isfinite(value):
        raise InvalidDefinition(f"{what}: deadline must be finite, got {value!r}")
    return float(value)


def _events(value: str | Iterable[str]) -> tuple[str, ...]:
    """One event or several, as a tuple (the checks come in ``__attrs_post_init__``)."""
    if isinstance(value, str):
        return (value,)
    if isinstance(value, Iterable):
        return tuple(value)
    return (value,)  # a wrong type: refused by the check


def _check_on(on: tuple[str, ...], where: str, *, may_be_empty: bool = False) -> None:
    if not on and not may_be_empty:
        raise InvalidDefinition(f"{where}: on= names no event")
    for event in on:
        check_event(event, f"{where}: on=")
    if len(set(on)) != len(on):
        raise InvalidDefinition(f"{where}: on= names an event twice: {on}")


@attrs.frozen(kw_only=True)
class ChoreographyStep:
    """On ``on``, ``participant`` runs ``action``: it emits ``success`` once the effect landed,
    or ``failure`` if the action definitely failed (it had no effect, so it is never compensated).

    ``kind`` follows the orchestration rules (:class:`~sagafsm.StepKind`): a compensatable step
    has a ``compensation``; read-only, pivot and retriable steps have none; a retriable step is
    retried by its participant until it succeeds, so it has no failure event. ``deadline`` is how
    long the participant of a compensatable step, once its effect landed, waits to hear the saga's
    outcome (or to be told to compensate) before it compensates on its own: with no orchestrator
    holding a timer, each waiting participant holds its own. ``concurrent`` declares that the step
    reacts to ``on`` alongside other reactions on purpose.
    """

    name: str
    on: str
    participant: str
    action: str
    success: str
    failure: str | None = None
    compensation: str | None = None
    kind: StepKind = StepKind.COMPENSATABLE
    deadline: float | None = None
    concurrent: bool = False

    def __attrs_post_init__(self) -> None:
        check_text(self.name, "step name")
        where = f"step {self.name!r}"
        check_event(self.on, f"{where}: on=")
        check_text(self.participant, f"{where}: participant")
        check_text(self.action, f"{where}: action")
        check_event(self.success, f"{where}: success=")
        if self.failure is not None:
            check_event(self.failure, f"{where}: failure=")
        if self.compensation is not None:
            check_text(self.compensation, f"{where}: compensation")
        if not isinstance(self.kind, StepKind):
            raise InvalidDefinition(f"{where}: kind must be a StepKind, got {self.kind!r}")
        object.__setattr__(self, "deadline", check_deadline(self.deadline, where))
        if not isinstance(self.concurrent, bool):
            raise InvalidDefinition(f"{where}: concurrent must be True or False")
        self._check_kind(where)

    def _check_kind(self, where: str) -> None:
        kind = self.kind.value.replace("_", "-")
        if self.kind is StepKind.COMPENSATABLE and self.compensation is None:
            raise InvalidDefinition(
                f"{where}: a compensatable step needs a compensation "
                "(declare a step with nothing to undo as read-only)"
            )
        if not self.kind.compensable and self.compensation is not None:
            raise InvalidDefinition(f"{where}: a {kind} step cannot have a compensation")
        if self.kind is StepKind.RETRIABLE and self.failure is not None:
            raise InvalidDefinition(
                f"{where}: a retriable step is retried until it succeeds, so it emits no "
                f"failure event (drop failure={self.failure!r})"
            )
        if self.kind is not StepKind.RETRIABLE and self.failure is None:
            raise InvalidDefinition(
                f"{where}: a {kind} step can fail, so it needs a failure event "
                f"(failure=...), or make it retriable if it is retried until it succeeds"
            )
        if self.success == self.failure:
            raise InvalidDefinition(f"{where}: success and failure are both {self.success!r}")

    @property
    def produces(self) -> tuple[str, ...]:
        """Every event this reaction may emit."""
        return (self.success,) if self.failure is None else (self.success, self.failure)

    @property
    def consumes(self) -> tuple[str, ...]:
        return (self.on,)

    @property
    def label(self) -> str:
        return f"step {self.name!r} ({self.participant}.{self.action})"


@attrs.frozen(kw_only=True)
class CompensationReaction:
    """On any event of ``on``, the participant of step ``step`` runs its compensation and emits
    ``emits`` once it is applied. A compensation is retried until it succeeds (or handed to an
    operator), so it has no failure event. ``on=()`` says that only the step's own deadline starts
    it (a last compensatable step, which no later failure undoes)."""

    step: str
    on: tuple[str, ...] = attrs.field(converter=_events)
    emits: str
    concurrent: bool = False

    def __attrs_post_init__(self) -> None:
        check_text(self.step, "compensate: step")
        where = f"compensation of {self.step!r}"
        _check_on(self.on, where, may_be_empty=True)  # empty: only its step's deadline starts it
        check_event(self.emits, f"{where}: emits=")
        if not isinstance(self.concurrent, bool):
            raise InvalidDefinition(f"{where}: concurrent must be True or False")

    @property
    def consumes(self) -> tuple[str, ...]:
        return self.on

    @property
    def produces(self) -> tuple[str, ...]:
        return (self.emits,)

    @property
    def label(self) -> str:
        return f"the compensation of {self.step!r}"


@attrs.frozen(kw_only=True)
class OutcomeReaction:
    """On any event of ``on``, the initiator announces the saga's outcome: ``event`` is a terminal
    event, completed (``completed=True``) or failed (every landed effect compensated)."""

    event: str
    on: tuple[str, ...] = attrs.field(converter=_events)
    completed: bool
    concurrent: bool = False

    def __attrs_post_init__(self) -> None:
        check_event(self.event, "outcome event")
        where = f"outcome {self.event!r}"
        _check_on(self.on, where)
        if not isinstance(self.completed, bool) or not isinstance(self.concurrent, bool):
            raise InvalidDefinition(f"{where}: completed and concurrent must be True or False")

    @property
    def produces(self) -> tuple[str, ...]:
        return (self.event,)

    @property
    def consumes(self) -> tuple[str, ...]:
        return self.on

    @property
    def label(self) -> str:
        return f"the outcome {self.event!r}"


Reaction = ChoreographyStep | CompensationReaction | OutcomeReaction
"""One row of the table: what happens on an event."""


def _tuple_of(values: Iterable[Any], kind: type[Any], what: str) -> tuple[Any, ...]:
    if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
        raise InvalidDefinition(f"choreography {what} must be a sequence, got {values!r}")
    result = tuple(values)
    for value in result:
        if not isinstance(value, kind):
            raise InvalidDefinition(f"choreography {what}: expected {kind.__name__}, got {value!r}")
    return result


def _steps(values: Iterable[ChoreographyStep]) -> tuple[ChoreographyStep, ...]:
    return _tuple_of(values, ChoreographyStep, "steps")


def _compensations(values: Iterable[CompensationReaction]) -> tuple[CompensationReaction, ...]:
    return _tuple_of(values, CompensationReaction, "compensations")


def _outcomes(values: Iterable[OutcomeReaction]) -> tuple[OutcomeReaction, ...]:
    return _tuple_of(values, OutcomeReaction, "outcomes")


@attrs.frozen(kw_only=True)
class ChoreographyDefinition:
    """A validated choreography: the initiator emits ``start``; the reactions do the rest.

    Built by :class:`~sagafsm.choreography.ChoreographyBuilder` or
    :func:`~sagafsm.choreography.choreography_from`. Making one runs every rule of
    :mod:`sagafsm.choreography.validation` and raises :class:`~sagafsm.InvalidDefinition` for the
    first problem; a definition that exists is a table that passed them all. ``deadline`` is the
    initiator's: how long it waits for an outcome event.
    """

    name: str
    initiator: str
    start: str
    steps: tuple[ChoreographyStep, ...] = attrs.field(converter=_steps)
    compensations: tuple[CompensationReaction, ...] = attrs.field(
        converter=_compensations, default=()
    )
    outcomes: tuple[OutcomeReaction, ...] = attrs.field(converter=_outcomes, default=())
    deadline: float | None = None

    def __attrs_post_init__(self) -> None:
        from .validation import problems  # validation reads these values; it is not one of them

        check_fields(self.name, self.initiator, self.start)
        object.__setattr__(self, "deadline", check_deadline(self.deadline, "the initiator"))
        if _UNCHECKED.get():
            return  # a broken table on purpose, for a mutant (see unchecked_definition)
        found = problems(self)
        if found:
            raise found[0]

    @property
    def reactions(self) -> Iterator[Reaction]:
        """Every row: steps, then compensations, then outcomes, each in declaration order."""
        yield from self.steps
        yield from self.compensations
        yield from self.outcomes

    @property
    def participants(self) -> tuple[str, ...]:
        """The initiator, then every step's participant, in order of first appearance."""
        return tuple(dict.fromkeys([self.initiator, *(s.participant for s in self.steps)]))

    @property
    def terminal_events(self) -> frozenset[str]:
        return frozenset(o.event for o in self.outcomes)

    def step(self, name: str) -> ChoreographyStep:
        """The step called ``name``; ``KeyError`` if there is none."""
        for step in self.steps:
            if step.name == name:
                return step
        raise KeyError(f"choreography {self.name!r} has no step {name!r}")

    def compensation_of(self, step: str) -> CompensationReaction | None:
        return next((c for c in self.compensations if c.step == step), None)


def check_fields(name: Any, initiator: Any, start: Any) -> None:
    """The choreography's own fields (the builder checks them when it is made, too)."""
    check_text(name, "choreography name")
    check_text(initiator, f"choreography {name!r}: initiator")
    check_event(start, f"choreography {name!r}: start")


_UNCHECKED: contextvars.ContextVar[bool] = contextvars.ContextVar("unchecked", default=False)


def unchecked_definition(
    name: str,
    initiator: str,
    start: str,
    steps: Iterable[ChoreographyStep],
    compensations: Iterable[CompensationReaction],
    outcomes: Iterable[OutcomeReaction],
) -> ChoreographyDefinition:
    """**For mutants only** (``sagafsm selfcheck``, ``--mutant``): a definition made *without*
    the table rules, so that a table validation refuses (the user's notes, as written) can run and
    be caught by the checkers. Each value still checks its own fields. Two compensations of one
    step (the notes release the inventory on two events) become one, on both events. Never use it
    for a saga of your own: :class:`ChoreographyBuilder` refuses such a table for good reasons."""
    merged: dict[str, CompensationReaction] = {}
    for reaction in compensations:
        known = merged.get(reaction.step)
        if known is not None:
            reaction = attrs.evolve(known, on=(*known.on, *reaction.on))
        merged[reaction.step] = reaction
    with _unchecked():
        return ChoreographyDefinition(
            name=name,
            initiator=initiator,
            start=start,
            steps=tuple(steps),
            compensations=tuple(merged.values()),
            outcomes=tuple(outcomes),
        )


@contextlib.contextmanager
def _unchecked() -> Iterator[None]:
    token = _UNCHECKED.set(True)
    try:
        yield
    finally:
        _UNCHECKED.reset(token)
