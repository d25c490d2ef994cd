"""A choreographed saga on the runtime: real stores, real transports, real SIGKILLs, the same
checkers as the simulated choreography; and the broken variants those checkers catch."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from sagafsm.choreography.node import Switches
from sagafsm.runtime import SqliteStore, SqliteTransport
from sagafsm.runtime.choreography_run import ChoreographyVerdict, run_in_process
from sagafsm.runtime.choreography_supervisor import ChoreographyPlan, supervise_choreography
from sagafsm.runtime.crashpoints import CHOREOGRAPHY_CRASH_POINTS
from sagafsm.runtime.scenario import load_runtime_scenario

SAGAS = 30


def _in_process(
    path: Path, *, sqlite_transport: bool = False, switches: Switches | None = None
) -> ChoreographyVerdict:
    async def go() -> ChoreographyVerdict:
        scenario = load_runtime_scenario("order_fulfillment")
        async with SqliteStore(path) as store:
            transport = SqliteTransport(path) if sqlite_transport else None
            if transport is not None:
                await transport.open()
            try:
                return await run_in_process(
                    scenario, store, sagas=SAGAS, transport=transport, switches=switches
                )
            finally:
                if transport is not None:
                    await transport.close()

    return asyncio.run(go())


def test_a_choreography_runs_clean_in_one_process_on_the_in_process_transport(
    tmp_path: Path,
) -> None:
    """Every saga ends, and the simulated choreography's checkers find nothing."""
    verdict = _in_process(tmp_path / "run.db")
    assert verdict.ok, verdict.violations[:3]
    assert sum(verdict.outcomes.values()) == SAGAS
    assert verdict.messages_per_saga > 0


def test_a_choreography_runs_clean_over_the_sqlite_transport(tmp_path: Path) -> None:
    """The same, with events as rows of the SQLite transport's queue."""
    verdict = _in_process(tmp_path / "run.db", sqlite_transport=True)
    assert verdict.ok, verdict.violations[:3]
    assert verdict.outcomes.get("completed", 0) > 0


def test_the_checkers_read_a_real_run_as_they_read_a_simulated_one(tmp_path: Path) -> None:
    """The trace holds the record kinds the simulated choreography writes, roles' moves
    included (the termination check reads them: every role of every saga ended)."""

    async def records() -> list[tuple[Any, ...]]:
        async with SqliteStore(tmp_path / "run.db") as store:
            return await store.trace()

    _in_process(tmp_path / "run.db")
    trace = asyncio.run(records())
    kinds = {r[1] for r in trace}
    assert {"start", "transition", "emit", "send", "effect", "finish"} <= kinds
    emitted = {r[3] for r in trace if r[1] == "emit"}
    assert all(r[6] in emitted for r in trace if r[1] == "emit" and r[6] is not None)
    assert {r[6] for r in trace if r[1] == "send"} == {"event"}
    roles = {r[3] for r in trace if r[1] == "transition"}
    assert {None, "reserve_inventory", "create_shipment"} <= roles


def _supervised(tmp_path: Path, **options: Any) -> Any:
    tmp_path.mkdir(exist_ok=True)
    settings: dict[str, Any] = {"sagas": SAGAS, "timeout": 0.5, "deadline": 60.0, **options}
    plan = ChoreographyPlan(
        scenario="order_fulfillment", store=f"sqlite:///{tmp_path / 'run.db'}", **settings
    )
    return supervise_choreography(plan)


@pytest.mark.parametrize("point", CHOREOGRAPHY_CRASH_POINTS)
@pytest.mark.parametrize("participant", ["payment", "order_fulfillment"])
def test_a_participant_killed_at_a_crash_point_restarts_and_every_saga_finishes(
    tmp_path: Path, point: str, participant: str
) -> None:
    """SIGKILL at each crash point of a step's participant and of the initiator, in their
    first passes and later ones: restarted, every saga ends and the checkers are clean."""
    result = _supervised(tmp_path, crashes={participant: (f"{point}:2", f"{point}:7")})
    assert result.kills == {participant: 2}
    assert result.ok, (result.stopped, result.verdict.violations[:3])
    assert sum(result.verdict.outcomes.values()) == SAGAS


@pytest.mark.slow
def test_participants_killed_at_random_moments_lose_nothing(tmp_path: Path) -> None:
    """Six SIGKILLs of participants drawn by the seed, at moments spread over the run (a kill
    that falls after the last saga ended is not made)."""
    result = _supervised(tmp_path, kills=6, sagas=80)
    assert sum(result.kills.values()) >= 4
    assert result.ok, (result.stopped, result.verdict.violations[:3])


