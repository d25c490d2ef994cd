"""Who waits for which saga to finish, and what they are told: the runtime's ``wait()`` side.

A saga started in this runtime's life is answered from its finishing commit (the status just
committed, field for field what the store now holds), so ``wait()`` costs no store read. A saga
recovered at open is answered with None: its start time is in the store alone, and ``wait()``
reads the status back.
"""

from __future__ import annotations

import asyncio
from typing import Any

from .store import Commit, SagaStatus

__all__ = ["FinishWaiters", "quiet_future"]


def quiet_future() -> asyncio.Future[Any]:
    """A future whose failure need not be retrieved: a caller that gave up waiting (cancelled)
    leaves it behind, and the runtime failing it when it stops is not news to anyone."""
    future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    future.add_done_callback(_retrieve)
    return future


def _retrieve(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()


class FinishWaiters:
    """One future per saga somebody waits for, resolved when the saga's finish is committed."""

    def __init__(self) -> None:
        self._waiters: dict[str, asyncio.Future[SagaStatus | None]] = {}
        self._started_at: dict[str, float] = {}

    def started(self, saga_id: str, now: float) -> None:
        """A saga this runtime started (its finish can be answered from memory)."""
        self._started_at[saga_id] = now

    def started_here(self, saga_id: str) -> bool:
        """Whether this runtime started the saga and has not yet seen it finish."""
        return saga_id in self._started_at

    def waiter(self, saga_id: str) -> asyncio.Future[SagaStatus | None]:
        """The saga's future, made on the first call (before the caller reads the store, so a
        finish committed meanwhile resolves it)."""
        waiter = self._waiters.get(saga_id)
        if waiter is None:
            waiter = self._waiters[saga_id] = quiet_future()
        return waiter

    def discard(self, saga_id: str, waiter: asyncio.Future[SagaStatus | None]) -> None:
        """The caller found the saga finished (or unknown) in the store: nobody waits."""
        if self._waiters.get(saga_id) is waiter:
            del self._waiters[saga_id]

    def finished(self, commit: Commit) -> None:
        """The saga's finishing commit is in: answer its waiters."""
        saga_id = commit.saga_id
        started_at = self._started_at.pop(saga_id, None)
        waiter = self._waiters.pop(saga_id, None)
        if waiter is None or waiter.done():
            return
        if started_at is None:
            waiter.set_result(None)
            return
        status = SagaStatus(
            saga_id=saga_id,
            definition=commit.definition,
            state=commit.state,
            reason=commit.reason,
            results=commit.results,
            snapshot=None,
            started_at=started_at,
            updated_at=commit.now,
            retryable=commit.parked is not None,
        )
        waiter.set_result(status)

    def finished_elsewhere(self, saga_id: str) -> None:
        """Another worker sharing the store committed the saga's finish: its waiter is answered
        with None (the caller reads the status back)."""
        self._started_at.pop(saga_id, None)
        waiter = self._waiters.pop(saga_id, None)
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def fail(self, error: BaseException) -> None:
        """The runtime stopped: every waiter is told why, rather than left waiting forever."""
        for waiter in self._waiters.values():
            if not waiter.done():
                waiter.set_exception(error)
        self._waiters.clear()
