"""Properties of the engine under arbitrary definitions and arbitrary, hostile input."""

from __future__ import annotations

import json

from helpers import SagaPair
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule
from invariants import command_violations, effects_left, ledger_violations
from strategies import CURRENT, REPLY_KINDS, Adversary, Op, definitions, ops, scripts

from sagafsm import (
    CompensateStep,
    ExecuteStep,
    SagaDefinition,
    SagaInstance,
    SagaState,
    StepSucceeded,
)
from sagafsm.lifecycle import STEP_LIFECYCLE

PROPERTY = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def played(definition: SagaDefinition, operations: list[Op]) -> Adversary:
    """A saga started and driven through every operation."""
    run = Adversary(SagaInstance(definition, "s"))
    run.start()
    for op in operations:
        run.play(op)
    return run


def calm_bound(definition: SagaDefinition) -> int:
    """Events a well-behaved world needs at most: per step a backoff, a reply, a compensation."""
    return 4 * len(definition.steps) + 4


@PROPERTY
@given(definitions(), ops())
def test_no_input_makes_the_engine_raise_or_break_a_command_rule(
    definition: SagaDefinition, operations: list[Op]
) -> None:
    """Late, duplicate, unknown, conflicting replies and stale timers are all absorbed."""
    run = played(definition, operations)
    assert command_violations(definition, run.history) == []


@PROPERTY
@given(definitions(), ops())
def test_nothing_is_emitted_once_the_saga_finished(
    definition: SagaDefinition, operations: list[Op]
) -> None:
    """After SagaFinished every event yields no command, and the saga stays in its final state."""
    run = Adversary(SagaInstance(definition, "s"))
    run.start()
    final: SagaState | None = None
    for op in operations:
        commands = run.play(op)
        if final is not None:
            assert commands == []
            assert run.saga.state is final
        elif run.finished is not None:
            final = run.finished.state
            assert run.saga.finished
            assert run.live == {}


@PROPERTY
@given(definitions(), ops())
def test_every_saga_ends_once_the_world_calms_down(
    definition: SagaDefinition, operations: list[Op]
) -> None:
    """After any hostile prefix, if replies succeed, the saga is final within a bound."""
    run = played(definition, operations)
    for _ in range(calm_bound(definition)):
        if run.finished is not None:
            break
        event = run.calm_event()
        assert event is not None, f"hangs: nothing in flight in {run.saga.snapshot()}"
        run.feed(event)
    assert run.finished is not None, run.saga.snapshot()
    assert run.saga.finished


@PROPERTY
@given(st.data())
def test_participant_ledgers_show_the_design_semantics(data: st.DataObject) -> None:
    """With consistent participants: exactly-once effects, full undo on failure, pivot rule."""
    definition = data.draw(definitions())
    pair = SagaPair(
        definition,
        actions=data.draw(scripts(definition)),
        compensations=data.draw(scripts(definition)),
    )
    pair.start().run(max_events=200)
    assert pair.finished is not None
    assert ledger_violations(definition, pair.finished, pair.ledger) == []
    assert command_violations(definition, pair.history) == []


@PROPERTY
@given(st.data())
def test_a_saga_fails_only_after_compensating_every_landed_step(data: st.DataObject) -> None:
    """FAILED means the participants are back where they started; COMPLETED means all applied."""
    definition = data.draw(definitions())
    pair = SagaPair(definition, actions=data.draw(scripts(definition))).start().run(max_events=200)
    assert pair.finished is not None
    state = pair.finished.state
    executed = set(pair.sent_steps(ExecuteStep))
    if state is SagaState.COMPLETED:
        assert pair.ledger.actions() == list(definition.step_names)
    elif state is SagaState.FAILED:
        assert effects_left(definition, pair.ledger) == set()
        assert set(pair.sent_steps(CompensateStep)) <= executed
    else:
        assert pair.finished.reason


class SagaMachine(RuleBasedStateMachine):
    """One saga under a hostile network; invariants are the pure checkers in helpers."""

    def __init__(self) -> None:
        super().__init__()
        self.run: Adversary | None = None

    @initialize(definition=definitions())
    def start(self, definition: SagaDefinition) -> None:
        self.run = Adversary(SagaInstance(definition, "m"))
        self.run.start()

    @property
    def adversary(self) -> Adversary:
        assert self.run is not None
        return self.run

    @rule(kind=st.sampled_from(REPLY_KINDS), which=st.one_of(st.just(CURRENT), st.integers(0, 5)))
    def reply(self, kind: str, which: int) -> None:
        self.adversary.play((kind, which))

    @rule()
    def fire_next_timer(self) -> None:
        self.adversary.play(("timer", 0))

    @rule(which=st.integers(0, 20))
    def fire_a_stale_timer_or_replay(self, which: int) -> None:
        self.adversary.play(("stale_timer", which))
        self.adversary.play(("replay", which))

    @precondition(lambda self: self.run is not None and self.run.finished is None)
    @rule()
    def answer_calmly(self) -> None:
        event = self.adversary.calm_event()
        assert event is not None, "a running saga has nothing in flight"
        self.adversary.feed(event)

    @invariant()
    def commands_obey_the_rules(self) -> None:
        if self.run is not None:
            assert command_violations(self.run.saga.definition, self.run.history) == []

    @invariant()
    def a_running_saga_always_waits_on_exactly_one_timer(self) -> None:
        if self.run is not None and not self.run.saga.finished:
            assert len(self.run.live) == 1
            assert self.run.saga.timer_id in self.run.live

    @invariant()
    def the_armed_timer_is_the_one_the_spec_says_its_step_waits_on(self) -> None:
        saga = self.run.saga if self.run is not None else None
        if saga is not None and saga.timer_purpose is not None:
            state = saga.steps[saga.timer_step].state
            assert saga.timer_purpose is STEP_LIFECYCLE.waiting[state]

    @invariant()
    def a_failed_saga_left_no_compensatable_effect_in_place(self) -> None:
        if self.run is None or self.run.saga.state is not SagaState.FAILED:
            return
        saga = self.run.saga
        assert not any(s.state in STEP_LIFECYCLE.waiting for s in saga.steps)
        left = [
            d.name
            for d, s in zip(saga.definition.steps, saga.steps, strict=True)
            if d.kind.compensable and s.state in STEP_LIFECYCLE.landed
        ]
        assert left == []

    @invariant()
    def results_are_those_of_the_succeeded_steps_and_survive_a_restore(self) -> None:
        if self.run is None:
            return
        saga = self.run.saga
        replied = {e.step for e in self.run.events if isinstance(e, StepSucceeded)}
        assert set(saga.results) <= replied
        restored = SagaInstance.restore(saga.definition, json.loads(json.dumps(saga.snapshot())))
        assert restored.results == saga.results
        assert restored.snapshot() == saga.snapshot()


TestSagaMachine = SagaMachine.TestCase
TestSagaMachine.settings = settings(max_examples=40, stateful_step_count=30, deadline=None)
