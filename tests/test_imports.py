"""The package's import surface."""

import subprocess
import sys

import pytest

import sagafsm

HEAVY = ("simpy", "matplotlib", "hypothesis", "asyncio")


def heavy_modules_loaded_by(statement: str) -> list[str]:
    """The heavy libraries a fresh interpreter has loaded after running ``statement``."""
    code = f"import sys; {statement}; print(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    return [name for name in result.stdout.strip().split(",") if name]


def test_import_sagafsm_loads_no_simulation_or_plotting_library() -> None:
    """`import sagafsm` must not pull in simpy, matplotlib, hypothesis or asyncio."""
    assert heavy_modules_loaded_by("import sagafsm") == []


@pytest.mark.parametrize(
    "module", ["sagafsm.lifecycle", "sagafsm.diagram", "sagafsm.checks", "sagafsm.history"]
)
def test_the_documented_core_namespaces_load_no_heavy_library(module: str) -> None:
    """The namespaces the reference calls SimPy-free are: the checkers judge any driver's trace."""
    assert heavy_modules_loaded_by(f"import {module}") == []


def test_the_import_probe_sees_a_heavy_library() -> None:
    """The probe is not blind: importing the simulator is reported as loading simpy."""
    assert "simpy" in heavy_modules_loaded_by("import sagafsm.sim")


def test_every_public_name_exists() -> None:
    """Everything in __all__ is importable from the package."""
    missing = [name for name in sagafsm.__all__ if not hasattr(sagafsm, name)]
    assert missing == []
