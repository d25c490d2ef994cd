"""Internal errors: a bug raised inside a run, told apart from a run that ran out of events.

SimPy signals both with exceptions out of ``env.run()``: an empty schedule as a plain
``RuntimeError`` raised while it handles its own ``EmptySchedule``; an exception raised by a
callback or a process as itself (a process's, as a copy). The run needs to know which is which:
the first is a finding about the saga (some saga waits forever), the second is an
:class:`InternalError`, never reported as a violation.
"""

from __future__ import annotations

import simpy

__all__ = ["InternalError", "empty_schedule", "original_error"]


class InternalError(Exception):
    """An exception escaped from inside a run: a bug in an engine, a participant, a scenario's
    services, or sagafsm itself, never a finding about the saga under test.

    The message names the original exception (``__cause__``, with its traceback) and the simulated
    time it was raised at. Not raised for bad input: that is :class:`~sagafsm.InvalidConfig`,
    raised before the run starts (or, for a scenario's bad order data, as the saga starts).
    """

    def __init__(self, error: BaseException, at: float) -> None:
        super().__init__(f"{type(error).__name__}: {error} (at simulated time {at:.6g}s)")
        self.error = error
        self.at = at


def empty_schedule(error: RuntimeError) -> bool:
    """Whether ``env.run(until=...)`` stopped because no event was left (SimPy raises a plain
    RuntimeError while handling its ``EmptySchedule``), not because a callback raised one."""
    return type(error) is RuntimeError and isinstance(error.__context__, simpy.core.EmptySchedule)


def original_error(error: BaseException) -> BaseException:
    """SimPy re-raises a failed process's exception as a fresh copy whose ``__cause__`` is the
    original: report the original (its traceback points at the bug)."""
    cause = error.__cause__
    return cause if cause is not None and type(cause) is type(error) else error
