"""A simulated participant on its own: it keeps each action's result with its outcome, answers
repeats with the same reply, undoes with its own record, and refuses a compensation handed a
result it never gave out."""

from __future__ import annotations

import random
from array import array
from collections import Counter
from collections.abc import Mapping
from typing import Any

import pytest
import simpy

from sagafsm.messages import Envelope, MessageKind, Outcome
from sagafsm.sim import Declined, config_from_dict
from sagafsm.sim.network import ORCHESTRATOR, Network
from sagafsm.sim.participant import INJECTED, SimParticipant
from sagafsm.sim.trace import Record, Trace


class Tickets:
    """Hands out a fresh ticket per action; declines saga ``"broke"``; records every undo."""

    def __init__(self) -> None:
        self.issued = 0
        self.undone: list[tuple[str, Mapping[str, Any]]] = []

    def apply(
        self,
        action: str,
        saga_id: str,
        data: Mapping[str, Any],
        results: Mapping[str, Mapping[str, Any]],
    ) -> Mapping[str, Any] | None:
        if saga_id == "broke":
            raise Declined("insufficient funds")
        if saga_id == "silent":
            return None
        self.issued += 1
        return {"ticket": f"t-{self.issued}", "for": data.get("order"), "after": dict(results)}

    def undo(
        self, compensation: str, saga_id: str, data: Mapping[str, Any], result: Mapping[str, Any]
    ) -> None:
        self.undone.append((saga_id, result))


class Harness:
    """One participant on a zero-fault network; replies are collected, not handled."""

    def __init__(self, **participant: Any) -> None:
        self.env = simpy.Environment()
        config = config_from_dict(
            {
                "latency": "const:0.001",
                "participant": {"service_time": "const:0.001", **participant},
            }
        )
        self.records: list[Record] = []
        trace = Trace(listeners=[self.records.append])
        rng = random.Random
        self.network = Network(self.env, config, rng(1), rng(2), trace, Counter(), rng(3), rng(4))
        self.replies: list[Envelope] = []
        self.network.register(ORCHESTRATOR, self.replies.append)
        self.service = Tickets()
        self.participant = SimParticipant(
            self.env,
            "tickets",
            config.participant,
            self.service,
            self.network,
            trace,
            rng(5),
            Counter(),
            lambda saga_id: array("d", [0.5, 0.5, 0.5, 0.5]),
            lambda step: 0,
        )
        self.network.register("tickets", self.participant.receive)

    def execute(self, saga: str = "s0") -> Envelope:
        return self._send(
            MessageKind.EXECUTE,
            saga,
            f"{saga}/book/action",
            "book",
            data={"order": 7},
            results={"verify": {}},
        )

    def compensate(
        self, action_result: Mapping[str, Any] | None, saga: str = "s0", attempt: int = 1
    ) -> Envelope:
        return self._send(
            MessageKind.COMPENSATE,
            saga,
            f"{saga}/book/compensation",
            "cancel",
            attempt=attempt,
            action_key=f"{saga}/book/action",
            data={"order": 7},
            action_result=action_result,
        )

    def _send(self, kind: MessageKind, saga: str, key: str, op: str, **fields: Any) -> Envelope:
        before = len(self.replies)
        self.network.send(
            Envelope(
                message_id=self.network.next_message_id(),
                kind=kind,
                saga_id=saga,
                causation_id=None,
                idempotency_key=key,
                source=ORCHESTRATOR,
                dest="tickets",
                step="book",
                operation=op,
                **fields,
            )
        )
        self.env.run()
        (reply,) = self.replies[before:]
        return reply

    def effects(self) -> list[str]:
        return [r[5] for r in self.records if r[1] == "effect"]


def test_a_success_reply_carries_the_result_and_a_repeat_gets_the_same_one() -> None:
    """The result (built from the data and the earlier results) travels back; a duplicate is
    answered from the record, with the same result, and applies nothing."""
    harness = Harness()
    first = harness.execute()
    assert first.outcome is Outcome.SUCCEEDED and first.kind is MessageKind.ACTION_REPLY
    assert first.result == {"ticket": "t-1", "for": 7, "after": {"verify": {}}}
    again = harness.execute()
    assert again.result == first.result and again.outcome is Outcome.SUCCEEDED
    assert harness.service.issued == 1 and harness.effects() == ["action"]


