"""Scaling: wall time and peak memory against total sagas, and against sagas in flight.

    python benchmarks/bench_scaling.py [--quick] [--seed 1] [--json]

Every point is a harness run in a fresh child process (see :mod:`bench_memory`).

*Total sagas* (10k, 100k, 1M): the workload of :mod:`workload` at its steady Poisson load
(50 sagas per simulated second, 60 s retention). Time should grow linearly with the sagas (flat
sagas/s), memory not at all: the sagas held at once are the same few thousand.

*Sagas in flight* (10, 1k, 10k, 100k): a closed load, that many sagas running at every moment
(a new one starts as soon as one ends), over a fixed total. So that the sagas held are the ones in
flight, participants keep a finished saga's records for 0.05 s (about one saga's duration) instead
of 60 s, and their capacity grows with the load (one slot per 10 sagas in flight, at least 8) so
that they never saturate and every point runs the same sagas. Memory should grow linearly with the
sagas in flight (a flat per-saga cost above the interpreter's own), time only with the total.
``--quick`` divides every size by 10; ``--totals``,
``--in-flight`` and ``--in-flight-total`` set the sizes by hand.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_memory import measure

TOTALS = (10_000, 100_000, 1_000_000)
IN_FLIGHT = (10, 1_000, 10_000, 100_000)
IN_FLIGHT_TOTAL = 100_000
IN_FLIGHT_RETENTION = 0.05


def in_flight_options(concurrency: int) -> dict[str, Any]:
    return {
        "concurrency": concurrency,
        "extra": {
            "retention": IN_FLIGHT_RETENTION,
            "participant": {"capacity": max(8, concurrency // 10)},
        },
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="every size divided by 10")
    parser.add_argument("--totals", type=int, nargs="+", help="total sagas of the first table")
    parser.add_argument("--in-flight", type=int, nargs="+", help="sagas in flight, second table")
    parser.add_argument("--in-flight-total", type=int, help="total sagas of the second table")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", action="store_true", help="print JSON instead of tables")
    args = parser.parse_args(argv)
    totals = [t // 10 for t in TOTALS] if args.quick else TOTALS
    flights = [max(10, c // 10) for c in IN_FLIGHT] if args.quick else IN_FLIGHT
    flight_total = IN_FLIGHT_TOTAL // 10 if args.quick else IN_FLIGHT_TOTAL
    totals = args.totals or totals
    flights = args.in_flight or flights
    flight_total = args.in_flight_total or flight_total
    startup = measure(100, args.seed)
    base = startup["peak_rss_mb"]
    by_total = [measure(total, args.seed) for total in totals]
    by_flight = []
    for concurrency in flights:
        total = max(flight_total, 2 * concurrency)
        by_flight.append(measure(total, args.seed, **in_flight_options(concurrency)))
    for row in by_total + by_flight:
        held = row["peak_held"] or 1
        row["kb_per_held_saga"] = max(0.0, row["peak_rss_mb"] - base) * 1024 / held
    results: dict[str, Any] = {
        "quick": args.quick,
        "startup_rss_mb": base,
        "by_total": by_total,
        "by_in_flight": by_flight,
    }
    if args.json:
        print(json.dumps(results, indent=2))
        return results
    print(f"startup (100 sagas): {base:.1f} MB peak RSS{'; --quick sizes' if args.quick else ''}")
    print("\nagainst total sagas (open load, 50 sagas/s, 60 s retention)")
    header = (
        f"{'sagas':>10}{'wall s':>9}{'sagas/s':>9}{'us/saga':>9}{'peak running':>14}"
        f"{'peak held':>11}{'peak RSS MB':>13}{'KB/held':>9}"
    )
    print(header)
    for r in by_total:
        print(_line(r["sagas"], r))
    print(
        f"\nagainst sagas in flight (closed load, {IN_FLIGHT_RETENTION:g} s retention, "
        "capacity scaled)"
    )
    print(f"{'in flight':>10}{'sagas':>10}" + header[10:])
    for concurrency, r in zip(flights, by_flight, strict=True):
        print(f"{concurrency:>10,}" + _line(r["sagas"], r))
    return results


def _line(sagas: int, r: dict[str, Any]) -> str:
    return (
        f"{sagas:>10,}{r['wall_seconds']:>9.1f}{r['sagas_per_s']:>9,.0f}"
        f"{1e6 / r['sagas_per_s']:>9.0f}{r['peak_running']:>14,}{r['peak_held']:>11,}"
        f"{r['peak_rss_mb']:>13.1f}{r['kb_per_held_saga']:>9.2f}"
    )


if __name__ == "__main__":
    main()
