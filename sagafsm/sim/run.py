"""One simulation run: wire the scenario, network, participants and orchestrator; run; check.

A run is a pure function of (scenario, configuration, mutant): every random stream derives from
the seed (:mod:`.streams`), and the trace digest proves two runs identical. Every run is checked
(:mod:`sagafsm.checks`) from the participants' ledgers as it goes.

A saga that waits forever is a finding (the run stops, the termination property reports it); an
exception raised while the run goes (an engine, participant or scenario bug) is not: it leaves
:func:`simulate` as :class:`InternalError`, never as a violation.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Callable, Generator, Mapping
from pathlib import Path
from typing import Any

import attrs
import simpy

from .._validate import is_json_value
from ..checks import StreamingChecker, Violation
from ..commands import action_key, compensation_key
from ..definition import StepKind
from ..engine import SagaInstance
from ..errors import InvalidConfig
from ..lifecycle import SAGA_LIFECYCLE, SagaState
from ..messages import ORCHESTRATOR
from .collector import collector_paused
from .config import SimulationConfig
from .coverage import Coverage
from .fates import draw_fates, forced_fates, make_network
from .internal import InternalError, empty_schedule, original_error
from .metrics import Occupancy, RunMetrics
from .mutants import Mutant, get_mutant
from .orchestrator import SimOrchestrator
from .participant import Fates, SimParticipant
from .prepare import effective_definition, metrics_window, validate_against
from .result import RunResult, build_result
from .scenario import Scenario
from .store import SnapshotStore
from .streams import stream
from .trace import Record, Trace, unpack_records

__all__ = ["simulate", "InternalError"]

Progress = Callable[[int, int], None]


_MAX_DOWN_WINDOWS = 10_000
"""Outage windows kept for the figures; a run with more draws the first ones (they stay cheap)."""


@attrs.define
class _SagaRecord:
    data: Mapping[str, Any]
    fates: Fates
    started_at: float
    finished: bool = False


class _Run:
    def __init__(
        self,
        scenario: Scenario,
        config: SimulationConfig,
        trace: Trace,
        progress: Progress | None,
        mutant: Mutant | None,
    ) -> None:
        self.scenario = scenario
        self.config = config
        self.definition = effective_definition(scenario, config)
        self.env = env = simpy.Environment()
        self.trace = trace
        self.progress = progress
        self.progress_every = max(1, config.sagas // 200)
        self.faults: Counter[str] = Counter()
        window = metrics_window(config)
        self.metrics = RunMetrics(window)
        self.occupancy = Occupancy(
            window, final=frozenset(s.value for s in SAGA_LIFECYCLE.terminal)
        )
        self.records: dict[str, _SagaRecord] = {}
        self.started = self.finished = 0
        self.done = env.event()
        self.ended_at = 0.0
        self.outages = 0
        self.down_windows: list[list[Any]] = []
        """``[kind, node, start, end]`` per outage (end None while it lasts): for the figures."""
        self.unfinished_reason: str | None = None
        self.error: Exception | None = None
        """The first exception raised inside one of the run's own processes."""
        seed = config.seed
        self.fates = stream(seed, "fates")
        self.forced_fates = forced_fates(config)
        self.network = make_network(env, config, trace, self.faults)
        self.domain = scenario.make_domain(stream(seed, "domain"))
        self.store = SnapshotStore()
        self.orchestrator = SimOrchestrator(
            env,
            self.definition,
            self.network,
            self.store,
            trace,
            lambda saga_id: self.records[saga_id].data,
            self._saga_finished,
            self.occupancy.move,
            store_latency=config.store_latency,
            engine=mutant.engine if mutant else SagaInstance,
            send_before_save=mutant.send_before_save if mutant else False,
        )
        self.participant_steps: dict[str, list[str]] = {}
        self.participant_keys: dict[str, list[tuple[str, int]]] = {}
        """Participant -> (step, generation) of every action key a saga may use with it."""
        for step in self.definition.steps:
            self.participant_steps.setdefault(step.participant, []).append(step.name)
            generations = step.retry.max_attempts if step.kind is StepKind.RETRIABLE else 1
            self.participant_keys.setdefault(step.participant, []).extend(
                (step.name, g) for g in range(generations)
            )
        self.participants: dict[str, SimParticipant] = {}
        services = self.domain.services
        for name in self.participant_steps:
            if name not in services:
                raise InvalidConfig(f"scenario {scenario.name!r} has no service for {name!r}")
            participant = SimParticipant(
                env,
                name,
                config.participant_config(name),
                services[name],
                self.network,
                trace,
                stream(seed, f"participant/{name}"),
                self.faults,
                self._fates,
                self.definition.index_of,
                dedup=mutant.participant_dedup if mutant else True,
                tombstones=mutant.participant_tombstones if mutant else True,
            )
            self.participants[name] = participant
            self.network.register(name, participant.receive)

    # -- saga bookkeeping ----------------------------------------------------------------------

    def _fates(self, saga_id: str) -> Fates | None:
        record = self.records.get(saga_id)
        return None if record is None else record.fates

    def new_saga(self) -> None:
        index = self.started
        self.started += 1
        saga_id = f"s{index}"
        rng = random.Random(self.fates.getrandbits(64))
        # Fates first, a fixed number of draws, so a scenario's order draws cannot shift them.
        fates = draw_fates(rng, self.definition.step_names, self.forced_fates.get(saga_id, {}))
        now = self.env.now
        order = self.scenario.make_order(rng)
        if (order.__class__ is not dict and not isinstance(order, Mapping)) or not is_json_value(
            order
        ):
            raise InvalidConfig(
                f"scenario {self.scenario.name!r}: make_order() must return a mapping of JSON "
                f"data (the saga's input), got {order!r}"
            )
        self.records[saga_id] = _SagaRecord(order, fates, now)
        self.metrics.saga_started(now)
        self.occupancy.move(now, None, SAGA_LIFECYCLE.initial.value)
        self.trace.record(now, "start", saga_id, self.definition.name)
        self.orchestrator.start(saga_id)
        if self.started == self.config.sagas:
            guard = self.env.timeout(self.config.termination_bound)
            guard.callbacks.append(self._termination_bound)

    def _saga_finished(self, saga_id: str, state: SagaState, reason: str | None) -> None:
        now = self.env.now
        record = self.records[saga_id]
        value = state._value_  # the member's plain attribute; ``.value`` is a slower descriptor
        if record.finished:
            self.trace.record(now, "finish", saga_id, value, reason)
            return  # a second finish (only a broken variant does this): the checker reports it
        record.finished = True
        self.trace.record(now, "finish", saga_id, value, reason)
        self.metrics.saga_finished(value, record.started_at, now, reason)
        self.domain.saga_finished(saga_id, record.data, state)
        self.finished += 1
        timeout = self.env.timeout(self.config.retention, saga_id)
        timeout.callbacks.append(self._evict)
        if self.progress is not None and (
            self.finished % self.progress_every == 0 or self.finished == self.config.sagas
        ):
            self.progress(self.finished, self.config.sagas)
        if self.config.load.kind == "closed" and self.started < self.config.sagas:
            self.new_saga()
        if self.finished == self.config.sagas and not self.done.triggered:
            self.done.succeed()

    def _evict(self, event: simpy.Event) -> None:
        """The retention ran out: participants forget the saga, and so does the checker."""
        saga_id = str(event.value)
        del self.records[saga_id]
        for name, steps in self.participant_steps.items():
            keys = [action_key(saga_id, s, g) for s, g in self.participant_keys[name]]
            keys += [compensation_key(saga_id, s) for s in steps]
            self.participants[name].forget(keys)
        self.trace.record(self.env.now, "forget", saga_id)

    # -- processes -----------------------------------------------------------------------------

    def arrivals(self) -> Generator[simpy.Event, Any, None]:
        load = self.config.load
        total = self.config.sagas
        if load.kind == "burst":
            for _ in range(total):
                self.new_saga()
            return
        if load.kind == "closed":
            for _ in range(min(load.concurrency, total)):
                self.new_saga()
            return
        rng = stream(self.config.seed, "arrivals")
        rate = load.arrival_rate
        for _ in range(total):
            yield self.env.timeout(rng.expovariate(rate))
            self.new_saga()

    def orchestrator_crashes(self) -> Generator[simpy.Event, Any, None]:
        plan = self.config.faults
        rng = stream(self.config.seed, "crashes")
        downtime = plan.orchestrator_downtime.sampler(rng)
        until = plan.until if plan.until is not None else float("inf")
        while True:
            yield self.env.timeout(rng.expovariate(plan.orchestrator_crash_rate))
            if self.env.now >= until or self.done.triggered:
                return
            self._crash_orchestrator()
            yield self.env.timeout(downtime())
            self._restart_orchestrator()

    def window(
        self, start: float, end: float, begin: Callable[[], None], finish: Callable[[], None]
    ) -> Generator[simpy.Event, Any, None]:
        yield self.env.timeout(start)
        if self.done.triggered:
            return  # every saga has ended: no fault left to inject
        begin()
        yield self.env.timeout(end - start)
        finish()

    def guarded(
        self, process: Generator[simpy.Event, Any, None]
    ) -> Generator[simpy.Event, Any, None]:
        """A process that keeps the first exception raised in it. SimPy re-raises a failed
        process's exception as a copy built from its ``args``, which loses it (or fails) for an
        exception with another constructor, such as :class:`~sagafsm.IllegalTransition`."""
        try:
            yield from process
        except Exception as error:
            if self.error is None:
                self.error = error
            raise

    def start_processes(self) -> None:
        env, plan, guarded = self.env, self.config.faults, self.guarded
        env.process(guarded(self.arrivals()))
        if plan.orchestrator_crash_rate > 0:
            env.process(guarded(self.orchestrator_crashes()))
        for window in plan.orchestrator_crashes:
            env.process(
                guarded(
                    self.window(
                        window.start,
                        window.end,
                        self._crash_orchestrator,
                        self._restart_orchestrator,
                    )
                )
            )
        for kind, windows in (("partition", plan.partitions), ("crash", plan.participant_crashes)):
            for window in windows:
                env.process(
                    self.window(
                        window.start,
                        window.end,
                        self._participant_down(window.participant, kind),
                        self._participant_up(window.participant),
                    )
                )

    def _crash_orchestrator(self) -> None:
        self.outages += 1  # overlapping crash windows: down until the last of them ends
        if self.orchestrator.crash():
            self.faults["orchestrator_crash"] += 1
            self._window_opens("orchestrator_crash", ORCHESTRATOR)

    def _restart_orchestrator(self) -> None:
        self.outages -= 1
        if self.outages == 0:
            self.orchestrator.restart()
            self._window_closes(ORCHESTRATOR)

    def _participant_down(self, name: str, kind: str) -> Callable[[], None]:
        def down() -> None:
            self.faults[f"participant_{kind}_window"] += 1
            self.network.set_down(name, f"participant_{kind}")
            self.trace.record(self.env.now, "crash", None, name)
            self._window_opens(f"participant_{kind}", name)
            if kind == "crash":
                self.participants[name].crash()

        return down

    def _participant_up(self, name: str) -> Callable[[], None]:
        def up() -> None:
            self.network.set_down(name, None)
            self.trace.record(self.env.now, "restart", None, name, 0)
            self._window_closes(name)

        return up

    def _window_opens(self, kind: str, node: str) -> None:
        if len(self.down_windows) < _MAX_DOWN_WINDOWS:
            self.down_windows.append([kind, node, self.env.now, None])

    def _window_closes(self, node: str) -> None:
        for window in reversed(self.down_windows):
            if window[1] == node and window[3] is None:
                window[3] = self.env.now
                return

    def _termination_bound(self, event: simpy.Event) -> None:
        if not self.done.triggered:
            self.unfinished_reason = (
                f"still running {self.config.termination_bound:g}s after the last start request"
            )
            self.done.succeed()

    def run(self) -> None:
        self.start_processes()
        try:
            self.env.run(until=self.done)
        except RuntimeError as error:
            if not empty_schedule(error):
                raise
            self.unfinished_reason = "waiting forever: no event left to move it"
        self.ended_at = self.env.now
        self.occupancy.close(self.ended_at)
        # Participants go on serving late and retried work during the drain below: their usage
        # is read here, over the run's span.
        self.participant_usage = {name: p.usage() for name, p in self.participants.items()}
        self.usage_span = max(0.0, self.ended_at - self.metrics.first_start)
        if self.unfinished_reason is None:
            # Every saga ended, but messages may still be in flight: a late action can still take
            # effect (that is what tombstones are for). Run until the network is quiet and every
            # saga's retention has run out, so the ledgers are complete when they are checked.
            self.orchestrator.timers.reset()
            self.env.run()


