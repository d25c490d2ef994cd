"""A run is a pure function of (scenario, configuration, seed)."""

from __future__ import annotations

import gc
import os
import subprocess
import sys

import pytest
from simtools import final_states, run

from sagafsm.sim import load_scenario, simulate
from sagafsm.sim.trace import Record


def test_same_seed_gives_the_same_digest() -> None:
    """Two runs with the same seed and faults produce byte-identical traces."""
    first, _ = run(sagas=300, seed=7, faults__orchestrator_crash_rate=0.5)
    second, _ = run(sagas=300, seed=7, faults__orchestrator_crash_rate=0.5)
    assert first.digest == second.digest
    assert first.outcomes == second.outcomes
    assert first.events == second.events


def test_the_digest_is_the_same_in_other_processes() -> None:
    """Two fresh interpreters with different string-hash seeds give this process's digest: the
    encoding depends on no object identity, interning or hash order."""
    first, _ = run(sagas=200, seed=5, faults__orchestrator_crash_rate=0.5)
    code = (
        "import sys; sys.path.insert(0, 'tests'); from simtools import run; "
        "print(run(sagas=200, seed=5, faults__orchestrator_crash_rate=0.5)[0].digest)"
    )
    for hash_seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        child = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
        )
        assert child.stdout.strip() == first.digest


def test_another_seed_gives_another_digest() -> None:
    """The seed matters: a different seed is a different run."""
    first, _ = run(sagas=300, seed=7)
    second, _ = run(sagas=300, seed=8)
    assert first.digest != second.digest


def test_latency_does_not_change_which_sagas_were_fated_to_fail() -> None:
    """Step failures are drawn per saga and step, not in event order: timing cannot move them."""
    data = {"participant": {"failure_rate": 0.1}}
    fast, fast_records = run(data=data, quiet=True, sagas=400, seed=3, latency="const:0.001")
    slow, slow_records = run(data=data, quiet=True, sagas=400, seed=3, latency="exp:0.02")
    assert fast.digest != slow.digest  # the runs really differ...
    fast_states, slow_states = final_states(fast_records), final_states(slow_records)
    failed = {saga for saga, state in fast_states.items() if state == "failed"}
    assert failed  # ...and some sagas did fail
    assert failed == {saga for saga, state in slow_states.items() if state == "failed"}


@pytest.mark.parametrize("style", ["orchestration", "choreography"])
def test_a_run_pauses_the_cyclic_collector_and_puts_it_back(style: str) -> None:
    """The collector is off while a run runs (sagafsm.sim.collector) and as it was afterwards:
    on again, and still off for a caller that had turned it off."""
    loaded = load_scenario("order_fulfillment")
    seen: list[bool] = []

    def observe(record: Record) -> None:
        if record[1] == "start":
            seen.append(gc.isenabled())

    assert gc.isenabled()
    simulate(loaded, loaded.config({"sagas": 20, "style": style}), observe=observe)
    assert seen and not any(seen) and gc.isenabled()
    gc.disable()
    try:
        simulate(loaded, loaded.config({"sagas": 5, "style": style}))
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_a_run_leaves_almost_nothing_to_the_cyclic_collector() -> None:
    """Why pausing the collector is safe: reference counting frees what a run allocates, so the
    garbage left for the collector stays a few hundred objects, not a few per saga."""
    loaded = load_scenario("order_fulfillment")
    simulate(loaded, loaded.config({"sagas": 20}))
    gc.collect()
    gc.disable()
    try:
        simulate(loaded, loaded.config({"sagas": 2000}))
        left = gc.collect()
    finally:
        gc.enable()
    assert left < 2000 / 4
