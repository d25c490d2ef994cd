"""Each validation rule, shown catching a broken variant of a table it accepts."""

from __future__ import annotations

from typing import Any

import pytest

from sagafsm import InvalidDefinition
from sagafsm.choreography import ChoreographyBuilder, problems


def table(**change: Any) -> ChoreographyBuilder:
    """reserve (compensatable) → charge (compensatable) → ship (pivot), undone in reverse order;
    each keyword replaces one part (``None`` drops it)."""
    parts: dict[str, Any] = {
        "deadline": 2.0,
        "reserve_on": "Placed",
        "charge_on": "Reserved",
        "ship_on": "Charged",
        "ship_kind": "pivot",
        "undo_charge": ("ShipFailed",),
        "undo_reserve": ("ChargeFailed", "Refunded"),
        "undo_reserve_emits": "Released",
        "completes_on": "Shipped",
        "fails_on": ("OutOfStock", "Released"),
        "extra": None,
    }
    parts.update(change)
    b = ChoreographyBuilder("shop", initiator="orders", start="Placed", deadline=parts["deadline"])
    b.step(
        "reserve",
        on=parts["reserve_on"],
        participant="inventory",
        action="reserve",
        compensation="release",
        success="Reserved",
        failure="OutOfStock",
    )
    b.step(
        "charge",
        on=parts["charge_on"],
        participant="payment",
        action="charge",
        compensation="refund",
        success="Charged",
        failure="ChargeFailed",
    )
    if parts["ship_kind"] == "pivot":
        b.pivot(
            "ship",
            on=parts["ship_on"],
            participant="shipping",
            action="ship",
            success="Shipped",
            failure="ShipFailed",
        )
    else:
        b.step(
            "ship",
            on=parts["ship_on"],
            participant="shipping",
            action="ship",
            compensation="recall",
            success="Shipped",
            failure="ShipFailed",
        )
    if parts["undo_charge"] is not None:
        b.compensate("charge", on=parts["undo_charge"], emits="Refunded")
    if parts["undo_reserve"] is not None:
        b.compensate("reserve", on=parts["undo_reserve"], emits=parts["undo_reserve_emits"])
    if parts["completes_on"] is not None:
        b.completes("Done", on=parts["completes_on"])
    if parts["fails_on"] is not None:
        b.fails("Failed", on=parts["fails_on"])
    if parts["extra"] is not None:
        parts["extra"](b)
    return b


def found(builder: ChoreographyBuilder) -> list[str]:
    return [str(p) for p in builder.problems()]


def assert_refused(builder: ChoreographyBuilder, *texts: str) -> None:
    """Every text is in some problem, and build() raises the first problem."""
    messages = found(builder)
    for text in texts:
        assert any(text in m for m in messages), (text, messages)
    with pytest.raises(InvalidDefinition) as caught:
        builder.build()
    assert str(caught.value) == messages[0]


def test_the_base_table_is_accepted() -> None:
    """The base of every variant below has no problem: each refusal is the variant's doing."""
    assert found(table()) == []
    assert table().build().name == "shop"


def test_an_emitted_event_nobody_consumes_is_refused() -> None:
    """Dropping the reaction to OutOfStock strands a failed reservation."""
    assert_refused(
        table(fails_on=("Released",)),
        "event 'OutOfStock' is consumed by nothing, so, when reserve fails, the saga stops",
    )


def test_a_failure_path_that_leaves_a_landed_step_uncompensated_is_refused() -> None:
    """Failing the order straight on ChargeFailed leaves the reservation in place."""
    assert_refused(
        table(undo_reserve=("Refunded",), fails_on=("OutOfStock", "ChargeFailed", "Released")),
        "when reserve succeeds and charge fails, 'Failed' (failed) is announced while step "
        "'reserve' (landed) is not compensated before it",
    )


def test_a_path_with_no_terminal_event_is_refused() -> None:
    """If nothing fails the saga once the reservation is released, that path never ends."""
    assert_refused(
        table(fails_on=("OutOfStock",)),
        "event 'Released' is consumed by nothing, so, when reserve succeeds, charge succeeds and "
        "ship fails, the saga stops there with no outcome event",
    )


def test_two_reactions_to_one_event_not_declared_concurrent_are_refused() -> None:
    """Refund and release both on ShipFailed, as the notes wrote it: refused unless declared."""
    assert_refused(
        table(undo_reserve=("ChargeFailed", "ShipFailed"), fails_on=("OutOfStock", "Released")),
        "event 'ShipFailed' starts both the compensation of 'charge' and the compensation of "
        "'reserve', in no order",
    )


def test_declared_concurrent_compensations_still_need_an_order_before_the_outcome() -> None:
    """concurrent=True silences the fan-out rule, not the path rules: the saga would fail before
    the refund is known to be done."""

    def fan_out(b: ChoreographyBuilder) -> None:
        b.compensate("charge", on="ShipFailed", emits="Refunded", concurrent=True)
        b.compensate(
            "reserve", on=("ChargeFailed", "ShipFailed"), emits="Released", concurrent=True
        )

    builder = table(undo_charge=None, undo_reserve=None, extra=fan_out)
    messages = found(builder)
    assert not any("starts both" in m for m in messages)
    assert any("'Failed' (failed) is announced while step 'charge'" in m for m in messages)


