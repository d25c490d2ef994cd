"""Without an extra, what needs it refuses: a command in one line naming the extra to install
(exit 2, no traceback, nothing run or written), an import with a MissingExtra (an ImportError).

Each case runs in a fresh interpreter in which the extra's libraries cannot be imported
(``sys.modules[name] = None`` makes ``import name`` fail as if it were not installed).
"""

from __future__ import annotations

import importlib.metadata
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from sagafsm._extras import EXTRAS

ROOT = Path(__file__).resolve().parent.parent

_WITHOUT = """\
import sys
blocked, *sys.argv[1:] = sys.argv[1:]
for name in blocked.split(","):
    sys.modules[name] = None
"""
COMMAND = _WITHOUT + "from sagafsm.cli import main\nsys.exit(main(sys.argv[1:]))\n"
"""Run ``sagafsm ARGS...`` with the libraries of the first argument (comma-separated) missing."""


def sagafsm_without(
    blocked: tuple[str, ...], argv: list[str], cwd: Path, path: str | None = None
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PATH": path} if path is not None else None
    return subprocess.run(
        [sys.executable, "-c", COMMAND, ",".join(blocked), *argv],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=120,
        check=False,
    )


def assert_refused(done: subprocess.CompletedProcess[str], command: str, extra: str) -> None:
    """Exit 2, stdout empty (nothing ran), one line on stderr naming the extra to install."""
    assert done.returncode == 2, (done.returncode, done.stderr)
    assert done.stdout == ""
    assert "Traceback" not in done.stderr
    assert len(done.stderr.splitlines()) == 1, done.stderr
    assert done.stderr.startswith(f"sagafsm {command}: error: ")
    assert f"pip install 'sagafsm[{extra}]'" in done.stderr


PROBE = """\
from pathlib import Path

import attrs

from simulations.order_fulfillment import scenario as order_fulfillment


def scenario():
    def make_domain(rng):
        Path("ran").touch()  # a run started: the refusal came too late
        return base.make_domain(rng)

    base = order_fulfillment()
    return attrs.evolve(base, make_domain=make_domain)
"""
"""order_fulfillment, leaving a file named ``ran`` behind when a run starts."""

SMALL = ["probe.py", "--sagas", "5"]
SWEEP = ["sweep", *SMALL, "--jobs", "1", "--param", "faults.loss=0,0.1"]

# (what is missing, command line, the extra it must name)
REFUSALS = [
    *[((name,), ["simulate", *SMALL, "--trace", "t.jsonl"], "sim") for name in EXTRAS["sim"]],
    (("simpy",), ["replay", *SMALL], "sim"),
    (("simpy",), ["explore", *SMALL, "--output", "plan.toml"], "sim"),
    (("simpy",), ["selfcheck"], "sim"),
    (("simpy",), [*SWEEP, "--output", "out"], "sim"),
    (("simpy",), ["run", *SMALL, "--store", "sqlite:///run.db"], "sim"),
    (("simpy",), ["diagram", "order_fulfillment"], "sim"),
    (("matplotlib",), ["simulate", *SMALL, "--plots", "plots"], "plots"),
    (("matplotlib",), ["replay", *SMALL, "--swimlane", "saga.png"], "plots"),
    (("matplotlib",), ["diagram", "order_fulfillment", "--output", "steps.png"], "plots"),
    (("matplotlib",), [*SWEEP, "--output", "out", "--plots"], "plots"),
    (("matplotlib",), ["plot", "sweep.csv"], "plots"),
    (("hypothesis",), ["explore", *SMALL], "explore"),
    (("tomli_w",), ["explore", *SMALL, "--output", "plan.toml"], "explore"),
    (("distributed",), [*SWEEP, "--dask", "local", "--output", "out"], "dask"),
    (("SALib",), ["sweep", *SMALL, "--param", "faults.loss=0:0.1", "--design", "morris",
                  "--points", "2", "--output", "out"], "sensitivity"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("blocked", "argv", "extra"),
    REFUSALS,
    ids=[f"no {','.join(b)}: {' '.join(a)}" for b, a, _ in REFUSALS],
)
def test_a_command_without_its_extra_refuses_in_one_line_naming_it(
    blocked: tuple[str, ...], argv: list[str], extra: str, tmp_path: Path
) -> None:
    """Before anything runs or is written: the working directory keeps only the scenario."""
    (tmp_path / "probe.py").write_text(PROBE)
    done = sagafsm_without(blocked, argv, tmp_path)
    assert_refused(done, argv[0], extra)
    assert [p.name for p in tmp_path.iterdir()] == ["probe.py"]


def test_a_lifecycle_png_without_graphviz_or_matplotlib_names_the_plots_extra(
    tmp_path: Path,
) -> None:
    """Graphviz draws a lifecycle too; with neither on hand, the refusal says what to install."""
    done = sagafsm_without(("matplotlib",), ["diagram", "saga", "-o", "saga.png"], tmp_path, "")
    assert_refused(done, "diagram", "plots")
    assert list(tmp_path.iterdir()) == []


def test_the_commands_of_the_core_run_without_any_extra(tmp_path: Path) -> None:
    """Every extra's libraries missing: the lifecycle diagrams and the store commands still work
    (the probe is not blind: with the same libraries missing, a simulation is refused)."""
    everything = tuple(name for names in EXTRAS.values() for name in names)
    for argv in (["diagram", "saga"], ["diagram", "step"], ["--version"], ["status", "--help"]):
        done = sagafsm_without(everything, argv, tmp_path)
        assert done.returncode == 0 and done.stdout, (argv, done.stderr)
    missing_store = sagafsm_without(everything, ["status", "sqlite:///none.db"], tmp_path)
    assert missing_store.returncode == 2 and "no store there" in missing_store.stderr
    refused = sagafsm_without(everything, ["simulate", "order_fulfillment"], tmp_path)
    assert_refused(refused, "simulate", "sim")


IMPORTS = [
    ("simpy", "import sagafsm.sim", "sim"),
    ("cattrs", "from sagafsm.sim import simulate", "sim"),
    ("matplotlib", "import sagafsm.plots", "plots"),
    ("matplotlib", "import sagafsm.sweep.figures", "plots"),
    ("hypothesis", "import sagafsm.sim.explore", "explore"),
    ("matplotlib", "from sagafsm.definition_diagram import render_definition_png as draw\n"
     "from sagafsm.sim import load_scenario\n"
     "draw(load_scenario('order_fulfillment').definition)", "plots"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("blocked", "statement", "extra"),
    IMPORTS,
    ids=[f"no {b}: {s.splitlines()[-1]}" for b, s, _ in IMPORTS],
)
def test_importing_a_part_without_its_extra_raises_an_import_error_naming_it(
    blocked: str, statement: str, extra: str
) -> None:
    """A library user gets ``MissingExtra``, an ``ImportError``, whose message is the fix."""
    code = _WITHOUT + (
        "from sagafsm import MissingExtra\n"
        f"try:\n    exec({statement!r})\n"
        "except ImportError as error:\n"
        "    print(type(error).__name__, isinstance(error, MissingExtra), error)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, blocked], capture_output=True, text=True, check=True
    )
    assert done.stdout.startswith("MissingExtra True "), done.stdout
    assert f"needs {blocked} (not installed): pip install 'sagafsm[{extra}]'" in done.stdout


# -- pyproject.toml installs what the checks look for ---------------------------------------------


def _project() -> dict[str, object]:
    project: dict[str, object] = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return project


def _name(requirement: str) -> str:
    """The normalized distribution name of a requirement (``SALib>=1.5`` -> ``salib``)."""
    match = re.match(r"[A-Za-z0-9._-]+", requirement)
    assert match, requirement
    return re.sub(r"[-_.]+", "-", match.group()).lower()


def _extras_of(requirement: str) -> set[str]:
    """The extras a ``sagafsm[...]`` requirement asks for."""
    match = re.fullmatch(r"sagafsm\[([\w,\s-]+)\]", requirement)
    return {e.strip() for e in match.group(1).split(",")} if match else set()


def _installs(extra: str, extras: dict[str, list[str]]) -> set[str]:
    """Every distribution an extra installs, its own ``sagafsm[...]`` extras followed."""
    found: set[str] = set()
    for requirement in extras[extra]:
        inner = _extras_of(requirement)
        found |= (
            set().union(*(_installs(e, extras) for e in inner)) if inner else {_name(requirement)}
        )
    return found


def test_the_core_needs_only_transitions_and_attrs() -> None:
    """``pip install sagafsm`` brings the engine and the runtime, nothing of the extras."""
    assert sorted(_name(r) for r in _project()["dependencies"]) == ["attrs", "transitions"]  # type: ignore[attr-defined]


def test_each_extra_installs_the_libraries_its_check_looks_for() -> None:
    """The modules of ``sagafsm._extras.EXTRAS`` come from the distributions of that extra."""
    extras: dict[str, list[str]] = _project()["optional-dependencies"]  # type: ignore[assignment]
    providers = importlib.metadata.packages_distributions()
    for extra, modules in EXTRAS.items():
        for module in modules:
            wanted = {_name(d) for d in providers[module]}
            assert wanted & _installs(extra, extras), (extra, module, wanted)


def test_all_has_every_extra_and_dev_has_all_docs_and_the_test_tools() -> None:
    """The README's ``.[dev]`` installs everything the suite runs."""
    extras: dict[str, list[str]] = _project()["optional-dependencies"]  # type: ignore[assignment]
    assert set(EXTRAS) <= _extras_of(extras["all"][0])
    assert _installs("all", extras) <= _installs("dev", extras)
    assert _installs("docs", extras) <= _installs("dev", extras)
    assert {"pytest", "pytest-xdist", "ruff", "mypy"} <= _installs("dev", extras)
