"""A hand-written SimPy simulation of the benchmark workload: no framework, the same work.

    python benchmarks/baseline.py [--sagas 10000] [--seed 1] [--json]

What a careful engineer would write for order_fulfillment without sagafsm: plain enums for the
saga and step states, ``if`` chains for the transitions, a dict from endpoint name to handler for
routing, a ``simpy.Resource`` per participant. No engine, no ``transitions``, no attrs values, no
trace, no store, no checker. It simulates exactly what the harness simulates for this workload
(:mod:`benchmarks.workload`): every random number comes from the same named stream
(:func:`sagafsm.sim.streams.stream`), in the same order, so for the same seed it produces the same
outcome counts, the same message counts and the same number of events:

- arrivals: ``expovariate(rate)`` from ``arrivals`` before each start (or a closed load);
- per saga: ``Random(fates.getrandbits(64))`` draws 4 uniforms per step (fail, hang, hang lands,
  compensation fails), then the order (``make_order``);
- per message: three uniforms from ``faults`` (loss, duplicate, reorder), then one latency draw
  from ``latency``, whatever happens to the message;
- per operation: a service time from ``participant/NAME`` once the participant's capacity admits
  it; a saga's step spends its pre-drawn fate on its first execution and draws afresh after;
- participants keep the first outcome of an idempotency key, and leave a tombstone when they
  compensate an action they never applied; they forget a saga ``retention`` seconds after it ends;
- the orchestrator times every try out, backs off ``initial * multiplier ** (n - 1)`` (capped)
  between tries, compensates landed (or timed-out) steps in reverse order, and hands a saga to an
  operator when a compensation's tries run out.

The ``events`` it returns count what the harness writes to its trace (a start, a send, a delivery,
a drop, a timer, a fired timer, a lifecycle move, a ledger effect, an ignored reply, a finish, a
forget), so events per second compare like with like. It only models the workload's fault kinds
(loss, definite failures, failing compensations): no hangs, duplicates, reorders or crashes.
"""

from __future__ import annotations

import argparse
import enum
import json
import random
import sys
import time
from collections import Counter
from collections.abc import Generator
from pathlib import Path
from typing import Any

import simpy

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from sagafsm.lifecycle import STEP_LIFECYCLE, SagaState  # noqa: E402  (lifecycle facts, as data)
from sagafsm.sim import Declined  # noqa: E402  (how a service says no)
from sagafsm.sim.streams import stream  # noqa: E402  (named random streams: data, not framework)
from simulations.order_fulfillment import (  # noqa: E402  (the domain and its steps)
    OrderDomain,
    make_order,
    scenario,
)

__all__ = ["run_baseline", "STEPS"]

STEPS: tuple[tuple[str, str, str | None], ...] = tuple(
    (s.participant, s.action, s.compensation) for s in scenario().definition.steps
)
"""order_fulfillment: (participant, action, compensation or None for a read-only step) per step,
in order, read from the scenario's definition."""

ORCHESTRATOR = "orchestrator"


class Saga(enum.Enum):
    PENDING = 1
    COMPENSATING = 2
    COMPLETED = 3
    FAILED = 4
    OPERATOR_REQUIRED = 5


class Step(enum.Enum):
    PENDING = 1
    EXECUTING = 2
    WAITING_RETRY = 3
    SUCCEEDED = 4
    FAILED = 5
    TIMED_OUT = 6
    COMPENSATING = 7
    WAITING_COMPENSATION_RETRY = 8
    COMPENSATED = 9
    COMPENSATION_FAILED = 10


class Kind(enum.Enum):
    EXECUTE = 1
    COMPENSATE = 2
    ACTION_REPLY = 3
    COMPENSATION_REPLY = 4


class Timer(enum.Enum):
    ACTION_TIMEOUT = 1
    ACTION_BACKOFF = 2
    COMPENSATION_TIMEOUT = 3
    COMPENSATION_BACKOFF = 4


FINAL = frozenset({Saga.COMPLETED, Saga.FAILED, Saga.OPERATOR_REQUIRED})
LANDED = frozenset(Step[state.name] for state in STEP_LIFECYCLE.landed)
AWAITING_ACTION = (Step.EXECUTING, Step.WAITING_RETRY)
AWAITING_COMPENSATION = (Step.COMPENSATING, Step.WAITING_COMPENSATION_RETRY)
SUCCEEDED, FAILED = True, False
STEPS_NAMES = scenario().definition.step_names
SAGA_STATES = {state: SagaState[state.name] for state in FINAL}
"""The domain is told how a saga ended in the library's words (it is the scenario's own code)."""


