"""Deliberately broken runtimes, to show the crash tests and the checkers catch what they must.

Each is a small subclass that breaks one rule of the outbox or the inbox, as a naive
implementation would; the crash-point matrix runs them under the same kills and the same
checkers as the correct runtime, and must find violations.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from .codec import envelope_from_dict
from .host import ParticipantHost
from .runtime import Runtime
from .store import Commit, OutboxRow

__all__ = ["PublishBeforeCommitRuntime", "NoInboxHost", "RUNTIME_MUTANTS"]


class PublishBeforeCommitRuntime(Runtime):
    """Sends each batch's commands before its store transaction commits, and never re-sends
    them: a crash between the two leaves participants acting for moves the store never saw."""

    async def _commit(self, commits: list[Commit]) -> list[OutboxRow]:
        for commit in commits:
            for message in commit.outbox:
                await self._transport.send(envelope_from_dict(message))
        rows = await super()._commit(commits)
        await self._store.mark_sent([row.id for row in rows])
        return []  # already sent: nothing for the relay


class NoInboxHost(ParticipantHost):
    """Participants without an inbox: a repeated command runs its handler again, and a
    compensation that comes first leaves no tombstone."""

    _dedup = False
    _tombstones = False


RUNTIME_MUTANTS: Mapping[str, str] = {
    "publish-before-commit": "the orchestrator sends commands before their transaction commits",
    "no-inbox": "participants keep no inbox: duplicates run twice, no tombstones",
    "no-saga-lock": "workers read a saga without its row lock (PostgreSQL, --workers 2 or more)",
    "no-claim-lease": "workers claim outbox rows and timers without a lease (PostgreSQL, "
    "--workers 2 or more)",
}
"""Name -> what it breaks (the worker's ``--mutant`` choices). The last two are
:data:`sagafsm.runtime.postgres_run.WORKER_MUTANTS`, kept there (they need psycopg)."""

WORKER_ONLY: Final = frozenset({"no-saga-lock", "no-claim-lease"})
"""The mutants of workers sharing a PostgreSQL store (``--workers`` 2 or more)."""
