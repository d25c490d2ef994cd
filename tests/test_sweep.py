"""Sweeps from Python: parameters read against the configuration's types, designs, the table,
and the cache that lets a sweep resume or grow."""

from __future__ import annotations

import math
import re
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from simtools import QUIET

from sagafsm.checks import PROPERTIES
from sagafsm.errors import InvalidConfig, MissingExtra
from sagafsm.sim import load_scenario
from sagafsm.sim.config import config_from_dict, config_to_dict
from sagafsm.sweep import (
    Parameter,
    SweepTable,
    design_points,
    parameter_from_value,
    plan_sweep,
    read_table,
    run_sweep,
)

SCENARIO = "order_fulfillment"


def base(**overrides: Any) -> Any:
    return load_scenario(SCENARIO).config(**{"sagas": 30, **overrides})


def comparable(table: SweepTable) -> list[dict[str, Any]]:
    """The rows without wall time, the one figure that depends on where a run ran."""
    return [{k: v for k, v in row.items() if k != "wall_seconds"} for row in table.rows]


def test_a_range_gives_n_evenly_spaced_values_both_ends_included() -> None:
    """faults.loss=0:0.2:5 is 0, 0.05, 0.1, 0.15, 0.2."""
    values = parameter_from_value("faults.loss", "0:0.2:5").values
    assert len(values) == 5
    assert all(math.isclose(a, b) for a, b in zip(values, (0, 0.05, 0.1, 0.15, 0.2), strict=True))


def test_values_take_the_type_of_their_key() -> None:
    """An integer key gives integers (a range is rounded), a text key keeps text, a list of
    numbers gives floats, and none is None where the key may be unset."""
    assert parameter_from_value("sagas", "100:400:4").values == (100, 200, 300, 400)
    assert parameter_from_value("participants.payment.capacity", "1,2").values == (1, 2)
    assert parameter_from_value("latency", "exp:0.005,const:0.01").values == (
        "exp:0.005",
        "const:0.01",
    )
    assert parameter_from_value("load.arrival_rate", "20,50").values == (20.0, 50.0)
    assert parameter_from_value("step_timeout", "none,0.5").values == (None, 0.5)
    assert parameter_from_value("faults.loss", [0, 0.1]).values == (0.0, 0.1)


def test_a_grid_runs_every_combination_once() -> None:
    """Three losses by two rates: six points, each pair once."""
    params = [
        parameter_from_value("faults.loss", "0,0.1,0.2"),
        parameter_from_value("load.arrival_rate", "20,100"),
    ]
    points = design_points(params, "grid")
    pairs = [(p["faults.loss"], p["load.arrival_rate"]) for p in points]
    assert len(pairs) == 6 and len(set(pairs)) == 6
    assert {a for a, _ in pairs} == {0.0, 0.1, 0.2} and {b for _, b in pairs} == {20.0, 100.0}


@pytest.mark.parametrize("design", ["lhs", "sobol"])
def test_a_sampled_design_puts_one_point_in_each_stratum_of_every_range(design: Any) -> None:
    """16 points over a range: each sixteenth of it holds exactly one (what a Latin hypercube
    promises, and a Sobol sequence's first 2**m points too; plain random draws would not)."""
    params = [
        parameter_from_value("faults.loss", "0:0.2"),
        parameter_from_value("load.arrival_rate", "10:110"),
    ]
    points = design_points(params, design, points=16, seed=3)
    assert len(points) == 16
    for p in params:
        assert p.span is not None
        low, high = p.span
        strata = sorted(int((point[p.key] - low) / (high - low) * 16) for point in points)
        assert strata == list(range(16)), p.key


def test_a_sampled_design_is_reproducible_from_its_seed() -> None:
    """The same seed draws the same points (a cached sweep resumes onto them); another does not."""
    params = [parameter_from_value("faults.loss", "0:0.2")]
    assert design_points(params, "lhs", 8, seed=1) == design_points(params, "lhs", 8, seed=1)
    assert design_points(params, "lhs", 8, seed=1) != design_points(params, "lhs", 8, seed=2)


def test_a_list_in_a_sampled_design_is_drawn_as_categories() -> None:
    """A list is sampled among its values only, each of them."""
    params = [
        parameter_from_value("load.kind", "open,closed"),
        parameter_from_value("faults.loss", "0:0.1"),
    ]
    points = design_points(params, "lhs", 20, seed=0)
    assert {p["load.kind"] for p in points} == {"open", "closed"}
    integers = design_points([parameter_from_value("sagas", "10:20")], "lhs", 10, seed=0)
    assert all(isinstance(p["sagas"], int) and 10 <= p["sagas"] <= 20 for p in integers)


