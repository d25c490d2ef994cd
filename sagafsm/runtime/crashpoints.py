"""Named crash points: places in the runtime where a test kills the process with SIGKILL.

A process is armed through the environment (so a test can arm a real child process without any
code of its own in it): ``SAGAFSM_CRASH_AT="orchestrator.after_commit:3"`` kills the process the
third time that point is reached. Unarmed, :func:`hit` costs one dictionary lookup.
"""

from __future__ import annotations

import os
import signal
from typing import Final

__all__ = ["CRASH_POINTS", "ENVIRONMENT_VARIABLE", "hit", "arm", "disarm"]

ENVIRONMENT_VARIABLE: Final = "SAGAFSM_CRASH_AT"

CRASH_POINTS: Final = (
    "orchestrator.before_commit",
    "orchestrator.after_commit",
    "orchestrator.after_publish",
    "participant.before_commit",
    "participant.after_commit",
)
"""In the order a command meets them: the orchestrator decided but has not committed; committed
but not published; published but not marked sent; a participant ran its handler but has not
committed; committed its effect but not replied."""

_armed: dict[str, int] = {}


def arm(point: str, count: int = 1) -> None:
    """Kill this process the ``count``-th time ``point`` is reached from now."""
    if point not in CRASH_POINTS:
        raise ValueError(f"unknown crash point {point!r}; known: {', '.join(CRASH_POINTS)}")
    if count < 1:
        raise ValueError(f"crash point count must be at least 1, got {count}")
    _armed[point] = count


def disarm() -> None:
    _armed.clear()


def hit(point: str) -> None:
    """Reached ``point``: if it is armed and its count runs out, SIGKILL this process."""
    if not _armed:
        return
    left = _armed.get(point)
    if left is None:
        return
    if left > 1:
        _armed[point] = left - 1
        return
    os.kill(os.getpid(), signal.SIGKILL)


def _arm_from_environment() -> None:
    spec = os.environ.get(ENVIRONMENT_VARIABLE)
    if not spec:
        return
    point, _, count = spec.partition(":")
    arm(point, int(count) if count else 1)


_arm_from_environment()
