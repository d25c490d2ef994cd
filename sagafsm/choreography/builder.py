"""Builds a :class:`~sagafsm.choreography.ChoreographyDefinition` reaction by reaction."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import attrs

from ..definition import StepKind
from ..errors import InvalidDefinition
from .table import (
    ChoreographyDefinition,
    ChoreographyStep,
    CompensationReaction,
    OutcomeReaction,
    check_deadline,
    check_fields,
)
from .validation import problems

__all__ = ["ChoreographyBuilder"]


@attrs.frozen(kw_only=True)
class _Draft:
    """The table so far, unvalidated: what :func:`problems` reads."""

    name: str
    initiator: str
    start: str
    steps: tuple[ChoreographyStep, ...]
    compensations: tuple[CompensationReaction, ...]
    outcomes: tuple[OutcomeReaction, ...]


class ChoreographyBuilder:
    """Builds a choreography as one table: on this event, this participant does this.

    ```pycon
    >>> order = (
    ...     ChoreographyBuilder("order", initiator="orders", start="OrderPlaced", deadline=5.0)
    ...     .step("reserve", on="OrderPlaced", participant="inventory", action="reserve",
    ...           compensation="release", success="Reserved", failure="OutOfStock")
    ...     .pivot("charge", on="Reserved", participant="payment", action="charge",
    ...            success="Charged", failure="Declined")
    ...     .compensate("reserve", on="Declined", emits="Released")
    ...     .completes("OrderDone", on="Charged")
    ...     .fails("OrderFailed", on=("OutOfStock", "Released"))
    ...     .build()
    ... )
    >>> [step.name for step in order.steps]
    ['reserve', 'charge']
    ```

    A reaction with a bad field raises :class:`~sagafsm.InvalidDefinition` at once; rules about
    the whole table (who consumes what, every failure compensated...) are checked by
    :meth:`build`, which raises the first problem, and listed by :meth:`problems`. ``deadline`` is
    the default of every step (how long a participant whose effect landed waits for the outcome)
    and the initiator's own.
    """

    def __init__(
        self, name: str, *, initiator: str, start: str, deadline: float | None = None
    ) -> None:
        check_fields(name, initiator, start)
        self._name = name
        self._initiator = initiator
        self._start = start
        self._deadline = check_deadline(deadline, f"choreography {name!r}")
        self._steps: list[ChoreographyStep] = []
        self._compensations: list[CompensationReaction] = []
        self._outcomes: list[OutcomeReaction] = []

    def step(
        self,
        name: str,
        *,
        on: str,
        participant: str,
        action: str,
        success: str,
        failure: str | None = None,
        compensation: str | None = None,
        kind: StepKind = StepKind.COMPENSATABLE,
        deadline: float | None = None,
        concurrent: bool = False,
    ) -> ChoreographyBuilder:
        """On ``on``, ``participant`` runs ``action`` and emits ``success`` or ``failure``
        (compensatable unless ``kind`` says otherwise)."""
        self._steps.append(
            ChoreographyStep(
                name=name,
                on=on,
                participant=participant,
                action=action,
                success=success,
                failure=failure,
                compensation=compensation,
                kind=kind,
                deadline=self._deadline if deadline is None else deadline,
                concurrent=concurrent,
            )
        )
        return self

    def read_only(self, name: str, *, failure: str, **fields: Any) -> ChoreographyBuilder:
        """A verification: nothing to undo, so never compensated."""
        return self.step(name, failure=failure, kind=StepKind.READ_ONLY, **fields)

    def pivot(self, name: str, *, failure: str, **fields: Any) -> ChoreographyBuilder:
        """The step after which the saga can only go forward."""
        return self.step(name, failure=failure, kind=StepKind.PIVOT, **fields)

    def retriable(self, name: str, **fields: Any) -> ChoreographyBuilder:
        """After the pivot; its participant retries it until it succeeds (no failure event)."""
        return self.step(name, kind=StepKind.RETRIABLE, **fields)

    def compensate(
        self, step: str, *, on: str | Iterable[str], emits: str, concurrent: bool = False
    ) -> ChoreographyBuilder:
        """On any event of ``on``, step ``step``'s participant runs its compensation and then
        emits ``emits``."""
        self._compensations.append(
            CompensationReaction(step=step, on=on, emits=emits, concurrent=concurrent)
        )
        return self

    def completes(
        self, event: str, *, on: str | Iterable[str], concurrent: bool = False
    ) -> ChoreographyBuilder:
        """On ``on``, the initiator announces that the saga completed, with ``event``."""
        return self._outcome(event, on, completed=True, concurrent=concurrent)

    def fails(
        self, event: str, *, on: str | Iterable[str], concurrent: bool = False
    ) -> ChoreographyBuilder:
        """On ``on``, the initiator announces that the saga failed (everything undone)."""
        return self._outcome(event, on, completed=False, concurrent=concurrent)

    def problems(self) -> list[InvalidDefinition]:
        """Every problem of the table so far, one error each (empty: :meth:`build` succeeds)."""
        return problems(self._draft())

    def build(self) -> ChoreographyDefinition:
        """The validated definition; :class:`~sagafsm.InvalidDefinition` for the first problem."""
        draft = self._draft()
        return ChoreographyDefinition(
            name=draft.name,
            initiator=draft.initiator,
            start=draft.start,
            steps=draft.steps,
            compensations=draft.compensations,
            outcomes=draft.outcomes,
            deadline=self._deadline,
        )

    def _outcome(
        self, event: str, on: str | Iterable[str], *, completed: bool, concurrent: bool
    ) -> ChoreographyBuilder:
        self._outcomes.append(
            OutcomeReaction(event=event, on=on, completed=completed, concurrent=concurrent)
        )
        return self

    def _draft(self) -> _Draft:
        return _Draft(
            name=self._name,
            initiator=self._initiator,
            start=self._start,
            steps=tuple(self._steps),
            compensations=tuple(self._compensations),
            outcomes=tuple(self._outcomes),
        )
