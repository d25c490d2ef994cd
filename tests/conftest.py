"""Suite-wide settings.

Hypothesis's per-example deadline is off: it times each example, and on a shared two-core
machine a slow moment fails a correct test. Speed is measured in ``benchmarks/``, never here.

Tests marked ``slow`` (notebooks, the docs pages and site, real processes killed at crash points,
benchmark smoke runs...) are deselected unless ``--slow`` is given, or ``-m`` selects by marker:
``python -m pytest`` is a developer's fast run, ``python -m pytest --slow`` the whole suite (the
README's command, which CI runs). Both use every core (pytest-xdist, ``-n auto`` in pyproject).
"""

import pytest
from hypothesis import settings

settings.register_profile("sagafsm", deadline=None)
settings.load_profile("sagafsm")

from pg_support import pg_server, pg_url  # noqa: E402, F401  (the PostgreSQL test server)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--slow",
        action="store_true",
        help="also run the tests marked slow: the whole suite, as CI does",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--slow") or config.getoption("markexpr"):
        return
    slow = [item for item in items if item.get_closest_marker("slow") is not None]
    if slow:
        config.hook.pytest_deselected(items=slow)
        items[:] = [item for item in items if item.get_closest_marker("slow") is None]


def pytest_report_header(config: pytest.Config) -> str | None:
    if config.getoption("--slow") or config.getoption("markexpr"):
        return None
    return "slow tests deselected (the fast run): --slow runs the whole suite"
