"""MkDocs hooks: draw the lifecycle diagrams as SVG, from the tables, while the site builds; and
read the Sphinx roles of the docstrings (``:class:`~sagafsm.X```) as plain code in the API pages.

``mkdocs.yml`` names this file under ``hooks:``. For each lifecycle spec of
:data:`sagafsm.LIFECYCLES` it adds ``assets/lifecycles/<name>.svg`` to the site, drawn by the same
matplotlib layout as ``sagafsm diagram NAME --output FILE.png``, so the pages show real images
offline (no Mermaid script from a CDN) and a row added to a table appears in the next build.
The SVGs are not committed: they exist only in the built site.
"""

from __future__ import annotations

import re
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


# mkdocstrings renders a docstring's ":class:`~sagafsm.LifecycleSpec`" as the role's name in text
# followed by <code>~sagafsm.LifecycleSpec</code>: keep the code, drop the role and the tilde's
# module path (Sphinx's own reading of "~").
_ROLE = re.compile(r":(?:py:)?(?:class|meth|func|mod|attr|data|exc|obj|const|ref):(?=<code>)")
_TILDE = re.compile(r"<code>~(?:[\w]+\.)*([\w]+)</code>")


def on_page_content(html: str, page: Any, config: Any, files: Files) -> str:
    return _TILDE.sub(r"<code>\1</code>", _ROLE.sub("", html))
