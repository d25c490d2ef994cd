"""A configuration read against its scenario: checked, and turned into what the run uses."""

from __future__ import annotations

from typing import Any

import attrs

from ..definition import SagaDefinition
from ..errors import InvalidConfig
from .config import SimulationConfig
from .scenario import Scenario

__all__ = ["validate_against", "effective_definition", "metrics_window"]


def validate_against(scenario: Scenario, config: SimulationConfig) -> None:
    wanted = config.scenario
    if wanted is not None and wanted != scenario.name and not wanted.endswith(".py"):
        raise InvalidConfig(
            f"the configuration is for scenario {config.scenario!r}, not {scenario.name!r}"
        )
    steps = set(scenario.definition.step_names)
    for fault in config.faults.targeted:
        if fault.step is not None and fault.step not in steps:
            raise InvalidConfig(
                f"targeted fault names step {fault.step!r}, which scenario {scenario.name!r} "
                f"does not have (its steps: {', '.join(scenario.definition.step_names)})"
            )
    known = {step.participant for step in scenario.definition.steps}
    named = set(config.participants) | set(config.links)
    named |= {w.participant for w in config.faults.partitions}
    named |= {w.participant for w in config.faults.participant_crashes}
    unknown = sorted(named - known)
    if unknown:
        raise InvalidConfig(
            f"scenario {scenario.name!r} has no participant {unknown[0]!r} "
            f"(its participants: {', '.join(sorted(known))})"
        )


def effective_definition(scenario: Scenario, config: SimulationConfig) -> SagaDefinition:
    """The scenario's definition, with ``config.step_timeout`` and ``config.retry_attempts``
    applied to every step."""
    definition = scenario.definition
    changes: dict[str, Any] = {}
    if config.step_timeout is not None:
        changes["timeout"] = config.step_timeout
    steps = []
    for step in definition.steps:
        retry = step.retry
        if config.retry_attempts is not None:
            retry = attrs.evolve(retry, max_attempts=config.retry_attempts)
        steps.append(attrs.evolve(step, retry=retry, **changes))
    return attrs.evolve(definition, steps=tuple(steps))


def metrics_window(config: SimulationConfig) -> float:
    """The time-series window: ``config.metrics_window``, or about a hundredth of the expected
    run for open load (1, 2 or 5 times a power of ten), or one second."""
    if config.metrics_window is not None:
        return config.metrics_window
    if config.load.kind != "open":
        return 1.0
    target = config.sagas / config.load.arrival_rate / 100
    for exponent in range(-3, 7):
        for mantissa in (1, 2, 5):
            if mantissa * 10.0**exponent >= target:
                return mantissa * 10.0**exponent
    return 1e6
