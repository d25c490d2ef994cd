"""`sagafsm diagram`: Mermaid on stdout, PNG on request, clean errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from sagafsm import diagram
from sagafsm.cli import main

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("name", ["saga", "step"])
def test_prints_the_mermaid_text_of_the_lifecycle(
    name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """stdout is exactly the library's Mermaid text."""
    assert main(["diagram", name]) == 0
    out, err = capsys.readouterr()
    assert out == diagram.mermaid(diagram.lifecycle(name))
    assert err == ""


def test_output_writes_a_valid_png_and_no_temporary_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--output FILE.png writes a PNG (magic bytes, nonzero size) and leaves nothing else."""
    target = tmp_path / "saga.png"
    assert main(["diagram", "saga", "--output", str(target)]) == 0
    data = target.read_bytes()
    assert data.startswith(PNG_MAGIC)
    assert len(data) > 1000
    assert [p.name for p in tmp_path.iterdir()] == ["saga.png"]
    out, _ = capsys.readouterr()
    assert out == diagram.mermaid(diagram.lifecycle("saga"))


@pytest.mark.parametrize("name", ["saga.svg", "saga", "saga.png.txt"])
def test_a_non_png_output_is_exit_2_with_one_line_and_no_file(
    name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A wrong extension is refused before anything is printed or written."""
    assert main(["diagram", "saga", "--output", str(tmp_path / name)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1
    assert err.startswith("sagafsm diagram: error: --output ") and "must end in .png" in err
    assert list(tmp_path.iterdir()) == []


def test_a_missing_output_directory_is_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--output into a directory that does not exist: one line, exit 2."""
    assert main(["diagram", "step", "-o", str(tmp_path / "nope" / "x.png")]) == 2
    _, err = capsys.readouterr()
    assert err.count("\n") == 1
    assert "does not exist" in err


def test_a_failed_render_leaves_the_existing_file_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """When no renderer can draw, the old file is untouched and no temporary file remains."""
    target = tmp_path / "saga.png"
    target.write_bytes(b"old")

    def unavailable(*_: object, **__: object) -> bytes:
        raise diagram.DiagramUnavailable("no renderer here")

    monkeypatch.setattr(diagram, "render_png", unavailable)
    assert main(["diagram", "saga", "-o", str(target)]) == 2
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["saga.png"]
    _, err = capsys.readouterr()
    assert err == "sagafsm diagram: error: no renderer here\n"


def test_an_unknown_lifecycle_is_one_line_and_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    """`sagafsm diagram nope` (neither a lifecycle nor a scenario) exits 2 with one line."""
    assert main(["diagram", "nope"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert len(err.strip().splitlines()) == 1 and "'nope'" in err


def test_python_dash_m_sagafsm_diagram_saga_works() -> None:
    """The module entry point prints the saga diagram."""
    result = subprocess.run(
        [sys.executable, "-m", "sagafsm", "diagram", "saga"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == diagram.mermaid(diagram.lifecycle("saga"))


def test_bad_extension_from_a_real_process_has_no_traceback(tmp_path: Path) -> None:
    """The error a user sees is one line on stderr, exit status 2."""
    result = subprocess.run(
        [sys.executable, "-m", "sagafsm", "diagram", "step", "-o", str(tmp_path / "x.jpg")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1
    assert "Traceback" not in result.stderr
