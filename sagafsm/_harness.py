"""One saga, run on the in-process runtime under a virtual clock: the driver behind
:mod:`sagafsm.testing`.

Why it is built this way:

- Time moves only when nothing else can: the driver lets the runtime, the participants and the
  transport run until all of them are quiet, and only then jumps the
  :class:`~sagafsm.runtime.clock.VirtualClock` to the runtime's next armed timer. A step's
  five-minute timeout costs one jump, not five minutes; and since no virtual time passes while
  anything is in flight, a run is the same run every time.
- Quiet is told by the transport, not by peeking into the host: :class:`RecordingTransport`
  hands out a receipt with every delivery and counts it *in hand* until it is acked. The host
  acks a command only after its reply is sent, and the runtime acks a reply only after its
  commit, so "nothing queued, nothing in hand, the runtime idle, no timer overdue" means nothing
  is left to happen before the next timer.
- A crash is a crash point armed with ``action="raise"``: the driver then abandons the runtime
  and cancels the host as a kill would stop them, puts every unacked delivery back on the
  transport (a durable transport redelivers what was never acked), and boots a new runtime and
  host on the same store.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Final, Protocol

from .definition import SagaDefinition
from .lifecycle import SAGA_LIFECYCLE
from .messages import Envelope, MessageKind
from .runtime import crashpoints
from .runtime.clock import VirtualClock
from .runtime.crashpoints import CrashPointReached
from .runtime.host import ParticipantHost
from .runtime.participant import Participant
from .runtime.runtime import Runtime
from .runtime.store import ParticipantStore, SagaStatus, Store
from .runtime.transport import Delivery, InProcessTransport

__all__ = [
    "RecordingTransport",
    "Driver",
    "RunStore",
    "FINAL_STATES",
    "arm_for_counting",
    "crash_point_hits",
]

FINAL_STATES: Final = frozenset(state.value for state in SAGA_LIFECYCLE.terminal)
_COMMANDS: Final = (MessageKind.EXECUTE, MessageKind.COMPENSATE)
_QUIET_ROUNDS: Final = 3
"""Event-loop turns in a row everything must look quiet before the clock may move (a task woken
by a resolved future needs a turn or two to run)."""
_COUNTING: Final = 10**9


class RunStore(Store, ParticipantStore, Protocol):
    """A store that serves both the runtime and the participants (memory or SQLite)."""


class RecordingTransport:
    """An :class:`~sagafsm.runtime.transport.InProcessTransport` that counts what is in flight
    (queued, or delivered and not yet acked), can deliver every command twice, and after a crash
    puts back what was never acked."""

    def __init__(self, *, duplicate_commands: bool = False) -> None:
        self._inner = InProcessTransport()
        self._nodes: set[str] = set()
        self._in_hand: dict[int, Envelope] = {}
        self._receipts = itertools.count(1)
        self.duplicate_commands = duplicate_commands
        self.duplicated = 0
        """Commands sent a second time."""
        self.redelivered = 0
        """Deliveries put back after a crash."""

    async def send(self, message: Envelope) -> None:
        self._nodes.add(message.dest)
        await self._inner.send(message)
        if self.duplicate_commands and message.kind in _COMMANDS:
            await self._inner.send(message)
            self.duplicated += 1

    async def send_many(self, messages: Sequence[Envelope]) -> None:
        for message in messages:
            await self.send(message)

    def _hold(self, message: Envelope) -> Delivery:
        receipt = next(self._receipts)
        self._in_hand[receipt] = message
        return Delivery(message, receipt)

    async def receive(self, node: str) -> Delivery:
        # The inner receive returns into this frame in the same turn it took the message off
        # its queue: no turn passes in which the message is neither queued nor in hand.
        delivery = await self._inner.receive(node)
        return self._hold(delivery.message)

    async def receive_many(self, node: str, limit: int) -> list[Delivery]:
        return [self._hold(d.message) for d in await self._inner.receive_many(node, limit)]

    async def ack(self, node: str, receipts: Sequence[int]) -> None:
        for receipt in receipts:
            self._in_hand.pop(receipt, None)

    async def close(self) -> None:
        await self._inner.close()

    @property
    def in_flight(self) -> int:
        """Messages queued for any node, plus deliveries not acked yet."""
        return len(self._in_hand) + sum(self._inner.queued(node) for node in self._nodes)

    async def redeliver(self) -> None:
        """Put every unacked delivery back (the receivers that held them were killed)."""
        held = [self._in_hand[receipt] for receipt in sorted(self._in_hand)]
        self._in_hand.clear()
        for message in held:
            self._nodes.add(message.dest)
            await self._inner.send(message)
        self.redelivered += len(held)


def _crash_in(error: BaseException | None) -> CrashPointReached | None:
    if isinstance(error, CrashPointReached):
        return error
    if isinstance(error, BaseExceptionGroup):
        for inner in error.exceptions:
            found = _crash_in(inner)
            if found is not None:
                return found
    return None


def arm_for_counting() -> None:
    """Arm every crash point far out, so that a run counts its hits without crashing."""
    for point in crashpoints.CRASH_POINTS:
        crashpoints.arm(point, _COUNTING, action="raise")


def crash_point_hits() -> dict[str, int]:
    """How often each point was reached since :func:`arm_for_counting`."""
    left = crashpoints.armed()
    return {point: _COUNTING - left.get(point, (_COUNTING, ""))[0] for point in left}


class Driver:
    """Runs one saga to its end (see the module docstring); one object per run.

    :meth:`run` returns the saga's final status (None if its start was never committed); the
    store stays open for the caller to read its trace, and :meth:`close` ends everything.
    A run that cannot end raises AssertionError naming the saga: nothing in flight and no timer
    armed, ``max_jumps`` clock jumps, or ``settle_timeout`` real seconds without settling.
    """

    def __init__(
        self,
        definition: SagaDefinition,
        participants: Iterable[Participant],
        store: RunStore,
        *,
        saga_id: str,
        data: Mapping[str, Any] | None,
        duplicate: bool = False,
        runtime_class: type[Runtime] = Runtime,
        host_class: type[ParticipantHost] = ParticipantHost,
        max_jumps: int = 10_000,
        settle_timeout: float = 30.0,
        handler_timeout: float | None = 10.0,
        max_crashes: int = 3,
    ) -> None:
        self.definition = definition
        self.participants = list(participants)
        self.store = store
        self.saga_id = saga_id
        self.data = data
        self.transport = RecordingTransport(duplicate_commands=duplicate)
        self.clock = VirtualClock()
        self._runtime_class = runtime_class
        self._host_class = host_class
        self._max_jumps = max_jumps
        self._settle_timeout = settle_timeout
        self._handler_timeout = handler_timeout
        self._max_crashes = max_crashes
        self._runtime: Runtime | None = None
        self._host: ParticipantHost | None = None
        self._host_task: asyncio.Task[None] | None = None
        self._start_task: asyncio.Task[str] | None = None
        self.accepted = False
        """The runtime acknowledged the start (returned the saga id)."""
        self.crashes: list[str] = []
        """The crash points that fired, in order."""
        self.jumps = 0

    # -- the incarnations ----------------------------------------------------------------------

    async def _boot(self) -> None:
        runtime = self._runtime_class(
            self.store, self.transport, [self.definition], clock=self.clock
        )
        self._runtime = runtime
        await runtime.open()
        host = self._host_class(
            self.participants,
            self.transport,
            self.store,
            self.clock,
            boot=await self.store.boot(),  # a boot of its own: reply ids never meet command ids
            handler_timeout=self._handler_timeout,
        )
        self._host = host
        self._host_task = asyncio.ensure_future(host.run())

    async def _kill(self) -> None:
        """Stop the runtime and the host at once, as SIGKILL would; the store keeps its data.
        The host goes first: it shares the store object, which the runtime's teardown closes,
        and a real participant process never sees the orchestrator's connection close."""
        host = self._host_task
        if host is not None:
            host.cancel()
            await asyncio.gather(host, return_exceptions=True)
        if self._runtime is not None:
            await self._runtime.abandon()
        self._note_start()  # acknowledged before the crash: accepted, even if nobody looked yet
        if self._start_task is not None:
            self._start_task.cancel()
            await asyncio.gather(self._start_task, return_exceptions=True)
        self._runtime = self._host = self._host_task = self._start_task = None

    async def close(self) -> None:
        """End the run: the host finishes what it holds, the runtime closes (and the store)."""
        host, runtime, task = self._host, self._runtime, self._host_task
        if host is not None and task is not None and not task.done():
            await host.close()
            await asyncio.gather(task, return_exceptions=True)
        if runtime is not None:
            await runtime.close()
        await self._kill()
        await self.transport.close()

    # -- the run -------------------------------------------------------------------------------

    async def run(self) -> SagaStatus | None:
        try:
            await self._boot()
        except CrashPointReached as opening:
            raise AssertionError(
                f"saga {self.saga_id!r}: crash point {opening.point} fired while the runtime opened"
            ) from None
        runtime = self._runtime
        assert runtime is not None
        self._start_task = asyncio.ensure_future(
            runtime.start(self.definition, self.data, saga_id=self.saga_id)
        )
        while True:
            crash = await self._drive()
            if crash is None:
                break
            self.crashes.append(crash.point)
            if len(self.crashes) > self._max_crashes:
                raise AssertionError(f"saga {self.saga_id!r}: crashed {len(self.crashes)} times")
            await self._kill()
            await self.transport.redeliver()
            try:
                await self._boot()
            except CrashPointReached as again:
                self.crashes.append(again.point)
                raise AssertionError(
                    f"saga {self.saga_id!r}: crash point {again.point} fired during recovery"
                ) from None
        await self._settle()  # stragglers (duplicates, late replies) are handled before reading
        return await self.store.status(self.saga_id)

    def _crash(self) -> CrashPointReached | None:
        """The crash point that stopped the runtime or the host, if one did; any other failure
        of theirs is an AssertionError."""
        runtime, task = self._runtime, self._host_task
        assert runtime is not None and task is not None
        failure = runtime.failure
        if failure is not None:
            crash = _crash_in(failure)
            if crash is not None:
                return crash
            raise AssertionError(f"saga {self.saga_id!r}: the runtime stopped: {failure!r}")
        if task.done():
            error = None if task.cancelled() else task.exception()
            crash = _crash_in(error)
            if crash is not None:
                return crash
            raise AssertionError(f"saga {self.saga_id!r}: the participant host stopped: {error!r}")
        return None

    def _quiet(self) -> bool:
        runtime = self._runtime
        assert runtime is not None
        if not runtime.idle or self.transport.in_flight:
            return False
        if self._start_task is not None and not self._start_task.done():
            return False
        due = runtime.next_timer()
        return due is None or due > self.clock.now()

    async def _settle(self) -> CrashPointReached | None:
        """Let everything run until it is quiet (or a crash point fired)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._settle_timeout
        quiet = spins = 0
        while True:
            crash = self._crash()
            if crash is not None:
                return crash
            quiet = quiet + 1 if self._quiet() else 0
            if quiet >= _QUIET_ROUNDS:
                return None
            spins += 1
            # A SQLite store works in threads: after a while, let them have the CPU.
            await asyncio.sleep(0 if spins < 1000 else 0.001)
            if loop.time() > deadline:
                raise AssertionError(
                    f"saga {self.saga_id!r}: nothing settled within {self._settle_timeout} s of "
                    f"real time ({self.transport.in_flight} messages in flight): a handler that "
                    "never returns?"
                )

    def _note_start(self) -> BaseException | None:
        """Once the start request is done: whether the runtime acknowledged it (``accepted``),
        and the error if it did not."""
        start = self._start_task
        if start is None or not start.done():
            return None
        self._start_task = None
        error = None if start.cancelled() else start.exception()
        if error is None and not start.cancelled():
            self.accepted = True
        return error

    async def _drive(self) -> CrashPointReached | None:
        """Run until the saga finished (None) or a crash point fired (that crash)."""
        while True:
            crash = await self._settle()
            if crash is not None:
                return crash
            error = self._note_start()
            if error is not None and _crash_in(error) is None and not self.crashes:
                raise AssertionError(f"saga {self.saga_id!r} did not start: {error!r}")
            status = await self.store.status(self.saga_id)
            if status is None or status.state in FINAL_STATES:
                return None  # finished, or never committed (its start was not accepted)
            runtime = self._runtime
            assert runtime is not None
            due = runtime.next_timer()
            if due is None:
                due = self.clock.pending()
            if due is None:
                raise AssertionError(
                    f"saga {self.saga_id!r} is stuck in state {status.state!r}: nothing in "
                    "flight and no timer armed"
                )
            if self.jumps >= self._max_jumps:
                raise AssertionError(
                    f"saga {self.saga_id!r} is still running (state {status.state!r}) after "
                    f"{self.jumps} clock jumps, at virtual time {self.clock.now():.1f} s"
                )
            self.jumps += 1
            self.clock.advance(max(0.0, due - self.clock.now()))


StoreFactory = Callable[[], RunStore]
