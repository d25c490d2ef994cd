"""The ``sagafsm`` command line."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sagafsm", description="Sagas as state machines: simulate, check, draw."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    simulate = sub.add_parser("simulate", help="run a failure-injection simulation")
    simulate.add_argument("scenario")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "simulate":
        print("no simulation yet: the SimPy harness is not built")
        return 0
    return 2


if __name__ == "__main__":
    sys.exit(main())
