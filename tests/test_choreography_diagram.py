"""Diagrams of a choreography, drawn from its table: the flow, one path, each role."""

from __future__ import annotations

from pathlib import Path

import pytest

from sagafsm.choreography import (
    choreography_from,
    flow_mermaid,
    order_saga,
    project,
    render_role_png,
    render_sequence_png,
    role_mermaid,
    sequence_mermaid,
)
from sagafsm.cli import main
from sagafsm.errors import InvalidArgument
from simulations.order_fulfillment import scenario

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_the_flow_has_every_event_and_every_reaction_of_the_table() -> None:
    """Each event is a node; each step and compensation a box with its participant; a failure is
    a dotted edge; each outcome is drawn from the events that announce it."""
    saga = order_saga()
    text = flow_mermaid(saga)
    for step in saga.steps:
        assert f"{step.participant}: {step.action}" in text
        assert f"e_{step.on} --> " in text
        assert f"-. fails .-> e_{step.failure}([{step.failure}])" in text
    for undo in saga.compensations:
        step = saga.step(undo.step)
        assert f"{step.participant}: {step.compensation}<br/><i>undoes {undo.step}</i>" in text
        assert f"([{undo.emits}])" in text
    assert "    e_InventoryReleased -- orders --> e_OrderFailed" in text
    assert "e_OrderFulfilled(((" in text
    assert '>"deadline of' not in text  # every compensation here is started by an event
    derived = flow_mermaid(choreography_from(scenario().definition))
    assert '>"deadline of send_confirmation"] -.-> c3' in derived


def test_a_sequence_shows_who_sends_what_to_whom_on_one_path() -> None:
    """The happy path ends with the outcome; a failed payment releases, then fails the order."""
    happy = sequence_mermaid(order_saga()).splitlines()
    assert happy[1:5] == [f"    participant {p}" for p in order_saga().participants]
    assert "    orders->>inventory: OrderCreated" in happy
    assert happy[-1] == "    Note over orders: announces OrderFulfilled (completed)"
    failed = sequence_mermaid(order_saga(), "process_payment").splitlines()
    assert failed[-4:] == [
        "    payment->>inventory: PaymentFailed",
        "    Note over inventory: release_reservation (undoes reserve_inventory)",
        "    inventory->>orders: InventoryReleased",
        "    Note over orders: announces OrderFailed (failed)",
    ]
    with pytest.raises(KeyError):
        sequence_mermaid(order_saga(), "no_such_step")


def test_each_role_is_drawn_through_the_lifecycle_diagram_code() -> None:
    """A role's Mermaid is sagafsm.diagram.mermaid over the states it reaches: the pivot's role
    has no compensation states, the inventory's does, with its deadline row."""
    projection = project(order_saga())
    inventory = role_mermaid(projection.role("inventory/reserve_inventory"))
    assert "    done --> compensating : deadline passed" in inventory
    assert "    waiting --> acting : OrderCreated" in inventory
    shipping = role_mermaid(projection.role("shipping/create_shipment"))
    assert "compensat" not in shipping
    assert shipping.startswith("stateDiagram-v2\n    [*] --> waiting\n")
    with pytest.raises(InvalidArgument):
        role_mermaid("inventory")  # type: ignore[arg-type]


def test_the_pngs_are_drawn() -> None:
    """Real PNGs for a sequence and a role."""
    saga = choreography_from(scenario().definition)
    assert render_sequence_png(saga, "create_shipment").startswith(PNG_MAGIC)
    role = project(saga).role("inventory/reserve_inventory")
    data = render_role_png(role)
    assert data.startswith(PNG_MAGIC) and len(data) > 5000


def test_the_cli_draws_a_scenario_as_a_choreography(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--style choreography`` prints the derived flow and writes the sequence PNG."""
    target = tmp_path / "order.png"
    assert main(["diagram", "order_fulfillment", "--style", "choreography", "-o", str(target)]) == 0
    out, _ = capsys.readouterr()
    assert out == flow_mermaid(choreography_from(scenario().definition))
    assert target.read_bytes().startswith(PNG_MAGIC)


def test_the_cli_refuses_a_choreography_of_a_lifecycle(capsys: pytest.CaptureFixture[str]) -> None:
    """A lifecycle has no choreography: one line, exit 2, nothing on stdout."""
    assert main(["diagram", "saga", "--style", "choreography"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.strip() == (
        "sagafsm diagram: error: --style choreography draws a scenario, not the saga lifecycle"
    )