@pytest.mark.parametrize(
    ("params", "design", "points", "says"),
    [
        ({"faults.loss": "0:0.2"}, "grid", None, "a grid needs the number of values"),
        ({"faults.loss": "0:0.2:3"}, "grid", 4, "--points is for sampled designs"),
        ({"faults.loss": "0:0.2"}, "lhs", None, "--points N"),
        ({"faults.loss": "0:0.2"}, "sobol", 12, "powers of two (try 8 or 16)"),
        ({"faults.loss": "0:0.2"}, "halton", 8, "unknown"),
        ({}, "lhs", 8, "at least one --param"),
    ],
)
def test_a_design_that_cannot_be_made_is_refused(
    params: dict[str, str], design: Any, points: int | None, says: str
) -> None:
    """Each refusal says what to give instead."""
    with pytest.raises(InvalidConfig, match=re.escape(says)):
        plan_sweep(SCENARIO, params, base(), design=design, points=points)


@given(key=st.sampled_from(["faults.loss", "sagas", "load.kind", "step_timeout", "latency"]),
       text=st.text(max_size=12))  # fmt: skip
@settings(max_examples=150, deadline=None)
def test_any_text_for_a_value_is_a_parameter_or_one_invalid_config(key: str, text: str) -> None:
    """Whatever a user types after KEY=, it is accepted as values of the key's type, or refused
    as InvalidConfig; nothing else escapes."""
    try:
        parameter = parameter_from_value(key, text)
    except InvalidConfig as error:
        assert "\n" not in str(error) and key in str(error)
        return
    assert isinstance(parameter, Parameter) and (parameter.values or parameter.span)


def test_every_point_is_checked_before_the_sweep_starts() -> None:
    """A value the configuration refuses (a probability of 1.5) is refused with its key, from
    plan_sweep, before any run."""
    with pytest.raises(InvalidConfig, match=r"faults\.loss.*probability"):
        plan_sweep(SCENARIO, {"faults.loss": "0.1,1.5"}, base())
    with pytest.raises(InvalidConfig, match="no participant 'bank'"):
        plan_sweep(SCENARIO, {"participants.bank.capacity": "1,2"}, base())
    with pytest.raises(InvalidConfig, match="does not apply"):
        plan_sweep("travel_booking", {"faults.loss": "0,0.1"}, mutant="compensate-read-only")


def test_the_table_has_every_setting_every_figure_and_a_row_per_point_and_seed() -> None:
    """2 points x 2 seeds: 4 rows, seeds base.seed and the next, with the swept value, the rest
    of the configuration, a violations column per property and outcomes summing to the sagas."""
    plan = plan_sweep(SCENARIO, {"faults.loss": "0,0.1"}, base(seed=5), seeds=2)
    table = run_sweep(plan)
    assert [(r["point"], r["seed"]) for r in table.rows] == [(0, 5), (0, 6), (1, 5), (1, 6)]
    row = table.rows[2]
    assert row["faults.loss"] == 0.1 and row["sagas"] == 30 and row["load.kind"] == "open"
    assert {f"violations.{p}" for p in PROPERTIES} <= set(row)
    outcomes = sum(v for k, v in row.items() if k.startswith("outcome."))
    assert outcomes == 30
    assert all(isinstance(r["digest"], str) and len(r["digest"]) == 64 for r in table.rows)
    assert table.rows[0]["digest"] != table.rows[1]["digest"]  # another seed, another run
    summary = table.summary()
    assert [s["runs"] for s in summary] == [2, 2]
    for entry in summary:
        assert entry["goodput.low"] <= entry["goodput.mean"] <= entry["goodput.high"]


def test_a_row_is_the_run_its_configuration_gives(tmp_path: Path) -> None:
    """A sweep's row holds the digest that simulate gives for the same configuration."""
    from sagafsm.sim import simulate

    plan = plan_sweep(SCENARIO, {"faults.duplicate": "0.3"}, base())
    [row] = run_sweep(plan).rows
    config = config_from_dict(plan.runs[0].data)
    assert config.faults.duplicate == 0.3
    assert simulate(load_scenario(SCENARIO), config).digest == row["digest"]
    assert config_to_dict(config) == plan.runs[0].data


def test_a_mutant_shows_on_its_violation_map_only_where_the_faults_expose_it() -> None:
    """no-dedup-participant applies a duplicate twice: no duplicates, no violation; with them,
    no-duplicate-effect violations, counted in the table per property."""
    plan = plan_sweep(
        SCENARIO,
        {"faults.duplicate": "0,0.3"},
        load_scenario(SCENARIO).config(QUIET, sagas=30),
        mutant="no-dedup-participant",
    )
    clean, broken = run_sweep(plan).rows
    assert clean["mutant"] == broken["mutant"] == "no-dedup-participant"
    assert clean["violations"] == 0
    assert broken["violations.no-duplicate-effect"] > 0
    assert broken["violations"] >= broken["violations.no-duplicate-effect"]


