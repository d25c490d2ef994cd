"""Runs choreographed participants for real: the sans-IO rules over a store and a transport.

Every rule is :class:`sagafsm.choreography.node.RoleNode`'s, the one the simulator drives; this
driver adds what a real service has around it. Each thing a participant hears (an event
delivered, a timer of its own coming due, its own action's or compensation's answer, a saga it
starts) is one **pass**, in one participant transaction: read its state of the saga, let the node
decide, then write what the node decided (the roles' new states, the trace records, the events
into its outbox, its timers, the compensations it must run) and commit. Only then:

1. publish the outbox (crash point ``participant.after_commit`` before, and
   ``participant.after_publish`` after, until the rows are deleted: a crash in between publishes
   them again), then ack the delivery (a crash before the ack has it delivered again): so an
   event may arrive twice, and the node drops the repeat by its event id;
2. arm the timers in memory (:class:`~.timer_table.TimerTable`); they are rows too, read back on a
   restart, so a deadline outlives the process that set it;
3. run the actions and compensations decided, each in a pass of its own, with the inbox rules of
   the orchestrated participants (:class:`~.inbox.InboxRules`: idempotency keys, tombstones,
   failed compensation tries): the handler's writes, the inbox entry, the ``effect`` record and
   the node's reaction to the answer commit together. A handler that raises or hangs is
   abandoned, and the action's try timer tries it again.

The tables are :mod:`.choreography_wire`'s. One participant's passes run one at a time, in order;
several participants in one host run side by side. Crash points: ``participant.before_commit``
in every pass, then the two above.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, Final

import attrs

from ..choreography.events import ChoreographyEvent
from ..choreography.node import Switches, Tries
from ..choreography.projection import OutcomeState, project
from ..choreography.routing import consumers_of
from ..choreography.table import ChoreographyDefinition
from ..errors import InvalidArgument, InvalidConfig
from ..messages import Envelope, MessageKind
from . import choreography_tables as tables
from . import crashpoints
from .choreography_port import Pass, Player
from .choreography_wire import envelope_event
from .clock import Clock
from .codec import envelope_from_dict
from .inbox import Abandon, Decision, InboxRules, TryFailed, warn
from .participant import Participant
from .store import ParticipantStore, ParticipantTx
from .transport import Delivery, Transport, receive_until

__all__ = ["ChoreographyHost", "ChoreographyStatistics"]

_ID_SPACE: Final = 2**32
_BATCH: Final = 16


@attrs.frozen(kw_only=True)
class ChoreographyStatistics:
    passes: int
    """Participant transactions committed."""
    handler_calls: int
    published: int
    abandoned: int


class ChoreographyHost(InboxRules):
    """Plays the participants named in ``plays`` of ``definition`` (the initiator among them, or
    not), over ``store`` (a SQL one: see :mod:`.choreography_wire`) and ``transport``.

    ``participants`` hold the handlers of the steps played here. ``tries`` are each step's
    (:func:`~sagafsm.choreography.node.tries_of`). ``switches`` and ``rearm=False`` (do not read
    the timer rows back on a restart) are for broken variants only. :meth:`run` serves until
    :meth:`close`; :meth:`start` and :meth:`wait` are the initiator's.
    """

    def __init__(
        self,
        definition: ChoreographyDefinition,
        plays: Iterable[str],
        participants: Iterable[Participant],
        tries: Mapping[str, Tries],
        transport: Transport,
        store: ParticipantStore,
        clock: Clock,
        *,
        switches: Switches | None = None,
        rearm: bool = True,
        handler_timeout: float | None = None,
        boot: int | None = None,
    ) -> None:
        projection = project(definition)
        consumers = consumers_of(definition, projection.roles)
        self._subscribers = {
            event: tuple(dict.fromkeys(r.participant for r in roles))
            for event, roles in consumers.items()
        }
        self.definition = definition
        self._transport, self._store, self._clock = transport, store, clock
        self._rearm = rearm
        self._timeout = handler_timeout
        self._calls = self._passes = self._published = self._abandoned = 0
        self.counts: Counter[tuple[str, str]] = Counter()
        """Tries made again (``("step", "retry")``, ``("step", "compensation_retry")``)."""
        self._boot, self._next_id = boot, 0 if boot is None else boot * _ID_SPACE
        handlers = {p.name: p for p in participants}
        self._players: dict[str, Player] = {}
        for name in dict.fromkeys(plays):
            if name not in definition.participants:
                known = ", ".join(definition.participants)
                raise InvalidConfig(f"choreography {definition.name!r} has no {name!r} ({known})")
            args = {
                "definition": definition,
                "roles": projection.of(name),
                "consumers": consumers,
                "tries": tries,
                "counts": self.counts,
                "switches": switches or Switches(),
            }
            player = Player(self, name, args)
            if player.node.runs_steps:
                if name not in handlers:
                    raise InvalidConfig(f"no handlers for participant {name!r}")
                player.handlers = handlers[name]
            self._players[name] = player
        self.outcomes: dict[str, str] = {}
        """The initiator's sagas that ended, and how (read back on a restart)."""
        self._waiters: dict[str, asyncio.Future[str]] = {}
        self._in_hand = 0
        self._recovered = asyncio.Event()
        """Set once :meth:`run` recovered every participant: :meth:`start` waits for it."""
        self._closing: asyncio.Event | None = None

    def statistics(self) -> ChoreographyStatistics:
        return ChoreographyStatistics(
            passes=self._passes,
            handler_calls=self._calls,
            published=self._published,
            abandoned=self._abandoned,
        )

    def idle(self) -> bool:
        """No delivery in hand and no pass running (what an in-memory transport's run needs
        to tell that it is quiescent: its messages live nowhere else)."""
        return not self._in_hand and not any(p.lock.locked() for p in self._players.values())

    @property
    def subscribers(self) -> Mapping[str, tuple[str, ...]]:
        return self._subscribers

    def next_id(self) -> int:
        self._next_id += 1
        return self._next_id

    # -- running -------------------------------------------------------------------------------

    async def run(self) -> None:
        """Recover every participant played here (its timers, its outbox, its compensations in
        progress), then serve until :meth:`close` or the transport closes."""
        if self._boot is None:
            self._boot = await self._store.boot()
            self._next_id = self._boot * _ID_SPACE
        self._closing = closing = asyncio.Event()
        for player in self._players.values():
            await self._recover(player)
        self._recovered.set()
        async with asyncio.TaskGroup() as group:
            timers = []
            for player in self._players.values():
                group.create_task(self._consume(player))  # ends by itself once closing
                timers.append(group.create_task(self._timer_loop(player)))
            await closing.wait()
            for task in timers:
                task.cancel()

    async def close(self) -> None:
        if self._closing is not None:
            self._closing.set()

    async def _recover(self, player: Player) -> None:
        name = player.name
        async with self._store.transaction(name) as tx:
            initiator = name == self.definition.initiator  # (its sagas' outcomes, read back)
            timers, pending, sagas = await tables.read_recovery(tx, name, sagas=initiator)
        if self._rearm:  # (off: the broken variant that forgets its deadlines on a restart)
            for saga_id, role, token, what, due in timers:
                player.timers.arm(f"{saga_id}\n{role}", f"{token}/{what}", float(due))
        for saga_id, state in sagas:
            outcome = json.loads(state)["runs"].get(name)
            if outcome in (OutcomeState.COMPLETED.value, OutcomeState.FAILED.value):
                self.outcomes[saga_id] = outcome
        async with player.lock:
            await self._publish(player)
        for (message,) in pending:
            await self._operate(player, envelope_from_dict(json.loads(message)))

    async def _consume(self, player: Player) -> None:
        transport = self._transport
        while deliveries := await self._receive(player.name):
            self._in_hand += len(deliveries)
            for delivery in deliveries:
                message = delivery.message
                if message.kind is MessageKind.EVENT:
                    event = envelope_event(message)
                    await self._pass(player, event.saga_id, _hear(player, event))
                if delivery.receipt is not None:
                    await transport.ack(player.name, (delivery.receipt,))
                self._in_hand -= 1

    async def _receive(self, name: str) -> list[Delivery]:
        """The next deliveries for ``name``, or none once closing (as the orchestrated
        participants' host takes them)."""
        closing = self._closing
        assert closing is not None
        if closing.is_set():
            return []
        stop = asyncio.ensure_future(closing.wait())
        try:
            return await receive_until(self._transport, name, _BATCH, stop)
        finally:
            stop.cancel()

    async def _timer_loop(self, player: Player) -> None:
        due: asyncio.Queue[tuple[str, str]] = asyncio.Queue()

        def fire_due() -> None:
            for fired in player.timers.pop_due(self._clock.now()):
                due.put_nowait(fired)

        async with asyncio.TaskGroup() as group:
            group.create_task(player.timers.run(self._clock, fire_due))
            while True:
                key, timer_id = await due.get()
                await self._fire(player, key, timer_id)

    # -- the initiator -------------------------------------------------------------------------

    def initiator(self) -> Player:
        player = self._players.get(self.definition.initiator)
        if player is None:
            raise InvalidArgument(f"this host does not play {self.definition.initiator!r}")
        return player

    async def start(self, saga_id: str, order: Mapping[str, Any]) -> bool:
        """Start saga ``saga_id`` with input ``order`` (the initiator's pass); False, and
        nothing done, if this initiator already started it."""
        player = self.initiator()
        await self._recovered.wait()
        started = False

        async def begin(tx: ParticipantTx, current: Pass) -> None:
            nonlocal started
            started = True
            current.records.append((current.now, "start", saga_id, self.definition.name))
            player.node.start(saga_id, current.saga, order, self.definition.start)

        await self._pass(player, saga_id, begin, fresh_only=True)
        return started

    async def wait(self, saga_id: str) -> str:
        """The saga's outcome (``completed`` or ``failed``), once the initiator announced it."""
        if saga_id in self.outcomes:
            return self.outcomes[saga_id]
        waiter = self._waiters.get(saga_id)
        if waiter is None:
            waiter = self._waiters[saga_id] = asyncio.get_running_loop().create_future()
        return await asyncio.shield(waiter)

    # -- passes --------------------------------------------------------------------------------

    async def _pass(
        self,
        player: Player,
        saga_id: str,
        decide: Callable[[ParticipantTx, Pass], Awaitable[None]],
        *,
        fresh_only: bool = False,
    ) -> None:
        """One pass (module docstring): decide in a transaction, commit, then act on it."""
        name, node = player.name, player.node
        async with player.lock:
            async with self._store.transaction(name) as tx:
                row = await tables.read_saga(tx, name, saga_id)
                if row is not None and fresh_only:
                    return
                if row is None:
                    current = Pass(saga_id, node.new_saga(), 0, self._clock.now())
                else:
                    saga = node.saga_from_json(json.loads(row[0]))
                    current = Pass(saga_id, saga, row[1], self._clock.now())
                player.current = current
                try:
                    await decide(tx, current)
                finally:
                    player.current = None
                await tables.write_pass(tx, name, node, current)
                crashpoints.hit("participant.before_commit")
            self._passes += 1
            crashpoints.hit("participant.after_commit")
            for role, (token, what, due) in current.timers.items():
                player.timers.arm(f"{saga_id}\n{role}", f"{token}/{what}", due)
            for role, run in current.saga.runs.items():
                if run.state in node.terminal(role):
                    player.timers.cancel(f"{saga_id}\n{role}")
            if current.events:
                await self._publish(player)
            if current.outcome is not None:
                self.outcomes[saga_id] = current.outcome
                waiter = self._waiters.pop(saga_id, None)
                if waiter is not None and not waiter.done():
                    waiter.set_result(current.outcome)
        for message in current.runs:
            await self._operate(player, message)

    async def _publish(self, player: Player) -> None:
        """Send what the outbox holds, then delete it (a crash between sends it again). Under
        the participant's lock: two at once would both send what the outbox holds."""
        name = player.name
        async with self._store.transaction(name) as tx:
            rows = await tables.read_outbox(tx, name)
        if not rows:
            return
        await self._transport.send_many([envelope_from_dict(json.loads(m)) for _, m in rows])
        self._published += len(rows)
        crashpoints.hit("participant.after_publish")
        async with self._store.transaction(name) as tx:
            await tables.delete_published(tx, name, rows[-1][0])

    async def _fire(self, player: Player, key: str, timer_id: str) -> None:
        saga_id, role = key.split("\n")
        token_text, what = timer_id.split("/")
        token = int(token_text)

        async def due(tx: ParticipantTx, current: Pass) -> None:
            if await tables.take_timer(tx, player.name, saga_id, role, token, what):
                player.node.timer_fired(saga_id, current.saga, role, token, what)

        await self._pass(player, saga_id, due)

    async def _operate(self, player: Player, message: Envelope) -> None:
        """Run one action or compensation the node decided: a pass of its own."""
        handlers = player.handlers
        assert handlers is not None
        compensation = message.kind is MessageKind.COMPENSATE

        def answer(decision: Decision) -> Callable[[ParticipantTx, Pass], Awaitable[None]]:
            async def apply(tx: ParticipantTx, current: Pass) -> None:
                outcome, result, reason, effect = decision
                if effect is not None:
                    current.records.append(
                        (current.now, "effect", message.saga_id, player.name, message.step, effect)
                    )
                if compensation:
                    await tables.forget_pending(tx, player.name, message.idempotency_key)
                player.node.answered(current.saga, message, (outcome, result, reason))

            return apply

        async def decide(tx: ParticipantTx, current: Pass) -> None:
            await answer(await self._decide(handlers, message, tx))(tx, current)

        try:
            await self._pass(player, message.saga_id, decide)
        except Abandon:
            # rolled back: an action's try timer tries it again; a compensation stays pending
            # (run again on a restart)
            self._abandoned += 1
        except TryFailed as failed:
            await self._pass(player, message.saga_id, answer(failed.decision))
        except Exception:
            warn(player.name, message, "abandoned, no answer: the store failed", exc_info=True)
            self._abandoned += 1


def _hear(
    player: Player, event: ChoreographyEvent
) -> Callable[[ParticipantTx, Pass], Awaitable[None]]:
    async def heard(tx: ParticipantTx, current: Pass) -> None:
        player.node.received(current.saga, event)

    return heard
