"""The runtime on SQLite: completed sagas per second, commits per saga, and our time against the
same number of bare SQLite transactions of the same size, run in the same process.

    python benchmarks/bench_runtime.py [--sagas 2000] [--repeats 3] [--concurrency 200] [--json]
    python benchmarks/bench_runtime.py --recovery 10000


The workload is a 4-step order saga (reserve, charge, ship, notify) with in-process participants
(InProcessTransport, one ParticipantHost) on one SqliteStore file (WAL, synchronous=NORMAL).
Two baselines run in turn with it, in the same process. The bare one replays, with stdlib sqlite3
on one connection and no Python around it, exactly the transactions the run committed (as
counted by the run: the orchestrator's batches, its relay's marking of rows sent, the
participants' transactions), each inserting the same number of rows of the same JSON size; its
ratio is our wall time over the baseline's: what the runtime costs beyond the database itself.
The other is a hand-written asyncio outbox loop (``handwritten_runtime.py``: the same saga,
handlers, clients, store settings and group commit, the same outcomes, without sagafsm); its
ratios, of wall and of CPU time, say what the runtime costs beyond code one would write by hand.

``peak_rss_mb`` is the process's peak memory: run ``--sagas 100000 --repeats 1`` against a small
run to see it stay flat (only running sagas are held; the trace and finished sagas are in the
file).

``--recovery N`` measures a restart instead: N sagas are started with no participant to answer
them and the runtime is closed with their commands still unsent (a crash between commit and
publish); a new runtime opens the file and the time to its first re-published command, and to
all N, is reported.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from handwritten_runtime import run_handwritten

from sagafsm import RetryPolicy, SagaBuilder
from sagafsm.runtime import (
    InProcessTransport,
    Participant,
    ParticipantHost,
    Refused,
    Runtime,
    SqliteStore,
    WallClock,
)

ORDER = (
    SagaBuilder("order", timeout=30.0)
    .step("reserve", participant="inventory", action="reserve", compensation="release")
    .step("charge", participant="payment", action="charge", compensation="refund")
    .pivot("ship", participant="shipping", action="ship")
    .retriable("notify", participant="mail", action="send", retry=RetryPolicy(max_attempts=3))
    .build()
)


STEPS = (
    ("reserve", "inventory", "reserve", "release"),
    ("charge", "payment", "charge", "refund"),
    ("ship", "shipping", "ship", None),
    ("notify", "mail", "send", None),
)
"""ORDER's steps, as the hand-written baseline spells them: (step, participant, action,
compensation)."""


def saga_data(i: int) -> dict[str, Any]:
    """The i-th saga's input: payment refuses amounts above 95 (4 sagas in 100 compensate)."""
    return {"amount": i % 100}


def participants() -> list[Participant]:
    inventory, payment = Participant("inventory"), Participant("payment")
    shipping, mail = Participant("shipping"), Participant("mail")

    @inventory.action("reserve")
    async def reserve(call: Any) -> dict[str, Any]:
        return {"reservation_id": f"res-{call.saga_id}"}

    @inventory.compensation("release")
    async def release(call: Any) -> None:
        return None

    @payment.action("charge")
    async def charge(call: Any) -> dict[str, Any]:
        if call.data["amount"] > 95:
            raise Refused("insufficient funds")
        return {"payment_id": f"pay-{call.saga_id}"}

    @payment.compensation("refund")
    async def refund(call: Any) -> None:
        return None

    @shipping.action("ship")
    async def ship(call: Any) -> dict[str, Any]:
        return {"shipment_id": f"shp-{call.saga_id}"}

    @mail.action("send")
    async def send(call: Any) -> dict[str, Any]:
        return {}

    return [inventory, payment, shipping, mail]


def handwritten_workload() -> tuple[Any, dict[str, Any], Any]:
    """The baseline's steps, handlers (the same functions, by operation name) and data."""
    handlers: dict[str, Any] = {}
    for participant in participants():
        handlers.update(participant.actions)
        handlers.update(participant.compensations)
    return STEPS, handlers, saga_data


