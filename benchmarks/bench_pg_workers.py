"""Several orchestrator workers on PostgreSQL, for bench_runtime_pg.py ``--workers 1,2,4``.

Each of N processes runs a :class:`WorkerRuntime` and a ParticipantHost on the PostgreSQL
transport (both shared by every process: any worker moves any saga, any host serves any
command), and starts its share of the sagas with its share of the clients. The parent times
from the moment every process is ready to the moment every saga finished. Per run: completed
sagas per second, the workers' commits per saga, the participants' transactions per saga, and
the time from a batch's commit to its commands' publication (p50, p99). The baseline replays
the same number of transactions, the same number of rows of the same size each, from N
connections at once (threads; psycopg releases the GIL while it waits on the server).
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
import statistics
import sys
import threading
import time
from typing import Any

from bench_runtime import ORDER, participants

from sagafsm.runtime import ParticipantHost, WallClock
from sagafsm.runtime.postgres_shared import SharedPostgresStore
from sagafsm.runtime.postgres_store import PostgresStore
from sagafsm.runtime.postgres_transport import PostgresTransport
from sagafsm.runtime.postgres_workers import WorkerRuntime


class TimedWorker(WorkerRuntime):
    """Notes how long each batch's commands took from its commit to their publication."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.latencies: list[float] = []
        self._committed_at: float | None = None

    async def _commit(self, commits: Any) -> Any:
        rows = await super()._commit(commits)
        self._committed_at = time.perf_counter() if rows else None
        return rows

    async def _publish(self, rows: Any, loose: Any, envelopes: Any = None) -> None:
        began, self._committed_at = self._committed_at, None
        await super()._publish(rows, loose, envelopes)
        if began is not None and rows:
            self.latencies.append(time.perf_counter() - began)


async def _worker(
    url: str, k: int, n: int, sagas: int, clients: int, host_here: bool, *events: Any
) -> dict[str, Any]:
    go, end, ready = events
    store, participant_store = SharedPostgresStore(url), PostgresStore(url)
    transport, clock = PostgresTransport(url, lease=30.0, pool_size=3), WallClock()
    async with TimedWorker(store, transport, [ORDER], clock=clock) as runtime:
        if host_here:
            await participant_store.open()
            host = ParticipantHost(participants(), transport, participant_store, clock)
            hosting = asyncio.create_task(host.run())
        states: dict[str, int] = {}
        numbers = iter(range(k, sagas, n))

        async def client() -> None:
            for i in numbers:
                saga_id = await runtime.start(ORDER, {"amount": i % 100})
                status = await runtime.wait(saga_id)
                states[status.state] = states.get(status.state, 0) + 1

        ready.put(k)
        await asyncio.get_running_loop().run_in_executor(None, go.wait)
        cpu = time.process_time()
        await asyncio.gather(*(client() for _ in range(clients)))
        cpu = time.process_time() - cpu
        ready.put(("done", k))
        # Serving the others' sagas until all are done: a worker that left would strand the
        # replies it had claimed for their lease.
        await asyncio.get_running_loop().run_in_executor(None, end.wait)
        transactions = 0
        if host_here:
            transactions = host.statistics().transactions
            await host.close()
            await hosting
            await participant_store.close()
    await transport.close()
    return {
        "states": states,
        "commits": runtime.commits,
        "participant_transactions": transactions,
        "latencies": runtime.latencies,
        "cpu_seconds": cpu,
        "conflicts": runtime.conflicts,
    }


async def _participants(url: str, go: Any, end: Any, ready: Any) -> dict[str, Any]:
    """The participants in a process of their own (as ``sagafsm run`` hosts them)."""
    store, clock = PostgresStore(url), WallClock()
    async with store, PostgresTransport(url, lease=30.0, pool_size=3) as transport:
        host = ParticipantHost(participants(), transport, store, clock)
        hosting = asyncio.create_task(host.run())
        ready.put("participants")
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, go.wait)
        cpu = time.process_time()
        await loop.run_in_executor(None, end.wait)
        cpu = time.process_time() - cpu
        await host.close()
        await hosting
    return {"participant_transactions": host.statistics().transactions, "cpu_seconds": cpu}


def _process(url: str, k: int, n: int, sagas: int, clients: int, *queues: Any) -> None:
    host_here, go, end, ready, out = queues
    if k < 0:
        out.put(asyncio.run(_participants(url, go, end, ready)))
        return
    work = _worker(url, k, n, sagas, clients, host_here, go, end, ready)
    profile = os.environ.get("BENCH_PROFILE")  # a directory: each worker's cProfile stats
    if profile:
        import cProfile

        profiler = cProfile.Profile()
        result = profiler.runcall(asyncio.run, work)
        profiler.dump_stats(f"{profile}/worker-{n}-{k}.prof")
        out.put(result)
        return
    out.put(asyncio.run(work))


def _server_processes(url: str) -> int | None:
    """The postmaster's pid, if the server runs on this machine (its CPU is measured)."""
    import psycopg

    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT pg_backend_pid()").fetchone()
    try:
        with open(f"/proc/{row[0]}/stat") as stat:
            return int(stat.read().rpartition(")")[2].split()[1])
    except (OSError, TypeError, IndexError, ValueError):
        return None


