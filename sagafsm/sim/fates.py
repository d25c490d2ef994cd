"""What both simulated worlds (orchestrated and choreographed) draw the same way: each saga's
step fates, with the configuration's targeted faults forced in, and the faulty network."""

from __future__ import annotations

import random
from array import array
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import simpy

from .config import SimulationConfig
from .network import Network
from .participant import FATE_SIZE, Fates
from .streams import stream

__all__ = ["ForcedFates", "forced_fates", "draw_fates", "make_network"]

# Pre-drawn (fail, hang, lands) uniforms that force an outcome whatever the rates: a draw below
# every rate, or above every rate.
_FORCED: dict[str, dict[int, float]] = {
    "fail": {0: -1.0, 1: 2.0, 2: 2.0},
    "hang": {0: 2.0, 1: -1.0, 2: 2.0},
    "hang_lands": {0: 2.0, 1: -1.0, 2: -1.0},
    "compensation_fail": {3: -1.0},
}

ForcedFates = dict[str, dict[str, dict[int, float]]]
"""saga -> step -> {position in the step's fate: forced value}."""


def forced_fates(config: SimulationConfig) -> ForcedFates:
    """The fate positions the configuration's targeted faults force, by saga and step."""
    forced: ForcedFates = {}
    for fault in config.faults.targeted:
        if fault.step is not None:
            at = forced.setdefault(fault.saga, {}).setdefault(fault.step, {})
            at.update(_FORCED[fault.fault])
    return forced


def draw_fates(
    rng: random.Random, steps: Sequence[str], forced: Mapping[str, Mapping[int, float]]
) -> Fates:
    """One saga's fates: four uniforms per step, in step order, then the forced positions."""
    fates = array("d", [rng.random() for _ in range(FATE_SIZE * len(steps))])
    for step, positions in forced.items():
        if step in steps:
            at = FATE_SIZE * steps.index(step)
            for position, value in positions.items():
                fates[at + position] = value
    return fates


def make_network(
    env: simpy.Environment, config: SimulationConfig, trace: Any, faults: Counter[str]
) -> Network:
    """The run's network, on its own streams of the seed."""
    seed = config.seed
    return Network(
        env,
        config,
        stream(seed, "latency"),
        stream(seed, "faults"),
        trace,
        faults,
        duplicate_rng=stream(seed, "duplicate-latency"),
        reorder_rng=stream(seed, "reorder-delay"),
    )
