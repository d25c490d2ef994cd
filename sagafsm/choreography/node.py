"""One participant of a choreographed saga, sans-IO: its projected roles, driven by what it hears.

Rules for this module: it holds every rule a choreographed participant follows, and no I/O. It
reads no clock, draws no random number, sends nothing itself: what it decides goes out through a
:class:`Port` its driver implements, in the order it decides it. The simulator
(:mod:`sagafsm.sim.choreography_node`, over SimPy) and the runtime
(:mod:`sagafsm.runtime.choreography_host`, over a store and a transport) both drive it, so a rule
found in either driver is a rule in the wrong room.

Each participant hosts the roles the projection gives it (:func:`~sagafsm.choreography.project`):
one per step it runs, and for the initiator the saga's outcome. What a role does is its lifecycle
(one table, through the adapter; a saga's role is only a state in :class:`SagaRoles`); around it
the participant does what a choreographed service must:

- **deduplicate by event id**: an event delivered twice is dropped;
- **run its own action and compensation** (the driver's ledger: idempotency keys, tombstones),
  answered locally, with no message; then **emit** the event that says what happened, once the
  answer is in;
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
from collections.abc import Mapping
from typing import Any, Protocol

import attrs

from ..commands import action_key, compensation_key
from ..definition import RetryPolicy, StepKind
from ..messages import Envelope, Message, MessageKind, Outcome
from .events import ChoreographyEvent
from .projection import DEADLINE_PASSED, OutcomeState, Role, RoleRun, RoleState
from .table import ChoreographyDefinition, ChoreographyStep, OutcomeReaction

__all__ = [
    "Tries",
    "Switches",
    "SagaRoles",
    "Port",
    "RoleNode",
    "MAX_COMPENSATION_TRIES",
]

MAX_COMPENSATION_TRIES = 100
"""A compensation is retried until it succeeds; past this many tries the role stays compensating
(the termination check reports it) rather than retry for ever."""

Answer = tuple[Outcome, Any, str]
"""What the participant's ledger answered one operation: outcome, result, reason."""


@attrs.frozen(kw_only=True)
class Tries:
    """How a participant tries its own step: a try's timeout, then its retry policy's."""

    timeout: float
    retry: RetryPolicy
    compensation_retry: RetryPolicy


@attrs.frozen(kw_only=True)
class Switches:
    """What a participant does right; each off only for a mutant."""

    dedup: bool = True
    deadlines: bool = True
    effect_before_event: bool = True


@attrs.define
class SagaRoles:
    """One participant's state of one saga: its roles' states and what it has heard. Plain data
    (:meth:`to_json`), so that a runtime keeps it in a row and a restart reads it back."""

    runs: dict[str, RoleRun]
    seen: set[str] = attrs.field(factory=set)
    data: Mapping[str, Any] = attrs.field(factory=dict)
    results: dict[str, Any] = attrs.field(factory=dict)
    token: Counter[str] = attrs.field(factory=Counter)
    """Role -> bumped on every move: a timer armed before the last move is stale."""
    attempt: Counter[str] = attrs.field(factory=Counter)
    generation: Counter[str] = attrs.field(factory=Counter)
    compensation_tries: Counter[str] = attrs.field(factory=Counter)
    causes: dict[str, str | None] = attrs.field(factory=dict)
    """Role -> the id of the event that set it on its current course (None: its own deadline):
    what the events it emits next are caused by, its own action's answer in between."""

    def to_json(self) -> dict[str, Any]:
        return {
            "runs": {name: run.state.value for name, run in self.runs.items()},
            "seen": sorted(self.seen),
            "data": dict(self.data),
            "results": dict(self.results),
            "causes": dict(self.causes),
            **{
                name: dict(getattr(self, name))
                for name in ("token", "attempt", "generation", "compensation_tries")
            },
        }


class Port(Protocol):
    """Where a :class:`RoleNode`'s decisions go: its driver, which adds the time and the I/O."""

    def record(self, kind: str, saga_id: str, *fields: Any) -> None:
        """Append a trace record ``(now, kind, saga_id, *fields)``."""

    def emit(self, saga_id: str, name: str, cause: str | None, data: Mapping[str, Any]) -> None:
        """Publish event ``name`` (caused by event id ``cause``) to its subscribers."""

    def run(self, message: Envelope) -> None:
        """Hand an execute or compensate to the participant's ledger; its answer comes back
        through :meth:`RoleNode.answered` (or never)."""

    def arm(self, saga_id: str, role: str, token: int, delay: float, what: str) -> None:
        """Call :meth:`RoleNode.timer_fired` with these values ``delay`` seconds from now."""

    def outcome(self, saga_id: str, state: str) -> None:
        """The initiator announced the saga's outcome (``completed`` or ``failed``)."""


