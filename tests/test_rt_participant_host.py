"""The participant host's inbox rules, on the real stores: a repeat changes nothing, a late action
after its compensation is blocked, a compensation is refused a result never handed out, and a
handler that breaks leaves nothing behind. Each rule that a broken host would break is also run
against one, so the test is known to bite."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from sagafsm.messages import Envelope, MessageKind, Outcome
from sagafsm.runtime.clock import VirtualClock
from sagafsm.runtime.host import BLOCKED_REASON, ParticipantHost
from sagafsm.runtime.memory_store import MemoryStore
from sagafsm.runtime.participant import ActionCall, CompensationCall, Participant, Refused
from sagafsm.runtime.sqlite_store import SqliteStore
from sagafsm.runtime.transport import ORCHESTRATOR, InProcessTransport

STORES = ["memory", "sqlite"]
BOOT = 3


class NoDedupHost(ParticipantHost):
    """Broken on purpose: runs the handler again for a key it has answered."""

    _dedup = False


class NoTombstoneHost(ParticipantHost):
    """Broken on purpose: a compensation that comes first leaves no tombstone."""

    _tombstones = False


class Rig:
    """One ``inventory`` participant on a host, an in-process transport and a real store.

    The action hands out a fresh ticket (and, on SQLite, inserts it into the participant's own
    ``reservations`` table); saga ids pick misbehaviours: ``broke`` refuses, ``silent`` returns
    None, ``bad`` returns what is not JSON, ``boom`` raises the first time, ``hang`` never ends,
    ``write-boom`` writes its table and then raises. The compensation deletes the reservation;
    for ``flaky`` it refuses its first try, for ``crashy`` it raises once after deleting."""

    def __init__(
        self, store: Any, host_class: type[ParticipantHost] = ParticipantHost, **options: Any
    ) -> None:
        self.store = store
        self.sql = isinstance(store, SqliteStore)
        self.transport = InProcessTransport()
        self.clock = VirtualClock(start=100.0)
        self.calls: list[tuple[str, str]] = []
        self.undone: list[tuple[str, Mapping[str, Any]]] = []
        self.issued = 0
        self._next_id = 0
        inventory = Participant("inventory")
        inventory.action("reserve")(self.reserve)
        inventory.compensation("release")(self.release)
        self.host = host_class([inventory], self.transport, store, self.clock, boot=BOOT, **options)

    async def reserve(self, call: ActionCall) -> Mapping[str, Any] | None:
        saga = call.saga_id
        self.calls.append(("reserve", saga))
        if saga == "broke":
            raise Refused("out of stock")
        if saga == "silent":
            return None
        if saga == "bad":
            return {"tickets": {1, 2}}
        if saga == "hang":
            await asyncio.sleep(3600)
        if saga in ("boom", "write-boom") and self.calls.count(("reserve", saga)) == 1:
            if saga == "write-boom":
                await call.db.execute("INSERT INTO reservations VALUES (?, ?)", (saga, "t-0"))
            raise RuntimeError("the warehouse is on fire")
        self.issued += 1
        ticket = f"t-{self.issued}"
        if self.sql:
            await call.db.execute("INSERT INTO reservations VALUES (?, ?)", (saga, ticket))
        return {"ticket": ticket, "sku": call.data.get("sku"), "after": dict(call.results)}

    async def release(self, call: CompensationCall) -> None:
        saga = call.saga_id
        self.calls.append(("release", saga))
        if self.sql:
            await call.db.execute("DELETE FROM reservations WHERE saga = ?", (saga,))
        if saga == "flaky" and self.calls.count(("release", saga)) == 1:
            raise Refused("the shelf is locked")
        if saga == "crashy" and self.calls.count(("release", saga)) == 1:
            raise KeyError("shelf")
        self.undone.append((saga, dict(call.action_result)))

    # -- driving it -----------------------------------------------------------------------------

    def message(self, kind: MessageKind, saga: str, **fields: Any) -> Envelope:
        self._next_id += 1
        op, key = (
            ("reserve", f"{saga}/a") if kind is MessageKind.EXECUTE else ("release", f"{saga}/c")
        )
        fields.setdefault("idempotency_key", key)
        return Envelope(
            message_id=self._next_id, kind=kind, saga_id=saga, causation_id=None,
            source=ORCHESTRATOR, dest="inventory", step="reserve", operation=op, **fields,
        )  # fmt: skip

    async def execute(self, saga: str = "s", **fields: Any) -> Envelope | None:
        fields.setdefault("data", {"sku": "apple"})
        fields.setdefault("results", {"check": {"score": 1}})
        return await self._handle(self.message(MessageKind.EXECUTE, saga, **fields))

    async def compensate(
        self, saga: str = "s", action_result: Mapping[str, Any] | None = None, **fields: Any
    ) -> Envelope | None:
        message = self.message(
            MessageKind.COMPENSATE, saga, action_key=f"{saga}/a", action_result=action_result,
            data={"sku": "apple"}, **fields,
        )  # fmt: skip
        return await self._handle(message)

    async def _handle(self, message: Envelope) -> Envelope | None:
        reply = await self.host.handle("inventory", message)
        if reply is not None:  # it was sent, too
            (delivery,) = await self.transport.receive_many(ORCHESTRATOR, 10)
            assert delivery.message == reply
            assert reply.causation_id == message.message_id
        assert self.transport.queued(ORCHESTRATOR) == 0
        return reply

    async def effects(self, saga: str | None = None) -> list[str]:
        return [
            r[5]
            for r in await self.store.trace()
            if r[1] == "effect" and (saga is None or r[2] == saga)
        ]

    async def records(self, saga: str) -> list[tuple[Any, ...]]:
        return [r for r in await self.store.trace() if r[2] == saga]

    async def reservations(self) -> list[tuple[Any, ...]]:
        async with self.store.transaction("inventory") as tx:
            rows: list[tuple[Any, ...]] = await tx.execute(
                "SELECT saga, ticket FROM reservations ORDER BY saga, ticket"
            )
            return rows


@asynccontextmanager
async def opened(kind: str, tmp_path: Path) -> AsyncIterator[Any]:
    store: Any = MemoryStore() if kind == "memory" else SqliteStore(tmp_path / "saga.db")
    async with store:
        if kind == "sqlite":
            async with store.transaction("inventory") as tx:
                await tx.execute("CREATE TABLE reservations (saga TEXT, ticket TEXT)")
        yield store


def play(
    kind: str,
    tmp_path: Path,
    scenario: Callable[[Rig], Coroutine[Any, Any, None]],
    host_class: type[ParticipantHost] = ParticipantHost,
    **options: Any,
) -> None:
    async def main() -> None:
        async with opened(kind, tmp_path) as store:
            await scenario(Rig(store, host_class, **options))

    asyncio.run(asyncio.wait_for(main(), timeout=30))


# -- actions ------------------------------------------------------------------------------------


async def duplicate_action(rig: Rig) -> None:
    first = await rig.execute()
    again = await rig.execute()
    assert first is not None and again is not None
    assert first.outcome is Outcome.SUCCEEDED
    assert (again.outcome, again.result, again.reason) == (first.outcome, first.result, "")
    assert rig.calls == [("reserve", "s")]
    assert await rig.effects() == ["action"]
    if rig.sql:
        assert await rig.reservations() == [("s", "t-1")]


@pytest.mark.parametrize("kind", STORES)
def test_a_duplicate_action_gets_the_same_reply_and_runs_nothing(kind: str, tmp_path: Path) -> None:
    """Two deliveries of one action key: one handler call, one effect, the same reply twice."""
    play(kind, tmp_path, duplicate_action)


@pytest.mark.parametrize("kind", STORES)
def test_the_duplicate_rule_bites_a_host_without_dedup(kind: str, tmp_path: Path) -> None:
    """The same check fails against a host that does not look up its inbox."""
    with pytest.raises(AssertionError):
        play(kind, tmp_path, duplicate_action, NoDedupHost)


@pytest.mark.parametrize("kind", STORES)
def test_a_success_reply_carries_the_result_and_is_in_the_ledger(kind: str, tmp_path: Path) -> None:
    """The reply answers the command field by field; its id is boot * 2**32 + n; the ledger has
    the effect and the send record, at the clock's time."""

    async def scenario(rig: Rig) -> None:
        rig.clock.advance(5)
        reply = await rig.execute(attempt=2)
        assert reply is not None
        assert reply.kind is MessageKind.ACTION_REPLY and reply.dest == ORCHESTRATOR
        assert reply.source == "inventory" and reply.idempotency_key == "s/a"
        assert (reply.step, reply.operation, reply.attempt) == ("reserve", "reserve", 2)
        assert reply.message_id == BOOT * 2**32 + 1
        assert reply.result == {"ticket": "t-1", "sku": "apple", "after": {"check": {"score": 1}}}
        assert await rig.records("s") == [
            (105.0, "effect", "s", "inventory", "reserve", "action"),
            (105.0, "send", "s", reply.message_id, "inventory", ORCHESTRATOR,
             "action_reply", "reserve", "reserve", 2, "succeeded"),
        ]  # fmt: skip

    play(kind, tmp_path, scenario)


