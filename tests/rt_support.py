"""Shared pieces of the runtime tests: a small order saga, its participants, a run driver."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterable
from typing import Any

from sagafsm import RetryPolicy, SagaBuilder, SagaDefinition
from sagafsm.runtime.clock import VirtualClock
from sagafsm.runtime.host import ParticipantHost
from sagafsm.runtime.participant import Participant, Refused
from sagafsm.runtime.runtime import Runtime
from sagafsm.runtime.transport import InProcessTransport

ORDER = (
    SagaBuilder("order", timeout=300.0)
    .step("reserve", participant="inventory", action="reserve", compensation="release")
    .step("charge", participant="payment", action="charge", compensation="refund")
    .pivot("ship", participant="shipping", action="ship")
    .retriable("notify", participant="mail", action="send", retry=RetryPolicy(max_attempts=3))
    .build()
)


class Shop:
    """The participants' side effects, counted (what the tests judge besides the ledger)."""

    def __init__(self) -> None:
        self.effects: Counter[tuple[str, str]] = Counter()
        self.crash_once: set[str] = set()
        """Actions whose handler raises an unexpected error on its first call (no reply)."""

    def participants(self) -> list[Participant]:
        inventory, payment = Participant("inventory"), Participant("payment")
        shipping, mail = Participant("shipping"), Participant("mail")
        effects, crash_once = self.effects, self.crash_once

        async def act(name: str, call: Any, result: dict[str, Any]) -> dict[str, Any]:
            if name in crash_once:
                crash_once.discard(name)
                raise RuntimeError("the mail server is down")
            effects[call.saga_id, name] += 1
            return result

        @inventory.action("reserve")
        async def reserve(call: Any) -> dict[str, Any]:
            return await act("reserve", call, {"reservation": f"r-{call.saga_id}"})

        @inventory.compensation("release")
        async def release(call: Any) -> None:
            effects[call.saga_id, "release"] += 1

        @payment.action("charge")
        async def charge(call: Any) -> dict[str, Any]:
            if call.data.get("amount", 0) > 100:
                raise Refused("insufficient funds")
            return await act("charge", call, {"payment": f"p-{call.saga_id}"})

        @payment.compensation("refund")
        async def refund(call: Any) -> None:
            effects[call.saga_id, "refund"] += 1

        @shipping.action("ship")
        async def ship(call: Any) -> dict[str, Any]:
            return await act("ship", call, {})

        @mail.action("send")
        async def send(call: Any) -> dict[str, Any]:
            return await act("send", call, {})

        return [inventory, payment, shipping, mail]


async def settle(runtime: Runtime, transport: InProcessTransport, nodes: Iterable[str]) -> None:
    """Let the runtime and the participants run until nothing moves without time passing."""
    names = list(nodes)
    quiet = 0
    while quiet < 20:
        await asyncio.sleep(0)
        busy = not runtime.idle or any(transport.queued(name) for name in names)
        quiet = 0 if busy else quiet + 1


async def run_until_finished(
    runtime: Runtime,
    transport: InProcessTransport,
    clock: VirtualClock,
    saga_ids: list[str],
    definition: SagaDefinition = ORDER,
) -> dict[str, Any]:
    nodes = ["orchestrator", *{step.participant for step in definition.steps}]
    for _ in range(1000):
        await settle(runtime, transport, nodes)
        statuses = {saga_id: await runtime.status(saga_id) for saga_id in saga_ids}
        if all(s is not None and s.snapshot is None for s in statuses.values()):
            return statuses
        if clock.advance_to_next() is None:
            break
    raise AssertionError(f"sagas still running: {sorted(s for s in saga_ids)}")


def host_for(shop: Shop, transport: InProcessTransport, store: Any, clock: VirtualClock) -> Any:
    # A boot the runtime never reaches in these tests: reply ids stay apart from command ids.
    return ParticipantHost(shop.participants(), transport, store, clock, boot=1000)
