"""`sagafsm run` on PostgreSQL: the order scenario's participants over tables in the database, its
two processes talking through the PostgreSQL transport, judged from the database as on SQLite."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import psycopg
import pytest

from sagafsm.checks import check_history
from sagafsm.cli import main
from sagafsm.errors import InvalidConfig
from sagafsm.runtime import (
    InProcessTransport,
    MemoryStore,
    ParticipantHost,
    Runtime,
    SqliteStore,
    WallClock,
)
from sagafsm.runtime.dialects import in_dialect
from sagafsm.runtime.postgres_store import PostgresStore
from sagafsm.runtime.scenario import (
    SETUP_PARTICIPANT,
    FinishedSaga,
    install_schema,
    load_runtime_scenario,
)


def _run(arguments: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    status = main(["run", "order_fulfillment", *arguments])
    out, err = capsys.readouterr()
    return status, out, err


def test_run_on_postgresql_is_clean_and_has_the_keys_of_the_sqlite_run(
    pg_url: str, tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    """The same command on postgresql:// exits 0 with every saga finished, no violation, and
    the very keys (metrics included) of the SQLite run; what finished matches the store."""
    status, out, _ = _run(["--store", pg_url, "--sagas", "50", "--json"], capsys)
    assert status == 0, out
    real = json.loads(out)
    status, out, _ = _run(
        ["--store", f"sqlite:///{tmp_path / 'orders.db'}", "--sagas", "5", "--json"], capsys
    )
    assert status == 0, out
    on_sqlite = json.loads(out)
    assert set(real) == set(on_sqlite)
    assert set(real["metrics"]) == set(on_sqlite["metrics"])
    assert real["violations"] == [] and real["violation_counts"] == {}
    assert sum(real["outcomes"].values()) == 50 and "unfinished" not in real["outcomes"]
    assert real["outcomes"]["completed"] > 0 and real["kills"] == 0
    with psycopg.connect(pg_url) as conn:
        (done,) = conn.execute(
            "SELECT count(*) FROM sagafsm_sagas WHERE snapshot IS NULL"
        ).fetchone() or (0,)
        (shipped,) = conn.execute(
            "SELECT count(*) FROM shipments WHERE cancelled = 0"
        ).fetchone() or (0,)
    assert done == 50 and shipped == real["outcomes"]["completed"]


def test_a_broken_runtime_on_postgresql_exits_1_with_its_violations(
    pg_url: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """--mutant publish-before-commit on PostgreSQL: the same checkers catch it (exit 1). The
    orchestrator dies between its publish and its commit once, so that a participant certainly
    acts on a move the store never saw (without a kill, catching it is a race the participant
    must win, which a busy machine can lose)."""
    monkeypatch.setenv("SAGAFSM_CRASH_AT", "orchestrator.before_commit:5")
    status, out, _ = _run(
        ["--store", pg_url, "--sagas", "40", "--mutant", "publish-before-commit"], capsys
    )
    assert status == 1 and "[outbox-rule]" in out


def test_a_second_run_on_the_same_database_carries_it_on_and_another_seed_is_refused(
    pg_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """The database remembers its run, as a SQLite file does: the same command reports it
    carried on, another seed is refused (exit 2, one line) and changes nothing."""
    arguments = ["--store", pg_url, "--sagas", "20"]
    assert _run(arguments, capsys)[0] == 0
    status, out, _ = _run(arguments, capsys)
    assert status == 0 and "(carried on)" in out
    status, _, err = _run([*arguments, "--seed", "2"], capsys)
    assert status == 2 and "holds another run" in err and err.count("\n") == 1


def test_a_server_that_cannot_be_reached_is_refused_in_one_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Nothing listens on port 1: exit 2, one line naming the URL, its password masked."""
    url = "postgresql://u:secret@127.0.0.1:1/db?connect_timeout=2"
    status, _, err = _run(["--store", url, "--sagas", "5"], capsys)
    assert status == 2 and "cannot connect" in err
    assert "secret" not in err and err.count("\n") == 1