class Message:
    """One message. ``key`` is the idempotency key, ``(saga, step)``: a step's action and its
    compensation share it, each in its own table at the participant."""

    __slots__ = ("attempt", "dest", "key", "kind", "outcome", "result", "saga", "step")

    def __init__(
        self,
        kind: Kind,
        saga: int,
        step: int,
        dest: str,
        attempt: int,
        outcome: bool | None,
        result: Any = None,
    ) -> None:
        self.kind = kind
        self.saga = saga
        self.step = step
        self.dest = dest
        self.attempt = attempt
        self.outcome = outcome
        self.result = result
        """An execute: the earlier steps' results; a compensation: its action's result (None
        if it never arrived); an action reply: the action's result."""
        self.key = (saga, step)


class SagaRun:
    """One saga: the orchestrator's view (states, tries, timer) and its input data and fates."""

    __slots__ = (
        "attempts",
        "compensation_attempts",
        "data",
        "fates",
        "number",
        "results",
        "saga_id",
        "started_at",
        "state",
        "steps",
        "timer",
        "timer_purpose",
        "timer_step",
    )

    def __init__(self, number: int, data: dict[str, Any], fates: list[list[float | None]]) -> None:
        self.number = number
        self.saga_id = f"s{number}"
        """The harness's name for the saga: the domain's ids and records use it."""
        self.data = data
        self.fates = fates
        self.state = Saga.PENDING
        self.steps = [Step.PENDING] * len(STEPS)
        self.attempts = [0] * len(STEPS)
        self.compensation_attempts = [0] * len(STEPS)
        self.results: list[dict[str, Any] | None] = [None] * len(STEPS)
        self.timer = 0
        """Sequence number of the armed timer (a fired timer with another number is stale)."""
        self.timer_purpose: Timer | None = None
        self.timer_step = 0
        self.started_at = 0.0


def _backoff(policy: tuple[float, float, float], failed_attempt: int) -> float:
    initial, multiplier, cap = policy
    return min(initial * multiplier ** (failed_attempt - 1), cap)


class Participant:
    def __init__(self, sim: Baseline, name: str, rng: random.Random, service: Any) -> None:
        self.sim = sim
        self.name = name
        self.resource = simpy.Resource(sim.env, capacity=sim.capacity)
        self.service = service
        self.random = rng.random
        self.expovariate = rng.expovariate
        self.results: dict[tuple[int, int], tuple[bool, Any]] = {}
        self.tombstones: set[tuple[int, int]] = set()
        self.compensated: set[tuple[int, int]] = set()
        self.operations = 0

    def receive(self, message: Message) -> None:
        self.sim.env.process(self.serve(message))

    def serve(self, message: Message) -> Generator[simpy.Event, Any, None]:
        sim = self.sim
        with self.resource.request() as request:
            yield request
            yield sim.env.timeout(self.expovariate(sim.service_rate))
        self.operations += 1
        saga = sim.sagas.get(message.saga)
        if saga is None:
            sim.faults["expired"] += 1
            return
        result = None
        if message.kind is Kind.EXECUTE:
            outcome, result = self.execute(message, saga)
            kind = Kind.ACTION_REPLY
        else:
            outcome = self.compensate(message, saga)
            kind = Kind.COMPENSATION_REPLY
        sim.send(
            Message(
                kind, message.saga, message.step, ORCHESTRATOR, message.attempt, outcome, result
            )
        )

    def execute(self, message: Message, saga: SagaRun) -> tuple[bool, Any]:
        sim, key = self.sim, message.key
        if key in self.tombstones:
            sim.events += 1  # effect: action_blocked
            return FAILED, None
        known = self.results.get(key)
        if known is not None:
            return known
        fate = saga.fates[message.step]
        fail = fate[0]
        if fail is None:
            draw = self.random
            fail = draw()
            draw()  # hang
            draw()  # hang lands
        else:
            fate[0] = None  # the first execution spends the pre-drawn fate
        outcome, result = FAILED, None
        if fail < sim.failure_rate:
            sim.faults["step_failure"] += 1
        else:
            try:
                result = self.service.apply(
                    STEPS[message.step][1], saga.saga_id, saga.data, message.result
                )
            except Declined:
                result = None
            outcome = result is not None
        self.results[key] = known = (outcome, result)
        sim.events += 1  # effect: action or action_failed
        return known

    def compensate(self, message: Message, saga: SagaRun) -> bool:
        sim, key = self.sim, message.key
        if key in self.compensated:
            return SUCCEEDED
        fate = saga.fates[message.step]
        failing = fate[3]
        if failing is None:
            failing = self.random()
        else:
            fate[3] = None
        sim.events += 1  # effect: compensation, compensation_noop or compensation_failed
        if failing < sim.compensation_failure_rate:
            sim.faults["compensation_failure"] += 1
            return FAILED
        known = self.results.get(key)
        if known is not None and known[0] is SUCCEEDED:
            if message.result is not None and message.result != known[1]:
                return FAILED  # handed another action's result: refused (never, when correct)
            self.service.undo(STEPS[message.step][2], saga.saga_id, saga.data, known[1])
        else:
            self.tombstones.add(key)
        self.compensated.add(key)
        return SUCCEEDED

    def forget(self, key: tuple[int, int]) -> None:
        self.results.pop(key, None)
        self.tombstones.discard(key)
        self.compensated.discard(key)


