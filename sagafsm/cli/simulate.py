"""``sagafsm simulate``: run a failure-injection simulation of a scenario."""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["register", "run"]


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "simulate", help="run a failure-injection simulation of a scenario"
    )
    parser.add_argument("scenario", help="a scenario name (order_fulfillment) or a .py file")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    print("no simulation yet: the SimPy harness is not built")
    return 0
