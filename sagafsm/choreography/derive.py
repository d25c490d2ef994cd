"""A choreography derived from an orchestration definition: the same saga, run the other way.

What each step becomes:

- every step reacts to the success event of the step before it (the first, to the start event),
  and emits ``<Step>Succeeded`` or ``<Step>Failed``; its kind, participant, action and
  compensation stay as they are;
- a **retriable** step emits no failure event: its participant retries it until it succeeds;
- a failure undoes what landed in reverse order, as the orchestrator would: the failure event of
  step *j* starts the compensation of the nearest compensatable step before *j*; each compensation
  emits ``<Step>Compensated``, which starts the compensation of the compensatable step before it;
  the last one (or the failure itself, when nothing before it is compensatable) makes the
  initiator announce ``<Saga>Failed``;
- a **read-only** step is never compensated (the chain passes over it); nothing before the
  **pivot** is compensated once it succeeded, since only steps that cannot fail come after it;
- the last step's success makes the initiator announce ``<Saga>Completed``; the initiator emits
  ``<Saga>Started``.

Each compensatable step's deadline (unless ``deadline`` is given) is the longest the orchestrator
could take for the rest of the saga (every later step's tries, timeouts and backoffs, then every
later compensation's), plus the time the events on the way may take: from the step's own success
event to the outcome event that reaches it, each event is allowed :data:`EVENT_TRIES` deliveries,
one every shortest step timeout (what the simulator's event bus does when an event or its
acknowledgement is lost). The initiator's covers the whole saga.
"""

from __future__ import annotations

import re

from ..definition import RetryPolicy, SagaDefinition, StepDefinition, StepKind
from ..errors import InvalidDefinition
from .table import (
    ChoreographyDefinition,
    ChoreographyStep,
    CompensationReaction,
    OutcomeReaction,
    check_deadline,
)

__all__ = ["EVENT_TRIES", "choreography_from"]

EVENT_TRIES = 6
"""Deliveries of one event a derived deadline allows for (the event, or its acknowledgement, may
be lost: the emitter publishes it again after the shortest step timeout)."""


def _camel(name: str) -> str:
    words = [w for w in re.split(r"[\W_]+", name) if w]
    camel = "".join(w[:1].upper() + w[1:] for w in words)
    return camel if camel.isidentifier() else f"Step{camel}"


class _Names:
    """Event names, each used once (two step names that camel-case alike get a number)."""

    def __init__(self) -> None:
        self._taken: set[str] = set()

    def __call__(self, stem: str, suffix: str) -> str:
        name, n = f"{stem}{suffix}", 2
        while name in self._taken:
            name, n = f"{stem}{n}{suffix}", n + 1
        self._taken.add(name)
        return name


def _tries(timeout: float, retry: RetryPolicy) -> float:
    attempts = retry.max_attempts
    return timeout * attempts + sum(retry.backoff(n) for n in range(1, attempts))


def _worst(step: StepDefinition) -> float:
    forward = _tries(step.timeout, step.retry)
    if not step.kind.compensable:
        return forward
    return forward + _tries(step.effective_compensation_timeout, step.compensation_retry)


def choreography_from(
    definition: SagaDefinition, *, initiator: str | None = None, deadline: float | None = None
) -> ChoreographyDefinition:
    """The choreography that runs ``definition``'s steps by events (see the module docstring).

    ``initiator`` (default: the saga's name) starts the saga and announces its outcome;
    ``deadline`` overrides every derived deadline. Raises :class:`~sagafsm.InvalidDefinition` if
    ``definition`` is not a :class:`~sagafsm.SagaDefinition`.
    """
    if not isinstance(definition, SagaDefinition):
        raise InvalidDefinition(f"choreography_from expects a SagaDefinition, got {definition!r}")
    fixed = check_deadline(deadline, f"choreography {definition.name!r}")
    names = _Names()
    saga = _camel(definition.name)
    start = names(saga, "Started")
    stems = [_camel(s.name) for s in definition.steps]
    success = [names(stem, "Succeeded") for stem in stems]
    failure = [
        None if s.kind is StepKind.RETRIABLE else names(stem, "Failed")
        for s, stem in zip(definition.steps, stems, strict=True)
    ]
    undone = [names(stem, "Compensated") for stem in stems]
    completed, failed = names(saga, "Completed"), names(saga, "Failed")
    worst = [_worst(s) for s in definition.steps]
    hop = EVENT_TRIES * min(s.timeout for s in definition.steps)
    count = len(definition.steps)

    steps = []
    for i, step in enumerate(definition.steps):
        # the later steps' worst, and every event from this step's success to its outcome
        rest = sum(worst[i + 1 :]) + (count - i + 1) * hop
        steps.append(
            ChoreographyStep(
                name=step.name,
                on=success[i - 1] if i else start,
                participant=step.participant,
                action=step.action,
                success=success[i],
                failure=failure[i],
                compensation=step.compensation,
                kind=step.kind,
                deadline=fixed if fixed is not None else rest,
            )
        )
    compensatable = [i for i, s in enumerate(definition.steps) if s.kind.compensable]
    starts: dict[int | None, list[str]] = {i: [] for i in compensatable}
    starts[None] = []  # what makes the initiator announce the failure
    for j, event in enumerate(failure):
        if event is not None:
            below = [i for i in compensatable if i < j]
            starts[below[-1] if below else None].append(event)
    for later, earlier in zip(compensatable[1:], compensatable, strict=False):
        starts[earlier].append(undone[later])
    if compensatable:
        starts[None].append(undone[compensatable[0]])
    compensations = [
        CompensationReaction(step=definition.steps[i].name, on=starts[i], emits=undone[i])
        for i in compensatable
    ]
    outcomes = [
        OutcomeReaction(event=completed, on=success[-1], completed=True),
        OutcomeReaction(event=failed, on=starts[None], completed=False),
    ]
    return ChoreographyDefinition(
        name=definition.name,
        initiator=definition.name if initiator is None else initiator,
        start=start,
        steps=steps,
        compensations=compensations,
        outcomes=outcomes,
        deadline=fixed if fixed is not None else sum(worst) + (count + 2) * hop,
    )
