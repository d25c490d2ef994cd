"""Lifecycle diagrams: drawn from the tables, one edge per row, PNG with or without Graphviz."""

from __future__ import annotations

import builtins
import re
import subprocess
import sys
from collections import Counter
from typing import Any

import attrs
import pytest

from sagafsm import SagaError, SagaState, StepState, diagram
from sagafsm.diagram import DiagramUnavailable
from sagafsm.lifecycle import SAGA_LIFECYCLE, STEP_LIFECYCLE, LifecycleSpec, Transition

SAGA_TRANSITIONS, STEP_TRANSITIONS = SAGA_LIFECYCLE.rows, STEP_LIFECYCLE.rows
SAGA_TERMINAL, STEP_TERMINAL = SAGA_LIFECYCLE.terminal, STEP_LIFECYCLE.terminal

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
EDGE = re.compile(r"^    (\w+) --> (\w+) : (\w+)$")

TABLES = [
    pytest.param("saga", SagaState.STARTED, SAGA_TRANSITIONS, SAGA_TERMINAL, id="saga"),
    pytest.param("step", StepState.PENDING, STEP_TRANSITIONS, STEP_TERMINAL, id="step"),
]


def edges(text: str) -> Counter[tuple[str, str, str]]:
    """The labelled edges of Mermaid text, as (source, dest, trigger) with multiplicity."""
    return Counter(m.groups() for line in text.splitlines() if (m := EDGE.match(line)))


def rows(table: tuple[Transition, ...]) -> Counter[tuple[str, str, str]]:
    return Counter((t.source.value, t.dest.value, t.trigger) for t in table)


@pytest.mark.parametrize(("name", "initial", "table", "terminal"), TABLES)
def test_mermaid_has_exactly_one_edge_per_table_row(
    name: str, initial: Any, table: tuple[Transition, ...], terminal: frozenset[Any]
) -> None:
    """Every (source, dest, trigger) row appears once as an edge, and no edge is invented."""
    text = diagram.mermaid(diagram.lifecycle(name))
    assert edges(text) == rows(table)
    assert all(count == 1 for count in edges(text).values())


@pytest.mark.parametrize(("name", "initial", "table", "terminal"), TABLES)
def test_mermaid_marks_the_initial_and_every_terminal_state(
    name: str, initial: Any, table: tuple[Transition, ...], terminal: frozenset[Any]
) -> None:
    """`[*] --> initial` once, and `terminal --> [*]` for each terminal state, nothing else."""
    lines = diagram.mermaid(diagram.lifecycle(name)).splitlines()
    assert lines[0] == "stateDiagram-v2"
    assert [line for line in lines if line.strip().startswith("[*]")] == [
        f"    [*] --> {initial.value}"
    ]
    ends = {line.split()[0] for line in lines if line.endswith("--> [*]")}
    assert ends == {state.value for state in terminal}
    # every line is the header, the start, a row or an end: nothing hand-written
    assert len(lines) == 1 + 1 + len(table) + len(terminal)


def test_a_changed_table_changes_the_diagram() -> None:
    """The text is computed from the table: adding, dropping or renaming a row shows up."""
    saga = diagram.lifecycle("saga")
    extra = Transition("reopen", SagaState.COMPENSATING, SagaState.PENDING)
    grown = attrs.evolve(saga, transitions=(*saga.transitions, extra))
    assert edges(diagram.mermaid(grown)) == rows((*SAGA_TRANSITIONS, extra))
    assert "    compensating --> pending : reopen" in diagram.mermaid(grown)

    shrunk = attrs.evolve(saga, transitions=saga.transitions[1:])
    assert "started --> pending : begin" not in diagram.mermaid(shrunk)
    assert edges(diagram.mermaid(shrunk)) != rows(SAGA_TRANSITIONS)

    renamed = attrs.evolve(
        saga,
        transitions=tuple(t._replace(trigger=t.trigger + "_x") for t in saga.transitions),
    )
    assert edges(diagram.mermaid(renamed)) != rows(SAGA_TRANSITIONS)


def test_the_edge_counter_itself_can_fail() -> None:
    """The comparison used above notices a duplicated or a missing edge."""
    text = diagram.mermaid(diagram.lifecycle("step"))
    first_edge = next(line for line in text.splitlines() if EDGE.match(line))
    assert edges(text + first_edge + "\n") != rows(STEP_TRANSITIONS)
    assert edges(text.replace(first_edge + "\n", "")) != rows(STEP_TRANSITIONS)


def test_dot_source_has_one_edge_per_row_and_double_borders_terminals() -> None:
    """The Graphviz text follows the same table, terminal states with two peripheries."""
    table = diagram.lifecycle("step")
    text = diagram.dot_source(table)
    dot_edges = re.findall(
        r'^    "(\w+)" -> "(\w+)" \[label=" (\w+) "(, style=dashed)?\];$', text, re.M
    )
    assert Counter(edge[:3] for edge in dot_edges) == rows(STEP_TRANSITIONS)
    dashed = {edge[:3] for edge in dot_edges if edge[3]}
    assert dashed == set(rows(STEP_LIFECYCLE.operator))  # the operator's rows, and only they
    doubled = set(re.findall(r'^    "(\w+)" \[.*peripheries=2', text, re.M))
    assert doubled == {state.value for state in STEP_TERMINAL}


