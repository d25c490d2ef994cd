"""The order saga of the user's notes (their Template 3), choreographed: as written, and corrected.

``OrderCreated`` → inventory reserves → ``InventoryReserved`` → payment charges →
``PaymentProcessed`` → shipping creates the shipment → ``ShipmentCreated`` → the order service
announces ``OrderFulfilled``; a failed payment releases the inventory and fails the order; a failed
shipment refunds the payment and releases the inventory.

:func:`order_saga_as_written` is the notes' table, faithfully: nothing reacts to a failed
reservation, no participant holds a deadline, the order is failed at the same moment the release is
asked for (not after it), and a failed shipment starts the refund and the release side by side and
never fails the order. Its builder's :meth:`~sagafsm.choreography.ChoreographyBuilder.problems`
names each of these; :meth:`~sagafsm.choreography.ChoreographyBuilder.build` refuses it.
:func:`order_saga` is the same saga with each problem fixed.
"""

from __future__ import annotations

from .builder import ChoreographyBuilder
from .table import ChoreographyDefinition, unchecked_definition

__all__ = ["order_saga", "order_saga_as_written", "order_saga_as_written_unchecked"]


def _forward(builder: ChoreographyBuilder) -> ChoreographyBuilder:
    """The three steps, the same in both versions."""
    return (
        builder.step(
            "reserve_inventory",
            on="OrderCreated",
            participant="inventory",
            action="reserve_items",
            compensation="release_reservation",
            success="InventoryReserved",
            failure="InventoryReservationFailed",
        )
        .step(
            "process_payment",
            on="InventoryReserved",
            participant="payment",
            action="process_payment",
            compensation="refund_payment",
            success="PaymentProcessed",
            failure="PaymentFailed",
        )
        # no compensation in the notes: the shipment is the point of no return
        .pivot(
            "create_shipment",
            on="PaymentProcessed",
            participant="shipping",
            action="create_shipment",
            success="ShipmentCreated",
            failure="ShipmentFailed",
        )
        .completes("OrderFulfilled", on="ShipmentCreated")
    )


def order_saga_as_written() -> ChoreographyBuilder:
    """The notes' table as they wrote it: a builder whose ``build()`` raises, on purpose."""
    return (
        _forward(ChoreographyBuilder("order_saga", initiator="orders", start="OrderCreated"))
        # on PaymentFailed: release the inventory and fail the order, both at once
        .compensate("reserve_inventory", on="PaymentFailed", emits="InventoryReleased")
        .fails("OrderFailed", on="PaymentFailed")
        # on ShipmentFailed: refund and release, side by side; the order is never failed
        .compensate("process_payment", on="ShipmentFailed", emits="PaymentRefunded")
        .compensate("reserve_inventory", on="ShipmentFailed", emits="InventoryReleased")
    )


def order_saga_as_written_unchecked() -> ChoreographyDefinition:
    """**For the ``tutorial-choreography`` mutant only**: the notes' table as a definition that
    skipped validation (:func:`~sagafsm.choreography.table.unchecked_definition`), so the
    simulator can run it and the checkers show what goes wrong."""
    draft = order_saga_as_written()._draft()
    return unchecked_definition(
        draft.name, draft.initiator, draft.start, draft.steps, draft.compensations, draft.outcomes
    )


def order_saga(deadline: float = 5.0) -> ChoreographyDefinition:
    """The same saga, corrected: a failed reservation fails the order; every compensatable step
    holds a deadline; a failed shipment refunds, *then* releases, *then* fails the order; the order
    fails only once the inventory is back."""
    return (
        _forward(
            ChoreographyBuilder(
                "order_saga", initiator="orders", start="OrderCreated", deadline=deadline
            )
        )
        .compensate("process_payment", on="ShipmentFailed", emits="PaymentRefunded")
        .compensate(
            "reserve_inventory", on=("PaymentFailed", "PaymentRefunded"), emits="InventoryReleased"
        )
        .fails("OrderFailed", on=("InventoryReservationFailed", "InventoryReleased"))
        .build()
    )
