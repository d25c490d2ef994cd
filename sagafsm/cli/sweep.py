"""``sagafsm sweep``: run a design of configurations, each over several seeds, into a table.

The base configuration is ``simulate``'s (the scenario's defaults, ``--config``, flags); the
``[sweep]`` table of the config file and the sweep flags say what varies. Every point is built
and checked before the first run starts, so a bad value costs nothing.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._extras import require
from ..errors import InvalidConfig
from ._run_config import add_run_arguments, resolve_run

if TYPE_CHECKING:
    from ..sweep import SweepPlan, SweepTable

__all__ = ["register", "run"]

_TABLE_KEYS = ("design", "points", "seeds", "params")


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "sweep",
        help="run a grid or a sample of configurations over several seeds, into a table",
        description="Sweep configuration keys over a design (a full grid, a Latin hypercube or a "
        "Sobol sample), each point over --seeds seeds, on a process pool or a Dask cluster. "
        "simulate's flags and --config set the base configuration; --param and the config "
        "file's [sweep] table say what varies. Exit status: 0 clean, 1 a run violated a "
        "property, 2 bad input (nothing runs), 3 an internal error.",
    )
    add_run_arguments(parser)
    parser.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="KEY=VALUES",
        help="a configuration key and its values: a list (load.arrival_rate=20,50,100) or a "
        "range LO:HI:N (faults.loss=0:0.2:5; sampled designs take LO:HI); repeatable",
    )
    parser.add_argument(
        "--design",
        choices=("grid", "lhs", "sobol", "morris"),
        help="grid: every combination (default); lhs: Latin hypercube; sobol: Sobol sequence; "
        "morris: --points one-at-a-time trajectories, then each key's influence on goodput "
        "and p99 (needs the sensitivity extra)",
    )
    parser.add_argument("--points", type=int, metavar="N", help="points of a sampled design")
    parser.add_argument(
        "--seeds", type=int, metavar="K", help="seeds per point: the seed, seed+1, ... (default 1)"
    )
    parser.add_argument(
        "--output",
        metavar="DIR",
        help="write sweep.csv and summary.csv there, and keep each run in DIR/runs so that "
        "the same command resumes and an extended sweep runs only its new points",
    )
    parser.add_argument(
        "--plots", action="store_true", help="with --output: also draw the sweep's figures there"
    )
    parser.add_argument(
        "--jobs",
        type=int,
        metavar="N",
        help="worker processes (default: one per CPU; never more than CPUs or runs)",
    )
    parser.add_argument(
        "--dask",
        metavar="ADDRESS",
        help="run on the Dask scheduler at ADDRESS (tcp://host:8786), or 'local' for a "
        "LocalCluster of --jobs workers (needs the dask extra)",
    )
    parser.add_argument("--json", action="store_true", help="print the table as one JSON object")
    parser.set_defaults(run=run)


def _table_settings(path: str | None) -> dict[str, Any]:
    """The ``[sweep]`` table of the config file, checked."""
    from ..sim.config import read_config_file

    if path is None:
        return {}
    table = read_config_file(path).get("sweep", {})
    if not isinstance(table, Mapping):
        raise InvalidConfig(f"{path}: sweep must be a table ([sweep])")
    unknown = sorted(set(table) - set(_TABLE_KEYS))
    if unknown:
        known = ", ".join(_TABLE_KEYS)
        raise InvalidConfig(f"{path}: [sweep] has unknown key {unknown[0]!r} (known: {known})")
    params = table.get("params", {})
    if not isinstance(params, Mapping):
        raise InvalidConfig(f"{path}: sweep.params must be a table of KEY = VALUES")
    settings = dict(table)
    settings["params"] = _dotted(params)
    for key in ("points", "seeds"):
        value = settings.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise InvalidConfig(f"{path}: sweep.{key} must be an integer, got {value!r}")
    return settings


def _dotted(table: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    # [sweep.params] faults.loss = "..." is a nested table in TOML; "faults.loss" = "..." is not
    flat: dict[str, Any] = {}
    for key, value in table.items():
        if isinstance(value, Mapping):
            flat.update(_dotted(value, f"{prefix}{key}."))
        else:
            flat[prefix + key] = value
    return flat


def _plan(args: argparse.Namespace) -> SweepPlan:
    from ..sweep import parse_parameter, plan_sweep

    scenario, config, mutant = resolve_run(args)
    name = args.scenario or config.scenario or scenario.name
    settings = _table_settings(args.config)
    flags = [parse_parameter(spec) for spec in args.param]
    given = [key for key, _ in flags]
    twice = next((key for key in given if given.count(key) > 1), None)
    if twice is not None:
        raise InvalidConfig(f"--param {twice}: given twice")
    params = {**settings.get("params", {}), **dict(flags)}  # flags over the file, key by key
    seeds = args.seeds if args.seeds is not None else settings.get("seeds", 1)
    return plan_sweep(
        name,
        params,
        config,
        design=args.design or settings.get("design", "grid"),
        points=args.points if args.points is not None else settings.get("points"),
        seeds=seeds,
        mutant=mutant.name if mutant else None,
    )


def run(args: argparse.Namespace) -> int:
    from ..sim.report import plural
    from ..sweep import process_pool, run_sweep, useful_workers
    from ..sweep.executors import dask_executor
    from ._inputs import check_output_dir
    from ._progress import runs_progress

    if args.plots and not args.output:
        raise InvalidConfig("--plots needs --output DIR (the figures go there)")
    if args.plots:
        require("plots", "--plots")
    if args.dask:
        require("dask", "--dask")
    if args.design == "morris":
        require("sensitivity", "--design morris")
    plan = _plan(args)
    varies = any(len({repr(point[p.key]) for point in plan.points}) > 1 for p in plan.parameters)
    if args.plots and not varies:
        raise InvalidConfig("--plots: nothing varies in this sweep (give a --param two values)")
    output = check_output_dir(args.output, "--output") if args.output else None
    workers = useful_workers(args.jobs, len(plan.runs))
    where = f"Dask at {args.dask}" if args.dask else plural(workers, "process", "processes")
    cache = output / "runs" if output is not None else None
    pool = dask_executor(args.dask, workers) if args.dask else process_pool(workers)
    with pool as executor, runs_progress(not args.json and sys.stderr.isatty(), "sweep") as bar:
        table = run_sweep(plan, executor=executor, cache=cache, progress=bar)
    written = table.write(output) if output is not None else []
    if args.plots and output is not None:
        from ..sweep.figures import write_sweep_figures

        written += write_sweep_figures(table, output)
    effects = _sensitivity(plan, table) if plan.design == "morris" else []
    if effects and output is not None:
        from ..sweep.table import write_csv

        written.append(write_csv(output / "sensitivity.csv", effects))
    if args.json:
        report = {"rows": list(table.rows), "summary": table.summary()}
        print(json.dumps({**report, "sensitivity": effects} if effects else report, indent=2))
    else:
        print(_report(plan, table, where, written, effects))
    return 1 if any((row.get("violations") or 0) > 0 for row in table.rows) else 0


def _sensitivity(plan: SweepPlan, table: SweepTable) -> list[dict[str, Any]]:
    """Morris indices of goodput and p99 (p99 only where every run has one)."""
    from ..sweep.sensitivity import morris_indices

    effects = []
    for metric in ("goodput", "latency_p99"):
        if all(isinstance(row.get(metric), (int, float)) for row in table.rows):
            effects += morris_indices(table, plan.parameters, metric)
    return effects


def _report(
    plan: SweepPlan,
    table: SweepTable,
    where: str,
    written: list[Path],
    effects: list[dict[str, Any]],
) -> str:
    from ..sim.report import plural

    runs = len(plan.runs)
    lines = [
        f"sagafsm sweep {plan.scenario}: {plan.design} of {plural(len(plan.points), 'point')} x "
        f"{plural(len(plan.seeds), 'seed')} = {plural(runs, 'run')}, {table.from_cache} from the "
        "cache, "
        f"on {where}",
        "",
    ]
    keys = [p.key for p in plan.parameters]
    widths = [max(len(k), 8) for k in keys]
    header = "  ".join(k.ljust(w) for k, w in zip(keys, widths, strict=True))
    lines.append(f"{header}  {'goodput (95% CI)':<22} {'p99':>10}  violations")
    for entry in table.summary():
        cells = "  ".join(_value(entry.get(k)).ljust(w) for k, w in zip(keys, widths, strict=True))
        goodput = (
            f"{entry['goodput.mean']:.3f} [{entry['goodput.low']:.3f}, {entry['goodput.high']:.3f}]"
            if "goodput.mean" in entry
            else "-"
        )
        p99 = _seconds(entry.get("latency_p99.mean"))
        bad = entry["runs_with_violations"]
        verdict = f"{bad}/{entry['runs']} runs" if bad else "none"
        lines.append(f"{cells}  {goodput:<22} {p99:>10}  {verdict}")
    if effects:
        lines += ["", "influence (Morris: mean |effect| over a key's whole span, 95% CI; sigma)"]
        for e in effects:
            lines.append(
                f"  {e['metric']:<12} {e['key']:<28} mu* {e['mu_star']:.4g} "
                f"± {e['mu_star_conf']:.2g}   sigma {e['sigma']:.4g}"
            )
    if written:
        lines.append("")
        lines += [f"wrote               {path}" for path in written]
    return "\n".join(lines)


def _seconds(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value * 1000:.1f} ms" if value < 1 else f"{value:.2f} s"


def _value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "none" if value is None else str(value)
