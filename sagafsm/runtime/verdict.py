"""The verdict on a real run: read back from its store, judged as a simulated run is judged.

Everything comes from the store (SQLite or PostgreSQL, read through the store protocol), not from
the processes, which may have been killed any number of times: the trace (the orchestrator's
records and every participant's ledger, appended in commit order), the sagas' status rows
(outcomes, reasons, start and finish times), and the scenario's own tables. The trace goes through
:func:`sagafsm.checks.check_history`, the same checker every simulation runs; the tables through
the scenario's domain invariants. A saga the run should have started and never did is a termination
violation: no trace record would show it.

:class:`RealRunResult` carries the keys of ``sagafsm simulate --json``; those a real run cannot
measure (simulated time, a trace digest, queueing at participants, store writes) are None.
"""

from __future__ import annotations

import asyncio
import math
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final, Literal

import attrs

from ..checks import Violation, check_history
from ..errors import InvalidConfig
from ..lifecycle import SAGA_LIFECYCLE, SagaState
from .dialects import in_dialect
from .scenario import SETUP_PARTICIPANT, FinishedSaga, RuntimeScenario, apply_schema, saga_ids
from .store import SagaStatus

if TYPE_CHECKING:
    from .supervisor import RunPlan
    from .worker import RunStore

__all__ = [
    "RealRunResult",
    "judge",
    "prepare_store",
    "OUTBOX_RULE",
    "PLAN_TABLE",
]

OUTBOX_RULE: Final = "outbox-rule"
"""The property (in :data:`sagafsm.checks.PROPERTIES`) that a runtime publishing before it
commits breaks even when every effect balances."""

PLAN_TABLE: Final = "run_plan"
"""Remembers which run a store holds (scenario, seed, sagas, style): a second ``sagafsm run`` on
the same store carries it on, and one with another seed or style is refused rather than judged
against orders (or tables) the store never saw."""

Style = Literal["orchestration", "choreography"]

_FINAL_ORDER: Final = (SagaState.COMPLETED, SagaState.FAILED, SagaState.OPERATOR_REQUIRED)
_FINAL: Final = frozenset(state.value for state in SAGA_LIFECYCLE.terminal)
_MAX_VIOLATIONS_IN_JSON: Final = 200


@attrs.frozen(kw_only=True)
class RealRunResult:
    """What ``sagafsm run`` reports; :meth:`to_json` has the keys of ``simulate --json`` plus
    ``kills``."""

    scenario: str
    seed: int
    sagas: int
    mutant: str | None
    stopped: str | None
    outcomes: Mapping[str, int]
    reasons: Mapping[str, Mapping[str, int]]
    violations: tuple[Violation, ...]
    violation_counts: Mapping[str, int]
    wall_seconds: float
    events: int
    messages: Mapping[str, int | None]
    faults: Mapping[str, int]
    """Kills by kind: ``orchestrator_kill`` (``--kill-every``), ``orchestrator_crash_point``,
    ``participant_crash_point``."""
    metrics: Mapping[str, Any]
    coverage: Mapping[str, Any]
    kills: int
    resumed: bool
    """The store already held part of this run (a run carried on)."""

    @property
    def ok(self) -> bool:
        return not self.violations

    def to_json(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario,
            "seed": self.seed,
            "sagas": self.sagas,
            "mutant": self.mutant,
            "stopped": self.stopped,
            "outcomes": dict(self.outcomes),
            "reasons": {state: dict(counts) for state, counts in self.reasons.items()},
            "violations": [v.to_json() for v in self.violations[:_MAX_VIOLATIONS_IN_JSON]],
            "violation_counts": dict(self.violation_counts),
            "digest": None,
            "sim_time": None,
            "wall_seconds": self.wall_seconds,
            "events": self.events,
            "messages": dict(self.messages),
            "faults": dict(self.faults),
            "metrics": dict(self.metrics),
            "coverage": dict(self.coverage),
            "kills": self.kills,
        }


def prepare_store(
    store: RunStore, scenario: RuntimeScenario, *, seed: int, sagas: int, style: Style
) -> bool:
    """Create the store (or check it), the scenario's tables and the plan row, in that order;
    True if the store already holds this run. Refuses, changing nothing, a store that is not
    one (:class:`StoreError`) or that holds another run (:class:`InvalidConfig`), an
    orchestrated run and a choreographed one included."""
    wanted = {"scenario": scenario.name, "seed": str(seed), "sagas": str(sagas), "style": style}
    return asyncio.run(_prepare(store, scenario, wanted))


