"""Group commit on the participant side: the host handles the commands it has ready in one store
transaction, each in a savepoint of its own, and answers exactly as a transaction per command
would. A handler that breaks undoes its own writes alone (its SQL too), a repeat inside a batch
is answered from the inbox entry an earlier savepoint wrote, the crash points fall once per
batch, and one participant's commands still run one at a time, in order. Random scripts are
compared against the simulator's participant and against the host without group commit; each
rule a naive batch would break is also run against one."""

from __future__ import annotations

import asyncio
import logging
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_rt_participant_host import Rig, opened
from test_rt_participant_sim import Op, Tickets, command, ops
from test_rt_store_batch import BROKEN
from test_sim_participant import Harness

from sagafsm.errors import InvalidArgument
from sagafsm.messages import Envelope, MessageKind, Outcome
from sagafsm.runtime import crashpoints
from sagafsm.runtime.clock import VirtualClock, WallClock
from sagafsm.runtime.host import ParticipantHost
from sagafsm.runtime.memory_store import MemoryStore
from sagafsm.runtime.participant import ActionCall, CompensationCall, Participant, Refused
from sagafsm.runtime.sqlite_store import SqliteStore
from sagafsm.runtime.transport import ORCHESTRATOR, Delivery, InProcessTransport

STORES = ["memory", "sqlite"]

# -- on the host rig of test_rt_participant_host ------------------------------------------------


async def batch_of(rig: Rig, *messages: Envelope) -> list[Envelope | None]:
    """``messages`` handled in one batch; the replies sent are the ones returned, in order."""
    replies = await rig.host.handle_many([("inventory", m) for m in messages])
    sent = await rig.transport.receive_many(ORCHESTRATOR, 100) if any(replies) else []
    assert [d.message for d in sent] == [r for r in replies if r is not None]
    return replies


def execute(rig: Rig, saga: str, **fields: Any) -> Envelope:
    fields.setdefault("data", {"sku": "apple"})
    return rig.message(MessageKind.EXECUTE, saga, **fields)


async def a_failing_handler_keeps_the_others(rig: Rig) -> None:
    replies = await batch_of(
        rig, execute(rig, "s1"), execute(rig, "write-boom"), execute(rig, "s3")
    )
    assert [r is not None for r in replies] == [True, False, True]
    assert rig.host.statistics().transactions == 1
    assert await rig.reservations() == [("s1", "t-1"), ("s3", "t-2")]
    assert await rig.records("write-boom") == []
    assert await rig.effects() == ["action", "action"]
    (again,) = await batch_of(rig, execute(rig, "write-boom"))  # redelivered: runs again
    assert again is not None and again.outcome is Outcome.SUCCEEDED
    assert await rig.reservations() == [("s1", "t-1"), ("s3", "t-2"), ("write-boom", "t-3")]


