"""``sagafsm explore``: search fault placements for a violation and shrink it."""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from typing import Any

from .._extras import require
from ..errors import InvalidConfig
from ._inputs import check_output_file, staged

__all__ = ["register", "run"]

_EXHAUSTIVE_SAGAS = 10
"""Placements of one fault grow with the sagas (about 90 per saga), pairs of them with the square:
some 400,000 plans at 10 sagas, half an hour; 40 million at 100, more memory than a laptop has."""


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
    parser.add_argument(
        "--time-budget",
        type=float,
        metavar="SECONDS",
        help="stop after this much wall time: the search returns the smallest violating plan "
        "found so far (maybe not fully shrunk), exhaustive the placements run so far",
    )
    parser.add_argument(
        "--style",
        choices=("orchestration", "choreography"),
        help="explore the saga orchestrated (default) or choreographed (a choreography mutant "
        "always runs choreographed)",
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
    require("explore", "exploring")
    from ..sim import load_scenario
    from ..sim.config import MAX_IN_FLIGHT
    from ..sim.coverage import Coverage
    from ..sim.explore import exhaustive, save_plan, search
    from ..sim.mutants import get_mutant
    from ..sim.report import plural

    for flag in ("sagas", "max_examples", "retry_attempts"):
        value = getattr(args, flag)
        if value is not None and value < 1:
            raise InvalidConfig(f"--{flag.replace('_', '-')} must be at least 1, got {value}")
    if args.exhaustive and args.sagas is not None and args.sagas > _EXHAUSTIVE_SAGAS:
        raise InvalidConfig(
            f"--exhaustive --sagas {args.sagas}: every pair of placements is run, and pairs grow "
            f"with the square of the sagas (some 400,000 plans at {_EXHAUSTIVE_SAGAS}): at most "
            f"{_EXHAUSTIVE_SAGAS}, or drop --exhaustive to search"
        )
    if args.sagas is not None and args.sagas > MAX_IN_FLIGHT:
        raise InvalidConfig(
            f"--sagas {args.sagas}: each explored run is a burst of its sagas, at most "
            f"{MAX_IN_FLIGHT:,} in flight"
        )
    budget = args.time_budget
    if budget is not None and not (math.isfinite(budget) and budget > 0):
        raise InvalidConfig(f"--time-budget must be a number of seconds > 0, got {budget!r}")
    output = check_output_file(args.output, "--output", ".toml") if args.output else None
    scenario = load_scenario(args.scenario)
    mutant = get_mutant(args.mutant) if args.mutant else None
    if mutant is not None:
        mutant.check_applies(scenario.name, scenario.definition)
    coverage = Coverage()
    begun = time.perf_counter()
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
            max_seconds=budget,
            style=args.style,
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
            planned=result.planned,
        )
        ran = result.single + result.pairs
        cut = (
            f" (time budget spent: {ran} of {result.planned} placements run)"
            if ran < result.planned
            else ""
        )
        summary = (
            f"exhaustive: {plural(result.single, 'placement')} of one fault and "
            f"{result.pairs} of two on {plural(result.sagas, 'saga')}, "
            f"{result.seconds:.1f} s{cut}: "
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
            max_seconds=budget,
            style=args.style,
        )
        report.update(mode="search", max_examples=args.max_examples, time_budget=budget)
        if found is None:
            spent = budget is not None and time.perf_counter() - begun >= budget
            summary = "search: " + (
                f"no violation found within the {budget:g} s time budget"
                if spent
                else f"no violation in {plural(args.max_examples, 'plan')}"
            )
        elif found.shrunk:
            summary = (
                f"search: violation found and shrunk in {found.seconds:.1f} s "
                f"({plural(found.examples, 'plan')} run)"
            )
        else:
            summary = (
                f"search: violation found; the time budget ran out while shrinking it "
                f"({found.seconds:.1f} s, {plural(found.examples, 'plan')} run): the plan below "
                "may not be minimal"
            )
    report["found"] = found is not None
    report["coverage"] = coverage.summary()
    if found is not None:
        report["counterexample"] = {
            "sagas": found.sagas,
            "faults": found.faults,
            "shrunk": found.shrunk,
            "plan": found.data,
            "violations": [v.to_json() for v in found.violations],
        }
        if output is not None:
            with staged() as outputs:
                save_plan(found.data, outputs.file(output))
                outputs.commit()
            report["saved"] = args.output
    if args.json:
        print(json.dumps(report, indent=2))
        return 1 if found else 0
    print(summary)
    if found is not None:
        faults = found.data["faults"]
        tries = found.data.get("retry_attempts")
        print(
            f"{'minimal plan' if found.shrunk else 'plan'}: {plural(found.sagas, 'saga')}, "
            f"{plural(found.faults, 'fault')}"
            + (f", {plural(tries, 'try', 'tries')} per action" if tries is not None else "")
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
