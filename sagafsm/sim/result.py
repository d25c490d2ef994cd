"""What a simulation run returns: outcomes, violations, digest, metrics — as a frozen value."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import attrs

from ..checks import Violation
from ..lifecycle import SagaState
from .coverage import Coverage
from .metrics import DurationHistogram, RunMetrics

if TYPE_CHECKING:
    from .run import _Run

__all__ = ["RunResult", "Violation", "build_result"]

_FINAL_ORDER = (SagaState.COMPLETED, SagaState.FAILED, SagaState.OPERATOR_REQUIRED)
_MAX_VIOLATIONS_IN_JSON = 200


@attrs.frozen(kw_only=True)
class RunResult:
    scenario: str
    seed: int
    sagas: int
    outcomes: Mapping[str, int]
    """Final state name -> count; sums to ``sagas`` (``unfinished`` counts the rest, if any)."""
    reasons: Mapping[str, Mapping[str, int]]
    """Final state name -> why sagas ended there (their ``SagaFinished.reason``) -> count, most
    frequent first; completed sagas have no reason."""
    violations: tuple[Violation, ...]
    violation_counts: Mapping[str, int]
    """Property -> violations found (``violations`` keeps the first thousand)."""
    digest: str
    """SHA-256 of the whole trace: equal digests, identical runs."""
    sim_time: float
    wall_seconds: float
    events: int
    """Trace records: sends, deliveries, drops, timers, transitions, ledger effects..."""
    messages: Mapping[str, int]
    faults: Mapping[str, int]
    """Injected fault kind -> count."""
    metrics: Mapping[str, Any]
    coverage: Mapping[str, Any]
    """Per lifecycle: declared transitions exercised, and the ones never exercised."""
    mutant: str | None = None
    stopped: str | None = None
    """Why the run stopped before every saga ended (None when every saga ended)."""
    durations: Mapping[str, DurationHistogram] = attrs.field(factory=dict, eq=False, repr=False)
    """Saga durations by outcome, for figures (not part of the JSON)."""

    @property
    def ok(self) -> bool:
        return not self.violations

    @property
    def sagas_per_wall_second(self) -> float:
        return self.sagas / self.wall_seconds if self.wall_seconds > 0 else 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario,
            "seed": self.seed,
            "sagas": self.sagas,
            "mutant": self.mutant,
            "stopped": self.stopped,
            "outcomes": dict(self.outcomes),
            "reasons": {state: dict(counts) for state, counts in self.reasons.items()},
            "violations": [v.to_json() for v in self.violations[:_MAX_VIOLATIONS_IN_JSON]],
            "violation_counts": dict(self.violation_counts),
            "digest": self.digest,
            "sim_time": self.sim_time,
            "wall_seconds": self.wall_seconds,
            "events": self.events,
            "messages": dict(self.messages),
            "faults": dict(self.faults),
            "metrics": dict(self.metrics),
            "coverage": dict(self.coverage),
        }


def build_result(
    run: _Run,
    digest: str,
    wall: float,
    violations: list[Violation],
    violation_counts: dict[str, int],
    coverage: Coverage,
    mutant: str | None,
) -> RunResult:
    config, metrics, network = run.config, run.metrics, run.network
    span = metrics.span
    outcomes = {state.value: metrics.outcomes[state.value] for state in _FINAL_ORDER}
    unfinished = config.sagas - sum(outcomes.values())
    if unfinished:
        outcomes["unfinished"] = unfinished
    latency: dict[str, Any] = {**_percentiles(metrics.all_durations.summary())}
    latency["by_outcome"] = {
        outcome: _percentiles(histogram.summary())
        for outcome, histogram in sorted(metrics.durations.items())
    }
    participants = {}
    window = run.usage_span  # from the first start request to the end of the run proper
    for name, p in run.participants.items():
        busy, queued, operations, longest = run.participant_usage[name]
        participants[name] = {
            "capacity": p.capacity,
            "operations": operations,
            "utilisation": busy / (p.capacity * window) if window > 0 else 0.0,
            "mean_queue": queued / window if window > 0 else 0.0,
            "max_queue": longest,
        }
    triggers = run.orchestrator.recorder.triggers
    finished = sum(metrics.outcomes.values())
    sagas = config.sagas
    return RunResult(
        scenario=run.scenario.name,
        seed=config.seed,
        sagas=config.sagas,
        outcomes=outcomes,
        reasons={
            state: dict(sorted(counts.items(), key=lambda item: (-item[1], item[0])))
            for state, counts in sorted(metrics.reasons.items())
        },
        violations=tuple(violations),
        violation_counts=violation_counts,
        digest=digest,
        sim_time=run.ended_at,
        wall_seconds=wall,
        events=run.trace.total,
        messages=attrs.asdict(network.statistics()),
        faults=dict(sorted(run.faults.items())),
        metrics={
            "throughput_per_s": metrics.throughput(),
            "goodput": metrics.goodput(),
            "span_s": span,
            "latency": latency,
            "throughput_series": _throughput_series(metrics),
            "participants": participants,
            "compensation_rate": triggers["saga", "abort"] / finished if finished else 0.0,
            "retries": {
                "action": triggers["step", "retry"],
                "compensation": triggers["step", "compensation_retry"],
            },
            "retries_per_saga": (triggers["step", "retry"] + triggers["step", "compensation_retry"])
            / sagas,
            "messages_per_saga": network.sent / sagas,
            "faults_per_saga": sum(run.faults.values()) / sagas,
            "in_flight_mean": run.occupancy.mean_in_flight(span),
            "occupancy": {
                "window_s": run.occupancy.window,
                "start_s": run.occupancy.first_window * run.occupancy.window,
                "series": run.occupancy.series(),
            },
            "orchestrator_crashes": run.orchestrator.crashes,
            "outages": [
                {"kind": kind, "node": node, "start_s": start, "end_s": end}
                for kind, node, start, end in run.down_windows
            ],
            "store_writes": run.store.writes,
        },
        coverage=coverage.summary(),
        mutant=mutant,
        stopped=run.unfinished_reason,
        durations=dict(metrics.durations),
    )


def _throughput_series(metrics: RunMetrics) -> dict[str, Any]:
    """Completed sagas per second in each window, from the first window to the last."""
    windows = metrics.completed_per_window
    if not windows:
        return {"window_s": metrics.window, "start_s": 0.0, "per_second": []}
    first, last = min(windows), max(windows)
    return {
        "window_s": metrics.window,
        "start_s": first * metrics.window,
        "per_second": [windows[k] / metrics.window for k in range(first, last + 1)],
    }


def _percentiles(summary: dict[str, float]) -> dict[str, float | None]:
    return {k: (None if math.isnan(v) else v) for k, v in summary.items()}
