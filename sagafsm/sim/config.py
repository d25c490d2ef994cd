"""Simulation configuration and fault plans: frozen values, loadable from TOML, validated.

Every range error is an :class:`~sagafsm.InvalidConfig` whose message names the offending key
(``faults.loss: must be a probability in [0, 1], got 1.5``). Units are seconds of simulated time,
probabilities in [0, 1], rates per simulated second.
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import attrs
import cattrs
from cattrs.v import transform_error

from ..errors import InvalidConfig
from .distributions import Distribution, parse_distribution

__all__ = [
    "ParticipantConfig",
    "Window",
    "ParticipantWindow",
    "TargetedFault",
    "FaultPlan",
    "LoadConfig",
    "SimulationConfig",
    "config_from_dict",
    "config_to_dict",
    "load_config_file",
    "read_config_file",
    "merge",
    "apply_overrides",
    "MAX_IN_FLIGHT",
    "check_open_load",
]

MAX_IN_FLIGHT = 100_000
"""Sagas a burst or closed load may hold in flight at once. A saga in flight costs about 12 KB
(its instance, ledgers, timers, messages), so this is about 1.2 GB; a larger burst would grow
until memory runs out, and is refused before the run instead."""


def _probability(instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not (0.0 <= value <= 1.0):
        raise InvalidConfig(f"{attribute.name}: must be a probability in [0, 1], got {value!r}")


def _non_negative(instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not (math.isfinite(value) and value >= 0):
        raise InvalidConfig(f"{attribute.name}: must be a finite number >= 0, got {value!r}")


def _positive(instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not (math.isfinite(value) and value > 0):
        raise InvalidConfig(f"{attribute.name}: must be a finite number > 0, got {value!r}")


def _at_least_one(instance: object, attribute: attrs.Attribute[int], value: int) -> None:
    if value < 1:
        raise InvalidConfig(f"{attribute.name}: must be at least 1, got {value!r}")


def _const(text: str) -> Distribution:
    return parse_distribution(text)


@attrs.frozen(kw_only=True)
class ParticipantConfig:
    """How one participant service behaves."""

    capacity: int = attrs.field(default=8, validator=_at_least_one)
    """Operations served at once; more wait in its queue."""
    service_time: Distribution = attrs.field(factory=lambda: _const("exp:0.002"))
    failure_rate: float = attrs.field(default=0.0, validator=_probability)
    """Probability that an action fails definitely (no effect), drawn once per saga and step."""
    hang_rate: float = attrs.field(default=0.0, validator=_probability)
    """Probability that the first try of an action gets no reply at all."""
    hang_lands: float = attrs.field(default=0.5, validator=_probability)
    """Probability that a hung action's effect lands all the same."""
    compensation_failure_rate: float = attrs.field(default=0.0, validator=_probability)
    """Probability that one try of a compensation fails (it is retried)."""


@attrs.frozen(kw_only=True)
class Window:
    """A span of simulated time, ``start`` included, ``end`` excluded."""

    start: float = attrs.field(validator=_non_negative)
    end: float = attrs.field(validator=_non_negative)

    def __attrs_post_init__(self) -> None:
        if self.end <= self.start:
            raise InvalidConfig(f"window end ({self.end}) must be after its start ({self.start})")


@attrs.frozen(kw_only=True)
class ParticipantWindow(Window):
    participant: str


@attrs.frozen(kw_only=True)
class TargetedFault:
    """One fault placed by hand (or by the explorer) on one saga.

    Either on a message: ``message`` is the n-th message (1-based) sent for the saga, counting
    commands and replies in the order they are sent; ``fault`` is ``drop``, ``duplicate`` or
    ``delay`` (by ``delay`` extra seconds). Or on a step: ``step`` names it, and ``fault`` is
    ``fail`` (its first execution fails definitely), ``hang`` (no reply, no effect),
    ``hang_lands`` (no reply, but the effect lands) or ``compensation_fail`` (the first try of its
    compensation fails).
    """

    saga: str
    fault: Literal["drop", "duplicate", "delay", "fail", "hang", "hang_lands", "compensation_fail"]
    message: int | None = None
    step: str | None = None
    delay: float = attrs.field(default=1.0, validator=_non_negative)

    def __attrs_post_init__(self) -> None:
        on_message = self.fault in ("drop", "duplicate", "delay")
        if on_message and (self.message is None or self.message < 1 or self.step is not None):
            raise InvalidConfig(f"a {self.fault!r} fault needs message = N >= 1 (and no step)")
        if not on_message and (self.step is None or self.message is not None):
            raise InvalidConfig(f"a {self.fault!r} fault needs step = NAME (and no message)")


