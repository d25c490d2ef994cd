"""`sagafsm simulate`: the report, --json, --plots, --trace, and clean failures on bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from sagafsm.cli import main

SMALL = ["order_fulfillment", "--sagas", "200", "--seed", "2"]


def test_json_output_has_the_documented_keys(capsys: pytest.CaptureFixture[str]) -> None:
    """--json prints one object with outcomes summing to the sagas and the metrics asked for."""
    assert main(["simulate", *SMALL, "--json", "--loss", "0.02"]) == 0
    report = json.loads(capsys.readouterr().out)
    for key in (
        "scenario",
        "seed",
        "sagas",
        "outcomes",
        "violations",
        "digest",
        "sim_time",
        "wall_seconds",
        "events",
        "messages",
        "faults",
        "metrics",
    ):
        assert key in report
    assert sum(report["outcomes"].values()) == report["sagas"] == 200
    assert report["violations"] == []
    assert report["faults"]["loss"] > 0
    latency = report["metrics"]["latency"]
    assert {"p50", "p95", "p99"} <= latency.keys()
    assert latency["p50"] <= latency["p95"] <= latency["p99"]
    assert {"p50", "p95", "p99"} <= latency["by_outcome"]["completed"].keys()
    assert report["metrics"]["throughput_per_s"] > 0


def test_the_readable_report_names_outcomes_and_faults(capsys: pytest.CaptureFixture[str]) -> None:
    """Without --json the report is text with the outcome table and the digest."""
    assert main(["simulate", *SMALL]) == 0
    out = capsys.readouterr().out
    assert "completed" in out and "trace digest" in out and "faults injected" in out


@pytest.mark.slow
def test_plots_and_trace_are_written(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--plots writes PNG figures; --trace writes one JSON record per line."""
    trace = tmp_path / "run.jsonl"
    assert (
        main(["simulate", *SMALL, "--plots", str(tmp_path / "plots"), "--trace", str(trace)]) == 0
    )
    pngs = sorted((tmp_path / "plots").glob("*.png"))
    assert len(pngs) >= 2
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs)
    lines = trace.read_text().splitlines()
    assert json.loads(lines[0])["kind"] == "start"
    assert {json.loads(line)["kind"] for line in lines} >= {"send", "deliver", "effect", "finish"}
    assert not list(tmp_path.glob("*.partial*"))


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--loss", "1.5"], "faults.loss: must be a probability in [0, 1]"),
        (["--arrival-rate", "-2"], "load.arrival_rate: must be a finite number > 0"),
        (["--latency", "exp"], "not a distribution"),
        (["--timeout", "0"], "step_timeout: must be"),
    ],
)
def test_bad_flags_exit_2_with_one_line_and_write_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], flags: list[str], message: str
) -> None:
    """A bad value: exit status 2, one readable line on stderr, no plots, no trace file."""
    status = main(
        [
            "simulate",
            *SMALL,
            *flags,
            "--plots",
            str(tmp_path / "plots"),
            "--trace",
            str(tmp_path / "t.jsonl"),
        ]
    )
    err = capsys.readouterr().err
    assert status == 2
    assert message in err and len(err.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


def test_a_config_file_with_an_unknown_key_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An unknown key in --config is one line naming it, exit 2."""
    config = tmp_path / "c.toml"
    config.write_text("[faults]\nlosss = 0.1\n")
    assert main(["simulate", *SMALL, "--config", str(config)]) == 2
    assert "config.faults: unknown key 'losss'" in capsys.readouterr().err


def test_unknown_scenario_and_bad_flag_types_fail_without_traceback() -> None:
    """Unknown scenario and a non-numeric flag: exit 2, no Python traceback."""
    for args in (["simulate", "no_such_saga"], ["simulate", "order_fulfillment", "--sagas", "x"]):
        done = subprocess.run(
            [sys.executable, "-m", "sagafsm", *args], capture_output=True, text=True
        )
        assert done.returncode == 2
        assert "Traceback" not in done.stderr and done.stderr.strip()


def test_a_users_scenario_file_runs_by_path(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A .py file with a scenario() function is a scenario."""
    source = Path(__file__).parent / "data" / "two_step_scenario.py"
    assert main(["simulate", str(source), "--sagas", "50", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["scenario"] == "two_step" and sum(report["outcomes"].values()) == 50
