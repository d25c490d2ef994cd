"""The README's two commands are the ones CI and users run; its test command runs every test."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent


def _commands() -> list[str]:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Two commands", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```bash\n(.+?)\n```", section)


def test_ci_runs_the_readme_test_command_verbatim() -> None:
    """.ci/run contains the README's test command, character for character."""
    main_job, tests = _commands()
    assert "pytest" in tests and "simulate order_fulfillment" in main_job
    assert tests in (ROOT / ".ci" / "run").read_text().splitlines()


def _collected(*args: str) -> set[str]:
    """The test ids ``python -m pytest ARGS`` selects, collected in one process."""
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-n", "0", *args],
        cwd=ROOT, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return {line for line in done.stdout.splitlines() if "::" in line}


@pytest.mark.slow
def test_the_readme_test_command_runs_every_test_and_the_fast_run_only_the_quick_ones() -> None:
    """The README's pytest arguments select the whole suite: the fast run (a bare ``pytest``) and
    the slow tests, which it leaves out, with the notebooks among them."""
    _, tests = _commands()
    arguments = shlex.split(tests.split("python3 -m pytest", 1)[1])
    fast, slow = _collected(), _collected("-m", "slow")
    assert fast and not fast & slow
    assert _collected(*arguments) == fast | slow
    assert any(test.startswith("tests/test_notebooks.py::test_notebook") for test in slow)