@attrs.frozen(kw_only=True)
class FaultPlan:
    """What the simulator breaks, when, and how often."""

    loss: float = attrs.field(default=0.0, validator=_probability)
    """Probability that a message is dropped."""
    duplicate: float = attrs.field(default=0.0, validator=_probability)
    """Probability that a message is delivered twice."""
    reorder: float = attrs.field(default=0.0, validator=_probability)
    """Probability that a message is held back by an extra ``reorder_delay``."""
    reorder_delay: Distribution = attrs.field(factory=lambda: _const("uniform:0:0.1"))
    partitions: tuple[ParticipantWindow, ...] = ()
    """A participant cut off from the network (it keeps working; messages both ways are lost)."""
    participant_crashes: tuple[ParticipantWindow, ...] = ()
    """A participant down: messages lost, operations in service abandoned with no effect."""
    orchestrator_crash_rate: float = attrs.field(default=0.0, validator=_non_negative)
    """Orchestrator crashes per simulated second (a Poisson process)."""
    orchestrator_downtime: Distribution = attrs.field(factory=lambda: _const("const:0.5"))
    orchestrator_crashes: tuple[Window, ...] = ()
    """Crash windows given explicitly, on top of the random ones."""
    targeted: tuple[TargetedFault, ...] = ()
    """Faults placed on given sagas' messages and steps (what ``sagafsm explore`` writes)."""
    until: float | None = None
    """No new random fault after this simulated time (None: faults for the whole run)."""


@attrs.frozen(kw_only=True)
class LoadConfig:
    """How sagas arrive: ``open`` (Poisson at ``arrival_rate`` per second), ``closed``
    (``concurrency`` sagas in flight, a new one as soon as one ends) or ``burst`` (all at time 0).
    """

    kind: Literal["open", "closed", "burst"] = "open"
    arrival_rate: float = attrs.field(default=50.0, validator=_positive)
    concurrency: int = attrs.field(default=100, validator=_at_least_one)


