"""Figures of a run, with matplotlib, imported only when a function is called (here and in
``_swimlane``, whose :func:`swimlane_figure` this module exports).

Every function returns a :class:`matplotlib.figure.Figure` (shown inline in a notebook);
:func:`write_run_figures` saves them as PNG and SVG files, :func:`write_figure` one figure as
either. No pyplot global state is touched. Needs the ``plots`` extra: without matplotlib,
importing this module raises :class:`~sagafsm.MissingExtra`, naming it.
"""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._extras import require
from ._swimlane import swimlane_figure

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from .sim.result import RunResult

__all__ = [
    "FORMATS",
    "duration_figure",
    "occupancy_figure",
    "participants_figure",
    "swimlane_figure",
    "throughput_figure",
    "write_figure",
    "write_run_figures",
]

require("plots", "sagafsm.plots")  # matplotlib loads when a figure is drawn

_COLORS = {"completed": "tab:green", "failed": "tab:orange", "operator_required": "tab:red"}


def duration_figure(result: RunResult) -> Figure:
    """Histogram and CDF of saga durations, one series per final state."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(10, 4), layout="constrained")
    histogram, cdf = figure.subplots(1, 2)
    for outcome, durations in sorted(result.durations.items()):
        rows = _coarser(durations.buckets(), factor=10)
        if not rows:
            continue
        color = _COLORS.get(outcome)
        lowers = [r[0] for r in rows]
        widths = [r[1] - r[0] for r in rows]
        counts = [r[2] for r in rows]
        histogram.bar(
            lowers,
            counts,
            width=widths,
            align="edge",
            alpha=0.6,
            color=color,
            label=f"{outcome} ({durations.count})",
        )
        running, total, xs, ys = 0, durations.count, [], []
        for _, upper, count in rows:
            running += count
            xs.append(upper)
            ys.append(running / total)
        cdf.step(xs, ys, where="post", color=color, label=outcome)
    for axes in (histogram, cdf):
        axes.set_xscale("log")
        axes.set_xlabel("saga duration (simulated seconds, log scale)")
        axes.legend(loc="best")
        axes.grid(alpha=0.3)
    histogram.set_ylabel("sagas per 10% duration bin")
    histogram.set_title("Saga duration by outcome")
    cdf.set_ylabel("fraction of sagas")
    cdf.set_ylim(0, 1.02)
    cdf.set_title("Cumulative distribution")
    figure.suptitle(f"{result.scenario}, {result.sagas} sagas, seed {result.seed}")
    return figure


def _coarser(rows: list[tuple[float, float, int]], factor: int) -> list[tuple[float, float, int]]:
    """Merge runs of ``factor`` adjacent 1% buckets (a 1% histogram is too spiky to read)."""
    merged: dict[int, list[float]] = {}
    for lower, upper, count in rows:
        if upper <= 0:
            continue
        key = math.floor(math.log(lower) / math.log(1.01) / factor + 1e-9)
        entry = merged.setdefault(key, [lower, upper, 0])
        entry[0], entry[1] = min(entry[0], lower), max(entry[1], upper)
        entry[2] += count
    return [
        (lower, upper, int(count)) for lower, upper, count in (merged[k] for k in sorted(merged))
    ]


_OUTAGE_STYLE = {
    "orchestrator_crash": ("tab:red", "orchestrator down (crash)"),
    "participant_partition": ("tab:purple", "partitioned"),
    "participant_crash": ("tab:brown", "crashed"),
}


def _mark_outages(axes: Any, result: RunResult) -> None:
    """Shade every window in which a node was down, one legend entry per kind and node."""
    labelled: set[tuple[str, str]] = set()
    for outage in result.metrics.get("outages") or ():
        kind, node = outage["kind"], outage["node"]
        color, what = _OUTAGE_STYLE.get(kind, ("tab:gray", kind))
        end = outage["end_s"] if outage["end_s"] is not None else result.sim_time
        label = what if kind == "orchestrator_crash" else f"{node} {what}"
        start, end = outage["start_s"], max(end, outage["start_s"])
        # a light band behind the data, and a solid strip along the top that bars cannot hide
        axes.axvspan(start, end, color=color, alpha=0.10, linewidth=0, zorder=0)
        axes.axvspan(
            start,
            end,
            ymin=0.95,
            color=color,
            alpha=0.85,
            linewidth=0,
            zorder=3,
            label=None if (kind, node) in labelled else label,
        )
        labelled.add((kind, node))


def _legend_below(figure: Figure, axes: Any) -> None:
    handles, labels = axes.get_legend_handles_labels()
    if handles:
        figure.legend(handles, labels, loc="outside lower center", ncol=2, fontsize=8)


def _full_windows(start: float, window: float, count: int, end: float) -> tuple[int, float]:
    """How many of ``count`` windows from ``start`` the run covered whole, and how far into the
    next one it got (0 when every window is whole): the run ends at ``end``."""
    last_edge = start + count * window
    covered = end - (last_edge - window)
    if count and 0 < covered < window * 0.999:
        return count - 1, covered
    return count, 0.0


def _mark_partial(axes: Any, left: float, covered: float, window: float) -> None:
    axes.axvspan(
        left,
        left + window,
        facecolor="none",
        edgecolor="0.45",
        hatch="//",
        linewidth=0,
        zorder=0,
        label=f"last window, partial (the run ended {covered:.2g} s into it): not drawn",
    )


def throughput_figure(result: RunResult) -> Figure:
    """Completed sagas per simulated second, window by window, over the run.

    Outages (orchestrator crashes, participant partitions and crashes) are shaded; a last window
    the run did not cover whole is hatched and not drawn, since its rate would read low.
    """
    from matplotlib.figure import Figure

    figure = Figure(figsize=(10, 4.2), layout="constrained")
    axes = figure.subplots()
    series = result.metrics["throughput_series"]
    rates = series["per_second"]
    if rates:
        window, start = series["window_s"], series["start_s"]
        whole, covered = _full_windows(start, window, len(rates), result.sim_time)
        edges = [start + k * window for k in range(whole + 1)]
        if whole:
            axes.stairs(
                rates[:whole],
                edges,
                color="tab:blue",
                linewidth=1.4,
                label=f"completed per second ({window:g} s windows)",
            )
        if covered:
            _mark_partial(axes, edges[-1], covered, window)
        axes.axhline(
            result.metrics["throughput_per_s"],
            color="tab:gray",
            linestyle="--",
            label=f"mean over the run {result.metrics['throughput_per_s']:.1f}/s",
        )
    _mark_outages(axes, result)
    _legend_below(figure, axes)
    axes.set_ylim(bottom=0)
    axes.set_xlabel("simulated time (s)")
    axes.set_ylabel("completed sagas per second")
    axes.set_title(f"Throughput over time: {result.scenario}, seed {result.seed}")
    axes.grid(alpha=0.3)
    return figure


_STATE_COLORS = {"started": "tab:gray", "pending": "tab:blue", "compensating": "tab:orange"}
_STATE_LABELS = {
    "started": "started: requested, not yet begun (waits while the orchestrator is down)",
    "pending": "pending: running its steps",
    "compensating": "compensating: undoing its steps",
}


def occupancy_figure(result: RunResult) -> Figure:
    """Sagas in each running lifecycle state over time (mean per window), stacked.

    Outages are shaded as in :func:`throughput_figure`: sagas requested while the orchestrator
    is down wait in ``started`` until it restarts, hence the grey peaks in crash windows. A last
    window the run did not cover whole is hatched and not drawn.
    """
    from matplotlib.figure import Figure

    figure = Figure(figsize=(10, 4.2), layout="constrained")
    axes = figure.subplots()
    occupancy = result.metrics["occupancy"]
    series = occupancy["series"]
    if series:
        window = occupancy["window_s"]
        start = occupancy.get("start_s", 0.0)
        length = len(next(iter(series.values())))
        whole, covered = _full_windows(start, window, length, result.sim_time)
        edges = [start + k * window for k in range(whole + 1)]
        states = [s for s in ("started", "pending", "compensating") if s in series]
        states += [s for s in series if s not in states]
        if whole:
            # stackplot's step="post" gives the last value no width: repeat it at the last edge
            axes.stackplot(
                edges,
                [[*series[s][:whole], series[s][whole - 1]] for s in states],
                labels=[_STATE_LABELS.get(s, s) for s in states],
                step="post",
                colors=[_STATE_COLORS.get(s, "tab:purple") for s in states],
                alpha=0.8,
            )
        if covered:
            _mark_partial(axes, edges[-1], covered, window)
    _mark_outages(axes, result)
    _legend_below(figure, axes)
    axes.set_ylim(bottom=0)
    axes.set_xlabel("simulated time (s)")
    axes.set_ylabel(f"sagas (mean per {occupancy['window_s']:g} s window)")
    axes.set_title(f"Sagas in flight by lifecycle state: {result.scenario}, seed {result.seed}")
    axes.grid(alpha=0.3)
    return figure


def participants_figure(result: RunResult) -> Figure:
    """Each participant's utilisation (share of its capacity busy) and mean and longest queue.

    Every bar carries its value, so a participant 1% busy still shows; the utilisation axis
    stops at 100% only when some participant comes near it.
    """
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    figure = Figure(figsize=(10, 3.5), layout="constrained")
    busy, queue = figure.subplots(1, 2)
    participants = result.metrics["participants"]
    names = list(participants)
    shares = [participants[n]["utilisation"] * 100 for n in names]
    bars = busy.bar(names, shares, color="tab:blue")
    busy.bar_label(
        bars, labels=[f"{v:.1f}%" if v < 10 else f"{v:.0f}%" for v in shares], fontsize=8, padding=2
    )
    top = max(shares, default=0.0)
    busy.set_ylim(0, 112 if top > 60 else max(5.0, top * 1.35))  # room for the bars' labels
    if top > 60:
        busy.set_yticks(range(0, 101, 20))
    busy.set_ylabel("utilisation (% of capacity busy)")
    busy.set_title(
        "Participant utilisation" + ("" if top > 60 else f" (axis to {busy.get_ylim()[1]:.0f}%)")
    )
    means = [participants[n]["mean_queue"] for n in names]
    longest = [participants[n]["max_queue"] for n in names]
    bars = queue.bar(names, means, color="tab:orange", label="mean")
    queue.bar_label(
        bars, labels=[f"{v:.2g}" if v < 10 else f"{v:.0f}" for v in means], fontsize=8, padding=2
    )
    queue.scatter(names, longest, color="tab:red", marker="_", s=400, label="max", zorder=3)
    queue.set_ylim(0, max(1.0, max(longest, default=0) * 1.2, max(means, default=0) * 1.3))
    queue.yaxis.set_major_locator(MaxNLocator(integer=True))
    queue.set_ylabel("operations waiting")
    if not any(longest):
        queue.set_title("Participant queue length: no operation ever waited")
    else:
        queue.set_title("Participant queue length")
        queue.legend(loc="best")
    for axes in (busy, queue):
        axes.tick_params(axis="x", rotation=20)
        axes.grid(alpha=0.3, axis="y")
    return figure


FORMATS = ("png", "svg")
"""The file formats :func:`write_figure` writes, chosen by the file name's suffix."""


