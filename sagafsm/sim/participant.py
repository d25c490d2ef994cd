"""A simulated participant: a capacity, a FIFO queue, a ledger.

Each operation costs one SimPy timeout with a callback (its service time), not a process and a
resource request: at most ``capacity`` operations are in service, the rest wait in arrival order,
and a finished operation hands its slot to the next waiting one after it has answered (so the
participant's random stream is drawn in the order a ``simpy.Resource`` would grant the slots).

The business logic is the scenario's :class:`~sagafsm.sim.scenario.Service`; around it the
participant does what a well-built service does and what faults break:

- **idempotency**: the first outcome of an idempotency key is kept, with the action's result or
  the failure's reason; a repeat (retry, duplicate) gets the same reply and changes nothing;
- **results**: the compensation undoes the action with the result the participant itself handed
  out (so it works when the orchestrator never got the reply), and is *refused* (no effect, a
  failed reply) if it comes with a result that is not that one;
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

import math
import random
from array import array
from collections import Counter, deque
from collections.abc import Callable, Mapping
from typing import Any, TypeAlias

import simpy

from .._validate import is_json_value, plain_json
from ..errors import InvalidConfig
from ..history import LedgerEffect
from ..messages import Message, MessageKind, Outcome, WireMessage, reply_to
from .config import ParticipantConfig
from .network import Network
from .scenario import Declined, Service
from .trace import Trace

__all__ = ["SimParticipant", "Fates", "FATE_SIZE", "Effect", "INJECTED"]

INJECTED = "injected failure"
"""The reason a failure reply gives when the fault plan, not the business, made it fail."""


Effect = LedgerEffect
"""The ``effect`` values a participant writes to its ledger (defined with the trace records)."""


Fates: TypeAlias = "array[float]"
"""One saga's pre-drawn uniforms, :data:`FATE_SIZE` per step in step order: ``fail, hang, hang
lands, compensation fails``. The first execution of a step spends its first three (sets the
first to NaN, :data:`SPENT`), the first compensation try the last; later tries draw afresh. One
array of doubles, not a list per step: a saga's fates are held as long as its idempotency
records, and this takes a quarter of the memory."""

FATE_SIZE = 4
SPENT = math.nan

Reply = tuple[Outcome, Mapping[str, Any] | None, str]
"""What a participant answered an action: outcome, result (on success), reason (on failure)."""

_SUCCEEDED, _FAILED = Outcome.SUCCEEDED, Outcome.FAILED
_COMPENSATED: Reply = (_SUCCEEDED, None, "")
_BLOCKED: Reply = (_FAILED, None, "cancelled: its compensation came first")


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
        saga_fates: Callable[[str], Fates | None],
        step_index: Callable[[str], int],
        *,
        dedup: bool = True,
        tombstones: bool = True,
        answer: Callable[[Message, Reply], None] | None = None,
    ) -> None:
        self.name = name
        self._answer_to = answer
        """Who hears the outcome of each operation: None, the orchestrator (a reply message);
        in a choreography, the participant's own roles (no message: it is local)."""
        self._env = env
        self._config = config
        self._service = service
        self._network = network
        self._trace = trace
        self._faults = faults
        self._service_time = config.service_time.sampler(rng)
        self._random = rng.random
        self._fates = saga_fates
        self._step_index = step_index
        self.capacity = config.capacity
        self._in_service = 0
        self._waiting: deque[tuple[Message, int]] = deque()
        """Operations waiting for a free slot, in arrival order, with the epoch they came in."""
        self._dedup = dedup  # False only for the no-dedup-participant mutant
        self._use_tombstones = tombstones  # False only for the no-tombstone mutant
        self._replies: dict[str, Reply] = {}
        """Action key -> the reply it got (with the result handed out)."""
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

    def receive(self, message: Message) -> None:
        if self._in_service < self.capacity:
            self._in_service += 1
            self._begin(message, self._epoch)
        else:
            self._waiting.append((message, self._epoch))
            self._queue_changed()

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
        self._queue_length = length = len(self._waiting)
        if length > self.max_queue:
            self.max_queue = length

    def forget(self, keys: list[str]) -> None:
        """Drop a long-finished saga's idempotency records (its retention ran out)."""
        for key in keys:
            self._replies.pop(key, None)
            self._tombstones.discard(key)
            self._compensated.discard(key)

    def _begin(self, message: Message, epoch: int) -> None:
        service_time = self._service_time()
        done = self._env.timeout(service_time, (message, epoch, service_time))
        done.callbacks.append(self._served)

    def _served(self, event: simpy.Event) -> None:
        message, epoch, service_time = event.value  # type: ignore[misc]
        self.busy_time += service_time
        self.operations += 1
        self._answer(message, epoch)
        # The slot goes to the next operation only now, after this one answered: a resource
        # grants it as this one's process carries on, and the next draws its service time later.
        if self._waiting:
            message, epoch = self._waiting.popleft()
            self._queue_changed()
            self._begin(message, epoch)
        else:
            self._in_service -= 1

    def _answer(self, message: Message, epoch: int) -> None:
        if epoch != self._epoch:
            return  # crashed while serving: rolled back, nobody answers
        fates = self._fates(message.saga_id)
        if fates is None:
            self._faults["expired"] += 1
            return  # the saga ended longer ago than the retention: a stale request is refused
        at = FATE_SIZE * self._step_index(message.step)
        if message.kind is MessageKind.EXECUTE:
            reply = self._execute(message, fates, at)
        else:
            reply = self._compensate(message, fates, at)
        if reply is not None:
            if self._answer_to is not None:
                self._answer_to(message, reply)
            else:
                self._reply(message, reply)

    # -- the ledger ----------------------------------------------------------------------------

    def _execute(self, message: Message, fates: Fates, at: int) -> Reply | None:
        key = message.idempotency_key
        if key in self._tombstones:
            self._effect(message, Effect.ACTION_BLOCKED)
            return _BLOCKED
        known = self._replies.get(key)
        if known is not None and self._dedup:
            return known
        fail = fates[at]
        if fail != fail:  # NaN: spent
            draw = self._random
            fail, hang, lands = draw(), draw(), draw()
        else:
            hang, lands = fates[at + 1], fates[at + 2]
            fates[at] = SPENT  # the first execution spends the pre-drawn fate
        config = self._config
        if fail < config.failure_rate:
            self._faults["step_failure"] += 1
            return self._record(message, (_FAILED, None, INJECTED), Effect.ACTION_FAILED)
        if hang < config.hang_rate:
            self._faults["hang"] += 1
            if lands < config.hang_lands:
                self._apply(message)
            return None
        return self._apply(message)

    def _apply(self, message: Message) -> Reply:
        operation = message.operation
        try:
            result = self._service.apply(operation, message.saga_id, message.data, message.results)
        except Declined as declined:
            return self._record(message, (_FAILED, None, declined.reason), Effect.ACTION_FAILED)
        if result is None:
            reason = f"{self.name} declined {operation}"
            return self._record(message, (_FAILED, None, reason), Effect.ACTION_FAILED)
        if (result.__class__ is not dict and not isinstance(result, Mapping)) or not is_json_value(
            result
        ):
            raise InvalidConfig(
                f"the {self.name!r} service's {operation}() returned {result!r}: a result must be "
                "a mapping of JSON data (or None, or raise Declined, for a definite failure)"
            )
        # A plain JSON copy, as the engine keeps it (a tuple becomes a list): what was handed out
        # stays what it was, whatever the service does next, and compares equal to what the
        # orchestrator hands back.
        return self._record(message, (_SUCCEEDED, plain_json(result), ""), Effect.ACTION)

    def _record(self, message: Message, reply: Reply, effect: str) -> Reply:
        self._replies[message.idempotency_key] = reply
        self._effect(message, effect)
        return reply

    def _compensate(self, message: Message, fates: Fates, at: int) -> Reply:
        key = message.idempotency_key
        if key in self._compensated and self._dedup:
            return _COMPENSATED
        action_key = message.action_key
        assert action_key is not None
        known = self._replies.get(action_key)
        handed_out = known[1] if known is not None else None
        claimed = message.action_result
        if claimed is not None and claimed != handed_out:
            # Checked before anything else, as a real service validates its input: undoing
            # with a result it never handed out would undo something else.
            self._effect(message, Effect.COMPENSATION_REFUSED)
            return (_FAILED, None, f"refused: {self.name} never handed out {dict(claimed)}")
        failing = fates[at + 3]
        if failing != failing:  # NaN: spent
            failing = self._random()
        else:
            fates[at + 3] = SPENT
        if failing < self._config.compensation_failure_rate:
            self._faults["compensation_failure"] += 1
            self._effect(message, Effect.COMPENSATION_FAILED)
            return (_FAILED, None, INJECTED)
        if known is not None and known[0] is _SUCCEEDED and handed_out is not None:
            self._service.undo(message.operation, message.saga_id, message.data, handed_out)
            self._effect(message, Effect.COMPENSATION)
        else:
            if self._use_tombstones:
                self._tombstones.add(action_key)
            self._effect(message, Effect.COMPENSATION_NOOP)
        self._compensated.add(key)
        return _COMPENSATED

    def _effect(self, message: Message, effect: str) -> None:
        self._trace.record(
            self._env.now, "effect", message.saga_id, self.name, message.step, effect
        )

    def _reply(self, message: Message, reply: Reply) -> None:
        network = self._network
        outcome, result, reason = reply
        network.send(
            reply_to(
                message,
                message_id=network.next_message_id(),
                source=self.name,
                outcome=outcome,
                result=result,
                reason=reason,
                make=WireMessage,
            )
        )
