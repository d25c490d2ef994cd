"""The checkers, over hand-made histories: each property fires on a broken one, not on a clean one.

A history is a list of trace records ``(t, kind, saga_id, *fields)`` (see
:data:`sagafsm.sim.trace.RECORD_FIELDS`). :class:`History` writes them the way the simulator does:
saga and step transitions from the lifecycle tables, and the participants' ``effect`` records.
Domain invariants are scenario-specific and tested with the scenarios.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from sagafsm import SagaBuilder, SagaDefinition
from sagafsm.checks import (
    PROPERTIES,
    StreamingChecker,
    Violation,
    check_history,
    check_saga,
    format_record,
)
from sagafsm.history import EffectRecord, TransitionRecord, as_record
from sagafsm.history import LedgerEffect as Effect
from sagafsm.lifecycle import SAGA_LIFECYCLE, STEP_LIFECYCLE, LifecycleSpec
from sagafsm.sim import load_scenario, simulate
from sagafsm.sim.config import merge
from sagafsm.sim.coverage import Coverage
from sagafsm.sim.selfcheck import NO_FAULTS

Record = tuple[Any, ...]

THREE = (
    SagaBuilder("three", timeout=0.1)
    .step("reserve", participant="inventory", action="reserve", compensation="release")
    .step("charge", participant="payment", action="charge", compensation="refund")
    .step("ship", participant="shipping", action="ship", compensation="cancel")
    .build()
)
"""Three compensatable steps."""

PIVOTED = (
    SagaBuilder("pivoted", timeout=0.1)
    .step("reserve", participant="inventory", action="reserve", compensation="release")
    .pivot("charge", participant="payment", action="charge")
    .retriable("notify", participant="mailer", action="send")
    .build()
)
"""A compensatable step, the pivot, a retriable step."""

VERIFIED = (
    SagaBuilder("verified", timeout=0.1)
    .read_only("verify", participant="customers", action="verify_customer")
    .step("reserve", participant="inventory", action="reserve", compensation="release")
    .pivot("charge", participant="payment", action="charge")
    .retriable("ship", participant="shipping", action="ship")
    .build()
)
"""A read-only step first, then a compensatable step, the pivot, a retriable step."""


class History:
    """Writes one saga's records, a hundredth of a second apart."""

    def __init__(self, definition: SagaDefinition = THREE, saga_id: str = "s1") -> None:
        self.definition = definition
        self.saga_id = saga_id
        self.records: list[Record] = []
        self.t = 0.0

    def add(self, kind: str, *fields: Any, same_time: bool = False) -> History:
        if not same_time:
            self.t += 0.01
        self.records.append((round(self.t, 2), kind, self.saga_id, *fields))
        return self

    # -- raw records ---------------------------------------------------------------------------

    def start(self) -> History:
        self.add("start", self.definition.name)
        return self.saga("begin", "started", "pending")

    def saga(self, trigger: str, source: str, dest: str) -> History:
        return self.add("transition", None, trigger, source, dest)

    def step(self, name: str, trigger: str, source: str, dest: str) -> History:
        return self.add("transition", name, trigger, source, dest)

    def effect(self, step: str, effect: str, *, same_time: bool = False) -> History:
        participant = self.definition.steps[self.definition.index_of(step)].participant
        return self.add("effect", participant, step, effect, same_time=same_time)

    def finish(self, state: str, reason: str | None = None) -> History:
        return self.add("finish", state, reason)

    def send(self, step: str, message_type: str, operation: str) -> History:
        """The orchestrator sends ``step``'s participant a command (message ids count up)."""
        participant = self.definition.steps[self.definition.index_of(step)].participant
        sent = sum(1 for r in self.records if r[1] == "send")
        return self.add(
            "send", sent + 1, "orchestrator", participant, message_type, step, operation, 1, None
        )

    # -- what a correct run writes -------------------------------------------------------------

    def succeed(self, step: str) -> History:
        self.step(step, "send", "pending", "executing")
        self.effect(step, Effect.ACTION)
        return self.step(step, "succeed", "executing", "succeeded")

    def fail(self, step: str) -> History:
        self.step(step, "send", "pending", "executing")
        self.effect(step, Effect.ACTION_FAILED)
        return self.step(step, "fail", "executing", "failed")

    def give_up(self, step: str) -> History:
        """The action got no reply (it may have landed or not: the caller writes that)."""
        self.step(step, "send", "pending", "executing")
        return self.step(step, "give_up", "executing", "timed_out")

    def compensate(
        self, step: str, effect: str = Effect.COMPENSATION, *, source: str = "succeeded"
    ) -> History:
        self.step(step, "compensate", source, "compensating")
        self.send(step, "compensate", f"undo_{step}")
        self.effect(step, effect)
        return self.step(step, "compensated", "compensating", "compensated")

    def complete(self) -> History:
        self.saga("complete", "pending", "completed")
        return self.finish("completed")

    def abort(self) -> History:
        return self.saga("abort", "pending", "compensating")

    def failed(self) -> History:
        self.saga("compensated", "compensating", "failed")
        return self.finish("failed")

    # -- checking ------------------------------------------------------------------------------

    def check(self) -> list[Violation]:
        return check_saga(self.saga_id, self.records, self.definition)


def completed(definition: SagaDefinition = THREE, saga_id: str = "s1") -> History:
    """A clean completed saga."""
    history = History(definition, saga_id).start()
    for name in definition.step_names:
        history.succeed(name)
    return history.complete()


def failed_at_ship(saga_id: str = "s1") -> History:
    """A clean failed saga: ``ship`` failed, ``charge`` then ``reserve`` compensated."""
    history = History(THREE, saga_id).start().succeed("reserve").succeed("charge").fail("ship")
    return history.abort().compensate("charge").compensate("reserve").failed()


def properties(violations: list[Violation]) -> set[str]:
    return {v.property for v in violations}


def details(violations: list[Violation], prop: str) -> list[str]:
    return [v.detail for v in violations if v.property == prop]