def simulate(
    scenario: Scenario,
    config: SimulationConfig,
    *,
    trace_path: str | Path | None = None,
    progress: Progress | None = None,
    observe: Callable[[Record], None] | None = None,
    mutant: Mutant | None = None,
) -> RunResult:
    """Run ``scenario`` under ``config``, check it, and return the result.

    ``trace_path`` writes every trace record as a JSON line; ``observe`` is called with every
    record as it happens (see :data:`~sagafsm.sim.trace.RECORD_FIELDS`). After the last saga
    ends, the simulation runs on until no message is in flight and every saga's retention has
    run out, so late effects are in the ledgers when they are checked. ``mutant``
    runs a deliberately broken variant (:mod:`.mutants`).
    """
    validate_against(scenario, config)
    if mutant is None and config.mutant is not None:
        mutant = get_mutant(config.mutant)
    if mutant is not None:
        mutant.check_applies(scenario.name, scenario.definition)
    if config.style == "choreography" or (mutant is not None and mutant.style == "choreography"):
        from .choreography_run import simulate_choreography

        if mutant is not None and mutant.style != "choreography":
            raise InvalidConfig(
                f"mutant {mutant.name!r} breaks the orchestrator: it runs with the "
                "orchestration style, not --style choreography"
            )
        return simulate_choreography(
            scenario,
            config,
            choreography=mutant.choreography() if mutant and mutant.choreography else None,
            switches=mutant.switches if mutant else None,
            trace_path=trace_path,
            progress=progress,
            observe=observe,
            mutant=mutant.name if mutant else None,
        )
    wall_start = time.perf_counter()
    definition = effective_definition(scenario, config)
    coverage = Coverage()
    checker = StreamingChecker(definition, unpack=unpack_records)
    # The checker reads nothing before the run ends: it takes the records a block at a time.
    trace = Trace(trace_path, [] if observe is None else [observe], [checker.observe_block])
    run = _Run(scenario, config, trace, progress, mutant)
    try:
        with collector_paused():
            run.run()
    except InvalidConfig:
        raise
    except Exception as error:
        original = run.error or original_error(error)
        raise InternalError(original, run.env.now) from original
    finally:
        digest = trace.digest()
        trace.close()
    wall = time.perf_counter() - wall_start
    violations: list[Violation] = list(checker.finish())
    coverage.observe_moves(checker.moves)
    if run.finished == config.sagas:  # domain totals only balance once every saga has ended
        violations += [
            Violation(saga_id=None, property="domain-invariants", detail=problem)
            for problem in run.domain.invariants()
        ]
    counts = dict(checker.counts)
    counts["domain-invariants"] = len(violations) - len(checker.violations)
    return build_result(
        run,
        digest,
        wall,
        violations,
        {k: v for k, v in counts.items() if v},
        coverage,
        mutant.name if mutant else None,
    )
