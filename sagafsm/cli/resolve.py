"""``sagafsm resolve``: an operator marks an ``operator_required`` saga resolved.

The saga itself does not move: ``operator_required`` is a final state that only an operator's
retry leaves (``sagafsm retry``, for a compensation that gave up), so whatever the operator did by
hand instead (refunded, released, shipped) is theirs to say in the note. What changes is the
record: the saga's status row gets the note as its resolution and the trace an ``operator``
record, in one store transaction, so that ``sagafsm status`` stops listing it as unresolved and
the trace tells who closed it and how.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from typing import Any

from ..errors import InvalidConfig
from ._operate import add_store_argument, existing_store

__all__ = ["register", "run"]

_OPERATOR = "operator_required"


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "resolve",
        help="mark an operator_required saga resolved, with a note (recorded in the trace)",
        description="Mark a saga that ended operator_required resolved: its status keeps NOTE "
        "as its resolution and the trace gets an operator record, in one transaction. The saga "
        "does not run again (to try a compensation that gave up again instead: sagafsm retry). "
        "Exit status 0, or 2 with nothing changed: no such saga, a saga in another state, one "
        "already resolved, an empty note.",
    )
    add_store_argument(parser)
    parser.add_argument("saga_id", metavar="SAGA_ID", help="the saga to mark resolved")
    parser.add_argument(
        "--note", required=True, metavar="TEXT", help="what was done about it, and by whom"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(run=run)


async def _resolve(url: str, saga_id: str, note: str) -> dict[str, Any]:
    if not note.strip():
        raise InvalidConfig("--note must say what was done (it is empty)")
    store = existing_store(url)
    async with store:
        status = await store.status(saga_id)
        if status is None:
            raise InvalidConfig(f"no saga {saga_id!r} in {url}")
        if status.state != _OPERATOR:
            raise InvalidConfig(
                f"saga {saga_id!r} is {status.state}, not {_OPERATOR}: nothing to resolve"
            )
        if status.resolution is not None:
            raise InvalidConfig(f"saga {saga_id!r} is resolved already: {status.resolution}")
        record = (time.time(), "operator", saga_id, "resolve", note)
        if not await store.resolve(saga_id, note, [record]):
            raise InvalidConfig(f"saga {saga_id!r} was resolved meanwhile, by someone else")
    return {"saga_id": saga_id, "definition": status.definition, "reason": status.reason,
            "resolution": note}  # fmt: skip


def run(args: argparse.Namespace) -> int:
    resolved = asyncio.run(_resolve(args.store, args.saga_id, args.note))
    if args.json:
        print(json.dumps(resolved, indent=2))
    else:
        print(f"saga {resolved['saga_id']} resolved: {resolved['resolution']}")
    return 0
