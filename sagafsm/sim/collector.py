"""The cyclic garbage collector, paused while a simulation runs.

A run allocates millions of short-lived containers (records, events, messages, commands) and makes
almost no reference cycles: reference counting frees nearly everything it allocates (a
10,000-saga run leaves about 700 objects for the collector, in all). CPython's collector still
walks the young objects every 700 allocations and, as the heap grows, everything alive now and
then: with 10,000 sagas in flight that is about a fifth of the run's CPU time, and more the more
sagas are held, so the cost per saga grows with the load. A run therefore pauses it, and puts it
back as it was when the run ends (cyclic garbage made meanwhile is collected then, by the next
collection). The switch is process-wide: code running in other threads meanwhile runs without it
too, and a caller that had paused it keeps it paused.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["collector_paused"]


@contextmanager
def collector_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector for the ``with`` block (see the module docstring)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
