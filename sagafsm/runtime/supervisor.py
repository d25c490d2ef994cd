"""Runs a scenario for real as OS processes, kills them as asked, and judges what they did.

:func:`supervise` prepares the store (its schema, the scenario's tables), starts the participants
worker and the orchestrator workers (:mod:`sagafsm.runtime.worker`; ``workers`` of them, several
only on PostgreSQL) on the same store (a SQLite file or a PostgreSQL database), and watches them
until every orchestrator exits 0, every saga finished. Along the way it kills:

- ``kill_every`` seconds after an orchestrator life is ready (it prints a line once it has
  recovered and runs), that orchestrator with SIGKILL, and starts it again at once: moments that
  fall anywhere in its work (mid-commit, mid-publish); counting from readiness means every life
  gets work done, however long the machine takes to start a process. With several workers, one
  is killed at a time, in turn, while the others carry on. ``kills`` spreads a fixed number of
  kills over the run instead (by progress, each after a random delay);
- at crash points: each life of a process may be armed with one ``SAGAFSM_CRASH_AT`` spec
  (``orchestrator_crashes``, for the first orchestrator worker, and ``participant_crashes``, one
  per life, in order). A process that dies of SIGKILL, whoever sent it, is counted and restarted
  with the next spec.

Then it stops the participants (SIGTERM: the command in hand is finished) and hands the store to
:func:`sagafsm.runtime.verdict.judge`. The tests of the crash matrix and ``sagafsm run`` both go
through here, so what the tests prove is what the command does.

The supervisor shares its process group with the workers (a Ctrl-C reaches them all, and each
worker stops gracefully); whatever way it leaves, it stops the workers it started.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import IO, Final

import attrs

from ..errors import InvalidConfig
from ..lifecycle import SAGA_LIFECYCLE
from .crashpoints import CRASH_POINTS, ENVIRONMENT_VARIABLE
from .mutants import RUNTIME_MUTANTS, WORKER_ONLY
from .plan_checks import check_counts, check_crash_specs, check_mutant
from .scenario import RuntimeScenario, load_runtime_scenario
from .verdict import RealRunResult, judge, prepare_store
from .worker import READY_LINE, RunStore, run_store

__all__ = ["RunPlan", "supervise", "WorkerFailed"]

Progress = Callable[[int, int], None]

_POLL: Final = 0.02
_PROGRESS_EVERY: Final = 0.25
_STOP_GRACE: Final = 10.0
_MAX_KILL_DELAY: Final = 0.3


class WorkerFailed(RuntimeError):
    """A worker exited in a way no kill explains (neither 0 nor SIGKILL): its last stderr line
    says why. Not a :class:`~sagafsm.errors.SagaError`: input was checked before it started."""


@attrs.frozen(kw_only=True)
class RunPlan:
    """What to run and how to break it (see the module docstring)."""

    scenario: str
    store: str
    """A store URL (``sqlite:///PATH`` or ``postgresql://...``)."""
    sagas: int
    seed: int = 1
    concurrency: int = 50
    timeout: float | None = None
    """Every step's timeout in seconds (None: the scenario's runtime default)."""
    workers: int = 1
    """Orchestrator worker processes (``--workers``); more than one needs a PostgreSQL store."""
    kill_every: float | None = None
    """SIGKILL an orchestrator this many seconds after each life is ready (``--kill-every``):
    one worker at a time, in turn, while the others carry on."""
    kills: int = 0
    """SIGKILL the orchestrator this many times, spread over the run by progress (tests: a
    number of kills that does not depend on the machine's speed)."""
    mutant: str | None = None
    orchestrator_crashes: tuple[str, ...] = ()
    participant_crashes: tuple[str, ...] = ()
    deadline: float | None = None
    """Give up after this many seconds: stop the workers and judge what is there (the run is
    then reported as stopped early, its unfinished sagas as termination violations)."""

    def check(self) -> RuntimeScenario:
        """Every value checked, nothing touched: the scenario, or :class:`InvalidConfig` /
        :class:`StoreError` with one line."""
        check_counts(
            sagas=self.sagas, concurrency=self.concurrency, timeout=self.timeout,
            kill_every=self.kill_every, deadline=self.deadline, kills=self.kills,
        )  # fmt: skip
        workers = self.workers
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
            raise InvalidConfig(f"--workers must be at least 1, got {workers!r}")
        check_mutant(self.mutant, RUNTIME_MUTANTS, "a real run")
        check_crash_specs(
            self.orchestrator_crashes + self.participant_crashes, CRASH_POINTS, "a point"
        )
        store = run_store(self.store)  # the URL: refused before anything exists
        if workers > 1 and store.dialect != "postgresql":
            raise InvalidConfig(
                f"--workers {workers}: several orchestrator workers share a PostgreSQL store; "
                f"{store.name} serves one (use --store postgresql://...)"
            )
        if self.mutant in WORKER_ONLY and workers < 2:
            raise InvalidConfig(f"mutant {self.mutant!r} breaks shared workers: give --workers 2+")
        scenario = load_runtime_scenario(self.scenario, timeout=self.timeout)
        scenario.schema(store.dialect)  # a scenario without tables for this store: refused
        return scenario

    def worker_arguments(self, role: str, index: int = 0) -> list[str]:
        """The command line of a worker process (``index``: which orchestrator worker)."""
        arguments = [
            sys.executable, "-m", "sagafsm.runtime.worker", role,
            "--scenario", self.scenario, "--store", self.store,
            "--sagas", str(self.sagas), "--seed", str(self.seed),
            "--concurrency", str(self.concurrency),
        ]  # fmt: skip
        if self.timeout is not None:
            arguments += ["--timeout", repr(float(self.timeout))]
        if self.mutant is not None:
            arguments += ["--mutant", self.mutant]
        if role == "orchestrator" and self.workers > 1:
            arguments += ["--workers", str(self.workers), "--worker", str(index)]
        return arguments


class _Worker:
    """One role's current process, its lives, and the crash specs left for its next lives."""

    def __init__(
        self, role: str, arguments: list[str], crashes: tuple[str, ...], logs: Path
    ) -> None:
        self.role = role
        """Its name in logs and kill counts (``orchestrator-K`` among several workers)."""
        self.arguments = arguments
        self.crashes = list(crashes)
        self.logs = logs
        self.lives = 0
        self.kills = 0
        self.process: subprocess.Popen[bytes] | None = None
        self.ready_at: float | None = None
        """When this life said it is ready (the orchestrator: recovered and running)."""
        self.done = False
        """It exited 0 (an orchestrator: every saga finished)."""
        self._said = b""
        self._log: IO[bytes] | None = None

    def start(self) -> None:
        environment = dict(os.environ)
        environment.pop(ENVIRONMENT_VARIABLE, None)
        if self.crashes:
            environment[ENVIRONMENT_VARIABLE] = self.crashes.pop(0)
        self.lives += 1
        if self._log is not None:
            self._log.close()
        self._log = open(self.logs / f"{self.role}-{self.lives}.log", "wb")  # noqa: SIM115
        self.process = subprocess.Popen(
            self.arguments, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=self._log, env=environment,
        )  # fmt: skip
        assert self.process.stdout is not None
        os.set_blocking(self.process.stdout.fileno(), False)
        self.ready_at = None
        self._said = b""

    def ready(self) -> bool:
        """Whether this life has printed its ready line (read without blocking)."""
        if self.ready_at is None and self.process is not None and self.process.stdout:
            chunk = self.process.stdout.read()
            if chunk:
                self._said += chunk
                if READY_LINE.encode() in self._said:
                    self.ready_at = time.monotonic()
        return self.ready_at is not None

    def poll(self) -> int | None:
        """The exit status if the process ended; a SIGKILL is counted and the role restarted
        (None is returned then)."""
        assert self.process is not None
        status = self.process.poll()
        if status == -signal.SIGKILL:
            self.kills += 1
            self._close_pipe()
            self.start()
            return None
        if status not in (None, 0):
            raise WorkerFailed(f"the {self.role} worker exited with status {status}: {self.said()}")
        return status

    def kill(self) -> bool:
        """SIGKILL now; True if that is what ended it (it may have just exited on its own)."""
        assert self.process is not None
        self.process.kill()
        return self.process.wait() == -signal.SIGKILL

    def said(self) -> str:
        path = self.logs / f"{self.role}-{self.lives}.log"
        lines = [line for line in path.read_text(errors="replace").splitlines() if line.strip()]
        return lines[-1].strip() if lines else "(nothing on stderr)"

    def _close_pipe(self) -> None:
        if self.process is not None and self.process.stdout is not None:
            self.process.stdout.close()

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it does not end within the grace period."""
        process = self.process
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(_STOP_GRACE)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self._close_pipe()
        if self._log is not None:
            self._log.close()
            self._log = None


class _Killer:
    """When to SIGKILL an orchestrator, and which: ``kill_every`` seconds after its life is
    ready, and the ``kills`` spread over the run, the k-th once k/(kills+1) of the sagas
    finished plus a random delay (seeded), so that each life gets work done, whatever the
    machine's speed. With several workers the victims take turns (one at a time: the others
    carry on), skipping any that already finished its work."""

    def __init__(self, plan: RunPlan) -> None:
        self.every = plan.kill_every
        self.spread = plan.kills
        self.sagas = plan.sagas
        self._rng = random.Random(f"{plan.seed}/kills")
        self._made = 0
        self._turn = 0
        self._due: float | None = None

    def victim(
        self, orchestrators: list[_Worker], finished: Callable[[], int], now: float
    ) -> _Worker | None:
        """The worker to kill now, if one is due."""
        running = [w for w in orchestrators if not w.done]
        if not running:
            return None
        target = running[self._turn % len(running)]
        if not target.ready():
            return None
        assert target.ready_at is not None
        if self.every is not None and now - target.ready_at >= self.every:
            self._turn += 1
            return target
        if self._made >= self.spread:
            return None
        if self._due is None:
            share = (self._made + 1) * self.sagas // (self.spread + 1)
            if finished() < share:
                return None
            self._due = now + self._rng.uniform(0.0, _MAX_KILL_DELAY)
        if now < self._due:
            return None
        self._due = None
        self._made += 1
        self._turn += 1
        return target


_FINAL_STATES: Final = tuple(state.value for state in SAGA_LIFECYCLE.terminal)
_COUNT_EVERY: Final = 0.1


class _FinishedCounter:
    """How many sagas the store holds as finished, read through a store object of its own on an
    event loop of its own (the supervisor's loop is a plain polling one), at most every
    ``_COUNT_EVERY`` seconds: a killer checking each poll must not load the database."""

    def __init__(self, url: str) -> None:
        self._store = run_store(url)
        self._runner = asyncio.Runner()
        try:
            self._runner.run(self._store.open())
        except BaseException:
            self._runner.close()
            raise
        self._count = 0
        self._read_at = -_COUNT_EVERY

    def __enter__(self) -> _FinishedCounter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __call__(self, *, fresh: bool = False) -> int:
        now = time.monotonic()
        if fresh or now - self._read_at >= _COUNT_EVERY:
            self._count = len(self._runner.run(self._store.sagas(_FINAL_STATES)))
            self._read_at = now
        return self._count

    def close(self) -> None:
        try:
            self._runner.run(self._store.close())
        finally:
            self._runner.close()


def _all_done(orchestrators: list[_Worker]) -> bool:
    """Whether every orchestrator exited 0 (polled: a killed one is restarted meanwhile)."""
    for orchestrator in orchestrators:
        if not orchestrator.done and orchestrator.poll() == 0:
            orchestrator.done = True
    return all(orchestrator.done for orchestrator in orchestrators)


def supervise(plan: RunPlan, progress: Progress | None = None) -> RealRunResult:
    """Run ``plan`` (module docstring) and return the verdict. Bad input raises before anything
    is created; a worker failing on its own raises :class:`WorkerFailed`."""
    scenario = plan.check()
    store: RunStore = run_store(plan.store)
    existing = prepare_store(
        store, scenario, seed=plan.seed, sagas=plan.sagas, style="orchestration"
    )
    begun = time.monotonic()
    stopped: str | None = None
    with (
        tempfile.TemporaryDirectory(prefix="sagafsm-run-") as logs,
        _FinishedCounter(plan.store) as finished,
    ):
        participants = _Worker(
            "participants",
            plan.worker_arguments("participants"),
            plan.participant_crashes,
            Path(logs),
        )
        # The crash specs arm the first worker's lives: the others carry on meanwhile.
        orchestrators = [
            _Worker(
                "orchestrator" if plan.workers == 1 else f"orchestrator-{k}",
                plan.worker_arguments("orchestrator", k),
                plan.orchestrator_crashes if k == 0 else (),
                Path(logs),
            )
            for k in range(plan.workers)
        ]
        killer = _Killer(plan)
        kills: Counter[str] = Counter()
        try:
            participants.start()
            for orchestrator in orchestrators:
                orchestrator.start()
            shown = 0.0
            while True:
                if _all_done(orchestrators):
                    break
                participants.poll()
                now = time.monotonic()
                victim = killer.victim(orchestrators, finished, now)
                if victim is not None:
                    if victim.kill():
                        kills["orchestrator_kill"] += 1
                    if _all_done(orchestrators):  # it finished just before
                        break
                if plan.deadline is not None and now - begun > plan.deadline:
                    stopped = f"the deadline of {plan.deadline:g} s passed"
                    break
                if progress is not None and now - shown >= _PROGRESS_EVERY:
                    progress(finished(), plan.sagas)
                    shown = now
                time.sleep(_POLL)
        finally:
            for orchestrator in orchestrators:
                orchestrator.stop()
            participants.stop()
        wall = time.monotonic() - begun
        if progress is not None:
            progress(finished(fresh=True), plan.sagas)
    crash_kills = sum(w.kills for w in orchestrators) - kills["orchestrator_kill"]
    if crash_kills:
        kills["orchestrator_crash_point"] = crash_kills
    if participants.kills:
        kills["participant_crash_point"] = participants.kills
    return judge(
        store, scenario, plan, wall_seconds=wall, kills=dict(kills), stopped=stopped,
        resumed=existing,
    )  # fmt: skip
