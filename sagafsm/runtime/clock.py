"""The runtime's time: epoch seconds from an injected clock, never ``loop.time()``.

A snapshot stores absolute due times, so they must mean the same thing after a restart: the
runtime reads :meth:`Clock.now` (epoch seconds) and waits with :meth:`Clock.sleep_until`.
:class:`WallClock` is the real one. :class:`VirtualClock` lets a test skip ahead: time stands
still until the test (or an idle runtime) calls :meth:`VirtualClock.advance_to_next` or
:meth:`VirtualClock.advance`, and sleepers wake in a fixed order (by due time, then by the order
they began to sleep), so a run under it does not depend on how the event loop happens to
schedule timers.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import math
import time
from typing import Protocol

from .._validate import check_now
from ..errors import InvalidArgument

__all__ = ["Clock", "WallClock", "VirtualClock"]


class Clock(Protocol):
    def now(self) -> float:
        """The time, in epoch seconds."""

    async def sleep_until(self, t: float) -> None:
        """Return once :meth:`now` has reached ``t`` (at once if it already has)."""


class WallClock:
    """Real time: :func:`time.time`, waited for with :func:`asyncio.sleep`."""

    def now(self) -> float:
        return time.time()

    async def sleep_until(self, t: float) -> None:
        # asyncio sleeps on the monotonic clock, which may run a hair apart from time.time():
        # sleep again until the wall clock has really reached t.
        while (left := t - time.time()) > 0:
            await asyncio.sleep(left)

    def __repr__(self) -> str:
        return "WallClock()"


class VirtualClock:
    """Time that moves only when told to; sleepers wake in (due, arrival) order.

    :meth:`advance_to_next` jumps to the earliest pending due time and wakes every sleeper due
    by then; :meth:`advance` moves by some seconds and wakes the ones due by the new time. A
    sleeper that is cancelled simply drops out. Use it from one event loop.
    """

    def __init__(self, start: float = 0.0) -> None:
        self._now = check_now(start)
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._arrivals = itertools.count()

    def now(self) -> float:
        return self._now

    async def sleep_until(self, t: float) -> None:
        due = check_now(t)
        if due <= self._now:
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (due, next(self._arrivals), future))
        await future

    def pending(self) -> float | None:
        """The earliest due time of a sleeper still waiting, or None if there is none."""
        sleepers = self._sleepers
        while sleepers and sleepers[0][2].done():  # cancelled while asleep
            heapq.heappop(sleepers)
        return sleepers[0][0] if sleepers else None

    def advance_to_next(self) -> float | None:
        """Jump to the earliest pending due time and wake the sleepers due then; returns the new
        time, or None (and the time stays) if nobody sleeps."""
        due = self.pending()
        if due is None:
            return None
        self._now = max(self._now, due)
        self._wake()
        return self._now

    def advance(self, seconds: float) -> float:
        """Move time on by ``seconds`` (zero or more), waking every sleeper due by then; returns
        the new time."""
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
            raise InvalidArgument(f"seconds must be a number, got {seconds!r}")
        if not math.isfinite(seconds) or seconds < 0:
            raise InvalidArgument(f"seconds must be finite and not negative, got {seconds!r}")
        self._now = check_now(self._now + seconds)
        self._wake()
        return self._now

    def _wake(self) -> None:
        # Futures resolved in this order resume their tasks in this order (call_soon is FIFO).
        sleepers, now = self._sleepers, self._now
        while sleepers and sleepers[0][0] <= now:
            _, _, future = heapq.heappop(sleepers)
            if not future.done():
                future.set_result(None)

    def __repr__(self) -> str:
        return f"VirtualClock(now={self._now!r}, sleeping={len(self._sleepers)})"