def test_a_failing_handler_in_a_batch_rolls_back_only_its_own_sql(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Three commands in one batch, the middle one inserts a row and raises: no reply for it, its
    row, inbox entry and ledger are gone; the other two rows and replies are kept, all in one
    store transaction."""

    async def main() -> None:
        async with opened("sqlite", tmp_path) as store:
            await a_failing_handler_keeps_the_others(Rig(store))

    with caplog.at_level(logging.WARNING, logger="sagafsm.runtime.host"):
        asyncio.run(asyncio.wait_for(main(), 30))
    assert "the warehouse is on fire" in caplog.text


def test_the_rollback_check_bites_a_batch_without_savepoints(tmp_path: Path) -> None:
    """The same check fails when the handler's SQL runs outside any savepoint: the failed
    handler's row leaks into the batch's commit."""
    leaky = BROKEN["leaky"][1]

    async def main() -> None:
        async with leaky(tmp_path / "saga.db") as store:
            async with store.transaction("inventory") as tx:
                await tx.execute("CREATE TABLE reservations (saga TEXT, ticket TEXT)")
            await a_failing_handler_keeps_the_others(Rig(store))

    with pytest.raises(AssertionError):
        asyncio.run(asyncio.wait_for(main(), 30))


async def a_duplicate_in_the_batch_is_answered_from_the_inbox(rig: Rig) -> None:
    first, again = await batch_of(rig, execute(rig, "s"), execute(rig, "s", attempt=2))
    assert first is not None and again is not None
    assert first.outcome is Outcome.SUCCEEDED
    assert (again.outcome, again.result, again.reason) == (first.outcome, first.result, "")
    assert rig.calls == [("reserve", "s")]
    assert await rig.effects() == ["action"]
    if rig.sql:
        assert await rig.reservations() == [("s", "t-1")]


@pytest.mark.parametrize("kind", STORES)
def test_a_duplicate_within_one_batch_gets_the_same_reply_and_one_effect(
    kind: str, tmp_path: Path
) -> None:
    """One action key twice in a batch: the second is answered from the inbox entry the first
    savepoint wrote, and nothing runs twice."""

    async def main() -> None:
        async with opened(kind, tmp_path) as store:
            await a_duplicate_in_the_batch_is_answered_from_the_inbox(Rig(store))

    asyncio.run(asyncio.wait_for(main(), 30))


@pytest.mark.parametrize("kind", STORES)
def test_the_duplicate_check_bites_a_batch_that_reads_past_its_own_writes(
    kind: str, tmp_path: Path
) -> None:
    """The same check fails on a store whose savepoints do not see the batch's earlier writes."""
    memory, sqlite, _ = BROKEN["blind"]

    async def main() -> None:
        store: Any = memory() if kind == "memory" else sqlite(tmp_path / "saga.db")
        async with store:
            if kind == "sqlite":
                async with store.transaction("inventory") as tx:
                    await tx.execute("CREATE TABLE reservations (saga TEXT, ticket TEXT)")
            await a_duplicate_in_the_batch_is_answered_from_the_inbox(Rig(store))

    with pytest.raises(AssertionError):
        asyncio.run(asyncio.wait_for(main(), 30))


def test_a_handler_that_hangs_in_a_batch_is_cut_off_and_only_its_sql_undone(
    tmp_path: Path,
) -> None:
    """handler_timeout in a batch: the hanging command (which wrote its table first) gets no
    reply and leaves no row; the commands before and after it commit."""

    class WritesThenHangs(Rig):
        async def reserve(self, call: ActionCall) -> Mapping[str, Any] | None:
            if call.saga_id == "hang":
                await call.db.execute("INSERT INTO reservations VALUES ('hang', 't-0')")
            return await super().reserve(call)

    async def main() -> None:
        async with opened("sqlite", tmp_path) as store:
            rig = WritesThenHangs(store, handler_timeout=0.05)
            replies = await batch_of(
                rig, execute(rig, "a"), execute(rig, "hang"), execute(rig, "b")
            )
            assert [r is not None for r in replies] == [True, False, True]
            assert await rig.reservations() == [("a", "t-1"), ("b", "t-2")]
            assert rig.host.statistics().abandoned == 1

    asyncio.run(asyncio.wait_for(main(), 30))


def test_a_handler_cut_off_in_the_middle_of_its_sql_is_undone_and_the_batch_goes_on(
    tmp_path: Path,
) -> None:
    """The timeout falls while the handler's statement runs on the connection's thread: that
    statement runs to its end, then its savepoint is rolled back (the thread runs one hop at a
    time, so the rollback waits for it) and the batch commits the command before it; the next
    batch finds the connection as it should be."""
    slow = (
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 2000000) "
        "SELECT count(*) FROM c"
    )

    class SlowSql(Rig):
        async def reserve(self, call: ActionCall) -> Mapping[str, Any] | None:
            if call.saga_id == "slow":
                await call.db.execute("INSERT INTO reservations VALUES ('slow', 't-0')")
                await call.db.execute(slow)
            return await super().reserve(call)

    async def main() -> None:
        async with opened("sqlite", tmp_path) as store:
            rig = SlowSql(store, handler_timeout=0.02)
            replies = await batch_of(rig, execute(rig, "a"), execute(rig, "slow"))
            assert [r is not None for r in replies] == [True, False]
            assert await rig.reservations() == [("a", "t-1")]
            (reply,) = await batch_of(rig, execute(rig, "b"))
            assert reply is not None
            assert await rig.reservations() == [("a", "t-1"), ("b", "t-2")]

    asyncio.run(asyncio.wait_for(main(), 30))


@pytest.mark.parametrize("kind", STORES)
@pytest.mark.parametrize("point", ["participant.before_commit", "participant.after_commit"])
def test_the_crash_points_fall_once_per_batch(kind: str, point: str, tmp_path: Path) -> None:
    """Before the commit: the whole batch is lost (no row, no ledger, no reply). After it: the
    whole batch is kept and no reply has been sent. The point is reached once for the batch."""

    async def main() -> None:
        async with opened(kind, tmp_path) as store:
            rig = Rig(store)
            crashpoints.arm(point, 1, action="raise")
            try:
                with pytest.raises(crashpoints.CrashPointReached):
                    await rig.host.handle_many(
                        [("inventory", execute(rig, saga)) for saga in ("a", "b", "c")]
                    )
                assert crashpoints.armed() == {}
            finally:
                crashpoints.disarm()
            assert rig.transport.queued(ORCHESTRATOR) == 0
            kept = point == "participant.after_commit"
            assert await rig.effects() == (["action"] * 3 if kept else [])
            if rig.sql:
                assert len(await rig.reservations()) == (3 if kept else 0)

    asyncio.run(asyncio.wait_for(main(), 30))


