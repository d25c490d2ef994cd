"""Replay: one saga's timeline, from a seeded re-run or from a trace file, and its swimlane."""

from __future__ import annotations

from pathlib import Path

import pytest
from simtools import run

from sagafsm.cli import main
from sagafsm.sim.timeline import format_timeline, message_arrows, saga_timeline


def test_a_timeline_holds_only_that_saga_and_the_crashes_while_it_ran() -> None:
    """Other sagas' records are left out; the saga's records stay in time order."""
    _, records = run(sagas=30, seed=4, faults__orchestrator_crash_rate=1.0)
    story = saga_timeline(records, "s3")
    assert story and {r[2] for r in story} <= {"s3", None}
    assert [r[0] for r in story] == sorted(r[0] for r in story)
    assert "timeline of saga s3" in format_timeline(records, "s3")


def test_every_message_copy_becomes_one_arrow() -> None:
    """Sends pair with their deliveries and drops; a duplicate gives two arrows."""
    _, records = run(sagas=50, seed=5, faults__duplicate=0.3, faults__loss=0.1)
    arrows = message_arrows(records)
    copies = sum(1 for r in records if r[1] in ("deliver", "drop"))
    assert len(arrows) == copies
    assert any(a.dropped for a in arrows)


def test_replay_of_a_mutant_prints_the_violating_saga(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without --saga, replay shows the first violating saga, exits 1, and draws the swimlane."""
    png = tmp_path / "saga.png"
    status = main(
        [
            "replay",
            "order_fulfillment",
            "--sagas",
            "100",
            "--seed",
            "11",
            "--step-failure-rate",
            "0.3",
            "--mutant",
            "forward-order-compensation",
            "--swimlane",
            str(png),
        ]
    )
    out = capsys.readouterr().out
    assert status == 1
    assert "timeline of saga" in out and "VIOLATION [reverse-order]" in out
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_replay_reads_a_trace_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A JSONL trace written by simulate replays without re-running."""
    trace = tmp_path / "t.jsonl"
    assert (
        main(["simulate", "order_fulfillment", "--sagas", "40", "--trace", str(trace), "--json"])
        == 0
    )
    capsys.readouterr()
    assert main(["replay", "--trace", str(trace), "--saga", "s7"]) == 0
    out = capsys.readouterr().out
    assert "timeline of saga s7" in out and "finish" in out


def test_replay_of_an_unknown_saga_is_a_clean_error(capsys: pytest.CaptureFixture[str]) -> None:
    """A saga the run does not have: one line, exit 2."""
    assert main(["replay", "order_fulfillment", "--sagas", "5", "--saga", "s99"]) == 2
    assert "no saga 's99'" in capsys.readouterr().err