class _CountingStore(SqliteStore):
    """Counts every write transaction the orchestrator's side makes: its batches' commits, and
    the relay's marking of rows sent (and trace appends), which are transactions too."""

    writes = 0

    async def commit(self, commits: Any, consumed: Any = ()) -> Any:
        self.writes += 1
        return await super().commit(commits, consumed)

    async def mark_sent(self, ids: Any, records: Any = ()) -> None:
        if ids or records:
            self.writes += 1
        await super().mark_sent(ids, records)

    async def append_trace(self, records: Any) -> None:
        if records:
            self.writes += 1
        await super().append_trace(records)


async def run_once(path: Path, sagas: int, concurrency: int, in_hand: int = 16) -> dict[str, Any]:
    store = _CountingStore(path)
    transport, clock = InProcessTransport(), WallClock()
    async with Runtime(store, transport, [ORDER], clock=clock) as runtime:
        host = ParticipantHost(participants(), transport, store, clock, max_in_hand=in_hand)
        hosting = asyncio.create_task(host.run())
        states: dict[str, int] = {}
        numbers = iter(range(sagas))

        async def client() -> None:
            # A fixed number of clients, each with one saga at a time: the driver itself holds
            # nothing per saga started, so the memory measured is the runtime's.
            for i in numbers:
                saga_id = await runtime.start(ORDER, saga_data(i))
                status = await runtime.wait(saga_id)
                states[status.state] = states.get(status.state, 0) + 1

        began, cpu = time.perf_counter(), time.process_time()
        await asyncio.gather(*(client() for _ in range(concurrency)))
        elapsed, cpu = time.perf_counter() - began, time.process_time() - cpu
        stats = host.statistics()
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        await host.close()
        await hosting
    # Counted in SQL, not read back: the process's peak memory stays the runtime's own.
    connection = sqlite3.connect(path)
    ((records,),) = connection.execute(
        "SELECT SUM(json_array_length(records)) FROM sagafsm_trace"
    ).fetchall()
    connection.close()
    return {
        "seconds": elapsed,
        "cpu_seconds": cpu,
        "states": states,
        "orchestrator_commits": runtime.commits,
        "orchestrator_transactions": store.writes,
        "participant_transactions": stats.transactions,
        "records": records,
        "peak_rss_mb": peak,
    }


def baseline(path: Path, transactions: int, rows_per_transaction: float, payload: int) -> float:
    """Bare sqlite3: ``transactions`` commits of ``rows_per_transaction`` JSON rows each."""
    connection = sqlite3.connect(path, isolation_level=None)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=NORMAL")
    connection.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, body TEXT NOT NULL)")
    body = json.dumps({"x": "y" * payload})
    rows = max(1, round(rows_per_transaction))
    began = time.perf_counter()
    for _ in range(transactions):
        connection.execute("BEGIN IMMEDIATE")
        connection.executemany("INSERT INTO t (body) VALUES (?)", [(body,)] * rows)
        connection.execute("COMMIT")
    elapsed = time.perf_counter() - began
    connection.close()
    return elapsed


class _NeverPublishes(Runtime):
    """Commits and stops there, every time: as if the process died after each commit."""

    async def _publish(self, rows: Any, loose: Any, envelopes: Any = None) -> None:
        return None


class _Clocked(InProcessTransport):
    def __init__(self) -> None:
        super().__init__()
        self.first: float | None = None
        self.count = 0

    async def send(self, message: Any) -> None:
        await self.send_many([message])

    async def send_many(self, messages: Any) -> None:
        if self.first is None:
            self.first = time.perf_counter()
        self.count += len(messages)
        await super().send_many(messages)


