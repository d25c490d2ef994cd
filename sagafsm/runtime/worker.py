"""The processes of a real run: ``python -m sagafsm.runtime.worker orchestrator|participants``.

Both roles open the one store (a SQLite file, or a PostgreSQL database) with a store object and
a transport of their own (:class:`SqliteTransport` on the file, :class:`PostgresTransport` on
the database), as separate services share a database, so that killing one process (SIGKILL, by
a test or by ``sagafsm run --kill-every``) leaves the other running and the store holding
exactly what was committed.

- ``orchestrator`` runs a :class:`~sagafsm.runtime.runtime.Runtime` and starts the scenario's
  sagas ``{scenario}-1`` ... ``{scenario}-N`` with the data the seed draws, at most
  ``--concurrency`` in flight, skipping every id the store already holds: a restarted
  orchestrator recovers what its predecessor started and carries on with the rest. It exits 0
  once all N have finished. On PostgreSQL it is worker ``--worker K`` of ``--workers W``, a
  :class:`~sagafsm.runtime.postgres_workers.WorkerRuntime` that starts every W-th saga from the
  K-th and moves any saga (:mod:`sagafsm.runtime.postgres_run`).
- ``participants`` creates the scenario's tables (idempotently) and serves its participants with
  a :class:`~sagafsm.runtime.host.ParticipantHost` until SIGTERM.

SIGTERM or SIGINT stops either role gracefully (the batch or command in hand is finished and
committed first); exit status 143. Crash points are armed through ``SAGAFSM_CRASH_AT``
(:mod:`sagafsm.runtime.crashpoints`), read when the runtime is imported. Bad input (an unknown
scenario or mutant, a store that cannot be used) is one line on stderr and exit status 2, before
anything is written.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from functools import partial
from typing import TYPE_CHECKING, Final, TypeAlias

from ..errors import InvalidConfig, InvalidDefinition
from ..lifecycle import SAGA_LIFECYCLE
from .clock import WallClock
from .errors import StoreError
from .host import ParticipantHost
from .memory_store import MemoryStore
from .mutants import RUNTIME_MUTANTS, NoInboxHost, PublishBeforeCommitRuntime
from .runtime import Runtime
from .scenario import RuntimeScenario, install_schema, load_runtime_scenario, saga_ids
from .sqlite_store import SqliteStore
from .sqlite_transport import SqliteTransport
from .transport import Transport
from .urls import open_store, shown_url

if TYPE_CHECKING:
    from .postgres_store import PostgresStore

__all__ = ["main", "run_store", "transport_for", "RunStore", "STOPPED", "BAD_INPUT", "READY_LINE"]

RunStore: TypeAlias = "SqliteStore | PostgresStore"
"""A store a real run can use: one that several processes share."""

READY_LINE: Final = "ready"
"""Printed (a line on stdout) by the orchestrator once it has recovered and runs: the supervisor
times ``--kill-every`` from it."""

STOPPED: Final = 128 + signal.SIGTERM
"""The exit status of a worker stopped by SIGTERM or SIGINT before its work was done."""
BAD_INPUT: Final = 2

_FINAL: Final = frozenset(state.value for state in SAGA_LIFECYCLE.terminal)


def run_store(url: str) -> RunStore:
    """The store a URL names (not opened): SQLite or PostgreSQL. Both roles need a store the
    other process sees: ``memory://`` is refused with a :class:`StoreError`."""
    store = open_store(url)
    if isinstance(store, MemoryStore):
        raise StoreError(
            f"{shown_url(url)}: a real run needs a store its processes share; "
            "use sqlite:///PATH or postgresql://..."
        )
    return store


# How long a claimed message stays hidden before it is delivered again (PostgreSQL's lease):
# longer than a batch takes to handle on a loaded machine, shorter than the 30 s default so that
# the replies a killed orchestrator had claimed come back while their steps still retry (the
# order scenario tries 3 times, 2 s each) rather than after the saga gave up.
_RUN_LEASE: Final = 5.0


def transport_for(store: RunStore) -> Transport:
    """The transport between the processes of a run on ``store``: its queue table, in the same
    file or database (so that the orchestrator's commit consumes what it handled)."""
    if isinstance(store, SqliteStore):
        return SqliteTransport(store.path)
    from .postgres_transport import PostgresTransport

    return PostgresTransport(store.url, lease=_RUN_LEASE)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m sagafsm.runtime.worker",
        description="One process of a real run: the orchestrator, or the participants.",
    )
    parser.add_argument("role", choices=("orchestrator", "participants"))
    parser.add_argument("--scenario", required=True, help="a scenario with a runtime() function")
    parser.add_argument(
        "--store", required=True, metavar="URL", help="sqlite:///PATH or postgresql://..."
    )
    parser.add_argument("--sagas", type=int, default=1000, metavar="N")
    parser.add_argument("--seed", type=int, default=1, metavar="S")
    parser.add_argument("--concurrency", type=int, default=50, metavar="C")
    parser.add_argument("--timeout", type=float, metavar="SECONDS", help="every step's timeout")
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        metavar="N",
        help="orchestrator workers sharing the store (PostgreSQL); this one is --worker",
    )
    parser.add_argument("--worker", type=int, default=0, metavar="K", help="this worker, from 0")
    parser.add_argument(
        "--mutant",
        choices=sorted(RUNTIME_MUTANTS),
        help="a deliberately broken variant (each role applies the one that concerns it)",
    )
    return parser


