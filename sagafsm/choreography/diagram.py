"""A choreography drawn from its table: the flow of events, one path as a sequence, each role.

- :func:`flow_mermaid`: a Mermaid ``flowchart`` of the whole table: each event a rounded node,
  each reaction a box (participant and what it does), an edge from the events a reaction waits
  for and to the events it emits (dotted when it is a failure), the outcome events as circles.
- :func:`sequence_mermaid`: one fault-free path (every step succeeds, or the steps up to
  ``failing`` succeed and ``failing`` fails) as a Mermaid ``sequenceDiagram``: who sends which
  event to whom, and what each does on receiving it. :func:`render_sequence_png` draws the same
  with matplotlib, imported only when called.
- :func:`role_mermaid`: one participant's projected lifecycle, through the lifecycle diagram code
  of :mod:`sagafsm.diagram`, drawn over the states the role reaches; :func:`render_role_png`
  draws it with :func:`sagafsm.diagram.render_png`.

Every node, edge and label comes from the definition; nothing here names an event.
"""

from __future__ import annotations

from ..diagram import mermaid, render_png
from ..errors import InvalidArgument
from .paths import Occurrence, Path, consumers_of, explore
from .projection import Role, reachable_spec
from .table import ChoreographyDefinition, ChoreographyStep, CompensationReaction, OutcomeReaction

__all__ = [
    "flow_mermaid",
    "sequence_mermaid",
    "role_mermaid",
    "path_of",
    "render_sequence_png",
    "render_role_png",
]


def _checked(definition: object) -> ChoreographyDefinition:
    if not isinstance(definition, ChoreographyDefinition):
        raise InvalidArgument(f"expected a ChoreographyDefinition, got {definition!r}")
    return definition


def flow_mermaid(definition: ChoreographyDefinition) -> str:
    """Mermaid ``flowchart`` text for the whole table."""
    definition = _checked(definition)
    lines = ["flowchart TD", f"    {_event(definition.start)}([{definition.start}])"]
    outcomes = {o.event: o for o in definition.outcomes}
    for i, step in enumerate(definition.steps):
        kind = step.kind.value.replace("_", "-")
        lines.append(f'    s{i}["{step.participant}: {step.action}<br/><i>{kind}</i>"]')
        lines.append(f"    {_event(step.on)} --> s{i}")
        lines.append(f"    s{i} --> {_event(step.success)}([{step.success}])")
        if step.failure is not None:
            lines.append(f"    s{i} -. fails .-> {_event(step.failure)}([{step.failure}])")
    for i, undo in enumerate(definition.compensations):
        step = definition.step(undo.step)
        lines.append(
            f'    c{i}["{step.participant}: {step.compensation}<br/><i>undoes {undo.step}</i>"]'
        )
        lines += [f"    {_event(event)} --> c{i}" for event in undo.on]
        if not undo.on:  # nothing in the table starts it: only its participant's deadline
            lines.append(f'    d{i}>"deadline of {undo.step}"] -.-> c{i}')
        lines.append(f"    c{i} --> {_event(undo.emits)}([{undo.emits}])")
    for event, outcome in outcomes.items():
        verdict = "completed" if outcome.completed else "failed"
        lines.append(f'    {_event(event)}((("{event}<br/><i>{verdict}</i>")))')
        lines += [
            f"    {_event(cause)} -- {definition.initiator} --> {_event(event)}"
            for cause in outcome.on
        ]
    if definition.compensations:
        lines.append("    classDef undo fill:#fdecea,stroke:#c5221f")
        lines.append(
            f"    class {','.join(f'c{i}' for i in range(len(definition.compensations)))} undo"
        )
    return "\n".join(lines) + "\n"


def _event(name: str) -> str:
    return f"e_{name}"


def path_of(definition: ChoreographyDefinition, failing: str | None = None) -> Path:
    """The fault-free path on which every step succeeds (``failing=None``), or on which every step
    before ``failing`` succeeds and ``failing`` fails. ``KeyError`` if there is no such path
    (``failing`` is not a step that can fail, or never runs)."""
    definition = _checked(definition)
    for path in explore(definition, consumers_of(definition)):
        failed = [name for name, ok in path.choices if not ok]
        if failed == ([] if failing is None else [failing]) and (
            failing is None or path.choices[-1] == (failing, False)
        ):
            return path
    raise KeyError(f"choreography {definition.name!r} has no path on which {failing!r} fails")


def _actor(definition: ChoreographyDefinition, occurrence: Occurrence) -> str:
    by = occurrence.by
    if isinstance(by, ChoreographyStep):
        return by.participant
    if isinstance(by, CompensationReaction):
        return definition.step(by.step).participant
    return definition.initiator


def _doing(definition: ChoreographyDefinition, occurrence: Occurrence) -> str:
    by = occurrence.by
    if isinstance(by, ChoreographyStep):
        return by.action + ("" if occurrence.succeeded else " (fails)")
    if isinstance(by, CompensationReaction):
        return f"{definition.step(by.step).compensation} (undoes {by.step})"
    assert isinstance(by, OutcomeReaction)
    return f"announces {by.event} ({'completed' if by.completed else 'failed'})"


def _messages(
    definition: ChoreographyDefinition, path: Path
) -> list[tuple[str, str, str, str, bool]]:
    """(sender, receiver, event, what the receiver does, whether the event is on the way back:
    a failure or a compensation's), in the order of the path."""
    found = []
    for occurrence in path.occurrences[1:]:
        assert occurrence.cause is not None
        cause = path.occurrences[occurrence.cause]
        found.append(
            (
                _actor(definition, cause),
                _actor(definition, occurrence),
                cause.event,
                _doing(definition, occurrence),
                not cause.succeeded or isinstance(cause.by, CompensationReaction),
            )
        )
    return found


def sequence_mermaid(definition: ChoreographyDefinition, failing: str | None = None) -> str:
    """Mermaid ``sequenceDiagram`` text for one path (see :func:`path_of`)."""
    definition = _checked(definition)
    path = path_of(definition, failing)
    lines = ["sequenceDiagram"]
    lines += [f"    participant {p}" for p in definition.participants]
    for sender, receiver, event, doing, _ in _messages(definition, path):
        lines.append(f"    {sender}->>{receiver}: {event}")
        lines.append(f"    Note over {receiver}: {doing}")
    return "\n".join(lines) + "\n"


def role_mermaid(role: Role) -> str:
    """One role's lifecycle as Mermaid ``stateDiagram-v2`` text (triggers are events)."""
    if not isinstance(role, Role):
        raise InvalidArgument(f"expected a Role, got {role!r}")
    return mermaid(reachable_spec(role))


def render_role_png(role: Role) -> bytes:
    """One role's lifecycle as a PNG, through :func:`sagafsm.diagram.render_png`."""
    if not isinstance(role, Role):
        raise InvalidArgument(f"expected a Role, got {role!r}")
    return render_png(reachable_spec(role))


def render_sequence_png(definition: ChoreographyDefinition, failing: str | None = None) -> bytes:
    """One path drawn as a sequence diagram PNG, with matplotlib (imported here)."""
    from ._draw_sequence import draw_sequence

    definition = _checked(definition)
    path = path_of(definition, failing)
    title = f"choreography {definition.name!r}: " + (
        "every step succeeds" if failing is None else f"{failing} fails"
    )
    return draw_sequence(list(definition.participants), _messages(definition, path), title)