async def recovery(path: Path, sagas: int) -> dict[str, Any]:
    async with _NeverPublishes(SqliteStore(path), InProcessTransport(), [ORDER]) as first:
        await asyncio.gather(*(first.start(ORDER, {"amount": 1}) for _ in range(sagas)))
    connection = sqlite3.connect(path)
    (unsent,) = connection.execute("SELECT COUNT(*) FROM sagafsm_outbox").fetchone()
    connection.close()
    transport = _Clocked()
    began = time.perf_counter()
    runtime = Runtime(SqliteStore(path), transport, [ORDER])
    await runtime.open()
    opened = time.perf_counter()
    await runtime.close()
    assert transport.first is not None
    return {
        "sagas_in_store": sagas,
        "unsent_rows": unsent,
        "recovered": runtime.recovered,
        "first_republished_s": transport.first - began,
        "all_republished_s": opened - began,
        "republished": transport.count,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sagas", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=200)
    parser.add_argument("--json", action="store_true")
    parser.add_argument(
        "--in-hand", type=int, default=16, help="commands each participant takes per batch"
    )
    parser.add_argument("--recovery", type=int, metavar="N", help="measure a restart with N sagas")
    args = parser.parse_args()
    if args.recovery:
        with tempfile.TemporaryDirectory() as scratch:
            found = asyncio.run(recovery(Path(scratch, "recovery.db"), args.recovery))
        print(json.dumps(found, indent=2))
        return
    steps, handlers, data = handwritten_workload()
    runs, bases, hands = [], [], []
    with tempfile.TemporaryDirectory() as scratch:
        for repeat in range(args.repeats):
            # In turn, in one process: ours, the hand-written loop, the bare transactions.
            run = asyncio.run(
                run_once(
                    Path(scratch, f"run{repeat}.db"), args.sagas, args.concurrency, args.in_hand
                )
            )
            hand = asyncio.run(
                run_handwritten(
                    Path(scratch, f"hand{repeat}.db"),
                    steps,
                    handlers,
                    args.sagas,
                    args.concurrency,
                    data,
                )
            )
            if hand["states"] != run["states"]:
                raise SystemExit(
                    f"the hand-written baseline disagrees: {hand['states']} != {run['states']}"
                )
            transactions = run["orchestrator_transactions"] + run["participant_transactions"]
            rows = run["records"] / transactions
            bases.append(baseline(Path(scratch, f"base{repeat}.db"), transactions, rows, 120))
            runs.append(run)
            hands.append(hand)
            rate, hand_rate = args.sagas / run["seconds"], args.sagas / hand["seconds"]
            print(
                f"repeat {repeat + 1}: {rate:.0f} sagas/s (hand-written {hand_rate:.0f})",
                file=sys.stderr,
            )
    seconds = statistics.median(r["seconds"] for r in runs)
    hand_seconds = statistics.median(h["seconds"] for h in hands)
    cpu = statistics.median(r["cpu_seconds"] for r in runs)
    hand_cpu = statistics.median(h["cpu_seconds"] for h in hands)
    base = statistics.median(bases)
    last = runs[-1]
    result = {
        "sagas": args.sagas,
        "concurrency": args.concurrency,
        "sagas_per_second": args.sagas / seconds,
        "completed_per_second": statistics.median(
            r["states"].get("completed", 0) / r["seconds"] for r in runs
        ),
        "orchestrator_commits_per_saga": last["orchestrator_commits"] / args.sagas,
        "orchestrator_transactions_per_saga": last["orchestrator_transactions"] / args.sagas,
        "participant_transactions_per_saga": last["participant_transactions"] / args.sagas,
        "trace_records_per_saga": last["records"] / args.sagas,
        "cpu_ms_per_saga": cpu * 1000 / args.sagas,
        "peak_rss_mb": max(r["peak_rss_mb"] for r in runs),
        "baseline_seconds": base,
        "ratio": seconds / base,
        "handwritten_sagas_per_second": args.sagas / hand_seconds,
        "handwritten_transactions_per_saga": hands[-1]["transactions"] / args.sagas,
        "handwritten_cpu_ms_per_saga": hand_cpu * 1000 / args.sagas,
        "ratio_to_handwritten": seconds / hand_seconds,
        "cpu_ratio_to_handwritten": cpu / hand_cpu,
        "states": last["states"],
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return
    for key, value in result.items():
        shown = f"{value:,.2f}" if isinstance(value, float) else value
        print(f"{key:<36} {shown}")


if __name__ == "__main__":
    main()
