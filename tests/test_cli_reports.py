"""What the reports say: the version, violation totals by property, one unit per figure in the
--repeat summary, English without "(s)" or doubled quotes, and a run starved by its own crash
plan explained rather than reported as termination violations."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

import sagafsm
from sagafsm.cli import main

SMALL = ["--sagas", "200", "--seed", "2"]
BAD_ENGLISH = re.compile(r"\w\((s|es|ies)\)|''s\b|\b1 (crashes|starts|sagas|faults|tries)\b")


def test_version_prints_the_package_version() -> None:
    """`sagafsm --version` prints the installed version, exit 0."""
    done = subprocess.run(
        [sys.executable, "-m", "sagafsm", "--version"], capture_output=True, text=True
    )
    assert done.returncode == 0
    assert done.stdout.strip() == f"sagafsm {sagafsm.__version__}"


def test_the_text_report_totals_violations_by_property(capsys: pytest.CaptureFixture[str]) -> None:
    """A mutant's report lists each violated property with its count, the counts sum to the
    total, and they match --json's violation_counts."""
    argv = ["simulate", "order_fulfillment", *SMALL, "--mutant", "no-dedup-participant",
            "--duplicate", "0.3"]  # fmt: skip
    assert main(argv) == 1
    text = capsys.readouterr().out
    assert main([*argv, "--json"]) == 1
    counts = json.loads(capsys.readouterr().out)["violation_counts"]
    block = text.split("VIOLATIONS (", 1)[1]
    total = int(block.split(")", 1)[0].replace(",", ""))
    assert total == sum(counts.values()) > 20
    for name, count in counts.items():
        assert re.search(rf"^  {re.escape(name)}\s+{count:,}$", block, re.M), (name, block)
    assert not BAD_ENGLISH.search(text), BAD_ENGLISH.search(text)


def test_the_repeat_summary_uses_one_unit_per_figure(capsys: pytest.CaptureFixture[str]) -> None:
    """Every latency of the --repeat summary is in the unit its header names (no 'ms' beside
    's'), and each mean line says its unit."""
    assert main(["simulate", "order_fulfillment", *SMALL, "--repeat", "3", "--loss", "0.2",
                 "--timeout", "0.05"]) == 0  # fmt: skip
    out = capsys.readouterr().out
    summary = out[out.index("3 seeds") :]
    unit = re.search(r"p99 \((ms|s)\)", summary)
    assert unit is not None
    rows = summary.split("mean and 95%")[0].splitlines()[2:]
    assert len(rows) == 3
    assert not any(re.search(r"\d\s*(ms|s)\b", row) for row in rows)  # numbers only, one unit
    means = summary.split("(Student's t)\n", 1)[1].splitlines()
    latency = [line for line in means if line.strip().startswith("latency_")]
    assert latency and all(line.endswith(f"  {unit.group(1)}") for line in latency)
    assert all(re.search(r"\]\s+\S", line) for line in means)  # every figure names its unit


@pytest.mark.slow
def test_explore_speaks_english(capsys: pytest.CaptureFixture[str]) -> None:
    """'1 tr(ies) per action', 'saga(s)', 'fault(s)': each count in its own number."""
    assert main(["explore", "order_fulfillment", "--mutant", "no-tombstone", "--seed", "3"]) == 1
    out = capsys.readouterr().out
    assert re.search(r"plan: \d+ sagas?, \d+ faults?, \d+ (try|tries) per action", out), out
    assert not BAD_ENGLISH.search(out), BAD_ENGLISH.search(out)


def test_a_possessive_on_a_quoted_name_is_not_written(capsys: pytest.CaptureFixture[str]) -> None:
    """Violation details said "step 'rent_car''s action"; they say "the action of step ..."."""
    faults = ["--loss", "0.2", "--reorder", "0.5", "--timeout", "0.05"]
    argv = ["simulate", "order_fulfillment", *SMALL, "--mutant", "no-tombstone", *faults]
    assert main([*argv, "--json"]) == 1
    details = [v["detail"] for v in json.loads(capsys.readouterr().out)["violations"]]
    assert details and not any("''s" in d for d in details)


def test_a_run_starved_by_its_crash_plan_is_explained_not_called_a_violation(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """1000 crashes/s with 1 s down: the orchestrator is never up long enough; the report says
    why termination was not judged (and how to judge it), lists no termination violation, and
    the exit status is 0; --json carries the same sentence."""
    config = tmp_path / "starved.toml"
    config.write_text(
        "sagas = 5\ntermination_bound = 5.0\n"
        '[faults]\norchestrator_crash_rate = 1000.0\norchestrator_downtime = "const:1"\n'
    )
    argv = ["simulate", "order_fulfillment", "--config", str(config)]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "NOT JUDGED          termination:" in out and "faults.until" in out
    assert "[termination]" not in out and "violations          none" in out
    assert main([*argv, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["not_judged"].startswith("termination:")
    assert report["violation_counts"]["termination"] > 0  # the raw counts are still there


def test_a_run_stopped_inside_a_crash_window_is_explained_not_called_a_violation(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An orchestrator crash window that outlasts the run: termination is not judged, and the
    report names the window."""
    config = tmp_path / "window.toml"
    config.write_text(
        "sagas = 5\ntermination_bound = 5.0\n"
        "[[faults.orchestrator_crashes]]\nstart = 0.01\nend = 1e9\n"
    )
    assert main(["simulate", "order_fulfillment", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert "NOT JUDGED          termination: the orchestrator was down until 1e+09 s" in out
    assert "[termination]" not in out


def test_the_same_unfinished_sagas_are_violations_when_the_orchestrator_is_mostly_up(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The explanation is no blanket excuse: a broken system (send-before-save) under its mild
    crash plan (2 crashes/s, 0.1 s down) still reports its unfinished saga as a termination
    violation, exit 1."""
    config = tmp_path / "mild.toml"
    config.write_text(
        "sagas = 400\nseed = 11\nstore_latency = 0.005\n"
        '[faults]\norchestrator_crash_rate = 2.0\norchestrator_downtime = "const:0.1"\n'
    )
    argv = ["simulate", "order_fulfillment", "--config", str(config), "--mutant",
            "send-before-save"]  # fmt: skip
    assert main(argv) == 1
    out = capsys.readouterr().out
    assert "NOT JUDGED" not in out
    assert re.search(r"^  termination\s+\d+$", out, re.M), out
