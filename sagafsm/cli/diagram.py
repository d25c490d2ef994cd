"""``sagafsm diagram``: draw the saga or step lifecycle from its table, or a scenario's steps.

``sagafsm diagram saga`` (or ``step``) prints a lifecycle as Mermaid ``stateDiagram-v2`` text;
``sagafsm diagram order_fulfillment`` (a built-in scenario, or a scenario file) prints that saga's
steps as a Mermaid ``flowchart``, each marked with its kind (a read-only step as never
compensated); with ``--style choreography``, the choreography derived from those steps, as a
flowchart of its events. Text always goes to stdout; ``--output FILE.png`` also writes a PNG.
The output path is checked before anything is drawn; the PNG is drawn completely, written to a
temporary file beside it and renamed into place, so a failed run never leaves a half-written file.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

from .. import diagram
from .._extras import require
from ..errors import InvalidConfig
from ._inputs import check_output_file, staged

__all__ = ["register", "run"]


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "diagram",
        help="print a lifecycle or a scenario's steps as Mermaid text; optionally draw a PNG",
        description="Print the saga or step lifecycle as Mermaid stateDiagram-v2 text, drawn "
        "from its transition table, or a scenario's saga as a Mermaid flowchart of its steps "
        "(each marked with its kind). With --output, also draw it as a PNG "
        "(lifecycles: Graphviz 'dot' if on PATH, else matplotlib; steps: matplotlib).",
    )
    parser.add_argument(
        "subject",
        metavar="{saga,step,SCENARIO}",
        help="a lifecycle (saga or step), or a built-in scenario name or scenario file",
    )
    parser.add_argument(
        "--output", "-o", metavar="FILE.png", help="also write the diagram as a PNG"
    )
    parser.add_argument(
        "--style",
        choices=("orchestration", "choreography"),
        default="orchestration",
        help="for a scenario: its steps as orchestrated (default), or the choreography derived "
        "from them as a Mermaid flowchart of events (its PNG: the sequence of events when the "
        "last step that can fail fails)",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    output = check_output_file(args.output, "--output", ".png") if args.output else None
    if output is not None and args.subject not in diagram.LIFECYCLES:
        require("plots", "--output")  # a scenario's steps are drawn by matplotlib alone
    text, draw = _subject(args.subject, args.style)
    png = draw() if output is not None else b""  # drawn before anything is printed or written
    if output is not None:
        with staged() as outputs:
            outputs.file(output).write_bytes(png)
            outputs.commit()
    sys.stdout.write(text)
    sys.stdout.flush()
    if output is not None:
        print(f"wrote {output}", file=sys.stderr)
    return 0


def _subject(subject: str, style: str = "orchestration") -> tuple[str, Callable[[], bytes]]:
    """Mermaid text and a PNG renderer for a lifecycle name or a scenario."""
    if subject in diagram.LIFECYCLES and style == "choreography":
        raise InvalidConfig(f"--style choreography draws a scenario, not the {subject} lifecycle")
    if subject in diagram.LIFECYCLES:
        table = diagram.lifecycle(subject)
        return diagram.mermaid(table), lambda: diagram.render_png(table)
    from ..definition_diagram import definition_mermaid, render_definition_png
    from ..sim.scenario import load_scenario

    try:
        definition = load_scenario(subject).definition
    except InvalidConfig as error:
        raise InvalidConfig(f"not a lifecycle (saga, step) nor a scenario: {error}") from None
    if style == "choreography":
        from ..choreography import choreography_from, flow_mermaid, render_sequence_png

        choreography = choreography_from(definition)
        failing = [s.name for s in choreography.steps if s.failure is not None][-1]
        return flow_mermaid(choreography), lambda: render_sequence_png(choreography, failing)
    return definition_mermaid(definition), lambda: render_definition_png(definition)
