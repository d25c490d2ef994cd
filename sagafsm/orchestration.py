"""What an orchestrator does around the engine, written once: the core both drivers share.

The simulator (:mod:`sagafsm.sim`) and the runtime (:mod:`sagafsm.runtime`) drive sagas through
:class:`OrchestrationCore`. It is sans-IO, like the engine: for each start request, reply or timer,
it finds the saga, lets the engine decide, and hands the driver a :class:`Transaction`: the saga's
new snapshot, the commands to send, the trace records of the move. The driver then does what only
it can, in this order (the outbox rule):

1. commit the transaction to its store (the snapshot, the outbox rows, the timer, the records);
2. only after that commit, publish the commands and arm the timer;
3. once the saga finished and that commit is durable, :meth:`OrchestrationCore.drop` it.

A transaction that changed nothing (an ignored event) need not be committed: its only records are
``ignored`` ones. One that changed the saga must be, even when it sends nothing: a retriable step
whose timed-out try then failed moves to the next idempotency key and waits out its back-off, and a
crash must not forget that the old key is spent.

After a crash the driver reads back every unfinished saga from its store and calls
:meth:`OrchestrationCore.recover`. A driver with a durable outbox re-publishes its unsent rows and
re-arms its timers (``resend=False``); one without (the simulator's store models only snapshots)
re-sends what every saga has in flight (``resend=True``), under the saved idempotency keys.

Commands become envelopes with :func:`envelope_for`, replies become events with
:func:`event_for`, so both drivers speak the same messages.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar, overload

from .commands import (
    CancelTimer,
    Command,
    CompensateStep,
    ExecuteStep,
    SagaFinished,
    StartTimer,
)
from .definition import SagaDefinition
from .engine import SagaInstance
from .errors import IllegalTransition, InvalidArgument, InvalidConfig
from .events import (
    CompensationFailed,
    CompensationSucceeded,
    Event,
    StepFailed,
    StepSucceeded,
    checked_success,
)
from .history import RawRecord
from .lifecycle import SAGA_LIFECYCLE
from .messages import NO_PAYLOAD, ORCHESTRATOR, Envelope, Message, MessageKind, Outcome

__all__ = [
    "Transaction",
    "OrchestrationCore",
    "BufferingRecorder",
    "envelope_for",
    "event_for",
    "timer_record",
    "NO_RUNNING_SAGA",
]

NO_RUNNING_SAGA = "no running saga with that id"
"""The reason recorded for an event whose saga is not running here (finished, or unknown)."""

Outbound = ExecuteStep | CompensateStep
_M = TypeVar("_M", bound=Message)


class BufferingRecorder:
    """The engine's recorder: each move's ``transition`` and ``ignored`` records, in order, as
    plain trace tuples, collected until the core hands them to the driver with the move's
    transaction."""

    __slots__ = ("records",)

    def __init__(self) -> None:
        self.records: list[RawRecord] = []

    def transition(
        self, now: float, saga_id: str, step: str | None, trigger: str, source: Any, dest: Any
    ) -> None:
        # ``_value_`` is the member's plain attribute; ``.value`` is a slower descriptor
        self.records.append(
            (now, "transition", saga_id, step, trigger, source._value_, dest._value_)
        )

    def ignored(self, now: float, saga_id: str, event: Event, reason: str) -> None:
        self.records.append((now, "ignored", saga_id, type(event).__name__, reason))

    def take(self) -> list[RawRecord]:
        records, self.records = self.records, []
        return records


class Transaction:
    """One engine move of one saga, for the driver to commit and then publish.

    ``snapshot`` is taken when the move is made (None once the saga finished, and None for a core
    built with ``snapshots=False``), so a driver whose commit completes later stores the state of
    that moment. ``changed`` says whether there is
    anything to commit: commands, or a lifecycle move (a ``transition`` record).
    """

    __slots__ = ("changed", "commands", "now", "records", "saga", "snapshot", "started")

    def __init__(
        self,
        saga: SagaInstance,
        commands: list[Command],
        records: list[RawRecord],
        now: float,
        *,
        started: bool = False,
        snapshot: bool = True,
    ) -> None:
        self.saga = saga
        self.commands = commands
        self.records = records
        self.now = now
        self.started = started
        self.changed = bool(commands) or any(record[1] == "transition" for record in records)
        wanted = snapshot and self.changed and not saga.finished
        self.snapshot = saga.snapshot() if wanted else None

    @property
    def saga_id(self) -> str:
        return self.saga.saga_id

    @property
    def definition(self) -> str:
        return self.saga.definition.name

    @property
    def finished(self) -> SagaFinished | None:
        """The saga's :class:`SagaFinished`, if this move finished it."""
        commands = self.commands
        if commands and isinstance(commands[-1], SagaFinished):
            return commands[-1]
        return None

    @property
    def outbound(self) -> list[Outbound]:
        """The commands that go to participants, in order."""
        return [c for c in self.commands if isinstance(c, (ExecuteStep, CompensateStep))]

    @property
    def timer(self) -> StartTimer | CancelTimer | None:
        """The move's last timer command: arm this one, cancel, or (None) leave the timer as is."""
        for command in reversed(self.commands):
            if isinstance(command, (StartTimer, CancelTimer)):
                return command
        return None

    def __repr__(self) -> str:
        return f"<Transaction {self.saga_id} {len(self.commands)} commands>"


