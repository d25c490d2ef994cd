"""Engine timers on SimPy, without one live SimPy event per timer.

SimPy timeouts cannot be cancelled. The engine arms at most one timer per saga at a time, and
mostly re-arms it later than the last one (the next step's timeout), so each saga keeps a single
*wake-up* event: when it fires early it re-schedules itself for the saga's current deadline; only a
deadline earlier than the pending wake-up (a short backoff) costs a new event. A cancelled timer
simply has no deadline left when the wake-up comes.
"""

from __future__ import annotations

from collections.abc import Callable

import simpy

__all__ = ["Timers"]

_EPSILON = 1e-9


class Timers:
    def __init__(self, env: simpy.Environment, fire: Callable[[str, str], None]) -> None:
        self._env = env
        self._fire = fire
        self._deadline: dict[str, tuple[str, float]] = {}
        """saga id -> (timer id, due time) of its armed timer."""
        self._wake: dict[str, float] = {}
        """saga id -> time of its pending wake-up event."""
        self._generation = 0
        self.wakeups = 0

    def arm(self, saga_id: str, timer_id: str, delay: float) -> None:
        due = self._env.now + delay
        self._deadline[saga_id] = (timer_id, due)
        wake = self._wake.get(saga_id)
        if wake is None or wake > due:
            self._schedule(saga_id, due)

    def cancel(self, saga_id: str) -> None:
        self._deadline.pop(saga_id, None)

    def forget(self, saga_id: str) -> None:
        """The saga finished: nothing of it is kept (its pending wake-up will find nothing)."""
        self._deadline.pop(saga_id, None)
        self._wake.pop(saga_id, None)

    def reset(self) -> None:
        """Lose every timer (the orchestrator crashed): pending wake-ups become no-ops."""
        self._generation += 1
        self._deadline.clear()
        self._wake.clear()

    def __len__(self) -> int:
        return len(self._deadline)

    def _schedule(self, saga_id: str, due: float) -> None:
        self._wake[saga_id] = due
        event = self._env.timeout(due - self._env.now, (saga_id, due, self._generation))
        event.callbacks.append(self._on_wake)
        self.wakeups += 1

    def _on_wake(self, event: simpy.Event) -> None:
        saga_id, wake, generation = event.value  # type: ignore[misc]
        if generation != self._generation or self._wake.get(saga_id) != wake:
            return  # superseded by an earlier wake-up, or lost in a crash
        del self._wake[saga_id]
        armed = self._deadline.get(saga_id)
        if armed is None:
            return
        timer_id, due = armed
        if due <= self._env.now + _EPSILON:  # now + (due - now) may miss due by an ulp
            del self._deadline[saga_id]
            self._fire(saga_id, timer_id)
        else:
            self._schedule(saga_id, due)
