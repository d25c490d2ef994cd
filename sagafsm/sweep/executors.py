"""Where runs go: this process, a process pool, or a Dask cluster; all through
``concurrent.futures``.

Every run is a pure function of its arguments, so where it runs changes nothing but the wall time:
the rows and digests are the same on any executor. :func:`execute` is the one loop over them,
yielding each result as it completes (a progress bar moves with the runs, not with the slowest
first one); results are put back in order by their position.
"""

from __future__ import annotations

import importlib
import multiprocessing
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Executor, Future, ProcessPoolExecutor, as_completed
from contextlib import contextmanager
from typing import Any, TypeVar

from .._extras import require
from ..errors import InvalidConfig

__all__ = ["execute", "useful_workers", "cpu_count", "process_pool", "dask_executor"]

T = TypeVar("T")


def execute(
    function: Callable[..., T],
    arguments: Sequence[tuple[Any, ...]],
    executor: Executor | None = None,
) -> Iterator[tuple[int, T]]:
    """``(position, function(*arguments[position]))`` for every position, as each completes;
    in order, in this process, when ``executor`` is None. The first exception cancels the runs
    not yet started and is raised."""
    if executor is None:
        for position, args in enumerate(arguments):
            yield position, function(*args)
        return
    futures: dict[Future[T], int] = {
        executor.submit(function, *args): position for position, args in enumerate(arguments)
    }
    try:
        for future in as_completed(futures):
            yield futures[future], future.result()
    finally:  # an error, an interrupt, or a caller that stopped early: start nothing more
        for future in futures:
            future.cancel()


def cpu_count() -> int:
    """The CPUs this process may run on (its affinity, where the system says)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def useful_workers(jobs: int | None, runs: int) -> int:
    """Workers that can help: ``jobs`` (default: every CPU), capped to the CPUs (more processes
    than cores only add switching) and to the runs (an idle worker costs its start-up)."""
    if jobs is not None and jobs < 1:
        raise InvalidConfig(f"--jobs must be at least 1, got {jobs}")
    return max(1, min(jobs or cpu_count(), cpu_count(), runs))


@contextmanager
def process_pool(workers: int) -> Iterator[Executor | None]:
    """A pool of ``workers`` processes; None (this process) for one worker, which a pool would
    only slow down. Workers start from a fork server (Linux) or are spawned: never forked from a
    driver that has threads running (a progress bar's, Dask's)."""
    if workers <= 1:
        yield None
        return
    method = "forkserver" if sys.platform.startswith("linux") else "spawn"
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context(method))
    try:
        yield pool
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


@contextmanager
def dask_executor(address: str, workers: int) -> Iterator[Executor]:
    """An executor on a Dask cluster: the scheduler at ``address``, or, for ``local``, a
    ``LocalCluster`` of ``workers`` single-threaded processes started here and stopped after.

    :class:`~sagafsm.MissingExtra` when ``distributed`` is not installed (the ``dask`` extra),
    :class:`~sagafsm.InvalidConfig` (one line) when the scheduler cannot be reached. Workers of
    a remote cluster need sagafsm (and the scenario, by name or at the same path) installed.
    """
    require("dask", "a Dask executor")
    distributed: Any = importlib.import_module("distributed")  # an optional, untyped extra

    if address == "local":
        dask: Any = importlib.import_module("dask")
        # The workers' statistical profiler takes the GIL every 10 ms from the one thread that
        # simulates; nobody reads its profiles here. Nannies hand this config to their workers.
        with dask.config.set({"distributed.worker.profile.enabled": False}):
            cluster = distributed.LocalCluster(
                n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None,
                # its HTTP routes on a free port, not 8787: a second cluster (another sweep,
                # another test worker) found that taken and leaked a socket warning
                scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
            )  # fmt: skip
        client = distributed.Client(cluster)
    else:
        cluster = None
        try:
            client = distributed.Client(address, timeout=10)
        except (OSError, TimeoutError, ValueError) as error:
            message = " ".join(str(error).split()) or type(error).__name__
            raise InvalidConfig(
                f"--dask {address}: cannot reach the scheduler: {message}"
            ) from None
    try:
        yield client.get_executor()
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
