"""The package's import surface."""

import subprocess
import sys

import sagafsm


def test_import_sagafsm_loads_no_simulation_or_plotting_library() -> None:
    """`import sagafsm` must not pull in simpy, matplotlib, hypothesis or asyncio."""
    code = (
        "import sys, sagafsm; "
        "print(','.join(m for m in ('simpy', 'matplotlib', 'hypothesis', 'asyncio') "
        "if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == ""


def test_every_public_name_exists() -> None:
    """Everything in __all__ is importable from the package."""
    missing = [name for name in sagafsm.__all__ if not hasattr(sagafsm, name)]
    assert missing == []