# -- the clean shapes ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "history",
    [
        pytest.param(completed(), id="completed"),
        pytest.param(failed_at_ship(), id="failed"),
        pytest.param(completed(PIVOTED), id="pivot-completed"),
        pytest.param(completed(VERIFIED), id="read-only-completed"),
    ],
)
def test_a_clean_history_has_no_violation(history: History) -> None:
    """A completed saga, and a failed one compensated in reverse order, break nothing."""
    assert history.check() == []


def test_every_property_but_domain_invariants_is_tested_here() -> None:
    """The properties this file covers are exactly the per-saga ones the checkers know."""
    covered = {
        "termination",
        "single-run",
        "completed-exactly-once",
        "compensated-exactly-once",
        "reverse-order",
        "no-effect-after-compensation",
        "no-duplicate-effect",
        "declared-transitions",
        "pivot-rule",
        "read-only-untouched",
        "compensation-input",
        "outbox-rule",
    }
    # effect-before-event is a choreography extension: tests/test_choreography_sim.py shows it
    assert covered | {"domain-invariants", "effect-before-event"} == set(PROPERTIES)


# -- termination -----------------------------------------------------------------------------------


def test_a_saga_that_never_finishes_breaks_termination() -> None:
    """Every step succeeded but no finish record came: the saga never reached a final state."""
    history = History().start().succeed("reserve").succeed("charge").succeed("ship")
    violations = history.check()
    assert properties(violations) == {"termination"}
    assert details(violations, "termination") == ["the saga never reached a final state"]


def test_the_same_saga_with_its_finish_terminates() -> None:
    """The same history with its completion and finish record is clean."""
    history = History().start().succeed("reserve").succeed("charge").succeed("ship").complete()
    assert history.check() == []


def test_an_operator_required_saga_has_terminated() -> None:
    """Handing a saga to an operator is a final state: termination holds."""
    history = History().start().succeed("reserve").give_up("charge")
    history.saga("escalate", "pending", "operator_required").finish("operator_required", "unknown")
    assert history.check() == []


# -- single-run ------------------------------------------------------------------------------------


def test_a_saga_started_twice_breaks_single_run() -> None:
    """A second start record (a crash recovery that restarted the saga) is reported."""
    history = completed()
    history.records.insert(2, (history.records[1][0], "start", "s1", "three"))
    violations = history.check()
    assert properties(violations) == {"single-run"}
    assert details(violations, "single-run") == ["the saga was started 2 times"]


def test_a_saga_finished_twice_breaks_single_run() -> None:
    """A second finish record is reported, with both final states."""
    history = completed().finish("completed")
    violations = history.check()
    assert properties(violations) == {"single-run"}
    assert details(violations, "single-run") == [
        "the saga finished 2 times: ['completed', 'completed']"
    ]


def test_a_saga_never_started_breaks_single_run() -> None:
    """Records of a saga with no start record are reported too."""
    history = completed()
    del history.records[0]
    assert properties(history.check()) == {"single-run"}


# -- completed-exactly-once ------------------------------------------------------------------------


def test_a_completed_saga_with_an_action_missing_is_reported() -> None:
    """The saga says completed, but charge's participant never applied the action."""
    history = History().start().succeed("reserve")
    history.step("charge", "send", "pending", "executing")
    history.step("charge", "succeed", "executing", "succeeded")  # a reply no ledger backs
    history.succeed("ship").complete()
    violations = history.check()
    assert properties(violations) == {"completed-exactly-once"}
    [detail] = details(violations, "completed-exactly-once")
    assert "'charge'" in detail and "0 times" in detail


def test_a_completed_saga_with_an_action_applied_twice_is_reported() -> None:
    """Charging twice breaks completed-exactly-once (and, with it, no-duplicate-effect)."""
    history = History().start().succeed("reserve").succeed("charge")
    history.effect("charge", Effect.ACTION)
    history.succeed("ship").complete()
    violations = history.check()
    assert properties(violations) == {"completed-exactly-once", "no-duplicate-effect"}
    [detail] = details(violations, "completed-exactly-once")
    assert "'charge'" in detail and "2 times" in detail


@pytest.mark.parametrize("effect", [Effect.COMPENSATION, Effect.COMPENSATION_NOOP])
def test_a_completed_saga_with_a_compensation_is_reported(effect: str) -> None:
    """A completed saga must not have compensated anything, not even as a no-op."""
    history = History().start().succeed("reserve").effect("reserve", effect)
    history.succeed("charge").succeed("ship").complete()
    violations = history.check()
    # No move into compensating was committed either: the effect breaks the outbox rule too.
    assert properties(violations) == {"completed-exactly-once", "outbox-rule"}
    assert details(violations, "completed-exactly-once") == [
        "the saga completed but step 'reserve' was compensated"
    ]


def test_failed_actions_and_blocked_actions_do_not_count_as_applied() -> None:
    """Only ``action`` effects count: a failed first try then a landed retry is applied once."""
    history = History().start().succeed("reserve").succeed("charge")
    history.effect("charge", Effect.ACTION_FAILED)  # an earlier try's failure, recorded late
    history.succeed("ship").complete()
    assert history.check() == []


# -- compensated-exactly-once ----------------------------------------------------------------------


def test_a_failed_saga_with_a_landed_action_not_compensated_is_reported() -> None:
    """charge landed, the saga failed, and only reserve was undone."""
    history = History().start().succeed("reserve").succeed("charge").fail("ship")
    history.abort().step("charge", "compensate", "succeeded", "compensating")
    history.compensate("reserve").failed()
    violations = history.check()
    assert properties(violations) == {"compensated-exactly-once"}
    assert details(violations, "compensated-exactly-once") == [
        "the action of step 'charge' took effect but was compensated 0 times"
    ]


def test_a_timed_out_action_that_landed_must_be_compensated() -> None:
    """A hung action whose effect landed counts as landed even though no reply came."""
    history = History().start().succeed("reserve").give_up("charge").effect("charge", Effect.ACTION)
    history.abort().compensate("reserve").failed()
    violations = history.check()
    assert properties(violations) == {"compensated-exactly-once"}
    assert "'charge'" in details(violations, "compensated-exactly-once")[0]


