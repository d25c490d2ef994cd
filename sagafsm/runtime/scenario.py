"""A scenario run for real: its saga, participants over SQL tables, and the domain's verdict.

The simulator's scenarios (:mod:`sagafsm.sim.scenario`) keep their domain in Python objects that
live as long as one simulated run. ``sagafsm run`` needs the same domain as tables that outlive a
killed process, and handlers whose writes commit with their inbox row (``call.db.execute``, in
the store's SQL dialect: :mod:`sagafsm.runtime.dialects`). A scenario module offers that through
a ``runtime()`` function returning a :class:`RuntimeScenario`; the worker processes, the
supervisor and the crash tests find it by the scenario's name, so each process rebuilds the very
same participants and data from the name and the seed alone.

Saga ids are ``f"{name}-{i}"`` for ``i`` from 1: a restarted orchestrator recognises what it (or a
killed predecessor) already started, and the domain check knows which order each row belongs to.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any, Protocol, runtime_checkable

import attrs

from .._user_code import call_factory, import_file
from ..definition import SagaDefinition
from ..errors import InvalidArgument, InvalidConfig
from .participant import Participant, check_handlers
from .store import ParticipantStore, ParticipantTx

__all__ = [
    "RuntimeScenario",
    "FinishedSaga",
    "load_runtime_scenario",
    "runtime_scenarios",
    "saga_ids",
    "install_schema",
    "apply_schema",
    "with_timeout",
    "SETUP_PARTICIPANT",
]

SETUP_PARTICIPANT = "sagafsm-setup"
"""The participant name whose transaction creates and reads the domain tables (a name no
definition uses, so it never shares an inbox with a real participant)."""


@attrs.frozen
class FinishedSaga:
    """What the domain check needs of one saga: where it ended and the input it was given."""

    state: str
    """A final state's value, or ``"unfinished"``."""
    data: Mapping[str, Any]


@runtime_checkable
class RuntimeScenario(Protocol):
    """What a scenario module's ``runtime()`` returns."""

    @property
    def name(self) -> str: ...

    @property
    def definition(self) -> SagaDefinition:
        """The saga, with the step timeouts a real run uses (see :func:`with_timeout`)."""

    def schema(self, dialect: str) -> Sequence[str]:
        """SQL statements in ``dialect`` (``"sqlite"`` or ``"postgresql"``, see
        :mod:`sagafsm.runtime.dialects`) that create and seed the participants' tables; each one
        idempotent (``CREATE TABLE IF NOT EXISTS``, ``ON CONFLICT DO NOTHING``), so every
        process may run them. Raises :class:`~sagafsm.errors.InvalidConfig` for a dialect the
        scenario has no tables for (the run is then refused before it starts)."""

    def participants(self) -> list[Participant]:
        """Fresh participants with async handlers that write through ``call.db.execute``."""

    def saga_data(self, seed: int, count: int) -> list[dict[str, Any]]:
        """The input data of sagas 1..count, drawn from ``seed`` exactly as the simulator draws
        them (saga ``i`` here is the simulator's ``s{i-1}``)."""

    async def check(self, db: ParticipantTx, sagas: Mapping[str, FinishedSaga]) -> list[str]:
        """Read the tables through ``db`` and return one sentence per broken invariant."""


def saga_ids(name: str, count: int) -> list[str]:
    return [f"{name}-{i}" for i in range(1, count + 1)]


def with_timeout(definition: SagaDefinition, timeout: float) -> SagaDefinition:
    """``definition`` with every step's reply timeout set to ``timeout`` seconds (compensations
    too, unless a step sets its own). A simulated 0.25 s models a network round trip; a real
    participant restart takes longer than that, and a timeout shorter than the restart turns
    every kill into retries and escalations that say nothing about correctness."""
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0:
        raise InvalidArgument(f"the step timeout must be a positive number, got {timeout!r}")
    steps = tuple(attrs.evolve(step, timeout=float(timeout)) for step in definition.steps)
    return attrs.evolve(definition, steps=steps)


async def install_schema(store: ParticipantStore, scenario: RuntimeScenario) -> None:
    """Create and seed the scenario's tables in one transaction (the store must be open: its
    own tables must exist first, or a later open would take the file for someone else's)."""
    async with store.transaction(SETUP_PARTICIPANT) as tx:
        await apply_schema(tx, scenario)


async def apply_schema(tx: ParticipantTx, scenario: RuntimeScenario) -> None:
    """The scenario's schema statements in the store's dialect, in ``tx`` (a transaction that
    also does more)."""
    for statement in scenario.schema(tx.dialect):
        await tx.execute(statement)


def _module(name: str) -> ModuleType:
    if name.endswith(".py") or "/" in name:
        return import_file(name, f"_sagafsm_runtime_{Path(name).stem}")
    if not name.isidentifier() or name.startswith("_"):
        raise InvalidConfig(_unknown(name))
    try:
        return importlib.import_module(f"simulations.{name}")
    except ModuleNotFoundError as error:
        if error.name not in (f"simulations.{name}", "simulations"):
            raise
        raise InvalidConfig(_unknown(name)) from None


def _unknown(name: str) -> str:
    known = ", ".join(runtime_scenarios()) or "none"
    return (
        f"unknown scenario {name!r} (runnable for real: {known}; or give the path of a .py file "
        "with a runtime() function)"
    )


def load_runtime_scenario(name: str, *, timeout: float | None = None) -> RuntimeScenario:
    """The scenario ``name`` (built in, or the path of a ``.py`` file) as its ``runtime()``
    function builds it, its participants checked against its definition; with ``timeout``, its
    steps' timeouts replaced. Raises :class:`~sagafsm.errors.InvalidConfig` for an unknown
    scenario, one without ``runtime()``, or a handler missing for a declared action."""
    module = _module(name)
    factory = getattr(module, "runtime", None)
    if not callable(factory):
        raise InvalidConfig(
            f"scenario {name!r} cannot run for real: its module has no runtime() function"
        )
    scenario = call_factory(factory, "runtime", name)
    if not isinstance(scenario, RuntimeScenario):
        raise InvalidConfig(f"runtime() of scenario {name!r} did not return a RuntimeScenario")
    check_handlers([scenario.definition], scenario.participants())
    if timeout is not None:
        return _Retimed(scenario, with_timeout(scenario.definition, timeout))
    return scenario


class _Retimed:
    """A scenario whose definition has other timeouts; everything else is the original's."""

    def __init__(self, scenario: RuntimeScenario, definition: SagaDefinition) -> None:
        self._scenario = scenario
        self._definition = definition

    @property
    def name(self) -> str:
        return self._scenario.name

    @property
    def definition(self) -> SagaDefinition:
        return self._definition

    def schema(self, dialect: str) -> Sequence[str]:
        return self._scenario.schema(dialect)

    def participants(self) -> list[Participant]:
        return self._scenario.participants()

    def saga_data(self, seed: int, count: int) -> list[dict[str, Any]]:
        return self._scenario.saga_data(seed, count)

    async def check(self, db: ParticipantTx, sagas: Mapping[str, FinishedSaga]) -> list[str]:
        return await self._scenario.check(db, sagas)


def runtime_scenarios() -> list[str]:
    """The built-in scenarios whose module has a ``runtime()`` function."""
    from ..sim.scenario import builtin_scenarios

    found = []
    for name in builtin_scenarios():
        try:
            module = importlib.import_module(f"simulations.{name}")
        except ImportError:
            continue
        if callable(getattr(module, "runtime", None)):
            found.append(name)
    return found
