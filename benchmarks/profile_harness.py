"""Where the harness's time goes: a cProfile run grouped by component.

    python benchmarks/profile_harness.py [--sagas 10000] [--seed 1] [--json]

Own time (``tottime``) of every profiled function is summed by the component its file belongs to,
so the table adds up to the whole run. Profiling slows everything about equally; read the shares,
not the seconds. ``bench_harness.py`` prints this table when a target is missed.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from workload import run_harness

# (component, substring of the function's file) in match order: the first match wins
_COMPONENTS = (
    ("transitions library (lifecycle moves)", "/transitions/"),
    ("sagafsm engine (sans-IO)", "sagafsm/engine.py"),
    ("sagafsm engine (sans-IO)", "sagafsm/_moves.py"),
    ("sagafsm engine (sans-IO)", "sagafsm/lifecycle.py"),
    ("snapshots and JSON checks (per committed move)", "sagafsm/_snapshot.py"),
    ("snapshots and JSON checks (per committed move)", "sagafsm/_validate.py"),
    ("orchestration core (shared with the runtime)", "sagafsm/orchestration.py"),
    ("orchestration core (shared with the runtime)", "sagafsm/messages.py"),
    ("sagafsm lifecycle adapter", "sagafsm/_machine.py"),
    ("trace records and digest", "sagafsm/sim/trace.py"),
    ("checkers and coverage", "sagafsm/checks.py"),
    ("checkers and coverage", "sagafsm/sim/coverage.py"),
    ("checkers and coverage", "sagafsm/history.py"),
    ("simulated network", "sagafsm/sim/network.py"),
    ("simulated participants", "sagafsm/sim/participant.py"),
    ("simulated orchestrator (store, outbox, dispatch)", "sagafsm/sim/orchestrator.py"),
    ("engine timers on SimPy", "sagafsm/sim/timers.py"),
    ("run loop, metrics, domain", "sagafsm/sim/"),
    ("run loop, metrics, domain", "simulations/"),
    ("SimPy event loop and resources", "/simpy/"),
    ("attrs-generated __init__ (events, commands, envelopes)", "<attrs generated"),
    ("Python stdlib (random, logging, enum, hashlib...)", "/lib/python3"),
)


def profile(sagas: int, seed: int) -> list[dict[str, Any]]:
    profiler = cProfile.Profile()
    profiler.enable()
    run_harness(sagas, seed)
    profiler.disable()
    stats = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    totals: dict[str, float] = {}
    for (filename, _, _), (_, _, own, _, _) in stats.items():
        component = next(
            (name for name, marker in _COMPONENTS if marker in filename), "builtins and other"
        )
        totals[component] = totals.get(component, 0.0) + own
    whole = sum(totals.values())
    return [
        {"component": name, "seconds": seconds, "share": seconds / whole}
        for name, seconds in sorted(totals.items(), key=lambda item: -item[1])
    ]


def print_table(rows: list[dict[str, Any]], sagas: int) -> None:
    print(f"where the time goes (cProfile own time, {sagas:,} sagas; shares, not seconds)")
    for row in rows:
        print(f"  {row['share'] * 100:5.1f}%  {row['component']}")


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sagas", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    rows = profile(args.sagas, args.seed)
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        print_table(rows, args.sagas)
    return rows


if __name__ == "__main__":
    main()
