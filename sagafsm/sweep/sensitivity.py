"""Which knob matters: Morris elementary effects of a metric to each swept key, with SALib.

A Morris design walks ``points`` trajectories through the unit cube, each moving one key at a
time by the same step, so each step measures one key's *elementary effect* on the metric. Their
mean absolute value (``mu_star``) ranks the keys by influence; their spread (``sigma``) says
whether a key acts alone or through the others (non-linearly, or in interaction). Effects are per
whole span of a key (the metric's change when the key goes from LO to HI), so keys of different
units compare. A design costs ``points * (keys + 1)`` points.

SALib is an optional extra (``pip install 'sagafsm[sensitivity]'``), imported only here.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Sequence
from typing import Any

from .._extras import require
from ..errors import InvalidConfig
from .params import Parameter
from .table import SweepTable

__all__ = ["LEVELS", "morris_unit_sample", "morris_indices"]

LEVELS = 4
"""Grid levels of the Morris design (the step is LEVELS / (2 (LEVELS - 1)) of a span)."""


def _salib(part: str) -> Any:
    require("sensitivity", "a Morris design")
    return importlib.import_module(f"SALib.{part}.morris")


def _problem(count: int) -> dict[str, Any]:
    names = [f"x{i}" for i in range(count)]
    return {"num_vars": count, "names": names, "bounds": [[0.0, 1.0]] * count}


def morris_unit_sample(parameters: Sequence[Parameter], trajectories: int, seed: int) -> Any:
    """``trajectories * (len(parameters) + 1)`` rows in the unit cube; every key needs a span."""
    lists = [p.key for p in parameters if p.span is None]
    if lists:
        raise InvalidConfig(f"--param {lists[0]}: a Morris design needs a range LO:HI")
    sample = _salib("sample").sample(
        _problem(len(parameters)), trajectories, num_levels=LEVELS, seed=seed
    )
    return sample


def morris_indices(
    table: SweepTable, parameters: Sequence[Parameter], metric: str
) -> list[dict[str, Any]]:
    """``mu_star`` (with its 95% confidence half-width), ``mu`` and ``sigma`` of ``metric`` for
    each key, from a table run on a Morris design (each point's metric: its mean over seeds).
    Most influential first."""
    points: dict[int, list[float]] = {}
    settings: dict[int, list[float]] = {}
    for row in table.rows:
        value = row.get(metric)
        if not isinstance(value, (int, float)) or not math.isfinite(value):
            raise InvalidConfig(f"{metric}: not a number in every run (point {row['point']})")
        points.setdefault(row["point"], []).append(float(value))
        settings[row["point"]] = [_unit(p, row[p.key]) for p in parameters]
    import numpy as np

    order = sorted(points)
    x = np.array([settings[i] for i in order])
    y = np.array([sum(points[i]) / len(points[i]) for i in order])
    analysis = _salib("analyze").analyze(_problem(len(parameters)), x, y, num_levels=LEVELS, seed=0)
    out = [
        {
            "key": p.key,
            "metric": metric,
            "mu_star": float(analysis["mu_star"][i]),
            "mu_star_conf": float(analysis["mu_star_conf"][i]),
            "mu": float(analysis["mu"][i]),
            "sigma": float(analysis["sigma"][i]),
        }
        for i, p in enumerate(parameters)
    ]
    return sorted(out, key=lambda entry: -entry["mu_star"])


def _unit(parameter: Parameter, value: Any) -> float:
    assert parameter.span is not None
    low, high = parameter.span
    return (float(value) - low) / (high - low)
