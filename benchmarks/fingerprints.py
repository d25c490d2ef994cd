"""Fingerprints of a fixed set of runs, to show that a speed change changed nothing else.

    python benchmarks/fingerprints.py OUT.json            # write the fingerprints
    python benchmarks/fingerprints.py OUT.json --against BEFORE.json

Each of the fixed configurations (both built-in scenarios, both styles, several seeds, loss,
duplicates, reorders, hangs, compensation failures, orchestrator crashes, store latency,
partitions, saturated participants, a closed load, and every mutant under the plan that exposes
it) is run once; its fingerprint is the whole result as JSON (outcomes, reasons, every violation
kept with its history, violation counts, digest, messages, faults, metrics, coverage) without the
wall time. ``--against`` compares with an earlier file and names every configuration whose
fingerprint differs, and whether only the digest differs (an encoding change) or more.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from sagafsm.sim import load_scenario, simulate  # noqa: E402
from sagafsm.sim.config import merge  # noqa: E402
from sagafsm.sim.mutants import MUTANTS  # noqa: E402
from sagafsm.sim.selfcheck import NO_FAULTS  # noqa: E402

_PLANS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "no-faults": NO_FAULTS,
    "loss": merge(NO_FAULTS, {"faults": {"loss": 0.05}, "participant": {"failure_rate": 0.05}}),
    "duplicates-reorders": {"faults": {"duplicate": 0.05, "reorder": 0.05}},
    "hangs": {"participant": {"hang_rate": 0.05, "compensation_failure_rate": 0.1}},
    "crashes": {"faults": {"orchestrator_crash_rate": 0.5}},
    "store-latency": {"store_latency": 0.002, "faults": {"orchestrator_crash_rate": 0.2}},
    "partition": {
        "faults": {
            "partitions": [{"participant": "payment", "start": 1.0, "end": 3.0}],
            "participant_crashes": [{"participant": "{second}", "start": 2.0, "end": 2.5}],
        }
    },
    "saturated": {"participant": {"capacity": 1, "service_time": "exp:0.02"}},
    "closed": {"load": {"kind": "closed", "concurrency": 40}, "retry_attempts": 1},
    "heavy-loss": {
        "faults": {"loss": 0.2},
        "participant": {"failure_rate": 0.2, "compensation_failure_rate": 0.3},
    },
}
_SAGAS = 400


def configurations() -> list[tuple[str, str, dict[str, Any], str | None]]:
    """(label, scenario, plan, mutant) for every fixed run."""
    runs: list[tuple[str, str, dict[str, Any], str | None]] = []
    for scenario in ("order_fulfillment", "travel_booking"):
        for plan_name, plan in _PLANS.items():
            seeds = (1, 7) if plan_name in ("defaults", "loss", "crashes") else (3,)
            for seed in seeds:
                second = load_scenario(scenario).definition.steps[1].participant
                text = json.dumps(plan).replace("{second}", second)
                data = merge(json.loads(text), {"sagas": _SAGAS, "seed": seed})
                runs.append((f"{scenario}/{plan_name}/seed{seed}", scenario, data, None))
                if plan_name in ("defaults", "duplicates-reorders", "loss"):
                    data = merge(data, {"style": "choreography"})
                    runs.append((f"{scenario}/{plan_name}/seed{seed}/choreo", scenario, data, None))
        for name, mutant in MUTANTS.items():
            if mutant.refusal(load_scenario(scenario).definition) is not None:
                continue
            data = merge(merge(NO_FAULTS, mutant.plan_for(scenario)), {})
            runs.append((f"{scenario}/mutant/{name}", scenario, data, name))
    return runs


def fingerprint(scenario_name: str, data: dict[str, Any], mutant: str | None) -> dict[str, Any]:
    scenario = load_scenario(scenario_name)
    config = scenario.config(data)
    result = simulate(scenario, config, mutant=MUTANTS[mutant] if mutant else None)
    found = result.to_json()
    found.pop("wall_seconds")
    found["all_violations"] = [v.to_json() for v in result.violations]
    return json.loads(json.dumps(found, sort_keys=True, default=repr))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out")
    parser.add_argument("--against")
    args = parser.parse_args()
    prints = {}
    for label, scenario, data, mutant in configurations():
        prints[label] = fingerprint(scenario, data, mutant)
    Path(args.out).write_text(json.dumps(prints, indent=1, sort_keys=True))
    print(f"{len(prints)} configurations fingerprinted into {args.out}")
    if not args.against:
        return 0
    before = json.loads(Path(args.against).read_text())
    differ = 0
    for label in sorted(set(before) | set(prints)):
        old, new = before.get(label), prints.get(label)
        if old == new:
            continue
        differ += 1
        if old is None or new is None:
            print(f"{label}: only in {'the new' if old is None else 'the old'} set")
            continue
        keys = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
        print(f"{label}: differs in {', '.join(keys)}")
    print(f"{differ} of {len(prints)} differ" if differ else f"all {len(prints)} identical")
    return 1 if differ else 0


if __name__ == "__main__":
    raise SystemExit(main())
