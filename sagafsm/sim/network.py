"""The simulated network: latency per link, and the message faults of a fault plan.

Each message costs one SimPy timeout with a callback (no process per message). Every message draws
the same three uniforms from the fault stream (loss, duplicate, reorder) and one latency from the
latency stream, whatever happens to it; a duplicate's latency and a reordered message's extra delay
come from streams of their own. So turning one knob up does not reshuffle the other draws.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable
from typing import Any

import attrs
import simpy

from ..messages import ORCHESTRATOR, Carried, Envelope
from .config import SimulationConfig, TargetedFault
from .distributions import Distribution
from .trace import Trace

__all__ = ["Carried", "Network", "NetworkStatistics", "ORCHESTRATOR"]


@attrs.frozen(kw_only=True)
class NetworkStatistics:
    sent: int
    delivered: int
    dropped: int
    duplicated: int
    delayed: int


class Network:
    """Carries envelopes between named endpoints; knows which endpoints are down right now."""

    def __init__(
        self,
        env: simpy.Environment,
        config: SimulationConfig,
        latency_rng: random.Random,
        fault_rng: random.Random,
        trace: Trace,
        faults: Counter[str],
        duplicate_rng: random.Random,
        reorder_rng: random.Random,
    ) -> None:
        self._env = env
        self._trace = trace
        self._faults = faults
        plan = config.faults
        self._loss, self._duplicate, self._reorder = plan.loss, plan.duplicate, plan.reorder
        self._faults_until = plan.until if plan.until is not None else float("inf")
        self._random = fault_rng.random
        self._reorder_delay = plan.reorder_delay.sampler(reorder_rng)
        self._latency_rngs = (latency_rng, duplicate_rng)
        self._default_latency = (
            config.latency.sampler(latency_rng),
            config.latency.sampler(duplicate_rng),
        )
        self._link_specs = dict(config.links)
        self._latency: dict[str, tuple[Callable[[], float], Callable[[], float]]] = {}
        """Per link: (first copy's latency, a duplicate's latency)."""
        self._receivers: dict[str, Callable[[Any], None]] = {}
        self._down: dict[str, str] = {}
        """Endpoint -> why it cannot send or receive right now (partition, crash)."""
        self._next_id = 0
        self._targets: dict[str, dict[int, TargetedFault]] = {}
        self._counts: dict[str, int] = {}
        for fault in plan.targeted:
            if fault.message is not None:
                self._targets.setdefault(fault.saga, {})[fault.message] = fault
        self.sent = self.delivered = self.dropped = self.duplicated = self.delayed = 0

    def register(self, name: str, receiver: Callable[[Any], None]) -> None:
        self._receivers[name] = receiver
        spec: Distribution | None = self._link_specs.get(name)
        self._latency[name] = (
            (spec.sampler(self._latency_rngs[0]), spec.sampler(self._latency_rngs[1]))
            if spec is not None
            else self._default_latency
        )

    def set_down(self, name: str, reason: str | None) -> None:
        """Mark an endpoint unreachable (``reason``) or reachable again (None)."""
        if reason is None:
            self._down.pop(name, None)
        else:
            self._down[name] = reason

    def next_message_id(self) -> int:
        self._next_id += 1
        return self._next_id

    def send(self, message: Envelope | Carried) -> None:
        env, trace = self._env, self._trace
        now = env.now
        self.sent += 1
        # ``_value_`` is the member's plain attribute; ``.value`` is a slower descriptor
        outcome = message.outcome._value_ if message.outcome is not None else None
        trace.record(
            now,
            "send",
            message.saga_id,
            message.message_id,
            message.source,
            message.dest,
            message.kind._value_,
            message.step,
            message.operation,
            message.attempt,
            outcome,
        )
        lost = self._random() < self._loss
        doubled = self._random() < self._duplicate
        delayed = self._random() < self._reorder
        link = message.dest if message.dest != ORCHESTRATOR else message.source
        first_latency, duplicate_latency = self._latency[link]
        delay = first_latency()
        extra: float | None = None
        targeted_copy = False
        if message.saga_id in self._targets:
            count = self._counts[message.saga_id] = self._counts.get(message.saga_id, 0) + 1
            target = self._targets[message.saga_id].get(count)
            if target is not None:
                self._faults[f"targeted_{target.fault}"] += 1
                if target.fault == "drop":
                    self._drop(message, "targeted", count=False)
                    return
                targeted_copy = target.fault == "duplicate"
                if target.fault == "delay":
                    extra = target.delay
        down = self._down
        if down:  # mostly empty: no endpoint is down
            reason = down.get(message.source) or down.get(message.dest)
            if reason is not None:
                self._drop(message, reason)
                return
        if now < self._faults_until:
            if lost:
                self._drop(message, "loss")
                return
            if delayed and extra is None:
                extra = self._reorder_delay()
                self._faults["reorder"] += 1
        else:
            doubled = False
        if extra is not None:
            delay += extra  # only the first copy is held back
            self.delayed += 1
            trace.record(now, "delay", message.saga_id, message.message_id, extra)
        self._schedule(message, delay)
        if doubled or targeted_copy:
            self.duplicated += 1
            if doubled:
                self._faults["duplicate"] += 1
            trace.record(now, "duplicate", message.saga_id, message.message_id)
            self._schedule(message, duplicate_latency())

    def _schedule(self, message: Carried, delay: float) -> None:
        event = self._env.timeout(delay, message)
        event.callbacks.append(self._arrive)

    def _arrive(self, event: simpy.Event) -> None:
        message: Carried = event.value  # type: ignore[assignment]  # what _schedule put there
        # A message already on the wire still arrives if its sender crashed meanwhile; not if
        # its receiver is down, or its sender is cut off by a partition.
        down = self._down
        if down:
            reason = down.get(message.dest)
            if reason is None and down.get(message.source) == "participant_partition":
                reason = "participant_partition"
            if reason is not None:
                self._drop(message, reason)
                return
        self.delivered += 1
        self._trace.record(
            self._env.now, "deliver", message.saga_id, message.message_id, message.dest
        )
        self._receivers[message.dest](message)

    def _drop(self, message: Carried, reason: str, *, count: bool = True) -> None:
        self.dropped += 1
        if count:
            self._faults[reason] += 1
        self._trace.record(self._env.now, "drop", message.saga_id, message.message_id, reason)

    def statistics(self) -> NetworkStatistics:
        return NetworkStatistics(
            sent=self.sent,
            delivered=self.delivered,
            dropped=self.dropped,
            duplicated=self.duplicated,
            delayed=self.delayed,
        )
