"""sagafsm: sagas as explicit state machines, and the tools to prove their compensations correct.

The public API is listed in ``__all__``; everything else is private. Importing this package imports
neither simpy, matplotlib nor hypothesis: simulation and plotting load only when asked for.
"""

from __future__ import annotations

from .commands import (
    CancelTimer,
    Command,
    CompensateStep,
    ExecuteStep,
    SagaFinished,
    StartTimer,
    TimerPurpose,
)
from .definition import RetryPolicy, SagaBuilder, SagaDefinition, StepDefinition, StepKind
from .engine import Recorder, SagaInstance
from .errors import (
    IllegalTransition,
    InvalidConfig,
    InvalidDefinition,
    InvalidSnapshot,
    SagaError,
    UnknownSaga,
)
from .events import (
    CompensationFailed,
    CompensationSucceeded,
    CompensationTimedOut,
    Event,
    StepFailed,
    StepSucceeded,
    StepTimedOut,
    TimerFired,
)
from .lifecycle import SagaState, StepState
from .orchestrator import Orchestrator, OrchestratorStatistics

__version__ = "0.1.0"

__all__ = [
    "CancelTimer",
    "Command",
    "CompensateStep",
    "CompensationFailed",
    "CompensationSucceeded",
    "CompensationTimedOut",
    "Event",
    "ExecuteStep",
    "IllegalTransition",
    "InvalidConfig",
    "InvalidDefinition",
    "InvalidSnapshot",
    "Orchestrator",
    "OrchestratorStatistics",
    "Recorder",
    "RetryPolicy",
    "SagaBuilder",
    "SagaDefinition",
    "SagaError",
    "SagaFinished",
    "SagaInstance",
    "SagaState",
    "StartTimer",
    "StepDefinition",
    "StepFailed",
    "StepKind",
    "StepState",
    "StepSucceeded",
    "StepTimedOut",
    "TimerFired",
    "TimerPurpose",
    "UnknownSaga",
    "__version__",
]
