"""What the runtime keeps, and the protocols a store implements to keep it.

A :class:`Store` holds the orchestrator's side: each saga's status and latest snapshot, the outbox
(commands committed but not yet sent), the armed timers, and the trace. A
:class:`ParticipantStore` holds each participant's inbox, and, for a SQL store, the participant's
own tables, so that an effect and its inbox row commit in one transaction.

Every method is a coroutine. One :meth:`Store.commit` is one database transaction for a batch of
sagas: that is the unit a crash either keeps whole or loses whole.
"""

from __future__ import annotations

import enum
from collections.abc import Collection, Iterable, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, Final, Protocol

import attrs

__all__ = [
    "KEEP",
    "Keep",
    "OutboxRow",
    "TimerRow",
    "StoredSaga",
    "SagaStatus",
    "Commit",
    "RetryRequest",
    "InboxEntry",
    "Store",
    "ParticipantStore",
    "ParticipantTx",
    "ParticipantBatch",
]


class Keep(enum.Enum):
    KEEP = "keep"


KEEP: Final = Keep.KEEP
"""For :attr:`Commit.timer`: leave the saga's armed timer as it is."""


@attrs.frozen
class OutboxRow:
    """A command committed for sending: ``message`` is an envelope as JSON data (see
    :mod:`sagafsm.runtime.codec`)."""

    id: int
    saga_id: str
    message: dict[str, Any]


@attrs.frozen
class TimerRow:
    """A saga's armed timer (at most one per saga): fire ``timer_id`` at epoch second ``due``."""

    saga_id: str
    timer_id: str
    due: float


@attrs.frozen
class StoredSaga:
    """An unfinished saga as recovery reads it."""

    saga_id: str
    definition: str
    snapshot: dict[str, Any]


@attrs.frozen(kw_only=True)
class SagaStatus:
    """What a store knows of one saga: its state, and once finished its reason and results."""

    saga_id: str
    definition: str
    state: str
    reason: str | None
    results: dict[str, Any] | None
    """Every result that arrived, once the saga finished; None while it runs."""
    snapshot: dict[str, Any] | None
    """The latest snapshot while the saga runs; None once it finished."""
    started_at: float
    updated_at: float
    resolution: str | None = None
    """What an operator wrote when marking an ``operator_required`` saga resolved
    (``sagafsm resolve``); None until then."""
    retryable: bool = False
    """Parked ``operator_required`` by a compensation that gave up, its snapshot kept: an
    operator can retry it (``sagafsm retry``)."""


@attrs.frozen(kw_only=True)
class Commit:
    """One saga's part of a store transaction.

    ``snapshot`` None means the saga finished: the store keeps its status (state, reason,
    results) and drops the snapshot and any timer. ``timer`` is a row to arm (replacing the armed
    one), None to cancel, or :data:`KEEP`. ``records`` are trace records (plain tuples in the
    formats of :mod:`sagafsm.history`) appended in order. ``outbox`` holds envelopes as JSON data.
    ``parked`` is the snapshot of a saga that finished ``operator_required`` because a
    compensation gave up, kept apart (recovery does not run it) for an operator's retry; every
    other commit clears it.
    """

    saga_id: str
    definition: str
    state: str
    snapshot: dict[str, Any] | None
    reason: str | None = None
    results: dict[str, Any] | None = None
    outbox: Sequence[dict[str, Any]] = ()
    timer: TimerRow | Keep | None = KEEP
    records: Sequence[tuple[Any, ...]] = ()
    started: bool = False
    """The saga's first commit (its status row is inserted, with ``started_at``)."""
    now: float = 0.0
    """The clock's time of the move (``started_at``/``updated_at``)."""
    parked: dict[str, Any] | None = None
    retried: bool = False
    """This commit applies the operator's retry request of the saga: the request goes with it."""


@attrs.frozen
class RetryRequest:
    """An operator's request to retry a saga's compensation that gave up (``sagafsm retry``),
    with the parked snapshot it applies to."""

    saga_id: str
    definition: str
    snapshot: dict[str, Any]
    note: str


@attrs.frozen
class InboxEntry:
    """A participant's memory of one idempotency key.

    ``kind`` is ``"action"`` (the reply given for an action key: outcome, result or reason),
    ``"tombstone"`` (a compensation came before the action: the action key is blocked) or
    ``"compensation"`` (the compensation under this key is done)."""

    kind: str
    outcome: str | None = None
    result: dict[str, Any] | None = None
    reason: str = ""


