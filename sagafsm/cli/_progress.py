"""One progress bar over many runs (a sweep, ``simulate --repeat``): runs done, elapsed, and the
time left at the pace so far. Drawn on stderr, only for a terminal, and gone when it ends."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

__all__ = ["runs_progress"]


@contextmanager
def runs_progress(enabled: bool, description: str) -> Iterator[Callable[[int, int], None] | None]:
    """A ``progress(done, total)`` callback drawing the bar, or None when not ``enabled``."""
    if not enabled:
        yield None
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    bar = Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        "runs",
        TimeElapsedColumn(),
        "eta",
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=True,
    )
    task = bar.add_task(description, total=None)
    started = False

    def update(done: int, total: int) -> None:
        nonlocal started
        if not started:  # runs found in the cache count as done, but not toward the pace
            bar.reset(task, total=total, completed=done)
            started = True
        bar.update(task, completed=done, total=total)

    with bar:
        yield update
