"""A participant of a choreographed saga: its projected roles, driven by the events it receives.

Each participant hosts the roles the projection gives it (:func:`sagafsm.choreography.project`):
one per step it runs, and for the initiator the saga's outcome. What a role does is its lifecycle
(one table, through the adapter; a saga's role is only a state); around it the participant does
what a choreographed service must:

- **deduplicate by event id**: an event delivered twice is acknowledged and dropped;
- **run its own action and compensation** through its ledger (:class:`~.participant.SimParticipant`,
  the very one orchestration uses: idempotency keys, tombstones, fates, capacity), answered
  locally, with no message; then **emit** the event that says what happened, once it is recorded;
- **hold its own deadlines**: an action whose tries ran out with no answer may have landed, and a
  done step that hears nothing (no outcome, no event that undoes it) does not wait forever: both
  compensate, so a lost event cannot strand a saga;
- record each lifecycle move (``transition``), each declared ignore (``ignored``), and each
  event the table does not declare in the role's state as a move to where it stands, which
  ``declared-transitions`` reports.
"""

from __future__ import annotations

import enum
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any

import attrs
import simpy

from ..choreography.projection import DEADLINE_PASSED, Role, RoleRun, RoleState
from ..choreography.table import ChoreographyDefinition, ChoreographyStep, OutcomeReaction
from ..commands import action_key, compensation_key
from ..definition import RetryPolicy, StepKind
from ..messages import Envelope, Message, MessageKind, Outcome
from .choreography_bus import EventBus, EventMessage, WireKind
from .participant import Reply, SimParticipant
from .trace import Trace

__all__ = ["Tries", "Switches", "RoleHost"]

_MAX_COMPENSATION_TRIES = 100
"""A compensation is retried until it succeeds; past this many tries the role stays compensating
(the termination check reports it) rather than retry for ever."""


@attrs.frozen(kw_only=True)
class Tries:
    """How a participant tries its own step: a try's timeout, then its retry policy's."""

    timeout: float
    retry: RetryPolicy
    compensation_retry: RetryPolicy


@attrs.frozen(kw_only=True)
class Switches:
    """What a participant does right; each off only for a mutant (:mod:`.mutants`)."""

    dedup: bool = True
    deadlines: bool = True
    effect_before_event: bool = True


@attrs.define
class _Saga:
    runs: dict[str, RoleRun]
    seen: set[str] = attrs.field(factory=set)
    data: Mapping[str, Any] = attrs.field(factory=dict)
    results: dict[str, Any] = attrs.field(factory=dict)
    token: Counter[str] = attrs.field(factory=Counter)
    """Role -> bumped on every move: a timer armed before the last move is stale."""
    attempt: Counter[str] = attrs.field(factory=Counter)
    generation: Counter[str] = attrs.field(factory=Counter)
    compensation_tries: Counter[str] = attrs.field(factory=Counter)


