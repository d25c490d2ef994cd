"""Micro-benchmark of the sans-IO engine: transitions per second, bytes per saga, machines per saga.

    python benchmarks/bench_engine.py [--runs 20000] [--repeats 5] [--instances 100000] [--json]

A *transition* is one lifecycle move (saga or step), counted by a recorder in a calibration run;
throughput runs use no recorder, as a production driver without tracing would.
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

import transitions

from sagafsm import (
    CompensationSucceeded,
    SagaBuilder,
    SagaDefinition,
    SagaInstance,
    StepFailed,
    StepSucceeded,
)

DEFINITION: SagaDefinition = (
    SagaBuilder("bench", timeout=1.0)
    .step("reserve", participant="inventory", action="reserve", compensation="release")
    .step("hold", participant="hotel", action="hold", compensation="cancel")
    .step("book", participant="flight", action="book", compensation="unbook")
    .step("charge", participant="payment", action="charge", compensation="refund")
    .build()
)
STEPS = DEFINITION.step_names


class Counter:
    def __init__(self) -> None:
        self.moves = 0

    def transition(self, *args: Any) -> None:
        self.moves += 1

    def ignored(self, *args: Any) -> None:
        pass


def happy(saga_id: str, recorder: Any = None) -> None:
    saga = SagaInstance(DEFINITION, saga_id, recorder=recorder)
    saga.start(0.0)
    for step in STEPS:
        saga.handle(StepSucceeded(saga_id=saga_id, step=step), 0.0)


def compensating(saga_id: str, recorder: Any = None) -> None:
    """Three steps land, the last fails, the three are compensated in reverse order."""
    saga = SagaInstance(DEFINITION, saga_id, recorder=recorder)
    saga.start(0.0)
    for step in STEPS[:-1]:
        saga.handle(StepSucceeded(saga_id=saga_id, step=step), 0.0)
    saga.handle(StepFailed(saga_id=saga_id, step=STEPS[-1]), 0.0)
    for step in reversed(STEPS[:-1]):
        saga.handle(CompensationSucceeded(saga_id=saga_id, step=step), 0.0)


SCENARIOS: dict[str, Callable[..., None]] = {"happy": happy, "compensating": compensating}


def throughput(run: Callable[..., None], runs: int, repeats: int) -> dict[str, float]:
    counter = Counter()
    run("calibrate", counter)
    per_run = counter.moves
    ids = [f"s{i}" for i in range(runs)]
    timings = []
    for _ in range(repeats):
        start = time.perf_counter()
        for saga_id in ids:
            run(saga_id)
        timings.append(time.perf_counter() - start)
    median = statistics.median(timings)
    return {
        "transitions_per_run": per_run,
        "runs_per_s": runs / median,
        "transitions_per_s": runs * per_run / median,
        "us_per_run": median / runs * 1e6,
    }


def bytes_per_instance(instances: int) -> float:
    """Live memory of ``instances`` sagas, each mid-run (two steps done, the third in flight)."""
    ids = [f"s{i}" for i in range(instances)]
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    sagas = []
    for saga_id in ids:
        saga = SagaInstance(DEFINITION, saga_id)
        saga.start(0.0)
        for step in STEPS[:2]:
            saga.handle(StepSucceeded(saga_id=saga_id, step=step), 0.0)
        sagas.append(saga)
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    grown = sum(s.size_diff for s in after.compare_to(before, "filename"))
    list_cost = 8 * instances  # the benchmark's own list of references
    del sagas
    return (grown - list_cost) / instances


def machines_per_instance(instances: int = 1000) -> float:
    def machines() -> int:
        gc.collect()
        return sum(isinstance(o, transitions.core.Machine) for o in gc.get_objects())

    before = machines()
    keep = []
    for i in range(instances):
        saga = SagaInstance(DEFINITION, f"m{i}")
        saga.start(0.0)
        keep.append(saga)
    return (machines() - before) / instances


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20_000, help="saga runs per repeat")
    parser.add_argument("--repeats", type=int, default=5, help="repeats; the median is reported")
    parser.add_argument("--instances", type=int, default=100_000, help="live sagas for memory")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args(argv)
    results: dict[str, Any] = {
        name: throughput(run, args.runs, args.repeats) for name, run in SCENARIOS.items()
    }
    results["memory"] = {
        "instances": args.instances,
        "bytes_per_instance": bytes_per_instance(args.instances),
    }
    results["machines_per_instance"] = machines_per_instance()
    if args.json:
        print(json.dumps(results, indent=2))
        return results
    print(f"4-step saga, {args.runs} runs x {args.repeats} repeats (median)")
    print(f"{'scenario':<14}{'moves/run':>10}{'runs/s':>12}{'moves/s':>14}{'us/run':>10}")
    for name in SCENARIOS:
        r = results[name]
        print(
            f"{name:<14}{r['transitions_per_run']:>10}{r['runs_per_s']:>12,.0f}"
            f"{r['transitions_per_s']:>14,.0f}{r['us_per_run']:>10.1f}"
        )
    print(
        f"bytes per live saga (N={args.instances}): {results['memory']['bytes_per_instance']:,.0f}"
    )
    print(f"transitions Machine objects per saga: {results['machines_per_instance']:g}")
    return results


if __name__ == "__main__":
    main()