class Baseline:
    def __init__(self, sagas: int, seed: int, params: dict[str, Any]) -> None:
        self.total = sagas
        self.seed = seed
        for name, value in params.items():
            setattr(self, name, value)
        self.latency_rate = 1.0 / params["latency"]
        self.service_rate = 1.0 / params["service_time"]
        self.env = env = simpy.Environment()
        self.done = env.event()
        self.fates = stream(seed, "fates")
        self.fault_random = stream(seed, "faults").random
        self.latency_draw = stream(seed, "latency").expovariate
        self.domain = OrderDomain(stream(seed, "domain"))
        self.participants = {
            name: Participant(
                self, name, stream(seed, f"participant/{name}"), self.domain.services[name]
            )
            for name in dict.fromkeys(participant for participant, _, _ in STEPS)
        }
        self.step_participants = [self.participants[name] for name, _, _ in STEPS]
        self.routes = {name: p.receive for name, p in self.participants.items()}
        self.routes[ORCHESTRATOR] = self.receive
        self.sagas: dict[int, SagaRun] = {}
        """Every saga not yet forgotten: running, or finished less than ``retention`` ago."""
        self.started = self.finished = 0
        self.outcomes: Counter[str] = Counter()
        self.faults: Counter[str] = Counter()
        self.sent = self.delivered = self.dropped = 0
        self.events = 0
        self.timers_live = True
        self.ended_at = 0.0

    # -- network -------------------------------------------------------------------------------

    def send(self, message: Message) -> None:
        self.sent += 1
        self.events += 1  # send
        draw = self.fault_random
        lost = draw() < self.loss
        draw()  # duplicate (never, in this workload)
        draw()  # reorder (never, in this workload)
        delay = self.latency_draw(self.latency_rate)
        if lost:
            self.dropped += 1
            self.events += 1  # drop
            self.faults["loss"] += 1
            return
        event = self.env.timeout(delay, message)
        event.callbacks.append(self.arrive)

    def arrive(self, event: simpy.Event) -> None:
        message = event.value
        self.delivered += 1
        self.events += 1  # deliver
        self.routes[message.dest](message)

    # -- load ----------------------------------------------------------------------------------

    def arrivals(self) -> Generator[simpy.Event, Any, None]:
        if self.concurrency is not None:
            for _ in range(min(self.concurrency, self.total)):
                self.new_saga()
            return
        expovariate, rate = stream(self.seed, "arrivals").expovariate, self.arrival_rate
        timeout = self.env.timeout
        for _ in range(self.total):
            yield timeout(expovariate(rate))
            self.new_saga()

    def new_saga(self) -> None:
        number = self.started
        self.started += 1
        rng = random.Random(self.fates.getrandbits(64))
        draw = rng.random
        fates: list[list[float | None]] = [[draw(), draw(), draw(), draw()] for _ in STEPS]
        saga = SagaRun(number, make_order(rng), fates)
        saga.started_at = self.env.now
        self.sagas[number] = saga
        self.events += 2  # start; begin
        self.execute(saga, 0)
        if self.started == self.total:
            guard = self.env.timeout(self.termination_bound)
            guard.callbacks.append(self.termination_bound_reached)

    def termination_bound_reached(self, event: simpy.Event) -> None:
        if not self.done.triggered:
            raise RuntimeError("a saga is still running long after the last start")

    # -- orchestrator: sending and timers ------------------------------------------------------

    def execute(self, saga: SagaRun, step: int) -> None:
        saga.steps[step] = Step.EXECUTING
        saga.attempts[step] += 1
        self.events += 1  # send (or retry)
        earlier = {
            STEPS_NAMES[i]: result for i in range(step) if (result := saga.results[i]) is not None
        }
        attempt = saga.attempts[step]
        self.send(Message(Kind.EXECUTE, saga.number, step, STEPS[step][0], attempt, None, earlier))
        self.arm(saga, step, Timer.ACTION_TIMEOUT, self.step_timeout)

    def compensate(self, saga: SagaRun, step: int) -> None:
        saga.steps[step] = Step.COMPENSATING
        saga.compensation_attempts[step] += 1
        self.events += 1  # compensate (or compensation_retry)
        attempt = saga.compensation_attempts[step]
        result = saga.results[step]
        self.send(
            Message(Kind.COMPENSATE, saga.number, step, STEPS[step][0], attempt, None, result)
        )
        self.arm(saga, step, Timer.COMPENSATION_TIMEOUT, self.compensation_timeout)

    def compensate_next(self, saga: SagaRun, below: int) -> None:
        """Compensate the highest compensatable step at or below ``below`` that landed or may
        have (a read-only step has nothing to undo)."""
        steps = saga.steps
        for step in range(below, -1, -1):
            if steps[step] in LANDED and STEPS[step][2] is not None:
                self.compensate(saga, step)
                return
        self.finish(saga, Saga.FAILED)

    def arm(self, saga: SagaRun, step: int, purpose: Timer, delay: float) -> None:
        saga.timer += 1
        saga.timer_purpose = purpose
        saga.timer_step = step
        self.events += 1  # timer
        event = self.env.timeout(delay, (saga, saga.timer))
        event.callbacks.append(self.timer_fired)

    def abort(self, saga: SagaRun, below: int) -> None:
        saga.state = Saga.COMPENSATING
        self.events += 1  # abort
        self.compensate_next(saga, below)

    def finish(self, saga: SagaRun, state: Saga) -> None:
        saga.state = state
        saga.timer_purpose = None
        self.events += 2  # complete / compensated / escalate; finish
        self.outcomes[state.name.lower()] += 1
        self.domain.saga_finished(saga.saga_id, saga.data, SAGA_STATES[state])
        self.finished += 1
        forget = self.env.timeout(self.retention, saga)
        forget.callbacks.append(self.forget)
        if self.concurrency is not None and self.started < self.total:
            self.new_saga()
        if self.finished == self.total and not self.done.triggered:
            self.done.succeed()

    def forget(self, event: simpy.Event) -> None:
        saga = event.value
        del self.sagas[saga.number]
        for step, participant in enumerate(self.step_participants):
            participant.forget((saga.number, step))
        self.events += 1  # forget

    # -- orchestrator: reactions ---------------------------------------------------------------

    def receive(self, message: Message) -> None:
        saga = self.sagas.get(message.saga)
        if saga is None or saga.state in FINAL:
            self.events += 1  # ignored: no running saga
            return
        step = message.step
        state = saga.steps[step]
        if message.kind is Kind.ACTION_REPLY:
            if state not in AWAITING_ACTION:
                self.events += 1  # ignored: late, duplicate or unknown
                return
            saga.timer_purpose = None  # disarm
            self.events += 1  # succeed / fail
            if message.outcome:
                saga.steps[step] = Step.SUCCEEDED
                saga.results[step] = message.result
                if step + 1 < len(STEPS):
                    self.execute(saga, step + 1)
                else:
                    self.finish(saga, Saga.COMPLETED)
            else:
                saga.steps[step] = Step.FAILED  # a definite failure: nothing to undo here
                self.abort(saga, step - 1)
        elif message.outcome:
            if state not in AWAITING_COMPENSATION:
                self.events += 1  # ignored
                return
            saga.timer_purpose = None
            saga.steps[step] = Step.COMPENSATED
            self.events += 1  # compensated
            self.compensate_next(saga, step - 1)
        elif state is Step.COMPENSATING:
            self.compensation_failed(saga, step)
        else:
            self.events += 1  # ignored

    def compensation_failed(self, saga: SagaRun, step: int) -> None:
        self.events += 1  # compensation_back_off / compensation_give_up
        tries = saga.compensation_attempts[step]
        if tries < self.compensation_attempts:
            saga.steps[step] = Step.WAITING_COMPENSATION_RETRY
            delay = _backoff(self.compensation_backoff, tries)
            self.arm(saga, step, Timer.COMPENSATION_BACKOFF, delay)
        else:
            saga.steps[step] = Step.COMPENSATION_FAILED
            self.finish(saga, Saga.OPERATOR_REQUIRED)

    def timer_fired(self, event: simpy.Event) -> None:
        saga, number = event.value
        purpose = saga.timer_purpose
        if purpose is None or number != saga.timer or not self.timers_live:
            return  # cancelled, replaced, or the run is draining
        saga.timer_purpose = None
        self.events += 1  # timer_fired
        step = saga.timer_step
        if purpose is Timer.ACTION_TIMEOUT:
            self.events += 1  # back_off / give_up
            tries = saga.attempts[step]
            if tries < self.max_attempts:
                saga.steps[step] = Step.WAITING_RETRY
                self.arm(saga, step, Timer.ACTION_BACKOFF, _backoff(self.backoff, tries))
            else:
                saga.steps[step] = Step.TIMED_OUT  # may have landed: compensated too
                self.abort(saga, step)
        elif purpose is Timer.ACTION_BACKOFF:
            self.execute(saga, step)
        elif purpose is Timer.COMPENSATION_TIMEOUT:
            self.compensation_failed(saga, step)
        else:
            self.compensate(saga, step)

    # -- the run -------------------------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        start = time.perf_counter()
        self.env.process(self.arrivals())
        self.env.run(until=self.done)
        self.ended_at = self.env.now
        # Every saga ended; let late messages land and retention run out, as the harness does.
        self.timers_live = False
        self.env.run()
        wall = time.perf_counter() - start
        problems = self.domain.invariants()
        if problems:
            raise RuntimeError(f"baseline broke the domain invariants: {problems[0]}")
        return {
            "outcomes": {
                name: self.outcomes[name] for name in ("completed", "failed", "operator_required")
            },
            "events": self.events,
            "messages": {"sent": self.sent, "delivered": self.delivered, "dropped": self.dropped},
            "faults": dict(sorted(self.faults.items())),
            "sim_time": self.ended_at,
            "wall_seconds": wall,
        }


