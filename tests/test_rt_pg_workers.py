"""Several orchestrator workers on one PostgreSQL store (`sagafsm run --workers N`).

The claims first, in process with explicit clock values: an outbox row or a timer is held by
one worker until its lease runs out, then by exactly one other. Then real runs: N worker
processes and the participants process, judged from the database by the checkers; the broken
variants (no row lock, no lease) run the same way and are caught, the first by the checkers,
the second by the duplicates it sends and fires. The crash-point matrix with several workers
(one killed at each point while the others carry on) is marked slow.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from typing import Any

import attrs
import pytest

from sagafsm.cli import main
from sagafsm.runtime.crashpoints import CRASH_POINTS
from sagafsm.runtime.postgres_shared import SharedPostgresStore
from sagafsm.runtime.postgres_store import PostgresStore
from sagafsm.runtime.store import Commit, TimerRow
from sagafsm.runtime.supervisor import RunPlan, supervise
from sagafsm.runtime.verdict import RealRunResult

LEASE = 5.0


def _run(arguments: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    status = main(["run", "order_fulfillment", *arguments])
    out, err = capsys.readouterr()
    return status, out, err


def duplicates(url: str) -> tuple[int, int]:
    """Commands sent more than once (by message id) and timers fired more than once, in the
    trace."""

    async def read() -> list[tuple[Any, ...]]:
        store = PostgresStore(url)
        async with store:
            return await store.trace()

    trace = asyncio.run(read())
    sends = Counter(r[3] for r in trace if r[1] == "send" and r[4] == "orchestrator")
    fired = Counter((r[2], r[3]) for r in trace if r[1] == "timer_fired")
    return sum(n - 1 for n in sends.values()), sum(n - 1 for n in fired.values())


def _commit(saga_id: str, now: float, *, timer: float | None = None, sends: int = 0) -> Commit:
    return Commit(
        saga_id=saga_id,
        definition="d",
        state="running",
        snapshot={"saga": saga_id},
        outbox=[{"n": n} for n in range(sends)],
        timer=TimerRow(saga_id, f"{saga_id}/t", timer) if timer is not None else None,
        started=True,
        now=now,
    )


# -- the claims --------------------------------------------------------------------------------


def test_a_committed_row_is_its_workers_until_the_lease_runs_out_then_one_relays_it(
    pg_url: str,
) -> None:
    async def scenario() -> list[Any]:
        one, two = (SharedPostgresStore(pg_url, claim_lease=LEASE) for _ in range(2))
        async with one, two:
            async with one.locked(["a"]) as held:
                rows = await held.commit([_commit("a", 100.0, sends=2)])
            seen = [len(rows)]
            seen.append(len(await two.claim_outbox(100.0 + LEASE - 0.01, 10)))  # still held
            claimed = await two.claim_outbox(100.0 + LEASE, 10)  # the worker died: relay it
            seen.append([row.id for row in claimed] == [row.id for row in rows])
            seen.append(len(await one.claim_outbox(100.0 + LEASE + 1, 10)))  # two holds them
            await two.mark_sent([row.id for row in claimed])
            seen.append(len(await one.claim_outbox(1e9, 10)))
        return seen

    assert asyncio.run(scenario()) == [2, 0, True, 0, 0]


def test_a_due_timer_is_claimed_by_exactly_one_worker_and_again_once_its_claim_ran_out(
    pg_url: str,
) -> None:
    async def scenario() -> list[Any]:
        one, two = (SharedPostgresStore(pg_url, claim_lease=LEASE) for _ in range(2))
        async with one, two:
            async with one.locked(["a", "b"]) as held:
                await held.commit([_commit("a", 0.0, timer=10.0), _commit("b", 0.0, timer=20.0)])
            early, following = await one.claim_timers(9.0, 10)
            first, _ = await one.claim_timers(10.0, 10)
            second, after = await two.claim_timers(10.0, 10)  # held by one: nothing
            lapsed, _ = await two.claim_timers(10.0 + LEASE, 10)
        return [early, following, first, second, after, lapsed]

    early, following, first, second, after, lapsed = asyncio.run(scenario())
    assert early == [] and following == 10.0
    assert [t.saga_id for t in first] == ["a"] and second == [] and after == 10.0 + LEASE
    assert [t.saga_id for t in lapsed] == ["a"]


def test_a_batch_reads_its_sagas_under_their_row_locks(pg_url: str) -> None:
    """A second worker moving the same saga waits for the first's commit and reads the
    snapshot it wrote (the next test: the broken variant reads the old one)."""

    async def scenario() -> dict[str, Any]:
        one, two = SharedPostgresStore(pg_url), SharedPostgresStore(pg_url)
        async with one, two:
            async with one.locked(["s"]) as held:
                await held.commit([_commit("s", 0.0)])
            got: dict[str, Any] = {}

            async def later() -> None:
                async with two.locked(["s"]) as second:
                    got["snapshot"] = second.sagas[0].snapshot

            async with one.locked(["s"]) as first:
                waiting = asyncio.ensure_future(later())
                await asyncio.sleep(0.3)
                got["waited"] = not waiting.done()
                await first.commit([_moved("s")])
            await waiting
        return got

    assert asyncio.run(scenario()) == {
        "waited": True,
        "snapshot": {"saga": "s", "m": 1},
    }


def _moved(saga_id: str) -> Commit:
    """The saga's next move (an update of its row)."""
    return attrs.evolve(_commit(saga_id, 1.0), started=False, snapshot={"saga": saga_id, "m": 1})


