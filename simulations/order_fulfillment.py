"""Order fulfillment, the user's design: reserve inventory, process payment, create shipment,
send confirmation, each with its compensation (release reservation, refund, cancel shipment,
send cancellation notice).

The domain is real: stock counts per SKU, customer balances, shipments, notices. Orders fail on
their own when stock or money runs short (a definite failure, with no effect). Once every saga has
ended, stock and money must be conserved: what left the warehouse and the customers' accounts is
exactly what the completed orders took.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Mapping
from typing import Any

from sagafsm import SagaBuilder, SagaState
from sagafsm.sim import Scenario

SKUS = 20
CUSTOMERS = 200
INITIAL_STOCK = 500_000
BROKE_CUSTOMERS = 10
"""Customers 0-9 start with almost nothing: their orders fail at payment (insufficient funds)."""


def initial_balance(customer: int) -> int:
    return 30 if customer < BROKE_CUSTOMERS else 10_000_000


class Inventory:
    def __init__(self) -> None:
        self.stock = {sku: INITIAL_STOCK for sku in range(SKUS)}
        self.reserved: Counter[int] = Counter()

    def apply(self, action: str, saga_id: str, data: Mapping[str, Any]) -> bool:
        sku, quantity = data["sku"], data["quantity"]
        if self.stock[sku] < quantity:
            return False  # out of stock: a business failure
        self.stock[sku] -= quantity
        self.reserved[sku] += quantity
        return True

    def undo(self, compensation: str, saga_id: str, data: Mapping[str, Any]) -> None:
        self.stock[data["sku"]] += data["quantity"]
        self.reserved[data["sku"]] -= data["quantity"]


class Payments:
    def __init__(self) -> None:
        self.balance = {customer: initial_balance(customer) for customer in range(CUSTOMERS)}
        self.captured = 0

    def apply(self, action: str, saga_id: str, data: Mapping[str, Any]) -> bool:
        customer, amount = data["customer"], data["amount"]
        if self.balance[customer] < amount:
            return False  # insufficient funds
        self.balance[customer] -= amount
        self.captured += amount
        return True

    def undo(self, compensation: str, saga_id: str, data: Mapping[str, Any]) -> None:
        self.balance[data["customer"]] += data["amount"]
        self.captured -= data["amount"]


class Shipping:
    def __init__(self) -> None:
        self.active = 0
        self.cancelled = 0

    def apply(self, action: str, saga_id: str, data: Mapping[str, Any]) -> bool:
        self.active += 1
        return True

    def undo(self, compensation: str, saga_id: str, data: Mapping[str, Any]) -> None:
        self.active -= 1
        self.cancelled += 1


class Notifications:
    def __init__(self) -> None:
        self.confirmations = 0
        self.cancellations = 0

    def apply(self, action: str, saga_id: str, data: Mapping[str, Any]) -> bool:
        self.confirmations += 1
        return True

    def undo(self, compensation: str, saga_id: str, data: Mapping[str, Any]) -> None:
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
    """The four services, and the totals the completed orders should account for."""

    def __init__(self, rng: random.Random) -> None:
        self.inventory = Inventory()
        self.payments = Payments()
        self.shipping = Shipping()
        self.notifications = Notifications()
        self.services = {
            "inventory": self.inventory,
            "payment": self.payments,
            "shipping": self.shipping,
            "notification": self.notifications,
        }
        # What completed orders account for exactly, and what orders left to an operator may
        # account for (their effects are whatever landed before they stopped).
        self.completed = Totals()
        self.unresolved = Totals()

    def saga_finished(self, saga_id: str, data: Mapping[str, Any], state: SagaState) -> None:
        if state is SagaState.COMPLETED:
            self.completed.add(data)
        elif state is SagaState.OPERATOR_REQUIRED:
            self.unresolved.add(data)

    def _outside(self, actual: int, completed: int, unresolved: int) -> bool:
        return not completed <= actual <= completed + unresolved

    def invariants(self) -> list[str]:
        problems = []
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
