"""The runtime's armed timers in memory: at most one per saga, a heap by due time, and the task
that wakes when the earliest is due.

The store holds the same timers as rows (committed with each move); this table is their working
copy, rebuilt from the rows when the runtime opens. Re-arming or cancelling leaves a stale heap
entry behind, skipped when it reaches the top; the heap is rebuilt once stale entries outnumber
live ones, so memory follows the timers armed, not every timer ever armed.
"""

from __future__ import annotations

import asyncio
import heapq
import math
from collections.abc import Callable
from typing import Any

from .clock import Clock

__all__ = ["TimerTable"]


class TimerTable:
    def __init__(self) -> None:
        self._armed: dict[str, tuple[str, float]] = {}
        """saga id -> (timer id, due) of its armed timer."""
        self._heap: list[tuple[float, str, str]] = []
        self._changed = asyncio.Event()
        self._wake_at = math.inf
        """When the timer task wakes next (it need not be woken for a later timer)."""

    def __len__(self) -> int:
        return len(self._armed)

    def arm(self, saga_id: str, timer_id: str, due: float) -> None:
        armed, heap = self._armed, self._heap
        armed[saga_id] = (timer_id, due)
        if len(heap) > 2 * len(armed) + 1024:
            heap[:] = [(d, s, t) for s, (t, d) in armed.items()]
            heapq.heapify(heap)
        else:
            heapq.heappush(heap, (due, saga_id, timer_id))
        if due < self._wake_at:  # the timer task sleeps past it: wake it to sleep less
            self._changed.set()

    def cancel(self, saga_id: str) -> None:
        self._armed.pop(saga_id, None)

    def next_due(self) -> float | None:
        """The due time of the earliest armed timer."""
        heap, armed = self._heap, self._armed
        while heap and armed.get(heap[0][1]) != (heap[0][2], heap[0][0]):
            heapq.heappop(heap)
        return heap[0][0] if heap else None

    def pop_due(self, now: float) -> list[tuple[str, str]]:
        """Disarm and return ``(saga id, timer id)`` of every timer due by ``now``."""
        fired: list[tuple[str, str]] = []
        while (due := self.next_due()) is not None and due <= now:
            _, saga_id, timer_id = heapq.heappop(self._heap)
            del self._armed[saga_id]
            fired.append((saga_id, timer_id))
        return fired

    async def run(self, clock: Clock, fire_due: Callable[[], object]) -> None:
        """Forever: call ``fire_due`` whenever a timer may be due (by ``clock``)."""
        while True:
            self._changed.clear()
            fire_due()
            due = self.next_due()
            self._wake_at = due if due is not None else math.inf
            changed = asyncio.ensure_future(self._changed.wait())
            waiters: set[asyncio.Future[Any]] = {changed}
            if due is not None:
                waiters.add(asyncio.ensure_future(clock.sleep_until(due)))
            try:
                await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for waiter in waiters:
                    waiter.cancel()
