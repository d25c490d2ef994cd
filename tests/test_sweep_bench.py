"""benchmarks/bench_sweep.py runs end to end at a tiny size (its figures are for the README,
measured by hand: never timed in a test)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "bench_sweep.py"


@pytest.mark.slow
def test_bench_sweep_reports_every_executor_and_the_driver_memory() -> None:
    """Four tiny runs on each executor with the same digests, overheads, and the memory of a
    40-run sweep against a 10-run one."""
    argv = ["--runs", "4", "--sagas", "40", "--repeats", "1", "--memory-runs", "40", "--json"]
    completed = subprocess.run(
        [sys.executable, str(SCRIPT), *argv], capture_output=True, text=True, timeout=300,
        check=True,
    )  # fmt: skip
    report = json.loads(completed.stdout)
    assert report["runs"] == 4 and report["same_digests"]
    assert set(report["wall_s"]) == {"serial", "pool", "dask"}
    assert report["speedup_pool"] > 0 and "dask_vs_pool" in report
    assert all(value > 0 for value in report["overhead_ms_per_run"].values())
    assert report["memory"]["large"]["runs"] == 40 and report["memory"]["small"]["runs"] == 10
