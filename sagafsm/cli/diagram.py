"""``sagafsm diagram``: draw the saga or step lifecycle from its table.

Mermaid ``stateDiagram-v2`` text always goes to stdout; ``--output FILE.png`` also writes a PNG.
The PNG is drawn completely before the file is touched, written to a temporary file beside it and
renamed into place, so a failed run never leaves a half-written file.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from .. import diagram
from ..errors import InvalidConfig

__all__ = ["register", "run"]


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "diagram",
        help="print a lifecycle as Mermaid text; optionally draw it as PNG",
        description="Print the saga or step lifecycle as Mermaid stateDiagram-v2 text, drawn "
        "from its transition table. With --output, also draw it as a PNG "
        "(Graphviz 'dot' if on PATH, else matplotlib).",
    )
    parser.add_argument("lifecycle", choices=sorted(diagram.LIFECYCLES), help="which lifecycle")
    parser.add_argument(
        "--output", "-o", metavar="FILE.png", type=Path, help="also write the diagram as a PNG"
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    table = diagram.lifecycle(args.lifecycle)
    output: Path | None = args.output
    if output is not None:
        if output.suffix.lower() != ".png":
            raise InvalidConfig(f"--output must name a .png file, got {str(output)!r}")
        if not output.parent.is_dir():
            raise InvalidConfig(f"--output directory does not exist: {str(output.parent)!r}")
    sys.stdout.write(diagram.mermaid(table))
    sys.stdout.flush()
    if output is not None:
        png = diagram.render_png(table)  # before touching the file system
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
