"""``sagafsm run``: run a scenario's saga for real, as OS processes over a SQLite or PostgreSQL
store.

The participants run in one process, the orchestrator in another (:mod:`sagafsm.runtime.worker`),
or in ``--workers N`` others on PostgreSQL, in real time; ``--kill-every`` SIGKILLs an
orchestrator while it works (one at a time) and starts it again. Once
every saga finished, the store is read back and judged by the checkers ``simulate`` runs, plus
the scenario's invariants over its tables (:mod:`sagafsm.runtime.verdict`). Every input is checked
before anything is created. ``SAGAFSM_CRASH_AT=POINT:COUNT`` in the environment arms the first
life of the process its point belongs to (the workers' own environment never carries it on).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from typing import Any

__all__ = ["register", "run", "format_real_report"]

_MUTANTS = ("publish-before-commit", "no-inbox", "no-saga-lock", "no-claim-lease")
"""The names of :data:`sagafsm.runtime.mutants.RUNTIME_MUTANTS`, for the help text: building the
parser must not import the runtime (every ``sagafsm`` command builds it)."""
_CHOREOGRAPHY_MUTANTS = ("no-dedup-events", "no-timer-rearm")
"""Likewise :data:`sagafsm.runtime.choreography_worker.CHOREOGRAPHY_MUTANTS`."""


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "run",
        help="run a scenario's saga for real: orchestrator and participants as OS processes",
        description="Run a scenario's saga on the real runtime: participants and orchestrator "
        "(--workers of them on PostgreSQL) as processes over a SQLite or PostgreSQL store, in "
        "real time; then judge the "
        "store's trace and tables. Exit status: 0 clean, 1 a property was violated, 2 bad "
        "input, 3 an internal error (--debug prints its traceback).",
    )
    parser.add_argument("scenario", help="a built-in scenario with a runtime (order_fulfillment)")
    parser.add_argument(
        "--store",
        required=True,
        metavar="URL",
        help="the store: sqlite:///PATH or postgresql://...",
    )
    parser.add_argument("--sagas", type=int, default=1000, metavar="N", help="sagas to run")
    parser.add_argument("--seed", type=int, default=1, metavar="S", help="draws the orders")
    parser.add_argument(
        "--concurrency", type=int, default=50, metavar="C", help="sagas in flight at most"
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        metavar="N",
        help="orchestrator worker processes sharing the store (2 or more: PostgreSQL only)",
    )
    parser.add_argument(
        "--kill-every",
        type=float,
        metavar="SECONDS",
        help="SIGKILL an orchestrator this long after each start (once it has recovered), "
        "and start it again; with several workers, one at a time, in turn",
    )
    parser.add_argument(
        "--timeout", type=float, metavar="SECONDS", help="every step's reply timeout"
    )
    parser.add_argument(
        "--mutant",
        metavar="NAME",
        help="run a deliberately broken runtime: "
        + ", ".join(_MUTANTS)
        + "; with --style choreography: "
        + ", ".join(_CHOREOGRAPHY_MUTANTS),
    )
    parser.add_argument(
        "--style",
        choices=("orchestration", "choreography"),
        default="orchestration",
        help="choreography: no orchestrator, a process per participant reacting to events "
        "(--kill-every then SIGKILLs a participant drawn by the seed)",
    )
    parser.add_argument(
        "--json", action="store_true", help="print one JSON object instead of the report"
    )
    parser.set_defaults(run=run)


def _progress(
    enabled: bool, tty: bool
) -> tuple[Callable[[int, int], None] | None, Callable[[], None]]:
    if not enabled:
        return None, lambda: None
    if tty:
        from .simulate import _progress_bar

        return _progress_bar(True)
    shown = [-1]

    def line(done: int, total: int) -> None:
        tenth = done * 10 // total
        if tenth != shown[0]:
            shown[0] = tenth
            print(f"sagafsm run: {done}/{total} sagas finished", file=sys.stderr, flush=True)

    return line, lambda: None


def run(args: argparse.Namespace) -> int:
    from .._extras import require

    require("sim", "running a scenario")  # the scenarios and the report are the simulator's
    from ..runtime.crashpoints import ENVIRONMENT_VARIABLE
    from ..runtime.supervisor import RunPlan, supervise

    spec = os.environ.get(ENVIRONMENT_VARIABLE)
    if args.style == "choreography":
        from .run_choreography import run_choreography

        return run_choreography(args, spec)
    crashes: dict[str, tuple[str, ...]] = {"orchestrator": (), "participant": ()}
    if spec:  # arms the first life of the process whose point it names
        crashes[spec.partition(".")[0]] = (spec,)
    plan = RunPlan(
        orchestrator_crashes=crashes["orchestrator"],
        participant_crashes=crashes.get("participant", ()),
        scenario=args.scenario,
        store=args.store,
        sagas=args.sagas,
        seed=args.seed,
        concurrency=args.concurrency,
        timeout=args.timeout,
        kill_every=args.kill_every,
        workers=args.workers,
        mutant=args.mutant,
    )
    progress, stop = _progress(not args.json, sys.stderr.isatty())
    try:
        result = supervise(plan, progress)
    finally:
        stop()
    if args.json:
        # simulate's keys: a real run's faults are kills, whose termination is always judged
        print(json.dumps({**result.to_json(), "not_judged": None}, indent=2))
    else:
        print(format_real_report(result, plan.store, plan.kill_every))
    return 1 if result.violations else 0


def format_real_report(result: Any, store: str, kill_every: float | None) -> str:
    """The readable report of a real run (a :class:`~sagafsm.runtime.verdict.RealRunResult`),
    laid out as ``simulate``'s."""
    # laid out by the simulator's report's own pieces
    from ..sim.report import duration_lines, outcome_lines, plural, verdict_lines

    metrics = result.metrics
    lines = [
        f"sagafsm run {result.scenario}: {result.sagas} sagas, seed {result.seed}, store {store}"
        + (" (carried on)" if result.resumed else "")
        + (f", mutant {result.mutant}" if result.mutant else ""),
        "",
        "outcomes",
    ]
    lines += outcome_lines(result.outcomes, result.reasons, result.sagas)
    lines += [
        "",
        f"throughput          {metrics['throughput_per_s']:.1f} completed sagas per s",
        f"goodput             {metrics['goodput'] * 100:.1f}% of finished sagas completed",
        "",
    ]
    lines += duration_lines(metrics["latency"])
    kills = ", ".join(f"{kind.replace('_', ' ')} {n}" for kind, n in result.faults.items())
    every = f" (--kill-every {kill_every:g} s)" if kill_every else ""
    retries = metrics["retries"]
    lines += [
        "",
        f"messages            {result.messages['sent']:,} sent",
        f"kills               {result.kills}{every}" + (f": {kills}" if kills else ""),
        f"orchestrator        {plural(metrics['restarts'], 'start')}, "
        f"{plural(metrics['recovered_sagas'], 'saga')} recovered",
        f"retries             {retries['action']} action, {retries['compensation']} compensation",
        "participants        "
        + ", ".join(f"{name} {p['operations']}" for name, p in metrics["participants"].items()),
        "",
        f"wall time           {result.wall_seconds:.2f} s ({result.events:,} trace records)",
        "",
    ]
    lines += verdict_lines(result.stopped, result.violations, result.violation_counts)
    return "\n".join(lines)
