"""`sagafsm run` and the order scenario on the real runtime: its handlers over SQL tables, its data
drawn as the simulator draws it, its invariants, the worker processes, the report and bad input."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from sagafsm import SagaState
from sagafsm.checks import check_history
from sagafsm.cli import main
from sagafsm.runtime import InProcessTransport, ParticipantHost, Runtime, SqliteStore, WallClock
from sagafsm.runtime.scenario import (
    SETUP_PARTICIPANT,
    FinishedSaga,
    install_schema,
    load_runtime_scenario,
)
from sagafsm.sim import simulate
from sagafsm.sim.scenario import Scenario, load_scenario
from simulations._order_runtime import invariants
from simulations.order_fulfillment import OrderDomain

WORKER = [sys.executable, "-m", "sagafsm.runtime.worker"]


# -- the scenario --------------------------------------------------------------------------


def test_the_orders_are_the_ones_the_simulator_draws_from_the_same_seed() -> None:
    """Saga i of a real run gets the data the simulator gives its saga s{i-1}."""
    seen: dict[str, Mapping[str, Any]] = {}

    class Recording(OrderDomain):
        def saga_finished(self, saga_id: str, data: Mapping[str, Any], state: SagaState) -> None:
            seen[saga_id] = dict(data)
            super().saga_finished(saga_id, data, state)

    original = load_scenario("order_fulfillment")
    scenario = Scenario(
        name=original.name,
        definition=original.definition,
        make_domain=Recording,
        make_order=original.make_order,
        defaults=original.defaults,
    )
    simulate(scenario, scenario.config(sagas=40, seed=7))
    drawn = load_runtime_scenario("order_fulfillment").saga_data(7, 40)
    assert drawn == [seen[f"s{i}"] for i in range(40)]


async def _run_orders(path: Path, orders: list[dict[str, Any]]) -> tuple[list[Any], list[str]]:
    scenario = load_runtime_scenario("order_fulfillment")
    store = SqliteStore(path)
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


def test_the_handlers_refuse_as_the_simulated_services_decline_and_undo_by_id(
    tmp_path: Path,
) -> None:
    """A blocked customer, short stock and short money fail the order with the simulator's
    reasons; what an order took before it failed is given back; a completed order's shipment
    stands on its own reservation and payment, by the ids they handed out."""
    orders = [
        {"sku": 1, "quantity": 2, "customer": 50, "amount": 30},
        {"sku": 1, "quantity": 1, "customer": 197, "amount": 10},
        {"sku": 2, "quantity": 600_000, "customer": 50, "amount": 10},
        {"sku": 3, "quantity": 1, "customer": 0, "amount": 31},
    ]
    statuses, problems = asyncio.run(_run_orders(tmp_path / "orders.db", orders))
    assert [(s.state, s.reason) for s in statuses] == [
        ("completed", None),
        ("failed", "step 'verify_customer' failed: customer blocked"),
        ("failed", "step 'reserve_inventory' failed: out of stock"),
        ("failed", "step 'process_payment' failed: insufficient funds"),
    ]
    assert problems == []
    results = statuses[0].results or {}
    shipment = results["create_shipment"]["shipment_id"]
    assert results["send_confirmation"] == {"confirmation": f"order order-0 ships as {shipment}"}
    db = sqlite3.connect(tmp_path / "orders.db")
    assert db.execute("SELECT stock, reserved FROM inventory WHERE sku = 3").fetchone() == (
        500_000,
        0,
    )
    (reservation_id,) = db.execute("SELECT id FROM reservations WHERE saga_id = 'order-3'")
    assert db.execute("SELECT released FROM reservations WHERE id = ?", reservation_id).fetchone()
    assert db.execute(
        "SELECT reservation_id, payment_id FROM shipments WHERE saga_id = 'order-0'"
    ).fetchone() == (
        results["reserve_inventory"]["reservation_id"],
        results["process_payment"]["payment_id"],
    )


def _rows(**tables: list[tuple[Any, ...]]) -> dict[str, list[tuple[Any, ...]]]:
    empty: dict[str, list[tuple[Any, ...]]] = {
        "inventory": [(1, 500_000, 0)],
        "accounts": [(50, 10_000_000)],
        "reservations": [],
        "payments": [],
        "shipments": [],
        "notices": [],
        "unknown_undos": [],
    }
    return {**empty, **tables}


ORDER = {"sku": 1, "quantity": 2, "customer": 50, "amount": 30}


def test_the_domain_invariants_hold_for_balanced_tables_and_catch_each_kind_of_breakage() -> None:
    """Pure over rows: balanced tables pass; a second reservation, a failed order still holding
    stock, a shipment against another order's payment and an undo of nothing are each found."""
    done = {"s-1": FinishedSaga("completed", ORDER)}
    balanced = _rows(
        inventory=[(1, 499_998, 2)],
        accounts=[(50, 9_999_970)],
        reservations=[(1, "s-1", 1, 2, 0)],
        payments=[(1, "s-1", 50, 30, 0)],
        shipments=[(1, "s-1", "res-1", "pay-1", 0)],
        notices=[("s-1", "confirmation")],
    )
    assert invariants(balanced, done) == []
    twice = _rows(**{**balanced, "reservations": [(1, "s-1", 1, 2, 0), (2, "s-1", 1, 2, 1)]})
    assert any("2 reservations" in p for p in invariants(twice, done))
    failed = {"s-1": FinishedSaga("failed", ORDER)}
    holding = _rows(inventory=[(1, 499_998, 2)], reservations=[(1, "s-1", 1, 2, 0)])
    assert any("still holds its reservation" in p for p in invariants(holding, failed))
    crossed = _rows(**{**balanced, "shipments": [(1, "s-1", "res-1", "pay-9", 0)]})
    assert any("which is no one's" in p for p in invariants(crossed, done))
    undone = _rows(**{**balanced, "unknown_undos": [("s-1", "release of res-1")]})
    assert any("undone twice" in p for p in invariants(undone, done))
    leak = _rows(**{**balanced, "accounts": [(50, 9_999_971)]})
    assert any("money of customer 50 not conserved" in p for p in invariants(leak, done))