def server_cpu(postmaster: int | None) -> float:
    """CPU seconds (user and system) of the server's processes alive now: the postmaster and
    its children (each backend, the WAL writer, the checkpointer...)."""
    if postmaster is None:
        return 0.0
    tick, total = os.sysconf("SC_CLK_TCK"), 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                fields = stat.read().rpartition(")")[2].split()
        except OSError:
            continue
        if int(entry) == postmaster or int(fields[1]) == postmaster:
            total += int(fields[11]) + int(fields[12])
    return total / tick


def run_workers(
    url: str, n: int, sagas: int, concurrency: int, apart: bool = False
) -> dict[str, Any]:
    """``apart``: the participants run in one process of their own, not one host in each
    worker process."""
    asyncio.run(SharedPostgresStore(url).open())  # the schema, before N processes race to it
    postmaster = _server_processes(url)
    context = multiprocessing.get_context("spawn")
    go, end, ready, out = context.Event(), context.Event(), context.Queue(), context.Queue()
    clients = max(1, concurrency // n)
    queues = (not apart, go, end, ready, out)
    processes = [
        context.Process(target=_process, args=(url, k, n, sagas, clients, *queues))
        for k in ([-1] if apart else []) + list(range(n))
    ]
    for process in processes:
        process.start()
    for _ in processes:
        ready.get()
    server = server_cpu(postmaster)
    go.set()
    began = time.perf_counter()
    for _ in range(n):
        ready.get()
    elapsed = time.perf_counter() - began
    server = server_cpu(postmaster) - server
    end.set()
    found = [out.get() for _ in processes]
    results = [r for r in found if "states" in r]
    apart_cpu = sum(r["cpu_seconds"] for r in found if "states" not in r)
    apart_transactions = sum(r["participant_transactions"] for r in found if "states" not in r)
    for process in processes:
        process.join()
    states: dict[str, int] = {}
    for result in results:
        for state, count in result["states"].items():
            states[state] = states.get(state, 0) + count
    latencies = sorted(x for result in results for x in result["latencies"])
    import psycopg

    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT SUM(json_array_length(records::json)) FROM sagafsm_trace"
        ).fetchone()
    return {
        "records": int(row[0]) if row and row[0] is not None else 0,
        "seconds": elapsed,
        "states": states,
        "orchestrator_commits": sum(r["commits"] for r in results),
        "cpu_seconds": sum(r["cpu_seconds"] for r in results),
        "participants_cpu_seconds": apart_cpu,
        "server_cpu_seconds": server,
        "conflicts": sum(r["conflicts"] for r in results),
        "participant_transactions": apart_transactions
        + sum(r["participant_transactions"] for r in results),
        "claim_p50_ms": 1000 * latencies[len(latencies) // 2] if latencies else None,
        "claim_p99_ms": 1000 * latencies[int(len(latencies) * 0.99)] if latencies else None,
    }


def baseline_parallel(url: str, n: int, transactions: int, rows: float, payload: int) -> float:
    """``transactions`` bare commits of ``rows`` JSON rows each, from ``n`` connections."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE t (id bigint GENERATED ALWAYS AS IDENTITY, body text)")
    body = json.dumps({"x": "y" * payload})
    batch = [body] * max(1, round(rows))
    connections = [psycopg.connect(url) for _ in range(n)]

    def commit(conn: Any, count: int) -> None:
        for _ in range(count):
            conn.execute("INSERT INTO t (body) SELECT unnest(%s::text[])", (batch,))
            conn.commit()

    threads = [
        threading.Thread(target=commit, args=(conn, transactions // n)) for conn in connections
    ]
    began = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - began
    for conn in connections:
        conn.close()
    return elapsed * transactions / (n * (transactions // n))


def measure_workers(args: Any, server_url: str, counts: list[int]) -> list[dict[str, Any]]:
    from bench_runtime_pg import fresh_database, summary

    found = []
    for n in counts:
        runs, bases = [], []
        for repeat in range(args.repeats):
            url = fresh_database(server_url, f"bench_w{n}_{repeat}", args.synchronous_commit)
            run = run_workers(url, n, args.sagas, args.concurrency, args.participants == "apart")
            transactions = run["orchestrator_commits"] + run["participant_transactions"]
            base_url = fresh_database(server_url, f"bench_b{n}_{repeat}", args.synchronous_commit)
            rows = run["records"] / transactions  # as bench_runtime_pg.py's baseline counts them
            bases.append(baseline_parallel(base_url, n, transactions, rows, 120))
            runs.append(run)
            print(f"{n} workers, repeat {repeat + 1}: {args.sagas / run['seconds']:.0f} sagas/s",
                  file=sys.stderr)  # fmt: skip
        found.append(
            {
                **summary(args, runs, bases, workers=n),
                "worker_cpu_ms_per_saga": statistics.median(
                    1000 * r["cpu_seconds"] / args.sagas for r in runs
                ),
                "participants": args.participants,
                "participants_cpu_ms_per_saga": statistics.median(
                    1000 * r["participants_cpu_seconds"] / args.sagas for r in runs
                ),
                "server_cpu_ms_per_saga": statistics.median(
                    1000 * r["server_cpu_seconds"] / args.sagas for r in runs
                ),
                "deadlocks_retried": sum(r["conflicts"] for r in runs),
                "claim_p50_ms": statistics.median(r["claim_p50_ms"] or 0 for r in runs),
                "claim_p99_ms": statistics.median(r["claim_p99_ms"] or 0 for r in runs),
            }
        )
    return found