async def _prepare(store: RunStore, scenario: RuntimeScenario, wanted: dict[str, str]) -> bool:
    async with store:
        held = len(await store.sagas())
        async with store.transaction(SETUP_PARTICIPANT) as tx:
            # Created first and read next, in one transaction: a refusal below rolls it back.
            await tx.execute(
                f"CREATE TABLE IF NOT EXISTS {PLAN_TABLE} (key TEXT PRIMARY KEY, value TEXT)"
            )
            found = dict(await tx.execute(f"SELECT key, value FROM {PLAN_TABLE}"))
            if found:
                # Rows written before runs had a style were all orchestrated.
                found.setdefault("style", "orchestration")
            if found and found != wanted:
                shown = ", ".join(f"{key} {value}" for key, value in found.items())
                raise InvalidConfig(
                    f"{store.name} holds another run ({shown}); carry it on with the same "
                    "scenario, --seed and --sagas, or use a new store"
                )
            if held and not found:
                raise InvalidConfig(
                    f"{store.name} already holds {held} sagas that sagafsm run did not start; "
                    "use a new store"
                )
            await apply_schema(tx, scenario)
            insert = in_dialect(
                f"INSERT INTO {PLAN_TABLE} (key, value) VALUES (?, ?) ON CONFLICT DO NOTHING",
                tx.dialect,
            )
            for key, value in wanted.items():
                await tx.execute(insert, (key, value))
    return bool(found)


def judge(
    store: RunStore,
    scenario: RuntimeScenario,
    plan: RunPlan,
    *,
    wall_seconds: float,
    kills: Mapping[str, int],
    stopped: str | None = None,
    resumed: bool = False,
) -> RealRunResult:
    """Read the store back and judge it (module docstring)."""
    records, statuses, problems = asyncio.run(_read(store, scenario, plan))
    definition = scenario.definition
    violations = check_history(records, definition)
    started = {record[2] for record in records if record[1] == "start"}
    for saga_id in saga_ids(scenario.name, plan.sagas):
        if saga_id not in started:
            violations.append(
                Violation(saga_id=saga_id, property="termination", detail="never started")
            )
    violations += [
        Violation(saga_id=None, property="domain-invariants", detail=problem)
        for problem in problems
    ]
    counts = Counter(v.property for v in violations)
    return RealRunResult(
        scenario=scenario.name,
        seed=plan.seed,
        sagas=plan.sagas,
        mutant=plan.mutant,
        stopped=stopped,
        outcomes=_outcomes(statuses, plan.sagas),
        reasons=_reasons(statuses),
        violations=tuple(violations),
        violation_counts=dict(counts),
        wall_seconds=wall_seconds,
        events=len(records),
        messages=_messages(records),
        faults=dict(sorted(kills.items())),
        metrics=_metrics(records, statuses, plan, kills),
        coverage=_coverage(records),
        kills=sum(kills.values()),
        resumed=resumed,
    )


async def _read(
    store: RunStore, scenario: RuntimeScenario, plan: RunPlan
) -> tuple[list[tuple[Any, ...]], list[SagaStatus], list[str]]:
    ids = saga_ids(scenario.name, plan.sagas)
    data = dict(zip(ids, scenario.saga_data(plan.seed, plan.sagas), strict=True))
    async with store:
        records = await store.trace()
        statuses = [s for s in await store.sagas() if s.saga_id in data]
        finished = {
            s.saga_id: FinishedSaga(s.state if s.state in _FINAL else "unfinished", data[s.saga_id])
            for s in statuses
        }
        async with store.transaction(SETUP_PARTICIPANT) as tx:
            problems = await scenario.check(tx, finished)
    return records, statuses, problems


def _outcomes(statuses: Sequence[SagaStatus], sagas: int) -> dict[str, int]:
    counts = Counter(s.state for s in statuses if s.state in _FINAL)
    outcomes = {state.value: counts[state.value] for state in _FINAL_ORDER}
    unfinished = sagas - sum(outcomes.values())
    if unfinished:
        outcomes["unfinished"] = unfinished
    return outcomes


