"""Runs participants: takes their commands off a transport, applies the inbox rules, replies.

A command is handled in a participant transaction: the inbox lookup, the handler (whose own SQL
shares the transaction), the inbox entry that remembers the answer, and the ledger (``effect``
records, and the ``send`` record of the reply) commit together or not at all. Only after the
commit is the reply sent, and only after that is the command acked, so a crash anywhere leaves
the command to be delivered again, and the inbox answers the repeat. The rules themselves are in
:mod:`.inbox` (the simulator's participant's, rule for rule).

With ``group_commit`` (the default) the host handles the commands it has ready in one store
transaction (:meth:`ParticipantHost.handle_many`), each in a savepoint of its own: a handler
that breaks undoes its own writes alone, and a batch pays one commit (on SQLite, two thread
hops) instead of one transaction per command, each queued behind the store's one write lock.
Each participant's consumer takes up to ``max_in_hand`` commands at a time, and more only once
those are handled, so one participant's commands still run one at a time and in the order they
came; different participants' commands batch together. The crash points keep their meaning per
batch: ``participant.before_commit`` once the batch's handlers ran, ``participant.after_commit``
once it committed, before any reply is sent.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from typing import Any, Final

import attrs

from ..errors import InvalidArgument, InvalidConfig
from ..messages import Envelope, reply_to
from . import crashpoints
from .clock import Clock
from .inbox import BLOCKED_REASON, Abandon, Decision, InboxRules, TryFailed, inbox_keys, warn
from .participant import Participant
from .store import ParticipantBatch, ParticipantStore, ParticipantTx
from .transport import ORCHESTRATOR, Delivery, Transport, TransportClosed, receive_until

__all__ = ["ParticipantHost", "HostStatistics", "BLOCKED_REASON"]

_ID_SPACE: Final = 2**32
_GATHER_TURNS: Final = 4
"""Event-loop turns a batch waits, at most, for the other participants' commands to come in
(a consumer needs about three from taking a delivery to handing it in)."""

_Ready = tuple[str, Delivery, asyncio.Future[bool]]
"""A command handed to the batcher, and the future its consumer waits on (False: stop)."""


@attrs.frozen(kw_only=True)
class HostStatistics:
    received: int
    """Commands handled (:meth:`ParticipantHost.handle`, :meth:`ParticipantHost.handle_many`)."""
    handler_calls: int
    """Action and compensation handlers called (repeats answered from the inbox call none)."""
    replies: int
    abandoned: int
    """Commands that got no reply: the handler raised, hung or returned a bad result (or the
    store failed), so their writes rolled back."""
    transactions: int = 0
    """Store transactions the host opened (with ``group_commit``, one per batch)."""


class ParticipantHost(InboxRules):
    """Serves every participant given: one consumer per participant, so one participant's
    commands run one at a time and in order. With ``group_commit`` the consumers hand what they
    took (``max_in_hand`` commands each, at most) to one batcher, which handles all that is
    ready in one store transaction (see the module docstring). Without it each consumer handles
    a command at a time in a transaction of its own, as far as the store lets transactions
    overlap (the memory and SQLite stores run one participant transaction at a time per store
    object). Either way a handler that hangs holds up the others until ``handler_timeout``, so
    set one in production.

    The host owns neither the transport nor the store: :meth:`close` stops the consumers (a
    command being handled is finished first) and leaves both open. ``boot`` makes reply ids
    unique across processes (``boot * 2**32 + n``): by default :meth:`run` takes the next value of
    the store's boot counter; pass one only to share a boot the process already took.
    ``handler_timeout`` is in real seconds (``asyncio.timeout``), whatever the clock.
    """

    def __init__(
        self,
        participants: Iterable[Participant],
        transport: Transport,
        store: ParticipantStore,
        clock: Clock,
        *,
        boot: int | None = None,
        handler_timeout: float | None = None,
        group_commit: bool = True,
        max_in_hand: int = 16,
    ) -> None:
        self._participants: dict[str, Participant] = {}
        for participant in participants:
            if not isinstance(participant, Participant):
                raise InvalidArgument(f"not a Participant: {participant!r}")
            if participant.name in self._participants:
                raise InvalidConfig(f"two participants are named {participant.name!r}")
            self._participants[participant.name] = participant
        if boot is not None and (boot.__class__ is not int or boot < 0):
            raise InvalidArgument(f"boot must be None or an int, zero or more, got {boot!r}")
        if handler_timeout is not None and (
            isinstance(handler_timeout, bool)
            or not isinstance(handler_timeout, (int, float))
            or not handler_timeout > 0
        ):
            raise InvalidArgument(
                f"handler_timeout must be a positive number or None, got {handler_timeout!r}"
            )
        if not isinstance(group_commit, bool):
            raise InvalidArgument(f"group_commit must be a bool, got {group_commit!r}")
        if max_in_hand.__class__ is not int or max_in_hand < 1:
            raise InvalidArgument(f"max_in_hand must be an int, 1 or more, got {max_in_hand!r}")
        self._transport = transport
        self._store = store
        self._clock = clock
        self._timeout = handler_timeout
        self._group_commit = group_commit
        self._in_hand = max_in_hand
        self._boot = boot
        self._next_id = 0 if boot is None else boot * _ID_SPACE
        self._closing = False
        self._stop: asyncio.Future[None] | None = None
        self._stopped = asyncio.Event()
        self._running = False
        self._ready: list[_Ready] = []
        self._wake = asyncio.Event()
        self._feeding = 0
        self._handed_in = 0
        self._received = self._calls = self._replies = self._abandoned = self._transactions = 0

    def statistics(self) -> HostStatistics:
        return HostStatistics(
            received=self._received,
            handler_calls=self._calls,
            replies=self._replies,
            abandoned=self._abandoned,
            transactions=self._transactions,
        )

    # -- the consumers -------------------------------------------------------------------------

    async def run(self) -> None:
        """Consume until :meth:`close` (or the transport closes); a consumer's unexpected error
        (the transport failing) ends the run with it."""
        if self._running:
            raise RuntimeError("this ParticipantHost is already running")
        self._running = True
        try:
            await self._booted()  # a store that cannot boot fails the run before it began
        except BaseException:
            self._running = False
            raise
        self._stopped.clear()
        self._stop = asyncio.get_running_loop().create_future()
        if self._closing:
            self._stop.set_result(None)
        self._ready, self._wake, self._handed_in = [], asyncio.Event(), 0
        self._wake.set()  # the batcher looks once: with no participant to feed it, it is done
        try:
            async with asyncio.TaskGroup() as consumers:
                for participant in self._participants.values():
                    consume = self._feed if self._group_commit else self._consume
                    consumers.create_task(consume(participant.name), name=participant.name)
                if self._group_commit:
                    self._feeding = len(self._participants)
                    consumers.create_task(self._batcher(), name="batcher")
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

    async def _consume(self, name: str) -> None:
        """Without group commit: a command at a time, in a transaction of its own."""
        while deliveries := await self._receive(name, 1):
            (delivery,) = deliveries
            try:
                await self.handle(name, delivery.message)
                if delivery.receipt is not None:
                    await self._transport.ack(name, (delivery.receipt,))
            except TransportClosed:
                return

    async def _feed(self, name: str) -> None:
        """Group commit: take up to ``max_in_hand`` commands and hand them to the batcher; take
        more once they are handled."""
        loop = asyncio.get_running_loop()
        try:
            while deliveries := await self._receive(name, self._in_hand):
                done: asyncio.Future[bool] = loop.create_future()
                self._ready.extend((name, delivery, done) for delivery in deliveries)
                self._handed_in += 1
                self._wake.set()
                if not await done:
                    return
        finally:
            self._feeding -= 1
            self._wake.set()

    async def _batcher(self) -> None:
        """Handle what the consumers handed in, a batch at a time, until they all stopped."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            if not self._ready:
                if self._feeding <= 0:
                    return
                continue
            for _ in range(_GATHER_TURNS):  # let the other consumers hand theirs in
                if self._handed_in >= self._feeding:
                    break
                await asyncio.sleep(0)
            batch, self._ready = self._ready, []
            self._handed_in = 0
            going_on = True
            try:
                await self.handle_many([(name, delivery.message) for name, delivery, _ in batch])
                receipts: dict[str, list[int]] = {}
                for name, delivery, _ in batch:
                    if delivery.receipt is not None:
                        receipts.setdefault(name, []).append(delivery.receipt)
                for name, ids in receipts.items():
                    await self._transport.ack(name, ids)
            except TransportClosed:
                going_on = False
            finally:
                for _, _, done in batch:
                    if not done.done():
                        done.set_result(going_on)

    async def _receive(self, name: str, limit: int) -> list[Delivery]:
        """The next deliveries (one to ``limit``), or none once closing (what is already in
        hand is kept)."""
        assert self._stop is not None
        return await receive_until(self._transport, name, limit, self._stop)

    # -- handling commands ---------------------------------------------------------------------

    def _hosted(self, name: str) -> Participant:
        participant = self._participants.get(name)
        if participant is None:
            raise InvalidArgument(f"this host runs no participant named {name!r}")
        return participant

    async def _booted(self) -> None:
        """Take the boot of this host's reply ids from the store, the first time one is needed."""
        if self._boot is None:
            boot = await self._store.boot()
            if self._boot is None:  # (a concurrent first call may have taken one meanwhile)
                self._boot, self._next_id = boot, boot * _ID_SPACE

    async def handle(self, participant: str, message: Envelope) -> Envelope | None:
        """Handle one command for ``participant`` (its transaction, then its reply); returns the
        reply sent, or None if the command was abandoned. The caller acks the delivery."""
        if self._group_commit:
            (reply,) = await self.handle_many([(participant, message)])
            return reply
        hosted = self._hosted(participant)
        await self._booted()
        self._received += 1
        try:
            reply = await self._transact(hosted, message)
        except Abandon:
            reply = None
        except Exception:
            warn(participant, message, "abandoned, no reply: the store failed", exc_info=True)
            reply = None
        if reply is None:
            self._abandoned += 1
            return None
        crashpoints.hit("participant.after_commit")
        await self._transport.send(reply)
        self._replies += 1
        return reply

    async def handle_many(self, commands: Sequence[tuple[str, Envelope]]) -> list[Envelope | None]:
        """Handle ``(participant, command)`` pairs in one store transaction, in order, each in a
        savepoint of its own (a later command sees what the earlier ones wrote); after the
        commit, send the replies in order. Returns each command's reply, None for one abandoned
        (or for all, if the store failed). The caller acks the deliveries."""
        hosted = [(self._hosted(name), message) for name, message in commands]
        if not hosted:
            return []
        await self._booted()
        self._received += len(hosted)
        try:
            replies = await self._transact_many(hosted)
        except Exception:
            for n, (name, message) in enumerate(commands):
                warn(name, message, "abandoned, no reply: the store failed", exc_info=n == 0)
            replies = [None] * len(hosted)
        sent = [reply for reply in replies if reply is not None]
        self._abandoned += len(hosted) - len(sent)
        if sent:
            crashpoints.hit("participant.after_commit")
            await self._transport.send_many(sent)
            self._replies += len(sent)
        return replies

    async def _transact(self, participant: Participant, message: Envelope) -> Envelope:
        """One command, one transaction (without ``group_commit``)."""
        name = participant.name
        self._transactions += 1
        try:
            async with self._store.transaction(name) as tx:
                decision = await self._decide(participant, message, tx)
                reply = await self._commit(participant, message, tx, decision)
                crashpoints.hit("participant.before_commit")
                return reply
        except TryFailed as failed:
            # The handler's writes are rolled back; the failed try is recorded on its own.
            self._transactions += 1
            async with self._store.transaction(name) as tx:
                reply = await self._commit(participant, message, tx, failed.decision)
                crashpoints.hit("participant.before_commit")
                return reply

    async def _transact_many(
        self, commands: Sequence[tuple[Participant, Envelope]]
    ) -> list[Envelope | None]:
        replies: list[Envelope | None] = []
        async with self._store.batch() as batch:
            self._transactions += 1
            # BEGIN and every inbox entry the rules will read, in one go.
            await batch.prefetch(at for p, m in commands for at in inbox_keys(p.name, m))
            for participant, message in commands:
                replies.append(await self._savepoint(batch, participant, message))
            if any(reply is not None for reply in replies):
                crashpoints.hit("participant.before_commit")
        return replies

    async def _savepoint(
        self, batch: ParticipantBatch, participant: Participant, message: Envelope
    ) -> Envelope | None:
        """One command of a batch; None if it was abandoned (its savepoint rolled back)."""
        try:
            async with batch.savepoint(participant.name) as tx:
                decision = await self._decide(participant, message, tx)
                return await self._commit(participant, message, tx, decision)
        except Abandon:
            return None
        except TryFailed as failed:
            async with batch.savepoint(participant.name) as tx:
                return await self._commit(participant, message, tx, failed.decision)

    async def _commit(
        self, participant: Participant, message: Envelope, tx: ParticipantTx, decision: Decision
    ) -> Envelope:
        """The reply, with its ledger and send records appended to ``tx``."""
        outcome, _, _, effect = decision
        reply = self._reply(participant.name, message, decision)
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
        return reply

    def _reply(self, name: str, message: Envelope, decision: Decision) -> Envelope:
        outcome, result, reason, _ = decision
        self._next_id += 1
        return reply_to(
            message,
            message_id=self._next_id,
            source=name,
            outcome=outcome,
            result=result,
            reason=reason,
        )
