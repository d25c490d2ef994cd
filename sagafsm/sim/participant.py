"""A simulated participant: a SimPy process per operation, a capacity, a ledger.

The business logic is the scenario's :class:`~sagafsm.sim.scenario.Service`; around it the
participant does what a well-built service does and what faults break:

- **idempotency**: the first outcome of an idempotency key is kept; a repeat (retry, duplicate)
  gets the same reply and changes nothing;
- **tombstones**: a compensation for an action never applied leaves a tombstone, so the action, if
  it arrives later, is a no-op;
- **faults**: an action fails definitely, or hangs (no reply; its effect may land or not). The
  first execution of a saga's step follows the saga's pre-drawn fate, so which sagas fail does
  not depend on timing; any later execution (a retry under a new key, or after a hang that did
  not land) draws afresh from the participant's stream. A compensation try fails at random.

Every effect goes to the trace as an ``effect`` record: that is the participant's ledger, the ground
truth the checkers read.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Generator, Mapping
from typing import Any

import simpy

from ..messages import Envelope, MessageKind, Outcome
from .config import ParticipantConfig
from .network import ORCHESTRATOR, Network
from .scenario import Service
from .trace import Trace

__all__ = ["SimParticipant", "StepFate", "Effect"]


class Effect:
    """The ``effect`` values a participant writes to its ledger."""

    ACTION = "action"
    """The action's effect was applied."""
    ACTION_FAILED = "action_failed"
    """The action failed definitely: no effect."""
    ACTION_BLOCKED = "action_blocked"
    """The action arrived after its compensation: the tombstone made it a no-op."""
    COMPENSATION = "compensation"
    """The compensation undid the action's effect."""
    COMPENSATION_NOOP = "compensation_noop"
    """The compensation found no effect to undo (and left a tombstone)."""
    COMPENSATION_FAILED = "compensation_failed"
    """This try of the compensation failed: no effect."""


StepFate = list[float | None]
"""Per saga and step, pre-drawn uniforms ``[fail, hang, hang lands, compensation fails]``. The
first execution spends the first three (sets ``fate[0]`` to None), the first compensation try the
last; later tries draw afresh."""


