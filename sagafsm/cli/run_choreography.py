"""``sagafsm run --style choreography``: a scenario's choreography for real, a process per
participant (:mod:`sagafsm.runtime.choreography_supervisor`), judged from the store.

``--kill-every`` SIGKILLs a participant drawn by the seed that often; ``SAGAFSM_CRASH_AT`` with a
participant's crash point arms the first life of every participant's process. Options that only
an orchestrator has (its mutants, its crash points) are refused in one line, exit status 2.
"""

from __future__ import annotations

import argparse
import json
import sys

from ..errors import InvalidConfig

__all__ = ["run_choreography", "format_choreography_report"]


def run_choreography(args: argparse.Namespace, crash_spec: str | None) -> int:
    from ..runtime.choreography_run import choreography_for
    from ..runtime.choreography_supervisor import ChoreographyPlan, supervise_choreography
    from ..runtime.crashpoints import CHOREOGRAPHY_CRASH_POINTS, ENVIRONMENT_VARIABLE
    from ..runtime.scenario import load_runtime_scenario
    from .run import _progress

    if args.workers != 1:  # (the default): each participant is one process already
        raise InvalidConfig(
            f"--workers {args.workers}: a choreography has no orchestrator to run as workers"
        )
    crashes: dict[str, tuple[str, ...]] = {}
    if crash_spec:
        if crash_spec.partition(":")[0] not in CHOREOGRAPHY_CRASH_POINTS:
            raise InvalidConfig(
                f"{ENVIRONMENT_VARIABLE}={crash_spec!r}: a choreography has no orchestrator; "
                f"its participants' crash points are {', '.join(CHOREOGRAPHY_CRASH_POINTS)}"
            )
        scenario = load_runtime_scenario(args.scenario, timeout=args.timeout)
        participants = choreography_for(scenario).participants
        crashes = {name: (crash_spec,) for name in participants}
    plan = ChoreographyPlan(
        scenario=args.scenario,
        store=args.store,
        sagas=args.sagas,
        seed=args.seed,
        concurrency=args.concurrency,
        timeout=args.timeout,
        mutant=args.mutant,
        crashes=crashes,
        kill_every=args.kill_every,
    )
    progress, stop = _progress(not args.json, sys.stderr.isatty())
    try:
        result = supervise_choreography(plan, progress)
    finally:
        stop()
    if args.json:
        print(json.dumps(result.to_json(), indent=2))
    else:
        print(format_choreography_report(result))
    return 0 if result.ok else 1


def format_choreography_report(result: object) -> str:
    """The readable report of a choreographed real run
    (:class:`~sagafsm.runtime.choreography_supervisor.ChoreographyRunResult`)."""
    from ..sim.report import verdict_lines

    data = result.to_json()  # type: ignore[attr-defined]
    plan = result.plan  # type: ignore[attr-defined]
    verdict = result.verdict  # type: ignore[attr-defined]
    outcomes = ", ".join(f"{state} {n}" for state, n in data["outcomes"].items())
    kills = ", ".join(f"{name} {n}" for name, n in data["kills"].items()) or "none"
    lines = [
        f"sagafsm run {plan.scenario} --style choreography: {plan.sagas} sagas, seed {plan.seed}, "
        f"store {plan.store}" + (f", mutant {plan.mutant}" if plan.mutant else ""),
        "",
        f"outcomes            {outcomes}",
        f"throughput          {data['sagas_per_s']:.1f} sagas per s",
        f"messages            {data['messages_per_saga']:.1f} events sent per saga",
        f"kills               {kills}",
        f"wall time           {data['wall_seconds']:.2f} s ({data['events']:,} trace records)",
        "",
    ]
    lines += verdict_lines(data["stopped"], verdict.violations, verdict.violation_counts)
    return "\n".join(lines)