def test_a_compensation_of_an_unknown_or_non_compensatable_step_is_refused() -> None:
    """A typo in .compensate, or undoing the pivot, names the step and the fix."""
    assert_refused(
        table(extra=lambda b: b.compensate("chrage", on="ShipFailed", emits="X")),
        "the compensation of 'chrage' names no step of the choreography (its steps: reserve, "
        "charge, ship)",
    )
    assert_refused(
        table(extra=lambda b: b.compensate("ship", on="ShipFailed", emits="X")),
        "step 'ship' (shipping.ship) is pivot, so it has nothing to undo",
    )


def test_an_event_consumed_but_never_emitted_is_refused() -> None:
    """A step waiting for a misspelt event can never start."""
    assert_refused(
        table(ship_on="Chargd"),
        "step 'ship' (shipping.ship) reacts to event 'Chargd', which nothing emits",
    )


def test_duplicate_step_names_and_duplicate_emitters_are_refused() -> None:
    """Two steps of one name; an event emitted by two reactions."""

    def twin(b: ChoreographyBuilder) -> None:
        b.retriable("ship", on="Shipped", participant="mail", action="send", success="Sent")

    assert_refused(table(extra=twin), "two steps are called 'ship'")
    assert_refused(
        table(undo_reserve_emits="Refunded", fails_on=("OutOfStock", "Refunded")),
        "event 'Refunded' is emitted by both the compensation of 'charge' and the compensation of "
        "'reserve'",
    )


def test_a_compensatable_step_without_a_deadline_is_refused() -> None:
    """With no orchestrator's timer, a participant that landed must hold its own deadline."""
    assert_refused(table(deadline=None), "step 'reserve' (inventory.reserve) has no deadline")


def test_a_compensatable_step_nothing_undoes_is_refused() -> None:
    """Its deadline would have nothing to run, nor an event to tell the others."""
    assert_refused(
        table(ship_kind="compensatable"),
        "step 'ship' (shipping.ship) is compensatable but no reaction undoes it",
    )


def test_compensating_out_of_order_or_before_landing_is_refused() -> None:
    """Release before refund is refused; so is undoing a step on its own failure."""
    assert_refused(
        table(
            undo_charge=("Released",),
            undo_reserve=("ChargeFailed", "ShipFailed"),
            fails_on=("OutOfStock", "Refunded"),
        ),
        "when reserve succeeds, charge succeeds and ship fails, 'reserve' is not compensated "
        "after 'charge', which landed after it",
    )
    assert_refused(
        table(undo_charge=("ShipFailed", "ChargeFailed")),
        "the compensation of 'charge' reacts to 'ChargeFailed', which happens (when reserve "
        "succeeds and charge fails) though step 'charge' did not land before it",
    )


def test_compensating_after_the_pivot_and_failing_after_it_are_refused() -> None:
    """Once the pivot succeeded, nothing is undone and the saga cannot fail."""

    def late_failure(b: ChoreographyBuilder) -> None:
        b.read_only(
            "audit",
            on="Shipped",
            participant="audit",
            action="check",
            success="Audited",
            failure="AuditFailed",
        )
        b.compensate("charge", on="AuditFailed", emits="Refunded2")

    builder = table(completes_on="Audited", extra=late_failure)
    messages = found(builder)
    assert any("after the pivot 'ship' succeeded" in m for m in messages)
    assert any("step 'charge' has two compensation reactions" in m for m in messages)


def test_an_outcome_too_early_or_twice_is_refused() -> None:
    """Completing before the last step succeeded; announcing two outcomes on one path."""
    assert_refused(
        table(completes_on="Charged"),
        "'Done' (completed) is announced when reserve succeeds, charge succeeds and ship succeeds "
        "before step 'ship' succeeded",
    )
    assert_refused(
        table(extra=lambda b: b.fails("Failed2", on="Shipped", concurrent=True)),
        "starts both",
    )


def test_reacting_to_an_outcome_and_an_event_loop_are_refused() -> None:
    """An outcome ends the saga; a loop never reaches one."""
    assert_refused(
        table(
            extra=lambda b: b.retriable(
                "mail", on="Done", participant="m", action="send", success="Mailed"
            )
        ),
        "step 'mail' (m.send) reacts to the outcome event 'Done'",
    )
    assert_refused(table(reserve_on="Released"), "events loop (")


def test_a_table_that_never_completes_or_a_step_that_never_runs_is_refused() -> None:
    """No completion declared; a step waiting on an event no path reaches."""
    assert_refused(table(completes_on=None), "never completes")

    def orphan(b: ChoreographyBuilder) -> None:
        b.retriable("mail", on="Refunded2", participant="m", action="send", success="Mailed")
        b.retriable("fax", on="Mailed", participant="f", action="send", success="Refunded2")

    assert "events loop" in found(table(extra=orphan))[-1]


def test_every_problem_is_its_own_error_naming_the_choreography() -> None:
    """problems() returns InvalidDefinition values, one per problem, none repeated."""
    result = problems(table(deadline=None, fails_on=("Released",))._draft())
    assert all(isinstance(p, InvalidDefinition) for p in result)
    texts = [str(p) for p in result]
    assert len(texts) == len(set(texts)) >= 3
    assert all(t.startswith("choreography 'shop': ") for t in texts)
