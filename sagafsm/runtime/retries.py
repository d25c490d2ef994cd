"""Operators' retries of parked sagas: requests kept in the store, applied by the runtime's loop.

A saga whose compensation gave up ends ``operator_required`` with its snapshot *parked* in the
store. ``sagafsm retry STORE SAGA`` (or :meth:`Runtime.retry`) writes a request; the runtime
reads the requests when it opens and every ``retry_poll`` seconds after, and its loop applies
each as one move of the saga (:meth:`~sagafsm.orchestration.OrchestrationCore.retry`): the
operator's record, the moves and the commands commit with the request's deletion in one
transaction, so a crash keeps the request or the retry, never both or neither.
"""

from __future__ import annotations

import asyncio
from typing import Any

from .cancelling import wait_set
from .store import RetryRequest, SagaStatus, Store

__all__ = ["RetryItem", "poll_requests", "retry_refusal"]

_OPERATOR = "operator_required"


class RetryItem:
    """A request on its way through the loop's queue."""

    __slots__ = ("request",)

    def __init__(self, request: RetryRequest) -> None:
        self.request = request


async def poll_requests(
    store: Store, queue: asyncio.Queue[Any], every: float, wake: asyncio.Event, queued: set[str]
) -> None:
    """Queue each request not queued yet, now and every ``every`` seconds (sooner when ``wake``
    is set); the loop removes a saga from ``queued`` once its request is committed."""
    while True:
        for request in await store.retry_requests():
            if request.saga_id not in queued:
                queued.add(request.saga_id)
                queue.put_nowait(RetryItem(request))
        wake.clear()
        await wait_set(wake, every)


def retry_refusal(saga_id: str, status: SagaStatus | None) -> str:
    """Why a retry of ``saga_id`` cannot be requested, given its status (one line)."""
    if status is None:
        return f"no saga {saga_id!r} in this store"
    if status.state != _OPERATOR:
        return f"saga {saga_id!r} is {status.state}, not {_OPERATOR}: nothing to retry"
    if status.resolution is not None:
        return f"saga {saga_id!r} was resolved by an operator ({status.resolution!r})"
    if not status.retryable:
        return (
            f"saga {saga_id!r} needs an operator for another reason than a compensation that "
            f"gave up ({status.reason}): nothing to re-send; mark it resolved once handled"
        )
    return f"saga {saga_id!r} already has a retry waiting for the runtime"
