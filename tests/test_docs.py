"""The documentation: its code runs, and its generated reference page matches the tables."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from types import ModuleType

import pytest

DOCS = Path(__file__).resolve().parent.parent / "docs"
FENCE = re.compile(r"^```python[^\n]*\n(.*?)^```$", re.M | re.S)
RUN_PAGES = sorted(
    page
    for folder in ("tutorial", "how-to", "reference", "explanation")
    for page in (DOCS / folder).glob("*.md")
)
PAGES_WITH_CODE = [
    page
    for page in [*RUN_PAGES, DOCS.parent / "README.md"]
    if FENCE.search(page.read_text(encoding="utf-8"))
]
IDS = [p.relative_to(DOCS.parent).as_posix() for p in PAGES_WITH_CODE]


def python_blocks(page: Path) -> list[str]:
    return FENCE.findall(page.read_text(encoding="utf-8"))


def load_generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "gen_lifecycle_reference", DOCS / "gen_lifecycle_reference.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_tutorial_how_to_and_readme_have_code_to_run() -> None:
    """The page list is not empty by accident (a renamed folder would make every test pass)."""
    assert {
        "docs/tutorial/first-saga.md",
        "docs/how-to/define-a-saga.md",
        "docs/how-to/draw-lifecycles.md",
        "README.md",
    } <= set(IDS)


@pytest.mark.parametrize("page", PAGES_WITH_CODE, ids=IDS)
def test_every_python_block_of_the_page_runs_in_order(
    page: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The page's ```python blocks run one after another in one namespace, in a scratch dir."""
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {"__name__": "__docs__"}
    for number, block in enumerate(python_blocks(page), start=1):
        code = compile(block, f"{page.name} block {number}", "exec")
        exec(code, namespace)


def test_the_block_extractor_finds_blocks_and_skips_other_languages() -> None:
    """Only ```python fences are taken, whole, in order."""
    text = "x\n```python\na = 1\n```\n```bash\nls\n```\n```python\nb = a + 1\n```\n"
    assert FENCE.findall(text) == ["a = 1\n", "b = a + 1\n"]


def test_the_lifecycle_reference_page_is_what_the_generator_writes() -> None:
    """docs/reference/lifecycles.md cannot drift from the tables: regenerate it if this fails."""
    generator = load_generator()
    committed = (DOCS / "reference" / "lifecycles.md").read_text(encoding="utf-8")
    assert committed == generator.render(), "run: python docs/gen_lifecycle_reference.py"


def test_the_generated_page_lists_every_transition_row() -> None:
    """Each row of each lifecycle spec appears as a Markdown table row on the page."""
    from sagafsm import LIFECYCLES

    text = load_generator().render()
    for spec in LIFECYCLES.values():
        for row in spec.transitions:
            assert f"| `{row.trigger}` | `{row.source.value}` | `{row.dest.value}` |" in text


def test_the_generated_page_shows_the_landed_and_waiting_roles() -> None:
    """Each step state's row says whether it has landed and which timer it waits on."""
    from sagafsm import STEP_LIFECYCLE

    text = load_generator().render()
    for state in STEP_LIFECYCLE.states:
        landed = "yes" if state in STEP_LIFECYCLE.landed else ""
        purpose = STEP_LIFECYCLE.waiting.get(state)
        waits = "" if purpose is None else f"`{purpose.value}`"
        assert (
            f"| `{state.value}` | {'yes' if state in STEP_LIFECYCLE.terminal else ''} "
            f"| {landed} | {waits} |" in text
        )


def test_the_generated_page_follows_a_changed_spec() -> None:
    """The page is computed from the specs: a row added to a spec appears on it."""
    import attrs

    from sagafsm import STEP_LIFECYCLE, StepState, Transition

    generator = load_generator()
    extra = Transition("reopen", StepState.TIMED_OUT, StepState.EXECUTING)
    changed = attrs.evolve(STEP_LIFECYCLE, transitions=(*STEP_LIFECYCLE.transitions, extra))
    lines = generator.section(changed)
    assert "| `reopen` | `timed_out` | `executing` |" in lines
    assert "| `reopen` | `timed_out` | `executing` |" not in generator.render()


def test_every_page_in_the_mkdocs_nav_exists() -> None:
    """mkdocs.yml names only pages that exist, and every page is in the nav."""
    config = (DOCS.parent / "mkdocs.yml").read_text(encoding="utf-8")
    named = set(re.findall(r":\s*([\w/.-]+\.md)\s*$", config, re.M))
    on_disk = {page.relative_to(DOCS).as_posix() for page in DOCS.rglob("*.md")}
    assert named == on_disk
