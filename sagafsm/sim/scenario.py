"""What a simulation runs: a saga definition, the domain behind its participants, its invariants.

A scenario is a Python module with a ``scenario()`` function returning a :class:`Scenario`.
Built-in ones live in the ``simulations`` package (``order_fulfillment``, ``travel_booking``); a
user's own is any ``.py`` file with that function, passed by path.
"""

from __future__ import annotations

import importlib
import random
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import attrs

from .._user_code import call_factory, import_file
from ..definition import SagaDefinition
from ..errors import InvalidConfig
from ..lifecycle import SagaState

if TYPE_CHECKING:
    from .config import SimulationConfig

__all__ = ["Declined", "Service", "Domain", "Scenario", "load_scenario"]


class Declined(Exception):
    """Raised by :meth:`Service.apply` for a definite business failure with a reason.

    ``raise Declined("insufficient funds")`` is ``return None`` with the reason said: the action
    had no effect, and the participant's failure reply carries the reason (the engine puts it in
    the failed saga's :attr:`~sagafsm.commands.SagaFinished.reason`).
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Service(Protocol):
    """The business logic of one participant, without any fault or messaging concern.

    The simulator wraps it with idempotency, tombstones, capacity and fault injection; the service
    only changes its domain state. It keeps what it hands out: the simulator records each action's
    result with its idempotency key and gives it back to :meth:`undo`.
    """

    def apply(
        self,
        action: str,
        saga_id: str,
        data: Mapping[str, Any],
        results: Mapping[str, Mapping[str, Any]],
    ) -> Mapping[str, Any] | None:
        """Apply an action; return its result (a JSON-able mapping, may be empty).

        ``data`` is the saga's input, ``results`` the result of each earlier step by step name
        (:attr:`~sagafsm.commands.ExecuteStep.results`). None, or raising :class:`Declined`,
        means a definite business failure, with no effect.
        """

    def undo(
        self, compensation: str, saga_id: str, data: Mapping[str, Any], result: Mapping[str, Any]
    ) -> None:
        """Undo the effect of this saga's action (called only if the action was applied).

        ``result`` is what :meth:`apply` returned for it: the participant's own record, so the
        compensation works even when the orchestrator never got the action's reply.
        """


class Domain(Protocol):
    """All participants' services, and what must hold once every saga has ended."""

    @property
    def services(self) -> Mapping[str, Service]: ...

    def saga_finished(self, saga_id: str, data: Mapping[str, Any], state: SagaState) -> None:
        """Fold a finished saga into whatever the invariants compare against."""

    def invariants(self) -> list[str]:
        """One sentence per broken domain invariant (stock, money...); empty when all hold."""


@attrs.frozen(kw_only=True)
class Scenario:
    name: str
    definition: SagaDefinition
    make_domain: Callable[[random.Random], Domain]
    """Builds fresh domain state for one run (the rng is the run's domain stream)."""
    make_order: Callable[[random.Random], dict[str, Any]]
    """Draws one saga's input data from that saga's own rng."""
    description: str = ""
    defaults: Mapping[str, Any] = attrs.field(factory=dict)
    """Configuration defaults for this scenario, as plain data (the TOML layout)."""

    def config(self, data: Mapping[str, Any] | None = None, **overrides: Any) -> SimulationConfig:
        """This scenario's defaults, then ``data`` (TOML layout), then dotted-key ``overrides``
        written with ``__`` for dots: ``scenario.config(sagas=500, faults__loss=0.05)``."""
        # imported here: a scenario read only for its definition (a diagram) needs no cattrs
        from .config import apply_overrides, config_from_dict, merge

        merged = merge(self.defaults, data or {})
        dotted = {key.replace("__", "."): value for key, value in overrides.items()}
        return config_from_dict(apply_overrides(merged, dotted))


def load_scenario(name_or_path: str) -> Scenario:
    """A built-in scenario by name, or a user's scenario file by path.

    :class:`~sagafsm.InvalidConfig`, one line naming the file and what is wrong with it, for a
    file that is not there, does not import (a syntax error, a missing module, an exception or
    ``sys.exit()`` while it runs), has no ``scenario()`` function, or one that cannot be called
    without arguments, raises, or returns something else than a :class:`Scenario`."""
    if name_or_path.endswith(".py") or "/" in name_or_path:
        module = import_file(name_or_path, f"_sagafsm_scenario_{Path(name_or_path).stem}")
    else:
        try:
            module = importlib.import_module(f"simulations.{name_or_path}")
        except ModuleNotFoundError as error:
            if error.name not in (f"simulations.{name_or_path}", "simulations"):
                raise
            raise InvalidConfig(
                f"unknown scenario {name_or_path!r} (built in: {', '.join(builtin_scenarios())};"
                " or give the path of a .py file)"
            ) from None
    factory = getattr(module, "scenario", None)
    if not callable(factory):
        raise InvalidConfig(f"scenario {name_or_path!r} has no scenario() function: define one")
    result = call_factory(factory, "scenario", name_or_path)
    if not isinstance(result, Scenario):
        raise InvalidConfig(
            f"scenario() of {name_or_path!r} returned {type(result).__name__}, not a Scenario"
        )
    return result


def builtin_scenarios() -> list[str]:
    try:
        package = importlib.import_module("simulations")
    except ModuleNotFoundError:
        return []
    folder = Path(next(iter(package.__path__)))
    return sorted(p.stem for p in folder.glob("*.py") if not p.stem.startswith("_"))
