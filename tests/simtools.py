"""Helpers for the simulation tests: small runs of the built-in scenarios, record collection."""

from __future__ import annotations

from collections import Counter
from typing import Any

from sagafsm.sim import RunResult, load_scenario, simulate
from sagafsm.sim.trace import Record

QUIET: dict[str, Any] = {
    "participant": {"failure_rate": 0.0, "hang_rate": 0.0, "compensation_failure_rate": 0.0},
    "faults": {"loss": 0.0, "duplicate": 0.0, "reorder": 0.0, "orchestrator_crash_rate": 0.0},
}
"""Turns every fault of a scenario's default plan off; tests add back the ones they study."""


def run(
    scenario: str = "order_fulfillment",
    data: dict[str, Any] | None = None,
    *,
    quiet: bool = False,
    **overrides: Any,
) -> tuple[RunResult, list[Record]]:
    """Run a scenario; return its result and every trace record."""
    loaded = load_scenario(scenario)
    from sagafsm.sim.config import merge

    base = merge(QUIET, data or {}) if quiet else (data or {})
    config = loaded.config(base, **overrides)
    records: list[Record] = []
    result = simulate(loaded, config, observe=records.append)
    return result, records


def effects(records: list[Record]) -> Counter[tuple[str, str, str]]:
    """(saga, step, effect) -> how many times a participant's ledger shows it."""
    return Counter((r[2], r[4], r[5]) for r in records if r[1] == "effect")


def final_states(records: list[Record]) -> dict[str, str]:
    return {r[2]: r[3] for r in records if r[1] == "finish"}