class OrchestrationCore:
    """Running sagas by id, and the moves that make transactions of them (module docstring).

    ``definitions`` are the sagas this core can run, by name (a snapshot names its definition).
    ``engine`` is the :class:`SagaInstance` class to run (the simulator's mutants pass broken
    subclasses). Memory grows with the sagas running, not with the sagas started.
    ``snapshots=False`` takes no snapshot per move (:attr:`Transaction.snapshot` stays None): for
    a driver that commits every move the moment it is made, and so can snapshot the live saga
    itself when it needs to (the simulator at zero store latency, at a crash).
    """

    def __init__(
        self,
        definitions: Iterable[SagaDefinition] = (),
        *,
        engine: type[SagaInstance] = SagaInstance,
        snapshots: bool = True,
    ) -> None:
        self._definitions: dict[str, SagaDefinition] = {}
        for definition in definitions:
            self.register(definition)
        self._engine = engine
        self._snapshots = snapshots
        self._recorder = BufferingRecorder()
        self._sagas: dict[str, SagaInstance] = {}

    def register(self, definition: SagaDefinition) -> None:
        """Make a definition runnable; a second definition under a taken name is refused."""
        if not isinstance(definition, SagaDefinition):
            raise InvalidArgument(f"a definition must be a SagaDefinition, got {definition!r}")
        known = self._definitions.get(definition.name)
        if known is not None and known != definition:
            raise InvalidConfig(f"two different saga definitions are named {definition.name!r}")
        self._definitions[definition.name] = definition

    def definition(self, name: str) -> SagaDefinition:
        """The registered definition of that name; InvalidConfig if there is none."""
        try:
            return self._definitions[name]
        except KeyError:
            known = ", ".join(sorted(self._definitions)) or "none"
            raise InvalidConfig(
                f"no saga definition named {name!r} is registered (registered: {known})"
            ) from None

    @property
    def definitions(self) -> Mapping[str, SagaDefinition]:
        return self._definitions

    def __len__(self) -> int:
        return len(self._sagas)

    def __contains__(self, saga_id: object) -> bool:
        return saga_id in self._sagas

    def get(self, saga_id: str) -> SagaInstance | None:
        return self._sagas.get(saga_id)

    # -- moves ---------------------------------------------------------------------------------

    def start(
        self,
        definition: SagaDefinition,
        saga_id: str,
        now: float,
        *,
        data: Mapping[str, Any] | None = None,
    ) -> Transaction:
        """A new saga; IllegalTransition if one with that id is running here."""
        if saga_id in self._sagas:
            raise IllegalTransition("saga", "begin", "running", f"saga {saga_id}")
        if definition.name not in self._definitions:
            self.register(definition)
        saga = self._engine(definition, saga_id, data=data, recorder=self._recorder)
        self._sagas[saga_id] = saga
        return self._move(saga, saga.start(now), now, started=True)

    def handle(self, event: Event, now: float) -> Transaction | None:
        """Apply a reply or a timer to its saga; None if no saga of that id is running here
        (the driver records it as ignored, with :data:`NO_RUNNING_SAGA`)."""
        saga = self._sagas.get(event.saga_id)
        if saga is None:
            return None
        return self._move(saga, saga.handle(event, now), now)

    def recover(
        self, stored: Iterable[tuple[str, Mapping[str, Any]]], now: float, *, resend: bool
    ) -> list[Transaction]:
        """Take over sagas from their stored ``(definition name, snapshot)`` pairs.

        With ``resend`` each saga re-sends what it has in flight and re-arms its timer (a
        transaction per saga); without, the driver's own outbox and timer rows do that, and only
        a saga that never began produces a transaction (its first move).
        """
        transactions: list[Transaction] = []
        for name, snapshot in stored:
            saga = self._engine.restore(self.definition(name), snapshot, recorder=self._recorder)
            if saga.saga_id in self._sagas:
                raise IllegalTransition("saga", "adopt", "running", f"saga {saga.saga_id}")
            self._sagas[saga.saga_id] = saga
            if resend or saga.state is SAGA_LIFECYCLE.initial:
                transactions.append(self._move(saga, saga.resume(now), now))
        return transactions

    def retry(self, name: str, parked: Mapping[str, Any], now: float) -> Transaction:
        """An operator's retry of a parked saga's compensation (``SagaInstance
        .retry_compensation``), from its stored snapshot; the saga runs here again. Raises
        (InvalidSnapshot, IllegalTransition, InvalidConfig) before it is held."""
        saga = self._engine.restore(self.definition(name), parked, recorder=self._recorder)
        if saga.saga_id in self._sagas:
            raise IllegalTransition("saga", "operator_retry", "running", f"saga {saga.saga_id}")
        commands = saga.retry_compensation(now)
        self._sagas[saga.saga_id] = saga
        return self._move(saga, commands, now)

    def drop(self, saga_id: str) -> None:
        """Forget a finished saga (once its last commit is durable)."""
        self._sagas.pop(saga_id, None)

    def crash(self) -> None:
        """Lose every saga held (the process died); recover() brings them back from a store."""
        self._sagas.clear()
        self._recorder.records.clear()

    def _move(
        self, saga: SagaInstance, commands: list[Command], now: float, *, started: bool = False
    ) -> Transaction:
        records = self._recorder.take()
        return Transaction(saga, commands, records, now, started=started, snapshot=self._snapshots)


