"""The matplotlib drawing of a lifecycle: a layered layout, for when Graphviz is not installed.

Only :func:`sagafsm.diagram.render_png` (and the docs site's build hook, ``docs/hooks.py``, for
SVG) imports this module, and this module imports matplotlib only inside
:func:`render_matplotlib`. States sit in layers by breadth-first distance from the
initial state (:func:`sagafsm.diagram.layers`); each layer's order is chosen to keep arrows short
and uncrossed; arrow labels are placed clear of states and of each other.
"""

from __future__ import annotations

import enum
import io
import itertools
import math
import textwrap
from collections.abc import Sequence
from typing import Any, Literal

from .diagram import LifecycleTable, layers

__all__ = ["render_matplotlib"]

_MAX_ORDERINGS = 50_000
_LAYER_GAP = 2.0
_NODE_GAP = 1.0
_CHAR_WIDTH = 0.095
_LINE_HEIGHT = 0.22


def _label(state: enum.Enum) -> str:
    return textwrap.fill(str(state.value).replace("_", " "), width=14)


def _box(state: enum.Enum) -> tuple[float, float]:
    lines = _label(state).splitlines()
    return max(map(len, lines)) * _CHAR_WIDTH + 0.45, len(lines) * _LINE_HEIGHT + 0.3


def _order_cost(ordered: Sequence[Sequence[enum.Enum]], table: LifecycleTable) -> float:
    level = {s: i for i, layer in enumerate(ordered) for s in layer}
    place = {s: j for layer in ordered for j, s in enumerate(layer)}
    spans: list[tuple[int, float, float]] = []
    cost = 0.0
    for row in table.transitions:
        a, b = row.source, row.dest
        if level[a] == level[b]:
            cost += 4 * max(0, abs(place[a] - place[b]) - 1)  # an arc over the nodes between
            continue
        upper, lower = (a, b) if level[a] < level[b] else (b, a)
        # centred positions, so layers of different widths compare fairly
        x_up = place[upper] - (len(ordered[level[upper]]) - 1) / 2
        x_low = place[lower] - (len(ordered[level[lower]]) - 1) / 2
        spans.append((level[upper], x_up, x_low))
        cost += abs(x_up - x_low)
    for (la, ua, wa), (lb, ub, wb) in itertools.combinations(spans, 2):
        if la == lb and (ua - ub) * (wa - wb) < 0:
            cost += 3  # two edges leaving one layer cross
    return cost


def _ordered_layers(table: LifecycleTable) -> list[list[enum.Enum]]:
    """Layers, each ordered to keep arrows short and uncrossed (exhaustively, when small)."""
    found = layers(table)
    if math.prod(math.factorial(len(layer)) for layer in found) > _MAX_ORDERINGS:
        return found  # too many to try: keep the breadth-first discovery order
    choices = [list(itertools.permutations(layer)) for layer in found]
    best = min(itertools.product(*choices), key=lambda ordered: _order_cost(ordered, table))
    return [list(layer) for layer in best]


def _positions(
    ordered: Sequence[Sequence[enum.Enum]], gap: float
) -> dict[enum.Enum, tuple[float, float]]:
    places: dict[enum.Enum, tuple[float, float]] = {}
    for level, layer in enumerate(ordered):
        widths = [_box(state)[0] for state in layer]
        x = -(sum(widths) + gap * (len(layer) - 1)) / 2
        for state, width in zip(layer, widths, strict=True):
            places[state] = (x + width / 2, -level * _LAYER_GAP)
            x += width + gap
    return places


_Rect = tuple[float, float, float, float]
_LABEL_TS = (0.5, 0.4, 0.6, 0.3, 0.7)


def _overlaps(a: _Rect, b: _Rect) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _curve_point(
    a: tuple[float, float], b: tuple[float, float], rad: float, t: float
) -> tuple[float, float]:
    """Point ``t`` (0..1) of the curve ``arc3,rad=rad`` draws from ``a`` to ``b``.

    ``arc3`` draws a quadratic Bezier curve whose control point is the chord's midpoint moved
    ``rad`` times the chord, sideways; with an equal aspect ratio, data and display agree.
    """
    (xa, ya), (xb, yb) = a, b
    cx, cy = (xa + xb) / 2 + rad * (yb - ya), (ya + yb) / 2 - rad * (xb - xa)
    return (
        (1 - t) ** 2 * xa + 2 * (1 - t) * t * cx + t**2 * xb,
        (1 - t) ** 2 * ya + 2 * (1 - t) * t * cy + t**2 * yb,
    )


