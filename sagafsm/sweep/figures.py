"""Figures of a sweep, drawn from its table alone (so ``sagafsm plot sweep.csv`` redraws them).

Two kinds: a figure against one parameter (the mean across seeds, a band for its 95% confidence
interval, one line per value of a second parameter), and a heat map over two parameters (the
mean in each cell; over a fault space, the violations of a mutant make its *violation map*).
Settings that vary but are on neither axis are averaged over, and the title says so.
Only matplotlib's object API is used (no pyplot state), imported when a figure is drawn; without
it (the ``plots`` extra), importing this module raises :class:`~sagafsm.MissingExtra`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._extras import require
from ..errors import InvalidConfig
from ..sim.metrics import student_t_interval
from .rows import METRICS, bounds_of
from .table import SweepTable

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = [
    "LABELS",
    "check_columns",
    "heatmap_figure",
    "metric_figure",
    "varying",
    "write_sweep_figures",
]

require("plots", "sagafsm.sweep.figures")  # matplotlib loads when a figure is drawn

LABELS = {
    "goodput": "goodput (share of finished sagas completed)",
    "throughput_per_s": "throughput (completed sagas per simulated s)",
    "latency_p50": "saga duration p50 (s)",
    "latency_p95": "saga duration p95 (s)",
    "latency_p99": "saga duration p99 (s)",
    "latency_max": "longest saga (s)",
    "violations": "violations per run",
    "compensation_rate": "share of sagas compensated",
    "retries_per_saga": "retries per saga",
}


def _label(metric: str) -> str:
    return LABELS.get(metric, metric)


def check_columns(table: SweepTable, metric: str, keys: Sequence[str]) -> None:
    columns = set(table.columns)
    if metric not in columns:
        known = ", ".join(m for m in METRICS if m in columns)
        raise InvalidConfig(f"--metric {metric!r}: not a column of the sweep (known: {known})")
    for key in keys:
        if key not in columns:
            known = ", ".join(table.parameters) or "none vary"
            raise InvalidConfig(f"{key!r}: not a setting of the sweep (swept: {known})")


def _values(rows: Sequence[dict[str, Any]], metric: str) -> list[float]:
    out = []
    for row in rows:
        value = row.get(metric)
        if isinstance(value, (int, float)) and math.isfinite(value):
            out.append(float(value))
    return out


def _ordered(values: Sequence[Any]) -> list[Any]:
    unique = list(dict.fromkeys(values))
    if all(isinstance(v, (int, float)) for v in unique):
        return sorted(unique)
    return sorted(unique, key=lambda v: "" if v is None else str(v))


def _numeric(values: Sequence[Any]) -> bool:
    return all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)


def varying(table: SweepTable) -> list[str]:
    """The swept keys that take more than one value (a key swept over one value is fixed)."""
    return [p for p in table.parameters if len({repr(v) for v in table.column(p)}) > 1]


def _others(table: SweepTable, keys: Sequence[str]) -> str:
    rest = [p for p in varying(table) if p not in keys]
    return f"; mean over {', '.join(rest)}" if rest else ""


_MOST_LINES = 8


def _series(
    table: SweepTable, metric: str, x: str, xs: Sequence[Any], by: str | None, group: Any
) -> tuple[list[Any], list[float], list[float], list[float]]:
    """Per value of ``x`` (within ``group`` of ``by``): the place on the axis, mean, low, high."""
    numeric = _numeric(xs)
    places, means, lows, highs = [], [], [], []
    for position, value in enumerate(xs):
        rows = [r for r in table.rows if r.get(x) == value and (by is None or r.get(by) == group)]
        values = _values(rows, metric)
        if not values:
            continue
        stats = student_t_interval(values, bounds=bounds_of(metric))
        places.append(value if numeric else position)
        means.append(float(stats["mean"]))
        lows.append(float(stats["low"]))
        highs.append(float(stats["high"]))
    return places, means, lows, highs


def metric_figure(table: SweepTable, metric: str, x: str, by: str | None = None) -> Figure:
    """``metric`` against the parameter ``x``: the mean across seeds and its 95% confidence band,
    one line per value of ``by``. Where ``by`` takes too many values to draw a line each (a
    sampled design, whose points rarely share one), each point is a dot coloured by its ``by``,
    with its interval as an error bar."""
    from matplotlib.figure import Figure

    check_columns(table, metric, [x] + ([by] if by else []))
    figure = Figure(figsize=(7, 4.2), layout="constrained")
    axes = figure.subplots()
    xs = _ordered([row.get(x) for row in table.rows])
    groups = _ordered([row.get(by) for row in table.rows]) if by else [None]
    lines = len(groups) <= _MOST_LINES and all(
        len(_series(table, metric, x, xs, by, g)[0]) > 1 for g in groups
    )
    if lines or by is None:
        for group in groups:
            places, means, lows, highs = _series(table, metric, x, xs, by, group)
            label = f"{by} = {_text(group)}" if by else None
            (line,) = axes.plot(places, means, marker="o", label=label)
            axes.fill_between(places, lows, highs, color=line.get_color(), alpha=0.2, lw=0)
        if by:
            axes.legend(fontsize="small")
    else:
        points = [(g, *_series(table, metric, x, xs, by, g)) for g in groups]
        colours = [g if isinstance(g, (int, float)) else i for i, (g, *_) in enumerate(points)]
        cells = [(c, p, m, lo, hi) for c, (_, ps, ms, los, his) in zip(colours, points, strict=True)
                 for p, m, lo, hi in zip(ps, ms, los, his, strict=True)]  # fmt: skip
        axes.errorbar([c[1] for c in cells], [c[2] for c in cells],
                      yerr=[[c[2] - c[3] for c in cells], [c[4] - c[2] for c in cells]],
                      fmt="none", ecolor="0.7", zorder=1)  # fmt: skip
        dots = axes.scatter([c[1] for c in cells], [c[2] for c in cells],
                            c=[c[0] for c in cells], cmap="viridis", zorder=2)  # fmt: skip
        figure.colorbar(dots, ax=axes, label=by)
    if not _numeric(xs):
        axes.set_xticks(range(len(xs)), [_text(v) for v in xs], rotation=20, ha="right")
    axes.set_xlabel(x)
    axes.set_ylabel(_label(metric))
    axes.grid(alpha=0.3)
    if metric in ("goodput", "compensation_rate"):
        axes.set_ylim(-0.02, 1.02)
    else:  # every figure of a run is >= 0; a wide interval of few seeds may reach below
        axes.set_ylim(bottom=0)
    seeds = len({r.get("seed") for r in table.rows})
    spread = f"mean and 95% CI over {seeds} seeds" if seeds > 1 else "one seed, no interval"
    figure.suptitle(
        f"{metric} against {x}: {spread}{_others(table, [x, by or x])}", fontsize="medium"
    )
    return figure


def heatmap_figure(table: SweepTable, metric: str, x: str, y: str) -> Figure:
    """The mean of ``metric`` over the parameters ``x`` and ``y``, one cell per pair of values
    (a sampled design, whose points rarely share a value, is drawn as coloured points instead)."""
    from matplotlib.figure import Figure

    check_columns(table, metric, [x, y])
    figure = Figure(figsize=(7, 5), layout="constrained")
    axes = figure.subplots()
    xs = _ordered([row.get(x) for row in table.rows])
    ys = _ordered([row.get(y) for row in table.rows])
    cells: dict[tuple[Any, Any], list[float]] = {}
    for row in table.rows:
        cells.setdefault((row.get(x), row.get(y)), []).extend(_values([row], metric))
    means = {key: sum(v) / len(v) for key, v in cells.items() if v}
    colours = "Reds" if metric.startswith("violations") else "viridis"
    image: Any
    if len(cells) == len(xs) * len(ys):  # a grid: every pair has its cell
        grid = [[means.get((vx, vy), math.nan) for vx in xs] for vy in ys]
        image = axes.imshow(grid, origin="lower", aspect="auto", cmap=colours)
        axes.set_xticks(range(len(xs)), [_text(v) for v in xs])
        axes.set_yticks(range(len(ys)), [_text(v) for v in ys])
        finite = [v for v in means.values() if math.isfinite(v)]
        middle = (min(finite) + max(finite)) / 2 if finite else 0.0
        for j, vy in enumerate(ys):
            for i, vx in enumerate(xs):
                value = means.get((vx, vy))
                if value is None:
                    continue
                dark = (value > middle) == (colours == "Reds")
                axes.text(i, j, _short(value), ha="center", va="center", fontsize="small",
                          color="white" if dark else "black")  # fmt: skip
    else:
        points = [(vx, vy, v) for (vx, vy), v in means.items()]
        image = axes.scatter([p[0] for p in points], [p[1] for p in points],
                             c=[p[2] for p in points], cmap=colours, s=60)  # fmt: skip
    figure.colorbar(image, ax=axes, label=_label(metric))
    axes.set_xlabel(x)
    axes.set_ylabel(y)
    seeds = len({r.get("seed") for r in table.rows})
    spread = f"mean of {seeds} seeds" if seeds > 1 else "one seed"
    figure.suptitle(
        f"{metric} over {x} and {y}: {spread}{_others(table, [x, y])}", fontsize="medium"
    )
    return figure


def _text(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "none" if value is None else str(value)


def _short(value: float) -> str:
    if value == 0:
        return "0"
    return f"{value:.2g}" if abs(value) < 1 else f"{value:.3g}"


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in text)


def write_sweep_figures(
    table: SweepTable,
    directory: str | Path,
    metrics: Sequence[str] = ("goodput", "latency_p99", "violations"),
) -> list[Path]:
    """For each metric: a figure against the first swept parameter that varies (one line per
    value of the second), and with two or more, a heat map over the first two; as PNG files under
    ``directory``, each written whole or not at all. The paths written."""
    from ..plots import write_figure

    swept = varying(table)
    if not swept:
        raise InvalidConfig("nothing varies in this sweep: no figure to draw")
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    x, *rest = swept
    by = rest[0] if rest else None
    written = []
    for metric in metrics:
        if metric not in table.columns:
            continue
        path = folder / f"sweep_{_slug(metric)}_vs_{_slug(x)}.png"
        write_figure(metric_figure(table, metric, x, by), path)
        written.append(path)
        if by is not None:
            path = folder / f"heatmap_{_slug(metric)}_{_slug(x)}_{_slug(by)}.png"
            write_figure(heatmap_figure(table, metric, x, by), path)
            written.append(path)
    return written
