"""Waiting and stopping that do not lose a cancellation: the runtime's background tasks are
stopped by cancelling them, and a cancellation lost on the way leaves a task running forever
(its ``close()`` waiting on it).

Python 3.11's ``asyncio.wait_for`` loses one: cancelled in the few loop turns after what it
waits for completed, it returns the result instead of raising (CPython gh-86296, fixed in 3.12
by rewriting ``wait_for`` on ``asyncio.timeout``). A worker's timer-claim loop waited for its
wake-up that way, so a timer hint coming due just as the worker closed kept the loop going, and
the finished worker hung at shutdown, about one run in fifteen. psycopg_pool waits for a free
connection with ``wait_for`` too (psycopg issue 1345, same race), which no code of ours can
change; so the runtime also cancels again what is still running after a moment.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any, Final

__all__ = ["wait_set", "cancel_all"]

RECANCEL_AFTER: Final = 0.5
"""Seconds a cancelled task gets to end before it is cancelled again."""


async def wait_set(event: asyncio.Event, timeout: float) -> None:
    """Wait until ``event`` is set or ``timeout`` seconds passed, whichever is first; a
    cancellation always propagates (``asyncio.wait`` never swallows it, unlike 3.11's
    ``wait_for``)."""
    if event.is_set():
        return
    waiting = asyncio.ensure_future(event.wait())
    try:
        await asyncio.wait((waiting,), timeout=timeout)
    finally:
        waiting.cancel()


async def cancel_all(tasks: Iterable[asyncio.Task[Any]]) -> None:
    """Cancel ``tasks`` and return once all ended, cancelling again every
    :data:`RECANCEL_AFTER` seconds those that lost their cancellation in a race."""
    tasks = list(tasks)
    pending = {task for task in tasks if not task.done()}
    while pending:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=RECANCEL_AFTER)
    for task in tasks:  # what one died of is its owner's to report, not the event loop's
        if not task.cancelled():
            task.exception()
