"""The choreography event bus on the simulated network: ids, acknowledgements, redelivery."""

from __future__ import annotations

import random
from collections import Counter

import simpy

from sagafsm.sim.choreography_bus import EventBus, EventMessage, WireKind
from sagafsm.sim.config import SimulationConfig, config_from_dict
from sagafsm.sim.network import Network
from sagafsm.sim.trace import Trace


def _world(
    loss: float, tries: int = 5
) -> tuple[simpy.Environment, EventBus, list[EventMessage], Counter[str]]:
    config: SimulationConfig = config_from_dict({"latency": "const:0.01", "faults": {"loss": loss}})
    env, faults = simpy.Environment(), Counter[str]()
    rng = random.Random(1)
    network = Network(env, config, rng, random.Random(2), Trace(), faults,
                      duplicate_rng=rng, reorder_rng=rng)  # fmt: skip
    bus = EventBus(env, network, {"Placed": ("stock",)}, redeliver_after=0.1, tries=tries,
                   faults=faults)  # fmt: skip
    received: list[EventMessage] = []

    def stock(message: EventMessage) -> None:
        received.append(message)
        bus.acknowledge(message)

    network.register("stock", stock)
    network.register("shop", lambda message: bus.acknowledged(message))
    return env, bus, received, faults


def test_events_carry_their_saga_their_own_id_and_their_cause() -> None:
    """Ids are unique within a saga; the causation id is the event reacted to."""
    env, bus, received, _ = _world(loss=0.0)
    first = bus.publish("shop", "s1", "Placed", None, {"input": {}})
    second = bus.publish("shop", "s1", "Placed", first.event_id, {"input": {}})
    other = bus.publish("shop", "s2", "Placed", None, {"input": {}})
    env.run()
    assert (first.saga_id, first.causation_id, second.causation_id) == ("s1", None, first.event_id)
    assert len({first.event_id, second.event_id}) == 2 and other.saga_id == "s2"
    assert [m.event.event_id for m in received] == [first.event_id, second.event_id, other.event_id]


def test_an_acknowledged_event_is_not_published_again() -> None:
    """With nothing lost, one copy each way, and no redelivery."""
    env, bus, received, faults = _world(loss=0.0)
    bus.publish("shop", "s1", "Placed", None, {})
    env.run()
    assert len(received) == 1 and received[0].kind is WireKind.EVENT
    assert faults["event_redelivered"] == 0


def test_a_lost_event_is_published_again_until_its_tries_run_out() -> None:
    """Everything lost: the emitter publishes it ``tries`` times, then gives it up."""
    env, bus, received, faults = _world(loss=1.0, tries=5)
    bus.publish("shop", "s1", "Placed", None, {})
    env.run()
    assert received == []
    assert faults["event_redelivered"] == 4 and faults["event_given_up"] == 1


def test_a_lost_acknowledgement_brings_the_event_again_and_the_subscriber_sees_its_id_twice() -> (
    None
):
    """Half the messages lost: the subscriber may see one event id more than once (which is
    why participants deduplicate by it), and the bus stops once an acknowledgement arrives."""
    env, bus, received, faults = _world(loss=0.5, tries=30)
    for saga in range(20):
        bus.publish("shop", f"s{saga}", "Placed", None, {})
    env.run()
    ids = Counter(m.event.event_id for m in received)
    assert len(ids) == 20  # every event got through at last
    assert max(ids.values()) > 1  # some twice or more: their acknowledgement was lost
    assert faults["event_given_up"] == 0