@pytest.mark.parametrize("kind", STORES)
def test_a_batch_on_a_store_that_fails_abandons_every_command(
    kind: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The store closed under the host: every command of the batch is abandoned, none replied."""

    async def main() -> None:
        async with opened(kind, tmp_path) as store:
            rig = Rig(store)
        replies = await rig.host.handle_many([("inventory", execute(rig, s)) for s in "ab"])
        assert replies == [None, None]
        assert rig.host.statistics().abandoned == 2
        assert rig.transport.queued(ORCHESTRATOR) == 0

    with caplog.at_level(logging.WARNING, logger="sagafsm.runtime.host"):
        asyncio.run(asyncio.wait_for(main(), 30))
    assert caplog.text.count("the store failed") == 2


def test_handle_many_checks_every_participant_before_it_handles_any(tmp_path: Path) -> None:
    """An unknown participant anywhere in the list: InvalidArgument, nothing handled; an empty
    list is handled in no transaction at all."""

    async def main() -> None:
        async with opened("memory", tmp_path) as store:
            rig = Rig(store)
            with pytest.raises(InvalidArgument, match="no participant named 'email'"):
                await rig.host.handle_many(
                    [("inventory", execute(rig, "a")), ("email", execute(rig, "b"))]
                )
            assert await rig.host.handle_many([]) == []
            assert rig.calls == [] and rig.host.statistics().transactions == 0

    asyncio.run(asyncio.wait_for(main(), 30))


def test_host_options_are_checked() -> None:
    """group_commit is a bool, max_in_hand an int of 1 or more."""
    transport, store, clock = InProcessTransport(), MemoryStore(), WallClock()
    for bad in ({"group_commit": 1}, {"max_in_hand": 0}, {"max_in_hand": 2.0}):
        with pytest.raises(InvalidArgument):
            ParticipantHost([], transport, store, clock, boot=1, **bad)


# -- the consumers: batches of ready commands, each participant's in order ----------------------


@pytest.mark.parametrize("in_hand", [1, 4])
def test_group_commit_batches_ready_commands_and_keeps_each_participants_order(
    in_hand: int,
) -> None:
    """30 commands for three participants: all answered, each participant's in the order sent,
    in batches holding at most ``max_in_hand`` commands of one participant, and fewer store
    transactions than commands."""

    async def main() -> None:
        transport = InProcessTransport()
        seen: list[tuple[int, str, str]] = []  # (transaction, participant, saga)
        hosts: list[ParticipantHost] = []
        participants = []
        for name in "abc":
            participant = Participant(name)

            @participant.action("work")
            async def work(call: ActionCall, name: str = name) -> Mapping[str, Any] | None:
                seen.append((hosts[0].statistics().transactions, name, call.saga_id))
                return {}

            participants.append(participant)
        async with MemoryStore() as store:
            host = ParticipantHost(participants, transport, store, WallClock(), boot=1,
                                   group_commit=True, max_in_hand=in_hand)  # fmt: skip
            hosts.append(host)
            sent = [
                Envelope(
                    message_id=n,
                    kind=MessageKind.EXECUTE,
                    saga_id=f"s{n}",
                    causation_id=None,
                    idempotency_key=f"k{n}",
                    source=ORCHESTRATOR,
                    dest="abc"[n % 3],
                    step="work",
                    operation="work",
                )
                for n in range(30)
            ]
            await transport.send_many(sent)
            async with asyncio.TaskGroup() as group:
                group.create_task(host.run())
                got: list[Delivery] = []
                while len(got) < 30:
                    got += await transport.receive_many(ORCHESTRATOR, 30)
                await host.close()
        for name in "abc":
            order = [saga for _, who, saga in seen if who == name]
            assert order == [m.saga_id for m in sent if m.dest == name]
        batches: dict[int, list[str]] = {}
        for transaction, who, _ in seen:
            batches.setdefault(transaction, []).append(who)
        assert all(b.count(name) <= in_hand for b in batches.values() for name in "abc")
        assert host.statistics().transactions == len(batches) < 30

    asyncio.run(asyncio.wait_for(main(), 30))


# -- against the simulator, in batches ----------------------------------------------------------


def compare_in_batches(
    script: list[Op],
    sizes: list[int],
    store: Any,
    host_class: type[ParticipantHost] = ParticipantHost,
) -> None:
    """The script cut into batches of ``sizes`` (then ones): each batch through handle_many, the
    replies in order and the ledger as the simulated participant's, one command at a time."""
    sim = Harness()
    handed_out: dict[str, Mapping[str, Any]] = {}

    async def main() -> None:
        tickets = Tickets()
        async with store:
            host = host_class([tickets.participant], InProcessTransport(), store, VirtualClock(),
                              boot=1)  # fmt: skip
            n, cuts = 0, iter(sizes)
            while n < len(script):
                batch, expected = [], []
                for op in script[n : n + next(cuts, 1)]:
                    n += 1
                    key = f"{op[1]}/book/action/{op[2]}"
                    claim = {"none": None, "right": handed_out.get(key),
                             "wrong": {"ticket": "t-0"}}  # fmt: skip
                    message = command(op, n, claim[op[3]])
                    reply = sim._send(
                        message.kind, message.saga_id, message.idempotency_key,
                        message.operation, **{f: getattr(message, f) for f in
                                              ("data", "results", "action_key", "action_result")},
                    )  # fmt: skip
                    if reply.kind is MessageKind.ACTION_REPLY and reply.result is not None:
                        handed_out[key] = reply.result
                    batch.append(("tickets", message))
                    expected.append(reply)
                got = await host.handle_many(batch)
                for (_, message), mine, theirs in zip(batch, got, expected, strict=True):
                    assert mine is not None, message
                    assert (mine.kind, mine.outcome, mine.result, mine.reason) == (
                        theirs.kind, theirs.outcome, theirs.result, theirs.reason,
                    ), message  # fmt: skip
            effects = [r[5] for r in await store.trace() if r[1] == "effect"]
            assert effects == sim.effects()
            assert tickets.undone == [(saga, dict(result)) for saga, result in sim.service.undone]

    asyncio.run(main())


sizes = st.lists(st.integers(1, 6), max_size=8)


@settings(max_examples=100, deadline=None)
@given(ops, sizes)
def test_batches_answer_every_sequence_as_the_simulated_participant(
    script: list[Op], cuts: list[int]
) -> None:
    """Memory store: any script, cut into batches anyhow, gets the simulator's replies and
    ledger."""
    compare_in_batches(script, cuts, MemoryStore())


@settings(max_examples=30, deadline=None)
@given(ops, sizes)
def test_sqlite_batches_answer_every_sequence_as_the_simulated_participant(
    script: list[Op], cuts: list[int]
) -> None:
    """The same on SQLite (read-ahead, staged writes, savepoints)."""
    with tempfile.TemporaryDirectory() as scratch:
        compare_in_batches(script, cuts, SqliteStore(Path(scratch) / "saga.db"))


@pytest.mark.parametrize("kind", STORES)
def test_the_batched_comparison_bites_a_store_that_reads_past_the_batch(
    kind: str, tmp_path: Path
) -> None:
    """A repeat in the same batch is the case a blind store gets wrong."""
    script: list[Op] = [("execute", "s0", 0, "none", 0)] * 2
    compare_in_batches(script, [2], MemoryStore() if kind == "memory" else SqliteStore(
        tmp_path / "ok.db"))  # fmt: skip
    memory, sqlite, _ = BROKEN["blind"]
    with pytest.raises(AssertionError):
        compare_in_batches(script, [2], memory() if kind == "memory" else sqlite(
            tmp_path / "blind.db"))  # fmt: skip


# -- against a transaction per command -----------------------------------------------------------

MODES = ["ok", "refuse", "none", "raise", "bad"]
Step = tuple[str, str, str, str, str, int]
"""(kind, saga, action mode, compensation mode, claim, compensation key index)."""

steps = st.lists(
    st.tuples(
        st.sampled_from(["execute", "compensate"]),
        st.sampled_from(["s0", "s1", "s2"]),
        st.sampled_from(MODES),
        st.sampled_from(["ok", "refuse", "raise"]),
        st.sampled_from(["none", "right", "wrong"]),
        st.integers(0, 1),
    ),
    max_size=12,
)


def shop() -> Participant:
    """Writes a row into its own table at every call, then behaves as the command says."""
    participant = Participant("shop")

    @participant.action("buy")
    async def buy(call: ActionCall) -> Mapping[str, Any] | None:
        await call.db.execute("INSERT INTO rows VALUES (?, 'buy')", (call.saga_id,))
        mode = call.data["mode"]
        if mode == "refuse":
            raise Refused("out of stock")
        if mode == "raise":
            raise RuntimeError("on fire")
        if mode == "bad":
            return {"tickets": {1}}
        return None if mode == "none" else {"item": call.saga_id}

    @participant.compensation("give_back")
    async def give_back(call: CompensationCall) -> None:
        await call.db.execute("INSERT INTO rows VALUES (?, 'give_back')", (call.saga_id,))
        if call.data["undo"] == "refuse":
            raise Refused("the till is shut")
        if call.data["undo"] == "raise":
            raise KeyError("till")

    return participant


def shop_command(n: int, step: Step) -> Envelope:
    kind, saga, mode, undo, claim, index = step
    common: dict[str, Any] = {
        "message_id": n, "saga_id": saga, "causation_id": None, "source": ORCHESTRATOR,
        "dest": "shop", "step": "buy", "data": {"mode": mode, "undo": undo},
    }  # fmt: skip
    if kind == "execute":
        return Envelope(kind=MessageKind.EXECUTE, idempotency_key=f"{saga}/buy",
                        operation="buy", **common)  # fmt: skip
    result = {"none": None, "right": {"item": saga}, "wrong": {"item": "other"}}[claim]
    return Envelope(
        kind=MessageKind.COMPENSATE, idempotency_key=f"{saga}/give_back/{index}",
        operation="give_back", action_key=f"{saga}/buy", action_result=result, **common,
    )  # fmt: skip


async def served(
    store: SqliteStore, messages: Sequence[Envelope], cuts: list[int], *, group: bool
) -> tuple[list[Envelope | None], list[Any], list[Any], list[Any]]:
    """Replies, trace, inbox rows and the shop's rows after serving ``messages``: one at a time
    (``group=False``) or in batches of ``cuts``."""
    async with store:
        async with store.transaction("shop") as tx:
            await tx.execute("CREATE TABLE rows (saga TEXT, what TEXT)")
        host = ParticipantHost([shop()], InProcessTransport(), store, VirtualClock(start=5.0),
                               boot=1, group_commit=group)  # fmt: skip
        replies: list[Envelope | None] = []
        n, sizes = 0, iter(cuts)
        while n < len(messages):
            batch = messages[n : n + (next(sizes, 1) if group else 1)]
            n += len(batch)
            if group:
                replies += await host.handle_many([("shop", m) for m in batch])
            else:
                replies += [await host.handle("shop", m) for m in batch]
        async with store.transaction("shop") as tx:
            inbox = await tx.execute("SELECT * FROM sagafsm_inbox ORDER BY participant, key")
            rows = await tx.execute("SELECT * FROM rows ORDER BY rowid")
        return replies, await store.trace(), inbox, rows


def same_as_one_at_a_time(
    script: list[Step], cuts: list[int], directory: Path, store_class: type[SqliteStore]
) -> None:
    messages = [shop_command(n, step) for n, step in enumerate(script, 1)]
    alone = asyncio.run(served(SqliteStore(directory / "alone.db"), messages, cuts, group=False))
    batched = asyncio.run(served(store_class(directory / "batched.db"), messages, cuts, group=True))
    names = ["replies", "trace", "inbox", "rows"]
    for what, mine, theirs in zip(names, batched, alone, strict=True):
        assert mine == theirs, what


@pytest.mark.slow
@settings(max_examples=40, deadline=None)
@given(steps, sizes)
def test_group_commit_answers_and_keeps_exactly_what_a_transaction_per_command_does(
    script: list[Step], cuts: list[int]
) -> None:
    """SQLite, handlers that write their own table and then succeed, refuse, decline, raise or
    return junk, compensations that fail, repeats: in batches or one by one, the same replies
    (ids included), the same trace, the same inbox and the same rows."""
    logging.getLogger("sagafsm.runtime.host").disabled = True
    try:
        with tempfile.TemporaryDirectory() as scratch:
            same_as_one_at_a_time(script, cuts, Path(scratch), SqliteStore)
    finally:
        logging.getLogger("sagafsm.runtime.host").disabled = False


def test_the_equivalence_bites_a_batch_without_savepoints(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A handler that writes and raises, batched with one that succeeds: without savepoints its
    row is kept, which one transaction per command never does."""
    script: list[Step] = [
        ("execute", "s0", "raise", "ok", "none", 0),
        ("execute", "s1", "ok", "ok", "none", 0),
    ]
    (tmp_path / "right").mkdir()
    (tmp_path / "leaky").mkdir()
    with caplog.at_level(logging.ERROR, logger="sagafsm.runtime.host"):
        same_as_one_at_a_time(script, [2], tmp_path / "right", SqliteStore)
        with pytest.raises(AssertionError, match="rows"):
            same_as_one_at_a_time(script, [2], tmp_path / "leaky", BROKEN["leaky"][1])
