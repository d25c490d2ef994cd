"""Run a documentation page's code blocks in order and compare what they print with its output
blocks; ``python tests/doc_blocks.py --update PAGE.md`` rewrites the output blocks that differ.

The conventions (also told to readers, in ``docs/index.md``):

- ```` ```python ```` blocks run one after another in one namespace, in a scratch directory;
  what each prints is captured.
- ```` ```bash ```` blocks run (with ``bash``, in the same directory, the package's own ``sagafsm``
  first on ``PATH``) when an output block follows them; their stdout and stderr together are
  what a terminal shows. Other bash blocks (installs, servers) are shown, never run.
- ```` ```toml ```` blocks whose first line is ``# NAME.toml: ...`` are written to ``NAME.toml``
  there, so a later command can use the file.
- An ```` ```output ```` block right after a code block is what that block prints. ``...``
  inside a line matches any text on that line; a line holding only ``...`` matches any number
  of lines (none included): the placeholders for what legitimately varies (wall-clock times,
  speeds, temporary paths). Trailing spaces and trailing blank lines are not compared.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import attrs

FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```$", re.M | re.S)
TOML_NAME = re.compile(r"\A#\s*([\w.-]+\.toml):")
BASH_TIMEOUT = 600


@attrs.frozen
class Block:
    lang: str
    body: str
    start: int
    """Offset of the block's opening fence in the page."""
    end: int
    """Offset just past its closing fence."""


@attrs.frozen
class Ran:
    """One code block that ran: what it printed, and the output block that follows it, if any."""

    block: Block
    printed: str
    expected: Block | None


def blocks(text: str) -> list[Block]:
    return [Block(m.group(1), m.group(2), m.start(), m.end()) for m in FENCE.finditer(text)]


def _pattern(expected: str) -> re.Pattern[str]:
    parts = []
    for line in _lines(expected):
        if line.strip() == "...":
            parts.append(r"(?:[^\n]*\n)*?")
        else:
            parts.append(".*?".join(re.escape(piece) for piece in line.split("...")) + r"\n")
    return re.compile("".join(parts), re.S)


def _lines(text: str) -> list[str]:
    lines = [line.rstrip() for line in text.split("\n")]
    while lines and not lines[-1]:
        lines.pop()
    return lines


def matches(printed: str, expected: str) -> bool:
    """Whether ``printed`` is what ``expected`` shows, placeholders included."""
    actual = "".join(line + "\n" for line in _lines(printed))
    return _pattern(expected).fullmatch(actual) is not None


def _bash(script: str) -> str:
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["COLUMNS"] = "100"
    done = subprocess.run(
        ["bash", "-c", script],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        timeout=BASH_TIMEOUT,
        check=False,
    )
    return done.stdout


def run_page(path: Path, *, bash: bool = True) -> Iterator[Ran]:
    """Run the page's blocks in order in the current directory, yielding each code block run.

    With ``bash=False`` the bash blocks are not run (nor yielded).
    """
    found = blocks(path.read_text(encoding="utf-8"))
    namespace: dict[str, object] = {"__name__": "__docs__"}
    for number, block in enumerate(found):
        following = found[number + 1] if number + 1 < len(found) else None
        expected = following if following is not None and following.lang == "output" else None
        if block.lang == "toml" and (name := TOML_NAME.match(block.body)):
            Path(name.group(1)).write_text(block.body, encoding="utf-8")
        elif block.lang == "python":
            captured = io.StringIO()
            code = compile(block.body, f"{path.name} block {number + 1}", "exec")
            with contextlib.redirect_stdout(captured):
                exec(code, namespace)
            yield Ran(block, captured.getvalue(), expected)
        elif block.lang == "bash" and expected is not None and bash:
            yield Ran(block, _bash(block.body), expected)


def update(path: Path) -> int:
    """Rewrite the output blocks of ``path`` that do not match, and add the missing ones after
    python blocks that print; returns how many it changed. Placeholders are yours to put back."""
    import tempfile

    path = path.resolve()
    text = path.read_text(encoding="utf-8")
    edits: list[tuple[int, int, str]] = []
    here = Path.cwd()
    with tempfile.TemporaryDirectory() as scratch:
        os.chdir(scratch)
        try:
            for ran in run_page(path):
                printed = "\n".join(_lines(ran.printed))
                if ran.expected is None:
                    if printed:
                        edits.append(
                            (ran.block.end, ran.block.end, f"\n\n```output\n{printed}\n```")
                        )
                elif not matches(ran.printed, ran.expected.body):
                    edits.append(
                        (ran.expected.start, ran.expected.end, f"```output\n{printed}\n```")
                    )
        finally:
            os.chdir(here)
    for start, end, new in sorted(edits, reverse=True):
        text = text[:start] + new + text[end:]
    path.write_text(text, encoding="utf-8")
    return len(edits)


if __name__ == "__main__":
    if len(sys.argv) < 3 or sys.argv[1] != "--update":
        sys.exit("usage: python tests/doc_blocks.py --update PAGE.md [PAGE.md ...]")
    for page in sys.argv[2:]:
        print(f"{page}: {update(Path(page))} output block(s) written")
