"""``sagafsm status`` and ``sagafsm resolve`` on real SQLite store files: running sagas with the
steps still to run, operator_required sagas with their reasons, a resolution recorded in the
status row and in the trace, and one-line refusals that change nothing."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from sagafsm import SagaBuilder, SagaDefinition
from sagafsm.checks import check_history, check_saga
from sagafsm.cli import main
from sagafsm.history import OperatorRecord, as_record, record_from_dict, record_to_dict
from sagafsm.runtime.clock import VirtualClock
from sagafsm.runtime.host import ParticipantHost
from sagafsm.runtime.memory_store import MemoryStore
from sagafsm.runtime.participant import ActionCall, CompensationCall, Participant, Refused
from sagafsm.runtime.runtime import Runtime
from sagafsm.runtime.sqlite_schema import MIGRATIONS, SCHEMA_VERSION
from sagafsm.runtime.sqlite_store import SqliteStore
from sagafsm.runtime.transport import InProcessTransport
from sagafsm.sim import load_scenario
from sagafsm.testing import RunOptions, run_saga

ORDER = load_scenario("order_fulfillment").definition
"""The built-in scenario's saga: status finds its definition by name, with no --scenario."""


def participants(definition: SagaDefinition) -> list[Participant]:
    """A handler for every step, steered by the saga's data: ``refuse`` names a step whose action
    refuses, ``hang`` one that never answers, ``stuck`` one whose compensation always fails."""
    made: dict[str, Participant] = {}
    for step in definition.steps:
        participant = made.setdefault(step.participant, Participant(step.participant))

        async def act(call: ActionCall, name: str = step.name) -> Mapping[str, Any] | None:
            if call.data.get("refuse") == name:
                raise Refused(f"{name} refused")
            if call.data.get("hang") == name:
                raise RuntimeError("no answer")
            return {"done": name}

        async def undo(call: CompensationCall, name: str = step.name) -> None:
            if call.data.get("stuck") == name:
                raise Refused(f"{name} cannot be undone now")

        participant.action(step.action)(act)
        if step.compensation is not None:
            participant.compensation(step.compensation)(undo)
    return list(made.values())


STUCK = {"refuse": "process_payment", "stuck": "reserve_inventory"}
"""Payment refuses; undoing the reservation fails every try: the saga needs an operator."""


async def in_flight(path: Path) -> None:
    """Two sagas left running: one waiting for payment's answer, one compensating (its refund
    failed once and waits out its back-off). The virtual clock never moves, so both stay."""
    store = SqliteStore(path)
    transport = InProcessTransport()
    clock = VirtualClock()
    async with Runtime(store, transport, [ORDER], clock=clock) as runtime:
        host = ParticipantHost(
            participants(ORDER), transport, store, clock, boot=await store.boot()
        )
        hosting = asyncio.ensure_future(host.run())
        await runtime.start(ORDER, {"hang": "process_payment"}, saga_id="waiting")
        await runtime.start(
            ORDER, {"refuse": "create_shipment", "stuck": "process_payment"}, saga_id="undoing"
        )
        for _ in range(500):
            payment = await store.status("waiting")
            undoing = await store.status("undoing")
            assert payment is not None and undoing is not None and undoing.snapshot is not None
            if undoing.snapshot["steps"][2][0] == "waiting_compensation_retry":
                break
            await asyncio.sleep(0.01)
        await host.close()
        await hosting


@pytest.fixture
def store_file(tmp_path: Path) -> Path:
    """A store with a saga needing an operator ("stuck") and two still running."""
    path = tmp_path / "orders.db"
    run = asyncio.run(
        run_saga(
            ORDER, participants(ORDER), STUCK, saga_id="stuck",
            options=RunOptions(store=lambda: SqliteStore(path)),
        )
    )  # fmt: skip
    assert run.state == "operator_required" and not run.violations
    asyncio.run(in_flight(path))
    return path


def url(path: Path) -> str:
    return f"sqlite:///{path}"


def status_json(path: Path, capsys: pytest.CaptureFixture[str], *flags: str) -> dict[str, Any]:
    assert main(["status", url(path), "--json", *flags]) == 0
    report: dict[str, Any] = json.loads(capsys.readouterr().out)
    return report


