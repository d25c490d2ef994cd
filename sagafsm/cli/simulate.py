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
from typing import Any

from ..errors import InvalidConfig
from ._run_config import add_run_arguments, resolve_run

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


def run(args: argparse.Namespace) -> int:
    from ..sim import simulate
    from ..sim.report import format_report, format_seed_summary
    from ..sim.seeds import seed_summary, simulate_seeds

    for flag in ("repeat", "jobs"):
        value = getattr(args, flag)
        if value is not None and value < 1:
            raise InvalidConfig(f"--{flag} must be at least 1, got {value}")
    scenario, config, mutant = resolve_run(args)
    plots_dir = _check_output_dir(args.plots, "--plots") if args.plots else None

    progress, stop = _progress_bar(not args.json and sys.stderr.isatty())
    try:
        with _atomic_file(args.trace) as trace_path:
            result = simulate(
                scenario, config, trace_path=trace_path, progress=progress, mutant=mutant
            )
    finally:
        stop()
    results = [result]
    if args.repeat and args.repeat > 1:
        seeds = range(config.seed + 1, config.seed + args.repeat)
        if args.jobs and args.jobs > 1:
            from concurrent.futures import ProcessPoolExecutor

            with ProcessPoolExecutor(max_workers=args.jobs) as pool:
                results += simulate_seeds(
                    scenario,
                    config,
                    seeds,
                    mutant=mutant,
                    executor=pool,
                    scenario_name=args.scenario or scenario.name,
                )
        else:
            results += simulate_seeds(scenario, config, seeds, mutant=mutant)
    written = []
    if plots_dir is not None:
        from ..plots import write_run_figures

        written = write_run_figures(result, plots_dir)
    if args.json:
        if len(results) == 1:
            print(json.dumps(result.to_json(), indent=2))
        else:
            print(
                json.dumps(
                    {"runs": [r.to_json() for r in results], "summary": seed_summary(results)},
                    indent=2,
                )
            )
    else:
        print(format_report(result))
        if len(results) > 1:
            print()
            print(format_seed_summary(results, seed_summary(results)))
        for path in written:
            print(f"figure              {path}")
    return 1 if any(r.violations for r in results) else 0
