"""What is public is exported: each namespace's ``__all__``, the docs' imports and the reference
pages stay in step (the idea of trio's ``test_exports.py``)."""

from __future__ import annotations

import ast
import importlib
import importlib.util
import json
import pkgutil
import re
import types
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest

import sagafsm

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
REFERENCE = sorted((DOCS / "reference").glob("*.md"))
PAGES = [*sorted(DOCS.rglob("*.md")), ROOT / "README.md"]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))

PYTHON_FENCE = re.compile(r"^```python[^\n]*\n(.*?)^```$", re.M | re.S)
ANY_FENCE = re.compile(r"^```[^\n]*\n(.*?)^```$", re.M | re.S)
INLINE_CODE = re.compile(r"`([^`\n]+)`")
# an import written in prose or in a non-Python block (one line, no parentheses)
IMPORT_LINE = re.compile(r"\bfrom\s+(sagafsm[\w.]*)\s+import\s+([\w ,]+)")

Import = tuple[str, str, str]
"""(module, name, where): ``from module import name``, found in ``where``."""


def _private(module: str) -> bool:
    return any(part.startswith("_") for part in module.split("."))


def public_modules() -> list[str]:
    """sagafsm and every module under it whose dotted name has no ``_``-prefixed part."""
    found = ["sagafsm"]
    for info in pkgutil.walk_packages(sagafsm.__path__, "sagafsm.", onerror=lambda _: None):
        if not _private(info.name):
            found.append(info.name)
    return sorted(found)


def missing_from(module: types.ModuleType) -> list[str]:
    """The names ``module.__all__`` lists that the module does not define."""
    return [name for name in getattr(module, "__all__", ()) if not hasattr(module, name)]


def imports_in_code(source: str, where: str) -> Iterator[Import]:
    """Every ``from sagafsm[.x] import y`` (and ``import sagafsm.x``) in Python source."""
    # notebook magics and shell escapes are not Python
    lines = [line for line in source.splitlines() if not line.lstrip().startswith(("%", "!"))]
    tree = ast.parse("\n".join(lines), filename=where)
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module is not None:
            if node.module.split(".")[0] == "sagafsm":
                for alias in node.names:
                    yield node.module, alias.name, where
        elif isinstance(node, ast.Import):
            for alias in node.names:
                parent, _, name = alias.name.rpartition(".")
                if alias.name.split(".")[0] == "sagafsm" and parent:
                    yield parent, name, where


def imports_in_markdown(text: str, where: str) -> Iterator[Import]:
    """Imports in the page's ```python blocks, and import lines anywhere else on it."""
    for number, block in enumerate(PYTHON_FENCE.findall(text), start=1):
        yield from imports_in_code(block, f"{where} block {number}")
    for module, names in IMPORT_LINE.findall(PYTHON_FENCE.sub("", text)):
        for name in names.split(","):
            if name.strip():
                yield module, name.strip(), where


def imports_in_notebook(path: Path) -> Iterator[Import]:
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    for number, cell in enumerate(cells, start=1):
        if cell["cell_type"] == "code":
            yield from imports_in_code("".join(cell["source"]), f"{path.name} cell {number}")


def documented_imports() -> list[Import]:
    found: list[Import] = []
    for page in PAGES:
        found += imports_in_markdown(page.read_text(encoding="utf-8"), _rel(page))
    for notebook in NOTEBOOKS:
        found += imports_in_notebook(notebook)
    return found


def not_exported(imports: Iterable[Import]) -> list[str]:
    """Each import of a name its namespace does not export (in ``__all__``, or as a public
    submodule), or from a private module, explained."""
    problems = []
    for module_name, name, where in imports:
        if _private(module_name):
            problems.append(f"{where}: imports {name} from private module {module_name}")
            continue
        module = importlib.import_module(module_name)
        exported = getattr(module, "__all__", None)
        if exported is None:
            problems.append(f"{where}: {module_name} has no __all__ (imports {name} from it)")
        elif name not in exported and not _public_submodule(module, name):
            problems.append(f"{where}: {module_name}.{name} is not in {module_name}.__all__")
    return problems


def _public_submodule(module: types.ModuleType, name: str) -> bool:
    return (
        hasattr(module, "__path__")
        and not name.startswith("_")
        and importlib.util.find_spec(f"{module.__name__}.{name}") is not None
    )


def code_text(markdown: str) -> str:
    """The code on a page: its fenced blocks and its inline code spans, nothing else."""
    blocks = ANY_FENCE.findall(markdown)
    return "\n".join([*blocks, *INLINE_CODE.findall(ANY_FENCE.sub("", markdown))])


def unmentioned(names: Iterable[str], markdown: str) -> list[str]:
    """The names that appear in no code span or block of ``markdown``."""
    code = code_text(markdown)
    return [n for n in names if not re.search(rf"(?<![\w]){re.escape(n)}(?!\w)", code)]


def _rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def _reference_text() -> str:
    return "\n".join(page.read_text(encoding="utf-8") for page in REFERENCE)


# -- the package as it is --------------------------------------------------------------------


