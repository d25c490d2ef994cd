"""Order fulfillment on the real runtime: the simulated services, rewritten over SQL tables.

Each handler does what its service in :mod:`simulations.order_fulfillment` does, with the same
refusals (a blocked customer, short stock, short money), the same ids handed out (``res-N``,
``pay-N``, ``shp-N``) and compensations that undo by those ids. Every write goes through
``call.db.execute``: it commits in the participant's transaction together with the inbox row that
remembers the command, so a participant killed between its effect and its reply cannot apply the
effect twice, and one killed before the commit leaves no trace of it.

A refusal is decided before anything is written (a refused action's transaction still commits:
its inbox row remembers the failure), so "refused" always means "no effect", as ``Declined`` does.

The SQL is written once, with ``?`` placeholders, and runs on SQLite and PostgreSQL alike
(:func:`~sagafsm.runtime.dialects.in_dialect` gives it to the store in its own placeholders);
only the numbered id column of the tables differs between the two (:func:`schema`).

The tables keep every row (released reservations, refunded payments, cancelled shipments are
flagged, not deleted), so the invariants can count, per order, how many times each effect landed
and whether it was undone: stronger than the simulator's totals, which forget completed orders.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from sagafsm.definition import SagaDefinition
from sagafsm.errors import InvalidConfig
from sagafsm.runtime.dialects import ID_COLUMN, in_dialect
from sagafsm.runtime.participant import ActionCall, CompensationCall, Participant, Refused
from sagafsm.runtime.scenario import FinishedSaga, with_timeout
from sagafsm.runtime.store import ParticipantTx
from sagafsm.sim.streams import stream
from simulations.order_fulfillment import (
    BLOCKED_CUSTOMERS,
    BROKE_CUSTOMERS,
    CUSTOMERS,
    INITIAL_STOCK,
    SKUS,
    initial_balance,
    make_order,
)

__all__ = ["OrderRuntime", "schema", "RUNTIME_TIMEOUT"]

RUNTIME_TIMEOUT = 2.0
"""Step timeout of the real run, in seconds: longer than a participant process takes to restart
(about half a second), so a kill is waited out rather than escalated."""

_UNDO_MISSES = "unknown_undos"


def schema(dialect: str) -> tuple[str, ...]:
    """The participants' tables in ``dialect``, created and seeded idempotently. One text for
    both stores but for the numbered id column (:data:`~sagafsm.runtime.dialects.ID_COLUMN`:
    an id handed out, ``res-N``, is never handed out again, even after a rollback)."""
    if dialect not in ID_COLUMN:
        raise InvalidConfig(
            f"the order scenario has tables for {' and '.join(ID_COLUMN)} stores, not {dialect}"
        )
    ids = ID_COLUMN[dialect]
    # Seeded once: ON CONFLICT DO NOTHING leaves the rows of a store already in use as they
    # are (SQLite wants a WHERE in an INSERT ... SELECT that has one: "WHERE true").
    numbers = "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < {last}) "
    return (
        "CREATE TABLE IF NOT EXISTS customers (customer INTEGER PRIMARY KEY, "
        "blocked INTEGER NOT NULL, verified INTEGER NOT NULL DEFAULT 0)",
        "CREATE TABLE IF NOT EXISTS accounts (customer INTEGER PRIMARY KEY, "
        "balance BIGINT NOT NULL)",
        "CREATE TABLE IF NOT EXISTS inventory (sku INTEGER PRIMARY KEY, "
        "stock BIGINT NOT NULL, reserved BIGINT NOT NULL)",
        f"CREATE TABLE IF NOT EXISTS reservations (id {ids}, "
        "saga_id TEXT NOT NULL, sku INTEGER NOT NULL, quantity BIGINT NOT NULL, "
        "released INTEGER NOT NULL DEFAULT 0)",
        f"CREATE TABLE IF NOT EXISTS payments (id {ids}, "
        "saga_id TEXT NOT NULL, customer INTEGER NOT NULL, amount BIGINT NOT NULL, "
        "refunded INTEGER NOT NULL DEFAULT 0)",
        f"CREATE TABLE IF NOT EXISTS shipments (id {ids}, "
        "saga_id TEXT NOT NULL, reservation_id TEXT NOT NULL, payment_id TEXT NOT NULL, "
        "cancelled INTEGER NOT NULL DEFAULT 0)",
        f"CREATE TABLE IF NOT EXISTS notices (id {ids}, "
        "saga_id TEXT NOT NULL, kind TEXT NOT NULL, text TEXT NOT NULL)",
        f"CREATE TABLE IF NOT EXISTS {_UNDO_MISSES} (id {ids}, "
        "saga_id TEXT NOT NULL, what TEXT NOT NULL)",
        numbers.format(last=CUSTOMERS - 1) + "INSERT INTO customers (customer, blocked) "
        f"SELECT i, CASE WHEN i >= {min(BLOCKED_CUSTOMERS)} THEN 1 ELSE 0 END FROM n "
        "WHERE true ON CONFLICT DO NOTHING",
        numbers.format(last=CUSTOMERS - 1) + "INSERT INTO accounts (customer, balance) "
        f"SELECT i, CASE WHEN i < {BROKE_CUSTOMERS} THEN {initial_balance(0)} "
        f"ELSE {initial_balance(BROKE_CUSTOMERS)} END FROM n WHERE true ON CONFLICT DO NOTHING",
        numbers.format(last=SKUS - 1) + "INSERT INTO inventory (sku, stock, reserved) "
        f"SELECT i, {INITIAL_STOCK}, 0 FROM n WHERE true ON CONFLICT DO NOTHING",
    )


# The seeding SQL says "blocked from here on" and "broke below that": true of the constants.
assert frozenset(range(min(BLOCKED_CUSTOMERS), CUSTOMERS)) == BLOCKED_CUSTOMERS


def _number(handed_out: str, prefix: str) -> int | None:
    """The row id behind an id such as ``res-17`` (None for anything else)."""
    head, _, tail = str(handed_out).partition("-")
    return int(tail) if head == prefix and tail.isdigit() else None


async def _sql(db: ParticipantTx, sql: str, parameters: Sequence[Any] = ()) -> list[Any]:
    """One statement, written with ``?`` placeholders, run in the store's dialect."""
    return await db.execute(in_dialect(sql, db.dialect), parameters)


