"""Sweeps on their executors: a 16-run sweep serially, on a 2-process pool and on a Dask
LocalCluster of 2 workers; the per-run overhead of each; the driver's memory in a 1,000-run sweep.

    python benchmarks/bench_sweep.py [--runs 16] [--sagas 1500] [--repeats 3]
                                     [--memory-runs 1000] [--no-dask] [--json]

The 16 runs are 4 loss rates x 4 seeds of the benchmark workload (:mod:`workload`). Each executor
is started before its clock starts (the pool's processes and the cluster's workers are warmed up
with one no-op task), and its start-up is reported apart: the figure compared is the sweep
itself. ``--repeats`` rounds alternate serial, pool and Dask; medians are reported.

Overhead per run: 200 no-op tasks that return a row-sized dict (what a worker hands back), wall
time per task with the tasks spread over the workers; the round-trip cost a run pays on top of
its simulation.

Memory: the driver's peak RSS, in a fresh child process, for a sweep of ``--memory-runs`` tiny
runs (20 sagas) against one of 10, both on a 2-process pool: the driver keeps rows, never runs,
so the difference per run is a row's worth (a few KB). Targets: pool >= 1.8x serial on 2 cores;
Dask within 15% of the pool. The load average before and after is printed: on a shared machine,
a pool can only be as fast as the cores nobody else is using.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Executor
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import Any

from bench_memory import peak_rss_mb
from workload import harness_config

from sagafsm.sweep import plan_sweep, process_pool, run_sweep
from sagafsm.sweep.executors import dask_executor

WORKERS = 2
TARGET_SPEEDUP = 1.8
TARGET_DASK = 0.15
ROW = {f"column_{i}": float(i) for i in range(80)}


def noop(index: int) -> dict[str, float]:
    return {**ROW, "index": float(index)}


def plan(runs: int, sagas: int) -> Any:
    seeds = 4 if runs % 4 == 0 else 1
    points = runs // seeds
    losses = ",".join(f"{0.02 * i:.2f}" for i in range(points))
    return plan_sweep("order_fulfillment", {"faults.loss": losses}, harness_config(sagas),
                      seeds=seeds)  # fmt: skip


Factory = Callable[[], AbstractContextManager[Executor | None]]


@contextmanager
def warmed(factory: Factory) -> Iterator[tuple[Executor | None, float]]:
    """The executor, started and warmed (every worker has run a task), and how long that took."""
    started = time.perf_counter()
    with factory() as executor:
        if executor is not None:
            list(executor.map(noop, range(WORKERS * 4)))
        yield executor, time.perf_counter() - started


def timed_sweep(factory: Factory, sweep: Any) -> tuple[float, float, list[str]]:
    with warmed(factory) as (executor, startup):
        began = time.perf_counter()
        table = run_sweep(sweep, executor=executor)
        wall = time.perf_counter() - began
    return wall, startup, [row["digest"] for row in table.rows]


def overhead(factory: Factory, tasks: int = 200) -> float:
    """Seconds per no-op task returning a row-sized dict, spread over the workers."""
    with warmed(factory) as (executor, _):
        began = time.perf_counter()
        if executor is None:
            [noop(i) for i in range(tasks)]
        else:
            list(executor.map(noop, range(tasks)))
        return (time.perf_counter() - began) / tasks


def memory_child(runs: int) -> dict[str, Any]:
    sweep = plan_sweep("order_fulfillment", {"faults.loss": "0,0.01"}, harness_config(20),
                       seeds=max(1, runs // 2))  # fmt: skip
    with process_pool(WORKERS) as pool:
        began = time.perf_counter()
        table = run_sweep(sweep, executor=pool)
        wall = time.perf_counter() - began
    return {"runs": len(table.rows), "peak_rss_mb": peak_rss_mb(), "wall_s": wall}


def memory(runs: int) -> dict[str, Any]:
    completed = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--child", str(runs)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    result: dict[str, Any] = json.loads(completed.stdout)
    return result


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=16)
    parser.add_argument("--sagas", type=int, default=1500, help="sagas per run")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--memory-runs", type=int, default=1000)
    parser.add_argument("--no-dask", action="store_true", help="skip the Dask measurements")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child is not None:
        print(json.dumps(memory_child(args.child)))
        return {}

    executors: dict[str, Factory] = {
        "serial": lambda: nullcontext(None),
        "pool": lambda: process_pool(WORKERS),
    }
    if not args.no_dask:
        executors["dask"] = lambda: dask_executor("local", WORKERS)
    sweep = plan(args.runs, args.sagas)
    walls: dict[str, list[float]] = {name: [] for name in executors}
    startups: dict[str, list[float]] = {name: [] for name in executors}
    digests: dict[str, list[str]] = {}
    load_before = os.getloadavg()[0]  # other users of the cores: what the figures compete with
    for _ in range(args.repeats):
        for name, factory in executors.items():
            wall, startup, seen = timed_sweep(factory, sweep)
            walls[name].append(wall)
            startups[name].append(startup)
            digests.setdefault(name, seen)
            assert seen == digests["serial"], f"{name} gave other digests than serial"
    load_after = os.getloadavg()[0]
    medians = {name: statistics.median(values) for name, values in walls.items()}
    report: dict[str, Any] = {
        "runs": len(sweep.runs),
        "sagas_per_run": args.sagas,
        "workers": WORKERS,
        "repeats": args.repeats,
        "wall_s": medians,
        "wall_s_all": walls,
        "startup_s": {name: statistics.median(v) for name, v in startups.items()},
        "speedup_pool": medians["serial"] / medians["pool"],
        "overhead_ms_per_run": {n: overhead(f) * 1000 for n, f in executors.items()},
        "same_digests": True,
        "load_average": [load_before, load_after],
    }
    if "dask" in medians:
        report["dask_vs_pool"] = medians["dask"] / medians["pool"] - 1
    small, large = memory(10), memory(args.memory_runs)
    report["memory"] = {
        "small": small,
        "large": large,
        "kb_per_run": (large["peak_rss_mb"] - small["peak_rss_mb"])
        * 1024
        / (large["runs"] - small["runs"]),
    }
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(table(report))
    return report


def table(report: dict[str, Any]) -> str:
    lines = [
        f"{report['runs']} runs x {report['sagas_per_run']} sagas, {report['workers']} workers, "
        f"medians of {report['repeats']}; load average {report['load_average'][0]:.1f} before, "
        f"{report['load_average'][1]:.1f} after",
        f"{'executor':<10} {'sweep s':>9} {'start-up s':>11} {'overhead ms/run':>16}",
    ]
    for name, wall in report["wall_s"].items():
        lines.append(
            f"{name:<10} {wall:>9.2f} {report['startup_s'][name]:>11.2f} "
            f"{report['overhead_ms_per_run'][name]:>16.3f}"
        )
    speedup = report["speedup_pool"]
    lines.append(f"pool / serial speed-up   {speedup:.2f}x (target >= {TARGET_SPEEDUP}x)")
    if "dask_vs_pool" in report:
        lines.append(
            f"dask vs pool             {report['dask_vs_pool'] * 100:+.1f}% "
            f"(target within {TARGET_DASK * 100:.0f}%)"
        )
    small, large = report["memory"]["small"], report["memory"]["large"]
    lines.append(
        f"driver peak RSS          {small['runs']} runs {small['peak_rss_mb']:.1f} MB, "
        f"{large['runs']} runs {large['peak_rss_mb']:.1f} MB "
        f"({report['memory']['kb_per_run']:.1f} KB per run)"
    )
    lines.append("digests                  identical on every executor")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
