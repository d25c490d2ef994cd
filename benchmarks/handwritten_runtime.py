"""The baseline of ``bench_runtime.py``: the same order saga on the same kind of store, written by
hand as a careful asyncio developer would write it without sagafsm.

    python benchmarks/handwritten_runtime.py [--sagas 2000] [--concurrency 200]

What it keeps, because the runtime's guarantees need it and a hand-written service that wants
them must pay for them too:

- **the outbox rule**: each event is applied in memory (plain ``if`` chains over a step index and
  a phase), then its saga row (the state as JSON), its outbox rows and its timer row commit in
  one SQLite transaction; only after that commit are the commands published, and their rows are
  marked sent in a second transaction;
- **the same group commit**: a loop takes what is queued (up to 256 events) and commits it as one
  transaction; the participants' side takes what is ready and handles it in one transaction;
- **an inbox**: a participant looks every key up before it runs a handler, records the answer in
  the same transaction, and leaves a tombstone for a compensation that comes before its action;
- **durable timers**: each step's timeout is a row and an in-memory due time, re-armed or
  cancelled with each move (nothing fires them: no step comes near its 30 s here);
- **the same participants** (the handlers of ``bench_runtime.participants``), clients and
  concurrency, and a SQLite file in WAL with ``synchronous=NORMAL``, reached through one
  connection on a worker thread (the event loop never blocks on the disk).

What it leaves out, which is what sagafsm adds on top: the ``transitions`` lifecycles and their
checks, attrs values and their validation, snapshots that restore any saga of any definition,
the trace (the ledger the checkers judge a run by: ~28 records per saga), crash points, retries
by policy, operators' requests, recovery, status queries. It is a benchmark, not a product: no
restart, no timer loop, no retry of a step.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from sagafsm.runtime import Refused  # the participants' handlers are bench_runtime's

__all__ = ["run_handwritten", "Step"]

Handler = Callable[[Any], Awaitable[Any]]
Step = tuple[str, str, str, str | None]
"""(step, participant, action, compensation or None)."""

TIMEOUT = 30.0
BATCH = 256
IN_HAND = 16

_SCHEMA = """
CREATE TABLE IF NOT EXISTS sagas (id TEXT PRIMARY KEY, state TEXT NOT NULL, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS outbox (id INTEGER PRIMARY KEY, saga TEXT NOT NULL,
                                   message TEXT NOT NULL, sent INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS timers (saga TEXT PRIMARY KEY, due REAL NOT NULL);
CREATE TABLE IF NOT EXISTS inbox (participant TEXT NOT NULL, key TEXT NOT NULL,
                                  kind TEXT NOT NULL, result TEXT,
                                  PRIMARY KEY (participant, key));
"""


class _Saga:
    __slots__ = ("compensating", "data", "done", "results", "saga_id", "state", "step")

    def __init__(self, saga_id: str, data: dict[str, Any], done: asyncio.Future[str]) -> None:
        self.saga_id = saga_id
        self.data = data
        self.step = 0
        self.compensating = False
        self.state = "running"
        self.results: dict[str, Any] = {}
        self.done = done

    def body(self) -> str:
        return json.dumps(
            {"data": self.data, "step": self.step, "compensating": self.compensating,
             "state": self.state, "results": self.results},
            separators=(",", ":"),
        )  # fmt: skip


class _Store:
    """One connection on one worker thread; ``lock`` keeps a participant batch's two hops (read
    the inbox, then write it and commit) from interleaving with the orchestrator's."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.executor = ThreadPoolExecutor(1)
        self.conn: sqlite3.Connection | None = None
        self.transactions = 0
        self.lock = asyncio.Lock()

    def _open(self) -> None:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.executescript(_SCHEMA)
        self.conn = conn

    async def hop(self, function: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self.executor, function, *args)

    async def open(self) -> None:
        await self.hop(self._open)

    async def close(self) -> None:
        assert self.conn is not None
        await self.hop(self.conn.close)
        self.executor.shutdown()

    def commit(
        self,
        inserts: list[tuple[str, str, str]],
        updates: list[tuple[str, str, str]],
        outbox: list[tuple[str, str]],
        armed: list[tuple[str, float]],
        cancelled: list[tuple[str]],
    ) -> list[int]:
        conn = self.conn
        assert conn is not None
        self.transactions += 1
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.executemany("INSERT INTO sagas (id, state, body) VALUES (?, ?, ?)", inserts)
            conn.executemany("UPDATE sagas SET state = ?, body = ? WHERE id = ?", updates)
            ids = [conn.execute("INSERT INTO outbox (saga, message) VALUES (?, ?)", row).lastrowid
                   for row in outbox]  # fmt: skip
            conn.executemany("INSERT OR REPLACE INTO timers (saga, due) VALUES (?, ?)", armed)
            conn.executemany("DELETE FROM timers WHERE saga = ?", cancelled)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return [i for i in ids if i is not None]

    def mark_sent(self, ids: list[int]) -> None:
        conn = self.conn
        assert conn is not None
        self.transactions += 1
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany("UPDATE outbox SET sent = 1 WHERE id = ?", [(i,) for i in ids])
        conn.execute("COMMIT")

    def inbox(self, keys: list[tuple[str, str]]) -> list[tuple[str, str | None] | None]:
        conn = self.conn
        assert conn is not None
        self.transactions += 1
        conn.execute("BEGIN IMMEDIATE")  # held until participant_commit: read, decide, write
        sql = "SELECT kind, result FROM inbox WHERE participant = ? AND key = ?"
        return [conn.execute(sql, key).fetchone() for key in keys]

    def participant_commit(self, rows: list[tuple[str, str, str, str | None]]) -> None:
        conn = self.conn
        assert conn is not None
        conn.executemany("INSERT OR REPLACE INTO inbox VALUES (?, ?, ?, ?)", rows)
        conn.execute("COMMIT")


class HandwrittenOutbox:
    """The orchestrator, the relay and the participants of one process (module docstring)."""

    def __init__(self, store: _Store, steps: Sequence[Step], handlers: dict[str, Handler]) -> None:
        self.store = store
        self.steps = steps
        self.handlers = handlers
        self.events: asyncio.Queue[tuple[Any, ...]] = asyncio.Queue()
        self.commands: deque[dict[str, Any]] = deque()
        self.command_ready = asyncio.Event()
        self.sagas: dict[str, _Saga] = {}
        self.timers: dict[str, float] = {}
        self.message_id = 0

    async def start(self, saga_id: str, data: dict[str, Any]) -> asyncio.Future[str]:
        """Queue the start; returns once it is committed, with the future of its final state."""
        accepted: asyncio.Future[asyncio.Future[str]] = asyncio.get_running_loop().create_future()
        self.events.put_nowait(("start", saga_id, data, accepted))
        return await accepted

    # -- the orchestrator ------------------------------------------------------------------

    def _command(self, saga: _Saga, out: list[dict[str, Any]]) -> None:
        step, participant, action, compensation = self.steps[saga.step]
        self.message_id += 1
        if saga.compensating:
            out.append({"id": self.message_id, "saga": saga.saga_id, "step": step,
                        "to": participant, "kind": "compensate", "op": compensation,
                        "key": f"{saga.saga_id}:{step}:c", "action_key": f"{saga.saga_id}:{step}",
                        "data": saga.data, "action_result": saga.results.get(step)})  # fmt: skip
        else:
            out.append({"id": self.message_id, "saga": saga.saga_id, "step": step,
                        "to": participant, "kind": "execute", "op": action,
                        "key": f"{saga.saga_id}:{step}", "data": saga.data,
                        "results": dict(saga.results)})  # fmt: skip

    def _compensate_from(self, saga: _Saga, out: list[dict[str, Any]]) -> bool:
        """Move to the nearest earlier step with a compensation; False if there is none."""
        while saga.step > 0:
            saga.step -= 1
            if self.steps[saga.step][3] is not None:
                saga.compensating = True
                self._command(saga, out)
                return True
        return False

    def _apply(self, saga: _Saga, reply: dict[str, Any] | None, out: list[dict[str, Any]]) -> None:
        if reply is None:  # the start
            self._command(saga, out)
            return
        if reply["step"] != self.steps[saga.step][0] or reply["compensating"] != saga.compensating:
            return  # late or duplicate: ignored
        if saga.compensating:
            if not self._compensate_from(saga, out):
                saga.state = "failed"
        elif reply["ok"]:
            saga.results[reply["step"]] = reply["result"]
            saga.step += 1
            if saga.step == len(self.steps):
                saga.state = "completed"
            else:
                self._command(saga, out)
        elif not self._compensate_from(saga, out):
            saga.state = "failed"

    async def orchestrate(self) -> None:
        queue, store = self.events, self.store
        now = time.time
        while True:
            batch = [await queue.get()]
            while len(batch) < BATCH and not queue.empty():
                batch.append(queue.get_nowait())
            if batch[0][0] == "stop":
                return
            inserts, updates, outbox, armed, cancelled = [], [], [], [], []
            messages: list[dict[str, Any]] = []
            accepted, finished = [], []
            for event in batch:
                if event[0] == "start":
                    _, saga_id, data, future = event
                    saga = _Saga(saga_id, data, asyncio.get_running_loop().create_future())
                    self.sagas[saga_id] = saga
                    accepted.append((future, saga.done))
                    reply = None
                else:
                    reply = event[1]
                    found = self.sagas.get(reply["saga"])
                    if found is None:
                        continue
                    saga = found
                out: list[dict[str, Any]] = []
                self._apply(saga, reply, out)
                row = (saga.state, saga.body(), saga.saga_id)
                if reply is None:
                    inserts.append((saga.saga_id, saga.state, row[1]))
                else:
                    updates.append(row)
                outbox += [(saga.saga_id, json.dumps(m, separators=(",", ":"))) for m in out]
                messages += out
                if saga.state == "running":
                    armed.append((saga.saga_id, now() + TIMEOUT))
                else:
                    cancelled.append((saga.saga_id,))
                    finished.append(saga)
            async with store.lock:
                ids = await store.hop(store.commit, inserts, updates, outbox, armed, cancelled)
            for saga_id, due in armed:
                self.timers[saga_id] = due
            for (saga_id,) in cancelled:
                self.timers.pop(saga_id, None)
            for saga in finished:
                del self.sagas[saga.saga_id]
                saga.done.set_result(saga.state)
            for future, done in accepted:
                future.set_result(done)
            self.commands.extend(messages)  # publish, only after the commit
            self.command_ready.set()
            if ids:
                async with store.lock:
                    await store.hop(store.mark_sent, ids)

    # -- the participants ------------------------------------------------------------------

    async def serve(self) -> None:
        """Take what is ready (up to IN_HAND per participant), handle it in one transaction."""
        store = self.store
        while True:
            await self.command_ready.wait()
            self.command_ready.clear()
            if not self.commands:
                continue
            taken: dict[str, int] = {}
            batch, rest = [], deque()
            while self.commands:
                command = self.commands.popleft()
                if command.get("stop"):
                    return
                if taken.get(command["to"], 0) < IN_HAND:
                    taken[command["to"]] = taken.get(command["to"], 0) + 1
                    batch.append(command)
                else:
                    rest.append(command)
            self.commands.extendleft(reversed(rest))
            if rest:
                self.command_ready.set()
            keys = []
            for command in batch:
                keys.append((command["to"], command["key"]))
                if command["kind"] == "compensate":
                    keys.append((command["to"], command["action_key"]))
            async with store.lock:
                found = dict(zip(keys, await store.hop(store.inbox, keys), strict=True))
                rows, replies = [], []
                for command in batch:
                    replies.append(await self._handle(command, found, rows))
                await store.hop(store.participant_commit, rows)
            for reply in replies:
                self.events.put_nowait(("reply", reply))

    async def _handle(
        self,
        command: dict[str, Any],
        found: dict[tuple[str, str], tuple[str, str | None] | None],
        rows: list[tuple[str, str, str, str | None]],
    ) -> dict[str, Any]:
        to, key = command["to"], command["key"]
        reply = {"saga": command["saga"], "step": command["step"], "ok": True, "result": None,
                 "compensating": command["kind"] == "compensate"}  # fmt: skip
        entry = found.get((to, key))
        if command["kind"] == "execute":
            if entry is not None:  # a repeat: the recorded answer; a tombstone: blocked
                reply["ok"] = entry[0] == "ok"
                reply["result"] = None if entry[1] is None else json.loads(entry[1])
                return reply
            call = SimpleNamespace(saga_id=command["saga"], data=command["data"],
                                   results=command["results"])  # fmt: skip
            try:
                result = await self.handlers[command["op"]](call)
            except Refused:
                reply["ok"] = False
            else:
                reply["result"] = result
            text = json.dumps(reply["result"], separators=(",", ":"))
            rows.append((to, key, "ok" if reply["ok"] else "failed", text))
            found[to, key] = (rows[-1][2], text)
            return reply
        if entry is None:
            if found.get((to, command["action_key"])) is None:  # the action never came
                rows.append((to, command["action_key"], "tombstone", None))
            else:
                await self.handlers[command["op"]](SimpleNamespace(saga_id=command["saga"]))
            rows.append((to, key, "compensated", None))
            found[to, key] = ("compensated", None)
        return reply


async def run_handwritten(
    path: Path,
    steps: Sequence[Step],
    handlers: dict[str, Handler],
    sagas: int,
    concurrency: int,
    data: Callable[[int], dict[str, Any]],
) -> dict[str, Any]:
    """``sagas`` sagas from ``concurrency`` clients, each starting one and waiting for its end."""
    store = _Store(path)
    await store.open()
    runtime = HandwrittenOutbox(store, steps, handlers)
    tasks = [asyncio.create_task(runtime.orchestrate()), asyncio.create_task(runtime.serve())]
    states: dict[str, int] = {}
    numbers = iter(range(sagas))

    async def client() -> None:
        for i in numbers:
            done = await runtime.start(f"order-{i}", data(i))
            state = await done
            states[state] = states.get(state, 0) + 1

    began, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(client() for _ in range(concurrency)))
    elapsed, cpu = time.perf_counter() - began, time.process_time() - cpu
    runtime.events.put_nowait(("stop",))
    runtime.commands.append({"stop": True})
    runtime.command_ready.set()
    await asyncio.gather(*tasks)
    await store.close()
    return {
        "seconds": elapsed,
        "cpu_seconds": cpu,
        "states": states,
        "transactions": store.transactions,
    }


def main() -> None:
    import argparse
    import sys
    import tempfile

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_runtime import handwritten_workload

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sagas", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=200)
    args = parser.parse_args()
    steps, handlers, data = handwritten_workload()
    with tempfile.TemporaryDirectory() as scratch:
        found = asyncio.run(
            run_handwritten(
                Path(scratch, "h.db"), steps, handlers, args.sagas, args.concurrency, data
            )
        )
    print(f"{args.sagas / found['seconds']:.0f} sagas/s", found["states"], found["transactions"])


if __name__ == "__main__":
    main()
