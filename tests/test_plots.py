"""Figures: titles, labelled axes and units; outages and partial windows marked; violations
named and banded; written as PNG and SVG."""

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
    write_figure,
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


@pytest.mark.slow
def test_write_run_figures_writes_pngs(simulated, tmp_path: Path) -> None:
    """Every figure lands as a PNG and an SVG file, nothing half-written left behind."""
    result, _ = simulated
    written = write_run_figures(result, tmp_path)
    assert [p.suffix for p in written] == [".png", ".svg"] * 4
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in written if p.suffix == ".png")
    assert not list(tmp_path.glob("*.partial"))


@pytest.mark.slow
def test_write_run_figures_writes_svg_too(simulated, tmp_path: Path) -> None:
    """Each figure is written as PNG and as SVG; an unknown suffix or format is refused."""
    result, _ = simulated
    written = write_run_figures(result, tmp_path, formats=("svg",))
    assert len(written) == 4
    assert all(p.suffix == ".svg" and b"<svg" in p.read_bytes()[:500] for p in written)
    with pytest.raises(ValueError, match=r"\.png or \.svg"):
        write_figure(duration_figure(result), tmp_path / "x.pdf")
    with pytest.raises(ValueError, match="formats"):
        write_run_figures(result, tmp_path, formats=("gif",))


def test_time_figures_shade_every_orchestrator_crash(simulated) -> None:
    """The run crashed the orchestrator: each outage is a shaded span on both time plots."""
    result, _ = simulated
    outages = result.metrics["outages"]
    assert outages and result.metrics["orchestrator_crashes"] == len(outages)
    assert all(o["end_s"] is None or o["end_s"] >= o["start_s"] for o in outages)
    for make in (throughput_figure, occupancy_figure):
        figure = make(result)
        labels = [t.get_text() for t in figure.legends[0].get_texts()]
        assert "orchestrator down (crash)" in labels
        spans = [p for p in figure.axes[0].patches if p.get_label() == "orchestrator down (crash)"]
        assert len(spans) == 1  # one legend entry, however many crashes


def test_a_partial_last_window_is_marked_not_drawn(simulated) -> None:
    """The run ends inside its last window: that window is hatched and left out of the line."""
    result, _ = simulated
    series = result.metrics["throughput_series"]
    end_of_last = series["start_s"] + len(series["per_second"]) * series["window_s"]
    assert result.sim_time < end_of_last - 1e-9  # the fixture's run does end mid-window
    figure = throughput_figure(result)
    labels = [t.get_text() for t in figure.legends[0].get_texts()]
    assert any(label.startswith("last window, partial") for label in labels)
    (stairs,) = [p for p in figure.axes[0].patches if type(p).__name__ == "StepPatch"]
    assert len(stairs.get_data().values) == len(series["per_second"]) - 1


def test_participants_panel_shows_small_and_empty_values(simulated) -> None:
    """1% bars carry their value on an axis scaled to them; empty queues give no negative axis."""
    result, _ = simulated
    figure = participants_figure(result)
    busy, queue = figure.axes
    top = max(p["utilisation"] for p in result.metrics["participants"].values()) * 100
    assert top < 10 and busy.get_ylim()[1] <= max(5.0, top * 1.35) + 1e-9
    assert any(t.get_text().endswith("%") for t in busy.texts)
    assert queue.get_ylim()[0] == 0 and queue.get_ylim()[1] >= 1


def test_the_swimlane_names_and_bands_the_violation() -> None:
    """A mutant's violating saga: the title names the property, its records are banded."""
    from sagafsm._swimlane import VIOLATION_COLOR, violating_rows
    from sagafsm.sim import load_scenario, simulate
    from sagafsm.sim.mutants import get_mutant
    from sagafsm.sim.timeline import saga_timeline

    scenario = load_scenario("order_fulfillment")
    records: list = []
    config = scenario.config(sagas=200, seed=11, faults__duplicate=0.2)
    result = simulate(
        scenario, config, mutant=get_mutant("no-dedup-participant"), observe=records.append
    )
    violation = result.violations[0]
    figure = swimlane_figure(records, violation.saga_id, violations=result.violations)
    title = figure.axes[0].get_title(loc="left")
    assert violation.property in title and "violation" in title
    story = [r for r in saga_timeline(records, violation.saga_id) if r[1] != "forget"]
    mine = [v for v in result.violations if v.saga_id == violation.saga_id]
    rows = {row for v in mine for row in violating_rows(story, v)}
    assert rows and all(story[r][1] in ("effect", "finish") for r in rows)
    bands = [p for p in figure.axes[0].patches if p.get_facecolor()[:3] != (1.0, 1.0, 1.0)]
    assert len([b for b in bands if _is_color(b, VIOLATION_COLOR)]) == len(rows)
    clean = swimlane_figure(records, "s0", violations=[])
    assert clean.axes[0].get_title(loc="left").endswith("no violation")


def _is_color(patch, color: str) -> bool:
    from matplotlib.colors import to_rgb

    return patch.get_facecolor()[:3] == pytest.approx(to_rgb(color))


def test_swimlane_labels_do_not_overlap() -> None:
    """Crossing arrows (a late action after its compensation) get labels that do not overlap."""
    from sagafsm._swimlane import _Labels, _overlap

    labels = _Labels()
    for row in range(6):  # six arrows crossing the same middle
        labels.place("reserve_items#1", 0, row, 2, 12 - row)
    boxes = labels.boxes
    assert all(not _overlap(a, b) for i, a in enumerate(boxes) for b in boxes[i + 1 :])


def test_replay_draws_an_svg_swimlane_naming_the_violation(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`replay --swimlane FILE.svg` writes SVG, and its title names the saga's violation."""
    from sagafsm.cli import main

    target = tmp_path / "saga.svg"
    flags = ["--sagas", "100", "--seed", "11", "--step-failure-rate", "0.3"]
    mutant = ["--mutant", "forward-order-compensation"]
    assert main(["replay", "order_fulfillment", *flags, *mutant, "--swimlane", str(target)]) == 1
    capsys.readouterr()
    svg = target.read_text(encoding="utf-8")
    assert svg.lstrip().startswith("<?xml") and "reverse-order" in svg  # the title, as a comment
    assert main(["replay", "order_fulfillment", *flags, "--swimlane", str(tmp_path / "x.pdf")]) == 2
    assert "must end in .png or .svg" in capsys.readouterr().err


def test_partition_and_participant_crash_windows_are_recorded_and_named() -> None:
    """Configured windows land in metrics.outages as configured, each named in the legend."""
    from sagafsm.sim import load_scenario, simulate

    scenario = load_scenario("order_fulfillment")
    config = scenario.config(
        sagas=200,
        seed=3,
        faults__partitions=[{"participant": "payment", "start": 1.0, "end": 1.5}],
        faults__participant_crashes=[{"participant": "shipping", "start": 2.0, "end": 2.3}],
    )
    result = simulate(scenario, config)
    assert result.metrics["outages"] == [
        {"kind": "participant_partition", "node": "payment", "start_s": 1.0, "end_s": 1.5},
        {"kind": "participant_crash", "node": "shipping", "start_s": 2.0, "end_s": 2.3},
    ]
    labels = [t.get_text() for t in occupancy_figure(result).legends[0].get_texts()]
    assert {"payment partitioned", "shipping crashed"} <= set(labels)
