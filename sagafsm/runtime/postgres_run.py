"""The orchestrator workers of a real run on PostgreSQL (``--workers N``, 1 or more), and the
broken variants of them the tests show caught.

Worker ``K`` of ``N`` starts the sagas ``K, K+N, K+2N, ...`` of the run (by position in the
run's ids), with its share of ``--concurrency`` in flight, and moves whichever saga a reply or a
timer it claims belongs to; it exits 0 once every saga of the run finished, on whichever worker.
See :mod:`sagafsm.runtime.worker` for the processes and :mod:`.postgres_workers` for how the
workers share the store.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any, Final

from ..definition import SagaDefinition
from ..errors import InvalidConfig
from .mutants import PublishBeforeCommitRuntime
from .postgres_shared import LOCK_SAGAS, SharedPostgresStore
from .postgres_store import PostgresStore
from .postgres_workers import WorkerRuntime
from .runtime import Runtime
from .transport import Transport

__all__ = ["worker_runtime", "all_finished", "WORKER_MUTANTS"]

_EVERY: Final = 0.2


class UnlockedStore(SharedPostgresStore):
    """Reads the batch's snapshots without their row locks: two workers move one saga from the
    same snapshot, and the second commit overwrites the first."""

    _lock_sagas = LOCK_SAGAS.replace(" FOR UPDATE", "")


class UnleasedStore(SharedPostgresStore):
    """Claims outbox rows and timers without a lease (a claim ends as it is made): every relay
    publishes the rows a live worker is publishing, every worker fires every due timer."""

    def __init__(self, url: str, **options: Any) -> None:
        super().__init__(url, **options)
        self.claim_lease = 0.0


class PublishBeforeCommitWorker(PublishBeforeCommitRuntime, WorkerRuntime):
    """The single runtime's broken variant, as a worker: it sends a batch's commands before
    the batch's transaction commits (under its sagas' locks)."""


WORKER_MUTANTS: Final = {"no-saga-lock": UnlockedStore, "no-claim-lease": UnleasedStore}
"""The broken variants of shared workers' store (``--mutant``, with ``--workers`` 2 or more)."""


def worker_runtime(
    store: object, transport: Transport, definition: SagaDefinition, mutant: str | None
) -> tuple[SharedPostgresStore, Runtime]:
    """The shared store (on ``store``'s database, with its options) and a worker on it."""
    if not isinstance(store, PostgresStore):
        raise InvalidConfig(f"{store!r}: several workers need a PostgreSQL store")
    store_class = WORKER_MUTANTS.get(mutant or "", SharedPostgresStore)
    shared = store_class(store.url, pool_size=store.pool_size, retention=store.retention)
    runtime_class = (
        PublishBeforeCommitWorker if mutant == "publish-before-commit" else WorkerRuntime
    )
    return shared, runtime_class(shared, transport, [definition])


async def all_finished(
    store: SharedPostgresStore, saga_ids: Sequence[str], runtime: Runtime
) -> None:
    """Return once every one of ``saga_ids`` has finished, on any worker; raise what stopped
    ``runtime`` if it stops meanwhile (a worker whose runtime died must not wait on)."""
    waiting = list(saga_ids)
    while waiting:
        if runtime.failure is not None:
            raise runtime.failure
        done = set(await store.finished_among(waiting))
        waiting = [saga_id for saga_id in waiting if saga_id not in done]
        if waiting:
            await asyncio.sleep(_EVERY)
