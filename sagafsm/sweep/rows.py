"""One run as one row of the sweep's table: its settings, its figures, its digest.

Settings are named by their dotted configuration keys (``faults.loss``), exactly as ``--param``
takes them; the run's figures by the names in :data:`RESULT_COLUMNS` (outcome counts under
``outcome.``, violations per property under ``violations.``, injected faults under
``injected.``, so none can be mistaken for a setting). A row is plain data: it crosses process
and machine boundaries cheaply, and the driver keeps rows, never runs.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from typing import Any

from ..checks import PROPERTIES
from ..sim.result import RunResult

__all__ = ["RESULT_COLUMNS", "METRICS", "result_row", "settings_row", "is_result_column"]

_OUTCOMES = ("completed", "failed", "operator_required", "unfinished")
_MESSAGES = ("sent", "delivered", "dropped", "duplicated", "delayed")

METRICS: dict[str, Callable[[RunResult], float | int | None]] = {
    "throughput_per_s": lambda r: r.metrics["throughput_per_s"],
    "goodput": lambda r: r.metrics["goodput"],
    "compensation_rate": lambda r: r.metrics["compensation_rate"],
    "latency_p50": lambda r: r.metrics["latency"]["p50"],
    "latency_p95": lambda r: r.metrics["latency"]["p95"],
    "latency_p99": lambda r: r.metrics["latency"]["p99"],
    "latency_max": lambda r: r.metrics["latency"]["max"],
    "retries_per_saga": lambda r: r.metrics["retries_per_saga"],
    "messages_per_saga": lambda r: r.metrics["messages_per_saga"],
    "faults_per_saga": lambda r: r.metrics["faults_per_saga"],
    "in_flight_mean": lambda r: r.metrics["in_flight_mean"],
    "orchestrator_crashes": lambda r: r.metrics["orchestrator_crashes"],
    "store_writes": lambda r: r.metrics["store_writes"],
    "span_s": lambda r: r.metrics["span_s"],
    "sim_time": lambda r: r.sim_time,
    "events": lambda r: r.events,
    "violations": lambda r: sum(r.violation_counts.values()),
}
"""The per-run figures, as numbers (None where a run has none, e.g. no saga completed)."""

SHARES = frozenset({"goodput", "compensation_rate"})


def bounds_of(metric: str) -> tuple[float, float]:
    """The values a figure can take: a share lies in [0, 1], every other figure is >= 0."""
    return (0.0, 1.0) if metric in SHARES else (0.0, math.inf)


RESULT_COLUMNS: tuple[str, ...] = (
    *METRICS,
    *(f"violations.{name}" for name in PROPERTIES),
    *(f"outcome.{name}" for name in _OUTCOMES),
    *(f"messages.{name}" for name in _MESSAGES),
    "digest",
    "stopped",
    "wall_seconds",
)
"""Every column a run fills in, beside its settings (``injected.KIND`` and
``utilisation.PARTICIPANT`` columns follow, as the runs have them)."""

_PREFIXES = ("violations.", "outcome.", "messages.", "injected.", "utilisation.")


def is_result_column(name: str) -> bool:
    """Whether a column holds a figure of the run (not a setting, the point or the seed)."""
    return name in RESULT_COLUMNS or name.startswith(_PREFIXES)


def result_row(result: RunResult) -> dict[str, Any]:
    """The figures of one run, flat."""
    row: dict[str, Any] = {name: read(result) for name, read in METRICS.items()}
    for name in PROPERTIES:
        row[f"violations.{name}"] = result.violation_counts.get(name, 0)
    for name in _OUTCOMES:
        row[f"outcome.{name}"] = result.outcomes.get(name, 0)
    for name in _MESSAGES:
        row[f"messages.{name}"] = result.messages.get(name, 0)
    row["digest"] = result.digest
    row["stopped"] = result.stopped
    row["wall_seconds"] = result.wall_seconds
    for kind, count in result.faults.items():
        row[f"injected.{kind}"] = count
    for name, usage in result.metrics["participants"].items():
        row[f"utilisation.{name}"] = usage["utilisation"]
    return row


def settings_row(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """A configuration's plain data flattened to dotted keys; lists (windows, targeted faults)
    stay whole, as JSON text."""
    row: dict[str, Any] = {}
    for key, value in data.items():
        name = prefix + key
        if isinstance(value, Mapping):
            row.update(settings_row(value, name + "."))
        elif isinstance(value, (list, tuple)):
            row[name] = json.dumps(value, sort_keys=True)
        else:
            row[name] = value
    return row
