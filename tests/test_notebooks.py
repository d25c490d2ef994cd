"""Every notebook runs top to bottom (outputs are never committed: the tests execute them)."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = sorted((Path(__file__).parent.parent / "notebooks").glob("*.ipynb"))


def test_there_are_notebooks() -> None:
    """The guided tour exists."""
    assert NOTEBOOKS


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs_and_has_no_committed_outputs(path: Path) -> None:
    """The notebook executes without error; the committed file carries no outputs."""
    notebook = nbformat.read(path, as_version=4)
    committed = [c for c in notebook.cells if c.cell_type == "code" and c.get("outputs")]
    assert committed == [], f"{path.name} has committed outputs"
    NotebookClient(
        notebook,
        timeout=600,
        kernel_name="python3",
        resources={"metadata": {"path": str(path.parent)}},
    ).execute()
    errors = [
        output
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
        if output.get("output_type") == "error"
    ]
    assert errors == []
