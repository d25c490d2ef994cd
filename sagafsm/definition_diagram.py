"""A saga definition drawn as a flow: its steps in order, each marked with its kind.

Where :mod:`sagafsm.diagram` draws the two lifecycles every saga shares, this draws one saga's
steps: the forward path left to right, each compensatable step's compensation under it (the
path a failure takes back), a read-only step marked as never compensated, the pivot as the point
of no return, retriable steps as retried until they succeed. Everything comes from the
:class:`~sagafsm.SagaDefinition`; nothing here names a step.

Mermaid text needs nothing beyond the standard library; :func:`render_definition_png` imports
matplotlib only when called.
"""

from __future__ import annotations

import io

from ._extras import require
from .definition import SagaDefinition, StepDefinition, StepKind
from .errors import InvalidArgument

__all__ = ["definition_mermaid", "render_definition_png", "KIND_NOTES"]

KIND_NOTES: dict[StepKind, str] = {
    StepKind.COMPENSATABLE: "compensatable",
    StepKind.READ_ONLY: "read-only: never compensated",
    StepKind.PIVOT: "pivot: no return after it",
    StepKind.RETRIABLE: "retriable: retried until it succeeds",
}
"""The note each step kind gets in a diagram."""


def _checked(definition: object) -> SagaDefinition:
    if not isinstance(definition, SagaDefinition):
        raise InvalidArgument(f"expected a SagaDefinition, got {definition!r}")
    return definition


def _label(step: StepDefinition) -> str:
    return f"{step.name}<br/>{step.participant}.{step.action}<br/><i>{KIND_NOTES[step.kind]}</i>"


def definition_mermaid(definition: SagaDefinition) -> str:
    """Mermaid ``flowchart`` text: the forward path, and each compensation on the way back."""
    definition = _checked(definition)
    lines = ["flowchart LR", "    start([start]) --> s0"]
    steps = definition.steps
    for i, step in enumerate(steps):
        shape = ("[[", "]]") if step.kind is StepKind.PIVOT else ("[", "]")
        lines.append(f'    s{i}{shape[0]}"{_label(step)}"{shape[1]}')
        lines.append(f"    s{i} --> {f's{i + 1}' if i + 1 < len(steps) else 'done'}")
    lines.append("    done([completed])")
    compensable = [i for i, s in enumerate(steps) if s.kind.compensable]
    for i in compensable:
        step = steps[i]
        lines.append(f'    c{i}["{step.compensation}"]')
        lines.append(f"    s{i} -. on a later failure .-> c{i}")
    for later, earlier in zip(compensable[::-1], compensable[::-1][1:], strict=False):
        lines.append(f"    c{later} --> c{earlier}")
    if compensable:
        lines += [f"    c{compensable[0]} --> failed([failed])"]
    read_only = [f"s{i}" for i, s in enumerate(steps) if s.kind is StepKind.READ_ONLY]
    if read_only:
        lines.append("    classDef readonly stroke-dasharray: 4 3")
        lines.append(f"    class {','.join(read_only)} readonly")
    return "\n".join(lines) + "\n"


_KIND_STYLE: dict[StepKind, tuple[str, str]] = {
    StepKind.COMPENSATABLE: ("#e8f0fe", "solid"),
    StepKind.READ_ONLY: ("#f3f3f3", "dashed"),
    StepKind.PIVOT: ("#fde7c8", "solid"),
    StepKind.RETRIABLE: ("#e6f4ea", "solid"),
}


def render_definition_png(definition: SagaDefinition) -> bytes:
    """The flow as a PNG, drawn with matplotlib (imported here, not at module import).

    :class:`~sagafsm.MissingExtra` without matplotlib (the ``plots`` extra)."""
    definition = _checked(definition)
    require("plots", "render_definition_png")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import FancyBboxPatch

    steps = definition.steps
    longest = max(
        len(text)
        for step in steps
        for text in (
            step.name,
            f"{step.participant}.{step.action}",
            KIND_NOTES[step.kind],
            f"undo: {step.compensation}",
        )
    )
    width, gap = max(2.6, 0.1 * longest), 0.7
    figure, axes = plt.subplots(figsize=(max(6.0, len(steps) * (width + gap) * 0.75), 3.4))
    has_compensations = any(s.kind.compensable for s in steps)
    for i, step in enumerate(steps):
        x = i * (width + gap)
        face, line = _KIND_STYLE[step.kind]
        axes.add_patch(
            FancyBboxPatch(
                (x, 1.6),
                width,
                1.1,
                boxstyle="round,pad=0.05",
                facecolor=face,
                edgecolor="#333333",
                linestyle=line,
                linewidth=2.0 if step.kind is StepKind.PIVOT else 1.0,
            )
        )
        axes.text(
            x + width / 2, 2.38, step.name, ha="center", va="center", fontsize=9, weight="bold"
        )
        axes.text(
            x + width / 2,
            2.08,
            f"{step.participant}.{step.action}",
            ha="center",
            va="center",
            fontsize=7,
        )
        axes.text(
            x + width / 2,
            1.78,
            KIND_NOTES[step.kind],
            ha="center",
            va="center",
            fontsize=7,
            style="italic",
        )
        if i + 1 < len(steps):
            axes.annotate(
                "",
                xy=(x + width + gap, 2.15),
                xytext=(x + width + 0.05, 2.15),
                arrowprops={"arrowstyle": "->"},
            )
        if step.kind.compensable:
            axes.text(
                x + width / 2,
                0.7,
                f"undo: {step.compensation}",
                ha="center",
                va="center",
                fontsize=7,
                bbox={"boxstyle": "round", "facecolor": "white", "edgecolor": "#999999"},
            )
            axes.annotate(
                "",
                xy=(x + width / 2, 0.95),
                xytext=(x + width / 2, 1.55),
                arrowprops={"arrowstyle": "->", "linestyle": "dotted", "color": "#777777"},
            )
    compensable = [i for i, s in enumerate(steps) if s.kind.compensable]
    for later, earlier in zip(compensable[::-1], compensable[::-1][1:], strict=False):
        # compensations run in reverse step order: each hands over to the one on its left
        axes.annotate(
            "",
            xy=(earlier * (width + gap) + width / 2, 0.4),
            xytext=(later * (width + gap) + width / 2, 0.4),
            arrowprops={"arrowstyle": "->", "color": "#777777"},
        )
    axes.set_xlim(-0.3, len(steps) * (width + gap) - gap + 0.3)
    axes.set_ylim(0.2 if has_compensations else 1.3, 3.0)
    axes.set_title(
        f"saga {definition.name!r}: steps left to right"
        + (
            "; below: the compensations a later failure sends, right to left"
            if has_compensations
            else ""
        ),
        fontsize=9,
    )
    axes.axis("off")
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=120, bbox_inches="tight")
    plt.close(figure)
    return buffer.getvalue()
