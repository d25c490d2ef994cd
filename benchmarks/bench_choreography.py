"""Sagas per second and messages per saga, orchestrated vs choreographed, on the same scenario and
faults (the Done-when plan of issue 11), median of 3 rounds, both styles in the same process.

Run: ``python benchmarks/bench_choreography.py [--sagas N] [--rounds K]``. The machine is
shared: quote medians and the ratio, not the absolute figures alone.
"""

from __future__ import annotations

import argparse
import statistics

from sagafsm.sim import load_scenario, simulate

FAULTS = {
    "faults__loss": 0.05,
    "faults__duplicate": 0.2,
    "faults__reorder": 0.2,
    "participant__failure_rate": 0.1,
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sagas", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    scenario = load_scenario("order_fulfillment")
    figures: dict[str, list[tuple[float, float, int]]] = {"orchestration": [], "choreography": []}
    for _ in range(args.rounds):
        for style, rows in figures.items():
            config = scenario.config(sagas=args.sagas, seed=1, style=style, **FAULTS)
            result = simulate(scenario, config)
            rows.append(
                (
                    result.sagas_per_wall_second,
                    result.metrics["messages_per_saga"],
                    sum(result.violation_counts.values()),
                )
            )
    medians = {}
    for style, rows in figures.items():
        rate = statistics.median(r[0] for r in rows)
        medians[style] = rate
        print(
            f"{style:<14} sagas/s median {rate:8.0f} (rounds: "
            f"{', '.join(f'{r[0]:.0f}' for r in rows)}), messages/saga {rows[0][1]:.2f}, "
            f"violations {rows[0][2]}"
        )
    ratio = medians["choreography"] / medians["orchestration"]
    print(f"choreography / orchestration sagas/s: {ratio:.2f}")


if __name__ == "__main__":
    main()
