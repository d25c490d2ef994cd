"""Figures: each has titles, labelled axes and units, and is written as PNG."""

from __future__ import annotations

from pathlib import Path

import pytest
from simtools import run

from sagafsm.plots import (
    duration_figure,
    occupancy_figure,
    participants_figure,
    swimlane_figure,
    throughput_figure,
    write_run_figures,
)


@pytest.fixture(scope="module")
def simulated() -> tuple:
    return run(sagas=400, seed=2, faults__orchestrator_crash_rate=0.5)


@pytest.mark.parametrize(
    ("make", "xlabel", "ylabel"),
    [
        (
            duration_figure,
            "saga duration (simulated seconds, log scale)",
            "sagas per 10% duration bin",
        ),
        (throughput_figure, "simulated time (s)", "completed sagas per second"),
        (occupancy_figure, "simulated time (s)", "sagas (mean per"),
        (participants_figure, "", "utilisation (% of capacity busy)"),
    ],
)
def test_run_figures_have_titled_labelled_axes(simulated, make, xlabel: str, ylabel: str) -> None:
    """The first axes carries the documented labels, and every axes a title."""
    result, _ = simulated
    figure = make(result)
    first = figure.axes[0]
    assert first.get_xlabel() == xlabel
    assert first.get_ylabel().startswith(ylabel)
    assert all(axes.get_title() for axes in figure.axes)
    assert first.has_data()


def test_swimlane_has_one_lane_per_party(simulated) -> None:
    """Orchestrator first, then each participant the saga talked to."""
    _, records = simulated
    figure = swimlane_figure(records, "s5")
    labels = [t.get_text() for t in figure.axes[0].get_xticklabels()]
    assert labels[0] == "orchestrator" and "inventory" in labels


def test_write_run_figures_writes_pngs(simulated, tmp_path: Path) -> None:
    """Every figure lands as a PNG file, nothing half-written left behind."""
    result, _ = simulated
    written = write_run_figures(result, tmp_path)
    assert len(written) == 4
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in written)
    assert not list(tmp_path.glob("*.partial"))
