"""sagafsm.testing on two sagas: the checks pass on correct handlers, and catch a compensation
that does not undo, a participant without an inbox, and a runtime that publishes before it
commits; the virtual clock makes a five-minute timeout cost milliseconds."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from typing import Any

import pytest

from sagafsm import RetryPolicy, SagaBuilder, SagaDefinition
from sagafsm.errors import InvalidArgument, InvalidConfig
from sagafsm.runtime import crashpoints
from sagafsm.runtime.mutants import NoInboxHost, PublishBeforeCommitRuntime
from sagafsm.runtime.participant import ActionCall, CompensationCall, Participant, Refused
from sagafsm.testing import (
    INJECTED_REASON,
    RunOptions,
    SagaRun,
    check_crash_recovery,
    check_duplicate_delivery,
    check_failure_at_every_step,
    check_saga_handlers,
    run_saga,
)

ORDER = (
    SagaBuilder("order", timeout=300.0)
    .step("reserve", participant="inventory", action="reserve", compensation="release")
    .step("charge", participant="payment", action="charge", compensation="refund")
    .pivot("ship", participant="shipping", action="ship")
    .build()
)
"""Three steps with a pivot, and five-minute timeouts."""

TRIP = (
    SagaBuilder("trip", timeout=60.0)
    .read_only("screen", participant="fraud", action="screen")
    .step("book", participant="hotel", action="book", compensation="cancel")
    .pivot("pay", participant="bank", action="pay")
    .retriable("notify", participant="mail", action="send", retry=RetryPolicy(max_attempts=3))
    .build()
)
"""A read-only first step and a retriable last one."""


class Shop:
    """The participants' own state, the way a user's handlers keep it: each effect stored under
    the saga, so that a repeat of one command changes nothing (unless told to count)."""

    def __init__(self, *, undo: bool = True, counting: bool = False) -> None:
        self.undo = undo
        self.counting = counting
        self.held: dict[str, int] = {}
        self.charged: Counter[str] = Counter()
        self.shipped: set[str] = set()
        self.calls: Counter[str] = Counter()

    def order_participants(self) -> list[Participant]:
        inventory, payment, shipping = (
            Participant("inventory"), Participant("payment"), Participant("shipping")
        )  # fmt: skip

        @inventory.action("reserve")
        async def reserve(call: ActionCall) -> Mapping[str, Any] | None:
            self.calls["reserve"] += 1
            self.held[call.saga_id] = call.data["qty"]
            return {"hold": call.saga_id}

        @inventory.compensation("release")
        async def release(call: CompensationCall) -> None:
            if self.undo:
                self.held.pop(call.saga_id, None)

        @payment.action("charge")
        async def charge(call: ActionCall) -> Mapping[str, Any] | None:
            self.calls["charge"] += 1
            if self.counting:
                self.charged[call.saga_id] += call.data["amount"]
            else:
                self.charged[call.saga_id] = call.data["amount"]
            return {"payment": f"p-{call.saga_id}"}

        @payment.compensation("refund")
        async def refund(call: CompensationCall) -> None:
            self.charged.pop(call.saga_id, None)

        @shipping.action("ship")
        async def ship(call: ActionCall) -> Mapping[str, Any] | None:
            self.shipped.add(call.saga_id)
            return {}

        return [inventory, payment, shipping]

    def probe(self, run: SagaRun) -> Iterator[str]:
        """Stock and money balance: a failed saga holds and charges nothing, a completed one
        holds its stock and was charged its amount once."""
        saga = run.saga_id
        if run.state == "failed":
            if saga in self.held:
                yield f"saga {saga} failed but still holds {self.held[saga]} items"
            if self.charged.get(saga):
                yield f"saga {saga} failed but is still charged {self.charged[saga]}"
        elif run.state == "completed" and self.charged[saga] != run.data["amount"]:  # type: ignore[index]
            yield f"saga {saga} was charged {self.charged[saga]}, not {run.data['amount']}"  # type: ignore[index]


DATA = {"qty": 2, "amount": 30}


def trip_participants(notify_failures: int = 0) -> list[Participant]:
    fraud, hotel, bank, mail = (Participant(n) for n in ("fraud", "hotel", "bank", "mail"))
    sent: Counter[str] = Counter()

    @fraud.action("screen")
    async def screen(call: ActionCall) -> Mapping[str, Any] | None:
        return {"score": 1}

    @hotel.action("book")
    async def book(call: ActionCall) -> Mapping[str, Any] | None:
        return {"room": 12}

    @hotel.compensation("cancel")
    async def cancel(call: CompensationCall) -> None:
        return None

    @bank.action("pay")
    async def pay(call: ActionCall) -> Mapping[str, Any] | None:
        return {"paid": True}

    @mail.action("send")
    async def send(call: ActionCall) -> Mapping[str, Any] | None:
        sent[call.saga_id] += 1
        if sent[call.saga_id] <= notify_failures:
            raise Refused("mail server busy")
        return {}

    return [fraud, hotel, bank, mail]


def test_correct_order_handlers_pass_every_check() -> None:
    """Three checks, every run clean: four failure runs, four duplicated ones, and a crash run
    for every hit of every crash point, each of which fired."""
    shop = Shop()
    report = check_saga_handlers(ORDER, shop.order_participants(), DATA, probe=shop.probe)
    assert report.ok
    assert [run.label for run in report.failures.runs] == [
        "clean", "failure at step reserve", "failure at step charge", "failure at step ship"
    ]  # fmt: skip
    by_label = {run.label: run for run in report.failures.runs}
    assert by_label["failure at step charge"].compensated == ("reserve",)
    assert by_label["failure at step ship"].compensated == ("charge", "reserve")
    assert INJECTED_REASON in (by_label["failure at step ship"].reason or "")
    assert all(run.duplicated for run in report.duplicates.runs)
    counted, *crashed = report.crashes.runs
    assert set(counted.hits) == set(crashpoints.CRASH_POINTS)
    assert len(crashed) == sum(counted.hits.values()) >= 15
    assert all(run.crashed == (run.crash[0],) for run in crashed if run.crash)
    assert crashpoints.armed() == {}


def test_a_read_only_step_is_never_compensated_and_a_retriable_one_is_retried() -> None:
    """Failing the read-only first step compensates nothing; failing the retriable last step
    once retries it under a fresh key and the saga completes."""
    report = check_failure_at_every_step(TRIP, trip_participants())
    runs = {run.label: run for run in report.runs}
    screen = runs["failure at step screen"]
    assert screen.state == "failed" and screen.compensated == ()
    assert runs["failure at step book"].compensated == ()
    assert runs["failure at step pay"].compensated == ("book",)
    notify = runs["failure at step notify"]
    assert notify.state == "completed" and notify.ledger("notify") == ["action_failed", "action"]
    check_duplicate_delivery(TRIP, trip_participants())
    check_crash_recovery(TRIP, trip_participants())


def test_a_retriable_step_with_one_try_ends_with_an_operator() -> None:
    """With max_attempts=1 the definition says a failed retriable step needs an operator: the
    check expects exactly that."""
    once = SagaDefinition(
        name="once",
        steps=[*TRIP.steps[:3], TRIP.steps[3].__class__(
            name="notify", participant="mail", action="send", kind=TRIP.steps[3].kind,
            retry=RetryPolicy(max_attempts=1),
        )],
    )  # fmt: skip
    report = check_failure_at_every_step(once, trip_participants())
    assert report.runs[-1].state == "operator_required"


def test_a_five_minute_timeout_takes_milliseconds() -> None:
    """A ship that raises (no reply) is retried after its 300 s timeout and a 0.05 s back-off:
    two clock jumps."""
    shop = Shop()
    participants = shop.order_participants()
    flaky = Participant("shipping")
    tries = Counter[str]()

    @flaky.action("ship")
    async def ship(call: ActionCall) -> Mapping[str, Any] | None:
        tries["ship"] += 1
        if tries["ship"] == 1:
            raise RuntimeError("lost connection")
        return {}

    began = time.perf_counter()
    run = asyncio.run(run_saga(ORDER, [*participants[:2], flaky], DATA))
    assert run.state == "completed" and not run.violations
    assert run.jumps == 2 and run.virtual_seconds == pytest.approx(300.05)
    assert time.perf_counter() - began < 1.0


def test_a_compensation_that_does_not_undo_is_caught_by_the_probe() -> None:
    """The ledger says the release ran; only the user's probe sees the stock still held."""
    shop = Shop(undo=False)
    check_failure_at_every_step(ORDER, shop.order_participants(), DATA)  # the ledger is fine
    with pytest.raises(AssertionError) as caught:
        check_failure_at_every_step(ORDER, shop.order_participants(), DATA, probe=shop.probe)
    message = str(caught.value)
    assert "failure at step charge" in message
    assert "your probe: saga order-failure-at-step-charge failed but still holds 2 items" in message
    assert "2 of 4 runs went wrong" in message