# -- sagafsm run ---------------------------------------------------------------------------


def _store(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'orders.db'}"


@pytest.mark.slow
def test_run_json_has_the_keys_of_simulate_json_plus_kills(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The same keys (metrics included) as `simulate --json` but its `config`, plus `kills`; a
    clean run exits 0."""
    assert main(["simulate", "order_fulfillment", "--sagas", "20", "--json"]) == 0
    simulated = json.loads(capsys.readouterr().out)
    status = main(["run", "order_fulfillment", "--store", _store(tmp_path), "--sagas", "60",
                   "--json"])  # fmt: skip
    real = json.loads(capsys.readouterr().out)
    assert status == 0
    # simulate's `config` is the simulated configuration (seed, faults...): a real run has none
    assert set(real) == (set(simulated) - {"config"}) | {"kills"}
    assert set(simulated["metrics"]) <= set(real["metrics"])
    assert set(simulated["metrics"]["latency"]) == set(real["metrics"]["latency"])
    assert sum(real["outcomes"].values()) == 60 and real["violations"] == []
    assert real["kills"] == 0 and real["digest"] is None and real["sim_time"] is None
    latency = real["metrics"]["latency"]
    assert 0 < latency["p50"] <= latency["p95"] <= latency["p99"] <= latency["max"]
    assert real["metrics"]["throughput_per_s"] > 0


@pytest.mark.slow
def test_kill_every_kills_the_orchestrator_while_it_works_and_the_report_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--kill-every: the orchestrator is killed and restarted; the text report counts the kills
    and the recoveries, and finds nothing wrong."""
    status = main(["run", "order_fulfillment", "--store", _store(tmp_path), "--sagas", "150",
                   "--kill-every", "0.4"])  # fmt: skip
    out = capsys.readouterr().out
    assert status == 0, out
    kills = int(out.split("kills ")[1].split()[0].rstrip(":"))
    assert kills >= 1 and "sagas recovered" in out
    assert "violations          none" in out


@pytest.mark.slow
def test_a_broken_runtime_exits_1_with_its_violations_in_the_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--mutant publish-before-commit: caught by the outbox rule even with no kill at all.
    Without a kill it takes a participant answering before the orchestrator's commit, a race:
    60 sagas lost it in about one run in eight on a loaded machine; 200 give it more batches."""
    status = main(["run", "order_fulfillment", "--store", _store(tmp_path), "--sagas", "200",
                   "--mutant", "publish-before-commit"])  # fmt: skip
    out = capsys.readouterr().out
    assert status == 1 and "[outbox-rule]" in out


def test_the_help_names_every_runtime_mutant() -> None:
    """The help names the runtime mutants from a list of its own (building the parser imports
    no runtime): the two lists agree."""
    from sagafsm.cli.run import _MUTANTS
    from sagafsm.runtime.mutants import RUNTIME_MUTANTS

    assert set(_MUTANTS) == set(RUNTIME_MUTANTS)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["nope"], "unknown scenario 'nope'"),
        (["travel_booking"], "cannot run for real"),
        (["order_fulfillment", "--sagas", "0"], "--sagas must be at least 1"),
        (["order_fulfillment", "--concurrency", "0"], "--concurrency must be at least 1"),
        (["order_fulfillment", "--kill-every", "0"], "--kill-every must be positive"),
        (["order_fulfillment", "--mutant", "bogus"], "unknown mutant 'bogus'"),
    ],
)
def test_bad_input_is_one_line_and_exit_2_with_nothing_created(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], arguments: list[str], message: str
) -> None:
    """Checked before any file or process exists."""
    assert main(["run", *arguments, "--store", _store(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("memory://", "a real run needs a store its processes share"),
        ("postgresql://u:secret@127.0.0.1:1/db?connect_timeout=2", "cannot connect"),
        ("ftp://orders", "not a store URL"),
        ("sqlite:///{tmp}/missing/orders.db", "does not exist"),
        ("sqlite:///{tmp}/notes.db", "not a SQLite database"),
    ],
)
def test_a_store_that_cannot_be_used_is_refused_before_it_is_touched(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], url: str, message: str
) -> None:
    """An unknown kind of URL, a memory store, a PostgreSQL server that is not there, a missing
    directory, a file that is not SQLite: exit 2, and the directory holds what it held."""
    (tmp_path / "notes.db").write_text("not a database\n")
    assert main(["run", "order_fulfillment", "--store", url.format(tmp=tmp_path)]) == 2
    err = capsys.readouterr().err
    assert message in err and "secret" not in err and err.count("\n") == 1
    assert [p.name for p in tmp_path.iterdir()] == ["notes.db"]
    assert (tmp_path / "notes.db").read_text() == "not a database\n"


def test_a_store_of_a_newer_schema_is_refused_and_left_as_it_was(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A store another version wrote: exit 2, not a byte changed."""
    path = tmp_path / "orders.db"
    asyncio.run(_read_back(path))  # created by this version...
    with sqlite3.connect(path) as db:  # ...then "upgraded" by a newer one
        db.execute("UPDATE sagafsm_meta SET value = 99 WHERE key = 'schema_version'")
    db.close()
    before = path.read_bytes()
    assert main(["run", "order_fulfillment", "--store", _store(tmp_path), "--sagas", "5"]) == 2
    assert "newer" in capsys.readouterr().err
    assert path.read_bytes() == before


@pytest.mark.slow
def test_a_second_run_on_the_same_store_carries_it_on_and_another_seed_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The store remembers its run: the same command again reports it (nothing to start), a
    different seed would judge orders the store never saw, so it is refused."""
    arguments = ["run", "order_fulfillment", "--store", _store(tmp_path), "--sagas", "30"]
    assert main([*arguments, "--json"]) == 0
    first = json.loads(capsys.readouterr().out)
    assert main(arguments) == 0
    assert "(carried on)" in capsys.readouterr().out
    assert main([*arguments, "--seed", "2"]) == 2
    assert "holds another run" in capsys.readouterr().err
    assert first["outcomes"]["completed"] > 0


# -- the worker processes ------------------------------------------------------------------


@pytest.mark.slow
def test_the_workers_stop_gracefully_on_sigterm_and_a_new_orchestrator_carries_on(
    tmp_path: Path,
) -> None:
    """SIGTERM: both roles exit 143 without a traceback; the next orchestrator recovers what the
    first left running and finishes every saga (exit 0)."""
    store = _store(tmp_path)
    # Enough sagas that the first orchestrator cannot finish them all in its 0.5 s (80 did, on
    # a quiet machine, and the second then had nothing to recover).
    common = ["--scenario", "order_fulfillment", "--store", store, "--sagas", "400"]
    with subprocess.Popen([*WORKER, "participants", *common], stderr=subprocess.PIPE) as host:
        try:
            with subprocess.Popen(
                [*WORKER, "orchestrator", *common], stdout=subprocess.PIPE, stderr=subprocess.PIPE
            ) as first:
                assert first.stdout is not None and first.stdout.readline() == b"ready\n"
                time.sleep(0.5)
                first.send_signal(signal.SIGTERM)
                _, said = first.communicate(timeout=20)
            assert first.returncode == 143 and b"Traceback" not in said
            second = subprocess.run(
                [*WORKER, "orchestrator", *common], capture_output=True, timeout=60
            )
            assert second.returncode == 0, second.stderr
        finally:
            host.send_signal(signal.SIGTERM)
            _, said = host.communicate(timeout=20)
    assert host.returncode == 143 and b"Traceback" not in said
    records, statuses = asyncio.run(_read_back(tmp_path / "orders.db"))
    assert len(statuses) == 400 and all(s.snapshot is None for s in statuses)
    restarts = [r for r in records if r[1] == "restart"]
    assert len(restarts) == 2 and restarts[1][4] > 0  # the second recovered sagas


async def _read_back(path: Path) -> tuple[list[Any], list[Any]]:
    async with SqliteStore(path) as store:
        return await store.trace(), await store.sagas()


def test_a_worker_given_bad_input_says_so_in_one_line_and_exits_2(tmp_path: Path) -> None:
    """The worker checks its input as the command does (an unknown scenario here)."""
    done = subprocess.run(
        [*WORKER, "orchestrator", "--scenario", "nope", "--store", _store(tmp_path)],
        capture_output=True,
        text=True,
        env={k: v for k, v in os.environ.items() if k != "SAGAFSM_CRASH_AT"},
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "unknown scenario 'nope'" in done.stderr
    assert list(tmp_path.iterdir()) == []
