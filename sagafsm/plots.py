"""Figures of a run, with matplotlib. The only module that imports it, and only when called.

Every function returns a :class:`matplotlib.figure.Figure` (shown inline in a notebook);
:func:`write_run_figures` saves them as PNG files. No pyplot global state is touched.
"""

from __future__ import annotations

import math
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from .sim.result import RunResult

__all__ = ["duration_figure", "throughput_figure", "write_run_figures"]

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


def throughput_figure(result: RunResult) -> Figure:
    """Completed sagas per simulated second, over the run."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(10, 3.5), layout="constrained")
    axes = figure.subplots()
    per_second = {int(k): v for k, v in result.metrics["completed_per_second"].items()}
    if per_second:
        seconds = range(min(per_second), max(per_second) + 1)
        axes.step(
            list(seconds),
            [per_second.get(s, 0) for s in seconds],
            where="post",
            color="tab:blue",
            label="completed per second",
        )
        axes.axhline(
            result.metrics["throughput_per_s"],
            color="tab:gray",
            linestyle="--",
            label=f"mean {result.metrics['throughput_per_s']:.1f}/s",
        )
        axes.legend(loc="best")
    axes.set_xlabel("simulated time (s)")
    axes.set_ylabel("completed sagas per second")
    axes.set_title(f"Throughput over time: {result.scenario}, seed {result.seed}")
    axes.grid(alpha=0.3)
    return figure


def write_run_figures(result: RunResult, directory: str | Path) -> list[Path]:
    """Save every figure of ``result`` as PNG in ``directory`` (created if needed)."""
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, make in (("durations", duration_figure), ("throughput", throughput_figure)):
        path = folder / f"{result.scenario}-{name}.png"
        handle, temporary = tempfile.mkstemp(dir=folder, suffix=".png.partial")
        os.close(handle)
        try:
            make(result).savefig(temporary, format="png", dpi=110)
            os.replace(temporary, path)
        finally:
            if os.path.exists(temporary):
                os.unlink(temporary)
        written.append(path)
    return written