def test_a_participant_without_an_inbox_is_caught_when_commands_come_twice() -> None:
    """NoInboxHost runs a repeated command again: the ledger shows two actions, and the probe
    sees a handler that is not idempotent charge twice."""
    shop = Shop(counting=True)
    options = RunOptions(host_class=NoInboxHost)
    with pytest.raises(AssertionError) as caught:
        check_duplicate_delivery(ORDER, shop.order_participants(), DATA, probe=shop.probe,
                                 options=options)  # fmt: skip
    message = str(caught.value)
    assert "[no-duplicate-effect] the action of step 'charge' took effect 2 times" in message
    assert "your probe: saga order-duplicated-clean was charged 60, not 30" in message
    shop = Shop(counting=True)  # the same handlers, with the inbox: one charge each
    check_duplicate_delivery(ORDER, shop.order_participants(), DATA, probe=shop.probe)


def test_a_runtime_that_publishes_before_committing_is_caught_at_a_crash_point() -> None:
    """Killed between its publish and its commit, the start was never stored, yet the
    reservation was made: a saga nobody started took effect."""
    options = RunOptions(runtime_class=PublishBeforeCommitRuntime)
    with pytest.raises(AssertionError) as caught:
        check_crash_recovery(ORDER, Shop().order_participants(), DATA, options=options)
    message = str(caught.value)
    assert "crash at orchestrator.before_commit #1" in message
    assert "[single-run] the saga was started 0 times" in message
    assert crashpoints.armed() == {}


