"""Metric definitions on hand-built inputs with known answers, and on simulated runs."""

from __future__ import annotations

import json
import math

import pytest
from simtools import QUIET

from sagafsm.cli import main
from sagafsm.sim import load_scenario, simulate
from sagafsm.sim.metrics import DurationHistogram, Occupancy, RunMetrics, student_t_interval


def test_percentiles_are_within_one_percent_of_the_exact_ones() -> None:
    """The log-bucketed histogram answers within its 1% resolution."""
    histogram = DurationHistogram()
    values = [0.001 * (1.0007**i) for i in range(5000)]
    for value in values:
        histogram.add(value)
    ordered = sorted(values)
    for q in (50, 90, 95, 99):
        exact = ordered[math.ceil(q / 100 * len(values)) - 1]
        assert histogram.percentile(q) == pytest.approx(exact, rel=0.01)
    assert histogram.percentile(100) == pytest.approx(max(values), rel=0.01)
    assert histogram.mean == pytest.approx(sum(values) / len(values))


def test_throughput_and_goodput_follow_their_definitions() -> None:
    """Throughput: completed / (last finish - first start); goodput: completed / finished."""
    metrics = RunMetrics(window=1.0)
    for start in (1.0, 2.0, 3.0, 4.0):
        metrics.saga_started(start)
    metrics.saga_finished("completed", 1.0, 2.0)
    metrics.saga_finished("completed", 2.0, 5.0)
    metrics.saga_finished("failed", 3.0, 4.0)
    metrics.saga_finished("completed", 4.0, 11.0)
    assert metrics.span == 10.0
    assert metrics.throughput() == pytest.approx(3 / 10)
    assert metrics.goodput() == pytest.approx(3 / 4)
    assert dict(metrics.completed_per_window) == {2: 1, 5: 1, 11: 1}


def test_occupancy_integrates_time_in_each_state_exactly() -> None:
    """A saga pending for 1 s then compensating for 2 s: 1 and 2 state-seconds, by window."""
    occupancy = Occupancy(window=1.0, final=frozenset({"failed"}))
    occupancy.move(0.0, None, "pending")
    occupancy.move(1.0, "pending", "compensating")
    occupancy.move(3.0, "compensating", "failed")
    occupancy.close(10.0)
    assert dict(occupancy.area) == {"pending": 1.0, "compensating": 2.0}
    assert occupancy.series() == {"compensating": [0.0, 1.0, 1.0], "pending": [1.0, 0.0, 0.0]}
    assert occupancy.mean_in_flight(3.0) == pytest.approx(1.0)


def test_occupancy_with_a_decimal_window_terminates_and_adds_up() -> None:
    """Windows like 0.1 s, whose boundaries are not exact in binary, still partition time."""
    occupancy = Occupancy(window=0.1)
    occupancy.move(0.0, None, "pending")
    occupancy.close(0.3000000000000001)
    assert sum(occupancy.series()["pending"]) * 0.1 == pytest.approx(0.3)


def test_student_t_interval_of_a_known_sample() -> None:
    """[1, 2, 3]: mean 2, half-width t(0.975, 2) / sqrt(3) = 4.3027 / 1.7321."""
    interval = student_t_interval([1.0, 2.0, 3.0])
    assert interval["mean"] == 2.0
    assert interval["high"] - 2.0 == pytest.approx(4.302653 / math.sqrt(3), rel=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("store_latency", [0.0, 0.01])
def test_littles_law_holds_on_a_simulated_run_with_crashes(store_latency: float) -> None:
    """Mean sagas in flight = sagas finished per second x mean duration."""
    scenario = load_scenario("order_fulfillment")
    result = simulate(
        scenario,
        scenario.config(
            sagas=2000, faults__orchestrator_crash_rate=0.2, store_latency=store_latency
        ),
    )
    metrics = result.metrics
    finished_per_second = sum(result.outcomes.values()) / metrics["span_s"]
    assert metrics["in_flight_mean"] == pytest.approx(
        finished_per_second * metrics["latency"]["mean"], rel=1e-6
    )
    assert result.faults["orchestrator_crash"] > 0


def test_a_saturated_participant_queues_and_caps_throughput() -> None:
    """Arrivals above a participant's capacity: it is busy nearly always and work waits."""
    scenario = load_scenario("order_fulfillment")
    data = {"participants": {"payment": {"capacity": 1, "service_time": "const:0.01"}}}
    slow = simulate(
        scenario,
        scenario.config({**QUIET, **data}, sagas=1500, load__arrival_rate=150.0, step_timeout=60.0),
    )
    payment = slow.metrics["participants"]["payment"]
    assert payment["utilisation"] > 0.9
    assert payment["mean_queue"] > 5 and payment["max_queue"] > payment["mean_queue"]
    assert slow.metrics["throughput_per_s"] < 101  # at most 1 / 0.01 s through payment


def test_repeat_reports_a_confidence_interval_per_metric(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """--repeat K runs K seeds; the summary brackets each mean."""
    assert main(["simulate", "order_fulfillment", "--sagas", "200", "--repeat", "3", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert [run["seed"] for run in report["runs"]] == [1, 2, 3]
    for stats in report["summary"].values():
        assert stats["low"] <= stats["mean"] <= stats["high"] and stats["n"] == 3


def test_a_confidence_interval_stays_within_what_the_figure_can_take() -> None:
    """Two seeds of a share near 1: the t interval alone passes 100%; cut to its bounds it
    stops there, and the mean is untouched. Sweep summaries cut goodput to [0, 1]."""
    from sagafsm.sweep.rows import bounds_of

    free = student_t_interval([0.7, 0.99])
    cut = student_t_interval([0.7, 0.99], bounds=bounds_of("goodput"))
    assert free["high"] > 1.0 and free["low"] < 0.0
    assert cut["high"] == 1.0 and cut["low"] == 0.0 and cut["mean"] == free["mean"]
    assert bounds_of("latency_p99") == (0.0, float("inf"))
