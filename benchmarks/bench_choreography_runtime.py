"""Sagas per second on the runtime, orchestrated vs choreographed, over SQLite, with the real
processes of ``sagafsm run`` (an orchestrator and a participants process; or a process per
participant), median of K rounds, the two styles interleaved so that the machine's load falls on
both alike.

Run: ``python benchmarks/bench_choreography_runtime.py [--sagas N] [--rounds K]``. The machine is
shared: quote medians and the ratio, and the load (``uptime``) beside them.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

from sagafsm.runtime.choreography_supervisor import ChoreographyPlan, supervise_choreography
from sagafsm.runtime.supervisor import RunPlan, supervise


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sagas", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=20)
    args = parser.parse_args()
    rates: dict[str, list[float]] = {"orchestration": [], "choreography": []}
    messages: dict[str, float] = {}
    for round_ in range(args.rounds):
        with tempfile.TemporaryDirectory() as directory:
            store = f"sqlite:///{Path(directory) / f'o{round_}.db'}"
            plan = RunPlan(
                scenario="order_fulfillment", store=store, sagas=args.sagas,
                concurrency=args.concurrency,
            )  # fmt: skip
            result = supervise(plan)
            assert result.ok, result.violation_counts
            rates["orchestration"].append(args.sagas / result.wall_seconds)
            messages["orchestration"] = result.metrics["messages_per_saga"]
            store = f"sqlite:///{Path(directory) / f'c{round_}.db'}"
            chore = supervise_choreography(
                ChoreographyPlan(
                    scenario="order_fulfillment",
                    store=store,
                    sagas=args.sagas,
                    concurrency=args.concurrency,
                )
            )
            assert chore.ok, chore.verdict.violation_counts
            rates["choreography"].append(args.sagas / chore.wall_seconds)
            messages["choreography"] = chore.verdict.messages_per_saga
    for style, values in rates.items():
        shown = ", ".join(f"{v:.1f}" for v in values)
        print(
            f"{style:<14} {statistics.median(values):7.1f} sagas/s (rounds: {shown}), "
            f"{messages[style]:.1f} messages per saga"
        )
    ratio = statistics.median(rates["choreography"]) / statistics.median(rates["orchestration"])
    print(f"choreography / orchestration: {ratio:.2f}")


if __name__ == "__main__":
    main()
