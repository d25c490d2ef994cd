"""``sagafsm selfcheck``: the checkers must bite: every mutant caught on every scenario it applies
to, the correct system clean under the same plans."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from ..errors import InvalidConfig

__all__ = ["register", "run"]


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "selfcheck",
        help="run every mutant and the correct system on every scenario, under the same plans",
        description="Run each deliberately broken variant (mutant) on each built-in scenario, "
        "under a fault plan able to expose it there, and the correct system under the same "
        "plan; a mutant that does not apply to a scenario (it needs a pivot, a read-only "
        "step...) is reported as not applicable. Exit status 0 when every mutant is caught "
        "wherever it applies and the correct system is clean, 1 otherwise.",
    )
    parser.add_argument(
        "--mutant", action="append", metavar="NAME", help="check only this mutant (repeatable)"
    )
    parser.add_argument(
        "--scenario",
        action="append",
        metavar="NAME",
        help="check only on this built-in scenario (repeatable)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..sim.coverage import Coverage
    from ..sim.mutants import get_mutant
    from ..sim.scenario import builtin_scenarios
    from ..sim.selfcheck import run_selfcheck

    names = [get_mutant(name).name for name in args.mutant] if args.mutant else None
    known = builtin_scenarios()
    for scenario in args.scenario or ():
        if scenario not in known:
            raise InvalidConfig(
                f"unknown built-in scenario {scenario!r} (built in: {', '.join(known)})"
            )
    coverage = Coverage()
    verbose = not args.json and sys.stderr.isatty()
    rows = run_selfcheck(
        names,
        progress=(lambda m, s: print(f"checking {m} on {s}...", file=sys.stderr))
        if verbose
        else None,
        coverage=coverage,
        scenarios=args.scenario,
    )
    ok = all(row.ok for row in rows)
    if args.json:
        print(
            json.dumps(
                {
                    "ok": ok,
                    "mutants": [row.to_json() for row in rows],
                    "coverage": coverage.summary(),
                },
                indent=2,
            )
        )
        return 0 if ok else 1
    width = max(len(row.mutant) for row in rows)
    swidth = max(len(row.scenario) for row in rows)
    print(f"{'mutant':<{width}}  {'scenario':<{swidth}}  caught  correct  caught by")
    for row in rows:
        if not row.applicable:
            print(
                f"{row.mutant:<{width}}  {row.scenario:<{swidth}}  n/a     -        "
                f"does not apply: {row.not_applicable}"
            )
            continue
        caught = ", ".join(f"{p} ({n})" for p, n in sorted(row.caught_by.items()))
        print(
            f"{row.mutant:<{width}}  {row.scenario:<{swidth}}  "
            f"{'yes' if row.caught else 'NO':<6}  "
            f"{'clean' if not row.correct_violations else 'DIRTY':<7}  {caught or '-'}"
        )
        indent = " " * (width + swidth + 4)
        if not row.caught:
            expected = ", ".join(f"{p} ({row.caught_by.get(p, 0)})" for p in row.expected)
            print(f"{indent}expected: {expected}")
            for unknown in row.unknown_expected:
                print(f"{indent}(the checkers define no property {unknown!r})")
        if row.example:
            print(f"{indent}e.g. {row.example}")
        if row.correct_violations:
            print(f"{indent}correct system violated: {row.correct_violations}")
    for lifecycle, summary in coverage.summary().items():
        print(
            f"\n{lifecycle} transitions exercised by the correct runs: "
            f"{summary['covered']}/{summary['declared']}"
        )
        for row in summary["uncovered"]:
            print(f"  never exercised: {row}")
    ran = [row for row in rows if row.applicable]
    print(
        f"\nselfcheck: {len(ran)} mutant runs, {len(rows) - len(ran)} not applicable: "
        + (
            "every mutant caught, the correct system clean"
            if ok
            else f"FAILED ({sum(not row.ok for row in rows)} not ok)"
        )
    )
    return 0 if ok else 1