async def _orders_on(url: str, orders: list[dict[str, Any]]) -> tuple[list[Any], list[str]]:
    scenario = load_runtime_scenario("order_fulfillment")
    store = PostgresStore(url)
    transport = InProcessTransport()
    ids = [f"order-{i}" for i in range(len(orders))]
    async with Runtime(store, transport, [scenario.definition]) as runtime:
        await install_schema(store, scenario)
        host = ParticipantHost(scenario.participants(), transport, store, WallClock(), boot=1)
        hosting = asyncio.ensure_future(host.run())
        for saga_id, order in zip(ids, orders, strict=True):
            await runtime.start(scenario.definition, order, saga_id=saga_id)
        statuses = [await runtime.wait(saga_id) for saga_id in ids]
        await host.close()
        await hosting
        records = await store.trace()
        finished = {
            s.saga_id: FinishedSaga(s.state, o) for s, o in zip(statuses, orders, strict=True)
        }
        async with store.transaction(SETUP_PARTICIPANT) as tx:
            problems = await scenario.check(tx, finished)
    assert check_history(records, scenario.definition) == []
    return statuses, problems


def test_the_handlers_refuse_and_undo_on_postgresql_as_on_sqlite(pg_url: str) -> None:
    """The same SQL on PostgreSQL: a blocked customer, short stock and short money fail with
    the simulator's reasons, and the failed order's reservation is released by its id."""
    orders = [
        {"sku": 1, "quantity": 2, "customer": 50, "amount": 30},
        {"sku": 1, "quantity": 1, "customer": 197, "amount": 10},
        {"sku": 2, "quantity": 600_000, "customer": 50, "amount": 10},
        {"sku": 3, "quantity": 1, "customer": 0, "amount": 31},
    ]
    statuses, problems = asyncio.run(_orders_on(pg_url, orders))
    assert [(s.state, s.reason) for s in statuses] == [
        ("completed", None),
        ("failed", "step 'verify_customer' failed: customer blocked"),
        ("failed", "step 'reserve_inventory' failed: out of stock"),
        ("failed", "step 'process_payment' failed: insufficient funds"),
    ]
    assert problems == []
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT stock, reserved FROM inventory WHERE sku = 3").fetchone() == (
            500_000,
            0,
        )
        assert conn.execute(
            "SELECT released FROM reservations WHERE saga_id = 'order-3'"
        ).fetchall() == [(1,)]


def test_a_statement_written_once_with_question_marks_runs_on_both_stores(
    pg_url: str, tmp_path: Any
) -> None:
    """in_dialect: the same text, a literal % in it, gives the same rows on SQLite and
    PostgreSQL; a memory store, which has no SQL, is refused by name."""
    sql = "SELECT ? || '%', ? + 1"

    async def rows(store: Any) -> list[Any]:
        async with store, store.transaction(SETUP_PARTICIPANT) as tx:
            result: list[Any] = await tx.execute(in_dialect(sql, tx.dialect), ("a", 41))
            return result

    on_sqlite = asyncio.run(rows(SqliteStore(tmp_path / "x.db")))
    on_postgres = asyncio.run(rows(PostgresStore(pg_url)))
    assert on_sqlite == on_postgres == [("a%", 42)]
    with pytest.raises(InvalidConfig, match="'memory' runs no SQL"):
        in_dialect(sql, MemoryStore.dialect)
    with pytest.raises(InvalidConfig, match="tables for sqlite and postgresql"):
        load_runtime_scenario("order_fulfillment").schema("memory")


def test_kill_every_on_postgresql_loses_nothing_and_every_saga_finishes(
    pg_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """--kill-every on PostgreSQL: the orchestrator is killed and restarted while it works (the
    replies it had claimed come back when their lease runs out, or the steps are retried); every
    saga finishes, recovered sagas included, and nothing wrong is found."""
    status, out, _ = _run(
        ["--store", pg_url, "--sagas", "400", "--kill-every", "1.0", "--json"], capsys
    )
    assert status == 0, out
    real = json.loads(out)
    # A kill may land between two sagas (nothing to recover), so only the kill itself is certain;
    # 400 sagas outlast the first kill even on a quiet machine (about 200 sagas/s there).
    assert real["kills"] >= 1
    assert real["violations"] == [] and "unfinished" not in real["outcomes"]
    assert real["outcomes"]["completed"] > 0
