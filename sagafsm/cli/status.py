"""``sagafsm status``: what a store's sagas are waiting for, and which need a person."""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from typing import Any

from ._operate import RUNNING_STATES, add_store_argument, definitions_for, existing_store, progress

__all__ = ["register", "run"]

_OPERATOR = "operator_required"


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "status",
        help="list a store's running sagas with the steps still to run, and every saga that "
        "needs an operator",
        description="Read a runtime store and list every running saga: the step in flight (and "
        "which try), the steps still to run or, while it compensates, still to compensate, and "
        "its next timer; then every operator_required saga with its reason and whether an "
        "operator resolved it. The steps come from the saga's definition, taken from "
        "--scenario or the built-in scenario of the definition's name. Changes nothing. "
        "Exit status 0, or 2 for a store or scenario that cannot be read.",
    )
    add_store_argument(parser)
    parser.add_argument(
        "--scenario",
        action="append",
        default=[],
        metavar="NAME",
        help="a scenario (built-in name, or a .py file) whose definition the store's sagas run "
        "(repeatable; default: the built-in scenario named like each definition)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(run=run)


async def _read(url: str, scenarios: list[str]) -> dict[str, Any]:
    store = existing_store(url)
    async with store:
        running = await store.sagas(RUNNING_STATES)
        stuck = await store.sagas([_OPERATOR])
    definitions = definitions_for(
        {saga.definition for saga in running},
        scenarios,
        {saga.saga_id: saga.definition for saga in running},
    )
    return {
        "store": url,
        "running": [progress(saga, definitions[saga.definition]) for saga in running],
        "operator_required": [
            {
                "saga_id": saga.saga_id,
                "definition": saga.definition,
                "reason": saga.reason,
                "updated_at": saga.updated_at,
                "resolution": saga.resolution,
                "retryable": saga.retryable,
            }
            for saga in stuck
        ],
    }


def _active(saga: dict[str, Any]) -> str:
    active = saga["active"]
    if active is None:
        return "not begun"
    return (
        f"step {active['step']} {active['state']}, try {active['attempt']} of "
        f"{active['max_attempts']}"
    )


def format_status(report: dict[str, Any], now: float) -> str:
    running, stuck = report["running"], report["operator_required"]
    open_ = [saga for saga in stuck if saga["resolution"] is None]
    lines = [
        f"{report['store']}: {len(running)} running, {len(stuck)} operator_required "
        f"({len(open_)} unresolved)"
    ]
    if running:
        lines += ["", "running"]
    for saga in running:
        due = saga["timer_due"]
        if due is None:
            timer = ""
        elif due >= now:
            timer = f"; next timer in {due - now:.1f} s"
        else:  # a running runtime fires its timers on time: nobody is running this saga
            timer = f"; its timer is overdue by {now - due:.1f} s (is the runtime running?)"
        lines.append(f"  {saga['saga_id']}  {saga['state']}: {_active(saga)}{timer}")
        if saga["to_compensate"]:
            lines.append(f"      to compensate: {', '.join(saga['to_compensate'])}")
        else:
            lines.append(f"      to run: {', '.join(saga['to_run']) or '-'}")
    if stuck:
        lines += ["", "operator_required"]
    for saga in stuck:
        lines.append(f"  {saga['saga_id']}  {saga['reason']}")
        if saga["resolution"] is None:
            where = f"{report['store']} {saga['saga_id']}"
            if saga["retryable"]:
                lines.append(f"      retry its compensation: sagafsm retry {where} --note TEXT")
            lines.append(f"      unresolved: sagafsm resolve {where} --note TEXT")
        else:
            lines.append(f"      resolved: {saga['resolution']}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    report = asyncio.run(_read(args.store, args.scenario))
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(format_status(report, time.time()))
    return 0