def _label_place(
    text: str,
    a: tuple[float, float],
    b: tuple[float, float],
    rad: float,
    taken: list[_Rect],
    other_arrows: list[_Rect],
) -> _Rect:
    """Where an arrow's label sits: on the arrow or beside it, clear of what is ``taken``.

    Clear of other arrows too when it can be; else the first place clear of ``taken``.
    """
    half_w, half_h = len(text) * 0.036 + 0.06, 0.12
    mid_x = (a[0] + b[0]) / 2
    bow = (_curve_point(a, b, rad, 0.5)[0] > mid_x) - (_curve_point(a, b, rad, 0.5)[0] < mid_x)
    sides = (bow, 0, -bow) if bow else (0, -1, 1)  # a bowed arrow's label goes outside first
    candidates: list[tuple[float, float]] = []
    for t in _LABEL_TS:
        x, y = _curve_point(a, b, rad, t)
        candidates += [(x + side * (half_w + 0.04), y) for side in sides]
    best: tuple[float, float] | None = None
    for x, y in candidates:
        rect = (x - half_w, y - half_h, x + half_w, y + half_h)
        if any(_overlaps(rect, other) for other in taken):
            continue
        if not any(_overlaps(rect, other) for other in other_arrows):
            best = (x, y)
            break
        best = best or (x, y)
    x, y = best or candidates[0]
    return (x - half_w, y - half_h, x + half_w, y + half_h)


