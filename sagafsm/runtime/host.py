"""Runs participants: takes their commands off a transport, applies the inbox rules, replies.

Each command is handled in one participant transaction (``store.transaction(name)``): the inbox
lookup, the handler (whose own SQL shares the transaction), the inbox entry that remembers the
answer, and the ledger (``effect`` records, and the ``send`` record of the reply) commit together
or not at all. Only after the commit is the reply sent, and only after that is the command acked,
so a crash anywhere leaves the command to be delivered again, and the inbox answers the repeat.

The inbox rules are the simulator's participant's (:mod:`sagafsm.sim.participant`), rule for
rule, so that the same checkers judge both:

- an action key with a recorded reply gets that reply again, and nothing runs;
- a tombstoned action key (its compensation came first) is ``action_blocked``, and answered
  "cancelled: its compensation came first";
- a compensation key already done is answered succeeded, and nothing runs;
- a compensation handed an action result other than the one this participant recorded is
  ``compensation_refused`` (checked first: undoing with a result it never gave out would undo
  something else);
- a compensation of an action that never succeeded here leaves a tombstone on the action key and
  is ``compensation_noop``; otherwise the compensation handler runs: ``compensation``.

A handler that raises anything but :class:`~sagafsm.runtime.participant.Refused`, returns what is
not a mapping of JSON data, or outlives ``handler_timeout``, is abandoned: the transaction rolls
back, nobody answers, and the orchestrator's timeout decides (a compensation that raises is
different: that is a failed try, recorded and answered, as the engine retries compensations).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Iterable, Mapping
from typing import Any, Final, NoReturn, TypeVar

import attrs

from .._validate import is_json_value, plain_json
from ..errors import InvalidArgument, InvalidConfig
from ..history import LedgerEffect
from ..messages import Envelope, MessageKind, Outcome
from . import crashpoints
from .clock import Clock
from .participant import Participant, Refused, action_call, compensation_call
from .store import InboxEntry, ParticipantStore, ParticipantTx
from .transport import ORCHESTRATOR, Delivery, Transport, TransportClosed

__all__ = ["ParticipantHost", "HostStatistics", "BLOCKED_REASON"]

_log = logging.getLogger(__name__)
_T = TypeVar("_T")

BLOCKED_REASON: Final = "cancelled: its compensation came first"
"""The reason an action blocked by a tombstone is answered with (the simulator's)."""

_SUCCEEDED, _FAILED = Outcome.SUCCEEDED, Outcome.FAILED
_ID_SPACE: Final = 2**32


@attrs.frozen(kw_only=True)
class HostStatistics:
    received: int
    """Commands taken off the transport (and handed to :meth:`ParticipantHost.handle`)."""
    handler_calls: int
    """Action and compensation handlers called (repeats answered from the inbox call none)."""
    replies: int
    abandoned: int
    """Commands that got no reply: the handler raised, hung or returned a bad result (or the
    store failed), so the transaction rolled back."""


def _warn(name: str, message: Envelope, what: str, *, exc_info: bool = False) -> None:
    _log.warning(
        "participant %r: %s %r (saga %r, step %r, message %d) %s",
        *(name, message.kind.value, message.operation, message.saga_id, message.step),
        *(message.message_id, what),
        exc_info=exc_info,
    )


class _Abandon(Exception):
    """Roll the transaction back and answer nothing (the reason has been logged)."""


class _TryFailed(Exception):
    """A compensation handler raised: roll its writes back, then record the failed try."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


_Decision = tuple[Outcome, dict[str, Any] | None, str, str | None]
"""A reply's outcome, result and reason, and the ledger effect (None: nothing happened)."""


class ParticipantHost:
    """Serves every participant given: one consumer per participant, so one participant's
    commands run one at a time and different participants' run concurrently, as far as the store
    lets their transactions overlap (the memory and SQLite stores run one participant transaction
    at a time per store object: a handler that hangs holds up the others until
    ``handler_timeout``, so set one in production).

    The host owns neither the transport nor the store: :meth:`close` stops the consumers (a
    command being handled is finished first) and leaves both open. ``boot`` (from the store's
    boot counter) makes reply ids unique across processes: ``boot * 2**32 + n``.
    ``handler_timeout`` is in real seconds (``asyncio.timeout``), whatever the clock.
    """

    _dedup = True
    """Answer a repeated key from the inbox. A test's broken variant turns it off."""
    _tombstones = True
    """Leave a tombstone for a compensation that came before its action (likewise)."""

    def __init__(
        self,
        participants: Iterable[Participant],
        transport: Transport,
        store: ParticipantStore,
        clock: Clock,
        *,
        boot: int,
        handler_timeout: float | None = None,
    ) -> None:
        self._participants: dict[str, Participant] = {}
        for participant in participants:
            if not isinstance(participant, Participant):
                raise InvalidArgument(f"not a Participant: {participant!r}")
            if participant.name in self._participants:
                raise InvalidConfig(f"two participants are named {participant.name!r}")
            self._participants[participant.name] = participant
        if boot.__class__ is not int or boot < 0:
            raise InvalidArgument(f"boot must be an int, zero or more, got {boot!r}")
        if handler_timeout is not None and (
            isinstance(handler_timeout, bool)
            or not isinstance(handler_timeout, (int, float))
            or not handler_timeout > 0
        ):
            raise InvalidArgument(
                f"handler_timeout must be a positive number or None, got {handler_timeout!r}"
            )
        self._transport = transport
        self._store = store
        self._clock = clock
        self._timeout = handler_timeout
        self._next_id = boot * _ID_SPACE
        self._closing = False
        self._stop: asyncio.Future[None] | None = None
        self._stopped = asyncio.Event()
        self._running = False
        self._received = self._calls = self._replies = self._abandoned = 0

    def statistics(self) -> HostStatistics:
        return HostStatistics(
            received=self._received,
            handler_calls=self._calls,
            replies=self._replies,
            abandoned=self._abandoned,
        )

    # -- the consumers -------------------------------------------------------------------------

    async def run(self) -> None:
        """Consume until :meth:`close` (or the transport closes); a consumer's unexpected error
        (the transport failing) ends the run with it."""
        if self._running:
            raise RuntimeError("this ParticipantHost is already running")
        self._running = True
        self._stopped.clear()
        self._stop = asyncio.get_running_loop().create_future()
        if self._closing:
            self._stop.set_result(None)
        try:
            async with asyncio.TaskGroup() as consumers:
                for participant in self._participants.values():
                    consumers.create_task(self._consume(participant), name=participant.name)
        finally:
            self._running = False
            self._stopped.set()

    async def close(self) -> None:
        """Stop receiving; return once the commands in hand are handled and the run is over."""
        self._closing = True
        if self._stop is not None and not self._stop.done():
            self._stop.set_result(None)
        if self._running:
            await self._stopped.wait()

    async def _consume(self, participant: Participant) -> None:
        while (delivery := await self._receive(participant.name)) is not None:
            try:
                await self.handle(participant.name, delivery.message)
                if delivery.receipt is not None:
                    await self._transport.ack(participant.name, (delivery.receipt,))
            except TransportClosed:
                return

    async def _receive(self, name: str) -> Delivery | None:
        """The next delivery, or None once closing (a delivery already in hand is kept)."""
        stop = self._stop
        assert stop is not None
        if stop.done():
            return None
        receive = asyncio.ensure_future(self._transport.receive(name))
        try:
            await asyncio.wait((receive, stop), return_when=asyncio.FIRST_COMPLETED)
        finally:
            if not receive.done():
                receive.cancel()
                await asyncio.wait((receive,))
        if receive.cancelled() or isinstance(receive.exception(), TransportClosed):
            return None
        return receive.result()

    # -- one command ---------------------------------------------------------------------------

    async def handle(self, participant: str, message: Envelope) -> Envelope | None:
        """Handle one command for ``participant`` (its transaction, then its reply); returns the
        reply sent, or None if the command was abandoned. The caller acks the delivery."""
        handler_of = self._participants.get(participant)
        if handler_of is None:
            raise InvalidArgument(f"this host runs no participant named {participant!r}")
        self._received += 1
        try:
            reply = await self._transact(handler_of, message)
        except _Abandon:
            reply = None
        except Exception:
            _warn(participant, message, "abandoned, no reply: the store failed", exc_info=True)
            reply = None
        if reply is None:
            self._abandoned += 1
            return None
        crashpoints.hit("participant.after_commit")
        await self._transport.send(reply)
        self._replies += 1
        return reply

    async def _transact(self, participant: Participant, message: Envelope) -> Envelope:
        name = participant.name
        try:
            async with self._store.transaction(name) as tx:
                if message.kind is MessageKind.EXECUTE:
                    decision = await self._execute(participant, message, tx)
                elif message.kind is MessageKind.COMPENSATE:
                    decision = await self._compensate(participant, message, tx)
                else:
                    self._abandon(participant, message, f"a {message.kind.value} is no command")
                return await self._commit(participant, message, tx, decision)
        except _TryFailed as failed:
            # The handler's writes are rolled back; the failed try is recorded on its own.
            decision = (_FAILED, None, failed.reason, LedgerEffect.COMPENSATION_FAILED)
            async with self._store.transaction(name) as tx:
                return await self._commit(participant, message, tx, decision)

    async def _commit(
        self, participant: Participant, message: Envelope, tx: ParticipantTx, decision: _Decision
    ) -> Envelope:
        """The reply, its ledger and send records appended to ``tx``; the last moment before the
        commit."""
        outcome, result, reason, effect = decision
        reply = self._reply(participant.name, message, outcome, result, reason)
        now = self._clock.now()
        saga, step = message.saga_id, message.step
        records: list[tuple[Any, ...]] = []
        if effect is not None:
            records.append((now, "effect", saga, participant.name, step, effect))
        records.append(
            (now, "send", saga, reply.message_id, participant.name, ORCHESTRATOR,
             reply.kind.value, step, reply.operation, reply.attempt, outcome.value)
        )  # fmt: skip
        await tx.append_trace(records)
        crashpoints.hit("participant.before_commit")
        return reply

    async def _execute(
        self, participant: Participant, message: Envelope, tx: ParticipantTx
    ) -> _Decision:
        key = message.idempotency_key
        entry = await tx.inbox_get(key)
        if entry is not None and entry.kind == "tombstone":
            return (_FAILED, None, BLOCKED_REASON, LedgerEffect.ACTION_BLOCKED)
        if entry is not None and entry.kind == "action" and self._dedup:
            return (Outcome(entry.outcome), entry.result, entry.reason, None)
        handler = participant.actions.get(message.operation)
        if handler is None:
            self._abandon(participant, message, "no handler for this action")
        self._calls += 1
        try:
            result = await self._call(participant, message, handler(action_call(message, tx)))
        except Refused as refused:
            decision: _Decision = (_FAILED, None, refused.reason, LedgerEffect.ACTION_FAILED)
        else:
            if result is None:
                reason = f"{participant.name} declined {message.operation}"
                decision = (_FAILED, None, reason, LedgerEffect.ACTION_FAILED)
            elif isinstance(result, Mapping) and is_json_value(result):
                # A plain JSON copy, as the engine keeps it: what was handed out stays what it
                # was, and compares equal to what a compensation is handed back.
                decision = (_SUCCEEDED, plain_json(result), "", LedgerEffect.ACTION)
            else:
                self._abandon(
                    participant, message,
                    f"the handler returned {result!r}: a result must be a mapping of JSON data "
                    "(or None, or raise Refused, for a definite failure)",
                )  # fmt: skip
        outcome, kept, reason, _ = decision
        await tx.inbox_put(key, InboxEntry("action", outcome.value, kept, reason))
        return decision

    async def _compensate(
        self, participant: Participant, message: Envelope, tx: ParticipantTx
    ) -> _Decision:
        key, action_key = message.idempotency_key, message.action_key
        entry = await tx.inbox_get(key)
        if entry is not None and entry.kind == "compensation" and self._dedup:
            return (_SUCCEEDED, None, "", None)
        if action_key is None:
            self._abandon(participant, message, "a compensation without an action_key")
        known = await tx.inbox_get(action_key)
        if known is not None and known.kind != "action":
            known = None  # a tombstone: the action was never applied
        handed_out = known.result if known is not None else None
        claimed = message.action_result
        if claimed is not None and claimed != handed_out:
            reason = f"refused: {participant.name} never handed out {dict(claimed)}"
            return (_FAILED, None, reason, LedgerEffect.COMPENSATION_REFUSED)
        if known is not None and known.outcome == _SUCCEEDED.value and handed_out is not None:
            handler = participant.compensations.get(message.operation)
            if handler is None:
                self._abandon(participant, message, "no handler for this compensation")
            self._calls += 1
            try:
                call = compensation_call(message, action_key, handed_out, tx)
                await self._call(participant, message, handler(call))
            except Refused as refused:
                raise _TryFailed(refused.reason) from None
            except _Abandon:
                raise
            except Exception as error:
                _warn(participant.name, message, "this try failed", exc_info=True)
                raise _TryFailed(f"{type(error).__name__}: {error}") from None
            effect = LedgerEffect.COMPENSATION
        else:
            if self._tombstones:
                await tx.inbox_put(action_key, InboxEntry("tombstone"))
            effect = LedgerEffect.COMPENSATION_NOOP
        await tx.inbox_put(key, InboxEntry("compensation", _SUCCEEDED.value))
        return (_SUCCEEDED, None, "", effect)

    async def _call(self, participant: Participant, message: Envelope, run: Awaitable[_T]) -> _T:
        """Await a handler, within ``handler_timeout``; an action's exception (not Refused)
        abandons the command, and so does outliving the timeout."""
        is_action = message.kind is MessageKind.EXECUTE
        scope = asyncio.timeout(self._timeout)
        try:
            async with scope:
                return await run
        except TimeoutError:
            if scope.expired():
                self._abandon(participant, message, f"the handler hung ({self._timeout} s)")
            if is_action:
                self._abandon(participant, message, "the handler raised", exc_info=True)
            raise
        except Refused:
            raise
        except Exception:
            if is_action:
                self._abandon(participant, message, "the handler raised", exc_info=True)
            raise

    def _abandon(
        self, participant: Participant, message: Envelope, why: str, *, exc_info: bool = False
    ) -> NoReturn:
        _warn(participant.name, message, f"abandoned, no reply: {why}", exc_info=exc_info)
        raise _Abandon(why)

    def _reply(
        self,
        name: str,
        message: Envelope,
        outcome: Outcome,
        result: Mapping[str, Any] | None,
        reason: str,
    ) -> Envelope:
        self._next_id += 1
        kind = (
            MessageKind.ACTION_REPLY
            if message.kind is MessageKind.EXECUTE
            else MessageKind.COMPENSATION_REPLY
        )
        return Envelope(
            message_id=self._next_id,
            kind=kind,
            saga_id=message.saga_id,
            causation_id=message.message_id,
            idempotency_key=message.idempotency_key,
            source=name,
            dest=ORCHESTRATOR,
            step=message.step,
            operation=message.operation,
            attempt=message.attempt,
            outcome=outcome,
            result=result,
            reason=reason,
        )
