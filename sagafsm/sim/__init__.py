"""The SimPy failure-injection harness. The only part of sagafsm that imports simpy.

```pycon
>>> from sagafsm.sim import simulate, load_scenario, SimulationConfig
```

Needs the ``sim`` extra (``pip install 'sagafsm[sim]'``): without it, importing this package
raises :class:`~sagafsm.MissingExtra`, naming it. Each name loads its module when first used, so
reading a scenario (``sagafsm diagram order_fulfillment``) imports no simpy.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .._extras import require

require("sim", "sagafsm.sim")

if TYPE_CHECKING:
    from ..checks import Violation
    from .config import (
        FaultPlan,
        LoadConfig,
        ParticipantConfig,
        ParticipantWindow,
        SimulationConfig,
        Window,
        config_from_dict,
        load_config_file,
    )
    from .distributions import Distribution, parse_distribution
    from .internal import InternalError
    from .result import RunResult
    from .run import simulate
    from .scenario import Declined, Domain, Scenario, Service, load_scenario
    from .trace import RECORD_FIELDS, read_trace

__all__ = [
    "Declined",
    "Distribution",
    "Domain",
    "FaultPlan",
    "InternalError",
    "LoadConfig",
    "ParticipantConfig",
    "ParticipantWindow",
    "RECORD_FIELDS",
    "RunResult",
    "Scenario",
    "Service",
    "SimulationConfig",
    "Violation",
    "Window",
    "config_from_dict",
    "load_config_file",
    "load_scenario",
    "parse_distribution",
    "read_trace",
    "simulate",
]

_EXPORTED_BY = {
    "..checks": ("Violation",),
    ".config": (
        "FaultPlan", "LoadConfig", "ParticipantConfig", "ParticipantWindow", "SimulationConfig",
        "Window", "config_from_dict", "load_config_file",
    ),
    ".distributions": ("Distribution", "parse_distribution"),
    ".internal": ("InternalError",),
    ".result": ("RunResult",),
    ".run": ("simulate",),
    ".scenario": ("Declined", "Domain", "Scenario", "Service", "load_scenario"),
    ".trace": ("RECORD_FIELDS", "read_trace"),
}  # fmt: skip
_HOMES = {name: module for module, names in _EXPORTED_BY.items() for name in names}
"""The module each public name lives in (the TYPE_CHECKING imports above, for the loader)."""


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(home, __name__), name)
    globals()[name] = value  # loaded once: later lookups never come here
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
