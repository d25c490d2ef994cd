"""Peak memory of harness runs at a steady Poisson load: 20k sagas and 1M sagas.

    python benchmarks/bench_memory.py [--sagas 20000 1000000] [--seed 1] [--baseline] [--json]

Each measurement runs in a fresh child process (this script with ``--child``), which reports its
own peak resident set (``VmHWM`` from ``/proc/self/status``, else ``ru_maxrss``) when the run ends,
so one run's garbage never counts against another. A child that only imports everything and runs
100 sagas gives the interpreter's own footprint (``startup``), for reference. The load is the
workload of :mod:`workload` (50 sagas per simulated second, 60 s retention): the sagas held at any
moment are the same few thousand whatever the total, so a 1M-saga run should fit in the memory of
a 20k one. Targets: a 1M-saga run within 150 MB peak RSS and 5 minutes.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
TARGET_RSS_MB = 150.0
TARGET_WALL_S = 300.0


def peak_rss_mb() -> float:
    """This process's peak resident set, in MB (VmHWM; ru_maxrss where /proc is missing)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class Population:
    """Counts sagas from the trace: running (started, not finished) and held (not forgotten)."""

    def __init__(self) -> None:
        self.running = self.held = self.peak_running = self.peak_held = 0

    def observe(self, record: tuple[Any, ...]) -> None:
        kind = record[1]
        if kind == "start":
            self.running += 1
            self.held += 1
            if self.running > self.peak_running:
                self.peak_running = self.running
            if self.held > self.peak_held:
                self.peak_held = self.held
        elif kind == "finish":
            self.running -= 1
        elif kind == "forget":
            self.held -= 1


def child(spec: dict[str, Any]) -> dict[str, Any]:
    """Run one measurement in this process (called in the child)."""
    sys.path.insert(0, str(HERE))
    from workload import SCENARIO, baseline_params, harness_config

    options = spec.get("options", {})
    config = harness_config(spec["sagas"], spec["seed"], **options)
    start = time.perf_counter()
    if spec["target"] == "baseline":
        from baseline import run_baseline

        result = run_baseline(**baseline_params(config))
        outcomes, events, population = result["outcomes"], result["events"], None
    else:
        from sagafsm.sim import simulate

        population = Population()
        run = simulate(SCENARIO, config, observe=population.observe)
        if run.stopped is not None or not run.ok:
            raise RuntimeError(f"run did not end cleanly: {run.stopped or run.violation_counts}")
        outcomes, events = dict(run.outcomes), run.events
    wall = time.perf_counter() - start
    return {
        "target": spec["target"],
        "sagas": spec["sagas"],
        "options": options,
        "wall_seconds": wall,
        "sagas_per_s": spec["sagas"] / wall,
        "events": events,
        "outcomes": outcomes,
        "peak_running": population.peak_running if population else None,
        "peak_held": population.peak_held if population else None,
        "peak_rss_mb": peak_rss_mb(),
    }


def measure(
    sagas: int, seed: int = 1, target: str = "harness", timeout: float = 3600, **options: Any
) -> dict[str, Any]:
    """One measurement in a fresh child process; its report as a dict."""
    spec = {"target": target, "sagas": sagas, "seed": seed, "options": options}
    completed = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--child", json.dumps(spec)],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if completed.returncode != 0:
        raise RuntimeError(f"child run {spec} failed:\n{completed.stderr[-3000:]}")
    report: dict[str, Any] = json.loads(completed.stdout.strip().splitlines()[-1])
    return report


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sagas", type=int, nargs="+", default=[20_000, 1_000_000])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--baseline", action="store_true", help="measure the baseline too")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        report = child(json.loads(args.child))
        print(json.dumps(report))
        return report
    startup = measure(100, args.seed)
    rows = []
    for sagas in args.sagas:
        rows.append(measure(sagas, args.seed))
        if args.baseline:
            rows.append(measure(sagas, args.seed, target="baseline"))
    largest = max((r for r in rows if r["target"] == "harness"), key=lambda r: r["sagas"])
    results: dict[str, Any] = {
        "startup_rss_mb": startup["peak_rss_mb"],
        "runs": rows,
        "targets": {
            "rss_mb": TARGET_RSS_MB,
            "wall_s": TARGET_WALL_S,
            "largest_sagas": largest["sagas"],
            "rss_met": largest["peak_rss_mb"] <= TARGET_RSS_MB,
            "wall_met": largest["wall_seconds"] <= TARGET_WALL_S,
        },
    }
    if args.json:
        print(json.dumps(results, indent=2))
        return results
    print(f"peak RSS, steady Poisson load; startup (100 sagas): {startup['peak_rss_mb']:.1f} MB")
    print(
        f"{'target':<9}{'sagas':>10}{'wall s':>9}{'sagas/s':>10}{'peak held':>11}"
        f"{'peak RSS MB':>13}"
    )
    for r in rows:
        held = "-" if r["peak_held"] is None else f"{r['peak_held']:,}"
        print(
            f"{r['target']:<9}{r['sagas']:>10,}{r['wall_seconds']:>9.1f}{r['sagas_per_s']:>10,.0f}"
            f"{held:>11}{r['peak_rss_mb']:>13.1f}"
        )
    t = results["targets"]
    print(
        f"target for {t['largest_sagas']:,} sagas: <= {TARGET_RSS_MB:g} MB "
        f"({'met' if t['rss_met'] else 'MISSED'}), <= {TARGET_WALL_S:g} s "
        f"({'met' if t['wall_met'] else 'MISSED'})"
    )
    return results


if __name__ == "__main__":
    main()