def test_a_finished_sweep_reruns_nothing_and_an_extended_one_only_its_new_points(
    tmp_path: Path,
) -> None:
    """Runs are cached by their configuration: the same sweep again is all cached and equal;
    one more value and one more seed run only the runs that are new."""
    cache = tmp_path / "runs"
    first = run_sweep(plan_sweep(SCENARIO, {"faults.loss": "0,0.1"}, base()), cache=cache)
    assert first.from_cache == 0 and len(list(cache.glob("*.json"))) == 2
    again = run_sweep(plan_sweep(SCENARIO, {"faults.loss": "0,0.1"}, base()), cache=cache)
    assert again.from_cache == 2 and again.rows == first.rows
    bigger = plan_sweep(SCENARIO, {"faults.loss": "0,0.1,0.2"}, base(), seeds=2)
    grown = run_sweep(bigger, cache=cache)
    assert len(grown.rows) == 6 and grown.from_cache == 2
    assert [r for r in grown.rows if r["seed"] == 1 and r["faults.loss"] < 0.15] == first.rows


def test_an_interrupted_sweep_resumes_with_the_runs_it_finished(tmp_path: Path) -> None:
    """Stopped after two runs (an interrupt from the progress callback), the cache keeps those
    two; the next run of the same sweep does the other two and gives the uninterrupted table."""
    plan = plan_sweep(SCENARIO, {"faults.loss": "0,0.05,0.1,0.15"}, base())
    cache = tmp_path / "runs"

    def interrupt_after_two(done: int, total: int) -> None:
        if done == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_sweep(plan, cache=cache, progress=interrupt_after_two)
    assert len(list(cache.glob("*.json"))) == 2 and not list(cache.glob("*.partial"))
    seen: list[tuple[int, int]] = []
    resumed = run_sweep(plan, cache=cache, progress=lambda d, t: seen.append((d, t)))
    assert resumed.from_cache == 2 and seen == [(2, 4), (3, 4), (4, 4)]
    assert comparable(resumed) == comparable(run_sweep(plan))


def test_a_changed_setting_is_a_new_run_not_a_cached_one(tmp_path: Path) -> None:
    """The cache key is the whole effective configuration: another base (more sagas) shares
    no run with the first sweep."""
    cache = tmp_path / "runs"
    run_sweep(plan_sweep(SCENARIO, {"faults.loss": "0,0.1"}, base()), cache=cache)
    other = run_sweep(plan_sweep(SCENARIO, {"faults.loss": "0,0.1"}, base(sagas=31)), cache=cache)
    assert other.from_cache == 0 and all(r["sagas"] == 31 for r in other.rows)


def test_the_table_written_as_csv_reads_back_with_its_parameters(tmp_path: Path) -> None:
    """sweep.csv and summary.csv are written; read back, the table has the same rows (None as
    an empty cell) and finds the swept keys as the settings that vary."""
    plan = plan_sweep(
        SCENARIO, {"faults.loss": "0,0.1", "step_timeout": "none,0.5"}, base(), seeds=2
    )
    table = run_sweep(plan)
    written = table.write(tmp_path)
    assert {p.name for p in written} >= {"sweep.csv", "summary.csv"}
    back = read_table(tmp_path / "sweep.csv")
    assert back.parameters == ("faults.loss", "step_timeout")
    assert [r["digest"] for r in back.rows] == [r["digest"] for r in table.rows]
    assert [r["step_timeout"] for r in back.rows] == [r["step_timeout"] for r in table.rows]
    assert back.rows[0]["goodput"] == pytest.approx(table.rows[0]["goodput"])
    summary = (tmp_path / "summary.csv").read_text().splitlines()
    assert len(summary) == 1 + 4 and "goodput.mean" in summary[0]


def test_a_morris_design_ranks_the_key_that_matters_above_one_that_does_not() -> None:
    """Message loss moves goodput; the participants' record retention (far longer than these
    runs) cannot: Morris puts loss first, with retention's effect exactly zero."""
    from sagafsm.sweep.sensitivity import morris_indices

    plan = plan_sweep(SCENARIO, {"faults.loss": "0:0.3", "retention": "30:90"}, base(sagas=60),
                      design="morris", points=3)  # fmt: skip
    assert len(plan.points) == 3 * (2 + 1)
    moved = [
        sum(a[k] != b[k] for k in a) for a, b in zip(plan.points, plan.points[1:], strict=False)
    ]
    assert moved.count(1) >= 6  # along a trajectory, one key moves at a time
    effects = morris_indices(run_sweep(plan), plan.parameters, "goodput")
    assert [e["key"] for e in effects] == ["faults.loss", "retention"]
    assert effects[0]["mu_star"] > 0.1 and effects[1]["mu_star"] == 0


def test_a_morris_design_needs_ranges_and_salib(monkeypatch: pytest.MonkeyPatch) -> None:
    """A list cannot be walked one step at a time; without SALib, the refusal names the extra."""
    with pytest.raises(InvalidConfig, match="needs a range LO:HI"):
        plan_sweep(SCENARIO, {"load.kind": "open,closed"}, base(), design="morris", points=2)
    monkeypatch.setitem(sys.modules, "SALib", None)
    with pytest.raises(MissingExtra, match=re.escape("pip install 'sagafsm[sensitivity]'")):
        plan_sweep(SCENARIO, {"faults.loss": "0:0.1"}, base(), design="morris", points=2)