class Store(Protocol):
    """The orchestrator's store (see the module docstring)."""

    async def open(self) -> None:
        """Create the schema, or check and migrate it; :class:`StoreError` changes nothing."""

    async def close(self) -> None: ...

    async def __aenter__(self) -> Store: ...

    async def __aexit__(self, *exc_info: object) -> None: ...

    async def boot(self) -> int:
        """Increment and return the store's boot counter (each process's message ids use it)."""

    async def commit(
        self, commits: Sequence[Commit], consumed: Sequence[int] = ()
    ) -> list[OutboxRow]:
        """One transaction for the batch; returns the outbox rows appended, with their ids, in
        order. ``consumed`` are receipts of inbound transport rows deleted in the same
        transaction (for a transport that lives in this store; ignored otherwise)."""

    async def mark_sent(self, ids: Sequence[int], records: Sequence[tuple[Any, ...]] = ()) -> None:
        """The outbox rows were published; ``records`` are appended in the same transaction."""

    async def unsent(self) -> list[OutboxRow]: ...

    async def running(self) -> list[StoredSaga]:
        """Every unfinished saga, in start order."""

    async def timers(self) -> list[TimerRow]: ...

    async def status(self, saga_id: str) -> SagaStatus | None: ...

    async def sagas(self, states: Collection[str] | None = None) -> list[SagaStatus]: ...

    async def append_trace(self, records: Sequence[tuple[Any, ...]]) -> None: ...

    async def trace(self) -> list[tuple[Any, ...]]:
        """Every trace record, in the order they were committed."""

    async def prune(self, finished_before: float) -> int:
        """Drop the status of sagas finished before that time; returns how many."""

    async def resolve(
        self, saga_id: str, resolution: str, records: Sequence[tuple[Any, ...]] = ()
    ) -> bool:
        """Mark a saga that ended ``operator_required`` resolved, and append ``records``, in one
        transaction; False, and nothing changed, if the saga is not ``operator_required`` or
        already has a resolution."""

    async def request_retry(self, saga_id: str, note: str, now: float) -> bool:
        """Ask for a retry of the saga's compensation that gave up (the runtime applies it);
        False, and nothing changed, unless the saga is parked (``operator_required`` with its
        snapshot kept, not resolved) and has no request waiting."""

    async def retry_requests(self) -> list[RetryRequest]:
        """The requests waiting, oldest first, each with its saga's parked snapshot."""


class ParticipantTx(Protocol):
    """One participant transaction: its inbox, its ledger, and (SQL stores) its own tables."""

    @property
    def dialect(self) -> str:
        """The SQL :meth:`execute` speaks: ``"sqlite"`` (``?`` placeholders), ``"postgresql"``
        (``%s``), or ``"memory"`` (none: a memory store has no tables).
        :func:`sagafsm.runtime.dialects.in_dialect` turns ``?`` into the placeholders of either."""

    async def inbox_get(self, key: str) -> InboxEntry | None: ...

    async def inbox_put(self, key: str, entry: InboxEntry) -> None: ...

    async def append_trace(self, records: Sequence[tuple[Any, ...]]) -> None: ...

    async def execute(self, sql: str, parameters: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run SQL on the participant's own tables inside this transaction."""


class ParticipantBatch(Protocol):
    """One participant transaction for several commands (group commit), each in a savepoint of
    its own: what one command's handler broke is undone alone, and the rest commit together."""

    async def prefetch(self, keys: Iterable[tuple[str, str]]) -> None:
        """Read these ``(participant, key)`` inbox entries ahead, in one go (SQLite: with the
        ``BEGIN``, in one hop), so that the savepoints' reads of them cost nothing."""

    def savepoint(self, participant: str) -> AbstractAsyncContextManager[ParticipantTx]:
        """One command's part: on a clean exit its writes stay in the batch (and commit with
        it), on an exception they are undone, the participant's own SQL included. Its reads see
        the writes of the savepoints released before it. One savepoint at a time: open the next
        once the last has ended."""


class ParticipantStore(Protocol):
    async def boot(self) -> int:
        """Increment and return the store's boot counter (a host's reply ids use it)."""

    def transaction(self, participant: str) -> AbstractAsyncContextManager[ParticipantTx]:
        """Commit on a clean exit, roll back on an exception; one participant's transactions
        run one at a time."""

    def batch(self) -> AbstractAsyncContextManager[ParticipantBatch]:
        """A transaction for savepoints of any participants: commit on a clean exit, roll back
        everything on an exception. Batches and transactions of one store run one at a time."""
