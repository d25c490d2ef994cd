"""The benchmark workload, shared by the harness runs and the hand-written baseline.

order_fulfillment (a read-only verification, then 4 compensatable steps; 0.25 s step timeouts,
3 tries, backoff 0.05 s doubling) under its default load and latencies (Poisson arrivals at 50
sagas per simulated second, one-way latency ``exp:0.005``, participants of capacity 8 serving in
``exp:0.002``, 60 s retention), with every fault turned off except two: 5% of actions fail
definitely and 1% of messages are lost. So there are no hangs, duplicates, reorders,
compensation failures or crashes; timeouts are armed on every step and fire whenever a lost
message leaves a step (or its compensation) without a reply.

:func:`workload_data` is the configuration as plain data (the TOML layout), on top of the
scenario's defaults; :func:`harness_config` builds the harness's configuration from it and
:func:`baseline_params` hands the same numbers to :func:`benchmarks.baseline.run_baseline`.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as ``python benchmarks/x.py`` from anywhere
    sys.path.insert(0, str(ROOT))

from sagafsm.sim.config import SimulationConfig, merge  # noqa: E402
from sagafsm.sim.selfcheck import NO_FAULTS  # noqa: E402
from simulations.order_fulfillment import scenario  # noqa: E402

SCENARIO = scenario()

FAULTS: dict[str, Any] = {"participant": {"failure_rate": 0.05}, "faults": {"loss": 0.01}}
"""The only faults of the workload, on top of :data:`NO_FAULTS`."""

ARRIVAL_RATE = 50.0
"""Sagas per simulated second (Poisson): order_fulfillment's default, a steady open load."""


def workload_data(
    sagas: int,
    seed: int = 1,
    *,
    arrival_rate: float = ARRIVAL_RATE,
    concurrency: int | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The workload's configuration data over the scenario's defaults.

    ``concurrency`` switches to a closed load (that many sagas in flight, a new one as soon as one
    ends); ``extra`` (TOML layout) goes on top of everything (the scaling benchmark uses it).
    """
    load: dict[str, Any] = {"kind": "open", "arrival_rate": arrival_rate}
    if concurrency is not None:
        load = {"kind": "closed", "concurrency": concurrency}
    data = merge(merge(SCENARIO.defaults, NO_FAULTS), FAULTS)
    data = merge(data, {"sagas": sagas, "seed": seed, "load": load})
    return merge(data, extra or {})


def harness_config(sagas: int, seed: int = 1, **options: Any) -> SimulationConfig:
    return SCENARIO.config(workload_data(sagas, seed, **options))


def baseline_params(config: SimulationConfig) -> dict[str, Any]:
    """The keyword arguments of :func:`benchmarks.baseline.run_baseline` for ``config``.

    Only what the baseline implements: the workload's fault kinds, one latency for every link.
    """
    plan, participant = config.faults, config.participant
    unsupported = {
        "hang_rate": participant.hang_rate,
        "duplicate": plan.duplicate,
        "reorder": plan.reorder,
        "orchestrator_crash_rate": plan.orchestrator_crash_rate,
        "store_latency": config.store_latency,
        "targeted": len(plan.targeted),
        "windows": len(plan.partitions)
        + len(plan.participant_crashes)
        + len(plan.orchestrator_crashes),
        "per-link or per-participant settings": len(config.links) + len(config.participants),
    }
    used = {name: value for name, value in unsupported.items() if value}
    if used:
        raise ValueError(f"the baseline does not model {', '.join(sorted(used))}")
    definition = SCENARIO.definition
    step = definition.steps[0]
    if any(
        (s.timeout, s.retry, s.compensation_retry, s.effective_compensation_timeout)
        != (
            step.timeout,
            step.retry,
            step.compensation_retry,
            step.effective_compensation_timeout,
        )
        for s in definition.steps
    ):
        raise ValueError("the baseline expects every step to share one timeout and retry policy")
    if any(not s.kind.before_pivot for s in definition.steps):
        raise ValueError("the baseline models compensatable and read-only steps only")
    load = config.load
    return {
        "sagas": config.sagas,
        "seed": config.seed,
        "arrival_rate": load.arrival_rate if load.kind == "open" else None,
        "concurrency": load.concurrency if load.kind == "closed" else None,
        "latency": config.latency.mean,
        "latency_kind": config.latency.kind,
        "service_time": participant.service_time.mean,
        "service_time_kind": participant.service_time.kind,
        "capacity": participant.capacity,
        "failure_rate": participant.failure_rate,
        "compensation_failure_rate": participant.compensation_failure_rate,
        "loss": plan.loss,
        "step_timeout": config.step_timeout or step.timeout,
        "max_attempts": config.retry_attempts or step.retry.max_attempts,
        "backoff": (step.retry.initial_backoff, step.retry.multiplier, step.retry.max_backoff),
        "compensation_timeout": step.effective_compensation_timeout,
        "compensation_attempts": step.compensation_retry.max_attempts,
        "compensation_backoff": (
            step.compensation_retry.initial_backoff,
            step.compensation_retry.multiplier,
            step.compensation_retry.max_backoff,
        ),
        "retention": config.retention,
        "termination_bound": config.termination_bound,
    }


def run_harness(sagas: int, seed: int = 1, **options: Any) -> dict[str, Any]:
    """One harness run of the workload: outcomes, trace records (events), messages, wall time."""
    from sagafsm.sim import simulate

    config = harness_config(sagas, seed, **options)
    start = time.perf_counter()
    result = simulate(SCENARIO, config)
    wall = time.perf_counter() - start
    if result.stopped is not None or not result.ok:
        raise RuntimeError(
            f"harness run did not end cleanly: {result.stopped or result.violation_counts}"
        )
    return {
        "outcomes": dict(result.outcomes),
        "events": result.events,
        "messages": {k: result.messages[k] for k in ("sent", "delivered", "dropped")},
        "faults": dict(result.faults),
        "sim_time": result.sim_time,
        "wall_seconds": wall,
    }