def test_layers_follow_breadth_first_distance_from_the_initial_state() -> None:
    """started, then pending, then what pending reaches, then failed."""
    assert diagram.layers(diagram.lifecycle("saga")) == [
        [SagaState.STARTED],
        [SagaState.PENDING],
        [SagaState.COMPLETED, SagaState.COMPENSATING, SagaState.OPERATOR_REQUIRED],
        [SagaState.FAILED],
    ]


def test_layers_keep_states_the_initial_state_cannot_reach() -> None:
    """A state no row leads to still gets drawn, in a last layer."""
    saga = diagram.lifecycle("saga")
    cut = attrs.evolve(saga, transitions=[t for t in saga.transitions if t.trigger != "begin"])
    found = diagram.layers(cut)
    assert sorted(s.value for layer in found for s in layer) == sorted(s.value for s in SagaState)
    assert found[0] == [SagaState.STARTED]


def test_unknown_lifecycle_is_a_key_error_naming_the_known_ones() -> None:
    """lifecycle('nope') says which names exist."""
    with pytest.raises(KeyError, match="saga, step"):
        diagram.lifecycle("nope")
    with pytest.raises(KeyError, match=r"no lifecycle \['saga'\]"):
        diagram.lifecycle(["saga"])  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["saga", "step"])
def test_matplotlib_renders_a_valid_png(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without Graphviz, the matplotlib fallback returns non-empty PNG bytes."""
    monkeypatch.setattr(diagram.shutil, "which", lambda _: None)
    png = diagram.render_png(diagram.lifecycle(name))
    assert png.startswith(PNG_MAGIC)
    assert len(png) > 1000


def test_matplotlib_draws_a_table_with_a_loop_and_an_unreachable_state() -> None:
    """A row from a state to itself, and a state nothing leads to, still draw."""
    saga = diagram.lifecycle("saga")
    odd = attrs.evolve(
        saga,
        transitions=(
            *[t for t in saga.transitions if t.trigger != "begin"],
            Transition("poll", SagaState.PENDING, SagaState.PENDING),
        ),
    )
    png = diagram.render_png(odd, backend="matplotlib")
    assert png.startswith(PNG_MAGIC)


def test_render_png_says_so_when_no_renderer_exists(monkeypatch: pytest.MonkeyPatch) -> None:
    """No dot on PATH and no matplotlib: a DiagramUnavailable (a SagaError), not ImportError."""
    monkeypatch.setattr(diagram.shutil, "which", lambda _: None)
    real_import = builtins.__import__

    def no_matplotlib(name: str, *args: Any, **kwargs: Any) -> Any:
        if name.startswith("matplotlib"):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    with pytest.raises(DiagramUnavailable, match="matplotlib is not installed") as caught:
        diagram.render_png(diagram.lifecycle("saga"))
    assert isinstance(caught.value, SagaError)


def test_asking_for_dot_without_dot_is_diagram_unavailable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """backend='dot' does not fall back silently."""
    monkeypatch.setattr(diagram.shutil, "which", lambda _: None)
    with pytest.raises(DiagramUnavailable, match="not on PATH"):
        diagram.render_png(diagram.lifecycle("saga"), backend="dot")


def test_dot_is_used_when_on_path_and_its_failure_is_reported(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With `dot` found, its output is returned; a failing dot becomes DiagramUnavailable."""
    monkeypatch.setattr(diagram.shutil, "which", lambda _: "/usr/bin/dot")
    seen: list[bytes] = []

    def fake_run(argv: list[str], *, input: bytes, **_: Any) -> Any:
        seen.append(input)
        return subprocess.CompletedProcess(argv, 0, PNG_MAGIC + b"rest", b"")

    monkeypatch.setattr(diagram.subprocess, "run", fake_run)
    assert diagram.render_png(diagram.lifecycle("step")) == PNG_MAGIC + b"rest"
    assert seen == [diagram.dot_source(diagram.lifecycle("step")).encode()]

    def failing_run(argv: list[str], **_: Any) -> Any:
        return subprocess.CompletedProcess(argv, 1, b"", b"Error: syntax error in line 3\n")

    monkeypatch.setattr(diagram.subprocess, "run", failing_run)
    with pytest.raises(DiagramUnavailable, match="syntax error in line 3"):
        diagram.render_png(diagram.lifecycle("step"))


def test_importing_the_diagram_module_loads_no_matplotlib() -> None:
    """matplotlib is imported inside render_png only."""
    code = "import sys, sagafsm.diagram; print('matplotlib' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"


def test_diagrams_draw_the_specs_themselves() -> None:
    """diagram.lifecycle hands back the lifecycle module's specs, not a copy rebuilt by hand."""
    assert diagram.lifecycle("saga") is SAGA_LIFECYCLE
    assert diagram.lifecycle("step") is STEP_LIFECYCLE


def test_lifecycle_tables_are_frozen_values() -> None:
    """A lifecycle spec cannot be changed in place, only evolved."""
    table = diagram.lifecycle("saga")
    assert isinstance(table, LifecycleSpec)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        table.name = "other"  # type: ignore[misc]
