"""The README's two commands are the ones CI and users run."""

from __future__ import annotations

import re
from pathlib import Path

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
