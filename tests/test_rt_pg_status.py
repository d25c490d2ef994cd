"""``sagafsm status`` and ``sagafsm resolve`` on a PostgreSQL store: the same reports and the same
one-line refusals as on SQLite (test_rt_status.py), on a real server."""

from __future__ import annotations

import asyncio
import json

import psycopg
import pytest
from test_rt_status import ORDER, STUCK, participants

from sagafsm.cli import main
from sagafsm.runtime.postgres_store import PostgresStore
from sagafsm.testing import RunOptions, run_saga


@pytest.fixture
def stuck_store(pg_url: str) -> str:
    """A PostgreSQL store holding one saga that needs an operator ("stuck")."""
    run = asyncio.run(
        run_saga(
            ORDER, participants(ORDER), STUCK, saga_id="stuck",
            options=RunOptions(store=lambda: PostgresStore(pg_url)),
        )
    )  # fmt: skip
    assert run.state == "operator_required" and not run.violations
    return pg_url


def test_status_and_resolve_work_on_postgresql(
    stuck_store: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """status lists the stuck saga with its reason; resolve records the note; a second resolve
    is refused in one line."""
    assert main(["status", stuck_store, "--json"]) == 0
    (stuck,) = json.loads(capsys.readouterr().out)["operator_required"]
    assert stuck["saga_id"] == "stuck" and "reserve_inventory" in stuck["reason"]
    assert main(["resolve", stuck_store, "stuck", "--note", "refunded by hand"]) == 0
    capsys.readouterr()
    assert main(["status", stuck_store, "--json"]) == 0
    (stuck,) = json.loads(capsys.readouterr().out)["operator_required"]
    assert stuck["resolution"] == "refunded by hand"
    assert main(["resolve", stuck_store, "stuck", "--note", "again"]) == 2
    err = capsys.readouterr().err
    assert "is resolved already" in err and err.count("\n") == 1


@pytest.mark.parametrize(
    ("prepare", "message"),
    [
        ("", "not a sagafsm store (it holds no schema)"),
        ("CREATE TABLE users (name text)", "not a sagafsm store (it has tables users)"),
    ],
)
def test_status_refuses_a_database_that_is_not_a_store_and_creates_nothing(
    pg_url: str, capsys: pytest.CaptureFixture[str], prepare: str, message: str
) -> None:
    """An operator's typo does not create a store: exit 2, one line, no table made."""
    if prepare:
        with psycopg.connect(pg_url) as conn:
            conn.execute(prepare)  # type: ignore[call-overload]
    assert main(["status", pg_url]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    with psycopg.connect(pg_url) as conn:
        names = conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
        ).fetchall()
    assert [name for (name,) in names] == (["users"] if prepare else [])
