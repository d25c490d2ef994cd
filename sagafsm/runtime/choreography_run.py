"""A scenario's choreography on the runtime: set up its store, drive it, and judge what it did.

The same pieces whatever runs the participants: one process with every participant
(:func:`run_in_process`, tests and notebooks), or a process per participant that a test or
``sagafsm run --style choreography`` kills at will (:mod:`.choreography_worker`). Either way the
verdict comes from the store alone (:func:`judge`): the trace every participant appended in its
own transactions, read by :func:`sagafsm.checks.check_history` with the choreography's roles in
place of the orchestration's lifecycles (the checks ``simulate --style choreography`` runs), and
the scenario's invariants over its tables, with each saga's outcome as the initiator recorded it.

A run has ended when it is **quiescent**: the initiator announced every outcome, and nothing is
left to move anything (no outbox row, no compensation pending, no timer armed, no message
queued). A role left waiting then is what the termination check reports.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

import attrs

from ..checks import Violation, check_history
from ..choreography import choreography_from
from ..choreography.checking import choreography_steps
from ..choreography.node import Switches
from ..choreography.routing import tries_of
from ..choreography.table import ChoreographyDefinition
from ..errors import InvalidConfig
from .choreography_host import ChoreographyHost
from .choreography_wire import TABLES, schema
from .clock import Clock, WallClock
from .dialects import in_dialect
from .scenario import SETUP_PARTICIPANT, FinishedSaga, RuntimeScenario, apply_schema, saga_ids
from .store import ParticipantStore, Store
from .transport import InProcessTransport, Transport

__all__ = [
    "ChoreographyVerdict",
    "choreography_for",
    "install",
    "quiescent",
    "judge",
    "make_host",
    "run_in_process",
    "settle",
    "start_all",
]

_QUEUE: Final = "sagafsm_messages"
_POLL: Final = 0.05


def choreography_for(scenario: RuntimeScenario) -> ChoreographyDefinition:
    """The scenario's choreography: the one its runtime declares (a ``choreography``
    attribute), else the one derived from its definition (with the runtime's timeouts, so that
    the deadlines are a real run's)."""
    declared = getattr(scenario, "choreography", None)
    if isinstance(declared, ChoreographyDefinition):
        return declared
    return choreography_from(scenario.definition)


async def install(store: ParticipantStore, scenario: RuntimeScenario, dialect: str) -> None:
    """The scenario's tables and the choreography's, in one transaction (idempotent)."""
    statements = schema(dialect)  # a store without SQL is refused here, before anything
    async with store.transaction(SETUP_PARTICIPANT) as tx:
        await apply_schema(tx, scenario)
        for statement in statements:
            await tx.execute(statement)


async def quiescent(store: ParticipantStore, *, queue: bool) -> bool:
    """Nothing left that could move a role: no outbox row, pending compensation or timer (and,
    with ``queue``, no message in the SQL transport's table)."""
    async with store.transaction(SETUP_PARTICIPANT) as tx:
        for table in (*TABLES[1:], *((_QUEUE,) if queue else ())):
            rows = await tx.execute(in_dialect(f"SELECT COUNT(*) FROM {table}", tx.dialect))
            if rows[0][0]:
                return False
    return True


@attrs.frozen(kw_only=True)
class ChoreographyVerdict:
    """What a choreographed real run did, judged."""

    outcomes: Mapping[str, int]
    violations: tuple[Violation, ...]
    violation_counts: Mapping[str, int]
    records: int
    messages_per_saga: float

    @property
    def ok(self) -> bool:
        return not self.violations

    def to_json(self) -> dict[str, Any]:
        return {
            "outcomes": dict(self.outcomes),
            "violations": [v.to_json() for v in self.violations[:200]],
            "violation_counts": dict(self.violation_counts),
            "events": self.records,
            "messages_per_saga": self.messages_per_saga,
        }


async def judge(
    store: Store,
    participants: ParticipantStore,
    scenario: RuntimeScenario,
    choreography: ChoreographyDefinition,
    *,
    sagas: int,
    seed: int,
) -> ChoreographyVerdict:
    """Read the store back and judge it (module docstring)."""
    records = await store.trace()
    violations = check_history(records, scenario.definition, steps=choreography_steps(choreography))
    ids = saga_ids(scenario.name, sagas)
    started = {r[2] for r in records if r[1] == "start"}
    violations += [
        Violation(saga_id=i, property="termination", detail="never started")
        for i in ids
        if i not in started
    ]
    ended = {r[2]: r[3] for r in records if r[1] == "finish"}
    data = dict(zip(ids, scenario.saga_data(seed, sagas), strict=True))
    finished = {i: FinishedSaga(ended.get(i, "unfinished"), data[i]) for i in ids if i in started}
    async with participants.transaction(SETUP_PARTICIPANT) as tx:
        problems = await scenario.check(tx, finished)
    violations += [
        Violation(saga_id=None, property="domain-invariants", detail=p) for p in problems
    ]
    outcomes = Counter(s.state for s in finished.values())
    return ChoreographyVerdict(
        outcomes=dict(sorted(outcomes.items())),
        violations=tuple(violations),
        violation_counts=dict(Counter(v.property for v in violations)),
        records=len(records),
        messages_per_saga=sum(1 for r in records if r[1] == "send") / sagas,
    )


async def start_all(
    host: ChoreographyHost,
    scenario: RuntimeScenario,
    *,
    sagas: int,
    seed: int,
    concurrency: int,
) -> None:
    """The initiator's job: start sagas ``{name}-1..N`` (those not started yet), at most
    ``concurrency`` in flight, and return once every one has its outcome."""
    ids = saga_ids(scenario.name, sagas)
    data = dict(zip(ids, scenario.saga_data(seed, sagas), strict=True))
    slots = asyncio.Semaphore(concurrency)

    async def one(saga_id: str) -> None:
        async with slots:
            await host.start(saga_id, data[saga_id])
            await host.wait(saga_id)

    async with asyncio.TaskGroup() as group:
        for saga_id in ids:
            if saga_id not in host.outcomes:
                group.create_task(one(saga_id))


async def settle(
    store: ParticipantStore, *, queue: bool, idle: Callable[[], bool] = lambda: True
) -> None:
    """Wait until the run is quiescent (:func:`quiescent`, and ``idle()`` twice in a row)."""
    calm = 0
    while calm < 2:
        calm = calm + 1 if idle() and await quiescent(store, queue=queue) else 0
        await asyncio.sleep(_POLL)


def make_host(
    scenario: RuntimeScenario,
    choreography: ChoreographyDefinition,
    plays: Sequence[str],
    transport: Transport,
    store: ParticipantStore,
    clock: Clock,
    *,
    switches: Switches | None = None,
    rearm: bool = True,
) -> ChoreographyHost:
    """A host playing ``plays`` of the scenario's choreography, with its handlers and tries."""
    return ChoreographyHost(
        choreography,
        plays,
        scenario.participants(),
        tries_of(choreography, scenario.definition),
        transport,
        store,
        clock,
        switches=switches,
        rearm=rearm,
    )


async def run_in_process(
    scenario: RuntimeScenario,
    store: Any,
    *,
    sagas: int,
    seed: int = 1,
    concurrency: int = 20,
    transport: Transport | None = None,
    switches: Switches | None = None,
    timeout: float = 120.0,
) -> ChoreographyVerdict:
    """Every participant in this process, on ``store`` (an open SQL store) and ``transport``
    (in process by default); returns the verdict once quiescent. Raises :class:`InvalidConfig`
    for a store without SQL."""
    choreography = choreography_for(scenario)
    if store.dialect not in ("sqlite", "postgresql"):
        raise InvalidConfig(f"{store!r}: a choreography on the runtime needs a SQL store")
    await install(store, scenario, store.dialect)
    transport = transport or InProcessTransport()
    host = make_host(
        scenario, choreography, choreography.participants, transport, store, WallClock(),
        switches=switches,
    )  # fmt: skip
    in_memory = transport if isinstance(transport, InProcessTransport) else None

    def idle() -> bool:
        queued = 0 if in_memory is None else sum(map(in_memory.queued, choreography.participants))
        return not queued and host.idle()

    async def drive() -> None:
        await start_all(host, scenario, sagas=sagas, seed=seed, concurrency=concurrency)
        await settle(store, queue=in_memory is None, idle=idle)
        await host.close()

    async with asyncio.timeout(timeout), asyncio.TaskGroup() as group:
        group.create_task(host.run())
        group.create_task(drive())
    return await judge(store, store, scenario, choreography, sagas=sagas, seed=seed)
