"""``sagafsm retry``: an operator asks for another try of a saga's compensation that gave up.

A saga whose compensation ran out of tries ends ``operator_required`` with its snapshot parked in
the store. Once the cause is fixed (the participant is back, the bug is deployed), the operator
asks for a retry: this command writes the request, and the runtime working on the store (now,
within its ``retry_poll``, or when it next starts) applies it as one move of the saga, through
the lifecycles' ``operator_retry`` rows: the compensation is sent again under its idempotency key
with a fresh budget of tries, then the earlier steps are compensated as usual. The trace gets an
``operator`` record, and the checkers judge the saga by its last finish.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from typing import Any

from ..errors import InvalidConfig
from ..runtime.retries import retry_refusal
from ._operate import add_store_argument, existing_store

__all__ = ["register", "run"]


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "retry",
        help="retry the compensation that left a saga operator_required (the runtime applies it)",
        description="Ask for another try of the compensation that gave up and left SAGA_ID "
        "operator_required: the request is stored, and the runtime on this store applies it "
        "within its retry poll (or when it next starts), in one transaction with an operator "
        "record. Exit status 0, or 2 with nothing changed: no such saga, a saga in another "
        "state, one resolved or parked for another reason, a retry already waiting.",
    )
    add_store_argument(parser)
    parser.add_argument("saga_id", metavar="SAGA_ID", help="the saga to retry")
    parser.add_argument(
        "--note", default="", metavar="TEXT", help="why it can work now, and who asks (traced)"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(run=run)


async def _request(url: str, saga_id: str, note: str) -> dict[str, Any]:
    store = existing_store(url)
    async with store:
        status = await store.status(saga_id)
        if status is None or not status.retryable or status.resolution is not None:
            raise InvalidConfig(retry_refusal(saga_id, status))
        if not await store.request_retry(saga_id, note, time.time()):
            raise InvalidConfig(retry_refusal(saga_id, await store.status(saga_id)))
    return {"saga_id": saga_id, "definition": status.definition, "reason": status.reason,
            "note": note}  # fmt: skip


def run(args: argparse.Namespace) -> int:
    requested = asyncio.run(_request(args.store, args.saga_id, args.note))
    if args.json:
        print(json.dumps(requested, indent=2))
    else:
        print(
            f"saga {requested['saga_id']}: retry requested; the runtime on this store applies it "
            "(sagafsm status shows it compensating again)"
        )
    return 0
