"""``sagafsm sweep`` and ``sagafsm plot`` as a user runs them: bad values refused with one line
before anything runs, the [sweep] table of a config file, the table and figures written."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import attrs
import pytest

from sagafsm.cli import main
from sagafsm.sim import load_scenario
from sagafsm.sim.config import config_from_dict

SWEEP = ["sweep", "order_fulfillment", "--sagas", "20", "--jobs", "1"]


def refused(argv: list[str], says: str, capsys: pytest.CaptureFixture[str], output: Path) -> None:
    """Exit 2, one line on stderr naming the problem, nothing on stdout, no output directory."""
    assert main(argv if "--plots" in argv else [*argv, "--output", str(output)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert len(captured.err.splitlines()) == 1, captured.err
    assert says in captured.err, captured.err
    assert not output.exists()


@pytest.mark.parametrize(
    ("params", "says"),
    [
        # an unknown key
        (["faults.losss=0,0.1"], "unknown key 'faults.losss'"),
        (["nope=1"], "unknown key 'nope'"),
        (["faults=0.1"], "a table, not a value"),
        (["faults.partitions=[]"], "a list of tables"),
        (["faults.loss.rate=0.1"], "has no keys"),
        (["seed=1,2"], "--seeds K"),
        # a bad range
        (["faults.loss=0.2:0.1:3"], "needs LO < HI"),
        (["faults.loss=0:0.2:x"], "N must be an integer"),
        (["faults.loss=0:0.2:1"], "N must be at least 2"),
        (["faults.loss=0:0.1:0.2:3"], "is not LO:HI:N"),
        (["faults.loss=0:0.2"], "a grid needs the number of values"),
        # a value of the wrong type, or out of range
        (["faults.loss=abc"], "expected a number"),
        (["sagas=1.5"], "expected an integer"),
        (["faults.loss=nan"], "expected a finite number"),
        (["load.kind=open,sideways"], "load.kind"),
        (["faults.loss=0,1.5"], "probability"),
        (["latency=exp:-1"], "latency"),
        (["participants.bank.capacity=1"], "no participant 'bank'"),
        # empty, or not KEY=VALUES
        (["faults.loss="], "no values"),
        (["faults.loss=0,,0.1"], "an empty value"),
        (["=0.1"], "expected KEY=VALUES"),
        (["faults.loss"], "expected KEY=VALUES"),
        (["faults.loss=0", "faults.loss=0.1"], "given twice"),
    ],
)
def test_a_bad_param_is_refused_with_one_line_before_anything_runs(
    params: list[str], says: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """Every class of bad --param value: exit 2, one line, and no run (no output directory)."""
    argv = [*SWEEP, *(arg for p in params for arg in ("--param", p))]
    refused(argv, says, capsys, tmp_path / "out")


@pytest.mark.parametrize(
    ("flags", "says"),
    [
        (["--param", "faults.loss=0:0.2", "--design", "sobol", "--points", "6"], "powers of two"),
        (["--param", "faults.loss=0:0.2", "--design", "lhs"], "--points N"),
        (["--param", "faults.loss=0,0.1", "--points", "4"], "--points is for sampled designs"),
        (["--param", "faults.loss=0,0.1", "--seeds", "0"], "--seeds must be at least 1"),
        (["--param", "faults.loss=0,0.1", "--jobs", "0"], "--jobs must be at least 1"),
        (["--param", "faults.loss=0,0.1", "--mutant", "compensate-after-pivot"], "does not apply"),
        (["--param", "faults.loss=0,0.1", "--loss", "2"], "probability"),
        (["--param", "faults.loss=0,0.1", "--plots"], "--plots needs --output"),
    ],
)
def test_a_bad_design_or_base_is_refused_the_same_way(
    flags: list[str], says: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """Designs, seeds, jobs, mutants and the base configuration are checked up front too."""
    refused([*SWEEP, *flags], says, capsys, tmp_path / "out")


@pytest.mark.parametrize(
    ("table", "says"),
    [
        ("[sweep]\nrepeats = 2\n", "unknown key 'repeats'"),
        ('[sweep]\nseeds = "two"\n', "sweep.seeds must be an integer"),
        ("sweep = 3\n", "sweep must be a table"),
        ("[sweep]\nparams = 3\n", "sweep.params must be a table"),
        ('[sweep.params]\n"faults.loss" = []\n', "an empty list"),
        ('[sweep.params]\n"faults.loss" = ["a"]\n', "expected a number"),
    ],
)
def test_a_bad_sweep_table_in_the_config_file_is_refused(
    table: str, says: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """The [sweep] table is checked like the flags."""
    config = tmp_path / "sweep.toml"
    config.write_text(table)
    refused([*SWEEP, "--config", str(config)], says, capsys, tmp_path / "out")


def test_the_sweep_table_of_a_config_file_sets_the_design_and_flags_override_it(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """A [sweep] table (dotted keys quoted or nested) gives params and seeds; --param replaces
    the file's values for its key; simulate reads the same file as one run, its table ignored."""
    config = tmp_path / "sweep.toml"
    config.write_text(
        'scenario = "order_fulfillment"\nsagas = 20\n[faults]\nloss = 0.05\n'
        '[sweep]\nseeds = 2\n[sweep.params]\n"load.arrival_rate" = [20, 80]\n'
        'faults.duplicate = "0:0.1:2"\n'
    )
    argv = ["sweep", "--config", str(config), "--jobs", "1", "--json"]
    assert main([*argv, "--param", "faults.duplicate=0.05"]) == 0
    rows = json.loads(capsys.readouterr().out)["rows"]
    assert len(rows) == 2 * 1 * 2
    assert {r["load.arrival_rate"] for r in rows} == {20.0, 80.0}
    assert {r["faults.duplicate"] for r in rows} == {0.05}
    assert {r["faults.loss"] for r in rows} == {0.05} and {r["seed"] for r in rows} == {1, 2}
    assert main(["simulate", "--config", str(config), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["sagas"] == 20


def test_a_sweep_writes_its_table_and_reruns_nothing_the_second_time(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """--output writes sweep.csv (a row per point and seed) and summary.csv; the same command
    again finds every run in the cache and writes the same table."""
    out = tmp_path / "out"
    argv = [*SWEEP, "--param", "faults.loss=0:0.1:2", "--seeds", "2", "--output", str(out)]
    assert main(argv) == 0
    report = capsys.readouterr().out
    assert "grid of 2 points x 2 seeds = 4 runs, 0 from the cache" in report
    first = (out / "sweep.csv").read_text()
    with open(out / "sweep.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["point"], r["seed"], r["faults.loss"]) for r in rows] == [
        ("0", "1", "0.0"), ("0", "2", "0.0"), ("1", "1", "0.1"), ("1", "2", "0.1"),
    ]  # fmt: skip
    assert main(argv) == 0
    assert "4 from the cache" in capsys.readouterr().out
    assert (out / "sweep.csv").read_text() == first  # the cached rows, wall times included


@pytest.mark.slow
def test_a_mutant_sweep_exits_1_and_draws_its_violation_map(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """A mutant over two fault rates: exit 1 (violations found), figures and heat maps written;
    sagafsm plot redraws them from the table alone."""
    out = tmp_path / "out"
    argv = [
        "sweep", "order_fulfillment", "--sagas", "30", "--jobs", "1",
        "--mutant", "no-dedup-participant",
        "--param", "faults.duplicate=0,0.3", "--param", "faults.loss=0,0.1",
        "--output", str(out), "--plots",
    ]  # fmt: skip
    assert main(argv) == 1
    report = capsys.readouterr().out
    assert "heatmap_violations_faults.duplicate_faults.loss.png" in report
    pngs = sorted(p.name for p in out.glob("*.png"))
    assert len(pngs) == 6
    for png in out.glob("*.png"):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    figures = tmp_path / "again"
    assert main(["plot", str(out / "sweep.csv"), "--output", str(figures)]) == 0
    assert sorted(p.name for p in figures.glob("*.png")) == pngs


@pytest.mark.parametrize(
    ("content", "flags", "says"),
    [
        (None, [], "cannot read sweep table"),
        ("a,b\n1,2\n", [], "not a sweep table (no 'point' column)"),
        ("point,seed,digest\n", [], "not a sweep table (no rows)"),
        (
            "point,seed,digest,faults.loss,goodput\n0,1,x,0,1\n1,1,y,0.1,1\n",
            ["--metric", "speed"],
            "--metric 'speed'",
        ),
        (
            "point,seed,digest,faults.loss,goodput\n0,1,x,0,1\n1,1,y,0.1,1\n",
            ["--x", "faults.dup"],
            "'faults.dup': not a setting",
        ),
        ("point,seed,digest,faults.loss,goodput\n0,1,x,0,1\n0,2,y,0,1\n", [], "nothing varies"),
    ],
)
def test_plot_refuses_a_bad_table_or_flag_with_one_line(
    content: str | None, flags: list[str], says: str, capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:  # fmt: skip
    """A missing file, a CSV that is no sweep's, an unknown metric or key: exit 2, one line,
    no figure."""
    table = tmp_path / "sweep.csv"
    if content is not None:
        table.write_text(content)
    assert main(["plot", str(table), *flags]) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and says in err, err
    assert not list(tmp_path.glob("*.png"))


def test_simulate_json_carries_the_effective_configuration(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The configuration in simulate --json is the one the run used: flags and mutant
    included, and it rebuilds a configuration equal to the run's."""
    argv = ["simulate", "order_fulfillment", "--sagas", "25", "--loss", "0.03", "--json"]
    assert main([*argv, "--mutant", "no-dedup-participant"]) in (0, 1)
    report = json.loads(capsys.readouterr().out)
    config = config_from_dict(report["config"])
    assert config.sagas == 25 and config.faults.loss == 0.03
    assert config.mutant == "no-dedup-participant" and config.seed == report["seed"]
    expected = load_scenario("order_fulfillment").config(sagas=25, faults__loss=0.03)
    assert config == attrs.evolve(expected, mutant="no-dedup-participant")
    assert main(["simulate", "order_fulfillment", "--sagas", "20", "--repeat", "2", "--json"]) == 0
    runs = json.loads(capsys.readouterr().out)["runs"]
    assert [run["config"]["seed"] for run in runs] == [run["seed"] for run in runs] == [1, 2]


def test_dask_without_the_distributed_package_names_the_extra(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With distributed not importable (as without the dask extra), --dask is refused in one
    line that says what to install, and nothing runs."""
    monkeypatch.setitem(sys.modules, "distributed", None)
    argv = [*SWEEP[:-2], "--param", "faults.loss=0,0.1", "--dask", "local"]
    refused(argv, "pip install 'sagafsm[dask]'", capsys, tmp_path / "out")


def test_plots_of_a_sweep_where_nothing_varies_are_refused_before_it_runs(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """One value per key leaves nothing to draw: refused up front, not after the runs."""
    out = tmp_path / "out"
    argv = [*SWEEP, "--param", "faults.loss=0.1", "--plots", "--output", str(out)]
    refused(argv, "--plots: nothing varies", capsys, out)
