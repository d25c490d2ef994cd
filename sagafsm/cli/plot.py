"""``sagafsm plot SWEEP.csv``: redraw a sweep's figures from its table, nothing rerun."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import attrs

from .._extras import require
from ..errors import InvalidConfig

__all__ = ["register", "run"]


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "plot",
        help="draw a sweep's figures from its table (sweep.csv)",
        description="Draw, from the table that sagafsm sweep wrote, each metric against one "
        "parameter (mean and 95%% CI over seeds, one line per value of a second) and, with two "
        "parameters, a heat map over both. Exit status 0, or 2 for a bad table or flag.",
    )
    parser.add_argument("table", metavar="SWEEP.csv", help="the table sagafsm sweep wrote")
    parser.add_argument(
        "--output", metavar="DIR", help="where the PNG files go (default: beside the table)"
    )
    parser.add_argument(
        "--metric",
        action="append",
        metavar="NAME",
        help="a column to draw (repeatable; default goodput, latency_p99, violations)",
    )
    parser.add_argument("--x", metavar="KEY", help="the parameter on the x axis (default: first)")
    parser.add_argument(
        "--by", metavar="KEY", help="one line (and the heat map's y axis) per value of KEY"
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    require("plots", "drawing a sweep")
    from ..sweep import read_table
    from ..sweep.figures import check_columns, write_sweep_figures
    from ._inputs import check_output_dir

    table = read_table(args.table)
    order = [key for key in (args.x, args.by) if key is not None]
    defaults = [m for m in ("goodput", "latency_p99", "violations") if m in table.columns]
    metrics = args.metric or defaults
    for metric in metrics:
        check_columns(table, metric, order)
    if args.by is not None and args.x is None:
        raise InvalidConfig("--by needs --x (the parameter it goes with)")
    parameters = (*order, *(p for p in table.parameters if p not in order))
    table = attrs.evolve(table, parameters=parameters)
    output = check_output_dir(args.output or str(Path(args.table).parent), "--output")
    for path in write_sweep_figures(table, output, metrics):
        print(f"figure              {path}")
    return 0