def test_the_public_namespaces_are_found() -> None:
    """The module walk finds the documented namespaces and skips private modules."""
    modules = public_modules()
    assert {"sagafsm", "sagafsm.diagram", "sagafsm.lifecycle", "sagafsm.checks"} <= set(modules)
    assert "sagafsm.sim" in modules and "sagafsm._moves" not in modules
    assert not any(_private(m) for m in modules)


@pytest.mark.parametrize("module_name", public_modules())
def test_every_public_namespace_has_an_all_whose_names_exist(module_name: str) -> None:
    """Each public module lists its API in ``__all__``, and every listed name is defined."""
    module = importlib.import_module(module_name)
    assert hasattr(module, "__all__"), f"{module_name} has no __all__"
    assert missing_from(module) == []


def test_the_package_exports_the_engine_api_the_docs_teach() -> None:
    """The names the tutorial and the engine reference import come from ``sagafsm`` itself."""
    taught = {
        "InvalidArgument",
        "UnknownStep",
        "LifecycleSpec",
        "SAGA_LIFECYCLE",
        "STEP_LIFECYCLE",
        "Transition",
        "IgnoredTrigger",
        "TimerPurpose",
        "SNAPSHOT_VERSION",
    }
    assert taught <= set(sagafsm.__all__)


def test_the_docs_readme_and_notebooks_import_something() -> None:
    """The import scan is not empty by accident (a changed fence or path would pass everything)."""
    found = {(module, name) for module, name, _ in documented_imports()}
    assert ("sagafsm", "SagaBuilder") in found
    assert ("sagafsm", "InvalidArgument") in found
    assert ("sagafsm.sim", "simulate") in found
    assert any("01_quickstart.ipynb" in where for *_, where in documented_imports())


def test_the_docs_readme_and_notebooks_import_only_exported_names() -> None:
    """Every ``from sagafsm[.x] import y`` they show names something ``x.__all__`` exports."""
    assert not_exported(documented_imports()) == []


def test_every_namespace_the_docs_import_from_is_on_a_reference_page() -> None:
    """A sub-namespace users are told to import from is documented: a reference page names it."""
    code = code_text(_reference_text())
    modules = {module for module, _, _ in documented_imports()} - {"sagafsm"}
    assert [m for m in sorted(modules) if m not in code] == []


def test_every_name_the_package_exports_is_on_a_reference_page() -> None:
    """Each name in ``sagafsm.__all__`` appears in the code of docs/reference/*.md."""
    assert unmentioned(sagafsm.__all__, _reference_text()) == []


# -- the checks themselves, on broken inputs ----------------------------------------------------


def test_a_doc_that_imports_a_private_name_is_caught() -> None:
    """An import of an unexported name, or from a private module, is reported with its page."""
    page = (
        "Some prose.\n\n```python\nfrom sagafsm import SagaBuilder\n"
        "from sagafsm.engine import SagaMoves\n"
        "from sagafsm._moves import StepRun\n```\n"
        "And in prose: `from sagafsm.lifecycle import _rows`.\n"
    )
    problems = not_exported(imports_in_markdown(page, "made-up.md"))
    assert problems == [
        "made-up.md block 1: sagafsm.engine.SagaMoves is not in sagafsm.engine.__all__",
        "made-up.md block 1: imports StepRun from private module sagafsm._moves",
        "made-up.md: sagafsm.lifecycle._rows is not in sagafsm.lifecycle.__all__",
    ]


def test_imports_are_found_in_every_form() -> None:
    """Parenthesised and dotted imports and notebook cells with magics are all scanned."""
    code = (
        "%matplotlib inline\n"
        "from sagafsm import (\n    SagaBuilder,\n    Nope,\n)\n"
        "import sagafsm.sim.report\n"
    )
    assert list(imports_in_code(code, "cell")) == [
        ("sagafsm", "SagaBuilder", "cell"),
        ("sagafsm", "Nope", "cell"),
        ("sagafsm.sim", "report", "cell"),
    ]
    assert not_exported(imports_in_code(code, "cell")) == [
        "cell: sagafsm.Nope is not in sagafsm.__all__"
    ]


def test_a_name_removed_from_all_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    """Dropping a documented name from ``sagafsm.__all__`` fails both the import and the
    reference checks."""
    monkeypatch.setattr(sagafsm, "__all__", [n for n in sagafsm.__all__ if n != "InvalidArgument"])
    problems = not_exported(documented_imports())
    assert problems and all(
        "sagafsm.InvalidArgument is not in sagafsm.__all__" in p for p in problems
    )


def test_a_listed_name_that_does_not_exist_is_caught() -> None:
    """An ``__all__`` entry the module does not define is reported."""
    module = types.ModuleType("fake")
    module.__all__ = ["real", "gone"]  # type: ignore[attr-defined]
    module.real = 1  # type: ignore[attr-defined]
    assert missing_from(module) == ["gone"]


def test_an_exported_name_no_reference_page_shows_is_caught() -> None:
    """A name only in prose (not in code) counts as unmentioned; a longer name does not count."""
    page = (
        "`SagaInstance` and\n```python\nx = StepKind.PIVOT\n```\nSagaBuilder in prose, `StepKinds`."
    )
    assert unmentioned(["SagaInstance", "StepKind", "SagaBuilder", "StepKinds", "Step"], page) == [
        "SagaBuilder",
        "Step",
    ]