@attrs.frozen(kw_only=True)
class SimulationConfig:
    """Everything a run depends on besides the scenario. A run is a pure function of
    (scenario, this configuration); the seed is part of it."""

    scenario: str | None = None
    """The scenario this configuration was written for (``sagafsm simulate`` may omit it then)."""
    mutant: str | None = None
    """Run this deliberately broken variant (saved counterexamples name theirs)."""
    style: Literal["orchestration", "choreography"] = "orchestration"
    """Run the saga orchestrated, or choreographed (the scenario's declared or derived
    choreography, :mod:`sagafsm.sim.choreography_run`)."""
    sagas: int = attrs.field(default=1000, validator=_at_least_one)
    seed: int = 0
    load: LoadConfig = LoadConfig()
    latency: Distribution = attrs.field(factory=lambda: _const("exp:0.005"))
    """One-way network latency of every link..."""
    links: Mapping[str, Distribution] = attrs.field(factory=dict)
    """...except the links to these participants."""
    participant: ParticipantConfig = ParticipantConfig()
    """Defaults for every participant..."""
    participants: Mapping[str, ParticipantConfig] = attrs.field(factory=dict)
    """...and per-participant settings (keys not given fall back to ``participant``)."""
    step_timeout: float | None = None
    """Overrides every step's timeout in the scenario, in seconds."""
    faults: FaultPlan = FaultPlan()
    metrics_window: float | None = None
    """Width of the time-series windows (throughput, occupancy), in seconds; None: automatic."""
    retry_attempts: int | None = None
    """Overrides every step's ``retry.max_attempts`` (tries of an action before giving up)."""
    store_latency: float = attrs.field(default=0.0, validator=_non_negative)
    """How long the orchestrator's store write takes; a crash in between loses the transaction."""
    termination_bound: float = attrs.field(default=300.0, validator=_positive)
    """Simulated seconds after the last start request by which every saga must have ended."""
    retention: float = attrs.field(default=60.0, validator=_positive)
    """How long participants keep a finished saga's idempotency records (simulated seconds)."""

    def __attrs_post_init__(self) -> None:
        window = self.metrics_window
        if window is not None and not (math.isfinite(window) and window > 0):
            raise InvalidConfig(f"metrics_window: must be a finite number > 0, got {window!r}")
        if self.retry_attempts is not None and self.retry_attempts < 1:
            raise InvalidConfig(f"retry_attempts: must be at least 1, got {self.retry_attempts!r}")
        timeout = self.step_timeout
        if timeout is not None and not (math.isfinite(timeout) and timeout > 0):
            raise InvalidConfig(f"step_timeout: must be a finite number > 0, got {timeout!r}")
        self._check_in_flight()

    def _check_in_flight(self) -> None:
        kind = self.load.kind
        if kind == "open":  # bounded by the arrival rate and the sagas' durations, not up front
            return
        in_flight = self.sagas if kind == "burst" else min(self.sagas, self.load.concurrency)
        if in_flight > MAX_IN_FLIGHT:
            where = "sagas: a burst load" if kind == "burst" else "load: a closed load"
            raise InvalidConfig(
                f"{where} of {in_flight:,} sagas in flight at once would not fit in memory (at "
                f'most {MAX_IN_FLIGHT:,}): use load.kind = "closed" with a smaller '
                'load.concurrency, or "open"'
            )

    def participant_config(self, name: str) -> ParticipantConfig:
        return self.participants.get(name, self.participant)

    def link_latency(self, participant: str) -> Distribution:
        return self.links.get(participant, self.latency)


def check_open_load(config: SimulationConfig, first_participant: str) -> None:
    """Refuse an open load whose arrivals alone would hold more than :data:`MAX_IN_FLIGHT` sagas
    in flight. By Little's law the sagas in flight are the arrival rate times the sagas'
    duration; no saga is shorter than one round trip to the first step's participant (a saga whose
    first step fails ends there), so that product is a lower bound: what it refuses would not fit.
    """
    if config.load.kind != "open":
        return
    shortest = (
        2 * config.link_latency(first_participant).mean
        + config.participant_config(first_participant).service_time.mean
    )
    rate = config.load.arrival_rate
    if min(config.sagas, rate * shortest) > MAX_IN_FLIGHT:
        raise InvalidConfig(
            f"config.load.arrival_rate: {rate:g} sagas per s, each taking at least {shortest:g} s "
            f"(a round trip to {first_participant!r}), would hold more than {MAX_IN_FLIGHT:,} "
            "sagas in flight at once, more than fits in memory: lower it, or use a closed load"
        )


def _converter() -> cattrs.Converter:
    converter = cattrs.Converter(forbid_extra_keys=True)

    def number(value: Any, _: type) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise InvalidConfig(f"expected a number, got {value!r}")
        return float(value)

    def integer(value: Any, _: type) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise InvalidConfig(f"expected an integer, got {value!r}")
        return value

    def text(value: Any, _: type) -> str:
        if not isinstance(value, str):
            raise InvalidConfig(f"expected a string, got {value!r}")
        return value

    converter.register_structure_hook(float, number)
    converter.register_structure_hook(int, integer)
    converter.register_structure_hook(str, text)
    converter.register_structure_hook(Distribution, lambda v, _: parse_distribution(v))
    converter.register_unstructure_hook(Distribution, str)
    return converter


_CONVERTER = _converter()


