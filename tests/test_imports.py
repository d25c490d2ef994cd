"""The package's import surface: the core loads no optional library, and neither do the commands
that need none."""

import subprocess
import sys

import pytest

import sagafsm

HEAVY = (
    "simpy", "matplotlib", "scipy", "numpy", "hypothesis", "cattrs", "rich", "msgpack", "tomli_w",
    "distributed", "SALib", "psycopg",
)  # fmt: skip
"""The libraries the extras install, and numpy, which two of them bring."""


def heavy_modules_loaded_by(statement: str, also: tuple[str, ...] = ()) -> list[str]:
    """The heavy libraries (and ``also``) a fresh interpreter has loaded after ``statement``."""
    watched = (*HEAVY, *also)
    report = f"print(); print(','.join(m for m in {watched!r} if m in sys.modules))"
    code = f"{statement}\nimport sys\n{report}"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    return [name for name in result.stdout.splitlines()[-1].split(",") if name]


def loaded_by_command(*argv: str) -> list[str]:
    """The heavy libraries a ``sagafsm`` command has loaded once it has run (it must exit 0)."""
    return heavy_modules_loaded_by(
        f"from sagafsm.cli import main\nassert main({list(argv)!r}) == 0"
    )


def test_import_sagafsm_loads_no_optional_library() -> None:
    """`import sagafsm` pulls in none of the extras' libraries, nor asyncio."""
    assert heavy_modules_loaded_by("import sagafsm", also=("asyncio",)) == []


@pytest.mark.parametrize(
    "module",
    [
        "sagafsm.lifecycle",
        "sagafsm.diagram",
        "sagafsm.checks",
        "sagafsm.history",
        "sagafsm.runtime",
        "sagafsm.testing",
        "sagafsm.cli",
        "sagafsm.sim",
    ],
)
def test_the_core_namespaces_load_no_optional_library(module: str) -> None:
    """The engine's namespaces, the runtime (on SQLite), the command line's parser: none loads an
    extra's library; nor does ``sagafsm.sim`` itself, whose names load when used."""
    assert heavy_modules_loaded_by(f"import {module}") == []


@pytest.mark.parametrize(
    "argv",
    [("diagram", "saga"), ("diagram", "step"), ("diagram", "order_fulfillment")],
    ids=" ".join,
)
def test_diagram_text_loads_no_optional_library(argv: tuple[str, ...]) -> None:
    """A lifecycle's or a scenario's Mermaid text: no simpy, matplotlib, scipy, cattrs, rich..."""
    assert loaded_by_command(*argv) == []


def test_the_import_probe_sees_a_heavy_library() -> None:
    """The probe is not blind: using the simulator loads simpy, a scenario's config cattrs."""
    assert "simpy" in heavy_modules_loaded_by("from sagafsm.sim import simulate")
    assert "cattrs" in heavy_modules_loaded_by(
        "from sagafsm.sim import load_scenario; load_scenario('order_fulfillment').config()"
    )


def test_the_command_probe_sees_a_heavy_library() -> None:
    """Nor is the command probe: a simulation loads simpy."""
    assert "simpy" in loaded_by_command("simulate", "order_fulfillment", "--sagas", "3", "--json")


def test_every_public_name_exists() -> None:
    """Everything in __all__ is importable from the package."""
    missing = [name for name in sagafsm.__all__ if not hasattr(sagafsm, name)]
    assert missing == []


def test_the_parsers_mutant_names_are_the_simulators() -> None:
    """The help text lists mutants from a copy (building the parser imports no simulator): the
    copy names every mutant there is, in the same order."""
    from sagafsm.cli._run_config import MUTANT_NAMES
    from sagafsm.sim.mutants import MUTANTS

    assert tuple(MUTANTS) == MUTANT_NAMES
