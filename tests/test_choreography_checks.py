"""The checkers' choreography extensions, on hand-made histories of ``order_saga()``: each check
fires on a broken history with the line a reader gets, and stays quiet on a clean one.

A choreographed saga is judged by the same checkers as an orchestrated one, through the
:class:`~sagafsm._saga_fold.Steps` of :func:`~sagafsm.choreography.checking.choreography_steps`:
the roles' lifecycles, termination by quiescence, ``effect-before-event``, and the reverse order
the table implies. These tests run no simulation (they are in the mutation run's selection)."""

from __future__ import annotations

from typing import Any

import attrs
import pytest

from sagafsm import SagaBuilder
from sagafsm.checks import StreamingChecker, check_history
from sagafsm.choreography import order_saga
from sagafsm.choreography.checking import choreography_steps, undo_order
from sagafsm.choreography.examples import order_saga_as_written_unchecked

Record = tuple[Any, ...]

DEFINITION = (
    SagaBuilder("order_saga")
    .step("reserve_inventory", participant="inventory", action="reserve", compensation="release")
    .step("process_payment", participant="payment", action="charge", compensation="refund")
    .step("create_shipment", participant="shipping", action="ship", compensation="cancel")
    .build()
)
"""The orchestrated saga the checker is handed beside the choreography's Steps (its step names)."""

PARTICIPANT = {"reserve_inventory": "inventory", "process_payment": "payment",
               "create_shipment": "shipping"}  # fmt: skip


def history(*entries: tuple[Any, ...]) -> list[Record]:
    """Saga ``s0`` as the participants record it: a start, then each entry in order, a role's
    move ``(step or None, trigger, source, dest)`` or a ledger's effect ``(step, effect)``."""
    records: list[Record] = [(0.0, "start", "s0", "order_saga")]
    for entry in entries:
        if len(entry) == 4:
            records.append((0.0, "transition", "s0", *entry))
        else:
            step, what = entry
            records.append((0.0, "effect", "s0", PARTICIPANT[step], step, what))
    return records


def finished(records: list[Record]) -> list[Record]:
    """The records, then the finish the initiator's last move implies."""
    outcome = [r for r in records if r[1] == "transition" and r[3] is None][-1][6]
    return [*records, (1.0, "finish", "s0", outcome, None)]


def check(records: list[Record], steps: Any = None) -> dict[str, list[str]]:
    """What the checkers find, by property, with the choreography's Steps (made here, in the
    test, so that the mutation run sees the tables they are built from)."""
    found: dict[str, list[str]] = {}
    for v in check_history(records, DEFINITION, steps=steps or choreography_steps(order_saga())):
        found.setdefault(v.property, []).append(v.detail)
    return found


COMPLETED = [
    (None, "OrderCreated", "started", "pending"),
    ("reserve_inventory", "OrderCreated", "waiting", "acting"),
    ("reserve_inventory", "action"),
    ("reserve_inventory", "InventoryReserved", "acting", "done"),
    ("process_payment", "InventoryReserved", "waiting", "acting"),
    ("process_payment", "action"),
    ("process_payment", "PaymentProcessed", "acting", "done"),
    ("create_shipment", "PaymentProcessed", "waiting", "acting"),
    ("create_shipment", "action"),
    ("create_shipment", "ShipmentCreated", "acting", "done"),
    (None, "ShipmentCreated", "pending", "completed"),
    ("reserve_inventory", "OrderFulfilled", "done", "finished"),
    ("process_payment", "OrderFulfilled", "done", "finished"),
    ("create_shipment", "OrderFulfilled", "done", "finished"),
]
"""Each action recorded while its role acts: after the move into acting, before done."""

REFUNDED = [
    *COMPLETED[:8],  # up to the shipping role's move into acting
    ("create_shipment", "action_failed"),
    ("create_shipment", "ShipmentFailed", "acting", "failed"),
    ("process_payment", "ShipmentFailed", "done", "compensating"),
    ("process_payment", "compensation"),
    ("process_payment", "PaymentRefunded", "compensating", "compensated"),
    ("reserve_inventory", "PaymentRefunded", "done", "compensating"),
    ("reserve_inventory", "compensation"),
    ("reserve_inventory", "InventoryReleased", "compensating", "compensated"),
    (None, "InventoryReleased", "pending", "failed"),
]
"""The shipment failed: the payment is refunded, then the inventory released, as the table says
(its release starts on PaymentRefunded), each compensation recorded while its role compensates."""


def test_a_completed_and_a_compensated_choreography_are_clean() -> None:
    assert check(finished(history(*COMPLETED))) == {}
    assert check(finished(history(*REFUNDED))) == {}


def swapped(moves: list[tuple[Any, ...]], at: int) -> list[tuple[Any, ...]]:
    """The moves with entries ``at`` and ``at + 1`` in each other's place."""
    moves = [*moves]
    moves[at], moves[at + 1] = moves[at + 1], moves[at]
    return moves


