"""``sagafsm replay``: one saga's timeline, from a re-run or from a trace file."""

from __future__ import annotations

import argparse
import math
from typing import Any

from .._extras import require
from ..errors import InvalidConfig
from ._inputs import check_output_file, staged
from ._run_config import RUN_FLAGS, add_run_arguments, resolve_run

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


def _read_trace(path: str) -> tuple[list[Any], dict[str, Any] | None]:
    """The records of a trace file, and what it was recorded under (None for an older one)."""
    from ..sim.timeline import record_from_dict
    from ..sim.trace import read_trace, recorded_under

    try:
        records = [_checked(record_from_dict(line)) for line in read_trace(path)]
        recorded = recorded_under(path)
    except OSError as error:
        raise InvalidConfig(f"cannot read trace {path!r}: {error.strerror}") from None
    except UnicodeDecodeError:
        raise InvalidConfig(f"--trace {path!r} is not a sagafsm trace (not UTF-8 text)") from None
    except (ValueError, KeyError, TypeError, AttributeError, IndexError) as error:
        why = " ".join(str(error).split())
        raise InvalidConfig(f"--trace {path!r} is not a sagafsm trace ({why})") from None
    return records, recorded


def _checked(record: Any) -> Any:
    """A record whose time, kind and saga have the types a trace gives them (ValueError if not)."""
    at, kind, saga = record[0], record[1], record[2]
    if isinstance(at, bool) or not isinstance(at, (int, float)) or not math.isfinite(at):
        raise ValueError(f"a {kind} record at time {at!r}")
    if saga is not None and not isinstance(saga, str):
        raise ValueError(f"a {kind} record of saga {saga!r}")
    return record


def _trace_scenario(
    args: argparse.Namespace, records: list[tuple[Any, ...]], recorded: dict[str, Any] | None
) -> tuple[Any, str | None]:
    """The scenario to check a trace against, or None with the reason it goes unchecked.

    A scenario named on the command line must be the one the trace was recorded under: checked
    against another saga's definition, a trace reads as violations that never happened."""
    from ..sim import load_scenario

    definitions = {r[3] for r in records if r[1] == "start"}
    if args.scenario:
        scenario = load_scenario(args.scenario)
        if recorded is not None and recorded.get("scenario") != scenario.name:
            raise InvalidConfig(
                f"--trace {args.trace!r} was recorded under scenario {recorded.get('scenario')!r}"
                f", not {scenario.name!r}: drop SCENARIO, or name the one it was recorded under"
            )
        if definitions - {scenario.definition.name}:
            ran = ", ".join(repr(name) for name in sorted(definitions))
            raise InvalidConfig(
                f"--trace {args.trace!r} runs definition {ran}, and scenario {scenario.name!r} "
                f"defines {scenario.definition.name!r}: drop SCENARIO, or name the one it was "
                "recorded under"
            )
        return scenario, None
    ref = (recorded or {}).get("scenario_ref") or next(iter(sorted(definitions)), None)
    if not isinstance(ref, str):
        return None, "no saga started in it"
    try:
        return load_scenario(ref), None
    except InvalidConfig as error:  # a user's scenario moved or gone: show the story unchecked
        return None, f"{error}; name its scenario to check it"


def run(args: argparse.Namespace) -> int:
    from ..checks import check_history
    from ..sim.timeline import format_timeline, saga_timeline

    if args.swimlane:
        require("plots", "--swimlane")
    swimlane = (
        check_output_file(args.swimlane, "--swimlane", (".png", ".svg")) if args.swimlane else None
    )
    if args.trace:
        given = [flag for flag in RUN_FLAGS if getattr(args, flag) is not None]
        ignored = [f"--{flag.replace('_', '-')}" for flag in given]
        if ignored:
            raise InvalidConfig(
                f"{', '.join(ignored)} would change a re-run, not a trace: drop "
                f"{'it' if len(ignored) == 1 else 'them'}, or drop --trace to re-run"
            )
    violations: list[Any]
    records: list[tuple[Any, ...]]
    unchecked: str | None = None
    if args.trace:
        records, recorded = _read_trace(args.trace)
        scenario, unchecked = _trace_scenario(args, records, recorded)
        violations = [] if scenario is None else check_history(records, scenario.definition)
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
    mine = [v for v in violations if v.saga_id == saga_id]
    if swimlane is not None:
        from ..plots import swimlane_figure, write_figure

        with staged() as outputs:
            figure = swimlane_figure(saga_timeline(records, saga_id), saga_id, violations=mine)
            write_figure(figure, outputs.file(swimlane))
            outputs.commit()
    print(format_timeline(records, saga_id))
    if unchecked is not None:
        print(f"not checked: {unchecked}")
    for violation in mine:
        print(f"VIOLATION [{violation.property}] {violation.detail}")
    if swimlane is not None:
        print(f"figure: {args.swimlane}")
    return 1 if mine else 0