def timer_record(now: float, command: StartTimer) -> RawRecord:
    """The ``timer`` trace record of an armed timer (:class:`~sagafsm.history.TimerRecord`),
    written the same by both drivers."""
    return (
        now,
        "timer",
        command.saga_id,
        command.timer_id,
        command.delay,
        command.purpose._value_,  # the member's plain attribute (see BufferingRecorder)
        command.step,
    )


@overload
def envelope_for(command: Outbound, message_id: int, cause: int | None) -> Envelope: ...
@overload
def envelope_for(
    command: Outbound, message_id: int, cause: int | None, make: Callable[..., _M]
) -> _M: ...
def envelope_for(
    command: Outbound,
    message_id: int,
    cause: int | None,
    make: Callable[..., Message] = Envelope,
) -> Message:
    """The envelope that carries a command to its participant. ``make`` builds it: an
    :class:`~sagafsm.messages.Envelope`, or the simulator's
    :class:`~sagafsm.messages.WireMessage`, which has the same fields."""
    if isinstance(command, ExecuteStep):
        return make(
            message_id=message_id,
            kind=MessageKind.EXECUTE,
            saga_id=command.saga_id,
            causation_id=cause,
            idempotency_key=command.idempotency_key,
            source=ORCHESTRATOR,
            dest=command.participant,
            step=command.step,
            operation=command.action,
            attempt=command.attempt,
            data=command.data,
            results=command.results,
        )
    return make(
        message_id=message_id,
        kind=MessageKind.COMPENSATE,
        saga_id=command.saga_id,
        causation_id=cause,
        idempotency_key=command.idempotency_key,
        source=ORCHESTRATOR,
        dest=command.participant,
        step=command.step,
        operation=command.compensation,
        attempt=command.attempt,
        action_key=command.action_key,
        data=command.data,
        results=NO_PAYLOAD,
        action_result=command.action_result,
    )


def event_for(reply: Message, *, checked: bool = False) -> Event:
    """The engine event a participant's reply stands for.

    ``checked``: the reply was built in this process from values already checked (the
    simulator's participants check and copy their service's result), so a success event takes a
    copy of its result without checking it again (:func:`sagafsm.events.checked_success`). A
    reply read from elsewhere (a store, the wire) is checked as any event is."""
    saga_id, step = reply.saga_id, reply.step
    succeeded = reply.outcome is Outcome.SUCCEEDED
    if reply.kind is MessageKind.ACTION_REPLY:
        key = reply.idempotency_key
        if succeeded:
            if checked:
                return checked_success(saga_id, step, reply.result or {}, key)
            return StepSucceeded(
                saga_id=saga_id, step=step, result=reply.result or {}, idempotency_key=key
            )
        return StepFailed(saga_id=saga_id, step=step, reason=reply.reason, idempotency_key=key)
    if reply.kind is not MessageKind.COMPENSATION_REPLY:
        raise InvalidArgument(f"not a reply: a {reply.kind.value} message")
    if succeeded:
        return CompensationSucceeded(saga_id=saga_id, step=step)
    return CompensationFailed(
        saga_id=saga_id, step=step, reason=reply.reason, attempt=reply.attempt
    )
