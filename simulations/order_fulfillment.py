"""Order fulfillment, the user's design: verify the customer (read-only: nothing to undo), reserve
inventory, process payment, create shipment, send confirmation, each of the last four with its
compensation (release reservation, refund, cancel shipment, send cancellation notice).

The domain is real: blocked customers, stock counts per SKU, customer balances, shipments, notices.
Orders fail on their own when the customer is blocked, or stock or money runs short (a definite
failure, with no effect). Data flows through the saga: the reservation and the payment hand out
their ids, the shipment is created against both, and each compensation undoes by id (release
reservation ``res-17``, refund payment ``pay-9``). Once every saga has ended, stock and money must
be conserved (what left the warehouse and the customers' accounts is exactly what the completed
orders took), and every completed order's shipment must reference its own reservation and payment.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Mapping
from typing import Any

import attrs

from sagafsm import SagaBuilder, SagaState
from sagafsm.sim import Declined, Scenario, Service

SKUS = 20
CUSTOMERS = 200
INITIAL_STOCK = 500_000
BROKE_CUSTOMERS = 10
"""Customers 0-9 start with almost nothing: their orders fail at payment (insufficient funds)."""
BLOCKED_CUSTOMERS = frozenset(range(CUSTOMERS - 5, CUSTOMERS))
"""Customers 195-199 are blocked: their orders fail at verification, before any effect."""

Data = Mapping[str, Any]
Result = Mapping[str, Any]
Results = Mapping[str, Result]


def initial_balance(customer: int) -> int:
    return 30 if customer < BROKE_CUSTOMERS else 10_000_000


class Customers:
    """The read-only first step: checks the customer, changes nothing."""

    def __init__(self) -> None:
        self.verified = 0

    def apply(self, action: str, saga_id: str, data: Data, results: Results) -> Result:
        if data["customer"] in BLOCKED_CUSTOMERS:
            raise Declined("customer blocked")
        self.verified += 1
        return {}

    def undo(self, compensation: str, saga_id: str, data: Data, result: Result) -> None:
        """Nothing to undo (only a broken orchestrator asks)."""


@attrs.define
class Reservation:
    saga_id: str
    sku: int
    quantity: int


@attrs.define
class Payment:
    saga_id: str
    customer: int
    amount: int


@attrs.define
class Shipment:
    saga_id: str
    reservation_id: str
    payment_id: str


class Inventory:
    def __init__(self) -> None:
        self.stock = {sku: INITIAL_STOCK for sku in range(SKUS)}
        self.reserved: Counter[int] = Counter()
        self.reservations: dict[str, Reservation] = {}
        """Reservations held now, by id (a completed order's leave when it is accounted for)."""
        self.unknown_releases = 0
        self._issued = 0

    def apply(self, action: str, saga_id: str, data: Data, results: Results) -> Result:
        sku, quantity = data["sku"], data["quantity"]
        if self.stock[sku] < quantity:
            raise Declined("out of stock")
        self.stock[sku] -= quantity
        self.reserved[sku] += quantity
        self._issued += 1
        reservation_id = f"res-{self._issued}"
        self.reservations[reservation_id] = Reservation(saga_id, sku, quantity)
        return {"reservation_id": reservation_id}

    def undo(self, compensation: str, saga_id: str, data: Data, result: Result) -> None:
        reservation = self.reservations.pop(result["reservation_id"], None)
        if reservation is None:
            self.unknown_releases += 1  # released twice: the invariants report it
            return
        self.stock[reservation.sku] += reservation.quantity
        self.reserved[reservation.sku] -= reservation.quantity


class Payments:
    def __init__(self) -> None:
        self.balance = {customer: initial_balance(customer) for customer in range(CUSTOMERS)}
        self.captured = 0
        self.payments: dict[str, Payment] = {}
        """Payments captured and not refunded, by id (a completed order's leave when it is
        accounted for)."""
        self.unknown_refunds = 0
        self._issued = 0

    def apply(self, action: str, saga_id: str, data: Data, results: Results) -> Result:
        customer, amount = data["customer"], data["amount"]
        if self.balance[customer] < amount:
            raise Declined("insufficient funds")
        self.balance[customer] -= amount
        self.captured += amount
        self._issued += 1
        payment_id = f"pay-{self._issued}"
        self.payments[payment_id] = Payment(saga_id, customer, amount)
        return {"payment_id": payment_id}

    def undo(self, compensation: str, saga_id: str, data: Data, result: Result) -> None:
        payment = self.payments.pop(result["payment_id"], None)
        if payment is None:
            self.unknown_refunds += 1
            return
        self.balance[payment.customer] += payment.amount
        self.captured -= payment.amount


class Shipping:
    def __init__(self) -> None:
        self.active = 0
        self.cancelled = 0
        self.shipments: dict[str, Shipment] = {}
        """Shipments active now, by id (a completed order's leave when it is accounted for)."""
        self.by_saga: dict[str, list[str]] = {}
        self._issued = 0

    def apply(self, action: str, saga_id: str, data: Data, results: Results) -> Result:
        # What the shipment is created against comes from the earlier steps' results.
        reservation = results.get("reserve_inventory", {}).get("reservation_id")
        payment = results.get("process_payment", {}).get("payment_id")
        if reservation is None or payment is None:
            raise Declined("nothing to ship: no reservation or no payment given")
        self.active += 1
        self._issued += 1
        shipment_id = f"shp-{self._issued}"
        self.shipments[shipment_id] = Shipment(saga_id, reservation, payment)
        self.by_saga.setdefault(saga_id, []).append(shipment_id)
        return {"shipment_id": shipment_id}

    def undo(self, compensation: str, saga_id: str, data: Data, result: Result) -> None:
        self.active -= 1
        self.cancelled += 1
        shipment_id = result["shipment_id"]
        shipment = self.shipments.pop(shipment_id, None)
        if shipment is not None:
            shipments = self.by_saga[shipment.saga_id]
            shipments.remove(shipment_id)
            if not shipments:
                del self.by_saga[shipment.saga_id]


class Notifications:
    def __init__(self) -> None:
        self.confirmations = 0
        self.cancellations = 0

    def apply(self, action: str, saga_id: str, data: Data, results: Results) -> Result:
        shipment = results.get("create_shipment", {}).get("shipment_id")
        if shipment is None:
            raise Declined("no shipment to confirm")
        self.confirmations += 1
        return {"confirmation": f"order {saga_id} ships as {shipment}"}

    def undo(self, compensation: str, saga_id: str, data: Data, result: Result) -> None:
        self.cancellations += 1


class Totals:
    def __init__(self) -> None:
        self.orders = 0
        self.quantity: Counter[int] = Counter()
        self.amount = 0

    def add(self, order: Mapping[str, Any]) -> None:
        self.orders += 1
        self.quantity[order["sku"]] += order["quantity"]
        self.amount += order["amount"]


class OrderDomain:
    """The five services, and the totals the completed orders should account for."""

    def __init__(self, rng: random.Random) -> None:
        self.customers = Customers()
        self.inventory = Inventory()
        self.payments = Payments()
        self.shipping = Shipping()
        self.notifications = Notifications()
        self.services: dict[str, Service] = {
            "customers": self.customers,
            "inventory": self.inventory,
            "payment": self.payments,
            "shipping": self.shipping,
            "notification": self.notifications,
        }
        # What completed orders account for exactly, and what orders left to an operator may
        # account for (their effects are whatever landed before they stopped).
        self.completed = Totals()
        self.unresolved = Totals()
        self.flow_problems: list[str] = []

    def saga_finished(self, saga_id: str, data: Mapping[str, Any], state: SagaState) -> None:
        if state is SagaState.COMPLETED:
            self.completed.add(data)
            self._account_for(saga_id)
        elif state is SagaState.OPERATOR_REQUIRED:
            self.unresolved.add(data)

    def _account_for(self, saga_id: str) -> None:
        """A completed order's shipment must stand on its own reservation and payment, still
        held. Checked once, when the order completes; then its records are dropped, so the domain
        holds only what is still open (its memory grows with sagas in flight)."""
        shipments = self.shipping.by_saga.pop(saga_id, [])
        for shipment_id in shipments:
            shipment = self.shipping.shipments.pop(shipment_id, None)
            if shipment is not None:
                self.flow_problems += self._check_shipment(shipment_id, shipment)
                self.inventory.reservations.pop(shipment.reservation_id, None)
                self.payments.payments.pop(shipment.payment_id, None)
        if len(shipments) != 1:
            self.flow_problems.append(
                f"completed order {saga_id} has {len(shipments)} shipments, not one"
            )

    def _check_shipment(self, shipment_id: str, shipment: Shipment) -> list[str]:
        saga = shipment.saga_id
        reservation = self.inventory.reservations.get(shipment.reservation_id)
        payment = self.payments.payments.get(shipment.payment_id)
        problems = []
        if reservation is None or reservation.saga_id != saga:
            problems.append(
                f"shipment {shipment_id} of order {saga} references reservation "
                f"{shipment.reservation_id}, which is "
                + ("not held" if reservation is None else f"order {reservation.saga_id}'s")
            )
        if payment is None or payment.saga_id != saga:
            problems.append(
                f"shipment {shipment_id} of order {saga} references payment "
                f"{shipment.payment_id}, which is "
                + ("not captured" if payment is None else f"order {payment.saga_id}'s")
            )
        return problems

    def _outside(self, actual: int, completed: int, unresolved: int) -> bool:
        return not completed <= actual <= completed + unresolved

    def invariants(self) -> list[str]:
        problems = list(self.flow_problems)
        for shipment_id, shipment in self.shipping.shipments.items():  # orders left open
            problems += self._check_shipment(shipment_id, shipment)
        if self.inventory.unknown_releases or self.payments.unknown_refunds:
            problems.append(
                f"{self.inventory.unknown_releases} releases and "
                f"{self.payments.unknown_refunds} refunds of nothing held (undone twice?)"
            )
        done, open_ = self.completed, self.unresolved
        for sku in range(SKUS):
            reserved = self.inventory.reserved[sku]
            if self._outside(reserved, done.quantity[sku], open_.quantity[sku]):
                problems.append(
                    f"stock of SKU {sku} not conserved: {reserved} units left the warehouse, "
                    f"completed orders took {done.quantity[sku]}"
                    + (f" (+ up to {open_.quantity[sku]} unresolved)" if open_.orders else "")
                )
            if self.inventory.stock[sku] + self.inventory.reserved[sku] != INITIAL_STOCK:
                problems.append(f"stock of SKU {sku} does not add up to its initial count")
        money = sum(self.payments.balance.values()) + self.payments.captured
        initial = sum(map(initial_balance, range(CUSTOMERS)))
        if money != initial:
            problems.append(
                f"money not conserved: {money} in accounts and captured, {initial} at start"
            )
        if self._outside(self.payments.captured, done.amount, open_.amount):
            problems.append(
                f"captured {self.payments.captured} but completed orders are worth {done.amount}"
            )
        if self._outside(self.shipping.active, done.orders, open_.orders):
            problems.append(
                f"{self.shipping.active} active shipments for {done.orders} completed orders"
            )
        notified = self.notifications.confirmations - self.notifications.cancellations
        if self._outside(notified, done.orders, open_.orders):
            problems.append(
                f"{self.notifications.confirmations} confirmations and "
                f"{self.notifications.cancellations} cancellation notices for "
                f"{done.orders} completed orders"
            )
        return problems


DEFAULTS: dict[str, Any] = {
    "sagas": 3000,
    "seed": 1,
    "load": {"kind": "open", "arrival_rate": 50.0},
    "latency": "exp:0.005",
    "participant": {
        "capacity": 8,
        "service_time": "exp:0.002",
        "failure_rate": 0.05,
        "hang_rate": 0.01,
        "hang_lands": 0.5,
        "compensation_failure_rate": 0.05,
    },
    "faults": {
        "loss": 0.01,
        "duplicate": 0.02,
        "reorder": 0.05,
        "reorder_delay": "uniform:0:0.1",
        "orchestrator_crash_rate": 0.05,
        "orchestrator_downtime": "const:0.5",
    },
}
"""The default fault plan of ``sagafsm simulate order_fulfillment``: every fault kind, mildly."""


def make_order(rng: random.Random) -> dict[str, Any]:
    quantity = rng.randint(1, 3)
    return {
        "sku": rng.randrange(SKUS),
        "quantity": quantity,
        "customer": rng.randrange(CUSTOMERS),
        "amount": quantity * rng.randint(5, 40),
    }


def scenario() -> Scenario:
    definition = (
        SagaBuilder("order_fulfillment", timeout=0.25)
        .read_only("verify_customer", participant="customers", action="verify_customer")
        .step(
            "reserve_inventory",
            participant="inventory",
            action="reserve_items",
            compensation="release_reservation",
        )
        .step(
            "process_payment",
            participant="payment",
            action="process_payment",
            compensation="refund_payment",
        )
        .step(
            "create_shipment",
            participant="shipping",
            action="create_shipment",
            compensation="cancel_shipment",
        )
        .step(
            "send_confirmation",
            participant="notification",
            action="send_order_confirmation",
            compensation="send_cancellation_notice",
        )
        .build()
    )
    return Scenario(
        name="order_fulfillment",
        definition=definition,
        make_domain=OrderDomain,
        make_order=make_order,
        description=__doc__ or "",
        defaults=DEFAULTS,
    )


def runtime() -> Any:
    """The scenario for ``sagafsm run``: the same saga, its participants as async handlers over
    SQL tables (:mod:`simulations._order_runtime`), imported only when asked for, so that the
    simulator does not load the runtime."""
    from simulations._order_runtime import OrderRuntime

    return OrderRuntime(scenario().definition)
