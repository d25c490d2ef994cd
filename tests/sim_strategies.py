"""Hypothesis strategies for simulation runs: random fault plans of bounded size.

A plan is plain configuration data (the TOML layout), laid over a scenario's defaults with
:meth:`~sagafsm.sim.Scenario.config`. Every fault knob is drawn, so the scenario's default faults
never leak in.
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from sagafsm.sim import Scenario

__all__ = ["fault_plans"]

_RATE = st.floats(0.0, 0.3, allow_nan=False)
_STORE_LATENCY = st.sampled_from([0.0, 0.002, 0.01])


@st.composite
def _loads(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.sampled_from(["open", "closed", "burst"]))
    if kind == "open":
        return {"kind": kind, "arrival_rate": draw(st.floats(5.0, 500.0))}
    if kind == "closed":
        return {"kind": kind, "concurrency": draw(st.integers(1, 30))}
    return {"kind": kind}


@st.composite
def _partitions(draw: st.DrawFn, participants: tuple[str, ...]) -> list[dict[str, Any]]:
    if not draw(st.booleans()):
        return []
    start = draw(st.floats(0.0, 1.0))
    length = draw(st.floats(0.01, 2.0))
    return [
        {"participant": draw(st.sampled_from(participants)), "start": start, "end": start + length}
    ]


@st.composite
def fault_plans(
    draw: st.DrawFn, scenario: Scenario, min_sagas: int = 5, max_sagas: int = 60
) -> dict[str, Any]:
    """A random, bounded fault plan for ``scenario`` (configuration data, seed included)."""
    participants = tuple(sorted({s.participant for s in scenario.definition.steps}))
    downtime = draw(st.floats(0.05, 0.5))
    return {
        "sagas": draw(st.integers(min_sagas, max_sagas)),
        "seed": draw(st.integers()),
        "load": draw(_loads()),
        "step_timeout": draw(st.floats(0.02, 0.5)),
        "store_latency": draw(_STORE_LATENCY),
        "participant": {
            "failure_rate": draw(_RATE),
            "hang_rate": draw(_RATE),
            "hang_lands": draw(st.floats(0.0, 1.0)),
            "compensation_failure_rate": draw(_RATE),
        },
        "faults": {
            "loss": draw(_RATE),
            "duplicate": draw(_RATE),
            "reorder": draw(_RATE),
            "orchestrator_crash_rate": draw(st.floats(0.0, 2.0)),
            "orchestrator_downtime": f"const:{downtime!r}",
            "partitions": draw(_partitions(participants)),
        },
    }