def test_a_compensation_without_its_action_is_reported() -> None:
    """charge timed out without landing, yet its participant 'refunded' it: nothing to undo."""
    history = History().start().succeed("reserve").give_up("charge").abort()
    history.compensate("charge", Effect.COMPENSATION, source="timed_out")
    history.compensate("reserve").failed()
    violations = history.check()
    assert properties(violations) == {"compensated-exactly-once"}
    assert details(violations, "compensated-exactly-once") == [
        "step 'charge' was compensated but its action never took effect"
    ]


def test_a_compensation_applied_twice_is_reported() -> None:
    """Refunding twice breaks compensated-exactly-once and no-duplicate-effect."""
    history = History().start().succeed("reserve").succeed("charge").fail("ship").abort()
    history.compensate("charge").effect("charge", Effect.COMPENSATION)
    history.compensate("reserve").failed()
    violations = history.check()
    assert properties(violations) == {"compensated-exactly-once", "no-duplicate-effect"}
    assert details(violations, "compensated-exactly-once") == [
        "the action of step 'charge' took effect but was compensated 2 times"
    ]


def test_a_no_op_compensation_of_a_step_that_never_landed_is_fine() -> None:
    """charge timed out without landing; its compensation found nothing to undo: clean."""
    history = History().start().succeed("reserve").give_up("charge").abort()
    history.compensate("charge", Effect.COMPENSATION_NOOP, source="timed_out")
    history.compensate("reserve").failed()
    assert history.check() == []


def test_a_failed_compensation_try_then_a_successful_one_counts_once() -> None:
    """``compensation_failed`` has no effect: one failed try then a success is compensated once."""
    history = History().start().succeed("reserve").succeed("charge").fail("ship").abort()
    history.step("charge", "compensate", "succeeded", "compensating")
    history.effect("charge", Effect.COMPENSATION_FAILED)
    history.step("charge", "compensation_back_off", "compensating", "waiting_compensation_retry")
    history.step("charge", "compensation_retry", "waiting_compensation_retry", "compensating")
    history.effect("charge", Effect.COMPENSATION)
    history.step("charge", "compensated", "compensating", "compensated")
    history.compensate("reserve").failed()
    assert history.check() == []


# -- reverse-order ---------------------------------------------------------------------------------


def test_compensating_in_forward_order_is_reported() -> None:
    """reserve undone before charge: the detail lists the order."""
    history = History().start().succeed("reserve").succeed("charge").fail("ship").abort()
    history.compensate("reserve").compensate("charge").failed()
    violations = history.check()
    assert properties(violations) == {"reverse-order"}
    assert details(violations, "reverse-order") == [
        "steps were compensated in the order ['reserve', 'charge']"
    ]


def test_a_no_op_compensation_counts_for_the_order() -> None:
    """A no-op compensation of a later step after an earlier one is still out of order."""
    history = History().start().succeed("reserve").give_up("charge").abort()
    history.compensate("reserve")
    history.compensate("charge", Effect.COMPENSATION_NOOP, source="timed_out").failed()
    violations = history.check()
    assert properties(violations) == {"reverse-order"}
    assert "'charge'" in details(violations, "reverse-order")[0]


def test_a_retried_compensation_does_not_reorder() -> None:
    """Only a step's first compensation record places it: a repeat later is not out of order."""
    history = History().start().succeed("reserve").succeed("charge").fail("ship").abort()
    history.step("charge", "compensate", "succeeded", "compensating")
    history.effect("charge", Effect.COMPENSATION)
    history.step("reserve", "compensate", "succeeded", "compensating")
    history.effect("reserve", Effect.COMPENSATION)
    history.effect("charge", Effect.COMPENSATION_NOOP)  # a no-op repeat of charge's
    history.step("charge", "compensated", "compensating", "compensated")
    history.step("reserve", "compensated", "compensating", "compensated")
    history.failed()
    assert history.check() == []


# -- no-effect-after-compensation ------------------------------------------------------------------


def test_an_action_after_its_no_op_compensation_is_reported() -> None:
    """charge's action lands after its no-op compensation left a tombstone (then is undone)."""
    history = History().start().succeed("reserve").give_up("charge").abort()
    history.compensate("charge", Effect.COMPENSATION_NOOP, source="timed_out")
    history.effect("charge", Effect.ACTION)  # the late action, not blocked
    history.effect("charge", Effect.COMPENSATION)  # even undone, it took effect after the undo
    history.compensate("reserve").failed()
    violations = history.check()
    assert properties(violations) == {"no-effect-after-compensation"}
    assert details(violations, "no-effect-after-compensation") == [
        "the action of step 'charge' took effect after its compensation"
    ]


def test_an_action_after_its_no_op_compensation_left_in_place_is_reported_twice_over() -> None:
    """Left in place, the late action also breaks compensated-exactly-once."""
    history = History().start().succeed("reserve").give_up("charge").abort()
    history.compensate("charge", Effect.COMPENSATION_NOOP, source="timed_out")
    history.effect("charge", Effect.ACTION)
    history.compensate("reserve").failed()
    assert properties(history.check()) == {
        "no-effect-after-compensation",
        "compensated-exactly-once",
    }


def test_a_late_action_blocked_by_the_tombstone_is_fine() -> None:
    """The tombstone turns the late action into ``action_blocked``: nothing took effect."""
    history = History().start().succeed("reserve").give_up("charge").abort()
    history.compensate("charge", Effect.COMPENSATION_NOOP, source="timed_out")
    history.effect("charge", Effect.ACTION_BLOCKED)
    history.compensate("reserve").failed()
    assert history.check() == []


def test_an_action_after_its_compensation_at_the_same_instant_is_reported() -> None:
    """Records at equal times are ordered by the trace: the later action is still after."""
    history = History().start().succeed("reserve").give_up("charge").abort()
    history.step("charge", "compensate", "timed_out", "compensating")
    history.effect("charge", Effect.COMPENSATION_NOOP)
    history.effect("charge", Effect.ACTION, same_time=True)  # right after, same instant
    history.effect("charge", Effect.COMPENSATION)
    history.step("charge", "compensated", "compensating", "compensated")
    history.compensate("reserve").failed()
    assert "no-effect-after-compensation" in properties(history.check())


# -- no-duplicate-effect ---------------------------------------------------------------------------


