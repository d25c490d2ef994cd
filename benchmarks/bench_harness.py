"""Harness speed against a hand-written SimPy baseline of the same workload.

    python benchmarks/bench_harness.py [--sagas 10000 100000] [--repeats 3] [--seed 1] [--json]

For each size, the harness (``sagafsm.sim.simulate``: engine, network, participants, trace digest,
streaming checker) and the baseline (:mod:`baseline`: plain SimPy, no framework) run the workload of
:mod:`workload` with the same seed, alternately, ``--repeats`` times; the medians are reported.
Both must produce the same outcome, message and event counts (checked on every run), so sagas/s
and events/s compare like with like. *Events* are what the harness writes to its trace (sends,
deliveries, drops, timers, lifecycle moves, ledger effects...); the baseline counts the same ones.
Targets: the harness at >= 5,000 sagas/s, at most 1.5 times the baseline's wall time. On a
machine shared with other work, wall time swings with the competition for a core: the table also
gives each side's CPU time (``time.process_time``) and their ratio, which the competition moves
far less.
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from baseline import run_baseline
from profile_harness import print_table, profile
from workload import baseline_params, harness_config, run_harness

TARGET_SAGAS_PER_S = 5000.0
TARGET_RATIO = 1.5
_SAME = ("outcomes", "messages")
"""Must be equal in every run of both; events are compared and reported, not required."""


def bench_size(sagas: int, repeats: int, seed: int) -> dict[str, Any]:
    walls: dict[str, list[float]] = {"harness": [], "baseline": []}
    cpus: dict[str, list[float]] = {"harness": [], "baseline": []}
    events: dict[str, int] = {}
    reference: dict[str, Any] | None = None
    for _ in range(repeats):
        for name in ("harness", "baseline"):
            gc.collect()
            cpu = time.process_time()
            if name == "harness":
                result = run_harness(sagas, seed)
            else:
                result = run_baseline(**baseline_params(harness_config(sagas, seed)))
            cpus[name].append(time.process_time() - cpu)
            walls[name].append(result["wall_seconds"])
            events[name] = result["events"]
            counts = {key: result[key] for key in _SAME}
            if reference is None:
                reference = counts
            elif counts != reference:
                raise RuntimeError(
                    f"{name} disagrees at {sagas} sagas, seed {seed}: {counts} != {reference}"
                )
    assert reference is not None
    row: dict[str, Any] = {"sagas": sagas, "repeats": repeats, "seed": seed, **reference}
    row["same_events"] = events["harness"] == events["baseline"]
    for name, times in walls.items():
        median = statistics.median(times)
        row[name] = {
            "wall_seconds": median,
            "walls": times,
            "cpu_seconds": statistics.median(cpus[name]),
            "events": events[name],
            "sagas_per_s": sagas / median,
            "events_per_s": events[name] / median,
        }
    row["ratio"] = row["harness"]["wall_seconds"] / row["baseline"]["wall_seconds"]
    row["cpu_ratio"] = row["harness"]["cpu_seconds"] / row["baseline"]["cpu_seconds"]
    row["sagas_per_s_met"] = row["harness"]["sagas_per_s"] >= TARGET_SAGAS_PER_S
    row["ratio_met"] = row["ratio"] <= TARGET_RATIO
    return row


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sagas", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--repeats", type=int, default=3, help="runs of each; medians reported")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument(
        "--no-profile", action="store_true", help="skip the profile printed when a target is missed"
    )
    args = parser.parse_args(argv)
    rows = [bench_size(sagas, args.repeats, args.seed) for sagas in args.sagas]
    missed = not all(r["sagas_per_s_met"] and r["ratio_met"] for r in rows)
    results: dict[str, Any] = {
        "workload": (
            "order_fulfillment: 5 steps (1 read-only), 5% step failure, 1% loss, timeouts armed"
        ),
        "targets": {"sagas_per_s": TARGET_SAGAS_PER_S, "ratio": TARGET_RATIO},
        "sizes": rows,
    }
    profile_sagas = min(10_000, min(args.sagas))
    if missed and not args.no_profile:
        results["profile"] = profile(profile_sagas, args.seed)
    if args.json:
        print(json.dumps(results, indent=2))
        return results
    print(f"{results['workload']}; seed {args.seed}, median of {args.repeats}")
    print(
        f"{'sagas':>9}{'events':>11}{'harness s':>11}{'sagas/s':>9}{'events/s':>11}"
        f"{'baseline s':>12}{'sagas/s':>9}{'events/s':>11}{'ratio':>7}{'cpu ratio':>11}"
    )
    for r in rows:
        h, b = r["harness"], r["baseline"]
        print(
            f"{r['sagas']:>9,}{h['events']:>11,}"
            f"{h['wall_seconds']:>11.2f}{h['sagas_per_s']:>9,.0f}{h['events_per_s']:>11,.0f}"
            f"{b['wall_seconds']:>12.2f}{b['sagas_per_s']:>9,.0f}{b['events_per_s']:>11,.0f}"
            f"{r['ratio']:>7.2f}{r['cpu_ratio']:>11.2f}"
        )
    for r in rows:
        print(
            f"{r['sagas']:,} sagas: outcomes {r['outcomes']}, identical in harness and baseline"
            f" (events {'identical' if r['same_events'] else 'DIFFER'}); "
            f">= {TARGET_SAGAS_PER_S:,.0f} sagas/s {'met' if r['sagas_per_s_met'] else 'MISSED'}, "
            f"ratio <= {TARGET_RATIO} {'met' if r['ratio_met'] else 'MISSED'}"
        )
    if "profile" in results:
        print()
        print_table(results["profile"], profile_sagas)
    return results


if __name__ == "__main__":
    main()
