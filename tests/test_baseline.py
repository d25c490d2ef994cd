"""The hand-written SimPy baseline does the harness's work, and the benchmark scripts run."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

from baseline import run_baseline  # noqa: E402
from workload import baseline_params, harness_config, run_harness  # noqa: E402


def both(sagas: int, seed: int, **options: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    harness = run_harness(sagas, seed, **options)
    baseline = run_baseline(**baseline_params(harness_config(sagas, seed, **options)))
    return harness, baseline


@pytest.mark.parametrize(("sagas", "seed"), [(300, 1), (300, 2), (1000, 1), (1000, 2), (1000, 3)])
def test_baseline_outcome_counts_equal_the_harness(sagas: int, seed: int) -> None:
    """Same seed, same workload: the same completed, failed and operator-required counts."""
    harness, baseline = both(sagas, seed)
    assert baseline["outcomes"] == harness["outcomes"]
    assert baseline["outcomes"]["failed"] > 0


@pytest.mark.parametrize("seed", [1, 2])
def test_baseline_sends_delivers_and_loses_the_same_messages(seed: int) -> None:
    """The baseline's network carries, delivers and drops exactly the harness's messages."""
    harness, baseline = both(1000, seed)
    assert baseline["messages"] == harness["messages"]
    assert baseline["faults"] == harness["faults"]
    assert baseline["sim_time"] == harness["sim_time"]


@pytest.mark.parametrize("seed", [1, 2])
def test_baseline_counts_the_events_the_harness_traces(seed: int) -> None:
    """Events per second compare like with like: the baseline counts the harness's trace records
    (sends, deliveries, drops, timers, lifecycle moves, effects, ignored replies, finishes)."""
    harness, baseline = both(500, seed)
    assert baseline["events"] == harness["events"]


@pytest.mark.parametrize(
    "options",
    [
        {"extra": {"faults": {"loss": 0.3}, "participant": {"compensation_failure_rate": 0.3}}},
        {"concurrency": 50, "extra": {"faults": {"loss": 0.1}}},
        {"arrival_rate": 5000.0, "extra": {"participant": {"capacity": 2}}},
    ],
    ids=["timeouts-and-failing-compensations", "closed-load", "saturated-participants"],
)
def test_baseline_matches_the_harness_off_the_benchmark_workload(options: dict[str, Any]) -> None:
    """Retries, give-ups, compensation retries, operator hand-offs, queueing: still identical."""
    harness, baseline = both(500, 1, **options)
    for key in ("outcomes", "messages", "faults", "events"):
        assert baseline[key] == harness[key], key


def test_baseline_refuses_faults_it_does_not_model() -> None:
    """A configuration with duplicates (not modelled) is refused, not silently run."""
    config = harness_config(10, 1, extra={"faults": {"duplicate": 0.1}})
    with pytest.raises(ValueError, match="duplicate"):
        baseline_params(config)


def script(name: str, *args: str) -> str:
    completed = subprocess.run(
        [sys.executable, str(BENCHMARKS / name), *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    return completed.stdout


@pytest.mark.slow
def test_bench_harness_prints_a_table_and_json() -> None:
    """bench_harness runs end to end at a tiny size: a table, then valid JSON with a ratio."""
    table = script("bench_harness.py", "--sagas", "100", "--repeats", "1")
    assert "ratio" in table and "100 sagas" in table
    data = json.loads(script("bench_harness.py", "--sagas", "100", "--repeats", "1", "--json"))
    (size,) = data["sizes"]
    assert size["sagas"] == 100 and size["same_events"]
    assert size["ratio"] > 0 and size["harness"]["sagas_per_s"] > 0


@pytest.mark.slow
def test_bench_memory_and_bench_scaling_print_tables_and_json() -> None:
    """bench_memory and bench_scaling run end to end at tiny sizes, in child processes."""
    table = script("bench_memory.py", "--sagas", "200")
    assert "peak RSS" in table
    memory = json.loads(script("bench_memory.py", "--sagas", "200", "--baseline", "--json"))
    assert [r["target"] for r in memory["runs"]] == ["harness", "baseline"]
    assert all(r["peak_rss_mb"] > 0 for r in memory["runs"])
    tiny = ["--totals", "100", "200", "--in-flight", "10", "50", "--in-flight-total", "200"]
    assert "in flight" in script("bench_scaling.py", *tiny)
    scaling = json.loads(script("bench_scaling.py", *tiny, "--json"))
    assert [r["sagas"] for r in scaling["by_total"]] == [100, 200]
    assert [r["peak_running"] for r in scaling["by_in_flight"]] == [10, 50]


def test_baseline_script_prints_json() -> None:
    """``python benchmarks/baseline.py --json`` prints the outcome counts."""
    data = json.loads(script("baseline.py", "--sagas", "50", "--json"))
    assert sum(data["outcomes"].values()) == 50
