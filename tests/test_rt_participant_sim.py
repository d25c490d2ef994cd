"""The host's inbox rules are the simulator's, rule for rule: any sequence of actions and
compensations (repeats, compensations first, right, wrong and missing results) gets the same
replies and the same ledger from a :class:`ParticipantHost` as from a fault-free
:class:`SimParticipant` running the same business."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_sim_participant import Harness

from sagafsm.messages import Envelope, MessageKind
from sagafsm.runtime.clock import VirtualClock
from sagafsm.runtime.host import ParticipantHost
from sagafsm.runtime.memory_store import MemoryStore
from sagafsm.runtime.participant import ActionCall, CompensationCall, Participant, Refused
from sagafsm.runtime.transport import ORCHESTRATOR, InProcessTransport

Op = tuple[str, str, int, str, int]
"""(kind, saga, action key index, claim, compensation key index)."""

ops = st.lists(
    st.tuples(
        st.sampled_from(["execute", "compensate"]),
        st.sampled_from(["s0", "s1", "broke", "silent"]),
        st.integers(0, 1),
        st.sampled_from(["none", "right", "wrong"]),
        st.integers(0, 1),
    ),
    max_size=14,
)


class Tickets:
    """The simulator test's business (tests/test_sim_participant.py), as handlers."""

    def __init__(self) -> None:
        self.issued = 0
        self.undone: list[tuple[str, Mapping[str, Any]]] = []
        self.participant = participant = Participant("tickets")
        participant.action("book")(self.book)
        participant.compensation("cancel")(self.cancel)

    async def book(self, call: ActionCall) -> Mapping[str, Any] | None:
        if call.saga_id == "broke":
            raise Refused("insufficient funds")
        if call.saga_id == "silent":
            return None
        self.issued += 1
        return {"ticket": f"t-{self.issued}", "for": call.data.get("order"),
                "after": dict(call.results)}  # fmt: skip

    async def cancel(self, call: CompensationCall) -> None:
        self.undone.append((call.saga_id, call.action_result))


def command(op: Op, message_id: int, claimed: Mapping[str, Any] | None) -> Envelope:
    kind, saga, action, _, compensation = op
    action_key = f"{saga}/book/action/{action}"
    common: dict[str, Any] = {
        "message_id": message_id, "saga_id": saga, "causation_id": None,
        "source": ORCHESTRATOR, "dest": "tickets", "step": "book", "data": {"order": 7},
    }  # fmt: skip
    if kind == "execute":
        return Envelope(
            kind=MessageKind.EXECUTE, idempotency_key=action_key, operation="book",
            results={"verify": {}}, **common,
        )  # fmt: skip
    return Envelope(
        kind=MessageKind.COMPENSATE, idempotency_key=f"{saga}/book/compensation/{compensation}",
        operation="cancel", action_key=action_key, action_result=claimed, **common,
    )  # fmt: skip


def compare(script: list[Op], host_class: type[ParticipantHost] = ParticipantHost) -> None:
    sim = Harness()
    handed_out: dict[str, Mapping[str, Any]] = {}

    async def main() -> None:
        tickets = Tickets()
        async with MemoryStore() as store:
            transport = InProcessTransport()
            host = host_class([tickets.participant], transport, store, VirtualClock(), boot=1)
            for n, op in enumerate(script, 1):
                key = f"{op[1]}/book/action/{op[2]}"
                claim = {"none": None, "right": handed_out.get(key), "wrong": {"ticket": "t-0"}}
                message = command(op, n, claim[op[3]])
                expected = sim._send(  # the simulator's participant, through its network
                    message.kind, message.saga_id, message.idempotency_key, message.operation,
                    **{f: getattr(message, f) for f in ("data", "results", "action_key",
                                                        "action_result")},
                )  # fmt: skip
                got = await host.handle("tickets", message)
                assert got is not None, op
                assert (got.kind, got.outcome, got.result, got.reason) == (
                    expected.kind, expected.outcome, expected.result, expected.reason,
                ), op  # fmt: skip
                if expected.kind is MessageKind.ACTION_REPLY and expected.result is not None:
                    handed_out[key] = expected.result
            effects = [r[5] for r in await store.trace() if r[1] == "effect"]
            assert effects == sim.effects()
            assert tickets.undone == [(saga, dict(result)) for saga, result in sim.service.undone]

    asyncio.run(main())


@settings(max_examples=150, deadline=None)
@given(ops)
def test_the_host_answers_every_sequence_as_the_simulated_participant(script: list[Op]) -> None:
    """Same replies, in order, and the same ledger and undos, for any script."""
    compare(script)


@pytest.mark.parametrize("host_class", ["no-dedup", "no-tombstone"])
def test_the_comparison_bites_a_broken_host(host_class: str) -> None:
    """A host without dedup differs on a repeated action; one without tombstones on an action
    after its compensation."""
    from test_rt_participant_host import NoDedupHost, NoTombstoneHost

    if host_class == "no-dedup":
        broken: type[ParticipantHost] = NoDedupHost
        script: list[Op] = [("execute", "s0", 0, "none", 0), ("execute", "s0", 0, "none", 0)]
    else:
        broken = NoTombstoneHost
        script = [("compensate", "s0", 0, "none", 0), ("execute", "s0", 0, "none", 0)]
    compare(script)
    with pytest.raises(AssertionError):
        compare(script, broken)
