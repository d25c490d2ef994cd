"""Figures of a run, with matplotlib. The only module that imports it, and only when called.

Every function returns a :class:`matplotlib.figure.Figure` (shown inline in a notebook);
:func:`write_run_figures` saves them as PNG files. No pyplot global state is touched.
"""

from __future__ import annotations

import math
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from .sim.result import RunResult

__all__ = [
    "duration_figure",
    "occupancy_figure",
    "participants_figure",
    "swimlane_figure",
    "throughput_figure",
    "write_figure",
    "write_run_figures",
]

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
    """Completed sagas per simulated second, window by window, over the run."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(10, 3.5), layout="constrained")
    axes = figure.subplots()
    series = result.metrics["throughput_series"]
    rates = series["per_second"]
    if rates:
        window = series["window_s"]
        times = [series["start_s"] + k * window for k in range(len(rates))]
        axes.step(
            times,
            rates,
            where="post",
            color="tab:blue",
            label=f"completed per second ({window:g} s windows)",
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


_STATE_COLORS = {"started": "tab:gray", "pending": "tab:blue", "compensating": "tab:orange"}


def occupancy_figure(result: RunResult) -> Figure:
    """Sagas in each running lifecycle state over time (mean per window), stacked."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(10, 3.5), layout="constrained")
    axes = figure.subplots()
    occupancy = result.metrics["occupancy"]
    series = occupancy["series"]
    if series:
        window = occupancy["window_s"]
        length = len(next(iter(series.values())))
        times = [occupancy["start_s"] + k * window for k in range(length)]
        states = [s for s in ("started", "pending", "compensating") if s in series]
        states += [s for s in series if s not in states]
        axes.stackplot(
            times,
            [series[s] for s in states],
            labels=states,
            step="post",
            colors=[_STATE_COLORS.get(s, "tab:purple") for s in states],
            alpha=0.8,
        )
        axes.legend(loc="upper right")
    axes.set_xlabel("simulated time (s)")
    axes.set_ylabel(f"sagas (mean per {occupancy['window_s']:g} s window)")
    axes.set_title(f"Sagas in flight by lifecycle state: {result.scenario}, seed {result.seed}")
    axes.grid(alpha=0.3)
    return figure


def participants_figure(result: RunResult) -> Figure:
    """Each participant's utilisation (share of its capacity busy) and mean queue length."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(10, 3.5), layout="constrained")
    busy, queue = figure.subplots(1, 2)
    participants = result.metrics["participants"]
    names = list(participants)
    busy.bar(names, [participants[n]["utilisation"] * 100 for n in names], color="tab:blue")
    busy.set_ylabel("utilisation (% of capacity busy)")
    busy.set_ylim(0, 100)
    busy.set_title("Participant utilisation")
    queue.bar(
        names, [participants[n]["mean_queue"] for n in names], color="tab:orange", label="mean"
    )
    queue.scatter(
        names,
        [participants[n]["max_queue"] for n in names],
        color="tab:red",
        marker="_",
        s=400,
        label="max",
    )
    queue.set_ylabel("operations waiting")
    queue.set_title("Participant queue length")
    queue.legend(loc="best")
    for axes in (busy, queue):
        axes.tick_params(axis="x", rotation=20)
        axes.grid(alpha=0.3, axis="y")
    return figure


def write_run_figures(result: RunResult, directory: str | Path) -> list[Path]:
    """Save every figure of ``result`` as PNG in ``directory`` (created if needed)."""
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
        path = folder / f"{result.scenario}-{name}.png"
        write_figure(make(result), path)
        written.append(path)
    return written


def write_figure(figure: Figure, path: str | Path) -> None:
    """Save as PNG through a temporary file, so a failure leaves nothing half-written."""
    target = Path(path)
    handle, temporary = tempfile.mkstemp(dir=target.parent, suffix=".png.partial")
    os.close(handle)
    try:
        figure.savefig(temporary, format="png", dpi=110)
        os.replace(temporary, target)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)


def swimlane_figure(
    records: list[tuple[Any, ...]], saga_id: str, lanes: list[str] | None = None
) -> Figure:
    """One saga as a sequence diagram: the orchestrator and its participants as lanes, one row
    per trace record (time runs down; rows are labelled with simulated time), messages as arrows
    (a lost one ends in a red cross), ledger effects as green marks, lifecycle changes in purple,
    crash spans shaded."""
    from matplotlib.figure import Figure

    from .sim.timeline import saga_timeline

    story = [r for r in saga_timeline(records, saga_id) if r[1] != "forget"]
    if lanes is None:
        lanes = ["orchestrator"]
        for record in story:
            if record[1] == "send":
                lanes += [end for end in (record[4], record[5]) if end not in lanes]
    column = {lane: i for i, lane in enumerate(lanes)}
    figure = Figure(
        figsize=(2.4 * len(lanes) + 3, max(4.0, 0.28 * len(story) + 1.5)), layout="constrained"
    )
    axes = figure.subplots()
    for x in column.values():
        axes.axvline(x, color="0.8", linewidth=1, zorder=0)
    sends: dict[int, tuple[int, tuple[Any, ...]]] = {}
    down_since: dict[str, int] = {}
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
            if kind == "deliver":
                axes.annotate(
                    "",
                    xy=(x1, row),
                    xytext=(x0, sent_row),
                    arrowprops={"arrowstyle": "->", "color": "tab:blue", "lw": 1},
                )
            else:
                xm = (x0 + x1) / 2
                axes.plot([x0, xm], [sent_row, row], color="tab:red", linestyle="--", lw=1)
                axes.plot([xm], [row], marker="x", color="tab:red", markersize=9)
                label += f" (lost: {record[4]})"
            axes.text(
                (x0 + x1) / 2,
                (sent_row + row) / 2,
                label,
                fontsize=7,
                ha="center",
                va="bottom",
                color="0.3",
            )
        elif kind == "effect" and record[3] in column:
            axes.plot([column[record[3]]], [row], marker="s", color="tab:green", markersize=6)
            axes.text(
                column[record[3]] + 0.07, row, record[5], fontsize=7, va="center", color="tab:green"
            )
        elif kind == "transition" and record[3] is None:
            axes.text(
                -0.07,
                row,
                f"saga: {record[6]}",
                fontsize=7,
                ha="right",
                va="center",
                color="tab:purple",
            )
        elif kind == "timer_fired":
            axes.text(
                -0.07, row, "timer fired", fontsize=7, ha="right", va="center", color="tab:orange"
            )
        elif kind == "crash":
            down_since[record[3]] = row
        elif kind == "restart" and record[3] in down_since and record[3] in column:
            x = column[record[3]]
            axes.fill_betweenx(
                [down_since.pop(record[3]), row], x - 0.35, x + 0.35, color="tab:red", alpha=0.15
            )
    ticks = list(range(0, len(story), max(1, len(story) // 25)))
    axes.set_yticks(ticks, [f"{story[i][0]:.4f}" for i in ticks])
    axes.set_xticks(range(len(lanes)), lanes)
    axes.set_xlim(-1.4, len(lanes) - 0.2)
    axes.set_ylim(len(story), -1)
    axes.set_ylabel("simulated time (s), one row per trace record")
    axes.set_title(f"Saga {saga_id}")
    return figure