def _reasons(statuses: Sequence[SagaStatus]) -> dict[str, dict[str, int]]:
    reasons: dict[str, Counter[str]] = defaultdict(Counter)
    for s in statuses:
        if s.state in _FINAL and s.reason is not None:
            reasons[s.state][s.reason] += 1
    return {
        state: dict(sorted(counts.items(), key=lambda item: (-item[1], item[0])))
        for state, counts in sorted(reasons.items())
    }


def _messages(records: Sequence[tuple[Any, ...]]) -> dict[str, int | None]:
    """Sends recorded. Deliveries, drops, duplicates and delays are the transport's, and it records
    none (a command published again after a crash is recorded once: its first send record died
    with the process)."""
    sent = [r[3] for r in records if r[1] == "send"]
    return {
        "sent": len(sent),
        "delivered": None,
        "dropped": None,
        "duplicated": None,
        "delayed": None,
    }


def _percentiles(values: list[float]) -> dict[str, float | None]:
    """Nearest-rank percentiles, exact (the simulator's are the same ranks over 1% buckets)."""
    ordered = sorted(values)
    count = len(ordered)

    def rank(q: float) -> float | None:
        return ordered[max(1, math.ceil(q / 100 * count)) - 1] if count else None

    return {
        "count": count,
        "mean": sum(ordered) / count if count else None,
        "p50": rank(50),
        "p90": rank(90),
        "p95": rank(95),
        "p99": rank(99),
        "max": ordered[-1] if count else None,
    }


def _metrics(
    records: Sequence[tuple[Any, ...]],
    statuses: Sequence[SagaStatus],
    plan: RunPlan,
    kills: Mapping[str, int],
) -> dict[str, Any]:
    finished = [s for s in statuses if s.state in _FINAL]
    durations: dict[str, list[float]] = defaultdict(list)
    for s in finished:
        durations[s.state].append(s.updated_at - s.started_at)
    every = [d for values in durations.values() for d in values]
    first = min((s.started_at for s in statuses), default=0.0)
    span = max((s.updated_at for s in finished), default=first) - first
    completed = sorted(s.updated_at for s in finished if s.state == SagaState.COMPLETED.value)
    window = 1.0
    series: list[float] = []
    for t in completed:
        index = int((t - first) // window)
        series.extend([0.0] * (index + 1 - len(series)))
        series[index] += 1 / window
    moves = Counter(r[4] for r in records if r[1] == "transition")
    aborts = sum(1 for r in records if r[1] == "transition" and r[3] is None and r[4] == "abort")
    restarts = [r for r in records if r[1] == "restart"]
    sends = [r for r in records if r[1] == "send"]
    operations = Counter(r[4] for r in sends if r[5] == "orchestrator")
    sagas = plan.sagas
    return {
        "throughput_per_s": len(completed) / span if span > 0 else 0.0,
        "goodput": len(completed) / len(finished) if finished else 0.0,
        "span_s": span,
        "latency": {
            **_percentiles(every),
            "by_outcome": {k: _percentiles(v) for k, v in sorted(durations.items())},
        },
        "throughput_series": {"window_s": window, "start_s": 0.0, "per_second": series},
        "participants": {
            name: {
                "capacity": None,
                "operations": n,
                "utilisation": None,
                "mean_queue": None,
                "max_queue": None,
            }
            for name, n in sorted(operations.items())
        },
        "compensation_rate": aborts / len(finished) if finished else 0.0,
        "retries": {"action": moves["retry"], "compensation": moves["compensation_retry"]},
        "retries_per_saga": (moves["retry"] + moves["compensation_retry"]) / sagas,
        "messages_per_saga": len(sends) / sagas,
        "faults_per_saga": sum(kills.values()) / sagas,
        "in_flight_mean": sum(every) / span if span > 0 else 0.0,
        "occupancy": None,
        "outages": None,  # simulated outage windows; a real run's kills are counted in kills
        "orchestrator_crashes": kills.get("orchestrator_kill", 0)
        + kills.get("orchestrator_crash_point", 0),
        "store_writes": None,
        "restarts": len(restarts),
        "recovered_sagas": sum(int(r[4]) for r in restarts),
    }


def _coverage(records: Sequence[tuple[Any, ...]]) -> dict[str, Any]:
    from ..sim.coverage import Coverage

    coverage = Coverage()
    for record in records:
        coverage.observe(record)
    return coverage.summary()
