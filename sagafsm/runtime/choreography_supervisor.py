"""Runs a scenario's choreography for real, a process per participant, kills them as asked, and
judges what they did.

:func:`supervise_choreography` prepares the store (the scenario's tables, the choreography's,
the plan row that a later run on the same store must match), starts one worker per participant
(:mod:`.choreography_worker`), and watches them until the run is over: the initiator announced
every outcome and the store is quiescent (:func:`~.choreography_run.quiescent`). Along the way it
kills participants with SIGKILL:

- at crash points: each life of a participant's process may be armed with one
  ``SAGAFSM_CRASH_AT`` spec (``crashes[name]``, one per life, in order);
- at random moments: ``kills`` kills spread over the run by progress, each after a seeded random
  delay, of a participant drawn by the seed; ``kill_every`` seconds after each kill otherwise.

A process that dies of SIGKILL, whoever sent it, is counted and started again at once. Then every
worker is stopped (SIGTERM) and the store judged (:func:`~.choreography_run.judge`).
"""

from __future__ import annotations

import asyncio
import json
import random
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Final

import attrs

from ..choreography.table import ChoreographyDefinition
from ..errors import InvalidConfig
from .choreography_run import ChoreographyVerdict, choreography_for, install, judge, quiescent
from .choreography_worker import CHOREOGRAPHY_MUTANTS
from .crashpoints import CHOREOGRAPHY_CRASH_POINTS
from .dialects import in_dialect
from .plan_checks import check_counts, check_crash_specs, check_mutant
from .scenario import RuntimeScenario, load_runtime_scenario
from .supervisor import _Worker
from .verdict import prepare_store
from .worker import run_store

__all__ = ["ChoreographyPlan", "ChoreographyRunResult", "supervise_choreography"]

_POLL: Final = 0.05
_MAX_KILL_DELAY: Final = 0.3


@attrs.frozen(kw_only=True)
class ChoreographyPlan:
    """What to run and how to break it (module docstring)."""

    scenario: str
    store: str
    sagas: int
    seed: int = 1
    concurrency: int = 20
    timeout: float | None = None
    mutant: str | None = None
    crashes: Mapping[str, tuple[str, ...]] = attrs.field(factory=dict)
    kills: int = 0
    kill_every: float | None = None
    deadline: float | None = None

    def check(self) -> tuple[RuntimeScenario, ChoreographyDefinition]:
        """Every value checked, nothing touched; :class:`InvalidConfig` (or a store's
        :class:`~.errors.StoreError`) in one line."""
        check_counts(
            sagas=self.sagas, concurrency=self.concurrency, timeout=self.timeout,
            kill_every=self.kill_every, deadline=self.deadline, kills=self.kills,
        )  # fmt: skip
        check_mutant(self.mutant, CHOREOGRAPHY_MUTANTS, "a choreographed real run")
        store = run_store(self.store)
        scenario = load_runtime_scenario(self.scenario, timeout=self.timeout)
        scenario.schema(store.dialect)
        choreography = choreography_for(scenario)
        for name, specs in self.crashes.items():
            if name not in choreography.participants:
                raise InvalidConfig(
                    f"crash specs for {name!r}: the choreography has no such participant "
                    f"({', '.join(choreography.participants)})"
                )
            check_crash_specs(
                specs, CHOREOGRAPHY_CRASH_POINTS, "a choreographed participant's point"
            )
        return scenario, choreography

    def worker_arguments(self, role: str) -> list[str]:
        """The command line of the worker that plays participant ``role``."""
        arguments = [
            sys.executable, "-m", "sagafsm.runtime.choreography_worker", "--plays", role,
            "--scenario", self.scenario, "--store", self.store, "--sagas", str(self.sagas),
            "--seed", str(self.seed), "--concurrency", str(self.concurrency),
        ]  # fmt: skip
        if self.timeout is not None:
            arguments += ["--timeout", repr(float(self.timeout))]
        if self.mutant is not None:
            arguments += ["--mutant", self.mutant]
        return arguments


@attrs.frozen(kw_only=True)
class ChoreographyRunResult:
    plan: ChoreographyPlan
    verdict: ChoreographyVerdict
    wall_seconds: float
    kills: Mapping[str, int]
    """SIGKILLs by participant (crash points and random moments alike)."""
    stopped: str | None

    @property
    def ok(self) -> bool:
        return self.verdict.ok and self.stopped is None

    def to_json(self) -> dict[str, Any]:
        completed = self.verdict.outcomes.get("completed", 0)
        return {
            "scenario": self.plan.scenario,
            "style": "choreography",
            "seed": self.plan.seed,
            "sagas": self.plan.sagas,
            "mutant": self.plan.mutant,
            "stopped": self.stopped,
            **self.verdict.to_json(),
            "wall_seconds": self.wall_seconds,
            "sagas_per_s": self.plan.sagas / self.wall_seconds if self.wall_seconds else None,
            "completed_per_s": completed / self.wall_seconds if self.wall_seconds else None,
            "kills": dict(self.kills),
        }


