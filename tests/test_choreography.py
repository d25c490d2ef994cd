"""Declaring a choreography: the builder, the worked order saga, and choreography_from."""

from __future__ import annotations

import pytest

from sagafsm import InvalidDefinition, SagaBuilder, StepKind
from sagafsm.choreography import (
    ChoreographyBuilder,
    ChoreographyDefinition,
    ChoreographyEvent,
    ChoreographyStep,
    CompensationReaction,
    choreography_from,
    order_saga,
    order_saga_as_written,
    path_of,
)
from sagafsm.choreography.derive import EVENT_TRIES
from sagafsm.errors import InvalidArgument
from simulations.order_fulfillment import scenario as order_fulfillment
from simulations.travel_booking import scenario as travel_booking


def messages(builder: ChoreographyBuilder) -> list[str]:
    return [str(p) for p in builder.problems()]


def test_the_corrected_order_saga_builds_with_its_participants_in_order() -> None:
    """The corrected Template 3 is accepted; the initiator comes first among participants."""
    saga = order_saga()
    assert isinstance(saga, ChoreographyDefinition)
    assert saga.participants == ("orders", "inventory", "payment", "shipping")
    assert [s.name for s in saga.steps] == [
        "reserve_inventory",
        "process_payment",
        "create_shipment",
    ]
    assert saga.terminal_events == {"OrderFulfilled", "OrderFailed"}
    assert all(s.deadline == 5.0 for s in saga.steps) and saga.deadline == 5.0


def test_the_order_saga_as_written_is_refused_for_each_flaw_the_issue_names() -> None:
    """Each flaw of the notes' version is its own problem, naming the event or step at fault."""
    found = messages(order_saga_as_written())
    flaws = {
        "nothing handles a failed reservation": "event 'InventoryReservationFailed' is consumed "
        "by nothing",
        "no timeout anywhere": "step 'reserve_inventory' (inventory.reserve_items) has no deadline",
        "order failed with no order after the release": "event 'PaymentFailed' starts both the "
        "compensation of 'reserve_inventory' and the outcome 'OrderFailed'",
        "refund and release side by side": "event 'ShipmentFailed' starts both the compensation "
        "of 'process_payment' and the compensation of 'reserve_inventory'",
        "a failed shipment never fails the order": "event 'PaymentRefunded' is consumed by nothing",
    }
    for flaw, text in flaws.items():
        assert any(text in message for message in found), flaw
    with pytest.raises(InvalidDefinition) as caught:
        order_saga_as_written().build()
    assert str(caught.value) == found[0]


def test_the_corrected_saga_undoes_a_failed_shipment_in_reverse_order() -> None:
    """When the shipment fails: refund, then release, then OrderFailed, each caused by the last."""
    path = path_of(order_saga(), "create_shipment")
    events = [o.event for o in path.occurrences]
    assert events[-3:] == ["PaymentRefunded", "InventoryReleased", "OrderFailed"]
    last = len(events) - 1
    assert [path.occurrences[i].event for i in path.chain(last)][::-1] == events


def test_a_bad_field_is_refused_when_the_reaction_is_declared() -> None:
    """A bad event name, deadline or kind mix raises at once, before build()."""
    builder = ChoreographyBuilder("o", initiator="orders", start="Placed")
    with pytest.raises(InvalidDefinition, match="on= must be an event name"):
        builder.step(
            "a",
            on="not an event",
            participant="p",
            action="x",
            success="S",
            failure="F",
            compensation="u",
        )
    with pytest.raises(InvalidDefinition, match="deadline must be a positive number"):
        builder.step(
            "a",
            on="Placed",
            participant="p",
            action="x",
            success="S",
            failure="F",
            compensation="u",
            deadline=0,
        )
    with pytest.raises(InvalidDefinition, match="needs a failure event"):
        builder.step("a", on="Placed", participant="p", action="x", success="S", compensation="u")
    with pytest.raises(InvalidDefinition, match="emits no failure event"):
        builder.retriable("a", on="Placed", participant="p", action="x", success="S", failure="F")
    with pytest.raises(InvalidDefinition, match="needs a compensation"):
        builder.step("a", on="Placed", participant="p", action="x", success="S", failure="F")
    with pytest.raises(InvalidDefinition, match="must be an event name"):
        ChoreographyBuilder("o", initiator="orders", start="")
    with pytest.raises(InvalidDefinition, match="expected ChoreographyStep"):
        ChoreographyDefinition(name="o", initiator="i", start="S", steps=["a step"])


