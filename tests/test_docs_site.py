"""The docs site: `mkdocs build --strict` passes, and what it builds works offline."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# one pytest-xdist worker takes them all, so the site is built once (--dist loadgroup)
pytestmark = pytest.mark.xdist_group("docs-site")


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("site")
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(folder)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return folder


@pytest.mark.slow
def test_the_lifecycle_page_shows_svg_diagrams_drawn_from_the_tables(site: Path) -> None:
    """Each lifecycle is an <img> of an SVG the build drew, with every state of its table."""
    from sagafsm import LIFECYCLES

    page = (site / "reference" / "lifecycles" / "index.html").read_text(encoding="utf-8")
    for name, spec in LIFECYCLES.items():
        assert f'src="../../assets/lifecycles/{name}.svg"' in page
        svg = (site / "assets" / "lifecycles" / f"{name}.svg").read_text(encoding="utf-8")
        assert svg.lstrip().startswith("<?xml") and "<svg" in svg
        # matplotlib draws text as paths, each after a comment holding the text
        words = " ".join(re.findall(r"<!-- (.*?) -->", svg)).split()
        assert f"{name} lifecycle" in " ".join(words)
        for state in spec.states:
            assert set(str(state.value).split("_")) <= set(words), state
    assert "```mermaid" not in page and 'class="mermaid"' not in page


@pytest.mark.slow
def test_the_api_reference_is_generated_from_the_docstrings(site: Path) -> None:
    """The API pages carry the code's own signatures and docstrings."""
    from sagafsm import SagaInstance
    from sagafsm.checks import check_history

    api = (site / "reference" / "api" / "sagafsm" / "index.html").read_text(encoding="utf-8")
    assert 'id="sagafsm.SagaInstance"' in api
    first_line = (SagaInstance.__doc__ or "").strip().splitlines()[0]
    assert first_line and _text(first_line) in _text(api)
    checks = (site / "reference" / "api" / "checks" / "index.html").read_text(encoding="utf-8")
    assert _text((check_history.__doc__ or "").split(".")[0]) in _text(checks)


@pytest.mark.slow
def test_no_page_loads_a_script_or_style_from_another_host(site: Path) -> None:
    """Offline means offline: every script and stylesheet is served from the site itself."""
    remote = re.compile(r"<(?:script|link)[^>]+(?:src|href)=\"(?:https?:)?//", re.I)
    offenders = [
        page.relative_to(site).as_posix()
        for page in site.rglob("*.html")
        if remote.search(page.read_text(encoding="utf-8"))
    ]
    assert offenders == []


def _text(html: str) -> str:
    """Words only: tags, entities and spacing removed, so prose and HTML compare."""
    plain = re.sub(r"<[^>]+>", " ", html)
    plain = re.sub(r"&[#\w]+;", " ", plain)
    return " ".join(re.findall(r"[\w']+", plain))


@pytest.mark.slow
def test_mkdocs_build_strict_passes_and_writes_every_nav_page(site: Path) -> None:
    """The build fails on any warning (a broken link, a docstring griffe cannot read); each page
    the nav names is written."""
    config = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    pages = re.findall(r":\s*([\w/.-]+)\.md\s*$", config, re.M)
    assert len(pages) > 20
    for page in pages:
        built = site / ("index.html" if page == "index" else f"{page}/index.html")
        assert built.exists(), page
