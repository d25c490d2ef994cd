"""Named crash points: places in the runtime where a test kills the process with SIGKILL.

A process is armed through the environment (so a test can arm a real child process without any
code of its own in it): ``SAGAFSM_CRASH_AT="orchestrator.after_commit:3"`` kills the process the
third time that point is reached. Unarmed, :func:`hit` costs one dictionary lookup.

In-process tests (:mod:`sagafsm.testing`) arm a point with ``action="raise"`` instead: reaching it
raises :class:`CrashPointReached`, a :class:`BaseException` that unwinds the runtime as a killed
process would stop it (nothing after the point runs), while the store, like a database file,
keeps what was committed.
"""

from __future__ import annotations

import os
import signal
import sys
from typing import Any, Final

__all__ = [
    "CRASH_POINTS",
    "CHOREOGRAPHY_CRASH_POINTS",
    "ENVIRONMENT_VARIABLE",
    "CrashPointReached",
    "hit",
    "arm",
    "disarm",
    "armed",
]

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

CHOREOGRAPHY_CRASH_POINTS: Final = (
    "participant.before_commit",
    "participant.after_commit",
    "participant.after_publish",
)
"""Where a choreographed participant (:mod:`sagafsm.runtime.choreography_host`) meets them, in
each pass: decided but not committed; committed but its events not published; published but not
yet deleted from its outbox."""


class CrashPointReached(BaseException):
    """An armed crash point was reached with ``action="raise"`` (a BaseException, so that no
    ``except Exception`` in the runtime or in a handler swallows it)."""

    def __init__(self, point: str) -> None:
        super().__init__(f"crash point {point} reached")
        self.point = point


_armed: dict[str, list[Any]] = {}
"""point -> [count left, action]."""


def arm(point: str, count: int = 1, *, action: str = "kill") -> None:
    """Crash the ``count``-th time ``point`` is reached from now: ``"kill"`` sends this process
    SIGKILL, ``"raise"`` raises :class:`CrashPointReached`. The point disarms once it fires."""
    if point not in CRASH_POINTS and point not in CHOREOGRAPHY_CRASH_POINTS:
        known = ", ".join(dict.fromkeys(CRASH_POINTS + CHOREOGRAPHY_CRASH_POINTS))
        raise ValueError(f"unknown crash point {point!r}; known: {known}")
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise ValueError(f"crash point count must be an int of at least 1, got {count!r}")
    if action not in ("kill", "raise"):
        raise ValueError(f"crash point action must be 'kill' or 'raise', got {action!r}")
    _armed[point] = [count, action]


def disarm() -> None:
    _armed.clear()


def armed() -> dict[str, tuple[int, str]]:
    """What is armed: point -> (count left, action)."""
    return {point: (left, action) for point, (left, action) in _armed.items()}


def hit(point: str) -> None:
    """Reached ``point``: if it is armed and its count runs out, crash (see :func:`arm`)."""
    if not _armed:
        return
    entry = _armed.get(point)
    if entry is None:
        return
    if entry[0] > 1:
        entry[0] -= 1
        return
    del _armed[point]
    if entry[1] == "raise":
        raise CrashPointReached(point)
    os.kill(os.getpid(), signal.SIGKILL)


def _arm_from_environment() -> None:
    spec = os.environ.get(ENVIRONMENT_VARIABLE)
    if not spec:
        return
    point, _, count = spec.partition(":")
    try:
        arm(point, int(count) if count else 1)
    except ValueError as error:  # bad input: exit status 2, as for any other (sagafsm.cli)
        print(f"sagafsm: {ENVIRONMENT_VARIABLE}={spec!r}: {error}", file=sys.stderr)
        raise SystemExit(2) from None


_arm_from_environment()
