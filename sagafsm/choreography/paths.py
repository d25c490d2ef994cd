"""Every fault-free run of a choreography table, as a causal tree of events.

A *path* is what happens in one saga when nothing is lost: the initiator emits the start event;
every reaction to an event fires once per occurrence of it; a step either succeeds or fails (each
choice forks the path; a retriable step only succeeds). Each occurrence records the occurrence that
caused it, so "X happens before Y" means X is on Y's causal chain, the only order a choreography
can promise (two reactions to one event run in any order).

The validation (:mod:`sagafsm.choreography.validation`) judges every path; the tests drive the
projected lifecycles along them. Exploration needs a table without event loops (the validation
refuses those first) and stops at :data:`MAX_PATHS`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

import attrs

from .table import ChoreographyStep, CompensationReaction, OutcomeReaction, Reaction

__all__ = ["Occurrence", "Path", "TableLike", "TooManyPaths", "consumers_of", "explore"]

MAX_PATHS = 4096
MAX_OCCURRENCES = 4096


class TableLike(Protocol):
    """What exploration and validation read: a definition, or a builder's draft of one."""

    @property
    def name(self) -> str: ...
    @property
    def initiator(self) -> str: ...
    @property
    def start(self) -> str: ...
    @property
    def steps(self) -> Sequence[ChoreographyStep]: ...
    @property
    def compensations(self) -> Sequence[CompensationReaction]: ...
    @property
    def outcomes(self) -> Sequence[OutcomeReaction]: ...


class TooManyPaths(Exception):
    """The table has more paths than :data:`MAX_PATHS` (the validation reports it as a problem)."""


@attrs.frozen
class Occurrence:
    event: str
    cause: int | None
    """Index of the occurrence this one reacts to (None for the start event)."""
    by: Reaction | None
    """The reaction that emitted it (None: the initiator's start event)."""
    succeeded: bool = True
    """For a step's event: whether it is the success event."""


@attrs.frozen
class Path:
    occurrences: tuple[Occurrence, ...]
    choices: tuple[tuple[str, bool], ...]
    """Each step that ran, in the order it ran, and whether it succeeded."""

    def chain(self, index: int) -> list[int]:
        """``index`` and every occurrence on its causal chain back to the start."""
        found = []
        at: int | None = index
        while at is not None:
            found.append(at)
            at = self.occurrences[at].cause
        return found

    def before(self, earlier: int, later: int) -> bool:
        """Whether occurrence ``earlier`` is on the causal chain of ``later`` (or is it)."""
        return earlier in self.chain(later)

    def emitted_by(self, kind: type[Reaction]) -> list[tuple[int, Occurrence]]:
        return [(i, o) for i, o in enumerate(self.occurrences) if isinstance(o.by, kind)]

    def describe(self) -> str:
        """``"when reserve succeeds and charge fails"``: the choices that make this path."""
        if not self.choices:
            return "on every path"
        said = [f"{name} {'succeeds' if ok else 'fails'}" for name, ok in self.choices]
        return "when " + (said[0] if len(said) == 1 else ", ".join(said[:-1]) + " and " + said[-1])


def consumers_of(table: TableLike) -> dict[str, list[Reaction]]:
    """Each event, and the reactions to it in declaration order."""
    found: dict[str, list[Reaction]] = {}
    reactions: list[Reaction] = [*table.steps, *table.compensations, *table.outcomes]
    for reaction in reactions:
        for event in reaction.consumes:
            found.setdefault(event, []).append(reaction)
    return found


_Run = tuple[tuple[Occurrence, ...], tuple[int, ...], tuple[tuple[str, bool], ...]]


def _react(run: _Run, cause: int, reaction: Reaction) -> list[_Run]:
    occurrences, queue, choices = run
    at = len(occurrences)
    if isinstance(reaction, ChoreographyStep):
        outcomes = [(reaction.success, True)]
        if reaction.failure is not None:
            outcomes.append((reaction.failure, False))
        return [
            (
                (*occurrences, Occurrence(event, cause, reaction, ok)),
                (*queue, at),
                (*choices, (reaction.name, ok)),
            )
            for event, ok in outcomes
        ]
    (emitted,) = reaction.produces
    return [((*occurrences, Occurrence(emitted, cause, reaction)), (*queue, at), choices)]


def explore(table: TableLike, consumers: Mapping[str, Sequence[Reaction]]) -> list[Path]:
    """Every path of ``table``, depth first, successes before failures.

    Raises :class:`TooManyPaths` past :data:`MAX_PATHS` paths or :data:`MAX_OCCURRENCES` events
    on one path (which only an event loop, refused before exploring, could otherwise make).
    """
    paths: list[Path] = []
    pending: list[_Run] = [((Occurrence(table.start, None, None),), (0,), ())]
    while pending:
        run = pending.pop()
        while run[1]:
            occurrences, queue, choices = run
            cause, rest = queue[0], queue[1:]
            forks: list[_Run] = [(occurrences, rest, choices)]
            for reaction in consumers.get(occurrences[cause].event, ()):
                forks = [fork for before in forks for fork in _react(before, cause, reaction)]
            run = forks[0]
            pending.extend(reversed(forks[1:]))
            if len(run[0]) > MAX_OCCURRENCES or len(paths) + len(pending) > MAX_PATHS:
                raise TooManyPaths(f"more than {MAX_PATHS} paths or {MAX_OCCURRENCES} events")
        paths.append(Path(run[0], run[2]))
    return paths