def _check(options: argparse.Namespace) -> None:
    for flag in ("sagas", "concurrency", "workers"):
        value = getattr(options, flag)
        if value < 1:
            raise InvalidConfig(f"--{flag} must be at least 1, got {value}")
    if not 0 <= options.worker < options.workers:
        raise InvalidConfig(f"--worker must be 0 to {options.workers - 1}, got {options.worker}")


async def _until_stopped(stop: asyncio.Event, work: asyncio.Future[None]) -> bool:
    """Wait for ``work`` or for a stop signal; True if the work finished."""
    stopping = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait((work, stopping), return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopping.cancel()
    return work.done()


async def _orchestrate(
    scenario: RuntimeScenario, options: argparse.Namespace, stop: asyncio.Event
) -> int:
    store = run_store(options.store)
    runtime_class = (
        PublishBeforeCommitRuntime if options.mutant == "publish-before-commit" else Runtime
    )
    definition = scenario.definition
    data = dict(
        zip(
            saga_ids(scenario.name, options.sagas),
            scenario.saga_data(options.seed, options.sagas),
            strict=True,
        )
    )
    transport = transport_for(store)
    runtime: Runtime
    others: Callable[[], Awaitable[None]] | None = None
    if store.dialect == "postgresql":  # workers sharing the database: each starts its share
        from .postgres_run import all_finished, worker_runtime

        shared, runtime = worker_runtime(store, transport, definition, options.mutant)
        store, others = shared, partial(all_finished, shared, list(data), runtime)
    else:
        runtime = runtime_class(store, transport, [definition])
    mine = list(data)[options.worker :: options.workers]
    try:
        async with _opened(runtime):
            print(READY_LINE, flush=True)
            known = {saga.saga_id: saga.state for saga in await store.sagas()}
            # Those already running hold their slots first: they are in flight whatever we do.
            todo = sorted(
                (i for i in mine if known.get(i) not in _FINAL), key=lambda i: i not in known
            )
            slots = asyncio.Semaphore(-(-options.concurrency // options.workers))

            async def one(saga_id: str) -> None:
                async with slots:
                    if saga_id not in known:
                        await runtime.start(definition, data[saga_id], saga_id=saga_id)
                    await runtime.wait(saga_id)

            async def every() -> None:
                async with asyncio.TaskGroup() as group:
                    for saga_id in todo:
                        group.create_task(one(saga_id))
                if others is not None:  # it serves the others' sagas too, until all finished
                    await others()

            work = asyncio.ensure_future(every())
            if await _until_stopped(stop, work):
                try:
                    work.result()
                except BaseExceptionGroup:
                    # Every waiting saga fails at once when the runtime dies: say why, once.
                    if runtime.failure is not None:
                        raise runtime.failure from None
                    raise
                return 0
            work.cancel()
            await asyncio.gather(work, return_exceptions=True)
            return STOPPED
    finally:
        await _bounded(transport.close(), "closing the transport")


_CLOSE_GRACE: Final = 10.0
"""Seconds a worker gives its runtime and transport to close once its work is done or
stopped. Everything that matters is committed by then. The hang this guarded against was ours
(a cancellation lost in Python 3.11's ``asyncio.wait_for``: see :mod:`.cancelling`); the bound
stays for what is outside our code (psycopg_pool waits on ``wait_for`` too)."""


@contextlib.asynccontextmanager
async def _opened(runtime: Runtime) -> AsyncIterator[Runtime]:
    await runtime.open()
    try:
        yield runtime
    finally:
        await _bounded(runtime.close(), "closing the runtime")


async def _bounded(closing: Awaitable[None], what: str) -> None:
    """Wait for ``closing`` at most :data:`_CLOSE_GRACE` seconds, then leave it to the exit."""
    task = asyncio.ensure_future(closing)
    done, _ = await asyncio.wait({task}, timeout=_CLOSE_GRACE)
    if not done:
        print(f"sagafsm worker: {what} took over {_CLOSE_GRACE:g} s; exiting", file=sys.stderr)
    elif task.exception() is not None:
        raise task.exception()  # type: ignore[misc]


async def _serve(
    scenario: RuntimeScenario, options: argparse.Namespace, stop: asyncio.Event
) -> int:
    store = run_store(options.store)
    host_class = NoInboxHost if options.mutant == "no-inbox" else ParticipantHost
    await store.open()
    transport = transport_for(store)
    try:
        await install_schema(store, scenario)
        boot = await store.boot()
        host = host_class(scenario.participants(), transport, store, WallClock(), boot=boot)
        running = asyncio.ensure_future(host.run())
        if not await _until_stopped(stop, running):
            await host.close()
        await running
        return STOPPED
    finally:
        await transport.close()
        await store.close()


async def _main(options: argparse.Namespace) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    _check(options)
    scenario = load_runtime_scenario(options.scenario, timeout=options.timeout)
    if options.role == "orchestrator":
        return await _orchestrate(scenario, options, stop)
    return await _serve(scenario, options, stop)


def main(argv: Sequence[str] | None = None) -> int:
    options = _parser().parse_args(argv)
    # Not asyncio.run: its clean-up waits on every task left, and a database driver's may
    # never end; the process exits at once after this returns (see the end of the module).
    runner = asyncio.Runner()
    try:
        return runner.run(_main(options))
    except (StoreError, InvalidConfig, InvalidDefinition) as error:
        # Raised at start-up, before anything is written: bad input, not a failed run.
        print(f"sagafsm worker {options.role}: error: {error}", file=sys.stderr)
        return BAD_INPUT


if __name__ == "__main__":
    status = main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)  # what this process did is committed: no finalizer may hold it up
