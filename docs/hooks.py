"""MkDocs hook: draw the lifecycle diagrams as SVG, from the tables, while the site builds.

``mkdocs.yml`` names this file under ``hooks:``. For each lifecycle spec of
:data:`sagafsm.LIFECYCLES` it adds ``assets/lifecycles/<name>.svg`` to the site, drawn by the same
matplotlib layout as ``sagafsm diagram NAME --output FILE.png``, so the pages show real images
offline (no Mermaid script from a CDN) and a row added to a table appears in the next build.
The SVGs are not committed: they exist only in the built site.
"""

from __future__ import annotations

from typing import Any

from mkdocs.structure.files import File, Files

from sagafsm import LIFECYCLES
from sagafsm._draw import render_matplotlib

FOLDER = "assets/lifecycles"


def on_files(files: Files, config: Any) -> Files:
    for name, spec in LIFECYCLES.items():
        svg = render_matplotlib(spec, format="svg")
        files.append(File.generated(config, f"{FOLDER}/{name}.svg", content=svg))
    return files