class RoleHost:
    """One participant's roles in every open saga of a run."""

    def __init__(
        self,
        env: simpy.Environment,
        name: str,
        definition: ChoreographyDefinition,
        roles: tuple[Role, ...],
        consumers: Mapping[str, tuple[Role, ...]],
        bus: EventBus,
        trace: Trace,
        tries: Mapping[str, Tries],
        alive: Callable[[str], bool],
        on_outcome: Callable[[str, str], None],
        counts: Counter[tuple[str, str]],
        switches: Switches,
    ) -> None:
        self.name = name
        self._env = env
        self._roles = {role.name: role for role in roles}
        self._by_step = {role.step: role for role in roles if role.step is not None}
        self._steps = {s.name: s for s in definition.steps if s.name in self._by_step}
        self._compensations = {
            c.step: c for c in definition.compensations if c.step in self._by_step
        }
        self._outcomes: dict[str, OutcomeReaction] = {
            event: o for o in definition.outcomes for event in o.on
        }
        self._consumers = {
            event: tuple(r for r in who if r.name in self._roles)
            for event, who in consumers.items()
        }
        self._rows = {
            role.name: {(t.trigger, t.source): t.dest for t in role.spec.transitions}
            for role in roles
        }
        self._bus = bus
        self._trace = trace
        self._tries = tries
        self._alive = alive
        self._on_outcome = on_outcome
        self._counts = counts
        """``("step", "retry")`` and ``("step", "compensation_retry")`` -> tries made again:
        what the run's retry figures read, as they read an orchestrator's."""
        self._switches = switches
        self._sagas: dict[str, _Saga] = {}
        self.ledger: SimParticipant | None = None
        """The participant's ledger (None for an initiator that runs no step)."""

    # -- events in -----------------------------------------------------------------------------

    def receive(self, message: EventMessage) -> None:
        if message.kind is WireKind.ACK:
            self._bus.acknowledged(message)
            return
        self._bus.acknowledge(message)
        event = message.event
        if not self._alive(event.saga_id):
            return  # the saga ended longer ago than the retention: nothing left to do
        saga = self._saga(event.saga_id)
        if event.event_id in saga.seen:
            if self._switches.dedup:
                return
            self._act_again(event.saga_id, saga, event.name)  # the no-dedup mutant
            return
        saga.seen.add(event.event_id)
        saga.data = event.data.get("input", saga.data)
        saga.results.update(event.data.get("results", {}))
        for role in self._consumers.get(event.name, ()):
            self._fire(event.saga_id, saga, role, event.name, event.event_id)

    def start(self, saga_id: str, order: Mapping[str, Any], start: str) -> None:
        """The initiator starts a saga: its outcome role moves, then it emits the start event."""
        saga = self._saga(saga_id)
        saga.data = order
        (outcome,) = [r for r in self._roles.values() if r.step is None]
        self._fire(saga_id, saga, outcome, start, None)

    def forget(self, saga_id: str) -> list[str]:
        """Drop the saga (its retention ran out); returns the idempotency keys its steps used
        here, for the ledger to forget too."""
        saga = self._sagas.pop(saga_id, None)
        if saga is None:
            return []
        keys = []
        for role in self._by_step.values():
            step = role.step or ""
            keys += [action_key(saga_id, step, g) for g in range(saga.generation[role.name] + 1)]
            keys.append(compensation_key(saga_id, step))
        return keys

    def _saga(self, saga_id: str) -> _Saga:
        saga = self._sagas.get(saga_id)
        if saga is None:
            runs = {name: role.new_run() for name, role in self._roles.items()}
            saga = self._sagas[saga_id] = _Saga(runs)
        return saga

    # -- the lifecycle -------------------------------------------------------------------------

    def _fire(self, saga_id: str, saga: _Saga, role: Role, trigger: str, cause: str | None) -> None:
        run = saga.runs[role.name]
        source = run.state
        now = self._env.now
        if (trigger, source) not in self._rows[role.name]:
            reason = role.spec.ignored_reason(trigger, source)
            if reason is not None:
                self._trace.record(now, "ignored", saga_id, trigger, reason)
            else:  # undeclared: shown as a move that goes nowhere, for the checkers to judge
                self._trace.record(
                    now, "transition", saga_id, role.step, trigger, source.value, source.value
                )
            return
        role.fire(run, trigger, saga_id)
        saga.token[role.name] += 1
        self._trace.record(
            now, "transition", saga_id, role.step, trigger, source.value, run.state.value
        )
        if role.step is None:
            self._outcome_moved(saga_id, saga, trigger, run.state, cause)
        else:
            self._step_moved(saga_id, saga, role, run.state, cause)

    def _outcome_moved(
        self, saga_id: str, saga: _Saga, trigger: str, state: enum.Enum, cause: str | None
    ) -> None:
        if state.value == "pending":
            self._emit(saga_id, saga, trigger, cause)
            return
        outcome = self._outcomes[trigger]
        self._emit(saga_id, saga, outcome.event, cause)
        self._on_outcome(saga_id, state.value)

    def _step_moved(
        self, saga_id: str, saga: _Saga, role: Role, state: enum.Enum, cause: str | None
    ) -> None:
        step = self._steps[role.step or ""]
        if state is RoleState.ACTING:
            saga.attempt[role.name] = 1
            self._execute(saga_id, saga, role, step)
        elif state is RoleState.DONE:
            self._emit(saga_id, saga, step.success, cause)
            if role.deadline is not None and self._switches.deadlines:
                self._arm(saga_id, saga, role, role.deadline, "deadline")
        elif state is RoleState.FAILED:
            self._emit(saga_id, saga, step.failure or "", cause)
        elif state is RoleState.COMPENSATING:
            if not self._switches.effect_before_event:  # the mutant: announce, then undo
                self._fire(saga_id, saga, role, self._compensations[step.name].emits, cause)
            self._compensate(saga_id, saga, role, step)
        elif state is RoleState.COMPENSATED:
            self._emit(saga_id, saga, self._compensations[step.name].emits, cause)

    def _emit(self, saga_id: str, saga: _Saga, event: str, cause: str | None) -> None:
        self._bus.publish(
            self.name, saga_id, event, cause, {"input": saga.data, "results": dict(saga.results)}
        )

    # -- the participant's own work ------------------------------------------------------------

    def _execute(self, saga_id: str, saga: _Saga, role: Role, step: ChoreographyStep) -> None:
        assert self.ledger is not None
        generation = saga.generation[role.name]
        self.ledger.receive(
            Envelope(
                message_id=0,
                kind=MessageKind.EXECUTE,
                saga_id=saga_id,
                causation_id=None,
                idempotency_key=action_key(saga_id, step.name, generation),
                source=self.name,
                dest=self.name,
                step=step.name,
                operation=step.action,
                attempt=saga.attempt[role.name],
                data=saga.data,
                results=dict(saga.results),
            )
        )
        self._arm(saga_id, saga, role, self._tries[step.name].timeout, "try")

    def _compensate(self, saga_id: str, saga: _Saga, role: Role, step: ChoreographyStep) -> None:
        assert self.ledger is not None and step.compensation is not None
        saga.compensation_tries[role.name] += 1
        self.ledger.receive(
            Envelope(
                message_id=0,
                kind=MessageKind.COMPENSATE,
                saga_id=saga_id,
                causation_id=None,
                idempotency_key=compensation_key(saga_id, step.name),
                source=self.name,
                dest=self.name,
                step=step.name,
                operation=step.compensation,
                attempt=saga.compensation_tries[role.name],
                action_key=action_key(saga_id, step.name, saga.generation[role.name]),
                data=saga.data,
            )
        )

    def _act_again(self, saga_id: str, saga: _Saga, event: str) -> None:
        """The no-dedup mutant: a redelivered event runs the steps it starts once more, as a
        handler with no inbox would (under a new key: it cannot tell it saw the event)."""
        if self.ledger is None:
            return  # the initiator runs no step
        for role in self._consumers.get(event, ()):
            step = self._steps.get(role.step or "")
            if step is not None and step.on == event:
                saga.generation[role.name] += 1
                self.ledger.receive(
                    Envelope(
                        message_id=0,
                        kind=MessageKind.EXECUTE,
                        saga_id=saga_id,
                        causation_id=None,
                        idempotency_key=action_key(saga_id, step.name, saga.generation[role.name]),
                        source=self.name,
                        dest=self.name,
                        step=step.name,
                        operation=step.action,
                        data=saga.data,
                        results=dict(saga.results),
                    )
                )

    def answered(self, message: Message, reply: Reply) -> None:
        """The ledger's outcome of one operation (the hook :class:`SimParticipant` calls)."""
        saga = self._sagas.get(message.saga_id)
        role = self._by_step[message.step]
        if saga is None:
            return
        run, step = saga.runs[role.name], self._steps[message.step]
        outcome, result, _reason = reply
        current = action_key(message.saga_id, step.name, saga.generation[role.name])
        if message.kind is MessageKind.EXECUTE:
            if run.state is not RoleState.ACTING or message.idempotency_key != current:
                return  # an answer to an earlier try, or after the role moved on
            if outcome is Outcome.SUCCEEDED:
                saga.results[step.name] = result
                self._fire(message.saga_id, saga, role, step.success, None)
            elif step.kind is StepKind.RETRIABLE:
                saga.generation[role.name] += 1  # a definite failure: the next try, a new key
                self._fire(message.saga_id, saga, role, "retry", None)
            else:
                self._fire(message.saga_id, saga, role, step.failure or "", None)
            return
        if run.state is not RoleState.COMPENSATING:
            return  # the mutant already announced it; or a repeat
        if outcome is Outcome.SUCCEEDED:
            self._fire(message.saga_id, saga, role, self._compensations[step.name].emits, None)
        elif saga.compensation_tries[role.name] < _MAX_COMPENSATION_TRIES:
            self._counts["step", "compensation_retry"] += 1
            wait = self._tries[step.name].compensation_retry.backoff(
                saga.compensation_tries[role.name]
            )
            self._arm(message.saga_id, saga, role, wait, "compensate")

    # -- timers --------------------------------------------------------------------------------

    def _arm(self, saga_id: str, saga: _Saga, role: Role, delay: float, what: str) -> None:
        timer = self._env.timeout(delay, (saga_id, role.name, saga.token[role.name], what))
        timer.callbacks.append(self._timer_fired)

    def _timer_fired(self, timer: simpy.Event) -> None:
        saga_id, name, token, what = timer.value  # type: ignore[misc]  # what _arm put there
        saga = self._sagas.get(saga_id)
        if saga is None or saga.token[name] != token:
            return  # the role moved since (or the saga was forgotten)
        role = self._roles[name]
        step = self._steps[role.step or ""]
        if what == "deadline":
            self._fire(saga_id, saga, role, DEADLINE_PASSED, None)
        elif what == "compensate":
            self._compensate(saga_id, saga, role, step)
        else:
            self._try_timed_out(saga_id, saga, role, step)

    def _try_timed_out(self, saga_id: str, saga: _Saga, role: Role, step: ChoreographyStep) -> None:
        """No answer to a try: try again (same key); when the tries run out, a step that can be
        undone gives up and compensates (its action may have landed), a read-only one fails (it
        changed nothing); the pivot and retriable steps keep trying (they cannot be undone)."""
        tries = self._tries[step.name]
        attempt = saga.attempt[role.name]
        bounded = step.kind in (StepKind.COMPENSATABLE, StepKind.READ_ONLY)
        if bounded and attempt >= tries.retry.max_attempts:
            if not self._switches.deadlines or step.deadline is None:
                return  # no deadline: it waits for an answer that will not come
            trigger = DEADLINE_PASSED if step.kind.compensable else step.failure or ""
            self._fire(saga_id, saga, role, trigger, None)
            return
        saga.attempt[role.name] = attempt + 1
        self._counts["step", "retry"] += 1
        self._execute(saga_id, saga, role, step)
