"""Stopping the runtime's tasks without losing a cancellation (:mod:`sagafsm.runtime.cancelling`).

Python 3.11's ``asyncio.wait_for`` loses a cancellation that arrives just after what it waits
for completed; a worker's timer-claim loop waited that way and, a hint coming due at close,
never ended (the shutdown hang of several workers). The broken variant is shown losing it (on
the Pythons that have the bug), the helpers are shown not to, and ``cancel_all`` ends a task
that swallows its first cancellation outright.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import Awaitable, Callable

import pytest

from sagafsm.runtime.cancelling import cancel_all, wait_set

Waiter = Callable[[asyncio.Event], Awaitable[None]]


async def _wait_for(event: asyncio.Event) -> None:
    """The old wait: ``wait_for`` on the event, a timeout meaning "look again"."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(event.wait(), 10)


async def _wait_set(event: asyncio.Event) -> None:
    await wait_set(event, 10)


async def _closed_as_woken(wait: Waiter, turns: int) -> bool:
    """A loop like the timer claims' is woken, and cancelled ``turns`` loop turns later: True
    if the cancellation ended it."""
    wake = asyncio.Event()

    async def claims() -> None:
        while True:
            wake.clear()
            await wait(wake)

    task = asyncio.ensure_future(claims())
    await asyncio.sleep(0.01)  # the loop is waiting
    wake.set()
    for _ in range(turns):
        await asyncio.sleep(0)
    task.cancel()
    done, _ = await asyncio.wait({task}, timeout=0.5)
    if not done:  # the cancellation was lost: end the test's task for good
        await cancel_all([task])
    return bool(done)


@pytest.mark.parametrize("turns", [0, 1, 2, 3])
def test_wait_set_never_loses_the_cancellation(turns: int) -> None:
    assert asyncio.run(_closed_as_woken(_wait_set, turns))


@pytest.mark.skipif(sys.version_info >= (3, 12), reason="wait_for is fixed from Python 3.12 on")
def test_wait_for_loses_it_on_this_python() -> None:
    """The broken variant: cancelled in the same turn as the wake-up, the loop carries on."""
    assert not asyncio.run(_closed_as_woken(_wait_for, 0))


def test_wait_set_times_out_and_returns_when_set() -> None:
    async def scenario() -> tuple[bool, float]:
        loop = asyncio.get_running_loop()
        began = loop.time()
        await wait_set(asyncio.Event(), 0.05)
        waited = loop.time() - began
        ready = asyncio.Event()
        ready.set()
        await wait_set(ready, 10)  # at once
        return loop.time() - began < 5, waited

    quick, waited = asyncio.run(scenario())
    assert quick and waited >= 0.04


def test_cancel_all_ends_a_task_that_swallowed_its_cancellation() -> None:
    async def scenario() -> tuple[int, bool]:
        swallowed = 0

        async def stubborn() -> None:
            nonlocal swallowed
            while True:
                try:
                    await asyncio.sleep(10)
                except asyncio.CancelledError:
                    swallowed += 1
                    if swallowed > 1:
                        raise

        task = asyncio.ensure_future(stubborn())
        await asyncio.sleep(0)
        await asyncio.wait_for(cancel_all([task]), 5)
        return swallowed, task.cancelled()

    swallowed, cancelled = asyncio.run(scenario())
    assert (swallowed, cancelled) == (2, True)
