"""One process of a choreographed real run: ``python -m sagafsm.runtime.choreography_worker``.

It plays the participants ``--plays`` names (one, usually: each participant is a process of its
own, as services are) over the run's store and its transport (:func:`~.worker.transport_for`),
with a :class:`~.choreography_host.ChoreographyHost`. The initiator's process also starts the
sagas ``{scenario}-1..N`` (those it has not started yet: a restarted initiator carries on). Every
process serves until SIGTERM or SIGINT (exit 143); whether the run is over is the supervisor's
call (:mod:`.choreography_supervisor`), from the store. ``SAGAFSM_CRASH_AT`` arms a crash point
(:data:`~.crashpoints.CHOREOGRAPHY_CRASH_POINTS`); bad input is one line and exit 2.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from collections.abc import Sequence
from typing import Final

from ..choreography.node import Switches
from ..errors import InvalidConfig, InvalidDefinition
from .choreography_run import choreography_for, install, make_host, start_all
from .clock import WallClock
from .errors import StoreError
from .scenario import load_runtime_scenario
from .worker import BAD_INPUT, READY_LINE, STOPPED, run_store, transport_for

__all__ = ["CHOREOGRAPHY_MUTANTS", "main"]

CHOREOGRAPHY_MUTANTS: Final = {
    "no-dedup-events": "participants do not drop an event they already handled (by its id)",
    "no-timer-rearm": "a restarted participant does not read its timers back from the store",
}
"""Deliberately broken choreographed participants, for the tests that show the checks bite."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m sagafsm.runtime.choreography_worker",
        description="One process of a choreographed real run: the participants it plays.",
    )
    parser.add_argument("--plays", required=True, help="participant names, comma separated")
    parser.add_argument("--scenario", required=True)
    parser.add_argument("--store", required=True, metavar="URL")
    parser.add_argument("--sagas", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--timeout", type=float, help="every step's timeout")
    parser.add_argument("--mutant", choices=sorted(CHOREOGRAPHY_MUTANTS))
    return parser


async def _until_stopped(stop: asyncio.Event, work: asyncio.Future[None]) -> None:
    stopping = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait((work, stopping), return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopping.cancel()


async def _main(options: argparse.Namespace) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    scenario = load_runtime_scenario(options.scenario, timeout=options.timeout)
    choreography = choreography_for(scenario)
    plays = [name for name in options.plays.split(",") if name]
    store = run_store(options.store)
    await store.open()
    transport = transport_for(store)
    try:
        await install(store, scenario, store.dialect)
        await transport.open()  # type: ignore[attr-defined]  # both run transports have one
        host = make_host(
            scenario, choreography, plays, transport, store, WallClock(),
            switches=Switches(dedup=options.mutant != "no-dedup-events"),
            rearm=options.mutant != "no-timer-rearm",
        )  # fmt: skip
        running = asyncio.ensure_future(host.run())
        print(READY_LINE, flush=True)
        work: asyncio.Future[None] = running
        if choreography.initiator in plays:
            work = asyncio.ensure_future(
                start_all(
                    host,
                    scenario,
                    sagas=options.sagas,
                    seed=options.seed,
                    concurrency=options.concurrency,
                )
            )
            await _until_stopped(stop, work)
            if work.done():
                work.result()  # (an error of its own ends the process with it)
                await _until_stopped(stop, running)
        else:
            await _until_stopped(stop, running)
        await host.close()
        if not work.done():
            work.cancel()
        await asyncio.gather(running, work, return_exceptions=True)
        if running.done() and not running.cancelled() and running.exception() is not None:
            raise running.exception()  # type: ignore[misc]
        return STOPPED
    finally:
        await transport.close()
        await store.close()


def main(argv: Sequence[str] | None = None) -> int:
    options = _parser().parse_args(argv)
    try:
        return asyncio.run(_main(options))
    except (StoreError, InvalidConfig, InvalidDefinition) as error:
        print(f"sagafsm choreography worker: error: {error}", file=sys.stderr)
        return BAD_INPUT


if __name__ == "__main__":
    sys.exit(main())