def test_an_action_applied_twice_in_a_failed_saga_is_reported() -> None:
    """A duplicate delivery applied reserve twice; one compensation does not hide it."""
    history = History().start().succeed("reserve").effect("reserve", Effect.ACTION)
    history.fail("charge").abort().compensate("reserve").failed()
    violations = history.check()
    assert properties(violations) == {"no-duplicate-effect"}
    assert details(violations, "no-duplicate-effect") == [
        "the action of step 'reserve' took effect 2 times"
    ]


def test_a_compensation_applied_twice_names_the_compensation() -> None:
    """The duplicate detail says which effect repeated."""
    history = History().start().succeed("reserve").fail("charge").abort()
    history.compensate("reserve").effect("reserve", Effect.COMPENSATION).failed()
    assert details(history.check(), "no-duplicate-effect") == [
        "the compensation of step 'reserve' took effect 2 times"
    ]


def test_repeated_no_op_and_failed_effects_are_not_duplicates() -> None:
    """Effects that change nothing (failed tries, blocked actions, no-op repeats) may repeat."""
    history = History().start().succeed("reserve").give_up("charge")
    history.effect("charge", Effect.ACTION_FAILED).effect("charge", Effect.ACTION_FAILED)
    history.abort().compensate("charge", Effect.COMPENSATION_NOOP, source="timed_out")
    history.effect("charge", Effect.COMPENSATION_NOOP)
    history.effect("charge", Effect.ACTION_BLOCKED).effect("charge", Effect.ACTION_BLOCKED)
    history.compensate("reserve").failed()
    assert history.check() == []


# -- declared-transitions --------------------------------------------------------------------------


def test_an_undeclared_transition_is_reported() -> None:
    """ship succeeding straight from pending (never sent) is not a row of the table."""
    history = History().start().succeed("reserve").succeed("charge")
    history.step("ship", "succeed", "pending", "succeeded")
    history.effect("ship", Effect.ACTION)
    history.complete()
    violations = history.check()
    # Never sent, yet acted on: the effect also precedes any committed move into executing.
    assert properties(violations) == {"declared-transitions", "outbox-rule"}
    assert details(violations, "declared-transitions") == [
        "step 'ship' took the undeclared transition 'succeed': pending -> succeeded"
    ]


def test_an_undeclared_saga_transition_is_reported() -> None:
    """A saga jumping from pending to failed without compensating is not declared."""
    history = History().start().fail("reserve")
    history.saga("compensated", "pending", "failed").finish("failed")
    violations = history.check()
    assert properties(violations) == {"declared-transitions"}
    assert details(violations, "declared-transitions") == [
        "the saga took the undeclared transition 'compensated': pending -> failed"
    ]


def test_a_transition_from_a_state_the_step_is_not_in_is_reported() -> None:
    """A declared row, but charge was never sent: its source is not its current state."""
    history = History().start().succeed("reserve")
    history.effect("charge", Effect.ACTION)
    history.step("charge", "succeed", "executing", "succeeded")
    history.succeed("ship").complete()
    violations = history.check()
    assert properties(violations) == {"declared-transitions", "outbox-rule"}
    assert details(violations, "declared-transitions") == [
        "step 'charge' moved from 'executing' while it was in 'pending'"
    ]


def test_a_saga_leaving_a_final_state_is_reported() -> None:
    """After completing, the saga 'aborts' from pending: it was in a final state."""
    history = completed().saga("abort", "pending", "compensating")
    violations = history.check()
    assert properties(violations) == {"declared-transitions"}
    assert details(violations, "declared-transitions") == [
        "the saga moved from 'pending' while it was in 'completed' (a final state)"
    ]


def test_a_step_leaving_a_final_state_is_reported() -> None:
    """A compensated step compensated again: no row leaves ``compensated``."""
    history = failed_at_ship().step("charge", "compensate", "compensated", "compensating")
    violations = history.check()
    assert properties(violations) == {"declared-transitions"}
    assert details(violations, "declared-transitions") == [
        "step 'charge' took the undeclared transition 'compensate': compensated -> compensating"
    ]


def test_a_step_re_entering_from_a_stale_state_names_the_final_state() -> None:
    """A failed step 'retried' as if it were waiting: it was in a final state."""
    history = History().start().succeed("reserve").fail("charge")
    history.step("charge", "retry", "waiting_retry", "executing")
    violations = history.check()
    assert "declared-transitions" in properties(violations)
    assert details(violations, "declared-transitions") == [
        "step 'charge' moved from 'waiting_retry' while it was in 'failed' (a final state)"
    ]


def test_retries_and_backoffs_are_declared() -> None:
    """A step that times out, backs off, retries and succeeds moves only along declared rows."""
    history = History().start().succeed("reserve")
    history.step("charge", "send", "pending", "executing")
    history.step("charge", "back_off", "executing", "waiting_retry")
    history.step("charge", "retry", "waiting_retry", "executing")
    history.effect("charge", Effect.ACTION)
    history.step("charge", "succeed", "executing", "succeeded")
    history.succeed("ship").complete()
    assert history.check() == []


# -- outbox-rule -----------------------------------------------------------------------------------


def test_an_action_recorded_before_its_step_was_committed_executing_breaks_outbox_rule() -> None:
    """A driver that published before committing: the participant's effect is in the trace
    (commit order) before the move that sends the command, although every effect balances."""
    history = History().start()
    history.effect("reserve", Effect.ACTION)
    history.step("reserve", "send", "pending", "executing")
    history.step("reserve", "succeed", "executing", "succeeded")
    history.succeed("charge").succeed("ship").complete()
    violations = history.check()
    assert properties(violations) == {"outbox-rule"}
    assert details(violations, "outbox-rule") == [
        "participant 'inventory' recorded action for step 'reserve' before the orchestrator "
        "committed the step executing"
    ]


def test_a_compensation_recorded_before_its_step_was_committed_compensating_breaks_it() -> None:
    history = History().start().succeed("reserve").fail("charge").abort()
    history.effect("reserve", Effect.COMPENSATION)
    history.step("reserve", "compensate", "succeeded", "compensating")
    history.step("reserve", "compensated", "compensating", "compensated")
    violations = history.failed().check()
    assert properties(violations) == {"outbox-rule"}
    assert "before the orchestrator committed the step compensating" in violations[0].detail