class _Watch:
    """The store as the supervisor reads it, on an event loop of its own."""

    def __init__(self, url: str, initiator: str) -> None:
        self._store = run_store(url)
        self._initiator = initiator
        self._runner = asyncio.Runner()
        self._runner.run(self._store.open())

    def finished(self) -> int:
        return self._runner.run(self._finished())

    async def _finished(self) -> int:
        async with self._store.transaction("sagafsm-setup") as tx:
            rows = await tx.execute(
                in_dialect(
                    "SELECT state FROM choreography_sagas WHERE participant = ?", tx.dialect
                ),
                (self._initiator,),
            )
        ended = ("completed", "failed")
        return sum(json.loads(state)["runs"][self._initiator] in ended for (state,) in rows)

    def quiet(self) -> bool:
        return self._runner.run(quiescent(self._store, queue=True))

    def close(self) -> None:
        try:
            self._runner.run(self._store.close())
        finally:
            self._runner.close()


def supervise_choreography(
    plan: ChoreographyPlan, progress: Callable[[int, int], None] | None = None
) -> ChoreographyRunResult:
    """Run ``plan`` (module docstring) and return the verdict. Bad input raises before anything
    is created; a worker failing on its own raises :class:`~.supervisor.WorkerFailed`."""
    scenario, choreography = plan.check()
    store = run_store(plan.store)
    prepare_store(store, scenario, seed=plan.seed, sagas=plan.sagas, style="choreography")
    asyncio.run(_install(plan.store, scenario))
    rng = random.Random(f"{plan.seed}/choreography-kills")
    begun = time.monotonic()
    stopped: str | None = None
    kills: Counter[str] = Counter()
    watch = _Watch(plan.store, choreography.initiator)
    with tempfile.TemporaryDirectory(prefix="sagafsm-choreography-") as logs:
        workers: dict[str, _Worker] = {}
        try:  # (the watch is closed however this ends)
            for name in choreography.participants:
                crashes = tuple(plan.crashes.get(name, ()))
                workers[name] = _Worker(name, plan.worker_arguments(name), crashes, Path(logs))
            for worker in workers.values():
                worker.start()
            made, due, last_kill, calm = 0, None, time.monotonic(), 0
            while True:
                for worker in workers.values():
                    worker.poll()  # restarts a killed one
                now = time.monotonic()
                finished = watch.finished()
                if progress is not None:
                    progress(finished, plan.sagas)
                if finished >= plan.sagas:
                    calm = calm + 1 if watch.quiet() else 0
                    if calm >= 2:
                        break
                elif due is None:
                    share = (made + 1) * plan.sagas // (plan.kills + 1)
                    if made < plan.kills and finished >= share:
                        due = now + rng.uniform(0.0, _MAX_KILL_DELAY)
                    elif plan.kill_every is not None and now - last_kill >= plan.kill_every:
                        due = now
                if due is not None and now >= due:
                    victim = workers[rng.choice(choreography.participants)]
                    if victim.ready() and victim.kill():
                        made += 1
                        last_kill = now
                        due = None
                if plan.deadline is not None and now - begun > plan.deadline:
                    stopped = f"the deadline of {plan.deadline:g} s passed"
                    break
                time.sleep(_POLL)
        finally:
            for worker in workers.values():
                worker.stop()
            watch.close()
        for name, worker in workers.items():
            if worker.kills:
                kills[name] = worker.kills
    wall = time.monotonic() - begun
    verdict = asyncio.run(_judge(plan, scenario, choreography))
    return ChoreographyRunResult(
        plan=plan, verdict=verdict, wall_seconds=wall, kills=dict(kills), stopped=stopped
    )


async def _install(url: str, scenario: RuntimeScenario) -> None:
    store = run_store(url)
    async with store:  # (prepare_store refused a store holding an orchestrated run)
        await install(store, scenario, store.dialect)


async def _judge(
    plan: ChoreographyPlan, scenario: RuntimeScenario, choreography: ChoreographyDefinition
) -> ChoreographyVerdict:
    store = run_store(plan.store)
    async with store:
        return await judge(store, store, scenario, choreography, sagas=plan.sagas, seed=plan.seed)