async def _undo_missed(db: ParticipantTx, saga_id: str, what: str) -> None:
    """An undo of something not held (undone twice?): kept for the invariants to report."""
    await _sql(db, f"INSERT INTO {_UNDO_MISSES} (saga_id, what) VALUES (?, ?)", (saga_id, what))


def _participants() -> list[Participant]:
    customers, inventory = Participant("customers"), Participant("inventory")
    payment, shipping = Participant("payment"), Participant("shipping")
    notification = Participant("notification")

    @customers.action("verify_customer")
    async def verify_customer(call: ActionCall) -> Mapping[str, Any]:
        customer = call.data["customer"]
        rows = await _sql(call.db, "SELECT blocked FROM customers WHERE customer = ?", (customer,))
        if not rows or rows[0][0]:
            raise Refused("customer blocked")
        await _sql(
            call.db, "UPDATE customers SET verified = verified + 1 WHERE customer = ?", (customer,)
        )
        return {}

    @inventory.action("reserve_items")
    async def reserve_items(call: ActionCall) -> Mapping[str, Any]:
        sku, quantity = call.data["sku"], call.data["quantity"]
        # The stock check and the decrement are one statement: nothing is written on refusal.
        taken = await _sql(
            call.db,
            "UPDATE inventory SET stock = stock - ?, reserved = reserved + ? "
            "WHERE sku = ? AND stock >= ? RETURNING sku",
            (quantity, quantity, sku, quantity),
        )
        if not taken:
            raise Refused("out of stock")
        (row,) = await _sql(
            call.db,
            "INSERT INTO reservations (saga_id, sku, quantity) VALUES (?, ?, ?) RETURNING id",
            (call.saga_id, sku, quantity),
        )
        return {"reservation_id": f"res-{row[0]}"}

    @inventory.compensation("release_reservation")
    async def release_reservation(call: CompensationCall) -> None:
        handed_out = call.action_result.get("reservation_id")
        number = _number(handed_out, "res")
        released = await _sql(
            call.db,
            "UPDATE reservations SET released = 1 WHERE id = ? AND released = 0 "
            "RETURNING sku, quantity",
            (number,),
        )
        if not released:
            await _undo_missed(call.db, call.saga_id, f"release of {handed_out}")
            return
        sku, quantity = released[0]
        await _sql(
            call.db,
            "UPDATE inventory SET stock = stock + ?, reserved = reserved - ? WHERE sku = ?",
            (quantity, quantity, sku),
        )

    @payment.action("process_payment")
    async def process_payment(call: ActionCall) -> Mapping[str, Any]:
        customer, amount = call.data["customer"], call.data["amount"]
        taken = await _sql(
            call.db,
            "UPDATE accounts SET balance = balance - ? WHERE customer = ? AND balance >= ? "
            "RETURNING customer",
            (amount, customer, amount),
        )
        if not taken:
            raise Refused("insufficient funds")
        (row,) = await _sql(
            call.db,
            "INSERT INTO payments (saga_id, customer, amount) VALUES (?, ?, ?) RETURNING id",
            (call.saga_id, customer, amount),
        )
        return {"payment_id": f"pay-{row[0]}"}

    @payment.compensation("refund_payment")
    async def refund_payment(call: CompensationCall) -> None:
        handed_out = call.action_result.get("payment_id")
        refunded = await _sql(
            call.db,
            "UPDATE payments SET refunded = 1 WHERE id = ? AND refunded = 0 "
            "RETURNING customer, amount",
            (_number(handed_out, "pay"),),
        )
        if not refunded:
            await _undo_missed(call.db, call.saga_id, f"refund of {handed_out}")
            return
        customer, amount = refunded[0]
        await _sql(
            call.db,
            "UPDATE accounts SET balance = balance + ? WHERE customer = ?",
            (amount, customer),
        )

    @shipping.action("create_shipment")
    async def create_shipment(call: ActionCall) -> Mapping[str, Any]:
        # What the shipment is created against comes from the earlier steps' results.
        reservation = call.results.get("reserve_inventory", {}).get("reservation_id")
        payment_id = call.results.get("process_payment", {}).get("payment_id")
        if reservation is None or payment_id is None:
            raise Refused("nothing to ship: no reservation or no payment given")
        (row,) = await _sql(
            call.db,
            "INSERT INTO shipments (saga_id, reservation_id, payment_id) VALUES (?, ?, ?) "
            "RETURNING id",
            (call.saga_id, reservation, payment_id),
        )
        return {"shipment_id": f"shp-{row[0]}"}

    @shipping.compensation("cancel_shipment")
    async def cancel_shipment(call: CompensationCall) -> None:
        handed_out = call.action_result.get("shipment_id")
        cancelled = await _sql(
            call.db,
            "UPDATE shipments SET cancelled = 1 WHERE id = ? AND cancelled = 0 RETURNING id",
            (_number(handed_out, "shp"),),
        )
        if not cancelled:
            await _undo_missed(call.db, call.saga_id, f"cancellation of {handed_out}")

    @notification.action("send_order_confirmation")
    async def send_order_confirmation(call: ActionCall) -> Mapping[str, Any]:
        shipment = call.results.get("create_shipment", {}).get("shipment_id")
        if shipment is None:
            raise Refused("no shipment to confirm")
        text = f"order {call.saga_id} ships as {shipment}"
        await _sql(
            call.db,
            "INSERT INTO notices (saga_id, kind, text) VALUES (?, 'confirmation', ?)",
            (call.saga_id, text),
        )
        return {"confirmation": text}

    @notification.compensation("send_cancellation_notice")
    async def send_cancellation_notice(call: CompensationCall) -> None:
        await _sql(
            call.db,
            "INSERT INTO notices (saga_id, kind, text) VALUES (?, 'cancellation', ?)",
            (call.saga_id, f"order {call.saga_id} is cancelled"),
        )

    return [customers, inventory, payment, shipping, notification]