def test_effects_after_their_committed_moves_keep_the_outbox_rule() -> None:
    """The same saga in commit order is clean (a retry re-enters executing: still in order)."""
    history = History().start().succeed("reserve").fail("charge").abort()
    assert history.compensate("reserve").failed().check() == []


# -- pivot-rule ------------------------------------------------------------------------------------


def test_compensating_after_the_pivot_landed_is_reported() -> None:
    """charge (the pivot) landed, notify ran out of tries, and reserve was compensated."""
    history = History(PIVOTED).start().succeed("reserve").succeed("charge")
    history.step("notify", "send", "pending", "executing")
    history.effect("notify", Effect.ACTION_FAILED)
    history.step("notify", "fail", "executing", "failed")
    history.saga("escalate", "pending", "operator_required")
    history.compensate("reserve").finish("operator_required", "notify failed")
    violations = history.check()
    assert properties(violations) == {"pivot-rule"}
    assert details(violations, "pivot-rule") == [
        "the pivot 'charge' took effect, yet ['reserve'] were compensated"
    ]


def test_a_saga_failing_after_the_pivot_landed_is_reported() -> None:
    """Failing after the pivot breaks the pivot rule twice over: a compensation and a failure."""
    history = History(PIVOTED).start().succeed("reserve").succeed("charge").fail("notify")
    history.abort().compensate("reserve").failed()
    violations = history.check()
    assert properties(violations) == {"pivot-rule", "compensated-exactly-once"}
    assert sorted(details(violations, "pivot-rule")) == [
        "the pivot 'charge' took effect, yet ['reserve'] were compensated",
        "the pivot 'charge' took effect, yet the saga failed",
    ]
    # the pivot has no compensation: its landed action is also left un-undone
    assert details(violations, "compensated-exactly-once") == [
        "the action of step 'charge' took effect but was compensated 0 times"
    ]


def test_a_retriable_step_that_keeps_failing_after_the_pivot_escalates_cleanly() -> None:
    """Past the pivot, running out of tries goes to an operator with nothing compensated."""
    history = History(PIVOTED).start().succeed("reserve").succeed("charge")
    history.step("notify", "send", "pending", "executing")
    history.effect("notify", Effect.ACTION_FAILED)
    history.step("notify", "fail", "executing", "failed")
    history.saga("escalate", "pending", "operator_required")
    history.finish("operator_required", "notify kept failing")
    assert history.check() == []


def test_failing_before_the_pivot_may_compensate() -> None:
    """The pivot itself failed (no effect): compensating reserve and failing is the right path."""
    history = History(PIVOTED).start().succeed("reserve").fail("charge")
    history.abort().compensate("reserve").failed()
    assert history.check() == []


# -- read-only steps: accepted uncompensated; read-only-untouched ---------------------------------

VERIFIED_AS_COMPENSATABLE = (
    SagaBuilder("verified", timeout=0.1)
    .step("verify", participant="customers", action="verify_customer", compensation="unverify")
    .step("reserve", participant="inventory", action="reserve", compensation="release")
    .pivot("charge", participant="payment", action="charge")
    .retriable("ship", participant="shipping", action="ship")
    .build()
)
"""VERIFIED with its first step declared compensatable instead of read-only."""


def verified_failed_at_charge() -> History:
    """A clean failed saga: verify (read-only) and reserve landed, the pivot was declined, and
    only reserve is compensated."""
    history = History(VERIFIED).start().succeed("verify").succeed("reserve").fail("charge")
    return history.abort().compensate("reserve").failed()


def compensate_verify(history: History, effect: str | None = Effect.COMPENSATION_NOOP) -> History:
    """What the ``compensate-read-only`` mutant does: compensate verify too (``effect`` None: the
    compensation is sent but never reaches the ledger)."""
    history.step("verify", "compensate", "succeeded", "compensating")
    history.send("verify", "compensate", "undo_verify_customer")
    if effect is not None:
        history.effect("verify", effect)
    return history.step("verify", "compensated", "compensating", "compensated")


def test_a_landed_read_only_step_left_uncompensated_in_a_failed_saga_is_clean() -> None:
    """verify's action took effect and nothing undid it: a read-only step has nothing to undo."""
    history = verified_failed_at_charge()
    assert ("verify", Effect.ACTION) in {(r[4], r[5]) for r in history.records if r[1] == "effect"}
    assert history.check() == []


def test_the_same_step_declared_compensatable_must_be_compensated() -> None:
    """Only the step's kind excuses it: declared compensatable, the same ledger is a violation."""
    history = verified_failed_at_charge()
    history.definition = VERIFIED_AS_COMPENSATABLE
    violations = history.check()
    assert properties(violations) == {"compensated-exactly-once"}
    assert details(violations, "compensated-exactly-once") == [
        "the action of step 'verify' took effect but was compensated 0 times"
    ]


@pytest.mark.parametrize("ending", ["fail", "give_up"])
def test_a_read_only_step_that_fails_or_times_out_aborts_with_nothing_to_compensate(
    ending: str,
) -> None:
    """The first step, read-only, declined or got no reply: the saga fails with no compensation."""
    history = History(VERIFIED).start()
    getattr(history, ending)("verify")
    if ending == "give_up":
        history.effect("verify", Effect.ACTION)  # the hung verification did run
    assert history.abort().failed().check() == []


def test_a_read_only_step_past_the_pivot_changes_nothing_for_the_pivot_rule() -> None:
    """The pivot landed and the retriable step kept failing: escalating with verify untouched."""
    history = History(VERIFIED).start().succeed("verify").succeed("reserve").succeed("charge")
    history.step("ship", "send", "pending", "executing")
    history.effect("ship", Effect.ACTION_FAILED)
    history.step("ship", "fail", "executing", "failed")
    history.saga("escalate", "pending", "operator_required")
    assert history.finish("operator_required", "ship kept failing").check() == []


