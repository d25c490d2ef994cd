"""Where a sweep runs changes nothing but its wall time: the same rows and digests in this
process, on a real process pool and on a real ``distributed.LocalCluster``."""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from sagafsm.cli import main
from sagafsm.sim import load_scenario
from sagafsm.sweep import RunFailed, plan_sweep, run_sweep, useful_workers
from sagafsm.sweep.executors import cpu_count, dask_executor

SCENARIO = "order_fulfillment"


def plan() -> Any:
    base = load_scenario(SCENARIO).config(sagas=40)
    return plan_sweep(SCENARIO, {"faults.loss": "0,0.1", "faults.duplicate": "0,0.2"}, base,
                      seeds=2, mutant="no-dedup-participant")  # fmt: skip


def without_wall_time(rows: Any) -> list[dict[str, Any]]:
    return [{k: v for k, v in row.items() if k != "wall_seconds"} for row in rows]


@pytest.fixture(scope="module")
def serial_rows() -> list[dict[str, Any]]:
    return without_wall_time(run_sweep(plan()).rows)


def test_a_process_pool_gives_the_rows_of_a_serial_sweep(serial_rows: Any) -> None:
    """Eight runs on two worker processes: the same rows, in the same order, digests equal."""
    context = multiprocessing.get_context("forkserver")
    with ProcessPoolExecutor(max_workers=2, mp_context=context) as pool:
        rows = without_wall_time(run_sweep(plan(), executor=pool).rows)
    assert rows == serial_rows
    assert len({r["digest"] for r in rows}) == 8  # eight different runs, not one repeated
    assert any(r["violations"] for r in rows)  # the mutant shows where duplicates are


@pytest.mark.slow
def test_a_dask_local_cluster_gives_the_rows_of_a_serial_sweep(serial_rows: Any) -> None:
    """The same sweep through Client.get_executor() on a real LocalCluster of two worker
    processes: identical rows and digests."""
    with dask_executor("local", 2) as executor:
        rows = without_wall_time(run_sweep(plan(), executor=executor).rows)
    assert rows == serial_rows


@pytest.mark.slow
def test_the_cli_gives_the_same_table_on_the_pool_and_on_dask(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """sagafsm sweep --jobs 2 and --dask local write tables with the same digests."""
    argv = ["sweep", SCENARIO, "--sagas", "30", "--param", "faults.loss=0:0.1:3"]
    digests = []
    for where in (["--jobs", "2"], ["--dask", "local", "--jobs", "2"]):
        out = tmp_path / where[1]
        assert main([*argv, *where, "--output", str(out)]) == 0
        report = capsys.readouterr().out
        assert ("Dask at local" in report) == ("--dask" in where)
        lines = (out / "sweep.csv").read_text().splitlines()
        column = lines[0].split(",").index("digest")
        digests.append([line.split(",")[column] for line in lines[1:]])
    assert digests[0] == digests[1] and len(set(digests[0])) == 3


@pytest.mark.slow
def test_an_unreachable_dask_scheduler_is_one_line_and_exit_2(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """A scheduler that is not there: refused in one line, no table written."""
    out = tmp_path / "out"
    argv = ["sweep", SCENARIO, "--sagas", "20", "--param", "faults.loss=0,0.1"]
    assert main([*argv, "--dask", "tcp://127.0.0.1:9", "--output", str(out)]) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and "cannot reach the scheduler" in err, err
    assert not (out / "sweep.csv").exists()


def test_workers_are_capped_to_what_helps() -> None:
    """Never more workers than CPUs or runs; one run needs no pool."""
    assert useful_workers(None, 1000) == cpu_count()
    assert useful_workers(64, 1000) == cpu_count()
    assert useful_workers(64, 1) == 1 and useful_workers(1, 1000) == 1


def test_a_run_that_breaks_in_a_worker_stops_the_sweep_with_its_name(tmp_path: Path) -> None:
    """An internal error inside a worker process comes back as RunFailed naming the run (the
    original does not survive pickling), and the CLI reports it as exit 3, not as bad input."""
    scenario = tmp_path / "broken_scenario.py"
    scenario.write_text(
        "from simulations.order_fulfillment import scenario as base\n"
        "import attrs\n\n"
        "def scenario():\n"
        "    s = base()\n"
        "    def make_order(rng):\n"
        "        if rng.random() < 0.5:\n"
        "            raise ZeroDivisionError('a bug in the scenario')\n"
        "        return s.make_order(rng)\n"
        "    return attrs.evolve(s, make_order=make_order)\n"
    )
    broken = plan_sweep(str(scenario), {"faults.loss": "0,0.1"},
                        load_scenario(str(scenario)).config(sagas=20))  # fmt: skip
    context = multiprocessing.get_context("forkserver")
    pool = ProcessPoolExecutor(max_workers=2, mp_context=context)
    with pool, pytest.raises(RunFailed, match="ZeroDivisionError"):
        run_sweep(broken, executor=pool)
    argv = ["sweep", str(scenario), "--sagas", "20", "--param", "faults.loss=0,0.1"]
    assert main([*argv, "--jobs", "2"]) == 3