def write_run_figures(
    result: RunResult, directory: str | Path, formats: Sequence[str] = FORMATS
) -> list[Path]:
    """Save every figure of ``result`` in ``directory`` (created if needed), once per format:
    PNG to look at, SVG to zoom into or put in a page. Returns the paths written, in order."""
    unknown = [f for f in formats if f not in FORMATS]
    if unknown or not formats:
        raise ValueError(f"formats must be some of {FORMATS}, got {tuple(formats)!r}")
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    figures = (
        ("durations", duration_figure),
        ("throughput", throughput_figure),
        ("occupancy", occupancy_figure),
        ("participants", participants_figure),
    )
    for name, make in figures:
        figure = make(result)
        for suffix in formats:
            path = folder / f"{result.scenario}-{name}.{suffix}"
            write_figure(figure, path)
            written.append(path)
    return written


def write_figure(figure: Figure, path: str | Path) -> None:
    """Save as PNG or SVG (by the name's suffix) through a temporary file, so a failure leaves
    nothing half-written. An SVG carries no creation date: the same figure, the same file."""
    target = Path(path)
    suffix = target.suffix.lower().lstrip(".")
    if suffix not in FORMATS:
        raise ValueError(f"{target}: a figure is written as .png or .svg, not {target.suffix!r}")
    handle, temporary = tempfile.mkstemp(dir=target.parent, suffix=f".{suffix}.partial")
    os.close(handle)
    try:
        if suffix == "svg":
            figure.savefig(temporary, format="svg", metadata={"Date": None})
        else:
            figure.savefig(temporary, format="png", dpi=110)
        os.replace(temporary, target)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)