def test_compensating_a_read_only_step_is_reported() -> None:
    """The mutant's shape: verify compensated after reserve (in reverse order, as a no-op)."""
    history = compensate_verify(verified_failed_at_charge())
    violations = history.check()
    assert properties(violations) == {"read-only-untouched"}
    assert details(violations, "read-only-untouched") == [
        "read-only step 'verify' was compensated: 1 compensation sent, "
        "its participant's ledger shows ['compensation_noop']"
    ]


def test_a_compensation_sent_to_a_read_only_step_is_reported_even_if_it_never_lands() -> None:
    """The send record alone breaks the rule: the message was lost, the ledger shows nothing."""
    violations = compensate_verify(verified_failed_at_charge(), effect=None).check()
    assert details(violations, "read-only-untouched") == [
        "read-only step 'verify' was compensated: 1 compensation sent"
    ]


def test_a_compensation_effect_at_a_read_only_step_is_reported_without_a_send() -> None:
    """A ledger entry alone breaks it too (the participant undid a verification on its own)."""
    history = verified_failed_at_charge().effect("verify", Effect.COMPENSATION)
    assert details(history.check(), "read-only-untouched") == [
        "read-only step 'verify' was compensated: none sent, "
        "its participant's ledger shows ['compensation']"
    ]


def test_compensating_a_read_only_step_of_a_completed_saga_breaks_every_rule_it_touches() -> None:
    """A failed try at a read-only step is already one violation; a run one also undid part of a
    completed saga, after its pivot landed."""
    history = completed(VERIFIED).effect("verify", Effect.COMPENSATION_FAILED)
    # (no compensating move was committed for it: the outbox rule fires as well)
    assert properties(history.check()) == {"read-only-untouched", "outbox-rule"}
    history.effect("verify", Effect.COMPENSATION_NOOP)
    assert properties(history.check()) == {
        "read-only-untouched",
        "completed-exactly-once",
        "pivot-rule",
        "outbox-rule",
    }


def test_compensations_sent_to_compensatable_steps_are_not_flagged() -> None:
    """The clean failed saga sends two compensations, to compensatable steps: nothing fires."""
    history = failed_at_ship()
    assert sum(1 for r in history.records if r[1] == "send" and r[6] == "compensate") == 2
    assert history.check() == []


# -- compensation-input ----------------------------------------------------------------------------


def charge_compensation_tried_twice(effect: str) -> History:
    """ship failed; charge's compensation got ``effect`` on both tries, was given up, and the saga
    went to an operator."""
    history = History().start().succeed("reserve").succeed("charge").fail("ship").abort()
    history.step("charge", "compensate", "succeeded", "compensating")
    history.send("charge", "compensate", "refund").effect("charge", effect)
    history.step("charge", "compensation_back_off", "compensating", "waiting_compensation_retry")
    history.step("charge", "compensation_retry", "waiting_compensation_retry", "compensating")
    history.send("charge", "compensate", "refund").effect("charge", effect)
    history.step("charge", "compensation_give_up", "compensating", "compensation_failed")
    history.saga("escalate", "compensating", "operator_required")
    return history.finish("operator_required", "the compensation of step 'charge' kept failing")


def test_a_compensation_that_keeps_failing_is_handed_to_an_operator_cleanly() -> None:
    """Failed tries are the participant's bad luck, not a wrong input: no property breaks."""
    assert charge_compensation_tried_twice(Effect.COMPENSATION_FAILED).check() == []


def test_a_refused_compensation_breaks_compensation_input() -> None:
    """The same history, but the participant refused both tries: it was handed a wrong result."""
    violations = charge_compensation_tried_twice(Effect.COMPENSATION_REFUSED).check()
    assert properties(violations) == {"compensation-input"}
    assert details(violations, "compensation-input") == [
        "the participant of step 'charge' refused its compensation 2 times: "
        "it was handed a result its action never gave"
    ]


def test_a_refusal_is_reported_even_when_a_later_try_is_applied() -> None:
    """One refusal then an applied compensation: the saga failed cleanly, but the input was bad."""
    history = History().start().succeed("reserve").succeed("charge").fail("ship").abort()
    history.step("charge", "compensate", "succeeded", "compensating")
    history.effect("charge", Effect.COMPENSATION_REFUSED)
    history.step("charge", "compensation_back_off", "compensating", "waiting_compensation_retry")
    history.step("charge", "compensation_retry", "waiting_compensation_retry", "compensating")
    history.effect("charge", Effect.COMPENSATION)
    history.step("charge", "compensated", "compensating", "compensated")
    violations = history.compensate("reserve").failed().check()
    assert properties(violations) == {"compensation-input"}
    assert details(violations, "compensation-input") == [
        "the participant of step 'charge' refused its compensation 1 time: "
        "it was handed a result its action never gave"
    ]


def test_a_refusal_reads_plainly_in_the_violation_history() -> None:
    """The violation's history shows each refusal as a ledger line naming step and effect."""
    [violation] = charge_compensation_tried_twice(Effect.COMPENSATION_REFUSED).check()
    refusals = [line for line in violation.history if "compensation_refused" in line]
    assert len(refusals) == 2
    assert refusals[0].split()[1:] == [
        "effect",
        "participant=payment",
        "step=charge",
        "effect=compensation_refused",
    ]


# -- a finish in a state that is not final ---------------------------------------------------------


def test_a_finish_record_in_a_state_that_is_not_final_breaks_termination() -> None:
    """Only the saga lifecycle's final states end a saga: finishing while pending does not."""
    history = History().start().succeed("reserve").succeed("charge").succeed("ship")
    violations = history.finish("pending").check()
    assert properties(violations) == {"termination"}
    assert details(violations, "termination") == [
        "the saga finished in 'pending', not a final state"
    ]


# -- the transition check follows the lifecycle specs ----------------------------------------------

SPECS = {"saga": SAGA_LIFECYCLE, "step": STEP_LIFECYCLE}


@st.composite
def walks(draw: st.DrawFn, spec: LifecycleSpec[Any]) -> list[tuple[str, str, str]]:
    """A path along the spec's rows from its initial state: ``(trigger, source, dest)`` each."""
    state, path = spec.initial, []
    for _ in range(draw(st.integers(0, 10))):
        rows = [row for row in spec.transitions if row.source is state]
        if not rows:
            break
        row = draw(st.sampled_from(rows))
        path.append((row.trigger, row.source.value, row.dest.value))
        state = row.dest
    return path


