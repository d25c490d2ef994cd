"""The same configuration under several seeds, and confidence intervals across them.

One run is one sample of a random system: its throughput or p99 has sampling noise. Running K
seeds and reporting a Student's t interval of the mean says how much a figure can be trusted.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from typing import Any

import attrs

from .config import SimulationConfig
from .metrics import student_t_interval
from .mutants import Mutant, get_mutant
from .result import RunResult
from .run import simulate
from .scenario import Scenario, load_scenario

__all__ = ["SEED_METRICS", "simulate_seeds", "seed_summary"]

SEED_METRICS: dict[str, Callable[[RunResult], float | None]] = {
    "throughput_per_s": lambda r: r.metrics["throughput_per_s"],
    "goodput": lambda r: r.metrics["goodput"],
    "compensation_rate": lambda r: r.metrics["compensation_rate"],
    "latency_p50": lambda r: r.metrics["latency"]["p50"],
    "latency_p95": lambda r: r.metrics["latency"]["p95"],
    "latency_p99": lambda r: r.metrics["latency"]["p99"],
    "in_flight_mean": lambda r: r.metrics["in_flight_mean"],
}
"""The per-run figures summarised across seeds."""


def _run_one(name: str, config: SimulationConfig, mutant: str | None) -> RunResult:
    # In a worker process: scenarios are loaded by name (they may hold unpicklable functions).
    return simulate(load_scenario(name), config, mutant=get_mutant(mutant) if mutant else None)


def simulate_seeds(
    scenario: Scenario,
    config: SimulationConfig,
    seeds: Sequence[int],
    *,
    mutant: Mutant | None = None,
    executor: Executor | None = None,
    scenario_name: str | None = None,
) -> list[RunResult]:
    """Run ``config`` once per seed. With an ``executor`` (processes here, Dask on a cluster),
    runs go to it and each worker loads the scenario by ``scenario_name`` (default: its name)."""
    configs = [attrs.evolve(config, seed=seed) for seed in seeds]
    if executor is None:
        return [simulate(scenario, c, mutant=mutant) for c in configs]
    name = scenario_name or scenario.name
    mutant_name = mutant.name if mutant else None
    futures = [executor.submit(_run_one, name, c, mutant_name) for c in configs]
    return [future.result() for future in futures]


def seed_summary(results: Sequence[RunResult], confidence: float = 0.95) -> dict[str, Any]:
    """Mean and confidence interval of each of :data:`SEED_METRICS` across the runs."""
    summary: dict[str, Any] = {}
    for name, read in SEED_METRICS.items():
        values = [v for v in (read(r) for r in results) if v is not None]
        if values:
            summary[name] = student_t_interval(values, confidence)
    return summary