class RoleNode:
    """One participant's roles: the rules, over :class:`SagaRoles` its driver keeps."""

    def __init__(
        self,
        name: str,
        definition: ChoreographyDefinition,
        roles: tuple[Role, ...],
        consumers: Mapping[str, tuple[Role, ...]],
        tries: Mapping[str, Tries],
        port: Port,
        counts: Counter[tuple[str, str]],
        switches: Switches,
    ) -> None:
        self.name = name
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
        self._tries = tries
        self._port = port
        self._counts = counts
        """``("step", "retry")`` and ``("step", "compensation_retry")`` -> tries made again:
        what the run's retry figures read, as they read an orchestrator's."""
        self._switches = switches

    @property
    def runs_steps(self) -> bool:
        """Whether this participant runs a step (an initiator may only announce the outcome)."""
        return bool(self._steps)

    def terminal(self, role: str) -> frozenset[enum.Enum]:
        """The final states of role ``role``: once there it never moves again."""
        return self._roles[role].spec.terminal

    def new_saga(self) -> SagaRoles:
        return SagaRoles({name: role.new_run() for name, role in self._roles.items()})

    def saga_from_json(self, data: Mapping[str, Any]) -> SagaRoles:
        """The :class:`SagaRoles` that :meth:`SagaRoles.to_json` wrote."""
        states = {role.name: role.spec.states for role in self._roles.values()}
        return SagaRoles(
            runs={name: RoleRun(states[name](value)) for name, value in data["runs"].items()},
            seen=set(data["seen"]),
            data=data["data"],
            results=dict(data["results"]),
            token=Counter(data["token"]),
            attempt=Counter(data["attempt"]),
            generation=Counter(data["generation"]),
            compensation_tries=Counter(data["compensation_tries"]),
            causes=dict(data.get("causes", {})),
        )

    def keys(self, saga_id: str, saga: SagaRoles) -> list[str]:
        """The idempotency keys this participant's steps used in ``saga_id`` (for a ledger to
        forget once the saga's retention ran out)."""
        keys = []
        for role in self._by_step.values():
            step = role.step or ""
            keys += [action_key(saga_id, step, g) for g in range(saga.generation[role.name] + 1)]
            keys.append(compensation_key(saga_id, step))
        return keys

    # -- events in -----------------------------------------------------------------------------

    def received(self, saga: SagaRoles, event: ChoreographyEvent) -> None:
        """An event delivered here (perhaps again)."""
        saga_id = event.saga_id
        if event.event_id in saga.seen:
            if self._switches.dedup:
                return
            self._act_again(saga_id, saga, event.name)  # the no-dedup mutant
            return
        saga.seen.add(event.event_id)
        saga.data = event.data.get("input", saga.data)
        saga.results.update(event.data.get("results", {}))
        for role in self._consumers.get(event.name, ()):
            self._fire(saga_id, saga, role, event.name, event.event_id)

    def start(self, saga_id: str, saga: SagaRoles, order: Mapping[str, Any], start: str) -> None:
        """The initiator starts a saga: its outcome role moves, then it emits the start event."""
        saga.data = order
        (outcome,) = [r for r in self._roles.values() if r.step is None]
        self._fire(saga_id, saga, outcome, start, None)

    # -- the lifecycle -------------------------------------------------------------------------

    def _fire(
        self, saga_id: str, saga: SagaRoles, role: Role, trigger: str, cause: str | None
    ) -> None:
        run = saga.runs[role.name]
        source = run.state
        if (trigger, source) not in self._rows[role.name]:
            reason = role.spec.ignored_reason(trigger, source)
            if reason is not None:
                self._port.record("ignored", saga_id, trigger, reason)
            else:  # undeclared: shown as a move that goes nowhere, for the checkers to judge
                self._port.record(
                    "transition", saga_id, role.step, trigger, source.value, source.value
                )
            return
        role.fire(run, trigger, saga_id)
        saga.token[role.name] += 1
        saga.causes[role.name] = cause
        self._port.record("transition", saga_id, role.step, trigger, source.value, run.state.value)
        if role.step is None:
            self._outcome_moved(saga_id, saga, trigger, run.state, cause)
        else:
            self._step_moved(saga_id, saga, role, run.state, cause)

    def _outcome_moved(
        self, saga_id: str, saga: SagaRoles, trigger: str, state: enum.Enum, cause: str | None
    ) -> None:
        if state is OutcomeState.PENDING:
            self._emit(saga_id, saga, trigger, cause)
            return
        outcome = self._outcomes[trigger]
        self._emit(saga_id, saga, outcome.event, cause)
        self._port.outcome(saga_id, state.value)

    def _step_moved(
        self, saga_id: str, saga: SagaRoles, role: Role, state: enum.Enum, cause: str | None
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

    def _emit(self, saga_id: str, saga: SagaRoles, event: str, cause: str | None) -> None:
        self._port.emit(saga_id, event, cause, {"input": saga.data, "results": dict(saga.results)})

    # -- the participant's own work ------------------------------------------------------------

    def _execute(self, saga_id: str, saga: SagaRoles, role: Role, step: ChoreographyStep) -> None:
        self._port.run(self._action(saga_id, saga, role, step, saga.attempt[role.name]))
        self._arm(saga_id, saga, role, self._tries[step.name].timeout, "try")

    def _compensate(
        self, saga_id: str, saga: SagaRoles, role: Role, step: ChoreographyStep
    ) -> None:
        assert step.compensation is not None
        saga.compensation_tries[role.name] += 1
        self._port.run(
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

    def _action(
        self, saga_id: str, saga: SagaRoles, role: Role, step: ChoreographyStep, attempt: int
    ) -> Envelope:
        """The execute of ``step``'s current try (its key names the role's generation)."""
        return Envelope(
            message_id=0,
            kind=MessageKind.EXECUTE,
            saga_id=saga_id,
            causation_id=None,
            idempotency_key=action_key(saga_id, step.name, saga.generation[role.name]),
            source=self.name,
            dest=self.name,
            step=step.name,
            operation=step.action,
            attempt=attempt,
            data=saga.data,
            results=dict(saga.results),
        )

    def _act_again(self, saga_id: str, saga: SagaRoles, event: str) -> None:
        """The no-dedup mutant: a redelivered event runs the steps it starts once more, as a
        handler with no inbox would (under a new key: it cannot tell it saw the event)."""
        for role in self._consumers.get(event, ()):
            step = self._steps.get(role.step or "")
            if step is not None and step.on == event:
                saga.generation[role.name] += 1
                self._port.run(self._action(saga_id, saga, role, step, 1))

    def answered(self, saga: SagaRoles, message: Message, answer: Answer) -> None:
        """The ledger's answer to ``message`` (one :meth:`Port.run` handed it)."""
        role = self._by_step[message.step]
        run, step = saga.runs[role.name], self._steps[message.step]
        outcome, result, _reason = answer
        saga_id = message.saga_id
        cause = saga.causes.get(role.name)  # the answer goes on from what started the role
        current = action_key(saga_id, step.name, saga.generation[role.name])
        if message.kind is MessageKind.EXECUTE:
            if run.state is not RoleState.ACTING or message.idempotency_key != current:
                return  # an answer to an earlier try, or after the role moved on
            if outcome is Outcome.SUCCEEDED:
                saga.results[step.name] = result
                self._fire(saga_id, saga, role, step.success, cause)
            elif step.kind is StepKind.RETRIABLE:
                saga.generation[role.name] += 1  # a definite failure: the next try, a new key
                self._fire(saga_id, saga, role, "retry", cause)
            else:
                self._fire(saga_id, saga, role, step.failure or "", cause)
            return
        if run.state is not RoleState.COMPENSATING:
            return  # the mutant already announced it; or a repeat
        if outcome is Outcome.SUCCEEDED:
            self._fire(saga_id, saga, role, self._compensations[step.name].emits, cause)
        elif saga.compensation_tries[role.name] < MAX_COMPENSATION_TRIES:
            self._counts["step", "compensation_retry"] += 1
            wait = self._tries[step.name].compensation_retry.backoff(
                saga.compensation_tries[role.name]
            )
            self._arm(saga_id, saga, role, wait, "compensate")

    # -- timers --------------------------------------------------------------------------------

    def _arm(self, saga_id: str, saga: SagaRoles, role: Role, delay: float, what: str) -> None:
        self._port.arm(saga_id, role.name, saga.token[role.name], delay, what)

    def timer_fired(self, saga_id: str, saga: SagaRoles, name: str, token: int, what: str) -> None:
        """A timer :meth:`Port.arm` set is due (a stale one, armed before the role's last move,
        does nothing)."""
        if saga.token[name] != token:
            return  # the role moved since
        role = self._roles[name]
        step = self._steps[role.step or ""]
        if what == "deadline":
            self._fire(saga_id, saga, role, DEADLINE_PASSED, None)
        elif what == "compensate":
            self._compensate(saga_id, saga, role, step)
        else:
            self._try_timed_out(saga_id, saga, role, step)

    def _try_timed_out(
        self, saga_id: str, saga: SagaRoles, role: Role, step: ChoreographyStep
    ) -> None:
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
