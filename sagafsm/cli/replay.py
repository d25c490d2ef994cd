"""``sagafsm replay``: one saga's timeline, from a re-run or from a trace file."""

from __future__ import annotations

import argparse
from typing import Any

from ..errors import InvalidConfig
from ._run_config import add_run_arguments, resolve_run

__all__ = ["register", "run"]


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "replay",
        help="print one saga's timeline (re-running a seeded configuration, or from --trace)",
        description="Re-run a recorded configuration and seed (a run is a pure function of "
        "them), or read a JSONL trace file, and print one saga's timeline: messages, faults, "
        "transitions and ledger effects in simulated-time order. Without --saga, the first "
        "saga with a violation is shown (or the first saga).",
    )
    add_run_arguments(parser)
    parser.add_argument(
        "--trace", metavar="FILE.jsonl", help="read this trace file instead of re-running"
    )
    parser.add_argument("--saga", metavar="ID", help="the saga to show (e.g. s42)")
    parser.add_argument(
        "--swimlane",
        metavar="FILE.png",
        help="also draw the saga as a swimlane figure (.png or .svg), its violations in magenta",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..checks import check_history
    from ..sim import read_trace
    from ..sim.timeline import format_timeline, record_from_dict, saga_timeline

    if args.swimlane and not args.swimlane.endswith((".png", ".svg")):
        raise InvalidConfig(f"--swimlane {args.swimlane!r}: the file name must end in .png or .svg")
    violations: list[Any]
    records: list[tuple[Any, ...]]
    if args.trace:
        try:
            records = [record_from_dict(line) for line in read_trace(args.trace)]
        except OSError as error:
            raise InvalidConfig(f"cannot read trace {args.trace!r}: {error.strerror}") from None
        except (ValueError, KeyError) as error:
            raise InvalidConfig(f"{args.trace}: not a sagafsm trace ({error})") from None
        definition_name = next((r[3] for r in records if r[1] == "start"), None)
        violations = []
        if args.scenario or definition_name:
            from ..sim import load_scenario

            try:
                scenario = load_scenario(args.scenario or str(definition_name))
                violations = check_history(records, scenario.definition)
            except InvalidConfig:
                violations = []  # a user's scenario we cannot load: show the story unchecked
    else:
        from ..sim import simulate

        scenario, config, mutant = resolve_run(args)
        records = []
        result = simulate(scenario, config, mutant=mutant, observe=records.append)
        violations = list(result.violations)
    saga_id = args.saga or next(
        (v.saga_id for v in violations if v.saga_id), next((r[2] for r in records if r[2]), None)
    )
    if saga_id is None or not any(r[2] == saga_id for r in records):
        raise InvalidConfig(f"no saga {saga_id!r} in this run")
    print(format_timeline(records, saga_id))
    mine = [v for v in violations if v.saga_id == saga_id]
    for violation in mine:
        print(f"VIOLATION [{violation.property}] {violation.detail}")
    if args.swimlane:
        from ..plots import swimlane_figure, write_figure

        figure = swimlane_figure(saga_timeline(records, saga_id), saga_id, violations=mine)
        write_figure(figure, args.swimlane)
        print(f"figure: {args.swimlane}")
    return 1 if mine else 0
