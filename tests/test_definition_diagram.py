"""A saga definition drawn as a flow: every step marked with its kind, compensations in reverse."""

from __future__ import annotations

from pathlib import Path

import pytest

from sagafsm import InvalidArgument, SagaBuilder, SagaDefinition
from sagafsm.cli import main
from sagafsm.definition import StepKind
from sagafsm.definition_diagram import KIND_NOTES, definition_mermaid, render_definition_png
from simulations.order_fulfillment import scenario

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _order() -> SagaDefinition:
    return (
        SagaBuilder("order")
        .read_only("verify", participant="customers", action="verify")
        .step("reserve", participant="inventory", action="reserve", compensation="release")
        .step("charge", participant="payment", action="charge", compensation="refund")
        .pivot("ship", participant="shipping", action="ship")
        .retriable("notify", participant="email", action="send")
        .build()
    )


def test_every_step_is_drawn_with_the_note_of_its_kind() -> None:
    """Each step's box carries its name, participant.action and the note of its kind."""
    text = definition_mermaid(_order())
    for step in _order().steps:
        assert f"{step.name}<br/>{step.participant}.{step.action}" in text
        assert KIND_NOTES[step.kind] in text
    assert set(KIND_NOTES) == set(StepKind)


def test_a_read_only_step_has_no_compensation_and_is_styled_apart() -> None:
    """The read-only step gets no compensation node and the dashed read-only class."""
    text = definition_mermaid(_order())
    assert "c0[" not in text  # the read-only step (index 0) has nothing to undo
    assert "class s0 readonly" in text
    compensatable = SagaBuilder("o").step("a", participant="p", action="x", compensation="y")
    assert "readonly" not in definition_mermaid(compensatable.build())


def test_compensations_chain_in_reverse_step_order_to_failed() -> None:
    """The way back runs from the last compensatable step to the first, then to failed."""
    lines = definition_mermaid(_order()).splitlines()
    assert "    c2 --> c1" in lines
    assert "    c1 --> failed([failed])" in lines
    assert "    c1 --> c2" not in lines


def test_the_png_is_drawn_for_the_built_in_scenario() -> None:
    """A real PNG, not an empty file."""
    data = render_definition_png(scenario().definition)
    assert data.startswith(PNG_MAGIC) and len(data) > 5000


@pytest.mark.parametrize("bad", [None, "order", 5, SagaBuilder])
def test_anything_but_a_definition_is_refused(bad: object) -> None:
    """InvalidArgument (a TypeError) names the value."""
    with pytest.raises(InvalidArgument, match="SagaDefinition"):
        definition_mermaid(bad)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        render_definition_png(bad)  # type: ignore[arg-type]


def test_the_cli_draws_a_scenario_and_refuses_an_unknown_subject(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`sagafsm diagram SCENARIO` prints the flowchart (and a PNG); a bad name exits 2 cleanly."""
    target = tmp_path / "steps.png"
    assert main(["diagram", "order_fulfillment", "--output", str(target)]) == 0
    out, _ = capsys.readouterr()
    assert out == definition_mermaid(scenario().definition)
    assert target.read_bytes().startswith(PNG_MAGIC)
    assert main(["diagram", "no_such_scenario"]) == 2
    _, err = capsys.readouterr()
    assert len(err.strip().splitlines()) == 1
    assert "not a lifecycle" in err