def test_a_compensation_that_keeps_failing_is_reported_against_the_definition() -> None:
    """A refund that always refuses leaves the saga to an operator, not failed: the check says
    which run and what it expected."""
    participants = Shop().order_participants()
    payment = Participant("payment")
    payment.action("charge")(participants[1].actions["charge"])

    @payment.compensation("refund")
    async def refund(call: CompensationCall) -> None:
        raise Refused("the bank is closed")

    with pytest.raises(AssertionError) as caught:
        check_failure_at_every_step(ORDER, [participants[0], payment, participants[2]], DATA)
    message = str(caught.value)
    assert "- failure at step ship" in message
    assert "expected the saga to end failed, it ended operator_required" in message


def test_a_saga_that_never_ends_is_stopped_with_its_name() -> None:
    """A ship that never answers is retried by timeout until the jump cap stops the run."""
    participants = Shop().order_participants()
    mute = Participant("shipping")

    @mute.action("ship")
    async def ship(call: ActionCall) -> Mapping[str, Any] | None:
        raise RuntimeError("never answers")

    forever = (
        SagaBuilder("forever", timeout=300.0, retry=RetryPolicy(max_attempts=1000))
        .step("reserve", participant="inventory", action="reserve", compensation="release")
        .pivot("ship", participant="shipping", action="ship")
        .build()
    )
    options = RunOptions(max_jumps=5)
    with pytest.raises(AssertionError, match=r"saga 'forever-run' is still running .* 5 clock"):
        asyncio.run(run_saga(forever, [participants[0], mute], DATA, options=options))


def test_data_the_saga_fails_with_is_refused() -> None:
    """The clean run must complete; the check says so instead of judging failures."""
    participants = trip_participants(notify_failures=5)
    with pytest.raises(AssertionError, match="the clean run must complete"):
        check_failure_at_every_step(TRIP, participants)


def test_bad_calls_are_refused_before_anything_runs() -> None:
    """A missing handler, crash points armed from elsewhere, a call from async code."""
    with pytest.raises(InvalidConfig, match="no participant named 'shipping'"):
        check_failure_at_every_step(ORDER, Shop().order_participants()[:2], DATA)
    crashpoints.arm("orchestrator.after_commit", 1, action="raise")
    try:
        with pytest.raises(InvalidConfig, match="crash points are armed already"):
            check_crash_recovery(ORDER, Shop().order_participants(), DATA)
    finally:
        crashpoints.disarm()

    async def from_async_code() -> None:
        check_saga_handlers(ORDER, Shop().order_participants(), DATA)

    with pytest.raises(InvalidArgument, match="plain"):
        asyncio.run(from_async_code())


def test_a_start_acknowledged_before_a_crash_counts_as_accepted() -> None:
    """The runtime acknowledged the start, then a participant crashed before the driver looked:
    the run still says accepted (a crash before the acknowledgement says not)."""
    participants = Shop().order_participants()
    late = asyncio.run(run_saga(ORDER, participants, DATA, crash=("participant.before_commit", 1)))
    early = asyncio.run(run_saga(ORDER, participants, DATA, crash=("orchestrator.after_commit", 1)))
    assert late.crashed == ("participant.before_commit",) and late.accepted
    assert early.crashed == ("orchestrator.after_commit",) and not early.accepted
    assert late.state == early.state == "completed" and not late.violations + early.violations
