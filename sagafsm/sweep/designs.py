"""Designs: which points of the parameter space a sweep runs.

A *grid* runs every combination of the parameters' values. *Latin hypercube* and *Sobol* draw
``points`` points with ``scipy.stats.qmc``: a range is drawn from anywhere between its ends, a
list as categories, each equally likely. *Morris* walks ``points`` one-key-at-a-time
trajectories (SALib, :mod:`.sensitivity`) to rank the keys by influence. Samples are seeded,
so a design is reproducible (and a cached sweep resumes onto the same points).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any, Literal

from ..errors import InvalidConfig
from .params import Parameter

__all__ = ["DESIGNS", "Design", "design_points"]

Design = Literal["grid", "lhs", "sobol", "morris"]
DESIGNS: tuple[Design, ...] = ("grid", "lhs", "sobol", "morris")

Point = dict[str, Any]


def design_points(
    parameters: Sequence[Parameter],
    design: Design = "grid",
    points: int | None = None,
    seed: int = 0,
) -> list[Point]:
    """The points of ``design`` over ``parameters``, each a mapping from key to value.

    :class:`~sagafsm.InvalidConfig` when the design cannot be made: a grid over a range without
    its N, ``points`` given to a grid or missing for a sample, Sobol points not a power of two
    (its balance needs one), an unknown design.
    """
    if design not in DESIGNS:
        raise InvalidConfig(f"--design {design!r}: unknown (known: {', '.join(DESIGNS)})")
    keys = [p.key for p in parameters]
    if len(set(keys)) != len(keys):
        twice = next(k for k in keys if keys.count(k) > 1)
        raise InvalidConfig(f"--param {twice}: given twice")
    if design == "grid":
        return _grid(parameters, points)
    if points is None or points < 1:
        raise InvalidConfig(f"--points N (at least 1) is needed by a {design} design")
    if not parameters:
        raise InvalidConfig(f"a {design} design needs at least one --param")
    if design == "sobol" and points & (points - 1):
        lower = 1 << (points.bit_length() - 1)
        raise InvalidConfig(
            f"--points {points}: Sobol points come in powers of two (try {lower} or {lower * 2})"
        )
    return [
        {p.key: p.sample(float(u)) for p, u in zip(parameters, row, strict=True)}
        for row in _unit_sample(parameters, design, points, seed)
    ]


def _grid(parameters: Sequence[Parameter], points: int | None) -> list[Point]:
    if points is not None:
        raise InvalidConfig("--points is for sampled designs (lhs, sobol); a grid runs them all")
    for p in parameters:
        if not p.values:
            assert p.span is not None
            low, high = p.span
            raise InvalidConfig(
                f"--param {p.key}: a grid needs the number of values, {low}:{high}:N"
            )
    combos = itertools.product(*(p.values for p in parameters))
    return [dict(zip((p.key for p in parameters), combo, strict=True)) for combo in combos]


def _unit_sample(
    parameters: Sequence[Parameter], design: Design, points: int, seed: int
) -> list[list[float]]:
    import numpy as np
    from scipy.stats import qmc

    dimensions = len(parameters)
    rng = np.random.default_rng(seed)
    if design == "morris":
        from .sensitivity import morris_unit_sample

        sample = morris_unit_sample(parameters, points, seed)
    elif design == "lhs":
        sample = qmc.LatinHypercube(d=dimensions, rng=rng).random(points)
    else:
        sample = qmc.Sobol(d=dimensions, rng=rng).random_base2(points.bit_length() - 1)
    return [list(map(float, row)) for row in sample]
