"""The participant registry: async handlers by name, and a check that every step of every
definition has its handlers before anything runs."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from sagafsm import SagaBuilder
from sagafsm.errors import InvalidArgument, InvalidConfig
from sagafsm.messages import Envelope, MessageKind
from sagafsm.runtime.participant import (
    ActionCall,
    CompensationCall,
    Participant,
    Refused,
    action_call,
    check_handlers,
)

ORDER = (
    SagaBuilder("order")
    .step("reserve", participant="inventory", action="reserve", compensation="release")
    .read_only("check", participant="fraud", action="score")
    .pivot("charge", participant="payment", action="charge")
    .build()
)


def participants() -> tuple[Participant, Participant, Participant]:
    inventory, fraud, payment = (
        Participant("inventory"),
        Participant("fraud"),
        Participant("payment"),
    )

    @inventory.action("reserve")
    async def reserve(call: ActionCall) -> Mapping[str, Any] | None:
        return {"reservation": call.saga_id}

    @inventory.compensation("release")
    async def release(call: CompensationCall) -> None:
        return None

    @fraud.action("score")
    async def score(call: ActionCall) -> Mapping[str, Any] | None:
        return {"score": 1}

    @payment.action("charge")
    async def charge(call: ActionCall) -> Mapping[str, Any] | None:
        raise Refused("card declined")

    return inventory, fraud, payment


def test_complete_handlers_pass_and_extra_participants_are_fine() -> None:
    """Every step covered (a read-only step needs no compensation); an unused participant is ok."""
    check_handlers([ORDER], [*participants(), Participant("email")])


def test_the_first_missing_action_handler_is_named() -> None:
    """A participant without the step's action: InvalidConfig naming saga, step and action."""
    inventory, fraud, _ = participants()
    payment = Participant("payment")
    with pytest.raises(InvalidConfig) as raised:
        check_handlers([ORDER], [inventory, fraud, payment])
    assert str(raised.value) == (
        "saga 'order' step 'charge': participant 'payment' has no handler for action 'charge'"
    )


def test_a_missing_compensation_handler_is_named() -> None:
    """A compensatable step's compensation must be registered too."""
    _, fraud, payment = participants()
    inventory = Participant("inventory")

    @inventory.action("reserve")
    async def reserve(call: ActionCall) -> Mapping[str, Any] | None:
        return {}

    with pytest.raises(InvalidConfig, match="has no handler for compensation 'release'"):
        check_handlers([ORDER], [inventory, fraud, payment])


def test_a_missing_participant_and_duplicate_names_are_refused() -> None:
    """No participant for a step, or two participants of one name: InvalidConfig."""
    inventory, fraud, payment = participants()
    with pytest.raises(InvalidConfig, match="step 'check': no participant named 'fraud'"):
        check_handlers([ORDER], [inventory, payment])
    with pytest.raises(InvalidConfig, match="two participants are named 'inventory'"):
        check_handlers([ORDER], [inventory, fraud, payment, Participant("inventory")])


def test_a_handler_must_be_a_coroutine_function() -> None:
    """A plain function is refused when it is decorated, not when it is first called."""
    inventory = Participant("inventory")
    with pytest.raises(InvalidArgument, match="must be an async function"):

        @inventory.action("reserve")  # type: ignore[type-var]
        def reserve(call: ActionCall) -> Mapping[str, Any] | None:
            return {}

    assert "reserve" not in inventory.actions


def test_a_name_is_registered_once() -> None:
    """A second handler for the same action is refused."""
    inventory, _, _ = participants()
    with pytest.raises(InvalidArgument, match="already has a handler for action 'reserve'"):

        @inventory.action("reserve")
        async def again(call: ActionCall) -> Mapping[str, Any] | None:
            return {}


def test_a_handler_cannot_change_the_saga_through_its_call() -> None:
    """data and results are read-only copies: writes fail and the message keeps its payload."""
    data = {"order": {"lines": [1, 2]}}
    results = {"check": {"score": 1}}
    message = Envelope(
        message_id=1, kind=MessageKind.EXECUTE, saga_id="s", causation_id=None,
        idempotency_key="k", source="orchestrator", dest="inventory", step="reserve",
        operation="reserve", data=data, results=results,
    )  # fmt: skip
    call = action_call(message, db=None)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        call.data["order"] = {}  # type: ignore[index]
    with pytest.raises(TypeError):
        call.results["check"]["score"] = 2  # type: ignore[index]
    call.data["order"]["lines"].append(3)  # a nested list is the handler's own copy
    assert data == {"order": {"lines": [1, 2]}}
    assert call.results == results
    with pytest.raises(AttributeError):
        call.step = "other"  # type: ignore[misc]
