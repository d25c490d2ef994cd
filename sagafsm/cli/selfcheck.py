"""``sagafsm selfcheck``: the checkers must bite: every mutant caught, the correct system clean."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

__all__ = ["register", "run"]


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "selfcheck",
        help="run every mutant and the correct system under the same fault plans",
        description="Run each deliberately broken variant (mutant) under a fault plan able to "
        "expose it, and the correct system under the same plan. Exit status 0 when every "
        "mutant is caught and the correct system is clean, 1 otherwise.",
    )
    parser.add_argument(
        "--mutant", action="append", metavar="NAME", help="check only this mutant (repeatable)"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..sim.coverage import Coverage
    from ..sim.mutants import get_mutant
    from ..sim.selfcheck import run_selfcheck

    names = [get_mutant(name).name for name in args.mutant] if args.mutant else None
    coverage = Coverage()
    verbose = not args.json and sys.stderr.isatty()
    rows = run_selfcheck(
        names,
        progress=(lambda name: print(f"checking {name}...", file=sys.stderr)) if verbose else None,
        coverage=coverage,
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
    print(f"{'mutant':<{width}}  caught  correct  caught by")
    for row in rows:
        caught = ", ".join(f"{p} ({n})" for p, n in sorted(row.caught_by.items()))
        print(
            f"{row.mutant:<{width}}  {'yes' if row.caught else 'NO':<6}  "
            f"{'clean' if not row.correct_violations else 'DIRTY':<7}  {caught or '-'}"
        )
        if row.example:
            print(f"{'':<{width}}    e.g. {row.example}")
        if row.correct_violations:
            print(f"{'':<{width}}    correct system violated: {row.correct_violations}")
    for lifecycle, summary in coverage.summary().items():
        print(
            f"\n{lifecycle} transitions exercised by the correct runs: "
            f"{summary['covered']}/{summary['declared']}"
        )
        for row in summary["uncovered"]:
            print(f"  never exercised: {row}")
    print("\nselfcheck: " + ("every mutant caught, the correct system clean" if ok else "FAILED"))
    return 0 if ok else 1
