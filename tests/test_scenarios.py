"""The built-in scenarios run clean, their data flows from step to step, and their domain
invariants can fail."""

from __future__ import annotations

import importlib.util
import json
import random
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs
import pytest

from sagafsm import SagaState
from sagafsm.sim import Domain, load_scenario, simulate
from sagafsm.sim.scenario import builtin_scenarios
from sagafsm.sim.trace import Record


@pytest.mark.parametrize("name", ["order_fulfillment", "travel_booking"])
def test_builtin_scenarios_run_clean_under_their_default_faults(name: str) -> None:
    """Every saga ends and the domain totals balance under the scenario's own fault plan."""
    scenario = load_scenario(name)
    result = simulate(scenario, scenario.config(sagas=400))
    assert sum(result.outcomes.values()) == 400 and "unfinished" not in result.outcomes
    assert result.outcomes["completed"] > 0 and result.outcomes["failed"] > 0
    assert result.violations == ()


def test_builtin_scenarios_are_listed() -> None:
    """The scenario list the CLI prints is the simulations package's modules."""
    assert {"order_fulfillment", "travel_booking"} <= set(builtin_scenarios())


def test_a_broken_compensation_breaks_the_domain_invariants() -> None:
    """A service whose undo does nothing leaves its counter high: the invariant check fires."""
    path = Path(__file__).parent / "data" / "two_step_scenario.py"
    spec = importlib.util.spec_from_file_location("two_step_scenario", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    healthy, broken = module.scenario(), module.scenario(broken_undo=True)
    assert simulate(healthy, healthy.config(sagas=200)).violations == ()
    result = simulate(broken, broken.config(sagas=200))
    assert {v.property for v in result.violations} == {"domain-invariants"}
    assert "counter a is" in result.violations[0].detail


# -- data flows through the saga ---------------------------------------------------------------


class Spy:
    """Wraps one service of a domain: logs what every apply was handed and returned, and what
    every undo was handed."""

    def __init__(self, name: str, service: Any, log: list[tuple[Any, ...]]) -> None:
        self.name, self.service, self.log = name, service, log

    def apply(
        self, action: str, saga_id: str, data: Mapping[str, Any], results: Mapping[str, Any]
    ) -> Any:
        result = self.service.apply(action, saga_id, data, results)  # Declined passes through
        self.log.append(("apply", self.name, saga_id, json.loads(json.dumps(results)), result))
        return result

    def undo(self, compensation: str, saga_id: str, data: Mapping[str, Any], result: Any) -> None:
        self.log.append(("undo", self.name, saga_id, result))
        self.service.undo(compensation, saga_id, data, result)


def spied_run(name: str, **overrides: Any) -> tuple[list[tuple[Any, ...]], list[Record]]:
    """Run a built-in scenario with every service spied on; the log and the trace."""
    scenario = load_scenario(name)
    log: list[tuple[Any, ...]] = []

    def make_domain(rng: random.Random) -> Domain:
        domain = scenario.make_domain(rng)
        domain.services = {n: Spy(n, s, log) for n, s in domain.services.items()}  # type: ignore[misc]
        return domain

    records: list[Record] = []
    spied = attrs.evolve(scenario, make_domain=make_domain)
    result = simulate(spied, spied.config(**overrides), observe=records.append)
    assert result.violations == ()
    return log, records


def handed_out(log: list[tuple[Any, ...]]) -> dict[tuple[str, str], Any]:
    """(participant, saga) -> the result its one apply returned (participants deduplicate)."""
    out: dict[tuple[str, str], Any] = {}
    for entry in log:
        if entry[0] == "apply":
            assert (entry[1], entry[2]) not in out, entry  # applied once per saga
            out[entry[1], entry[2]] = entry[4]
    return out


def check_undos(log: list[tuple[Any, ...]]) -> int:
    """Every undo was handed exactly what its participant's apply returned for that saga."""
    results = handed_out(log)
    undos = [entry for entry in log if entry[0] == "undo"]
    for _, participant, saga, result in undos:
        assert result == results[participant, saga]
    return len(undos)


def test_order_ids_are_produced_by_the_actions_and_consumed_downstream() -> None:
    """Under the default faults (duplicates, losses, hangs, crashes): each shipment is created
    against its own order's reservation and payment ids, each confirmation names its shipment,
    and each release and refund is handed the id its action handed out."""
    log, _ = spied_run("order_fulfillment", sagas=400, participant__failure_rate=0.1)
    results = handed_out(log)
    shipments = [entry for entry in log if entry[0] == "apply" and entry[1] == "shipping"]
    assert shipments
    for _, _, saga, given, result in shipments:
        assert given["reserve_inventory"] == results["inventory", saga]
        assert given["process_payment"] == results["payment", saga]
        assert result["shipment_id"].startswith("shp-")
        assert results["inventory", saga]["reservation_id"].startswith("res-")
        assert results["payment", saga]["payment_id"].startswith("pay-")
    confirmations = [entry for entry in log if entry[0] == "apply" and entry[1] == "notification"]
    assert confirmations
    for _, _, saga, given, _result in confirmations:
        assert given["create_shipment"] == results["shipping", saga]
    undone = {entry[1] for entry in log if entry[0] == "undo"}
    assert {"inventory", "payment"} <= undone and "customers" not in undone
    assert check_undos(log) > 0


def test_travel_ids_flow_into_the_charge_the_itinerary_and_the_cancellations() -> None:
    """The charge and the itinerary get the three booking ids of their own trip, the itinerary
    the charge id too; each cancellation the id its booking handed out."""
    log, _ = spied_run("travel_booking", sagas=300, participant__failure_rate=0.1)
    results = handed_out(log)
    later = [entry for entry in log if entry[0] == "apply" and entry[1] in ("payment", "mailer")]
    assert {entry[1] for entry in later} == {"payment", "mailer"}
    for _, participant, saga, given, _result in later:
        for step, service in (("book_flight", "airline"), ("book_hotel", "hotel")):
            assert given[step] == results[service, saga]
        assert given["rent_car"] == results["car_rental", saga]
        if participant == "mailer":
            assert given["charge_card"] == results["payment", saga]
    assert check_undos(log) > 0


def test_ids_are_deterministic() -> None:
    """Same seed, same ids handed out to the same sagas."""
    first, _ = spied_run("order_fulfillment", sagas=150, seed=4)
    second, _ = spied_run("order_fulfillment", sagas=150, seed=4)
    assert first == second


def test_the_read_only_step_fails_orders_without_compensating_anything() -> None:
    """Blocked customers fail at verify_customer, with the reason, and nothing is compensated
    for them; no compensation is ever sent to the read-only step."""
    scenario = load_scenario("order_fulfillment")
    records: list[Record] = []
    simulate(scenario, scenario.config(sagas=600), observe=records.append)
    reasons = Counter(r[4] for r in records if r[1] == "finish" and r[3] == "failed")
    assert reasons["step 'verify_customer' failed: customer blocked"] > 0
    assert reasons["step 'process_payment' failed: insufficient funds"] > 0
    blocked = {
        r[2]
        for r in records
        if r[1] == "finish" and r[4] == "step 'verify_customer' failed: customer blocked"
    }
    compensations = [r for r in records if r[1] == "send" and r[6] == "compensate"]
    assert compensations and not {r[2] for r in compensations} & blocked
    assert all(r[7] != "verify_customer" for r in compensations)


def order(customer: int) -> dict[str, Any]:
    return {"sku": 1, "quantity": 2, "customer": customer, "amount": 30}


def complete_order(domain: Any, saga: str, data: Mapping[str, Any], ids: dict[str, Any]) -> None:
    """Ship against ``ids`` (the reservation's and payment's results), confirm, complete."""
    shipment = domain.shipping.apply("create_shipment", saga, data, ids)
    domain.notifications.apply("send_order_confirmation", saga, data, {"create_shipment": shipment})
    domain.saga_finished(saga, data, SagaState.COMPLETED)


def test_a_shipment_against_another_orders_reservation_breaks_the_invariants() -> None:
    """The data-flow invariant: a completed order's shipment must stand on its own reservation
    and payment. Shipping order b against order a's reservation is reported; the right ids are
    not."""
    from simulations.order_fulfillment import OrderDomain

    for swapped in (False, True):
        domain = OrderDomain(random.Random(0))
        ids = {}
        for saga in ("a", "b"):
            data = order(50)
            ids[saga] = {
                "reserve_inventory": domain.inventory.apply("reserve_items", saga, data, {}),
                "process_payment": domain.payments.apply("process_payment", saga, data, {}),
            }
        if swapped:
            ids["b"] = {**ids["b"], "reserve_inventory": ids["a"]["reserve_inventory"]}
        for saga in ("a", "b"):
            complete_order(domain, saga, order(50), ids[saga])
        problems = [p for p in domain.invariants() if "references" in p]
        assert problems == (
            ["shipment shp-2 of order b references reservation res-1, which is not held"]
            if swapped
            else []
        )


def test_compensations_undo_by_id() -> None:
    """Release and refund act on the reservation and payment named by the result, whatever the
    saga's data says: the totals come back to where they started."""
    from simulations.order_fulfillment import INITIAL_STOCK, OrderDomain, initial_balance

    domain = OrderDomain(random.Random(0))
    reservation = domain.inventory.apply("reserve_items", "a", order(50), {})
    payment = domain.payments.apply("process_payment", "a", order(50), {})
    lying = {"sku": 7, "quantity": 3, "customer": 60, "amount": 1}  # not what was reserved
    domain.inventory.undo("release_reservation", "a", lying, reservation)
    domain.payments.undo("refund_payment", "a", lying, payment)
    assert domain.inventory.stock[1] == INITIAL_STOCK and domain.inventory.stock[7] == INITIAL_STOCK
    assert domain.payments.balance[50] == initial_balance(50)
    assert domain.payments.balance[60] == initial_balance(60)
    assert domain.invariants() == []