def render_matplotlib(table: LifecycleTable, *, format: Literal["png", "svg"] = "png") -> bytes:
    """The lifecycle drawn with matplotlib, as PNG bytes or SVG text (UTF-8 bytes).

    The SVG carries no creation date, so the same table gives the same file: the docs site
    draws its lifecycle figures with it at build time.
    """
    from matplotlib.figure import Figure
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

    ordered = _ordered_layers(table)
    longest = max(len(row.trigger) for row in table.rows)
    places = _positions(ordered, max(_NODE_GAP, 0.075 * longest))  # room for labels between
    level = {s: i for i, layer in enumerate(ordered) for s in layer}
    left = min(x - _box(s)[0] / 2 for s, (x, _) in places.items()) - 1.2
    right = max(x + _box(s)[0] / 2 for s, (x, _) in places.items()) + 1.2
    top, bottom = 1.7, -(len(ordered) - 1) * _LAYER_GAP - 1.2
    width, height = right - left, top - bottom
    figure = Figure(figsize=(width, height), dpi=110)
    axes = figure.add_axes((0.0, 0.0, 1.0, 1.0))
    axes.set_xlim(left, right)
    axes.set_ylim(bottom, top)
    axes.set_aspect("equal")
    axes.axis("off")
    axes.text(
        (left + right) / 2,
        top - 0.2,
        f"{table.name} lifecycle",
        ha="center",
        va="top",
        fontsize=13,
        fontweight="bold",
    )

    patches: dict[enum.Enum, Any] = {}
    for state, (x, y) in places.items():
        w, h = _box(state)
        terminal = state in table.terminal
        patch = FancyBboxPatch(
            (x - w / 2, y - h / 2),
            w,
            h,
            boxstyle="round,pad=0.02,rounding_size=0.12",
            facecolor="#e6e6e6" if terminal else "#eef3fb",
            edgecolor="#222222" if terminal else "#3b5b92",
            linewidth=2.6 if terminal else 1.2,
            zorder=3,
        )
        axes.add_patch(patch)
        patches[state] = patch
        if terminal:  # a second, inner border: the usual mark of a final state
            axes.add_patch(
                FancyBboxPatch(
                    (x - w / 2 + 0.06, y - h / 2 + 0.06),
                    w - 0.12,
                    h - 0.12,
                    boxstyle="round,pad=0.02,rounding_size=0.09",
                    facecolor="none",
                    edgecolor="#222222",
                    linewidth=0.9,
                    zorder=4,
                )
            )
        axes.text(x, y, _label(state), ha="center", va="center", fontsize=10, zorder=5)

    # the initial state's marker: a filled dot with an arrow into the state
    x0, y0 = places[table.initial]
    start = (x0, y0 + 0.85)
    axes.plot(*start, marker="o", markersize=9, color="black", zorder=5)
    axes.add_patch(
        FancyArrowPatch(
            start,
            (x0, y0),
            patchB=patches[table.initial],
            arrowstyle="-|>",
            mutation_scale=14,
            color="black",
            zorder=2,
        )
    )

    pairs = {(t.source, t.dest) for t in table.rows}
    # each arrow: its two ends, its bend (arc3's rad), and whether it is clipped to the boxes
    routes: list[tuple[tuple[float, float], tuple[float, float], float, bool]] = []
    for row in table.rows:
        a, b = places[row.source], places[row.dest]
        if row.source is row.dest:  # a loop under the box, where no edge leaves from
            w, h = _box(row.source)
            routes.append(((a[0] + w / 5, a[1] - h / 2), (a[0] - w / 5, a[1] - h / 2), -1.2, False))
            continue
        rad = 0.0
        if level[row.source] == level[row.dest]:
            layer = ordered[level[row.source]]
            rad = 0.0 if abs(layer.index(row.source) - layer.index(row.dest)) == 1 else 0.35
        elif abs(level[row.source] - level[row.dest]) > 1:
            rad = 0.3
        if rad == 0.0 and (row.dest, row.source) in pairs:
            rad = 0.25  # opposite arrows bow apart
        routes.append((a, b, rad, True))
    nodes: list[_Rect] = [
        (x - _box(s)[0] / 2, y - _box(s)[1] / 2, x + _box(s)[0] / 2, y + _box(s)[1] / 2)
        for s, (x, y) in places.items()
    ]
    # every arrow, as a string of small squares a label should not sit on
    arrows = [
        [
            (x - 0.03, y - 0.03, x + 0.03, y + 0.03)
            for t in (i / 24 for i in range(1, 24))
            for x, y in [_curve_point(a, b, rad, t)]
        ]
        for a, b, rad, _ in routes
    ]
    labels: list[_Rect] = []
    label_places: list[tuple[str, tuple[float, float]]] = []
    operator = set(table.operator)
    for i, (row, (a, b, rad, clipped)) in enumerate(zip(table.rows, routes, strict=True)):
        axes.add_patch(
            FancyArrowPatch(
                a,
                b,
                patchA=patches[row.source] if clipped else None,
                patchB=patches[row.dest] if clipped else None,
                connectionstyle=f"arc3,rad={rad}",
                arrowstyle="-|>",
                mutation_scale=14,
                linewidth=1.1,
                linestyle="--" if row in operator else "-",
                color="#444444",
                shrinkA=2,
                shrinkB=2,
                zorder=2,
            )
        )
        if row.source is row.dest:
            # The loop's label goes just under the loop: searched for like the others, it can
            # land on a neighbouring edge and read as that edge's trigger.
            x, y = places[row.source]
            cy = y - _box(row.source)[1] / 2 - 0.62
            half = 0.045 * len(row.trigger) + 0.08
            rect = (x - half, cy - 0.12, x + half, cy + 0.12)
            labels.append(rect)
            label_places.append((row.trigger, (x, cy)))
            continue
        others = [r for j, points in enumerate(arrows) if j != i for r in points]
        rect = _label_place(row.trigger, a, b, rad, [*nodes, *labels], others)
        labels.append(rect)
        label_places.append((row.trigger, ((rect[0] + rect[2]) / 2, (rect[1] + rect[3]) / 2)))
    for trigger, (mx, my) in label_places:
        axes.text(
            mx,
            my,
            trigger,
            ha="center",
            va="center",
            fontsize=8.5,
            color="#7a2e00",
            bbox={"boxstyle": "round,pad=0.15", "facecolor": "white", "edgecolor": "none"},
            zorder=6,
        )
    axes.text(
        (left + right) / 2,
        bottom + 0.25,
        "● initial state    double border: terminal state    arrow label: trigger"
        + ("    dashed: only an operator's command" if operator else ""),
        ha="center",
        va="bottom",
        fontsize=8.5,
        color="#555555",
    )
    buffer = io.BytesIO()
    if format == "svg":
        from matplotlib import rc_context

        with rc_context({"svg.hashsalt": table.name}):  # stable element ids
            figure.savefig(buffer, format="svg", facecolor="white", metadata={"Date": None})
    else:
        figure.savefig(buffer, format="png", facecolor="white")
    return buffer.getvalue()