@pytest.mark.parametrize(
    ("moves", "line"),
    [
        (
            swapped(COMPLETED, 2),
            "participant 'inventory' recorded action for step 'reserve_inventory' after its "
            "role had announced it (the role was already 'done')",
        ),
        (
            swapped(REFUNDED, 14),
            "participant 'inventory' recorded compensation for step 'reserve_inventory' after "
            "its role had announced it (the role was already 'compensated')",
        ),
    ],
    ids=["the reservation after InventoryReserved", "the release after InventoryReleased"],
)
def test_effect_before_event_catches_an_effect_recorded_after_its_announcement(
    moves: list[tuple[Any, ...]], line: str
) -> None:
    """The inventory's action, or its compensation, recorded after its role moved on: it had
    emitted the event first."""
    assert check(finished(history(*moves))) == {"effect-before-event": [line]}


def test_termination_by_quiescence_catches_a_role_left_done() -> None:
    """The saga completed, but the shipping role never heard it: it stands in 'done'."""
    assert check(finished(history(*COMPLETED[:-1]))) == {
        "termination": ["the role of step 'create_shipment' stopped in 'done', not a final state"]
    }


def test_quiescence_is_reported_beside_the_saga_s_own_termination() -> None:
    """No finish and two roles mid-way: the saga's line, then one line per role."""
    assert check(history(*COMPLETED[:7])) == {
        "termination": [
            "the saga never reached a final state",
            "the role of step 'reserve_inventory' stopped in 'done', not a final state",
            "the role of step 'process_payment' stopped in 'done', not a final state",
        ]
    }


def test_a_role_that_never_started_is_not_judged_by_quiescence() -> None:
    """The reservation failed and the order with it; the payment and shipping roles are still
    waiting for an event (OrderFailed, still on its way): they hold nothing."""
    moves = [
        (None, "OrderCreated", "started", "pending"),
        ("reserve_inventory", "OrderCreated", "waiting", "acting"),
        ("reserve_inventory", "action_failed"),
        ("reserve_inventory", "InventoryReservationFailed", "acting", "failed"),
        (None, "InventoryReservationFailed", "pending", "failed"),
    ]
    assert check(finished(history(*moves))) == {}


def test_without_the_choreography_switch_neither_extension_runs() -> None:
    """The same roles' tables with ``choreography`` off: an effect after its announcement and a
    role left mid-way are no longer reported (an orchestrator's saga ends when it says so)."""
    records = finished(history(*swapped(COMPLETED[:-1], 2)))
    assert set(check(records)) == {"effect-before-event", "termination"}
    assert check(records, attrs.evolve(choreography_steps(order_saga()), choreography=False)) == {}


def test_declared_transitions_reads_the_roles_tables() -> None:
    """A move the shipping role's table does not have (waiting straight to done, so no action
    landed either)."""
    moves = [*COMPLETED]
    moves[7:10] = [("create_shipment", "PaymentProcessed", "waiting", "done")]
    assert check(finished(history(*moves))) == {
        "completed-exactly-once": [
            "the saga completed but the action of step 'create_shipment' took effect 0 times"
        ],
        "declared-transitions": [
            "step 'create_shipment' took the undeclared transition 'PaymentProcessed': "
            "waiting -> done"
        ],
    }


def test_transition_coverage_names_each_role_s_lifecycle() -> None:
    """What coverage reads: every committed move under the lifecycle of the role that made it."""
    checker = StreamingChecker(DEFINITION, steps=choreography_steps(order_saga()))
    checker.observe_block(finished(history(*COMPLETED)))
    assert {lifecycle for lifecycle, *_ in checker.moves} == {
        "orders", "inventory/reserve_inventory", "payment/process_payment",
        "shipping/create_shipment",
    }  # fmt: skip
    assert ("payment/process_payment", "waiting", "InventoryReserved", "acting") in checker.moves
    assert ("orders", "pending", "ShipmentCreated", "completed") in checker.moves


def test_reverse_order_is_the_order_the_table_implies() -> None:
    """order_saga() releases the inventory on PaymentRefunded: refund first. Released first is
    out of order. The notes' table undoes both side by side, so it implies no order."""
    assert undo_order(order_saga()) == {("process_payment", "reserve_inventory")}
    assert undo_order(order_saga_as_written_unchecked()) == frozenset()
    released_first = [
        *REFUNDED[:10],
        ("reserve_inventory", "deadline passed", "done", "compensating"),
        ("reserve_inventory", "compensation"),
        ("reserve_inventory", "InventoryReleased", "compensating", "compensated"),
        ("process_payment", "ShipmentFailed", "done", "compensating"),
        ("process_payment", "compensation"),
        ("process_payment", "PaymentRefunded", "compensating", "compensated"),
        (None, "InventoryReleased", "pending", "failed"),
    ]
    assert check(finished(history(*released_first))) == {
        "reverse-order": [
            "steps were compensated in the order ['reserve_inventory', 'process_payment']: the "
            "table undoes 'reserve_inventory' only after 'process_payment'"
        ]
    }