DEFAULTS: dict[str, Any] = {
    "arrival_rate": 50.0,
    "concurrency": None,
    "latency": 0.005,
    "service_time": 0.002,
    "capacity": 8,
    "failure_rate": 0.05,
    "compensation_failure_rate": 0.0,
    "loss": 0.01,
    "step_timeout": 0.25,
    "max_attempts": 3,
    "backoff": (0.05, 2.0, 5.0),
    "compensation_timeout": 0.25,
    "compensation_attempts": 5,
    "compensation_backoff": (0.05, 2.0, 5.0),
    "retention": 60.0,
    "termination_bound": 300.0,
}
"""The workload of :mod:`benchmarks.workload`, as plain numbers."""


def run_baseline(sagas: int, seed: int = 1, **params: Any) -> dict[str, Any]:
    """Simulate ``sagas`` sagas of the workload; return outcome, message and event counts.

    ``params`` override :data:`DEFAULTS` (``benchmarks.workload.baseline_params`` gives them for a
    harness configuration). Latencies and service times are exponential with the given means.
    """
    kinds = {params.pop(k, "exp") for k in ("latency_kind", "service_time_kind")}
    if kinds != {"exp"}:
        raise ValueError(f"the baseline draws exponential latencies only, not {kinds}")
    params.pop("sagas", None)
    params.pop("seed", None)
    unknown = set(params) - DEFAULTS.keys()
    if unknown:
        raise TypeError(f"unknown baseline parameter(s): {', '.join(sorted(unknown))}")
    return Baseline(sagas, seed, {**DEFAULTS, **params}).run()


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sagas", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", action="store_true", help="print JSON instead of a summary")
    args = parser.parse_args(argv)
    result = run_baseline(args.sagas, args.seed)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"baseline: {args.sagas} sagas, seed {args.seed}")
        print(f"  outcomes  {result['outcomes']}")
        print(f"  messages  {result['messages']}")
        print(f"  events    {result['events']}")
        wall = result["wall_seconds"]
        print(f"  wall      {wall:.2f} s  ({args.sagas / wall:,.0f} sagas/s)")
    return result


if __name__ == "__main__":
    main()