def test_without_dedup_by_event_id_a_redelivered_event_runs_a_step_twice(tmp_path: Path) -> None:
    """The broken variant: killed after publishing its success event and before acking the event
    that started its step, the participant hears that event again and acts on it again; the
    checkers say so. The correct participant, killed at the same place, is clean."""
    crash = {"payment": ("participant.after_publish:1",)}
    broken = _supervised(tmp_path / "broken", crashes=crash, mutant="no-dedup-events")
    assert broken.verdict.violation_counts.get("no-duplicate-effect", 0) >= 1
    assert "domain-invariants" in broken.verdict.violation_counts
    fixed = _supervised(tmp_path / "fixed", crashes=crash)
    assert fixed.ok, fixed.verdict.violations[:3]


def test_without_its_timers_read_back_a_restarted_participant_strands_a_saga(
    tmp_path: Path,
) -> None:
    """The broken variant: killed while running its action (its try timer armed in the pass
    before), the participant drops the redelivered event as seen; only the try timer, read back
    from its row, runs the action again. Without it the saga never ends: termination."""
    crash = {"inventory": ("participant.before_commit:2",)}
    broken = _supervised(tmp_path / "broken", crashes=crash, mutant="no-timer-rearm", deadline=15.0)
    assert broken.stopped is not None
    assert broken.verdict.violation_counts.get("termination", 0) >= 1
    fixed = _supervised(tmp_path / "fixed", crashes=crash)
    assert fixed.ok, fixed.verdict.violations[:3]


def _cli(*arguments: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sagafsm", "run", "order_fulfillment", "--style", "choreography",
         *arguments],
        capture_output=True, text=True, timeout=120, env=env,
    )  # fmt: skip


def test_sagafsm_run_style_choreography_prints_a_clean_verdict(tmp_path: Path) -> None:
    """The command runs the participants as processes and judges the store (exit 0)."""
    done = _cli("--store", f"sqlite:///{tmp_path / 'cli.db'}", "--sagas", "20", "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["style"] == "choreography"
    assert result["violation_counts"] == {}
    assert sum(result["outcomes"].values()) == 20


@pytest.mark.parametrize(
    ("arguments", "says"),
    [
        (("--store", "memory://"), "a real run needs a store its processes share"),
        (("--mutant", "publish-before-commit"), "unknown mutant 'publish-before-commit'"),
        (("--sagas", "0"), "--sagas must be at least 1"),
        (("--workers", "2"), "--workers 2: a choreography has no orchestrator"),
    ],
)
def test_bad_combinations_are_refused_in_one_line(
    tmp_path: Path, arguments: tuple[str, ...], says: str
) -> None:
    """Exit 2, one line naming the input, and no store file created."""
    store = tmp_path / "never.db"
    done = _cli("--store", f"sqlite:///{store}", *arguments)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and says in done.stderr
    assert not store.exists()


def test_an_orchestrator_crash_point_is_refused_for_a_choreography(tmp_path: Path) -> None:
    """A choreography has no orchestrator: its crash points are refused, exit 2."""
    import os

    env = {**os.environ, "SAGAFSM_CRASH_AT": "orchestrator.after_commit:2"}
    done = _cli("--store", f"sqlite:///{tmp_path / 'x.db'}", env=env)
    assert done.returncode == 2
    assert "a choreography has no orchestrator" in done.stderr


def test_a_choreography_runs_clean_on_postgresql(pg_url: str) -> None:
    """The same participants, tables and checks on a real PostgreSQL server, its transport
    carrying the events."""
    from sagafsm.runtime.postgres_store import PostgresStore
    from sagafsm.runtime.postgres_transport import PostgresTransport

    async def go() -> ChoreographyVerdict:
        scenario = load_runtime_scenario("order_fulfillment")
        async with PostgresStore(pg_url) as store:
            transport = PostgresTransport(pg_url)
            await transport.open()
            try:
                return await run_in_process(scenario, store, sagas=SAGAS, transport=transport)
            finally:
                await transport.close()

    verdict = asyncio.run(go())
    assert verdict.ok, verdict.violations[:3]
    assert sum(verdict.outcomes.values()) == SAGAS


def test_a_compensation_that_overtakes_its_action_leaves_a_tombstone(tmp_path: Path) -> None:
    """Inventory hears the payment failed before it heard the event that starts its step: it
    compensates as a no-op (a tombstone), announces it, and the late event runs nothing."""
    from sagafsm.choreography.events import ChoreographyEvent
    from sagafsm.runtime import InProcessTransport
    from sagafsm.runtime.choreography_run import choreography_for, install, make_host
    from sagafsm.runtime.choreography_wire import event_envelope
    from sagafsm.runtime.clock import WallClock

    scenario = load_runtime_scenario("order_fulfillment")
    choreography = choreography_for(scenario)
    order = scenario.saga_data(1, 1)[0]

    def event(name: str, source: str, n: int) -> Any:
        data = {"input": order, "results": {}}
        made = ChoreographyEvent(
            saga_id="s", event_id=f"s/{source}/e{n}", causation_id=None, name=name,
            source=source, data=data,
        )  # fmt: skip
        return event_envelope(made, "inventory", n)

    async def go() -> list[tuple[Any, ...]]:
        async with SqliteStore(tmp_path / "t.db") as store:
            await install(store, scenario, store.dialect)
            transport = InProcessTransport()
            host = make_host(scenario, choreography, ["inventory"], transport, store, WallClock())
            running = asyncio.ensure_future(host.run())
            await transport.send(event("ProcessPaymentFailed", "payment", 1))
            await transport.send(event("VerifyCustomerSucceeded", "customers", 1))
            while transport.queued("inventory") or not host.idle():
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.1)
            await host.close()
            await running
            return await store.trace()

    trace = asyncio.run(go())
    effects = [r[5] for r in trace if r[1] == "effect"]
    assert effects == ["compensation_noop"]
    moves = [(r[4], r[5], r[6]) for r in trace if r[1] == "transition"]
    assert moves[0] == ("ProcessPaymentFailed", "waiting", "compensating")
    assert ("ReserveInventoryCompensated", "compensating", "compensated") in moves
    assert any(r[1] == "ignored" and r[3] == "VerifyCustomerSucceeded" for r in trace)