class SimParticipant:
    def __init__(
        self,
        env: simpy.Environment,
        name: str,
        config: ParticipantConfig,
        service: Service,
        network: Network,
        trace: Trace,
        rng: random.Random,
        faults: Counter[str],
        saga_context: Callable[[str], tuple[Mapping[str, Any], list[StepFate]] | None],
        step_index: Callable[[str], int],
        *,
        dedup: bool = True,
        tombstones: bool = True,
    ) -> None:
        self.name = name
        self._env = env
        self._config = config
        self._service = service
        self._network = network
        self._trace = trace
        self._faults = faults
        self._service_time = config.service_time.sampler(rng)
        self._random = rng.random
        self._context = saga_context
        self._step_index = step_index
        self.resource = simpy.Resource(env, capacity=config.capacity)
        self._dedup = dedup  # False only for the no-dedup-participant mutant
        self._use_tombstones = tombstones  # False only for the no-tombstone mutant
        self._results: dict[str, Outcome] = {}
        self._tombstones: set[str] = set()
        self._compensated: set[str] = set()
        self._epoch = 0
        """Bumped at each crash: operations in service across a crash are abandoned."""
        self.busy_time = 0.0
        self.operations = 0
        self.queue_area = 0.0
        """Queue length integrated over time (operations waiting for a free slot x seconds)."""
        self.max_queue = 0
        self._queue_length = 0
        self._queue_since = 0.0

    # -- network side --------------------------------------------------------------------------

    def receive(self, message: Envelope) -> None:
        self._env.process(self._serve(message))

    def crash(self) -> None:
        self._epoch += 1

    def usage(self) -> tuple[float, float, int, int]:
        """(busy seconds, queue-length seconds, operations, longest queue) so far; the queue
        length is integrated up to now."""
        now = self._env.now
        queued = self.queue_area + self._queue_length * (now - self._queue_since)
        return self.busy_time, queued, self.operations, self.max_queue

    def _queue_changed(self) -> None:
        now = self._env.now
        self.queue_area += self._queue_length * (now - self._queue_since)
        self._queue_since = now
        self._queue_length = length = len(self.resource.queue)
        if length > self.max_queue:
            self.max_queue = length

    def forget(self, keys: list[str]) -> None:
        """Drop a long-finished saga's idempotency records (its retention ran out)."""
        for key in keys:
            self._results.pop(key, None)
            self._tombstones.discard(key)
            self._compensated.discard(key)

    def _serve(self, message: Envelope) -> Generator[simpy.Event, Any, None]:
        epoch = self._epoch
        with self.resource.request() as request:
            self._queue_changed()
            yield request
            self._queue_changed()
            service_time = self._service_time()
            yield self._env.timeout(service_time)
        self.busy_time += service_time
        self.operations += 1
        if epoch != self._epoch:
            return  # crashed while serving: rolled back, nobody answers
        context = self._context(message.saga_id)
        if context is None:
            self._faults["expired"] += 1
            return  # the saga ended longer ago than the retention: a stale request is refused
        data, fates = context
        if message.kind is MessageKind.EXECUTE:
            outcome = self._execute(message, data, fates, self._step_index(message.step))
        else:
            outcome = self._compensate(message, data, fates[self._step_index(message.step)])
        if outcome is not None:
            self._reply(message, outcome)

    # -- the ledger ----------------------------------------------------------------------------

    def _execute(
        self,
        message: Envelope,
        data: Mapping[str, Any],
        fates: list[StepFate],
        step: int,
    ) -> Outcome | None:
        key = message.idempotency_key
        if key in self._tombstones:
            self._effect(message, Effect.ACTION_BLOCKED)
            return Outcome.FAILED
        known = self._results.get(key)
        if known is not None and self._dedup:
            return known
        fate = fates[step]
        fail, hang, lands = fate[0], fate[1], fate[2]
        if fail is None or hang is None or lands is None:
            draw = self._random
            fail, hang, lands = draw(), draw(), draw()
        else:
            fate[0] = None  # the first execution spends the pre-drawn fate
        config = self._config
        if fail < config.failure_rate:
            self._faults["step_failure"] += 1
            return self._record(message, Outcome.FAILED, Effect.ACTION_FAILED)
        if hang < config.hang_rate:
            self._faults["hang"] += 1
            if lands < config.hang_lands:
                self._apply(message, data)
            return None
        return self._apply(message, data)

    def _apply(self, message: Envelope, data: Mapping[str, Any]) -> Outcome:
        if self._service.apply(message.operation, message.saga_id, data):
            return self._record(message, Outcome.SUCCEEDED, Effect.ACTION)
        return self._record(message, Outcome.FAILED, Effect.ACTION_FAILED)

    def _record(self, message: Envelope, outcome: Outcome, effect: str) -> Outcome:
        self._results[message.idempotency_key] = outcome
        self._effect(message, effect)
        return outcome

    def _compensate(self, message: Envelope, data: Mapping[str, Any], fate: StepFate) -> Outcome:
        key = message.idempotency_key
        if key in self._compensated and self._dedup:
            return Outcome.SUCCEEDED
        failing = fate[3]
        if failing is None:
            failing = self._random()
        else:
            fate[3] = None
        if failing < self._config.compensation_failure_rate:
            self._faults["compensation_failure"] += 1
            self._effect(message, Effect.COMPENSATION_FAILED)
            return Outcome.FAILED
        action_key = message.action_key
        assert action_key is not None
        if self._results.get(action_key) is Outcome.SUCCEEDED:
            self._service.undo(message.operation, message.saga_id, data)
            self._effect(message, Effect.COMPENSATION)
        else:
            if self._use_tombstones:
                self._tombstones.add(action_key)
            self._effect(message, Effect.COMPENSATION_NOOP)
        self._compensated.add(key)
        return Outcome.SUCCEEDED

    def _effect(self, message: Envelope, effect: str) -> None:
        self._trace.record(
            self._env.now, "effect", message.saga_id, self.name, message.step, effect
        )

    def _reply(self, message: Envelope, outcome: Outcome) -> None:
        network = self._network
        kind = (
            MessageKind.ACTION_REPLY
            if message.kind is MessageKind.EXECUTE
            else MessageKind.COMPENSATION_REPLY
        )
        network.send(
            Envelope(
                message_id=network.next_message_id(),
                kind=kind,
                saga_id=message.saga_id,
                causation_id=message.message_id,
                idempotency_key=message.idempotency_key,
                source=self.name,
                dest=ORCHESTRATOR,
                step=message.step,
                operation=message.operation,
                attempt=message.attempt,
                outcome=outcome,
            )
        )
