"""Lifecycle diagrams, drawn from the tables in :mod:`sagafsm.lifecycle`.

Rules for this module:

- Every state, edge and label comes from a lifecycle spec (``SAGA_LIFECYCLE``,
  ``STEP_LIFECYCLE``): its rows, its initial state and its terminal set. Nothing here names a
  state or a trigger: a row added to a table appears in every diagram without touching this file.
- One edge per table row, labelled with its trigger; ``[*]`` points at the initial state, and
  every terminal state points at ``[*]``.
- Text output (Mermaid, DOT) needs nothing beyond the standard library. PNG output uses Graphviz
  ``dot`` when it is on ``PATH``, else the matplotlib layout of :mod:`sagafsm._draw`, which
  :func:`render_png` imports when it needs it: importing this module loads no plotting library.
"""

from __future__ import annotations

import enum
import shutil
import subprocess
from typing import Any, Literal, TypeAlias

from .errors import SagaError
from .lifecycle import LIFECYCLES, LifecycleSpec

__all__ = [
    "DiagramUnavailable",
    "LifecycleTable",
    "LIFECYCLES",
    "lifecycle",
    "mermaid",
    "dot_source",
    "layers",
    "render_png",
]

Backend = Literal["auto", "dot", "matplotlib"]


class DiagramUnavailable(SagaError, RuntimeError):
    """A PNG was asked for and no renderer can draw it.

    Raised by :func:`render_png` when Graphviz ``dot`` is not on ``PATH`` (or fails) and
    matplotlib cannot be imported, or when the backend asked for is the missing one. Never raised
    for Mermaid or DOT text, which need no renderer.
    """


LifecycleTable: TypeAlias = LifecycleSpec[Any]
"""What a diagram is drawn from: a lifecycle spec of :mod:`sagafsm.lifecycle`, as it is."""


def lifecycle(name: str) -> LifecycleTable:
    """The lifecycle called ``name`` (``"saga"`` or ``"step"``), or ``KeyError``."""
    try:
        return LIFECYCLES[name]
    except (KeyError, TypeError):  # TypeError: an unhashable name
        known = ", ".join(LIFECYCLES)
        raise KeyError(f"no lifecycle {name!r} (known: {known})") from None


def _node(state: enum.Enum) -> str:
    return str(state.value)


def mermaid(table: LifecycleTable) -> str:
    """Mermaid ``stateDiagram-v2`` text for ``table``: one edge per row, in table order (the
    operator's rows last)."""
    lines = ["stateDiagram-v2", f"    [*] --> {_node(table.initial)}"]
    lines += [f"    {_node(t.source)} --> {_node(t.dest)} : {t.trigger}" for t in table.rows]
    lines += [f"    {_node(s)} --> [*]" for s in table.states if s in table.terminal]
    return "\n".join(lines) + "\n"


def dot_source(table: LifecycleTable) -> str:
    """Graphviz DOT text for ``table``: one edge per row (an operator's dashed); terminal states
    double-bordered."""
    lines = [
        f'digraph "{table.name}" {{',
        f'    label="{table.name} lifecycle"; labelloc=t; fontname="Helvetica";',
        '    node [shape=box, style="rounded,filled", fillcolor="#eef3fb", fontname="Helvetica"];',
        '    edge [fontname="Helvetica", fontsize=10];',
        '    "__start__" [shape=point, width=0.15, label=""];',
    ]
    for state in table.states:
        extra = ', peripheries=2, fillcolor="#e6e6e6"' if state in table.terminal else ""
        lines.append(f'    "{_node(state)}" [label="{_node(state)}"{extra}];')
    lines.append(f'    "__start__" -> "{_node(table.initial)}";')
    lines += [
        f'    "{_node(t.source)}" -> "{_node(t.dest)}" [label=" {t.trigger} "'
        + (", style=dashed" if t in table.operator else "")
        + "];"
        for t in table.rows
    ]
    lines.append("}")
    return "\n".join(lines) + "\n"


def layers(table: LifecycleTable) -> list[list[enum.Enum]]:
    """States grouped by breadth-first distance from the initial state, in discovery order.

    States the initial state cannot reach go in one last layer, so nothing is dropped.
    """
    depth = {table.initial: 0}
    frontier = [table.initial]
    while frontier:
        following = []
        for state in frontier:
            for row in table.transitions:
                if row.source is state and row.dest not in depth:
                    depth[row.dest] = depth[state] + 1
                    following.append(row.dest)
        frontier = following
    result: list[list[enum.Enum]] = [[] for _ in range(max(depth.values()) + 1)]
    for state, level in depth.items():
        result[level].append(state)
    unreachable = [s for s in table.states if s not in depth]
    if unreachable:
        result.append(unreachable)
    return result


def render_png(table: LifecycleTable, *, backend: Backend = "auto") -> bytes:
    """The lifecycle drawn as PNG bytes: with Graphviz ``dot`` if on ``PATH``, else matplotlib.

    Raises :class:`DiagramUnavailable` when no renderer (or not the one asked for) can draw it.
    """
    if backend not in ("auto", "dot", "matplotlib"):
        raise ValueError(f"backend must be 'auto', 'dot' or 'matplotlib', got {backend!r}")
    dot = shutil.which("dot") if backend in ("auto", "dot") else None
    if dot is not None:
        return _render_dot(dot, table)
    if backend == "dot":
        raise DiagramUnavailable("Graphviz 'dot' is not on PATH")
    try:
        from ._draw import render_matplotlib  # imports matplotlib

        return render_matplotlib(table)
    except ImportError:
        raise DiagramUnavailable(
            "cannot draw a PNG: Graphviz 'dot' is not on PATH and matplotlib is not installed "
            "(pip install 'sagafsm[plots]', or install Graphviz, or use the Mermaid text)"
        ) from None


def _render_dot(dot: str, table: LifecycleTable) -> bytes:
    try:
        result = subprocess.run(
            [dot, "-Tpng"], input=dot_source(table).encode(), capture_output=True, timeout=60
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        raise DiagramUnavailable(f"Graphviz 'dot' could not run: {error}") from None
    if result.returncode != 0 or not result.stdout:
        message = result.stderr.decode(errors="replace").strip().splitlines()
        raise DiagramUnavailable(
            f"Graphviz 'dot' failed (exit {result.returncode}): "
            f"{message[-1] if message else 'no output'}"
        )
    return result.stdout
