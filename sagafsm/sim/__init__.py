"""The SimPy failure-injection harness. The only part of sagafsm that imports simpy.

```pycon
>>> from sagafsm.sim import simulate, load_scenario, SimulationConfig
```
"""

from __future__ import annotations

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
