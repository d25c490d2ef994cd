"""What the runtime writes for one move: the store's :class:`Commit` of a core transaction, and
the trace records of what it sends.

The records are the simulator's, field for field (:mod:`sagafsm.history`): ``start``,
``transition``, ``timer``, ``finish`` go in with the move's commit, ``send`` with the relay's
``mark_sent``, so the same checkers judge a real run.
"""

from __future__ import annotations

from collections.abc import Callable

from ..commands import CancelTimer, StartTimer
from ..history import RawRecord
from ..messages import Envelope
from ..orchestration import Transaction, envelope_for, timer_record
from .codec import envelope_to_dict
from .store import KEEP, Commit, Keep, TimerRow

__all__ = ["commit_of", "send_record"]


def commit_of(
    transaction: Transaction,
    cause: int | None,
    message_id: Callable[[], int],
    *,
    retried: bool = False,
) -> tuple[Commit, list[Envelope]]:
    """The commit of one move, and the envelopes of its outbox rows (in row order).

    ``cause`` is the id of the message that set the move off (the commands' causation id);
    ``message_id`` hands out the id of each new envelope; ``retried``: the move applies an
    operator's retry request. A saga parked by a compensation that gave up keeps its snapshot
    (``parked``) for an operator's retry."""
    now = transaction.now
    records = transaction.records
    timer: TimerRow | Keep | None = KEEP
    for command in transaction.commands:
        if isinstance(command, StartTimer):
            timer = TimerRow(transaction.saga_id, command.timer_id, now + command.delay)
            records.append(timer_record(now, command))
        elif isinstance(command, CancelTimer):
            timer = None
    envelopes = [envelope_for(command, message_id(), cause) for command in transaction.outbound]
    # The engine's data and results, shared, not copied: the store encodes them at once.
    outbox = [envelope_to_dict(envelope, copy=False) for envelope in envelopes]
    finished = transaction.finished
    reason = results = parked = None
    saga = transaction.saga
    state = saga.state.value
    if finished is not None:
        if saga.retryable:
            parked = saga.snapshot()
        reason = finished.reason
        results = {name: dict(result) for name, result in finished.results.items()}
        records.append((now, "finish", transaction.saga_id, state, reason))
    commit = Commit(
        saga_id=transaction.saga_id,
        definition=transaction.definition,
        state=state,
        snapshot=transaction.snapshot,
        reason=reason,
        results=results,
        outbox=outbox,
        timer=timer,
        records=records,
        started=transaction.started,
        now=now,
        parked=parked,
        retried=retried,
    )
    return commit, envelopes


def send_record(now: float, envelope: Envelope) -> RawRecord:
    """The ``send`` record of a published command (a command has no outcome)."""
    return (
        now,
        "send",
        envelope.saga_id,
        envelope.message_id,
        envelope.source,
        envelope.dest,
        envelope.kind.value,
        envelope.step,
        envelope.operation,
        envelope.attempt,
        None,
    )