@pytest.mark.slow
@pytest.mark.parametrize("first", ["orchestration", "choreography"])
def test_a_store_holding_one_style_of_run_is_refused_by_the_other(
    tmp_path: Path, first: str
) -> None:
    """The plan row remembers the style: the same scenario, seed and sagas in the other style
    would judge tables the store never had, so it is refused in one line and the store is left
    as it was."""
    store = tmp_path / "run.db"
    styles = {"orchestration": [], "choreography": ["--style", "choreography"]}
    common = ["run", "order_fulfillment", "--store", f"sqlite:///{store}", "--sagas", "10"]

    def run(style: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "sagafsm", *common, *styles[style]]
        return subprocess.run(command, capture_output=True, text=True, timeout=120)

    assert run(first).returncode == 0
    before = store.read_bytes()
    second = run("choreography" if first == "orchestration" else "orchestration")
    assert second.returncode == 2, second.stdout
    assert second.stderr.count("\n") == 1 and "holds another run" in second.stderr
    assert f"style {first}" in second.stderr
    assert store.read_bytes() == before


@pytest.mark.parametrize("initiator", [None, "payment"])
def test_a_restarted_initiator_reads_back_which_sagas_ended(
    tmp_path: Path, initiator: str | None
) -> None:
    """A second life of the initiator knows every saga the first one saw end, so carrying the
    run on starts none again and waits for none: also when the initiator runs a step of its own
    (here payment), whose saga rows hold its step's role next to the outcome role."""
    import attrs

    from sagafsm.runtime import InProcessTransport
    from sagafsm.runtime import choreography_run as run
    from sagafsm.runtime.clock import WallClock

    scenario = load_runtime_scenario("order_fulfillment")
    choreography = run.choreography_for(scenario)
    if initiator is not None:
        choreography = attrs.evolve(choreography, initiator=initiator)

    def quiet(host: Any, transport: InProcessTransport) -> bool:
        return host.idle() and not any(map(transport.queued, choreography.participants))

    async def life(store: SqliteStore) -> dict[str, str]:
        transport = InProcessTransport()
        host = run.make_host(
            scenario, choreography, choreography.participants, transport, store, WallClock()
        )

        async def drive() -> None:
            await run.start_all(host, scenario, sagas=SAGAS, seed=1, concurrency=10)
            await run.settle(store, queue=False, idle=lambda: quiet(host, transport))
            await host.close()

        async with asyncio.timeout(20), asyncio.TaskGroup() as group:
            group.create_task(host.run())
            group.create_task(drive())
        return dict(host.outcomes)

    async def go() -> tuple[dict[str, str], dict[str, str]]:
        async with SqliteStore(tmp_path / "run.db") as store:
            await run.install(store, scenario, store.dialect)
            first = await life(store)
        async with SqliteStore(tmp_path / "run.db") as store:
            return first, await life(store)

    first, second = asyncio.run(go())
    assert len(first) == SAGAS and second == first
