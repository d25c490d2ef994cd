"""Clocks: the virtual clock stands still until advanced and wakes sleepers in (due, arrival)
order; the wall clock really waits."""

from __future__ import annotations

import asyncio
import time

import pytest

from sagafsm.errors import InvalidArgument
from sagafsm.runtime.clock import Clock, VirtualClock, WallClock


async def _settle() -> None:
    """Let every woken task run to its next wait."""
    for _ in range(5):
        await asyncio.sleep(0)


def test_sleepers_wake_by_due_time_then_by_arrival() -> None:
    """Three sleepers due at 2, 1, 2 wake as 1, then the two due at 2 in the order they slept."""

    async def main() -> list[tuple[str, float]]:
        clock = VirtualClock(start=0.0)
        woken: list[tuple[str, float]] = []

        async def sleeper(name: str, due: float) -> None:
            await clock.sleep_until(due)
            woken.append((name, clock.now()))

        async with asyncio.TaskGroup() as group:
            for name, due in (("a", 2.0), ("b", 1.0), ("c", 2.0)):
                group.create_task(sleeper(name, due))
            await _settle()
            assert clock.pending() == 1.0
            assert clock.advance_to_next() == 1.0
            await _settle()
            assert woken == [("b", 1.0)]
            assert clock.advance_to_next() == 2.0
            await _settle()
            assert clock.advance_to_next() is None  # nobody sleeps: the time stays
            assert clock.now() == 2.0
        return woken

    assert asyncio.run(main()) == [("b", 1.0), ("a", 2.0), ("c", 2.0)]


def test_advance_wakes_everyone_due_by_the_new_time() -> None:
    """advance(5) from 10 wakes the sleepers due at 11 and 15, not the one due at 16."""

    async def main() -> None:
        clock = VirtualClock(start=10.0)
        woken: list[float] = []

        async def sleeper(due: float) -> None:
            await clock.sleep_until(due)
            woken.append(due)

        async with asyncio.TaskGroup() as group:
            for due in (16.0, 11.0, 15.0):
                group.create_task(sleeper(due))
            await _settle()
            assert clock.advance(5) == 15.0
            await _settle()
            assert woken == [11.0, 15.0]
            assert clock.pending() == 16.0
            clock.advance(1)
        assert woken == [11.0, 15.0, 16.0]

    asyncio.run(main())


def test_a_time_already_reached_returns_at_once() -> None:
    """sleep_until a past or present time does not wait for an advance."""

    async def main() -> None:
        clock = VirtualClock(start=3.0)
        await clock.sleep_until(3.0)
        await clock.sleep_until(-1)
        assert clock.pending() is None

    asyncio.run(asyncio.wait_for(main(), timeout=5))


def test_a_cancelled_sleeper_drops_out() -> None:
    """Cancel the only sleeper: nothing is pending any more, advance_to_next returns None."""

    async def main() -> None:
        clock = VirtualClock()
        task = asyncio.ensure_future(clock.sleep_until(4.0))
        await _settle()
        assert clock.pending() == 4.0
        task.cancel()
        await asyncio.wait((task,))
        assert clock.pending() is None
        assert clock.advance_to_next() is None
        assert clock.now() == 0.0

    asyncio.run(main())


@pytest.mark.parametrize("seconds", [-1, float("nan"), float("inf"), "1", True])
def test_advance_refuses_a_bad_amount(seconds: object) -> None:
    """Time does not run backwards, nor by a non-number."""
    with pytest.raises(InvalidArgument):
        VirtualClock().advance(seconds)  # type: ignore[arg-type]


def test_the_wall_clock_waits_for_real_time() -> None:
    """sleep_until(now + 0.05) returns once time.time() has reached it; now() is epoch time."""

    async def main() -> None:
        clock: Clock = WallClock()
        assert abs(clock.now() - time.time()) < 1
        target = clock.now() + 0.05
        await clock.sleep_until(target)
        assert time.time() >= target

    asyncio.run(main())
