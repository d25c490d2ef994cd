"""``sagafsm simulate``: run a failure-injection simulation of a scenario.

Configuration is layered: the scenario's defaults, then ``--config FILE.toml``, then flags. Every
value is validated before anything runs or is written.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from ..errors import InvalidConfig
from ._run_config import add_run_arguments, resolve_run

if TYPE_CHECKING:
    from ..sim import RunResult, Scenario, SimulationConfig
    from ..sim.mutants import Mutant

__all__ = ["register", "run"]


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "simulate",
        help="run a failure-injection simulation of a scenario",
        description="Run a seeded failure-injection simulation and print its report. "
        "Exit status: 0 clean, 1 a correctness property was violated, 2 bad input (a mutant "
        "that does not apply to the scenario included), 3 an internal error (--debug prints "
        "its traceback).",
    )
    add_run_arguments(parser)
    parser.add_argument(
        "--trace", metavar="FILE.jsonl", help="write every trace record as a JSON line"
    )
    parser.add_argument("--plots", metavar="DIR", help="write PNG figures into DIR")
    parser.add_argument(
        "--repeat",
        type=int,
        metavar="K",
        help="run K seeds (the seed, seed+1, ...) and report means with 95%% confidence "
        "intervals (figures and trace: the first seed's)",
    )
    parser.add_argument(
        "--jobs", type=int, metavar="N", help="with --repeat: run seeds in N processes"
    )
    parser.add_argument(
        "--json", action="store_true", help="print one JSON object instead of the report"
    )
    parser.set_defaults(run=run)


def _check_output_dir(path: str, flag: str) -> Path:
    directory = Path(path)
    if directory.exists() and not directory.is_dir():
        raise InvalidConfig(f"{flag} {path!r} exists and is not a directory")
    parent = directory if directory.exists() else directory.parent
    if not os.access(parent if str(parent) else ".", os.W_OK):
        raise InvalidConfig(f"{flag} {path!r}: cannot write there")
    return directory


@contextmanager
def _atomic_file(path: str | None) -> Iterator[str | None]:
    """A temporary file next to ``path``, renamed onto it only if the block succeeds."""
    if path is None:
        yield None
        return
    target = Path(path)
    if target.is_dir() or (not target.parent.is_dir() and str(target.parent)):
        raise InvalidConfig(f"--trace {path!r}: no such directory, or a directory")
    handle, temporary = tempfile.mkstemp(dir=target.parent or ".", suffix=".partial")
    os.close(handle)
    try:
        yield temporary
        os.replace(temporary, target)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)


def _progress_bar(enabled: bool) -> tuple[Callable[[int, int], None] | None, Callable[[], None]]:
    if not enabled:
        return None, lambda: None
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    bar = Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=True,
    )
    task = bar.add_task("simulating", total=None)
    bar.start()

    def update(done: int, total: int) -> None:
        bar.update(task, completed=done, total=total)

    return update, bar.stop


def _seed_run(
    scenario: Scenario | str,
    config: SimulationConfig,
    mutant: Mutant | str | None,
    trace_path: str | None,
) -> RunResult:
    """One seed of ``--repeat``; in a worker process, the scenario and mutant come by name
    (a scenario may hold functions that cannot be pickled)."""
    from ..sim import InternalError, load_scenario, simulate
    from ..sim.mutants import get_mutant
    from ..sweep import RunFailed

    in_worker = isinstance(scenario, str)
    if isinstance(scenario, str):
        scenario = load_scenario(scenario)
    if isinstance(mutant, str):
        mutant = get_mutant(mutant)
    try:
        return simulate(scenario, config, trace_path=trace_path, mutant=mutant)
    except InternalError as error:
        if not in_worker:
            raise
        raise RunFailed(f"seed {config.seed}: {error}") from None  # it pickles; this does not


def _repeat(
    args: argparse.Namespace,
    scenario: Scenario,
    config: SimulationConfig,
    mutant: Mutant | None,
    trace_path: str | None,
) -> list[RunResult]:
    """K seeds as a sweep over seeds: one progress bar over the runs; here, one after the other,
    unless --jobs asks for worker processes."""
    from ..sweep import execute, process_pool, useful_workers
    from ._progress import runs_progress

    configs = [attrs.evolve(config, seed=config.seed + i) for i in range(args.repeat)]
    workers = useful_workers(args.jobs, len(configs)) if args.jobs else 1
    results: list[RunResult | None] = [None] * len(configs)
    bar_wanted = not args.json and sys.stderr.isatty()
    with process_pool(workers) as pool, runs_progress(bar_wanted, "simulating") as progress:
        arguments: list[tuple[Scenario | str, SimulationConfig, Mutant | str | None, str | None]]
        if pool is None:
            arguments = [(scenario, c, mutant, None) for c in configs]
        else:
            name = args.scenario or config.scenario or scenario.name
            arguments = [(name, c, mutant.name if mutant else None, None) for c in configs]
        arguments[0] = (*arguments[0][:3], trace_path)  # the first seed writes the trace
        runs = execute(_seed_run, arguments, pool)
        for done, (position, result) in enumerate(runs, start=1):
            results[position] = result
            if progress is not None:
                progress(done, len(configs))
    return [r for r in results if r is not None]


def _run_json(result: RunResult, config: SimulationConfig) -> dict[str, Any]:
    """A run's JSON with the configuration it ran with (the seed its own)."""
    from ..sim.config import config_to_dict

    return {**result.to_json(), "config": config_to_dict(attrs.evolve(config, seed=result.seed))}


def run(args: argparse.Namespace) -> int:
    from ..sim import simulate
    from ..sim.report import format_report, format_seed_summary
    from ..sim.seeds import seed_summary

    for flag in ("repeat", "jobs"):
        value = getattr(args, flag)
        if value is not None and value < 1:
            raise InvalidConfig(f"--{flag} must be at least 1, got {value}")
    scenario, config, mutant = resolve_run(args)
    plots_dir = _check_output_dir(args.plots, "--plots") if args.plots else None
    effective = attrs.evolve(config, mutant=mutant.name if mutant else None)

    if args.repeat and args.repeat > 1:
        with _atomic_file(args.trace) as trace_path:
            results = _repeat(args, scenario, config, mutant, trace_path)
    else:
        progress, stop = _progress_bar(not args.json and sys.stderr.isatty())
        try:
            with _atomic_file(args.trace) as trace_path:
                results = [
                    simulate(
                        scenario, config, trace_path=trace_path, progress=progress, mutant=mutant
                    )
                ]
        finally:
            stop()
    result = results[0]
    written = []
    if plots_dir is not None:
        from ..plots import write_run_figures

        written = write_run_figures(result, plots_dir)
    if args.json:
        if len(results) == 1:
            print(json.dumps(_run_json(result, effective), indent=2))
        else:
            runs = [_run_json(r, effective) for r in results]
            print(json.dumps({"runs": runs, "summary": seed_summary(results)}, indent=2))
    else:
        print(format_report(result))
        if len(results) > 1:
            print()
            print(format_seed_summary(results, seed_summary(results)))
        for path in written:
            print(f"figure              {path}")
    return 1 if any(r.violations for r in results) else 0
