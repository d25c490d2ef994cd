"""The flags shared by every command that runs a simulation (simulate, replay, explore).

A run's configuration is layered: the scenario's defaults, then ``--config FILE.toml``, then
flags; it is validated as a whole before anything runs or is written.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from ..errors import InvalidConfig

if TYPE_CHECKING:
    from ..sim import Scenario, SimulationConfig
    from ..sim.mutants import Mutant

__all__ = ["add_run_arguments", "resolve_run", "RUN_FLAGS"]

MUTANT_NAMES = (
    "tutorial-orchestrator", "no-dedup-participant", "forward-order-compensation",
    "no-compensation-retry", "no-tombstone", "send-before-save", "compensate-after-pivot",
    "wrong-compensation-result", "tutorial-choreography", "no-dedup-events", "no-deadline",
    "emit-before-compensating", "compensate-read-only",
)  # fmt: skip
"""The names of :data:`sagafsm.sim.mutants.MUTANTS`, for the help text: building the parser (as
every ``sagafsm`` command does) must not import the simulator, which needs its extra."""

# flag -> dotted configuration key
_FLAG_KEYS = {
    "sagas": "sagas",
    "seed": "seed",
    "load": "load.kind",
    "arrival_rate": "load.arrival_rate",
    "concurrency": "load.concurrency",
    "latency": "latency",
    "loss": "faults.loss",
    "duplicate": "faults.duplicate",
    "reorder": "faults.reorder",
    "step_failure_rate": "participant.failure_rate",
    "timeout": "step_timeout",
    "crash_orchestrator": "faults.orchestrator_crash_rate",
    "crash_downtime": "faults.orchestrator_downtime",
    "style": "style",
}


RUN_FLAGS = ("config", *_FLAG_KEYS, "mutant")
"""The attributes the run flags set (a flag left out is None)."""


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "scenario",
        nargs="?",
        help="a built-in scenario (order_fulfillment, travel_booking) or the path of a .py file "
        "with a scenario() function; may be omitted when --config names one",
    )
    parser.add_argument("--config", metavar="FILE.toml", help="configuration file (TOML)")
    parser.add_argument("--sagas", type=int, metavar="N", help="sagas to run")
    parser.add_argument("--seed", type=int, metavar="S", help="the run's seed")
    parser.add_argument(
        "--load",
        choices=("open", "closed", "burst"),
        help="open: Poisson arrivals; closed: N in flight; burst: all at once",
    )
    parser.add_argument(
        "--arrival-rate",
        type=float,
        metavar="PER_S",
        help="open load: sagas started per simulated second",
    )
    parser.add_argument("--concurrency", type=int, metavar="N", help="closed load: sagas in flight")
    parser.add_argument(
        "--latency",
        metavar="DIST",
        help="one-way network latency, e.g. exp:0.005, const:0.01, "
        "uniform:0.005:0.02, lognormal:0.005:0.5 (seconds)",
    )
    parser.add_argument("--loss", type=float, metavar="P", help="message loss probability")
    parser.add_argument(
        "--duplicate", type=float, metavar="P", help="message duplication probability"
    )
    parser.add_argument(
        "--reorder", type=float, metavar="P", help="probability a message is held back (reordered)"
    )
    parser.add_argument(
        "--step-failure-rate",
        type=float,
        metavar="P",
        help="probability an action fails definitely, per saga and step",
    )
    parser.add_argument(
        "--timeout", type=float, metavar="SECONDS", help="every step's reply timeout"
    )
    parser.add_argument(
        "--crash-orchestrator",
        type=float,
        metavar="PER_S",
        help="orchestrator crashes per simulated second (Poisson); "
        "0.1 at the default 50 sagas/s is ~6 crashes in 3,000 sagas",
    )
    parser.add_argument(
        "--crash-downtime",
        metavar="DIST",
        help="how long the orchestrator stays down (default const:0.5)",
    )
    parser.add_argument(
        "--style",
        choices=("orchestration", "choreography"),
        help="run the saga orchestrated (default) or choreographed: the scenario's declared "
        "choreography, or the one derived from its steps (no orchestrator: orchestrator "
        "crashes do not apply)",
    )
    parser.add_argument(
        "--mutant",
        metavar="NAME",
        help="run a deliberately broken variant instead of the correct system: "
        + ", ".join(MUTANT_NAMES),
    )


def resolve_run(args: argparse.Namespace) -> tuple[Scenario, SimulationConfig, Mutant | None]:
    """The scenario, the validated configuration and the mutant the flags ask for."""
    from ..sim import config_from_dict, load_scenario
    from ..sim.config import apply_overrides, check_open_load, merge, read_config_file
    from ..sim.mutants import get_mutant

    file_data: dict[str, Any] = read_config_file(args.config) if args.config else {}
    file_data.pop("sweep", None)  # sweep's own table: the rest of the file is one run's settings
    name = args.scenario or file_data.get("scenario")
    if not isinstance(name, str):
        raise InvalidConfig("no scenario: name one, or give a --config file that names one")
    scenario = load_scenario(name)
    data = merge(scenario.defaults, file_data)
    overrides = {
        key: getattr(args, flag)
        for flag, key in _FLAG_KEYS.items()
        if getattr(args, flag) is not None
    }
    config = config_from_dict(apply_overrides(data, overrides))
    check_open_load(config, scenario.definition.steps[0].participant)
    mutant_name = args.mutant or config.mutant
    mutant = get_mutant(mutant_name) if mutant_name else None
    if mutant is not None:
        mutant.check_applies(scenario.name, scenario.definition)
    return scenario, config, mutant
