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

__all__ = ["register", "run"]

# flag -> dotted configuration key
_FLAG_KEYS = {
    "sagas": "sagas",
    "seed": "seed",
    "load": "load.kind",
    "arrival_rate": "load.arrival_rate",
    "concurrency": "load.concurrency",
    "latency": "latency",
    "loss": "faults.loss",
    "duplicate": "faults.duplicate",
    "reorder": "faults.reorder",
    "step_failure_rate": "participant.failure_rate",
    "timeout": "step_timeout",
    "crash_orchestrator": "faults.orchestrator_crash_rate",
    "crash_downtime": "faults.orchestrator_downtime",
}


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "simulate",
        help="run a failure-injection simulation of a scenario",
        description="Run a seeded failure-injection simulation and print its report. "
        "Exit status: 0 clean, 1 a correctness property was violated, 2 bad input.",
    )
    parser.add_argument(
        "scenario",
        help="a built-in scenario (order_fulfillment, "
        "travel_booking) or the path of a .py file with a scenario() function",
    )
    parser.add_argument("--config", metavar="FILE.toml", help="configuration file (TOML)")
    parser.add_argument("--sagas", type=int, metavar="N", help="sagas to run")
    parser.add_argument("--seed", type=int, metavar="S", help="the run's seed")
    parser.add_argument(
        "--load",
        choices=("open", "closed", "burst"),
        help="open: Poisson arrivals; closed: N in flight; burst: all at once",
    )
    parser.add_argument(
        "--arrival-rate",
        type=float,
        metavar="PER_S",
        help="open load: sagas started per simulated second",
    )
    parser.add_argument("--concurrency", type=int, metavar="N", help="closed load: sagas in flight")
    parser.add_argument(
        "--latency",
        metavar="DIST",
        help="one-way network latency, e.g. exp:0.005, const:0.01, "
        "uniform:0.005:0.02, lognormal:0.005:0.5 (seconds)",
    )
    parser.add_argument("--loss", type=float, metavar="P", help="message loss probability")
    parser.add_argument(
        "--duplicate", type=float, metavar="P", help="message duplication probability"
    )
    parser.add_argument(
        "--reorder", type=float, metavar="P", help="probability a message is held back (reordered)"
    )
    parser.add_argument(
        "--step-failure-rate",
        type=float,
        metavar="P",
        help="probability an action fails definitely, per saga and step",
    )
    parser.add_argument(
        "--timeout", type=float, metavar="SECONDS", help="every step's reply timeout"
    )
    parser.add_argument(
        "--crash-orchestrator",
        type=float,
        metavar="PER_S",
        help="orchestrator crashes per simulated second (Poisson); "
        "0.1 at the default 50 sagas/s is ~6 crashes in 3,000 sagas",
    )
    parser.add_argument(
        "--crash-downtime",
        metavar="DIST",
        help="how long the orchestrator stays down (default const:0.5)",
    )
    parser.add_argument(
        "--trace", metavar="FILE.jsonl", help="write every trace record as a JSON line"
    )
    parser.add_argument("--plots", metavar="DIR", help="write PNG figures into DIR")
    parser.add_argument(
        "--mutant",
        metavar="NAME",
        help="run a deliberately broken variant instead of the correct system "
        "(names: sagafsm selfcheck)",
    )
    parser.add_argument(
        "--json", action="store_true", help="print one JSON object instead of the report"
    )
    parser.set_defaults(run=run)


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    return {
        key: getattr(args, flag)
        for flag, key in _FLAG_KEYS.items()
        if getattr(args, flag) is not None
    }


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
    from ..sim import config_from_dict, load_scenario, simulate
    from ..sim.config import apply_overrides, merge, read_config_file
    from ..sim.mutants import get_mutant
    from ..sim.report import format_report

    scenario = load_scenario(args.scenario)
    data = dict(scenario.defaults)
    if args.config:
        data = merge(data, read_config_file(args.config))
    config = config_from_dict(apply_overrides(data, _overrides(args)))
    mutant = get_mutant(args.mutant) if args.mutant else None
    plots_dir = _check_output_dir(args.plots, "--plots") if args.plots else None

    progress, stop = _progress_bar(not args.json and sys.stderr.isatty())
    try:
        with _atomic_file(args.trace) as trace_path:
            result = simulate(
                scenario, config, trace_path=trace_path, progress=progress, mutant=mutant
            )
    finally:
        stop()
    if plots_dir is not None:
        from ..plots import write_run_figures

        written = write_run_figures(result, plots_dir)
    else:
        written = []
    if args.json:
        print(json.dumps(result.to_json(), indent=2))
    else:
        print(format_report(result))
        for path in written:
            print(f"figure              {path}")
    return 1 if result.violations else 0
