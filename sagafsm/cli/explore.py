"""``sagafsm explore``: search fault placements for a violation and shrink it."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from ..errors import InvalidConfig

__all__ = ["register", "run"]


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "explore",
        help="search fault placements for a violation; shrink it to a minimal plan",
        description="Search where faults fall (a message of a saga dropped, duplicated or "
        "delayed past every retry; a step failing or hanging; a compensation failing; the "
        "orchestrator crashing) with Hypothesis, and shrink the first violation to the fewest "
        "sagas and faults. --exhaustive instead runs every placement of one and of two faults "
        "on a small run. Exit status 1 when a violation was found, 0 when none, 2 on bad input.",
    )
    parser.add_argument("scenario", help="a built-in scenario or the path of a scenario file")
    parser.add_argument("--mutant", metavar="NAME", help="explore a deliberately broken variant")
    parser.add_argument(
        "--exhaustive",
        action="store_true",
        help="run every placement of one and of two faults instead of searching",
    )
    parser.add_argument(
        "--sagas",
        type=int,
        metavar="N",
        help="sagas per run (search: at most N, default 3; exhaustive: N, default 1)",
    )
    parser.add_argument(
        "--max-examples",
        type=int,
        default=1000,
        metavar="K",
        help="plans the search may try before giving up (default 1000)",
    )
    parser.add_argument(
        "--retry-attempts",
        type=int,
        metavar="N",
        help="tries per action in every run (search: drawn from 1-3 otherwise; "
        "exhaustive: the scenario's own otherwise)",
    )
    parser.add_argument("--seed", type=int, default=0, help="the search's own seed")
    parser.add_argument(
        "--output",
        metavar="FILE.toml",
        help="save the (minimal) counterexample; simulate/replay --config read it",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..sim import load_scenario
    from ..sim.coverage import Coverage
    from ..sim.explore import exhaustive, save_plan, search
    from ..sim.mutants import get_mutant

    for flag in ("sagas", "max_examples", "retry_attempts"):
        value = getattr(args, flag)
        if value is not None and value < 1:
            raise InvalidConfig(f"--{flag.replace('_', '-')} must be at least 1, got {value}")
    if args.output:
        target = Path(args.output)
        if not args.output.endswith(".toml") or not target.parent.is_dir():
            raise InvalidConfig(
                f"--output {args.output!r}: needs a .toml file in an existing directory"
            )
    scenario = load_scenario(args.scenario)
    mutant = get_mutant(args.mutant) if args.mutant else None
    if mutant is not None:
        mutant.check_applies(scenario.name, scenario.definition)
    coverage = Coverage()
    report: dict[str, Any] = {"scenario": scenario.name, "mutant": args.mutant}
    if args.exhaustive:
        tty = not args.json and sys.stderr.isatty()
        result = exhaustive(
            scenario,
            mutant,
            sagas=args.sagas or 1,
            retry_attempts=args.retry_attempts,
            coverage=coverage,
            scenario_ref=args.scenario,
            progress=(lambda d, t: print(f"\r{d}/{t} plans", end="", file=sys.stderr))
            if tty
            else None,
        )
        if tty:
            print(file=sys.stderr)
        found = result.first
        report.update(
            mode="exhaustive",
            sagas=result.sagas,
            single=result.single,
            pairs=result.pairs,
            violating=result.violating,
            seconds=round(result.seconds, 3),
        )
        summary = (
            f"exhaustive: {result.single} placements of one fault and {result.pairs} of "
            f"two on {result.sagas} saga(s), {result.seconds:.1f}s: "
            + (
                f"{result.violating} violate a property"
                if result.violating
                else "no violation in any of them"
            )
        )
    else:
        found = search(
            scenario,
            mutant,
            max_sagas=args.sagas or 3,
            max_examples=args.max_examples,
            seed=args.seed,
            retry_attempts=args.retry_attempts,
            coverage=coverage,
            scenario_ref=args.scenario,
        )
        report.update(mode="search", max_examples=args.max_examples)
        summary = "search: " + (
            f"violation found and shrunk in {found.seconds:.1f}s ({found.examples} plans run)"
            if found
            else f"no violation in {args.max_examples} plans"
        )
    report["found"] = found is not None
    report["coverage"] = coverage.summary()
    if found is not None:
        report["counterexample"] = {
            "sagas": found.sagas,
            "faults": found.faults,
            "plan": found.data,
            "violations": [v.to_json() for v in found.violations],
        }
        if args.output:
            save_plan(found.data, args.output)
            report["saved"] = args.output
    if args.json:
        print(json.dumps(report, indent=2))
        return 1 if found else 0
    print(summary)
    if found is not None:
        faults = found.data["faults"]
        print(
            f"minimal plan: {found.sagas} saga(s), {found.faults} fault(s)"
            + (
                f", {found.data['retry_attempts']} tr(ies) per action"
                if "retry_attempts" in found.data
                else ""
            )
        )
        for fault in [*faults["targeted"], *faults["orchestrator_crashes"]]:
            print(f"  {fault}")
        first = found.violations[0]
        print(f"violation: [{first.property}] saga {first.saga_id}: {first.detail}")
        for line in first.history:
            print(f"  {line}")
        if args.output:
            print(f"saved: {args.output} (sagafsm replay --config {args.output})")
    for lifecycle, cover in coverage.summary().items():
        if cover["uncovered"]:
            print(f"{lifecycle} transitions never exercised: {', '.join(cover['uncovered'])}")
    return 1 if found else 0
