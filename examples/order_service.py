"""An order service that runs its sagas on sagafsm's runtime, from its own code.

    python examples/order_service.py [--db orders.db] [--orders 20]

The service owns one SQLite file. In it live the saga store (snapshots, outbox, timers, trace),
the participants' inboxes, and the service's own tables: stock and payments. Each participant
writes its tables through ``call.db``, the same transaction as its inbox row, so an effect and
the memory of having applied it commit together: a retried or duplicated command can never
reserve or charge twice, even if the process dies between the two.

Run it twice on the same file: the second run recovers whatever the first left unfinished
(SIGTERM or Ctrl-C stops it gracefully; a kill -9 is recovered just the same), and carries on.
At the end the service checks its own trace with sagafsm's checkers.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from collections import Counter
from pathlib import Path
from typing import Any

from sagafsm import RetryPolicy, SagaBuilder
from sagafsm.checks import check_history
from sagafsm.runtime import (
    ActionCall,
    CompensationCall,
    InProcessTransport,
    Participant,
    ParticipantHost,
    Refused,
    Runtime,
    SqliteStore,
    WallClock,
    check_handlers,
)

ORDER = (
    SagaBuilder("order", timeout=5.0)
    .step("reserve", participant="inventory", action="reserve", compensation="release")
    .pivot("charge", participant="payments", action="charge")  # once paid, the order goes on
    .retriable("confirm", participant="mailer", action="send", retry=RetryPolicy(max_attempts=3))
    .build()
)

SCHEMA = (
    "CREATE TABLE IF NOT EXISTS stock (sku TEXT PRIMARY KEY, units INTEGER NOT NULL)",
    "INSERT OR IGNORE INTO stock VALUES ('book', 15)",
    "CREATE TABLE IF NOT EXISTS charges (id INTEGER PRIMARY KEY AUTOINCREMENT, "
    "saga_id TEXT NOT NULL, amount INTEGER NOT NULL)",
)

inventory = Participant("inventory")
payments = Participant("payments")
mailer = Participant("mailer")


@inventory.action("reserve")
async def reserve(call: ActionCall) -> dict[str, Any]:
    [(units,)] = await call.db.execute("SELECT units FROM stock WHERE sku = ?", ["book"])
    if units < call.data["quantity"]:
        raise Refused("out of stock")  # a definite failure: nothing written, nothing to undo
    await call.db.execute(
        "UPDATE stock SET units = units - ? WHERE sku = ?", [call.data["quantity"], "book"]
    )
    return {"sku": "book", "quantity": call.data["quantity"]}


@inventory.compensation("release")
async def release(call: CompensationCall) -> None:
    # Handed the result this participant gave out: it undoes exactly what it reserved.
    await call.db.execute(
        "UPDATE stock SET units = units + ? WHERE sku = ?",
        [call.action_result["quantity"], call.action_result["sku"]],
    )


@payments.action("charge")
async def charge(call: ActionCall) -> dict[str, Any]:
    amount = 12 * call.results["reserve"]["quantity"]
    if amount > call.data["budget"]:
        raise Refused(f"a charge of {amount} is over the budget of {call.data['budget']}")
    await call.db.execute(
        "INSERT INTO charges (saga_id, amount) VALUES (?, ?)", [call.saga_id, amount]
    )
    [(charge_id,)] = await call.db.execute("SELECT last_insert_rowid()")
    return {"charge_id": charge_id, "amount": amount}


@mailer.action("send")
async def send(call: ActionCall) -> dict[str, Any]:
    return {"to": call.data["customer"]}


async def serve(db: Path, orders: int) -> int:
    participants = [inventory, payments, mailer]
    check_handlers([ORDER], participants)  # a missing handler is refused before anything runs
    store, transport, clock = SqliteStore(db), InProcessTransport(), WallClock()
    async with Runtime(store, transport, [ORDER], clock=clock) as runtime:
        async with store.transaction("setup") as tx:  # the service's tables, beside the inbox
            for statement in SCHEMA:
                await tx.execute(statement)
        # Reply ids are unique across runs and processes: boot * 2**32 + n, a boot of its own.
        host = ParticipantHost(participants, transport, store, clock)
        hosting = asyncio.create_task(host.run())
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        if runtime.recovered:
            print(f"recovered {runtime.recovered} unfinished sagas from {db}")
        # The saga id is the order's own id: asking twice for one order starts one saga.
        wanted = [f"order-{n}" for n in range(1, orders + 1)]
        known = {status.saga_id for status in await store.sagas()}
        for n, saga_id in enumerate(wanted, start=1):
            if saga_id not in known:
                data = {"customer": f"c-{n}", "quantity": 1 + n % 3, "budget": 30}
                await runtime.start(ORDER, data, saga_id=saga_id)
        everything = asyncio.ensure_future(asyncio.gather(*map(runtime.wait, wanted)))
        stopping = asyncio.ensure_future(stop.wait())
        await asyncio.wait([everything, stopping], return_when=asyncio.FIRST_COMPLETED)
        if not everything.done():
            # SIGTERM: leaving the `async with` finishes the batch in flight; what is left
            # unfinished is in the store, and the next run recovers it.
            everything.cancel()
            await asyncio.gather(everything, return_exceptions=True)
            await host.close()
            await hosting
            print("stopped: the next run carries on from", db)
            return 143
        stopping.cancel()
        finished = everything.result()
        async with store.transaction("setup") as tx:
            [(stock_left,)] = await tx.execute("SELECT units FROM stock WHERE sku = 'book'")
        await host.close()
        await hosting
        trace = await store.trace()
    outcomes = Counter(status.state for status in finished)
    print("orders:", dict(sorted(outcomes.items())), f"(stock left: {stock_left})")
    for status in finished[:3]:
        print(f"  {status.saga_id}: {status.state}", status.reason or status.results)
    violations = check_history(trace, ORDER)
    print(f"checked {len(trace)} trace records: {len(violations)} violations")
    return 1 if violations else 0


def main() -> None:
    parser = argparse.ArgumentParser(description="An order service on the sagafsm runtime.")
    parser.add_argument("--db", type=Path, default=Path("orders.db"))
    parser.add_argument("--orders", type=int, default=20)
    args = parser.parse_args()
    raise SystemExit(asyncio.run(serve(args.db, args.orders)))


if __name__ == "__main__":
    main()
