"""The crash-point matrix: real OS processes killed with SIGKILL, restarted, and judged.

Every test here goes through :func:`sagafsm.runtime.supervisor.supervise`, the code behind
``sagafsm run``: a participants process and an orchestrator process on one SQLite file. A
process armed with ``SAGAFSM_CRASH_AT=point:count`` kills itself the count-th time it reaches the
point; the supervisor restarts it, with the next count, then unarmed. The verdict comes from the
store alone: the trace through ``check_history`` (and the outbox rule), the tables through the
scenario's domain invariants, and every saga the run should have started.

Kills at crash points are counted, not timed, so each test does the same thing on any machine;
the random-moment test asserts only what must hold whenever the kills fall.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from sagafsm.runtime.crashpoints import CRASH_POINTS
from sagafsm.runtime.supervisor import RunPlan, supervise
from sagafsm.runtime.verdict import OUTBOX_RULE, RealRunResult

pytestmark = pytest.mark.slow  # real processes, killed and restarted: seconds each

SCENARIO = "order_fulfillment"
SAGAS = 120
COUNTS = (3, 1, 7, 13)
"""Each life of the armed process dies at the next count: four kills at four depths, the second
at the restarted process's first hit of the point (its recovery: re-publishing the outbox, the
first commit, the first redelivered command). A run of 120 sagas reaches each point 56 to 140
times (participants group-commit up to 16 commands per batch), so every count is reached."""
DEADLINE = 120.0
"""A run that has not finished by then is reported stopped (a test failure, never a hang)."""


def crash_plan(
    tmp_path: Path,
    point: str,
    *,
    sagas: int = SAGAS,
    mutant: str | None = None,
    counts: tuple[int, ...] = COUNTS,
) -> RunPlan:
    """A run whose orchestrator (or participants, for a participant point) dies at ``point``
    once per count."""
    specs = tuple(f"{point}:{count}" for count in counts)
    orchestrator = point.startswith("orchestrator.")
    return RunPlan(
        scenario=SCENARIO,
        store=f"sqlite:///{tmp_path / 'orders.db'}",
        sagas=sagas,
        concurrency=30,
        mutant=mutant,
        orchestrator_crashes=specs if orchestrator else (),
        participant_crashes=() if orchestrator else specs,
        deadline=DEADLINE,
    )


def killed_kind(point: str) -> str:
    return (
        "orchestrator_crash_point"
        if point.startswith("orchestrator.")
        else ("participant_crash_point")
    )


def assert_every_saga_finished_once(result: RealRunResult, sagas: int) -> None:
    assert result.stopped is None
    assert "unfinished" not in result.outcomes
    assert sum(result.outcomes.values()) == sagas
    assert result.outcomes["completed"] > 0 and result.outcomes["failed"] > 0


@pytest.mark.parametrize("point", CRASH_POINTS)
def test_a_process_killed_at_a_crash_point_loses_no_saga_and_repeats_no_effect(
    tmp_path: Path, point: str
) -> None:
    """Killed four times at the point, each time restarted: every saga finished exactly once,
    every effect landed once or was compensated once, and the tables balance."""
    result = supervise(crash_plan(tmp_path, point))
    assert result.faults == {killed_kind(point): len(COUNTS)}
    assert result.violations == (), [f"{v.property}: {v.detail}" for v in result.violations[:5]]
    assert_every_saga_finished_once(result, SAGAS)
    if point.startswith("orchestrator."):
        assert result.metrics["restarts"] == len(COUNTS) + 1
        assert result.metrics["recovered_sagas"] > 0


@pytest.mark.parametrize(
    ("mutant", "point", "counts", "caught_by"),
    [
        ("publish-before-commit", "orchestrator.before_commit", COUNTS, (OUTBOX_RULE,)),
        ("no-inbox", "orchestrator.after_publish", COUNTS, ("no-duplicate-effect",)),
        # Five kills: a duplicate shows in the tables unless every killed command was one whose
        # repeat they do not record (a verification, a refusal): 1 in 5**5 or so.
        (
            "no-inbox",
            "participant.after_commit",
            (3, 5, 7, 11, 13),
            ("no-duplicate-effect", "domain-invariants"),
        ),
    ],
)
def test_a_broken_runtime_under_the_same_kills_is_caught_by_the_same_verdict(
    tmp_path: Path, mutant: str, point: str, counts: tuple[int, ...], caught_by: tuple[str, ...]
) -> None:
    """Publishing before the commit shows as participants acting on moves the store did not
    hold yet; a participant without an inbox applies a re-sent or re-delivered command twice,
    which the ledger shows, and the domain tables too (an order reserved or charged twice)."""
    result = supervise(crash_plan(tmp_path, point, mutant=mutant, counts=counts))
    assert result.faults == {killed_kind(point): len(counts)}
    for name in caught_by:
        assert result.violation_counts.get(name, 0) > 0, result.violation_counts


def test_a_thousand_sagas_survive_twenty_five_orchestrator_kills_at_random_moments(
    tmp_path: Path,
) -> None:
    """Under load, the orchestrator SIGKILLed 25 times wherever it happens to be (mid-commit,
    mid-publish, the last kill's sagas still in flight): nothing lost, nothing run twice."""
    plan = RunPlan(
        scenario=SCENARIO,
        store=f"sqlite:///{tmp_path / 'orders.db'}",
        sagas=1000,
        concurrency=50,
        kills=25,
        deadline=DEADLINE,
    )
    result = supervise(plan)
    assert result.kills >= 20
    assert result.faults["orchestrator_kill"] == result.kills
    assert result.violations == (), [f"{v.property}: {v.detail}" for v in result.violations[:5]]
    assert_every_saga_finished_once(result, 1000)
    assert result.metrics["restarts"] == result.kills + 1