_Rows = Mapping[str, Sequence[tuple[Any, ...]]]
_QUERIES: dict[str, str] = {
    "inventory": "SELECT sku, stock, reserved FROM inventory ORDER BY sku",
    "accounts": "SELECT customer, balance FROM accounts ORDER BY customer",
    "reservations": "SELECT id, saga_id, sku, quantity, released FROM reservations ORDER BY id",
    "payments": "SELECT id, saga_id, customer, amount, refunded FROM payments ORDER BY id",
    "shipments": "SELECT id, saga_id, reservation_id, payment_id, cancelled FROM shipments "
    "ORDER BY id",
    "notices": "SELECT saga_id, kind FROM notices ORDER BY id",
    _UNDO_MISSES: f"SELECT saga_id, what FROM {_UNDO_MISSES} ORDER BY id",
}


def invariants(rows: _Rows, sagas: Mapping[str, FinishedSaga]) -> list[str]:
    """What must hold once every order has ended, over the tables' rows (pure: the same function
    judges rows read from any store). ``sagas`` maps every order started to where it ended."""
    problems: list[str] = []
    by_saga: dict[str, dict[str, list[tuple[Any, ...]]]] = defaultdict(lambda: defaultdict(list))
    for table in ("reservations", "payments", "shipments", "notices"):
        for row in rows[table]:
            saga_id = row[0] if table == "notices" else row[1]
            by_saga[saga_id][row[1] if table == "notices" else table].append(row)
    for saga_id in sorted(set(by_saga) - set(sagas)):
        problems.append(f"effects for {saga_id}, an order never started: {dict(by_saga[saga_id])}")
    for saga_id, saga in sagas.items():
        problems += _order(saga_id, saga, by_saga.get(saga_id, {}))
    for saga_id, what in rows[_UNDO_MISSES]:
        problems.append(f"order {saga_id}: {what}, which was not held (undone twice?)")
    held: dict[int, int] = defaultdict(int)
    for _, _, sku, quantity, released in rows["reservations"]:
        if not released:
            held[sku] += quantity
    for sku, stock, reserved in rows["inventory"]:
        if stock + reserved != INITIAL_STOCK:
            problems.append(f"stock of SKU {sku} does not add up to its initial count")
        if reserved != held[sku]:
            problems.append(
                f"SKU {sku}: {reserved} units out of the warehouse, reservations hold {held[sku]}"
            )
    captured: dict[int, int] = defaultdict(int)
    for _, _, customer, amount, refunded in rows["payments"]:
        if not refunded:
            captured[customer] += amount
    for customer, balance in rows["accounts"]:
        if balance + captured[customer] != initial_balance(customer):
            problems.append(
                f"money of customer {customer} not conserved: balance {balance} and "
                f"{captured[customer]} captured, {initial_balance(customer)} at start"
            )
    reservation_of = {f"res-{row[0]}": row[1] for row in rows["reservations"]}
    payment_of = {f"pay-{row[0]}": row[1] for row in rows["payments"]}
    for shipment_id, saga_id, reservation, payment_id, _ in rows["shipments"]:
        for what, handed_out, owner in (
            ("reservation", reservation, reservation_of.get(reservation)),
            ("payment", payment_id, payment_of.get(payment_id)),
        ):
            if owner != saga_id:
                whose = "no one's" if owner is None else f"order {owner}'s"
                problems.append(
                    f"shipment shp-{shipment_id} of order {saga_id} references {what} "
                    f"{handed_out}, which is {whose}"
                )
    return problems