def trace(path: Path) -> list[tuple[Any, ...]]:
    async def read() -> list[tuple[Any, ...]]:
        async with SqliteStore(path) as store:
            return await store.trace()

    return asyncio.run(read())


def test_status_lists_running_sagas_with_the_steps_still_to_run(
    store_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The waiting saga still has payment and what follows to run; the compensating one has
    the refund (in flight) and then the reservation to undo, never the read-only check."""
    report = status_json(store_file, capsys)
    running = {saga["saga_id"]: saga for saga in report["running"]}
    assert set(running) == {"waiting", "undoing"}
    waiting = running["waiting"]
    assert waiting["state"] == "pending"
    assert waiting["active"] == {
        "step": "process_payment", "state": "executing", "attempt": 1, "max_attempts": 3
    }  # fmt: skip
    assert waiting["to_run"] == ["process_payment", "create_shipment", "send_confirmation"]
    assert waiting["to_compensate"] == [] and waiting["timer_due"] == pytest.approx(0.25)
    undoing = running["undoing"]
    assert undoing["state"] == "compensating" and undoing["to_run"] == []
    assert undoing["active"]["state"] == "waiting_compensation_retry"
    assert undoing["active"]["attempt"] == 1 and undoing["active"]["max_attempts"] == 5
    assert undoing["to_compensate"] == ["process_payment", "reserve_inventory"]


def test_status_lists_every_saga_that_needs_an_operator_with_its_reason(
    store_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The stuck saga, its reason from the engine, unresolved; the text says how to resolve."""
    (stuck,) = status_json(store_file, capsys)["operator_required"]
    assert stuck["saga_id"] == "stuck" and stuck["resolution"] is None
    assert "reserve_inventory" in stuck["reason"]
    assert main(["status", url(store_file)]) == 0
    text = capsys.readouterr().out
    assert text.splitlines()[0].endswith("2 running, 1 operator_required (1 unresolved)")
    assert "  waiting  pending: step process_payment executing, try 1 of 3" in text
    assert "      to compensate: process_payment, reserve_inventory" in text
    assert f"unresolved: sagafsm resolve {url(store_file)} stuck --note TEXT" in text


def test_resolve_records_the_note_in_the_status_and_the_trace(
    store_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """One resolve: the status row keeps the note, the trace ends with an operator record, and
    the checkers still find nothing wrong with the saga."""
    before = trace(store_file)
    assert main(["resolve", url(store_file), "stuck", "--note", "released by hand (T-42)"]) == 0
    assert capsys.readouterr().out.strip() == "saga stuck resolved: released by hand (T-42)"
    (stuck,) = status_json(store_file, capsys)["operator_required"]
    assert stuck["resolution"] == "released by hand (T-42)"
    after = trace(store_file)
    assert after[: len(before)] == before and len(after) == len(before) + 1
    record = as_record(after[-1])
    assert isinstance(record, OperatorRecord)
    assert (record.saga, record.action, record.note) == (
        "stuck",
        "resolve",
        "released by hand (T-42)",
    )
    mine = [r for r in after if r[2] == "stuck"]
    assert check_saga("stuck", mine, ORDER) == []
    assert main(["status", url(store_file)]) == 0
    assert "(0 unresolved)" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("saga", "note", "message"),
    [
        ("nobody", "x", "no saga 'nobody' in"),
        ("waiting", "x", "saga 'waiting' is pending, not operator_required: nothing to resolve"),
        ("stuck", "  ", "--note must say what was done"),
    ],
)
def test_resolve_refuses_in_one_line_and_changes_nothing(
    store_file: Path, capsys: pytest.CaptureFixture[str], saga: str, note: str, message: str
) -> None:
    """Exit status 2, one line on stderr, the trace and the statuses as they were."""
    before = trace(store_file)
    assert main(["resolve", url(store_file), saga, "--note", note]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err and err.startswith("sagafsm resolve: error:")
    assert trace(store_file) == before


def test_a_second_resolve_is_refused(store_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Resolved once, the saga keeps its first note."""
    assert main(["resolve", url(store_file), "stuck", "--note", "first"]) == 0
    assert main(["resolve", url(store_file), "stuck", "--note", "second"]) == 2
    assert "is resolved already: first" in capsys.readouterr().err


def test_a_store_that_is_not_there_or_not_a_store_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A missing file is not created; a SQLite file of someone else's is left alone."""
    missing = tmp_path / "typo.db"
    for command in (["status", url(missing)], ["resolve", url(missing), "s", "--note", "x"]):
        assert main(command) == 2
        assert "does not exist" in capsys.readouterr().err
    assert not missing.exists()
    foreign = tmp_path / "app.db"
    sqlite3.connect(foreign).execute("CREATE TABLE users (name TEXT)").connection.commit()
    assert main(["status", url(foreign)]) == 2
    assert "not a sagafsm store" in capsys.readouterr().err
    assert main(["status", "postgresql://127.0.0.1:1/orders"]) == 2
    assert "cannot connect" in capsys.readouterr().err


CUSTOM = (
    SagaBuilder("custom", timeout=1.0)
    .step("one", participant="p", action="one", compensation="undo_one")
    .pivot("two", participant="p", action="two")
    .build()
)

SCENARIO_FILE = """
from sagafsm import SagaBuilder
from sagafsm.sim import Scenario

def scenario():
    definition = (
        SagaBuilder("custom", timeout=1.0)
        .step("one", participant="p", action="one", compensation="undo_one")
        .pivot("two", participant="p", action="two")
        .build()
    )
    return Scenario(name="custom", definition=definition, make_domain=lambda rng: None,
                    make_order=lambda rng: {})
"""


def test_a_definition_no_scenario_defines_needs_scenario(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A running saga of a user's own definition: without --scenario, one line saying so; with
    the user's scenario file, its steps."""
    path = tmp_path / "custom.db"

    async def leave_running() -> None:
        async with Runtime(SqliteStore(path), InProcessTransport(), [CUSTOM]) as runtime:
            await runtime.start(CUSTOM, saga_id="c-1")  # nobody answers

    asyncio.run(leave_running())
    assert main(["status", url(path)]) == 2
    err = capsys.readouterr().err
    assert "saga 'c-1' runs definition 'custom', which no scenario given defines" in err
    scenario = tmp_path / "custom_scenario.py"
    scenario.write_text(SCENARIO_FILE)
    (saga,) = status_json(path, capsys, "--scenario", str(scenario))["running"]
    assert saga["to_run"] == ["one", "two"] and saga["active"]["step"] == "one"
    assert main(["status", url(path), "--scenario", "no_such_scenario"]) == 2
    assert "unknown scenario 'no_such_scenario'" in capsys.readouterr().err


def test_the_sqlite_store_resolves_only_an_unresolved_operator_required_saga(
    tmp_path: Path,
) -> None:
    """store.resolve: True once, then False with nothing appended; False for a saga that is not
    operator_required, or not there."""
    path = tmp_path / "s.db"

    async def body() -> None:
        options = RunOptions(store=lambda: SqliteStore(path))
        await run_saga(ORDER, participants(ORDER), STUCK, saga_id="stuck", options=options)
        await run_saga(ORDER, participants(ORDER), {}, saga_id="fine", options=options)
        async with SqliteStore(path) as store:
            record = (1.0, "operator", "stuck", "resolve", "done")
            length = len(await store.trace())
            assert await store.resolve("fine", "done", [record]) is False
            assert await store.resolve("nobody", "done", [record]) is False
            assert await store.resolve("stuck", "done", [record]) is True
            assert await store.resolve("stuck", "again", [record]) is False
            assert len(await store.trace()) == length + 1
            status = await store.status("stuck")
            assert status is not None and status.resolution == "done"
            fine = await store.status("fine")
            assert fine is not None and fine.state == "completed" and fine.resolution is None

    asyncio.run(body())


def test_the_memory_store_resolves_like_the_sqlite_one() -> None:
    """The reference store: same answers, the resolution in its status."""

    async def body() -> None:
        store = MemoryStore()
        run = await run_saga(
            ORDER, participants(ORDER), STUCK, saga_id="stuck",
            options=RunOptions(store=lambda: store),
        )  # fmt: skip
        assert run.state == "operator_required"
        async with store:
            record = (1.0, "operator", "stuck", "resolve", "done")
            assert await store.resolve("stuck", "done", [record]) is True
            assert await store.resolve("stuck", "again", [record]) is False
            status = await store.status("stuck")
            assert status is not None and status.resolution == "done"
            assert (await store.trace())[-1] == record

    asyncio.run(body())


def version_1_store(path: Path) -> Path:
    """A store file as sagafsm wrote it before schema 2, holding one operator_required saga."""
    conn = sqlite3.connect(path, isolation_level=None)
    for statement in MIGRATIONS[0]:
        conn.execute(statement)
    conn.execute("INSERT INTO sagafsm_meta (key, value) VALUES ('schema_version', 1)")
    conn.execute(
        "INSERT INTO sagafsm_sagas (saga_id, definition, state, reason, started_at, updated_at) "
        "VALUES ('old', 'order_fulfillment', 'operator_required', 'why', 0, 0)"
    )
    conn.close()
    return path


def test_a_version_1_store_gains_the_resolution_column(tmp_path: Path) -> None:
    """Migration 2 adds the column to a store written before it; its sagas read as unresolved."""
    path = version_1_store(tmp_path / "old.db")

    async def body() -> None:
        async with SqliteStore(path) as store:
            status = await store.status("old")
            assert status is not None and status.resolution is None
            assert await store.resolve("old", "fixed", []) is True

    asyncio.run(body())
    conn = sqlite3.connect(path)
    assert conn.execute(
        "SELECT value FROM sagafsm_meta WHERE key = 'schema_version'"
    ).fetchone() == (SCHEMA_VERSION,)
    assert conn.execute("SELECT resolution FROM sagafsm_sagas").fetchall() == [("fixed",)]
    conn.close()


def test_status_and_resolve_refuse_an_older_store_instead_of_upgrading_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An operator's command must not migrate a file that a runtime of the version before may
    be running on: one line naming the file and its version, exit 2, the file unchanged."""
    path = version_1_store(tmp_path / "old.db")
    before = path.read_bytes()
    for command in (["status", url(path)], ["resolve", url(path), "old", "--note", "x"]):
        assert main(command) == 2
        (line,) = capsys.readouterr().err.strip().splitlines()
        assert str(path) in line and "schema is version 1" in line
    assert path.read_bytes() == before
    empty = tmp_path / "empty.db"
    empty.touch()
    assert main(["status", url(empty)]) == 2
    assert "holds no schema" in capsys.readouterr().err
    assert empty.read_bytes() == b""


def test_an_operator_record_is_a_record_the_checkers_read_past() -> None:
    """Typed, round-tripped through a trace line, ignored by the checks, and no cover for a
    real violation beside it."""
    record = (5.0, "operator", "s", "resolve", "refunded by hand")
    typed = as_record(record)
    assert isinstance(typed, OperatorRecord) and typed == record
    assert record_from_dict(record_to_dict(record)) == record
    steps = (("t", "one"), ("t", "two"))
    clean = [
        (0.0, "start", "s", "custom"),
        *[(0.5, "transition", "s", step, "send", "pending", "executing") for _, step in steps],
        *[(1.0, "effect", "s", "p", step, "action") for _, step in steps],
        (2.0, "finish", "s", "completed", None),
    ]
    assert check_history([*clean, record], CUSTOM) == []
    effect = clean[3]
    doubled = [*clean[:4], effect, *clean[4:], record]
    assert [v.property for v in check_history(doubled, CUSTOM)] == [
        "no-duplicate-effect", "completed-exactly-once"
    ]  # fmt: skip


def test_the_text_says_when_a_timer_is_due_or_overdue() -> None:
    """A due time ahead is counted down; one behind means nobody runs the saga."""
    from sagafsm.cli.status import format_status

    saga = {
        "saga_id": "s", "state": "pending", "to_run": ["one"], "to_compensate": [],
        "active": {"step": "one", "state": "executing", "attempt": 2, "max_attempts": 3},
    }  # fmt: skip
    report = {"store": "sqlite:///x.db", "running": [{**saga, "timer_due": 110.0}],
              "operator_required": []}  # fmt: skip
    assert "try 2 of 3; next timer in 10.0 s" in format_status(report, 100.0)
    assert "its timer is overdue by 5.0 s (is the runtime running?)" in format_status(report, 115.0)