def moves(lifecycle: str, path: list[tuple[str, str, str]]) -> History:
    """The path as transition records of the saga (``lifecycle`` "saga") or of step reserve."""
    history = History().add("start", "three")
    for trigger, source, dest in path:
        if lifecycle == "saga":
            history.saga(trigger, source, dest)
        else:
            history.step("reserve", trigger, source, dest)
    return history


def transition_details(history: History) -> list[str]:
    return details(history.check(), "declared-transitions")


@pytest.mark.parametrize("lifecycle", sorted(SPECS))
@given(data=st.data())
def test_every_walk_along_the_declared_rows_is_accepted(
    lifecycle: str, data: st.DataObject
) -> None:
    """Any path from the spec's initial state along its rows breaks no declared transition."""
    path = data.draw(walks(SPECS[lifecycle]), label="path")
    assert transition_details(moves(lifecycle, path)) == []


@pytest.mark.parametrize("lifecycle", sorted(SPECS))
@given(data=st.data())
def test_a_move_that_is_no_row_of_the_spec_is_reported(lifecycle: str, data: st.DataObject) -> None:
    """After a valid path, a move from the current state that the spec does not declare is flagged
    (and only that)."""
    spec = SPECS[lifecycle]
    path = data.draw(walks(spec), label="path")
    current = path[-1][2] if path else spec.initial.value
    trigger = data.draw(st.sampled_from(spec.triggers), label="trigger")
    dest = data.draw(st.sampled_from([s.value for s in spec.states]), label="dest")
    declared = {(r.trigger, r.source.value, r.dest.value) for r in spec.transitions}
    assume((trigger, current, dest) not in declared)
    where = "the saga" if lifecycle == "saga" else "step 'reserve'"
    operator = {(r.trigger, r.source.value, r.dest.value) for r in spec.operator}
    took = (
        f"the operator's transition {trigger!r}: {current} -> {dest}, "
        "with no operator's retry before it"
        if (trigger, current, dest) in operator
        else f"the undeclared transition {trigger!r}: {current} -> {dest}"
    )
    assert transition_details(moves(lifecycle, [*path, (trigger, current, dest)])) == [
        f"{where} took {took}"
    ]


@pytest.mark.parametrize("lifecycle", sorted(SPECS))
@given(data=st.data())
def test_a_declared_row_from_another_state_than_the_current_is_reported(
    lifecycle: str, data: st.DataObject
) -> None:
    """A declared row whose source is not where the lifecycle is (the spec's initial state before
    any move) is flagged, and named final if the lifecycle had ended."""
    spec = SPECS[lifecycle]
    path = data.draw(walks(spec), label="path")
    current = path[-1][2] if path else spec.initial.value
    row = data.draw(st.sampled_from([r for r in spec.transitions if r.source.value != current]))
    where = "the saga" if lifecycle == "saga" else "step 'reserve'"
    final = " (a final state)" if current in {s.value for s in spec.terminal} else ""
    move = (row.trigger, row.source.value, row.dest.value)
    assert transition_details(moves(lifecycle, [*path, move])) == [
        f"{where} moved from {row.source.value!r} while it was in {current!r}{final}"
    ]


# -- Violation, format_record ----------------------------------------------------------------------


def test_violations_carry_the_saga_and_its_history_lines() -> None:
    """Each violation names the saga and has one readable line per record of its history."""
    history = History().start().succeed("reserve").succeed("charge").fail("ship").abort()
    history.compensate("reserve").compensate("charge").failed()
    [violation] = history.check()
    assert violation.saga_id == "s1"
    assert violation.history == tuple(format_record(r) for r in history.records)
    assert len(violation.history) == len(history.records)
    effect_lines = [line for line in violation.history if " effect " in line]
    assert effect_lines[-1].split()[1:] == [
        "effect",
        "participant=payment",
        "step=charge",
        "effect=compensation",
    ]
    assert violation.to_json() == {
        "saga_id": "s1",
        "property": "reverse-order",
        "detail": "steps were compensated in the order ['reserve', 'charge']",
        "history": list(violation.history),
    }


def test_format_record_drops_the_saga_and_empty_fields() -> None:
    """A saga transition's line has no ``saga=`` and no ``step=None``."""
    line = format_record((1.5, "transition", "s9", None, "begin", "started", "pending"))
    assert line == "    1.5000  transition  trigger=begin source=started dest=pending"


# -- StreamingChecker and check_history ------------------------------------------------------------


def interleave(*histories: History) -> list[Record]:
    """Several sagas' records merged in time order (stable: ties keep each saga's order)."""
    merged = [r for h in histories for r in h.records]
    return sorted(merged, key=lambda r: r[0])


def test_a_saga_is_checked_when_it_is_forgotten() -> None:
    """The ``forget`` record checks the saga at once and drops its records."""
    broken = History().start().succeed("reserve").succeed("charge").fail("ship").abort()
    broken.compensate("reserve").compensate("charge").failed()
    checker = StreamingChecker(THREE)
    for record in broken.records:
        checker.observe(record)
    assert len(checker) == 1 and checker.checked == 0
    checker.observe((broken.t + 60, "forget", "s1"))
    assert len(checker) == 0 and checker.checked == 1
    assert properties(checker.violations) == {"reverse-order"}
    assert checker.finish() == checker.violations
    assert checker.checked == 1  # not checked a second time


def test_sagas_still_open_are_checked_at_finish() -> None:
    """Sagas without a forget record are checked by finish(), which empties the checker."""
    checker = StreamingChecker(THREE)
    for record in interleave(completed(saga_id="a"), History(saga_id="b").start()):
        checker.observe(record)
    assert checker.violations == [] and len(checker) == 2
    violations = checker.finish()
    assert len(checker) == 0 and checker.checked == 2
    assert [(v.saga_id, v.property) for v in violations] == [("b", "termination")]