@pytest.mark.parametrize("kind", STORES)
@pytest.mark.parametrize(
    ("saga", "reason"), [("broke", "out of stock"), ("silent", "inventory declined reserve")]
)
def test_a_definite_failure_is_answered_with_its_reason_and_kept(
    kind: str, saga: str, reason: str, tmp_path: Path
) -> None:
    """Refused("...") or None: a failed reply with the reason, ledger action_failed; the repeat
    gets the same failure without running the handler."""

    async def scenario(rig: Rig) -> None:
        reply = await rig.execute(saga)
        assert reply is not None
        assert (reply.outcome, reply.result, reply.reason) == (Outcome.FAILED, None, reason)
        again = await rig.execute(saga)
        assert again is not None and again.reason == reason
        assert rig.calls == [("reserve", saga)]
        assert await rig.effects() == ["action_failed"]

    play(kind, tmp_path, scenario)


@pytest.mark.parametrize("kind", STORES)
def test_an_unexpected_exception_leaves_nothing_and_a_redelivery_runs_again(
    kind: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The handler raises: no reply, no ledger record, no inbox entry, a warning logged; the
    same command delivered again runs the handler again (and now succeeds)."""

    async def scenario(rig: Rig) -> None:
        assert await rig.execute("boom") is None
        assert await rig.records("boom") == []
        assert "the warehouse is on fire" in caplog.text
        reply = await rig.execute("boom")
        assert reply is not None and reply.outcome is Outcome.SUCCEEDED
        assert rig.calls == [("reserve", "boom")] * 2
        assert await rig.effects() == ["action"]
        assert rig.host.statistics().abandoned == 1

    with caplog.at_level(logging.WARNING, logger="sagafsm.runtime.host"):
        play(kind, tmp_path, scenario)


@pytest.mark.parametrize("kind", STORES)
def test_a_result_that_is_not_json_is_a_bug_no_reply(
    kind: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A set in the result: logged at warning, rolled back, no reply; nothing kept."""

    async def scenario(rig: Rig) -> None:
        assert await rig.execute("bad") is None
        assert await rig.records("bad") == []
        await rig.execute("bad")
        assert rig.calls == [("reserve", "bad")] * 2  # nothing was kept in the inbox

    with caplog.at_level(logging.WARNING, logger="sagafsm.runtime.host"):
        play(kind, tmp_path, scenario)
    assert "a result must be a mapping of JSON data" in caplog.text


@pytest.mark.parametrize("kind", STORES)
def test_a_hanging_handler_is_abandoned_after_the_handler_timeout(
    kind: str, tmp_path: Path
) -> None:
    """handler_timeout: the hang is cut off, nothing kept, no reply."""

    async def scenario(rig: Rig) -> None:
        assert await rig.execute("hang") is None
        assert await rig.records("hang") == []
        assert (await rig.execute("s")) is not None  # the participant goes on serving

    play(kind, tmp_path, scenario, handler_timeout=0.05)


def test_a_handler_that_writes_its_table_and_raises_rolls_back_with_the_inbox(
    tmp_path: Path,
) -> None:
    """Same database: the row the handler inserted before raising is gone with the inbox entry
    and the ledger; the redelivery's row is the only one."""

    async def scenario(rig: Rig) -> None:
        assert await rig.execute("write-boom") is None
        assert await rig.reservations() == []
        assert await rig.records("write-boom") == []
        assert await rig.execute("write-boom") is not None
        assert await rig.reservations() == [("write-boom", "t-1")]

    play("sqlite", tmp_path, scenario)


# -- compensations ------------------------------------------------------------------------------


async def compensation_first(rig: Rig) -> None:
    comp = await rig.compensate()
    assert comp is not None and comp.outcome is Outcome.SUCCEEDED
    assert comp.kind is MessageKind.COMPENSATION_REPLY
    late = await rig.execute()
    assert late is not None
    assert (late.outcome, late.result, late.reason) == (Outcome.FAILED, None, BLOCKED_REASON)
    assert rig.calls == []
    assert await rig.effects() == ["compensation_noop", "action_blocked"]


@pytest.mark.parametrize("kind", STORES)
def test_a_compensation_before_its_action_leaves_a_tombstone(kind: str, tmp_path: Path) -> None:
    """Compensation first: compensation_noop and a tombstone; the late action is action_blocked,
    answered "cancelled: its compensation came first", and its handler never runs."""
    play(kind, tmp_path, compensation_first)


@pytest.mark.parametrize("kind", STORES)
def test_the_tombstone_rule_bites_a_host_without_tombstones(kind: str, tmp_path: Path) -> None:
    """The same check fails against a host that leaves no tombstone."""
    with pytest.raises(AssertionError):
        play(kind, tmp_path, compensation_first, NoTombstoneHost)


@pytest.mark.parametrize("kind", STORES)
@pytest.mark.parametrize("claimed", ["right", None])
def test_a_compensation_undoes_with_the_result_the_participant_handed_out(
    kind: str, claimed: str | None, tmp_path: Path
) -> None:
    """With the right result or none, the handler gets the participant's own record; a repeat
    of the compensation key is answered succeeded and runs nothing."""

    async def scenario(rig: Rig) -> None:
        action = await rig.execute()
        assert action is not None and action.result is not None
        result = dict(action.result)
        reply = await rig.compensate(action_result=result if claimed else None)
        assert reply is not None and reply.outcome is Outcome.SUCCEEDED
        again = await rig.compensate(action_result=result if claimed else None, attempt=2)
        assert again is not None and again.outcome is Outcome.SUCCEEDED
        assert rig.undone == [("s", result)]
        assert await rig.effects() == ["action", "compensation"]
        if rig.sql:
            assert await rig.reservations() == []

    play(kind, tmp_path, scenario)


@pytest.mark.parametrize("kind", STORES)
def test_a_compensation_with_a_result_never_handed_out_is_refused(
    kind: str, tmp_path: Path
) -> None:
    """A wrong action_result: compensation_refused, a failed reply naming it, nothing undone;
    the right one then goes through."""

    async def scenario(rig: Rig) -> None:
        action = await rig.execute()
        assert action is not None and action.result is not None
        reply = await rig.compensate(action_result={"ticket": "t-99"})
        assert reply is not None and reply.outcome is Outcome.FAILED
        assert reply.reason == "refused: inventory never handed out {'ticket': 't-99'}"
        assert rig.undone == []
        assert (await rig.compensate(action_result=dict(action.result))) is not None
        assert await rig.effects() == ["action", "compensation_refused", "compensation"]

    play(kind, tmp_path, scenario)


@pytest.mark.parametrize("kind", STORES)
def test_a_compensation_of_a_failed_action_is_a_noop_and_blocks_the_key(
    kind: str, tmp_path: Path
) -> None:
    """The action failed definitely: nothing to undo (compensation_noop, handler not run), and a
    repeat of the action is then blocked, as in the simulator."""

    async def scenario(rig: Rig) -> None:
        await rig.execute("broke")
        reply = await rig.compensate("broke")
        assert reply is not None and reply.outcome is Outcome.SUCCEEDED
        assert rig.calls == [("reserve", "broke")]
        late = await rig.execute("broke")
        assert late is not None and late.reason == BLOCKED_REASON
        assert await rig.effects() == ["action_failed", "compensation_noop", "action_blocked"]

    play(kind, tmp_path, scenario)


@pytest.mark.parametrize("kind", STORES)
@pytest.mark.parametrize(
    ("saga", "reason"), [("flaky", "the shelf is locked"), ("crashy", "KeyError: 'shelf'")]
)
def test_a_compensation_that_raises_is_a_failed_try_and_the_retry_runs_it(
    kind: str, saga: str, reason: str, tmp_path: Path
) -> None:
    """Refused or any exception in a compensation: a failed reply with the reason, ledger
    compensation_failed, its writes rolled back; the retry runs the handler again."""

    async def scenario(rig: Rig) -> None:
        action = await rig.execute(saga)
        assert action is not None and action.result is not None
        failed = await rig.compensate(saga, dict(action.result))
        assert failed is not None
        assert (failed.outcome, failed.reason) == (Outcome.FAILED, reason)
        if rig.sql:  # the handler's delete was rolled back
            assert await rig.reservations() == [(saga, "t-1")]
        retried = await rig.compensate(saga, dict(action.result), attempt=2)
        assert retried is not None and retried.outcome is Outcome.SUCCEEDED
        assert await rig.effects() == ["action", "compensation_failed", "compensation"]
        if rig.sql:
            assert await rig.reservations() == []

    play(kind, tmp_path, scenario)


def test_a_message_for_a_participant_the_host_does_not_run_is_refused(tmp_path: Path) -> None:
    """handle() with an unknown participant name is a caller's mistake: InvalidArgument."""
    from sagafsm.errors import InvalidArgument

    async def scenario(rig: Rig) -> None:
        with pytest.raises(InvalidArgument, match="no participant named 'email'"):
            await rig.host.handle("email", rig.message(MessageKind.EXECUTE, "s"))

    play("memory", tmp_path, scenario)


@pytest.mark.parametrize("kind", STORES)
def test_a_host_without_a_boot_takes_a_fresh_one_from_the_store(kind: str, tmp_path: Path) -> None:
    """Two hosts on one store, neither given a boot: each takes the store's next boot at its
    first command, so their reply ids fall in different blocks, past the runtime's own boot."""
    mail = Participant("mail")

    @mail.action("send")
    async def send(call: ActionCall) -> Mapping[str, Any]:
        return {}

    async def main() -> tuple[int, list[int]]:
        store = MemoryStore() if kind == "memory" else SqliteStore(tmp_path / "s.db")
        async with store:
            taken = await store.boot()  # as a runtime on this store would have
            blocks = []
            for n in range(2):
                host = ParticipantHost([mail], InProcessTransport(), store, VirtualClock())
                command = Envelope(
                    message_id=1, kind=MessageKind.EXECUTE, saga_id=f"s{n}", causation_id=None,
                    source=ORCHESTRATOR, dest="mail", step="notify", operation="send",
                    idempotency_key=f"s{n}/a",
                )  # fmt: skip
                reply = await host.handle("mail", command)
                assert reply is not None
                blocks.append(reply.message_id // 2**32)
        return taken, blocks

    taken, blocks = asyncio.run(main())
    assert blocks == [taken + 1, taken + 2]
