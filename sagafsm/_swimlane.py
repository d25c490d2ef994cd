"""The swimlane figure of one saga (re-exported by :mod:`sagafsm.plots`); matplotlib is imported
only inside :func:`swimlane_figure`.

Labels are placed, not just printed: each message's label goes near its sender, and slides along
its arrow until it overlaps no label already placed, so crossing arrows (a duplicate, a late
reply) do not print over each other. The records that show a violation are found from the
violation itself (:func:`violating_rows`): the record kinds its property is judged on, for the
step its detail names.
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from .checks import Violation

__all__ = ["swimlane_figure", "violating_rows", "VIOLATION_COLOR"]

VIOLATION_COLOR = "#d4007f"
"""Magenta: the colour of a violation, used for nothing else on the figure."""

_LEDGER = frozenset({"effect"})
_JUDGED_ON: dict[str, frozenset[str]] = {
    "no-duplicate-effect": _LEDGER,
    "no-effect-after-compensation": _LEDGER,
    "completed-exactly-once": _LEDGER | {"finish"},
    "compensated-exactly-once": _LEDGER | {"finish"},
    "reverse-order": _LEDGER,
    "pivot-rule": _LEDGER | {"finish"},
    "compensation-input": _LEDGER,
    "outbox-rule": _LEDGER | {"transition"},
    "read-only-untouched": _LEDGER | {"send"},
    "declared-transitions": frozenset({"transition"}),
    "termination": frozenset({"finish"}),
    "single-run": frozenset({"start", "finish"}),
}
"""Property -> the record kinds it is judged on (see :mod:`sagafsm.checks`)."""
_STEP_AT = {"effect": 4, "transition": 3, "send": 7}
"""Where each kind keeps its step name (``None`` on a transition: the saga's own lifecycle)."""
_QUOTED = re.compile(r"'([^']+)'")


def violating_rows(story: Sequence[tuple[Any, ...]], violation: Violation) -> list[int]:
    """The rows of ``story`` (one saga's records) that show ``violation``: records of the kinds
    its property is judged on, about the step its detail names (every step, if it names none;
    the saga's own lifecycle, for a transition violation that says "the saga"). When no record
    fits (a termination violation has no ``finish``), the last row."""
    kinds = _JUDGED_ON.get(violation.property, frozenset({"effect", "transition", "finish"}))
    steps = {r[_STEP_AT[r[1]]] for r in story if r[1] in _STEP_AT}
    named = set(_QUOTED.findall(violation.detail)) & steps
    saga_itself = violation.detail.startswith("the saga")
    rows = []
    for row, record in enumerate(story):
        kind = record[1]
        if kind not in kinds:
            continue
        if kind in _STEP_AT:
            step = record[_STEP_AT[kind]]
            if kind == "transition" and saga_itself and not named:
                if step is not None:
                    continue
            elif named and step not in named:
                continue
        rows.append(row)
    return rows or ([len(story) - 1] if story else [])


_ROW_HALF = 0.48  # a label's half height, in rows
_CHAR = 0.023  # a 7-point character's width, in lanes (2.4 inches apart)


class _Labels:
    """Label boxes placed so far, in (lane, row) units."""

    def __init__(self) -> None:
        self.boxes: list[tuple[float, float, float, float]] = []

    def place(self, text: str, x0: float, y0: float, x1: float, y1: float) -> tuple[float, float]:
        """A point on the segment (x0, y0)-(x1, y1), near its start, whose label box is free."""
        half = len(text) * _CHAR / 2 + 0.03
        candidates = [0.3, 0.5, 0.15, 0.7, 0.85]
        spots = [(x0 + t * (x1 - x0), y0 + t * (y1 - y0)) for t in candidates]
        for x, y in spots:
            box = (x - half, y - _ROW_HALF, x + half, y + _ROW_HALF)
            if not any(_overlap(box, other) for other in self.boxes):
                self.boxes.append(box)
                return x, y
        x, y = spots[0]  # nowhere free: nudge below the crowd rather than print over it
        while any(
            _overlap((x - half, y - _ROW_HALF, x + half, y + _ROW_HALF), b) for b in self.boxes
        ):
            y += 2 * _ROW_HALF
        self.boxes.append((x - half, y - _ROW_HALF, x + half, y + _ROW_HALF))
        return x, y


def _overlap(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _title(saga_id: str, violations: Sequence[Violation] | None) -> tuple[str, str]:
    if violations is None:
        return f"Saga {saga_id}", "black"
    if not violations:
        return f"Saga {saga_id}: no violation", "black"
    lines = [f"Saga {saga_id}: {len(violations)} violation{'s' if len(violations) > 1 else ''}"]
    for v in violations[:3]:
        lines += textwrap.wrap(f"[{v.property}] {v.detail}", width=90)
    if len(violations) > 3:
        lines.append(f"... and {len(violations) - 3} more")
    return "\n".join(lines), VIOLATION_COLOR


def swimlane_figure(
    records: list[tuple[Any, ...]],
    saga_id: str,
    lanes: list[str] | None = None,
    violations: Sequence[Violation] | None = None,
) -> Figure:
    """One saga as a sequence diagram: the orchestrator and its participants as lanes, one row
    per trace record (time runs down; rows are labelled with simulated time), messages as arrows
    (a lost one ends in a red cross), ledger effects as green marks, lifecycle changes in purple,
    crash spans shaded.

    Give the saga's ``violations`` (those of :func:`sagafsm.checks.check_history`, or a run's
    ``result.violations``; other sagas' are left out) and the title names each one, while the
    records that show it (:func:`violating_rows`) are banded in magenta, a colour used for
    nothing else. With ``violations=[]`` the title says the saga has none; by default (``None``)
    the figure does not say.
    """
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    from .sim.timeline import saga_timeline

    story = [r for r in saga_timeline(records, saga_id) if r[1] != "forget"]
    mine = None if violations is None else [v for v in violations if v.saga_id == saga_id]
    if lanes is None:
        lanes = ["orchestrator"]
        for record in story:
            if record[1] == "send":
                lanes += [end for end in (record[4], record[5]) if end not in lanes]
    column = {lane: i for i, lane in enumerate(lanes)}
    title, title_color = _title(saga_id, mine)
    figure = Figure(
        figsize=(2.4 * len(lanes) + 3, max(4.0, 0.28 * len(story) + 1.5 + 0.2 * title.count("\n"))),
        layout="constrained",
    )
    axes = figure.subplots()
    for x in column.values():
        axes.axvline(x, color="0.8", linewidth=1, zorder=0)
    flagged = sorted({row for v in mine or () for row in violating_rows(story, v)})
    for row in flagged:
        axes.axhspan(row - 0.5, row + 0.5, color=VIOLATION_COLOR, alpha=0.16, linewidth=0, zorder=0)
    labels = _Labels()
    sends: dict[int, tuple[int, tuple[Any, ...]]] = {}
    down_since: dict[str, int] = {}
    shaded = False
    for row, record in enumerate(story):
        kind = record[1]
        if kind == "send":
            sends[record[3]] = (row, record)
        elif kind in ("deliver", "drop") and record[3] in sends:
            sent_row, send = sends[record[3]]
            x0, x1 = column.get(send[4]), column.get(send[5])
            if x0 is None or x1 is None:
                continue
            label = f"{send[8]}#{send[9]}" if send[10] is None else f"{send[8]}: {send[10]}"
            end_x: float = x1
            if kind == "deliver":
                axes.annotate(
                    "",
                    xy=(x1, row),
                    xytext=(x0, sent_row),
                    arrowprops={"arrowstyle": "->", "color": "tab:blue", "lw": 1},
                )
            else:
                end_x = (x0 + x1) / 2
                axes.plot([x0, end_x], [sent_row, row], color="tab:red", linestyle="--", lw=1)
                axes.plot([end_x], [row], marker="x", color="tab:red", markersize=9)
                label += f" (lost: {record[4]})"
            lx, ly = labels.place(label, x0, sent_row, end_x, row)
            axes.text(
                lx,
                ly,
                label,
                fontsize=7,
                ha="center",
                va="center",
                color="0.25",
                bbox={"boxstyle": "round,pad=0.1", "facecolor": "white", "alpha": 0.85, "lw": 0},
                zorder=4,
            )
        elif kind == "effect" and record[3] in column:
            bad = row in flagged
            color = VIOLATION_COLOR if bad else "tab:green"
            axes.plot(
                [column[record[3]]], [row], marker="s", color=color, markersize=7 if bad else 6
            )
            axes.text(
                column[record[3]] + 0.07,
                row,
                record[5],
                fontsize=7,
                va="center",
                color=color,
                fontweight="bold" if bad else "normal",
                zorder=4,
            )
        elif kind == "transition" and record[3] is None:
            axes.text(
                -0.07,
                row,
                f"saga: {record[6]}",
                fontsize=7,
                ha="right",
                va="center",
                color=VIOLATION_COLOR if row in flagged else "tab:purple",
            )
        elif kind == "finish":
            axes.text(
                -0.07,
                row,
                f"finish: {record[3]}",
                fontsize=7,
                ha="right",
                va="center",
                color=VIOLATION_COLOR if row in flagged else "tab:purple",
            )
        elif kind == "timer_fired":
            axes.text(
                -0.07, row, "timer fired", fontsize=7, ha="right", va="center", color="tab:orange"
            )
        elif kind == "crash":
            down_since[record[3]] = row
        elif kind == "restart" and record[3] in down_since and record[3] in column:
            x = column[record[3]]
            shaded = True
            axes.fill_betweenx(
                [down_since.pop(record[3]), row], x - 0.35, x + 0.35, color="tab:red", alpha=0.15
            )
    ticks = list(range(0, len(story), max(1, len(story) // 25)))
    axes.set_yticks(ticks, [f"{story[i][0]:.4f}" for i in ticks])
    axes.set_xticks(range(len(lanes)), lanes)
    axes.set_xlim(-1.4, len(lanes) - 0.2)
    axes.set_ylim(max(len(story), max((b[3] for b in labels.boxes), default=0) + 0.5), -1)
    axes.set_ylabel("simulated time (s), one row per trace record")
    axes.set_title(title, color=title_color, fontsize=10, loc="left")
    legend: list[Any] = [
        Line2D([], [], color="tab:blue", lw=1, label="message delivered"),
        Line2D([], [], color="tab:red", lw=1, ls="--", marker="x", label="message lost"),
        Line2D([], [], color="tab:green", marker="s", lw=0, label="ledger effect"),
    ]
    if shaded:
        legend.append(Patch(color="tab:red", alpha=0.15, label="node down"))
    if flagged:
        legend.append(Patch(color=VIOLATION_COLOR, alpha=0.3, label="shows the violation"))
    axes.legend(handles=legend, loc="lower right", fontsize=7, framealpha=0.9)
    return figure