def test_a_definition_made_directly_is_validated_too() -> None:
    """ChoreographyDefinition itself refuses a bad table: the builder is not the only door."""
    step = ChoreographyStep(
        name="a",
        on="Go",
        participant="p",
        action="x",
        success="Done",
        failure="Failed",
        kind=StepKind.READ_ONLY,
    )
    with pytest.raises(InvalidDefinition, match="never completes"):
        ChoreographyDefinition(name="o", initiator="i", start="Go", steps=[step])


def test_an_event_carries_its_saga_its_own_id_and_its_cause() -> None:
    """The envelope names saga, event and causation; a bad one is refused at the door."""
    event = ChoreographyEvent(
        saga_id="s1", event_id="e2", causation_id="e1", name="InventoryReserved", source="inventory"
    )
    assert event.correlation_id == "s1"
    with pytest.raises(InvalidArgument):
        ChoreographyEvent(saga_id="s1", event_id="", causation_id=None, name="X", source="p")


# -- choreography_from ---------------------------------------------------------------------------


def test_the_order_fulfillment_scenario_derives_a_valid_choreography() -> None:
    """The read-only step is never compensated; failures undo what landed in reverse order."""
    saga = choreography_from(order_fulfillment().definition)
    assert saga.compensation_of("verify_customer") is None
    reserve = saga.compensation_of("reserve_inventory")
    assert reserve is not None
    assert reserve.on == ("ProcessPaymentFailed", "ProcessPaymentCompensated")
    last = saga.compensation_of("send_confirmation")
    assert last is not None and last.on == ()  # only its own deadline can start it
    failed = next(o for o in saga.outcomes if not o.completed)
    assert failed.on == (
        "VerifyCustomerFailed",
        "ReserveInventoryFailed",
        "ReserveInventoryCompensated",
    )
    path = path_of(saga, "send_confirmation")
    undone = [o.by.step for o in path.occurrences if isinstance(o.by, CompensationReaction)]
    assert undone == ["create_shipment", "process_payment", "reserve_inventory"]


def test_a_derived_pivot_stops_compensation_and_retriable_steps_cannot_fail() -> None:
    """Travel booking: after the pivot nothing is undone; retriable steps emit no failure."""
    saga = choreography_from(travel_booking().definition)
    kinds = {s.name: s for s in saga.steps}
    retriable = [s for s in saga.steps if s.kind is StepKind.RETRIABLE]
    assert retriable and all(s.failure is None for s in retriable)
    pivot = next(s for s in saga.steps if s.kind is StepKind.PIVOT)
    assert saga.compensation_of(pivot.name) is None and pivot.name in kinds
    after = {s.failure for s in saga.steps[list(kinds).index(pivot.name) + 1 :]}
    assert not any(after & set(c.on) for c in saga.compensations)
    with pytest.raises(KeyError):
        path_of(saga, retriable[0].name)  # no path on which it fails


def test_derived_deadlines_cover_the_rest_of_the_saga() -> None:
    """Each deadline is the longest the orchestrator could wait for the later steps, plus
    EVENT_TRIES deliveries of every event up to the outcome; an explicit deadline overrides them."""
    definition = (
        SagaBuilder("s", timeout=1.0)
        .step("a", participant="p", action="x", compensation="u")
        .step("b", participant="q", action="y", compensation="v")
        .build()
    )
    saga = choreography_from(definition)
    # b: 3 tries of 1s with 0.05 + 0.1 backoff; its compensation 5 tries with 0.05..0.4 backoff
    hop = EVENT_TRIES * 1.0  # each event's deliveries, one per shortest step timeout
    # a: a's success, b's success, the outcome; b: b's success, the outcome
    assert saga.step("a").deadline == pytest.approx(3.15 + 5.75 + 3 * hop)
    assert saga.step("b").deadline == pytest.approx(2 * hop)
    assert saga.deadline == pytest.approx(2 * (3.15 + 5.75) + 4 * hop)
    fixed = choreography_from(definition, deadline=2.0, initiator="shop")
    assert {s.deadline for s in fixed.steps} == {2.0} and fixed.initiator == "shop"


def test_step_names_that_camel_case_alike_get_distinct_events() -> None:
    """``a_b`` and ``a-b`` would both be ``AB``: the second gets a number, and it validates."""
    definition = (
        SagaBuilder("s")
        .step("a_b", participant="p", action="x", compensation="u")
        .step("a-b", participant="p", action="y", compensation="v")
        .build()
    )
    saga = choreography_from(definition)
    assert [s.success for s in saga.steps] == ["ABSucceeded", "AB2Succeeded"]


def test_choreography_from_refuses_what_is_not_a_definition() -> None:
    with pytest.raises(InvalidDefinition, match="expects a SagaDefinition"):
        choreography_from("order")  # type: ignore[arg-type]
