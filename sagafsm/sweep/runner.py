"""A sweep: plan every run up front (and refuse a bad one before any runs), then run them on an
executor, keeping each finished row in the cache as it arrives.

Runs travel as plain data (the scenario's name or path and the configuration's TOML data), since a
scenario may hold functions that cannot be pickled; each worker loads the scenario itself. Workers
hand back one flat row per run, never the run, so the driver's memory grows with the table only.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Executor
from pathlib import Path
from typing import Any

import attrs

from ..errors import InvalidConfig
from ..sim.config import SimulationConfig, apply_overrides, config_from_dict, config_to_dict
from ..sim.internal import InternalError
from ..sim.mutants import get_mutant
from ..sim.prepare import validate_against
from ..sim.run import simulate
from ..sim.scenario import Scenario, load_scenario
from .cache import RunCache, run_key, scenario_identity
from .designs import Design, design_points
from .executors import execute
from .params import Parameter, parameter_from_value
from .rows import RESULT_COLUMNS, result_row, settings_row
from .table import SweepTable

__all__ = ["PlannedRun", "SweepPlan", "RunFailed", "plan_sweep", "run_sweep"]

Progress = Callable[[int, int], None]
"""Called with (runs done, runs in all) as runs finish, cached ones first."""


class RunFailed(Exception):
    """A run of the sweep raised an internal error (a bug, never a finding): which run, and the
    error. Plain text, so it crosses process and machine boundaries."""


@attrs.frozen(kw_only=True)
class PlannedRun:
    point: int
    seed: int
    settings: Mapping[str, Any]
    """The swept keys' values at this point."""
    data: Mapping[str, Any]
    """The whole effective configuration, as plain data (seed and mutant included)."""
    key: str
    """What the run is cached under."""


@attrs.frozen(kw_only=True)
class SweepPlan:
    scenario: str
    parameters: tuple[Parameter, ...]
    design: Design
    points: tuple[Mapping[str, Any], ...]
    seeds: tuple[int, ...]
    runs: tuple[PlannedRun, ...]


def plan_sweep(
    scenario: str,
    parameters: Mapping[str, Any] | Sequence[Parameter],
    base: SimulationConfig | None = None,
    *,
    design: Design = "grid",
    points: int | None = None,
    seeds: int = 1,
    mutant: str | None = None,
) -> SweepPlan:
    """Every run of a sweep of ``scenario`` (a built-in name or a file's path), each point's
    configuration built and checked.

    ``parameters`` maps keys to values as ``--param`` takes them (``{"faults.loss": "0:0.2:5",
    "load.arrival_rate": [20, 50]}``), or is a list of :class:`Parameter`. ``base`` is the
    configuration every point starts from (default: the scenario's); each point runs ``seeds``
    seeds, ``base.seed`` and the ones after it. Raises :class:`~sagafsm.InvalidConfig` before
    anything runs when a value, a point or the design is bad.
    """
    if seeds < 1:
        raise InvalidConfig(f"--seeds must be at least 1, got {seeds}")
    loaded = load_scenario(scenario)
    if isinstance(parameters, Mapping):
        parameters = [parameter_from_value(k, v) for k, v in parameters.items()]
    base = base if base is not None else loaded.config()
    if mutant is not None:
        base = attrs.evolve(base, mutant=mutant)
    base_data = config_to_dict(base)
    chosen = design_points(parameters, design, points, seed=base.seed)
    identity = scenario_identity(scenario)
    runs = []
    for index, point in enumerate(chosen):
        config = _point_config(loaded, base_data, point)
        for seed in range(base.seed, base.seed + seeds):
            data = config_to_dict(attrs.evolve(config, seed=seed))
            runs.append(
                PlannedRun(
                    point=index, seed=seed, settings=point, data=data, key=run_key(identity, data)
                )
            )
    return SweepPlan(
        scenario=scenario,
        parameters=tuple(parameters),
        design=design,
        points=tuple(chosen),
        seeds=tuple(range(base.seed, base.seed + seeds)),
        runs=tuple(runs),
    )


def _point_config(
    scenario: Scenario, base: Mapping[str, Any], point: Mapping[str, Any]
) -> SimulationConfig:
    try:
        config = config_from_dict(apply_overrides(base, point))
        validate_against(scenario, config)
        if config.mutant is not None:
            get_mutant(config.mutant).check_applies(scenario.name, scenario.definition)
    except InvalidConfig as error:
        where = ", ".join(f"{k}={v}" for k, v in point.items())
        raise InvalidConfig(f"--param {where}: {error}") from None
    return config


def run_sweep(
    plan: SweepPlan,
    *,
    executor: Executor | None = None,
    cache: str | Path | None = None,
    progress: Progress | None = None,
) -> SweepTable:
    """Run every run of ``plan`` not already in ``cache`` (a directory), on ``executor`` (any
    ``concurrent.futures.Executor``; None: one after the other, here), and return the table.

    The rows are in plan order (point, then seed) and the same whatever the executor, wall time
    aside. A run that raises an internal error stops the sweep with :class:`RunFailed`; the runs
    finished before it stay in the cache.
    """
    store = RunCache(cache) if cache is not None else None
    rows: list[dict[str, Any] | None] = [None] * len(plan.runs)
    todo: list[int] = []
    for index, planned in enumerate(plan.runs):
        kept = store.load(planned.key) if store is not None else None
        if kept is None:
            todo.append(index)
        else:
            rows[index] = kept
    done = len(plan.runs) - len(todo)
    if progress is not None:
        progress(done, len(plan.runs))
    arguments = [
        (plan.scenario, plan.runs[i].data, plan.runs[i].point, plan.runs[i].seed) for i in todo
    ]
    for position, row in execute(run_one, arguments, executor):
        planned = plan.runs[todo[position]]
        rows[todo[position]] = row
        if store is not None:
            store.store(planned.key, planned.data, row)
        done += 1
        if progress is not None:
            progress(done, len(plan.runs))
    return SweepTable(
        rows=[table_row(planned, row) for planned, row in zip(plan.runs, rows, strict=True) if row],
        parameters=tuple(p.key for p in plan.parameters),
        from_cache=len(plan.runs) - len(todo),
    )


@functools.lru_cache(maxsize=8)
def _scenario(name: str) -> Scenario:
    return load_scenario(name)


def run_one(scenario: str, data: Mapping[str, Any], point: int, seed: int) -> dict[str, Any]:
    """One run, in whatever process gets it: its result row (the figures, not the settings)."""
    try:
        result = simulate(_scenario(scenario), config_from_dict(data))
    except InternalError as error:
        raise RunFailed(f"point {point}, seed {seed}: {error}") from None
    return result_row(result)


def table_row(planned: PlannedRun, result: Mapping[str, Any]) -> dict[str, Any]:
    """A whole row of the table: point, seed, swept settings, figures, every other setting."""
    settings = settings_row(planned.data)
    head = {"point": planned.point, "seed": planned.seed}
    swept = {key: settings.get(key) for key in planned.settings}
    rest = {k: v for k, v in settings.items() if k not in swept and k != "seed"}
    figures = {k: result[k] for k in RESULT_COLUMNS if k in result}  # one order, cached or not
    figures.update(sorted((k, v) for k, v in result.items() if k not in figures))
    return {**head, **swept, **figures, **rest}
