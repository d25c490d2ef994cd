"""``sagafsm diagram``: draw the saga or step lifecycle from its table, or a scenario's steps.

``sagafsm diagram saga`` (or ``step``) prints a lifecycle as Mermaid ``stateDiagram-v2`` text;
``sagafsm diagram order_fulfillment`` (a built-in scenario, or a scenario file) prints that saga's
steps as a Mermaid ``flowchart``, each marked with its kind (a read-only step as never
compensated); with ``--style choreography``, the choreography derived from those steps, as a
flowchart of its events. Text always goes to stdout; ``--output FILE.png`` also writes a PNG.
The PNG is drawn completely before the file is touched, written to a temporary file beside it and
renamed into place, so a failed run never leaves a half-written file.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .. import diagram
from ..errors import InvalidConfig

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
        "--output", "-o", metavar="FILE.png", type=Path, help="also write the diagram as a PNG"
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
    output: Path | None = args.output
    if output is not None:
        if output.suffix.lower() != ".png":
            raise InvalidConfig(f"--output must name a .png file, got {str(output)!r}")
        if not output.parent.is_dir():
            raise InvalidConfig(f"--output directory does not exist: {str(output.parent)!r}")
    text, draw = _subject(args.subject, args.style)
    sys.stdout.write(text)
    sys.stdout.flush()
    if output is not None:
        png = draw()  # before touching the file system
        try:
            _write_atomically(output, png)
        except OSError as error:
            print(
                f"sagafsm diagram: error: cannot write {str(output)!r}: {error.strerror or error}",
                file=sys.stderr,
            )
            return 1
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


def _write_atomically(path: Path, data: bytes) -> None:
    """Write ``data`` to a temporary file in ``path``'s directory, then rename it over ``path``."""
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temporary, 0o666 & ~umask)  # what a plain open() would have given
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