def test_records_without_a_saga_are_ignored() -> None:
    """Run-wide records (a participant crash) belong to no saga."""
    checker = StreamingChecker(THREE)
    checker.observe((0.5, "crash", None, "payment"))
    checker.observe((0.6, "restart", None, "payment", 0))
    assert len(checker) == 0 and checker.finish() == []


def test_check_history_equals_check_saga_per_saga() -> None:
    """Over an interleaved run, check_history finds what check_saga finds saga by saga."""
    clean, failing = completed(saga_id="a"), failed_at_ship(saga_id="b")
    reordered = History(saga_id="c").start().succeed("reserve").succeed("charge").fail("ship")
    reordered.abort().compensate("reserve").compensate("charge").failed()
    unfinished = History(saga_id="d").start().succeed("reserve")
    twice = completed(saga_id="e").finish("completed")
    histories = (clean, failing, reordered, unfinished, twice)
    records = interleave(*histories)
    records.insert(len(records) // 2, (0.0, "crash", None, "orchestrator"))
    expected = [v for h in histories for v in check_saga(h.saga_id, h.records, THREE)]
    assert {(v.saga_id, v.property) for v in expected} == {
        ("c", "reverse-order"),
        ("d", "termination"),
        ("e", "single-run"),
    }
    found = check_history(records, THREE)
    key = lambda v: (v.saga_id, v.property, v.detail)  # noqa: E731
    assert sorted(found, key=key) == sorted(expected, key=key)


def test_max_reported_caps_stored_violations_but_counts_them_all() -> None:
    """Five unfinished sagas, two stored: counts still say five."""
    checker = StreamingChecker(THREE, max_reported=2)
    for index in range(5):
        for record in History(saga_id=f"s{index}").start().records:
            checker.observe(record)
    violations = checker.finish()
    assert len(violations) == 2
    assert checker.counts == {"termination": 5}
    assert checker.checked == 5


def test_records_after_forget_do_not_reopen_the_saga() -> None:
    """A late reply delivered after the saga was forgotten is not a new saga."""
    history = completed()
    history.add("forget")
    history.add("deliver", 99, "orchestrator")
    history.add("ignored", "StepSucceeded", "no running saga with that id")
    assert check_history(history.records, THREE) == []


def test_a_message_delivered_after_the_retention_is_no_ghost_saga() -> None:
    """A reply delayed longer than the retention (61 s > 60 s) is refused, not a new saga."""
    scenario = load_scenario("order_fulfillment")
    plan = {"sagas": 2, "seed": 0, "faults": {"reorder": 0.3, "reorder_delay": "const:61"}}
    result = simulate(scenario, scenario.config(merge(NO_FAULTS, plan)))
    assert result.violation_counts == {}


# -- typed records ---------------------------------------------------------------------------------


def broken_and_clean() -> list[History]:
    """Three sagas: compensated out of order, clean, and a read-only step compensated."""
    reordered = History(saga_id="a").start().succeed("reserve").succeed("charge").fail("ship")
    reordered.abort().compensate("reserve").compensate("charge").failed()
    touched = verified_failed_at_charge()
    touched.saga_id = "c"
    touched.records = [(r[0], r[1], "c", *r[3:]) for r in touched.records]
    return [reordered, failed_at_ship(saga_id="b"), compensate_verify(touched)]


def test_typed_records_are_checked_like_the_plain_tuples_they_stand_for() -> None:
    """check_saga and check_history give the same verdict on typed records as on plain ones."""
    for history in broken_and_clean():
        typed = [as_record(r) for r in history.records]
        assert check_saga(history.saga_id, typed, history.definition) == history.check()
    histories = broken_and_clean()
    plain = [r for h in histories[:2] for r in h.records]
    typed_run = [as_record(r) for r in plain]
    assert check_history(typed_run, THREE) == check_history(plain, THREE)
    assert {v.saga_id for v in check_history(plain, THREE)} == {"a"}


def test_a_malformed_record_is_refused_with_its_kind() -> None:
    """A record with a field missing is a ValueError that says what the kind needs."""
    history = completed()
    history.records[3] = history.records[3][:-1]
    assert history.records[3][1] == "effect"
    message = (
        "a record of kind 'effect' has 6 items .t, kind, saga, participant, step, effect., got 5"
    )
    with pytest.raises(ValueError, match=message):
        history.check()
    with pytest.raises(ValueError, match=message):
        check_history(history.records, THREE)


def test_the_checker_hands_each_history_on_with_its_transitions_typed() -> None:
    """on_checked sees the records the checks read already typed: coverage reads them by name."""
    seen: list[list[Any]] = []
    checker = StreamingChecker(THREE, on_checked=seen.append)
    history = failed_at_ship().add("deliver", 2, "payment")
    for record in [*history.records, (history.t + 60, "forget", "s1")]:
        checker.observe(record)
    [handed] = seen
    assert handed == history.records
    by_kind = {r[1]: type(r) for r in handed}
    assert by_kind["transition"] is TransitionRecord and by_kind["effect"] is EffectRecord
    assert by_kind["deliver"] is tuple  # traffic no check reads stays as the simulator wrote it
    coverage = Coverage()
    coverage.observe_history(handed)
    assert ("executing", "fail", "failed") in coverage.seen["step"]
    assert coverage.seen["saga"] == {
        ("started", "begin", "pending"),
        ("pending", "abort", "compensating"),
        ("compensating", "compensated", "failed"),
    }
    summary = coverage.summary()
    assert summary["saga"]["declared"] == len(SAGA_LIFECYCLE.transitions)
    assert summary["step"]["declared"] == len(STEP_LIFECYCLE.transitions)
    assert summary["saga"]["covered"] == 3


def test_coverage_from_the_checkers_moves_equals_coverage_from_every_record() -> None:
    """The simulator reads transition coverage from the checker's fold: the same rows as a
    listener that types every transition record of the run."""
    scenario = load_scenario("order_fulfillment")
    plan = {"sagas": 60, "seed": 4, "faults": {"loss": 0.1}, "participant": {"failure_rate": 0.2}}
    by_record = Coverage()
    result = simulate(scenario, scenario.config(merge(NO_FAULTS, plan)), observe=by_record.observe)
    assert result.coverage == by_record.summary()
    assert by_record.seen["step"] and result.coverage["step"]["covered"] > 5
