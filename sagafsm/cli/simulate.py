"""``sagafsm simulate``: run a failure-injection simulation of a scenario.

Configuration is layered: the scenario's defaults, then ``--config FILE.toml``, then flags. Every
value is validated before anything runs or is written.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from .._extras import require
from ..errors import InvalidConfig
from ._inputs import cap_jobs, check_not_an_input, check_output_dir, check_output_file, staged
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
    parser.add_argument("--plots", metavar="DIR", help="write the figures into DIR, as PNG and SVG")
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


def _scenario_ref(name: str | None) -> str | None:
    """A scenario as a later ``replay`` finds it: a file by its absolute path, else its name."""
    if name is not None and (name.endswith(".py") or "/" in name):
        return str(Path(name).resolve())
    return name


def _recorded_line(args: argparse.Namespace, result: Any, mutant: Any) -> str:
    """The last line of a ``--trace`` file: what it was recorded under, so that ``replay
    --trace`` can tell a trace of another scenario (:data:`sagafsm.sim.trace.RECORDED`)."""
    from .. import __version__
    from ..sim.trace import RECORDED

    return json.dumps(
        {
            "kind": RECORDED,
            "scenario": result.scenario,
            "scenario_ref": _scenario_ref(args.scenario) or result.scenario,
            "seed": result.seed,
            "sagas": result.sagas,
            "mutant": mutant.name if mutant else None,
            "digest": result.digest,
            "sagafsm": __version__,
        }
    )


def _seed_run(
    scenario: Scenario | str,
    config: SimulationConfig,
    mutant: Mutant | str | None,
    trace_path: str | Path | None,
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
    trace_path: str | Path | None,
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
        arguments: list[
            tuple[Scenario | str, SimulationConfig, Mutant | str | None, str | Path | None]
        ]
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
    from ..sim.report import format_report, format_seed_summary, judged_violations, not_judged
    from ..sim.seeds import seed_summary

    for flag in ("repeat", "jobs"):
        value = getattr(args, flag)
        if value is not None and value < 1:
            raise InvalidConfig(f"--{flag} must be at least 1, got {value}")
    trace = check_output_file(args.trace, "--trace") if args.trace else None
    if trace is not None:
        check_not_an_input(trace, "--trace", {"--config file": args.config,
                                              "scenario file": args.scenario})  # fmt: skip
    if args.plots:
        require("plots", "--plots")
    plots = check_output_dir(args.plots, "--plots") if args.plots else None
    scenario, config, mutant = resolve_run(args)
    effective = attrs.evolve(config, mutant=mutant.name if mutant else None)
    repeat = args.repeat or 1
    if args.jobs and repeat > 1:
        _, note = cap_jobs(args.jobs, repeat)
        if note:
            print(f"sagafsm simulate: note: {note}", file=sys.stderr)

    with staged() as outputs:
        trace_path = outputs.file(trace) if trace is not None else None
        if repeat > 1:
            results = _repeat(args, scenario, config, mutant, trace_path)
        else:
            progress, stop = _progress_bar(not args.json and sys.stderr.isatty())
            try:
                results = [
                    simulate(
                        scenario, config, trace_path=trace_path, progress=progress, mutant=mutant
                    )
                ]
            finally:
                stop()
        result = results[0]
        if trace_path is not None:
            with open(trace_path, "a", encoding="utf-8") as handle:
                handle.write(_recorded_line(args, result, mutant) + "\n")
        if plots is not None:
            from ..plots import write_run_figures

            write_run_figures(result, outputs.directory(plots))
        written = outputs.commit()  # every output produced: only now does any take its name
    figures = [path for path in written if path != trace]
    unjudged = [not_judged(r, config) for r in results]
    if args.json:
        runs = [
            {**_run_json(r, effective), "not_judged": why}
            for r, why in zip(results, unjudged, strict=True)
        ]
        summary = {"runs": runs, "summary": seed_summary(results)}
        print(json.dumps(runs[0] if len(runs) == 1 else summary, indent=2))
    else:
        print(format_report(result, config))
        if len(results) > 1:
            print()
            print(format_seed_summary(results, seed_summary(results), config))
        for path in figures:
            print(f"figure              {path}")
    judged = [judged_violations(r, why) for r, why in zip(results, unjudged, strict=True)]
    return 1 if any(judged) else 0
