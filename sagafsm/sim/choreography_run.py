"""One simulation run of a choreographed saga: the same world as orchestration, no orchestrator.

Everything but the orchestrator is orchestration's own: the network and its fault plan
(:mod:`.network`), the participants' ledgers (:class:`~.participant.SimParticipant`, answering
their own roles instead of an orchestrator), the pre-drawn fates, the domain and its invariants,
the metrics and the result. In place of the orchestrator, each participant hosts its projected
roles (:mod:`.choreography_node`) and events travel on an at-least-once bus
(:mod:`.choreography_bus`). The same streaming checker judges the run from the ledgers, reading
the roles' lifecycles in place of the saga's and the steps'
(:func:`sagafsm.choreography.checking.choreography_steps`).

The saga's outcome is the initiator's announcement (its ``completed`` or ``failed`` event): that
is when it counts as finished in the metrics. Orchestrator crashes in the fault plan do not apply
(there is none to crash); participants' partitions and crashes do.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, cast

import attrs
import simpy

from .._validate import is_json_value
from ..checks import StreamingChecker, Violation
from ..choreography import choreography_from, project
from ..choreography.checking import choreography_steps
from ..choreography.node import Switches
from ..choreography.routing import consumers_of, tries_of
from ..choreography.table import ChoreographyDefinition
from ..definition import SagaDefinition
from ..errors import InvalidConfig
from ..lifecycle import SagaState
from .choreography_bus import EventBus
from .choreography_node import RoleHost
from .collector import collector_paused
from .config import SimulationConfig
from .coverage import Coverage
from .fates import draw_fates, forced_fates, make_network
from .internal import InternalError, empty_schedule, original_error
from .metrics import Occupancy, RunMetrics
from .participant import Fates, SimParticipant
from .prepare import effective_definition, metrics_window
from .result import RunResult, build_result
from .scenario import Scenario
from .streams import stream
from .trace import Record, Trace, unpack_records

__all__ = ["EVENT_TRIES_SIMULATED", "choreography_of", "simulate_choreography"]

EVENT_TRIES_SIMULATED = 20
"""Deliveries of one event to one subscriber before its emitter gives it up."""


def choreography_of(scenario: Scenario, definition: SagaDefinition) -> ChoreographyDefinition:
    """The scenario's choreography: the one it declares (a ``choreography`` attribute of its
    scenario value), else the one derived from its (effective) definition."""
    declared = getattr(scenario, "choreography", None)
    if isinstance(declared, ChoreographyDefinition):
        return declared
    return choreography_from(definition)


@attrs.define
class _SagaRecord:
    data: Mapping[str, Any]
    fates: Fates
    started_at: float
    finished: bool = False
    phase: str = "pending"
    """What the occupancy counts it as until it ends: ``pending`` (its steps go forward), then
    ``compensating`` once a role of it starts undoing its step."""


class _Recorder:
    """What the result reads of an orchestrator, for a run that has none."""

    def __init__(self, counts: Counter[tuple[str, str]]) -> None:
        self.triggers = counts
        self.crashes = 0
        self.writes = 0

    @property
    def recorder(self) -> _Recorder:
        return self


class ChoreographyRun:
    def __init__(
        self,
        scenario: Scenario,
        config: SimulationConfig,
        trace: Trace,
        choreography: ChoreographyDefinition,
        switches: Switches,
        progress: Callable[[int, int], None] | None,
    ) -> None:
        self.scenario, self.config, self.trace = scenario, config, trace
        self.choreography = choreography
        self.progress = progress
        self.progress_every = max(1, config.sagas // 200)
        self.env = env = simpy.Environment()
        self.faults: Counter[str] = Counter()
        window = metrics_window(config)
        self.metrics = RunMetrics(window)
        final = frozenset({SagaState.COMPLETED.value, SagaState.FAILED.value})
        self.occupancy = Occupancy(window, final=final)
        self.records: dict[str, _SagaRecord] = {}
        self.started = self.finished = 0
        self.done = env.event()
        self.ended_at = 0.0
        self.down_windows: list[list[Any]] = []
        self.unfinished_reason: str | None = None
        self.error: Exception | None = None
        self.triggers: Counter[tuple[str, str]] = Counter()
        self.orchestrator = self.store = _Recorder(self.triggers)
        seed = config.seed
        self.fates = stream(seed, "fates")
        self.step_names = [s.name for s in choreography.steps]
        self.forced = forced_fates(config)
        self.network = make_network(env, config, trace, self.faults)
        self.domain = scenario.make_domain(stream(seed, "domain"))
        definition = effective_definition(scenario, config)
        projection = project(choreography)
        consumers = consumers_of(choreography, projection.roles)
        subscribers = {
            event: tuple(dict.fromkeys(r.participant for r in roles))
            for event, roles in consumers.items()
        }
        self.bus = EventBus(
            env,
            self.network,
            subscribers,
            redeliver_after=min(s.timeout for s in definition.steps),
            tries=EVENT_TRIES_SIMULATED,
            faults=self.faults,
        )
        tries = tries_of(choreography, definition)
        index = {name: i for i, name in enumerate(self.step_names)}
        self.hosts: dict[str, RoleHost] = {}
        self.participants: dict[str, SimParticipant] = {}
        services = self.domain.services
        for name in choreography.participants:
            host = RoleHost(
                env,
                name,
                choreography,
                projection.of(name),
                consumers,
                self.bus,
                trace,
                tries,
                self.records.__contains__,
                self._outcome,
                self.triggers,
                switches,
                on_compensating=self._compensating,
            )
            if any(s.participant == name for s in choreography.steps):
                if name not in services:
                    raise InvalidConfig(f"scenario {scenario.name!r} has no service for {name!r}")
                ledger = SimParticipant(
                    env,
                    name,
                    config.participant_config(name),
                    services[name],
                    self.network,
                    trace,
                    stream(seed, f"participant/{name}"),
                    self.faults,
                    self._fates,
                    index.__getitem__,
                    answer=host.answered,
                )
                host.ledger = self.participants[name] = ledger
            self.hosts[name] = host
            self.network.register(name, host.receive)
        self.initiator = self.hosts[choreography.initiator]

    def _fates(self, saga_id: str) -> Fates | None:
        record = self.records.get(saga_id)
        return None if record is None else record.fates

    def new_saga(self) -> None:
        index = self.started
        self.started += 1
        saga_id = f"s{index}"
        rng = random.Random(self.fates.getrandbits(64))
        fates = draw_fates(rng, self.step_names, self.forced.get(saga_id, {}))
        now = self.env.now
        order = self.scenario.make_order(rng)
        if not isinstance(order, Mapping) or not is_json_value(order):
            raise InvalidConfig(
                f"scenario {self.scenario.name!r}: make_order() must return a mapping of JSON "
                f"data (the saga's input), got {order!r}"
            )
        self.records[saga_id] = _SagaRecord(order, fates, now)
        self.metrics.saga_started(now)
        self.occupancy.move(now, None, "pending")
        self.trace.record(now, "start", saga_id, self.choreography.name)
        self.initiator.start(saga_id, order, self.choreography.start)
        if self.started == self.config.sagas:
            guard = self.env.timeout(self.config.termination_bound)
            guard.callbacks.append(self._termination_bound)

    def _compensating(self, saga_id: str) -> None:
        record = self.records.get(saga_id)
        if record is not None and not record.finished and record.phase == "pending":
            record.phase = "compensating"
            self.occupancy.move(self.env.now, "pending", "compensating")

    def _outcome(self, saga_id: str, state: str) -> None:
        now = self.env.now
        record = self.records[saga_id]
        self.trace.record(now, "finish", saga_id, state, None)
        if record.finished:
            return
        record.finished = True
        if state == SagaState.FAILED.value:
            self.triggers["saga", "abort"] += 1  # what the compensation rate counts
        self.occupancy.move(now, record.phase, state)
        self.metrics.saga_finished(state, record.started_at, now, None)
        self.domain.saga_finished(saga_id, record.data, SagaState(state))
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
        saga_id = str(event.value)
        del self.records[saga_id]
        for name, host in self.hosts.items():
            keys = host.forget(saga_id)
            if name in self.participants:
                self.participants[name].forget(keys)
        self.bus.forget(saga_id)
        self.trace.record(self.env.now, "forget", saga_id)

    def arrivals(self) -> Any:
        load, total = self.config.load, self.config.sagas
        if load.kind in ("burst", "closed"):
            for _ in range(total if load.kind == "burst" else min(load.concurrency, total)):
                self.new_saga()
            return
        rng = stream(self.config.seed, "arrivals")
        for _ in range(total):
            yield self.env.timeout(rng.expovariate(load.arrival_rate))
            self.new_saga()

    def guarded(self, process: Any) -> Any:
        try:
            yield from process
        except Exception as error:
            if self.error is None:
                self.error = error
            raise

    def window(self, start: float, end: float, name: str, kind: str) -> Any:
        yield self.env.timeout(start)
        if self.done.triggered:
            return
        self.faults[f"participant_{kind}_window"] += 1
        self.network.set_down(name, f"participant_{kind}")
        self.trace.record(self.env.now, "crash", None, name)
        window = [f"participant_{kind}", name, self.env.now, None]
        self.down_windows.append(window)
        if kind == "crash" and name in self.participants:
            self.participants[name].crash()
            self.hosts[name].crashed()  # (every participant with a ledger has a host)
        yield self.env.timeout(end - start)
        self.network.set_down(name, None)
        self.trace.record(self.env.now, "restart", None, name, 0)
        window[3] = self.env.now
        if kind == "crash" and name in self.hosts:
            self.faults["compensation_rerun"] += self.hosts[name].restarted()

    def _termination_bound(self, event: simpy.Event) -> None:
        if not self.done.triggered:
            self.unfinished_reason = (
                f"still running {self.config.termination_bound:g}s after the last start request"
            )
            self.done.succeed()

    def run(self) -> None:
        plan = self.config.faults
        arrivals = self.arrivals()
        if arrivals is not None:
            self.env.process(self.guarded(arrivals))
        for kind, windows in (("partition", plan.partitions), ("crash", plan.participant_crashes)):
            for w in windows:
                self.env.process(self.window(w.start, w.end, w.participant, kind))
        try:
            self.env.run(until=self.done)
        except RuntimeError as error:
            if not empty_schedule(error):
                raise
            self.unfinished_reason = "waiting forever: no event left to move it"
        self.ended_at = self.env.now
        self.occupancy.close(self.ended_at)
        self.participant_usage = {name: p.usage() for name, p in self.participants.items()}
        self.usage_span = max(0.0, self.ended_at - self.metrics.first_start)
        if self.unfinished_reason is None:
            self.env.run()  # late events, deadlines and retentions: the ledgers complete


def _coverage(choreography: ChoreographyDefinition, moves: set[tuple[str, ...]]) -> dict[str, Any]:
    """Per role: its declared rows, and the ones the run exercised."""
    summary = {}
    for role in project(choreography).roles:
        rows = {(t.source.value, t.trigger, t.dest.value) for t in role.spec.transitions}
        seen = {(s, t, d) for name, s, t, d in moves if name == role.name}
        summary[role.name] = {
            "covered": len(rows & seen),
            "declared": len(rows),
            "uncovered": [f"{s} --{t}--> {d}" for s, t, d in sorted(rows - seen)],
        }
    return summary


def simulate_choreography(
    scenario: Scenario,
    config: SimulationConfig,
    *,
    choreography: ChoreographyDefinition | None = None,
    switches: Switches | None = None,
    trace_path: str | Path | None = None,
    progress: Callable[[int, int], None] | None = None,
    observe: Callable[[Record], None] | None = None,
    mutant: str | None = None,
) -> RunResult:
    """Run ``scenario``'s choreography (``choreography``, or :func:`choreography_of`) under
    ``config``, check it from the ledgers, and return the result (the keys of orchestration's)."""
    wall_start = time.perf_counter()
    definition = effective_definition(scenario, config)
    choreography = choreography or choreography_of(scenario, definition)
    checker = StreamingChecker(
        definition, steps=choreography_steps(choreography), unpack=unpack_records
    )
    trace = Trace(trace_path, [] if observe is None else [observe], [checker.observe_block])
    run = ChoreographyRun(scenario, config, trace, choreography, switches or Switches(), progress)
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
    if run.finished == config.sagas:
        violations += [
            Violation(saga_id=None, property="domain-invariants", detail=problem)
            for problem in run.domain.invariants()
        ]
    counts = dict(checker.counts)
    counts["domain-invariants"] = len(violations) - len(checker.violations)
    result = build_result(
        cast(Any, run),
        digest,
        wall,
        violations,
        {k: v for k, v in counts.items() if v},
        Coverage(),
        mutant,
    )
    return attrs.evolve(result, coverage=_coverage(choreography, cast(Any, checker.moves)))
