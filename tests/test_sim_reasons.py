"""Why sagas did not complete: every failed saga's reason counted, bounded, reported."""

from __future__ import annotations

import json

import pytest

from sagafsm.cli import main
from sagafsm.sim import load_scenario, simulate
from sagafsm.sim.metrics import MAX_REASONS, OTHER_REASONS, RunMetrics
from sagafsm.sim.report import format_report


def test_every_failed_saga_is_counted_under_its_reason() -> None:
    """The reasons of failed sagas add up to the failed count; completed sagas have none."""
    scenario = load_scenario("order_fulfillment")
    result = simulate(scenario, scenario.config(sagas=600, seed=3))
    assert result.outcomes["failed"] > 0
    assert sum(result.reasons["failed"].values()) == result.outcomes["failed"]
    assert "completed" not in result.reasons
    assert any("customer blocked" in reason for reason in result.reasons["failed"])
    counts = list(result.reasons["failed"].values())
    assert counts == sorted(counts, reverse=True)  # most frequent first


def test_the_report_and_the_json_carry_the_reasons(capsys: pytest.CaptureFixture[str]) -> None:
    """The text report lists the reasons under their outcome; --json has them in full."""
    assert main(["simulate", "order_fulfillment", "--sagas", "300", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert sum(data["reasons"]["failed"].values()) == data["outcomes"]["failed"]
    scenario = load_scenario("order_fulfillment")
    result = simulate(scenario, scenario.config(sagas=300))
    report = format_report(result)
    top = next(iter(result.reasons["failed"]))
    assert f"  {top}" in report
    assert report.index(top) > report.index("  failed ")


def test_distinct_reasons_are_capped_so_memory_does_not_grow_with_sagas() -> None:
    """Past MAX_REASONS distinct reasons per outcome, new ones are counted together."""
    metrics = RunMetrics()
    for i in range(MAX_REASONS + 30):
        metrics.saga_finished("failed", 0.0, 1.0, f"saga {i} failed its own way")
    metrics.saga_finished("failed", 0.0, 1.0, "saga 0 failed its own way")
    reasons = metrics.reasons["failed"]
    assert len(reasons) == MAX_REASONS + 1
    assert reasons[OTHER_REASONS] == 30
    assert reasons["saga 0 failed its own way"] == 2
    assert sum(reasons.values()) == metrics.outcomes["failed"]