def _message(error: BaseException, _: type | None) -> str:
    if isinstance(error, cattrs.ForbiddenExtraKeysError):
        return f"unknown key {', '.join(map(repr, sorted(error.extra_fields)))}"
    if isinstance(error, InvalidConfig):
        return str(error)
    if isinstance(error, KeyError):
        return f"missing required key {error.args[0]!r}"
    return f"invalid value ({error})"


def config_from_dict(data: Mapping[str, Any]) -> SimulationConfig:
    """Build and validate a configuration from plain data (as read from TOML).

    Per-participant tables only list what differs from ``[participant]``.
    """
    data = dict(data)
    defaults = data.get("participant", {})
    if isinstance(data.get("participants"), Mapping) and isinstance(defaults, Mapping):
        data["participants"] = {
            name: {**defaults, **overrides} if isinstance(overrides, Mapping) else overrides
            for name, overrides in data["participants"].items()
        }
    try:
        return _CONVERTER.structure(data, SimulationConfig)
    except (cattrs.BaseValidationError, InvalidConfig) as error:
        lines = transform_error(error, path="config", format_exception=_message)
        raise InvalidConfig(_first_line(lines)) from None


def config_to_dict(config: SimulationConfig) -> dict[str, Any]:
    """The plain data (TOML layout) of a configuration: ``config_from_dict`` gives it back."""
    data: dict[str, Any] = _CONVERTER.unstructure(config)
    return data


def _first_line(lines: list[str]) -> str:
    # cattrs says "<message> @ config.faults.loss"; users read "config.faults.loss: <message>".
    message, _, path = lines[0].rpartition(" @ ")
    key, colon, rest = message.partition(": ")
    if colon and key.isidentifier():  # our validators start with the field name
        path, message = f"{path}.{key}", rest
    extra = len(lines) - 1
    more = f" (and {extra} more problem{'s' if extra > 1 else ''})" if extra else ""
    return f"{path}: {message}{more}"


def read_config_file(path: str | Path) -> dict[str, Any]:
    """The plain data of a TOML configuration file (validated later, with the rest)."""
    try:
        with open(path, "rb") as handle:
            return tomllib.load(handle)
    except OSError as error:
        raise InvalidConfig(f"cannot read config file {str(path)!r}: {error.strerror}") from None
    except UnicodeDecodeError as error:  # TOML is UTF-8; a binary or Latin-1 file is not TOML
        raise InvalidConfig(
            f"config file {str(path)!r} is not UTF-8 text (byte {error.object[error.start]:#04x} "
            f"at offset {error.start}): save it as UTF-8 TOML"
        ) from None
    except tomllib.TOMLDecodeError as error:
        raise InvalidConfig(f"config file {str(path)!r}: not valid TOML: {error}") from None


def load_config_file(
    path: str | Path,
    overrides: Mapping[str, Any] | None = None,
    defaults: Mapping[str, Any] | None = None,
) -> SimulationConfig:
    """Read a TOML file over ``defaults``, apply ``overrides`` (dotted keys), validate."""
    data = merge(defaults or {}, read_config_file(path))
    return config_from_dict(apply_overrides(data, overrides or {}))


def merge(base: Mapping[str, Any], top: Mapping[str, Any]) -> dict[str, Any]:
    """``top`` over ``base``, table by table (nested mappings merge, other values replace)."""
    result = _deep_copy(base)
    for key, value in top.items():
        if isinstance(value, Mapping) and isinstance(result.get(key), dict):
            result[key] = merge(result[key], value)
        else:
            result[key] = _deep_copy(value) if isinstance(value, Mapping) else value
    return result


def apply_overrides(data: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Set dotted keys (``faults.loss``) in a copy of nested plain data."""
    result: dict[str, Any] = _deep_copy(data)
    for dotted, value in overrides.items():
        *parents, leaf = dotted.split(".")
        node = result
        for key in parents:
            child = node.get(key)
            if not isinstance(child, dict):
                child = node[key] = {}
            node = child
        node[leaf] = value
    return result


def _deep_copy(data: Mapping[str, Any]) -> dict[str, Any]:
    return {k: _deep_copy(v) if isinstance(v, Mapping) else v for k, v in data.items()}