@pytest.mark.parametrize("claimed", [{"ticket": "t-1", "for": 7, "after": {"verify": {}}}, None])
def test_a_compensation_undoes_with_the_participants_own_record(
    claimed: dict[str, Any] | None,
) -> None:
    """Handed the right result, or none (the orchestrator never got the reply), the undo gets
    the result the participant itself handed out."""
    harness = Harness()
    handed_out = harness.execute().result
    reply = harness.compensate(claimed)
    assert reply.outcome is Outcome.SUCCEEDED and reply.kind is MessageKind.COMPENSATION_REPLY
    assert harness.service.undone == [("s0", handed_out)]
    assert harness.effects() == ["action", "compensation"]


def test_a_compensation_handed_another_result_is_refused() -> None:
    """A result the participant never gave out: refused (ledger says so), nothing undone, a
    failure reply with the reason; the compensation with the right result then goes through."""
    harness = Harness()
    handed_out = harness.execute().result
    reply = harness.compensate({"ticket": "t-99"})
    assert reply.outcome is Outcome.FAILED and "refused" in reply.reason
    assert harness.service.undone == []
    assert harness.effects() == ["action", "compensation_refused"]
    assert harness.compensate(handed_out, attempt=2).outcome is Outcome.SUCCEEDED
    assert harness.service.undone == [("s0", handed_out)]


def test_a_result_claimed_for_an_action_never_applied_is_refused_not_tombstoned() -> None:
    """No action seen and a result claimed: refused; the action, arriving later, still runs
    (no tombstone was left by the refused compensation)."""
    harness = Harness()
    assert harness.compensate({"ticket": "t-1"}).outcome is Outcome.FAILED
    assert harness.execute().outcome is Outcome.SUCCEEDED
    assert harness.effects() == ["compensation_refused", "action"]


def test_a_compensation_with_no_result_for_an_action_never_applied_leaves_a_tombstone() -> None:
    """The timed-out case: nothing to undo, a tombstone, and the late action is blocked."""
    harness = Harness()
    assert harness.compensate(None).outcome is Outcome.SUCCEEDED
    blocked = harness.execute()
    assert blocked.outcome is Outcome.FAILED and blocked.result is None and blocked.reason
    assert harness.effects() == ["compensation_noop", "action_blocked"]


@pytest.mark.parametrize(
    ("saga", "reason"),
    [("broke", "insufficient funds"), ("silent", "tickets declined book")],
)
def test_a_business_failure_reply_carries_its_reason(saga: str, reason: str) -> None:
    """Declined("...") gives its reason; a plain None a default one naming the participant."""
    harness = Harness()
    reply = harness.execute(saga)
    assert reply.outcome is Outcome.FAILED and reply.reason == reason and reply.result is None
    assert harness.execute(saga).reason == reason  # the repeat: the same reply


def test_an_injected_failure_says_so() -> None:
    """A failure the fault plan caused is told apart from the business's own."""
    harness = Harness(failure_rate=1.0)
    reply = harness.execute()
    assert reply.outcome is Outcome.FAILED and reply.reason == INJECTED
    harness = Harness(compensation_failure_rate=1.0)
    harness.execute()
    assert harness.compensate(None).reason == INJECTED


def test_forgetting_a_saga_drops_every_record_it_left_and_no_other() -> None:
    """Once a saga's retention ran out its action reply, tombstone and compensation are gone
    (a repeat applies again, a late action is no longer blocked); another saga's stay."""
    harness = Harness()
    harness.execute("s0")
    harness.compensate(None, saga="s1")  # a tombstone for s1's action, and s1's compensation
    harness.execute("s2")
    for saga in ("s0", "s1", "never-seen"):  # the keys the run forgets at a saga's eviction
        harness.participant.forget([f"{saga}/book/action", f"{saga}/book/compensation"])
    assert harness.execute("s0").result == {"ticket": "t-3", "for": 7, "after": {"verify": {}}}
    assert harness.execute("s1").outcome is Outcome.SUCCEEDED  # no tombstone left
    harness.compensate(None, saga="s1")  # applies again: the compensation was forgotten too
    assert harness.execute("s2").result == {"ticket": "t-2", "for": 7, "after": {"verify": {}}}
    assert harness.effects() == [
        "action",
        "compensation_noop",
        "action",
        "action",
        "action",
        "compensation",
    ]
