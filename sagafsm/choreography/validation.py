"""The rules a choreography table must obey, each problem one :class:`~sagafsm.InvalidDefinition`.

Rules for this module:

- :func:`problems` returns every problem of a table, in a stable order, each a message that names
  the event, step or participant at fault and says how to fix it. It never raises for a bad table.
  :class:`~sagafsm.choreography.ChoreographyDefinition` raises the first; the builder's
  :meth:`~sagafsm.choreography.ChoreographyBuilder.problems` shows them all.
- Static rules read the table: names, who emits and who consumes each event, what a compensation
  undoes, deadlines, fan-out. Path rules read every fault-free run of it
  (:mod:`sagafsm.choreography.paths`): order is causal order, so "compensated before the saga
  fails" means the compensation's event is on the causal chain of the failure event.
- What an accepted table guarantees, on every fault-free path: exactly one outcome event; a
  completion only after every step succeeded, with nothing failed or compensated; a failure only
  after every landed compensatable step was compensated, each once and only after it landed,
  nothing after the pivot; every emitted event consumed; no event with two reactions unless each
  says ``concurrent=True``; every compensatable step with a deadline and a compensation reaction.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

from ..definition import StepKind
from ..errors import InvalidDefinition
from .paths import Path, TableLike, TooManyPaths, consumers_of, explore
from .table import ChoreographyStep, CompensationReaction, OutcomeReaction, Reaction

__all__ = ["problems"]


def problems(table: TableLike) -> list[InvalidDefinition]:
    """Every problem of ``table``, one error each, in a stable order (empty: the table is valid)."""
    where = f"choreography {table.name!r}"
    found = list(dict.fromkeys(_static(table)))
    consumers = consumers_of(table)
    loop = _loop(table, consumers)
    if loop:
        found.append(
            f"events loop ({' -> '.join(loop)}): a saga that follows the loop never reaches an "
            "outcome event; break it (compensations and outcomes react to events further along)"
        )
    else:
        try:
            paths = explore(table, consumers)
        except TooManyPaths as error:
            found.append(f"too many paths to check ({error}): split the choreography")
        else:
            found += dict.fromkeys(_on_paths(table, paths, consumers))
    return [InvalidDefinition(f"{where}: {message}") for message in found]


def _emitters(table: TableLike) -> dict[str, list[str]]:
    """Each event, and who emits it, as the messages name them."""
    return {
        event: [f"the initiator {table.initiator!r}"] * (event == table.start)
        + [r.label for r in rows]
        for event, rows in _emitters_of(table).items()
    }


def _emitters_of(table: TableLike) -> dict[str, list[Reaction]]:
    """Each event, and the rows that emit it (the start event: none, the initiator does)."""
    found: dict[str, list[Reaction]] = {table.start: []}
    for reaction in _reactions(table):
        for event in reaction.produces:
            found.setdefault(event, []).append(reaction)
    return found


def _reactions(table: TableLike) -> list[Reaction]:
    return [*table.steps, *table.compensations, *table.outcomes]


def _static(table: TableLike) -> Iterator[str]:
    names = [s.name for s in table.steps]
    for name in dict.fromkeys(n for n in names if names.count(n) > 1):
        yield f"two steps are called {name!r}: give each step its own name"
    if not table.steps:
        yield "has no steps: add one with .step(...)"
    pivots = [s.name for s in table.steps if s.kind is StepKind.PIVOT]
    if len(pivots) > 1:
        yield f"more than one pivot step ({' and '.join(map(repr, pivots))}): keep one"
    emitters = _emitters(table)
    for event, by in emitters.items():
        by = list(dict.fromkeys(by))  # a step compensated twice is reported once, below
        if len(by) > 1:
            yield (
                f"event {event!r} is emitted by both {by[0]} and {by[1]}: each event needs one "
                "emitter, so whoever receives it knows what happened; rename one"
            )
    yield from _compensation_rules(table)
    consumers = consumers_of(table)
    terminal = {o.event for o in table.outcomes}
    for event, reactions in consumers.items():
        if event not in emitters:
            yield (
                f"{reactions[0].label} reacts to event {event!r}, which nothing emits "
                f"(the events: {', '.join(sorted(emitters))}); react to one of them"
            )
        if event in terminal:
            yield (
                f"{reactions[0].label} reacts to the outcome event {event!r}: an outcome ends the "
                "saga, so nothing may react to it; react to the event before it"
            )
        declared = [r for r in reactions if not r.concurrent]
        if len(reactions) > 1 and declared:
            yield (
                f"event {event!r} starts both {reactions[0].label} and {reactions[1].label}, in no "
                "order: chain them (the second reacts to the first's event), or declare "
                "concurrent=True on each if they are meant to run side by side"
            )
    for step in table.steps:
        if step.kind is StepKind.COMPENSATABLE and step.deadline is None:
            yield (
                f"{step.label} has no deadline: once its effect lands, participant "
                f"{step.participant!r} waits for the outcome and, if an event is lost, waits "
                "forever; give deadline=SECONDS to the step or to the builder"
            )
    if not any(o.completed for o in table.outcomes):
        yield "never completes: declare the outcome with .completes(EVENT, on=LAST_SUCCESS)"


def _compensation_rules(table: TableLike) -> Iterator[str]:
    steps = {s.name: s for s in table.steps}
    seen: set[str] = set()
    for reaction in table.compensations:
        step = steps.get(reaction.step)
        if step is None:
            yield (
                f"{reaction.label} names no step of the choreography "
                f"(its steps: {', '.join(steps) or 'none'})"
            )
        elif not step.kind.compensable:
            yield (
                f"{reaction.label}: {step.label} is {step.kind.value.replace('_', '-')}, so it "
                "has nothing to undo; drop this .compensate(...)"
            )
        if reaction.step in seen:
            yield (
                f"step {reaction.step!r} has two compensation reactions: declare one, with every "
                "event that starts it in on=(...)"
            )
        seen.add(reaction.step)
    for step in table.steps:
        if step.kind is StepKind.COMPENSATABLE and step.name not in seen:
            yield (
                f"{step.label} is compensatable but no reaction undoes it: add "
                f".compensate({step.name!r}, on=..., emits=...) (on=() if only its deadline "
                "starts it)"
            )


def _loop(table: TableLike, consumers: Mapping[str, Sequence[Reaction]]) -> list[str] | None:
    """A cycle of events (each causing the next through some reaction), if there is one."""

    def following(event: str) -> list[str]:
        return [e for reaction in consumers.get(event, ()) for e in reaction.produces]

    done: set[str] = set()
    for root in consumers:
        stack: list[tuple[str, Iterator[str]]] = [(root, iter(following(root)))]
        on_stack = [root]
        while stack:
            event, rest = stack[-1]
            nxt = next(rest, None)
            if nxt is None:
                stack.pop()
                on_stack.pop()
                done.add(event)
            elif nxt in on_stack:
                return [*on_stack[on_stack.index(nxt) :], nxt]
            elif nxt not in done:
                stack.append((nxt, iter(following(nxt))))
                on_stack.append(nxt)
    return None


def _on_paths(
    table: TableLike, paths: list[Path], consumers: Mapping[str, Sequence[Reaction]]
) -> Iterator[str]:
    terminal = {o.event for o in table.outcomes}
    ran: set[str] = set()
    stranded: dict[str, str] = {}
    for path in paths:
        for occurrence in path.occurrences:
            if occurrence.by is not None:
                ran.add(occurrence.by.label)
            event = occurrence.event
            if event not in terminal and event not in consumers:
                stranded.setdefault(event, path.describe())
        yield from _one_path(path, [s.name for s in table.steps])
    for event, by in _emitters(table).items():
        if event in terminal or event in consumers:
            continue
        how = stranded.get(event)
        if how is None:  # on no fault-free path: a deadline-only compensation's, say
            yield (
                f"event {event!r} (emitted by {by[0]}) is consumed by nothing, so a saga that "
                f"emits it stops there with no outcome event: react to {event!r}"
            )
        else:
            yield (
                f"event {event!r} is consumed by nothing, so, {how}, the saga stops there with "
                f"no outcome event: react to {event!r} (a compensation, or .fails(...) once "
                "everything that landed is undone), or stop emitting it"
            )
    emitters = _emitters_of(table)
    for reaction in _reactions(table):
        if isinstance(reaction, CompensationReaction) or reaction.label in ran:
            continue
        # a row reacting to an event nothing emits, or that only rows which never run emit, is
        # reported at its root: what is left reacts only to deadline-only compensations' events
        unseen = [
            e
            for e in reaction.consumes
            if e not in emitters
            or any(
                not isinstance(r, CompensationReaction) and r.label not in ran for r in emitters[e]
            )
        ]
        if not unseen:
            yield (
                f"{reaction.label} never runs on a fault-free path: it reacts only to "
                f"{', '.join(map(repr, reaction.consumes))}, which only compensations that no "
                "event starts emit; react to an event that happens"
            )


def _one_path(path: Path, step_names: list[str]) -> Iterator[str]:
    how = path.describe()
    steps_run = [(i, o) for i, o in path.emitted_by(ChoreographyStep)]
    names = [o.by.name for _, o in steps_run if isinstance(o.by, ChoreographyStep)]
    for name in dict.fromkeys(n for n in names if names.count(n) > 1):
        yield f"step {name!r} runs twice {how}: two events that start it happen on one path"
    landed = {
        o.by.name: (i, o.by)
        for i, o in steps_run
        if o.succeeded and isinstance(o.by, ChoreographyStep)
    }
    pivot = next(((i, s) for i, s in landed.values() if s.kind is StepKind.PIVOT), None)
    compensated: dict[str, int] = {}
    for i, occurrence in path.emitted_by(CompensationReaction):
        reaction = occurrence.by
        assert isinstance(reaction, CompensationReaction)
        if reaction.step in compensated:
            yield f"{reaction.label} runs twice {how}: two events that start it happen"
        compensated[reaction.step] = i
        if reaction.step not in landed or not path.before(landed[reaction.step][0], i):
            yield (
                f"{reaction.label} reacts to {path.occurrences[occurrence.cause or 0].event!r}, "
                f"which happens ({how}) though step {reaction.step!r} did not land before it: "
                "compensate a step only on events that follow its success event"
            )
        if pivot is not None and path.before(pivot[0], i):
            yield (
                f"{reaction.label} runs {how}, after the pivot {pivot[1].name!r} succeeded: "
                "nothing before the pivot is undone once it succeeds"
            )
    for earlier, later in _pairs(path, landed, compensated):
        if not path.before(compensated[later], compensated[earlier]):
            yield (
                f"{how}, {earlier!r} is not compensated after {later!r}, which landed after it: "
                f"undo in reverse order (the compensation of {later!r} first, then that of "
                f"{earlier!r}, reacting to the event the first emits)"
            )
    outcomes = path.emitted_by(OutcomeReaction)
    if len(outcomes) > 1:
        both = " and ".join(repr(o.event) for _, o in outcomes)
        yield f"{how}, the saga announces two outcomes ({both}): chain them so only one happens"
    for i, occurrence in outcomes:
        assert isinstance(occurrence.by, OutcomeReaction)
        if occurrence.by.completed:
            yield from _completion(path, i, occurrence.event, compensated, step_names)
        else:
            yield from _failure(path, i, occurrence.event, landed, compensated)


def _completion(
    path: Path, at: int, event: str, compensated: Mapping[str, int], step_names: list[str]
) -> Iterator[str]:
    how = path.describe()
    failed = [name for name, ok in path.choices if not ok]
    if failed or compensated:
        said = [f"{', '.join(map(repr, failed))} failed"] if failed else []
        if compensated:
            said.append(f"{', '.join(map(repr, compensated))} compensated")
        yield (
            f"{event!r} (completed) is announced {how}, though {' and '.join(said)}: announce "
            "the completion only on the last step's success event"
        )
        return
    chain = set(path.chain(at))
    succeeded = {
        o.by.name
        for i, o in path.emitted_by(ChoreographyStep)
        if i in chain and o.succeeded and isinstance(o.by, ChoreographyStep)
    }
    missing = [name for name in step_names if name not in succeeded]
    if missing:
        yield (
            f"{event!r} (completed) is announced {how} before step {missing[0]!r} succeeded: "
            "announce it on the last step's success event"
        )


def _failure(
    path: Path,
    at: int,
    event: str,
    landed: Mapping[str, tuple[int, ChoreographyStep]],
    compensated: Mapping[str, int],
) -> Iterator[str]:
    how = path.describe()
    if all(ok for _, ok in path.choices):
        yield f"{event!r} (failed) is announced {how}, though no step failed"
    for name, (_, step) in landed.items():
        if step.kind is StepKind.COMPENSATABLE:
            undone = compensated.get(name)
            if undone is None or not path.before(undone, at):
                yield (
                    f"{how}, {event!r} (failed) is announced while step {name!r} (landed) is "
                    f"not compensated before it: compensate {name!r} on this path, and announce "
                    f"{event!r} on the event the last compensation emits"
                )
        elif step.kind is StepKind.PIVOT:
            yield (
                f"{how}, the saga fails after the pivot {name!r} succeeded: a step after the "
                "pivot must not fail (make it retriable)"
            )
        elif step.kind is StepKind.RETRIABLE:
            yield (
                f"{how}, the saga fails after retriable step {name!r} landed, which nothing can "
                "undo: put retriable steps after the pivot"
            )


def _pairs(
    path: Path, landed: Mapping[str, tuple[int, ChoreographyStep]], compensated: Mapping[str, int]
) -> Iterator[tuple[str, str]]:
    """Each (earlier, later) pair of compensated steps, ``earlier`` having landed causally
    before ``later``: the orchestrator's reverse order, which a choreography must keep."""
    undone = [name for name in compensated if name in landed]
    for earlier in undone:
        for later in undone:
            if earlier != later and path.before(landed[earlier][0], landed[later][0]):
                yield earlier, later