def _order(
    saga_id: str, saga: FinishedSaga, effects: Mapping[str, list[tuple[Any, ...]]]
) -> list[str]:
    """One order's rows against where it ended: each effect landed at most once; a completed
    order holds exactly its own, a failed one holds nothing."""
    reservations, payments = effects.get("reservations", []), effects.get("payments", [])
    shipments = effects.get("shipments", [])
    confirmations = len(effects.get("confirmation", []))
    cancellations = len(effects.get("cancellation", []))
    problems = [
        f"order {saga_id} ({saga.state}): {len(found)} {what}, at most one may exist"
        for what, found in (
            ("reservations", reservations),
            ("payments", payments),
            ("shipments", shipments),
            ("confirmations", effects.get("confirmation", [])),
            ("cancellation notices", effects.get("cancellation", [])),
        )
        if len(found) > 1
    ]
    active = (
        [r for r in reservations if not r[4]],
        [p for p in payments if not p[4]],
        [s for s in shipments if not s[4]],
    )
    if saga.state == "completed":
        data = saga.data
        if [(r[2], r[3]) for r in active[0]] != [(data["sku"], data["quantity"])]:
            problems.append(
                f"completed order {saga_id} does not hold its reservation: {reservations}"
            )
        if [(p[2], p[3]) for p in active[1]] != [(data["customer"], data["amount"])]:
            problems.append(f"completed order {saga_id} does not hold its payment: {payments}")
        if len(active[2]) != 1:
            problems.append(f"completed order {saga_id} has {len(active[2])} active shipments")
        if (confirmations, cancellations) != (1, 0):
            problems.append(
                f"completed order {saga_id}: {confirmations} confirmations and "
                f"{cancellations} cancellation notices"
            )
    elif saga.state == "failed":
        for what, held in zip(("reservation", "payment", "shipment"), active, strict=True):
            if held:
                problems.append(f"failed order {saga_id} still holds its {what}: {held}")
        if confirmations != cancellations:
            problems.append(
                f"failed order {saga_id}: {confirmations} confirmations but "
                f"{cancellations} cancellation notices"
            )
    return problems


class OrderRuntime:
    """The order fulfillment scenario for ``sagafsm run`` (see the module docstring)."""

    name = "order_fulfillment"

    def __init__(self, definition: SagaDefinition) -> None:
        self.definition = with_timeout(definition, RUNTIME_TIMEOUT)

    def schema(self, dialect: str) -> tuple[str, ...]:
        return schema(dialect)

    def participants(self) -> list[Participant]:
        return _participants()

    def saga_data(self, seed: int, count: int) -> list[dict[str, Any]]:
        """As :meth:`sagafsm.sim.run._Run.new_saga` draws them: one rng per saga from the seed's
        ``fates`` stream, four fate draws per step first, then the order."""
        fates = stream(seed, "fates")
        draws = 4 * len(self.definition.steps)
        orders = []
        for _ in range(count):
            rng = random.Random(fates.getrandbits(64))
            for _ in range(draws):
                rng.random()
            orders.append(make_order(rng))
        return orders

    async def check(self, db: ParticipantTx, sagas: Mapping[str, FinishedSaga]) -> list[str]:
        rows = {table: await db.execute(sql) for table, sql in _QUERIES.items()}
        return invariants(rows, sagas)
