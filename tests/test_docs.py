"""The documentation: its code runs, and its generated reference page matches the tables."""

from __future__ import annotations

import contextlib
import importlib.util
import itertools
import re
from pathlib import Path
from types import ModuleType

import doc_blocks
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


SHOWN_PAGES = [p for p in PAGES_WITH_CODE if p.parent.name in ("tutorial", "how-to")]
"""Pages whose printing blocks must show what they print (the tutorials and how-to guides)."""


def _mismatches(page: Path, *, bash: bool, must_show: bool) -> list[str]:
    problems = []
    for ran in doc_blocks.run_page(page, bash=bash):
        shown = ran.expected
        where = f"{page.name}: the {ran.block.lang} block at offset {ran.block.start}"
        if shown is None:
            if ran.printed.strip() and must_show:
                problems.append(f"{where} prints but shows no output block:\n{ran.printed}")
        elif not doc_blocks.matches(ran.printed, shown.body):
            problems.append(f"{where} printed:\n{ran.printed}\nthe page shows:\n{shown.body}")
    return problems


def _has_checked_commands(page: Path) -> bool:
    found = doc_blocks.blocks(page.read_text(encoding="utf-8"))
    return any(a.lang == "bash" and b.lang == "output" for a, b in itertools.pairwise(found))


CLI_PAGES = [page for page in SHOWN_PAGES if _has_checked_commands(page)]


@pytest.mark.parametrize(
    "page",
    [
        pytest.param(page, marks=[pytest.mark.slow] if page in CLI_PAGES else [])
        for page in PAGES_WITH_CODE
    ],
    ids=IDS,
)
def test_every_block_runs_in_order_and_prints_what_the_page_shows(
    page: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The page runs as a reader would, in a scratch dir: its ```python blocks in order in one
    namespace, its `# NAME.toml` files, and each ```bash block that an output block follows
    (pages with such commands are slow). Every output block matches what its block printed, and
    on a tutorial or how-to page every block that prints shows one (to rewrite the stale ones:
    python tests/doc_blocks.py --update PAGE)."""
    monkeypatch.chdir(tmp_path)
    assert _mismatches(page, bash=True, must_show=page in SHOWN_PAGES) == []


def test_the_tutorials_have_commands_whose_output_is_checked() -> None:
    """The CLI page list is not empty by accident (a renamed fence would make it so)."""
    assert {"first-simulation.md", "explore-and-replay.md"} <= {p.name for p in CLI_PAGES}


@pytest.mark.parametrize(
    ("printed", "shown", "same"),
    [
        ("a\nb\n", "a\nb", True),
        ("a  \nb\n\n", "a\nb\n", True),  # trailing spaces and blank lines do not count
        ("a\nb\n", "a\nc", False),
        ("a\nb\n", "a", False),  # a missing line is a difference
        ("a\nb\n", "a\nb\nc", False),
        ("wall 3.21 s (936/s)\n", "wall ... s (.../s)", True),
        ("wall 3.21 s (936/s)\n", "wall ... s (...) x", False),
        ("head\n1\n2\n3\ntail\n", "head\n...\ntail", True),
        ("head\ntail\n", "head\n...\ntail", True),  # ... may stand for no line at all
        ("head\n1\ntail\n", "head\n...\nend", False),
        ("x\n", "...", True),
    ],
)
def test_output_blocks_match_exactly_but_for_the_placeholders(
    printed: str, shown: str, same: bool
) -> None:
    """`...` in a line matches any text on it, a `...` line any lines; nothing else varies."""
    assert doc_blocks.matches(printed, shown) is same


def test_a_stale_output_block_is_caught(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A page whose output block no longer matches, or whose printing block shows none, fails."""
    monkeypatch.chdir(tmp_path)
    stale = tmp_path / "how-to" / "stale.md"
    stale.parent.mkdir()
    stale.write_text(
        "```python\nprint(6 * 7)\n```\n\n```output\n41\n```\n"
        "```python\nprint('unshown')\n```\n"
        "```bash\necho hi\n```\n\n```output\nhi\n```\n",
        encoding="utf-8",
    )
    ran = list(doc_blocks.run_page(stale))
    assert [r.printed for r in ran] == ["42\n", "unshown\n", "hi\n"]
    assert not doc_blocks.matches(ran[0].printed, ran[0].expected.body)
    assert ran[1].expected is None
    assert doc_blocks.matches(ran[2].printed, ran[2].expected.body)
    problems = _mismatches(stale, bash=True, must_show=True)
    assert len(problems) == 2
    assert "printed:\n42" in problems[0] and "shows no output block" in problems[1]


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
        for row in spec.rows:
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


SIGNATURE_ROW = re.compile(r"^\| \[`((\w+)\(([^`]*)\))[^`]*`\]\(api/[\w.]+\.md#([\w.]+)\)", re.M)
"""A reference table row naming a public callable: its shown signature, linked to its API entry."""


def _shown_parameters(text: str) -> list[str]:
    """Parameter names of a shown signature such as `f(a, *, b=0, **rest)`."""
    parts, depth, current = [], 0, ""
    for char in text:
        depth += char in "([{"
        depth -= char in ")]}"
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    parts.append(current)
    names = [p.split("=")[0].strip().lstrip("*") for p in parts]
    return [n for n in names if n and n not in ("", "/", "...")]


def _signature_rows(page: Path) -> list[tuple[str, list[list[str]], list[str]]]:
    """Each signature row: what it shows, what the code allows (its parameters; for an error,
    its base classes too, which error rows show instead), and the parameter names shown."""
    import importlib
    import inspect

    rows = []
    for shown, _, params, target in SIGNATURE_ROW.findall(page.read_text(encoding="utf-8")):
        module, _, name = target.rpartition(".")
        obj = getattr(importlib.import_module(module), name)
        allowed = []
        with contextlib.suppress(ValueError, TypeError):  # builtin __init__: no signature
            allowed.append(list(inspect.signature(obj).parameters))
        if isinstance(obj, type) and issubclass(obj, BaseException):
            allowed.append([base.__name__ for base in obj.__bases__])
        rows.append((shown, allowed, _shown_parameters(params)))
    return rows


REFERENCE_PAGES = [DOCS / "reference" / f"{name}.md" for name in ("engine", "runtime", "stores")]


@pytest.mark.parametrize("page", REFERENCE_PAGES, ids=[p.name for p in REFERENCE_PAGES])
def test_the_reference_tables_show_the_signatures_the_code_has(page: Path) -> None:
    """Each table row that shows a public callable's signature (linked to its generated API
    entry) names the parameters the code has, in order; an error row, its base classes."""
    rows = _signature_rows(page)
    assert rows, "no signature row found: the row pattern no longer matches the page"
    assert [(shown, code) for shown, code, params in rows if params not in code] == []


def test_a_signature_row_that_drifted_is_caught(tmp_path: Path) -> None:
    """A row showing a parameter the code does not have (or missing one) fails the check."""
    page = tmp_path / "drift.md"
    page.write_text(
        "| [`RetryPolicy(max_attempts=3, backoff=1)`](api/sagafsm.md#sagafsm.RetryPolicy) | x |\n"
        "| [`SagaError(ValueError)`](api/sagafsm.md#sagafsm.InvalidDefinition) | x |\n",
        encoding="utf-8",
    )
    (_, code, shown), (_, bases, shown_bases) = _signature_rows(page)
    assert shown == ["max_attempts", "backoff"] and code[0][0] == "max_attempts"
    assert shown not in code
    assert ["SagaError", "ValueError"] in bases and shown_bases not in bases