def test_the_unlocked_variant_reads_a_snapshot_another_worker_is_replacing(pg_url: str) -> None:
    from sagafsm.runtime.postgres_run import UnlockedStore

    async def scenario() -> Any:
        one, two = SharedPostgresStore(pg_url), UnlockedStore(pg_url)
        async with one, two:
            async with one.locked(["s"]) as held:
                await held.commit([_commit("s", 0.0)])
            async with one.locked(["s"]) as first:
                async with two.locked(["s"]) as second:  # not made to wait
                    stale = second.sagas[0].snapshot
                await first.commit([_moved("s")])
        return stale

    assert asyncio.run(scenario()) == {"saga": "s"}


# -- real runs ---------------------------------------------------------------------------------


def test_two_workers_finish_every_saga_clean_and_send_no_row_twice(
    pg_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Short step timeouts make timers fire and replies race them on both workers."""
    status, out, _ = _run(
        ["--store", pg_url, "--workers", "2", "--sagas", "150", "--timeout", "0.1", "--json"],
        capsys,
    )
    assert status == 0, out
    real = json.loads(out)
    assert real["violations"] == [] and "unfinished" not in real["outcomes"]
    assert sum(real["outcomes"].values()) == 150 and real["metrics"]["restarts"] == 2
    assert duplicates(pg_url) == (0, 0)


NOWHERE = "postgresql://nobody@127.0.0.1:1/none"
"""A PostgreSQL URL nothing answers: these refusals come before any connection."""


@pytest.mark.parametrize(
    ("arguments", "says"),
    [
        (["--workers", "0", "--store", NOWHERE], "--workers must be at least 1, got 0"),
        (["--workers", "3", "--store", "sqlite:///{tmp}/o.db"], "serves one"),
        (["--mutant", "no-saga-lock", "--store", NOWHERE], "give --workers 2+"),
        (["--workers", "2", "--store", "memory://"], "needs a store its processes share"),
    ],
)  # fmt: skip
def test_bad_worker_options_are_refused_in_one_line_before_anything_starts(
    arguments: list[str], says: str, tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    status, _, err = _run([a.replace("{tmp}", str(tmp_path)) for a in arguments], capsys)
    assert status == 2 and says in err and err.count("\n") == 1, err
    assert not list(tmp_path.iterdir())


@pytest.mark.slow
def test_workers_reading_without_the_row_lock_run_through_the_cli_as_a_smoke_test(
    pg_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """The mutant through the CLI. Whether two workers collide on a saga is a race (made
    likely: 400 sagas, 0.03 s steps), and faster workers collide less: it escaped here 1 run in
    5 of this session's group runs. So this run asserts only that the mutant runs and that
    what is found, if anything, includes the double moves the missing lock causes;
    test_rt_pg_worker_race.py forces the collision, and the checkers catch it there every
    run."""
    status, out, _ = _run(
        ["--store", pg_url, "--workers", "2", "--sagas", "400", "--timeout", "0.03",
         "--mutant", "no-saga-lock", "--json"],
        capsys,
    )  # fmt: skip
    real = json.loads(out)
    assert status in (0, 1) and real["mutant"] == "no-saga-lock", out
    assert sum(real["outcomes"].values()) == 400 and "unfinished" not in real["outcomes"]
    counts = real["violation_counts"]
    assert (status == 1) == bool(counts)
    assert not counts or set(counts) & {"declared-transitions", "single-run"}, counts


@pytest.mark.slow
def test_workers_claiming_without_a_lease_run_clean_through_the_cli_as_a_smoke_test(
    pg_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """The inboxes and the engine absorb whatever the missing lease repeats (no violation).
    Whether a relay catches a row between a live worker's commit and its publish is a race (a
    few milliseconds a batch), and it came out with no repeat at all in a clean-clone CI run;
    so this run asserts only that the variant runs clean; test_rt_pg_worker_race.py forces the
    row case and sees it sent twice every run."""
    status, out, _ = _run(
        ["--store", pg_url, "--workers", "2", "--sagas", "200", "--timeout", "0.1",
         "--mutant", "no-claim-lease", "--json"],
        capsys,
    )  # fmt: skip
    assert status == 0, out


# -- the crash-point matrix with several workers -----------------------------------------------

SAGAS = 150
COUNTS = (3, 1, 7)
DEADLINE = 600.0
"""About 30 s each on the shared machine, minutes when it is very busy: a hang still fails."""


def workers_plan(url: str, point: str | None, workers: int, **options: Any) -> RunPlan:
    specs = tuple(f"{point}:{count}" for count in COUNTS) if point else ()
    orchestrator = point is not None and point.startswith("orchestrator.")
    return RunPlan(
        scenario="order_fulfillment",
        store=url,
        sagas=SAGAS,
        concurrency=30,
        workers=workers,
        orchestrator_crashes=specs if orchestrator else (),
        participant_crashes=specs if point and not orchestrator else (),
        deadline=DEADLINE,
        **options,
    )


def assert_clean(result: RealRunResult, sagas: int = SAGAS) -> None:
    assert result.stopped is None, (result.outcomes, result.faults, result.wall_seconds)
    assert not result.violations, result.violation_counts
    assert "unfinished" not in result.outcomes and sum(result.outcomes.values()) == sagas
    assert result.outcomes["completed"] > 0


@pytest.mark.slow
@pytest.mark.parametrize("point", CRASH_POINTS)
def test_one_of_three_workers_killed_at_a_crash_point_loses_no_saga_and_repeats_no_effect(
    pg_url: str, point: str
) -> None:
    result = supervise(workers_plan(pg_url, point, 3))
    assert_clean(result)
    kind = (
        "orchestrator_crash_point"
        if point.startswith("orchestrator.")
        else ("participant_crash_point")
    )
    assert result.faults.get(kind) == len(COUNTS), result.faults


@pytest.mark.slow
def test_workers_killed_at_random_moments_one_at_a_time_lose_nothing(pg_url: str) -> None:
    result = supervise(workers_plan(pg_url, None, 3, kills=6, seed=7))
    assert_clean(result)
    assert result.kills == 6
    _, fired_twice = duplicates(pg_url)
    # Only kills repeat anything: at most what the dead workers had claimed.
    assert fired_twice <= result.kills * 30
