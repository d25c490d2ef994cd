"""sagafsm: sagas as explicit state machines, and the tools to prove their compensations correct.

The public API is listed in ``__all__``; everything else is private. This package, the engine and
the runtime need only ``transitions`` and ``attrs``: the simulator, plots and exploration are
extras (``pip install 'sagafsm[sim]'``...), loaded only when asked for; without its extra, each
raises :class:`MissingExtra`, naming it.
"""

from __future__ import annotations

from .choreography import (
    ChoreographyBuilder,
    ChoreographyDefinition,
    ChoreographyEvent,
    ChoreographyStep,
    CompensationReaction,
    OutcomeReaction,
    choreography_from,
)
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
from .engine import SNAPSHOT_VERSION, Recorder, SagaInstance
from .errors import (
    IllegalTransition,
    InvalidArgument,
    InvalidConfig,
    InvalidDefinition,
    InvalidSnapshot,
    MissingExtra,
    SagaError,
    UnknownSaga,
    UnknownStep,
)
from .events import (
    EVENT_TYPES,
    CompensationFailed,
    CompensationSucceeded,
    CompensationTimedOut,
    Event,
    StepFailed,
    StepSucceeded,
    StepTimedOut,
    TimerFired,
)
from .lifecycle import (
    LIFECYCLES,
    SAGA_LIFECYCLE,
    STEP_LIFECYCLE,
    IgnoredTrigger,
    LifecycleSpec,
    SagaState,
    StepState,
    Transition,
)
from .orchestrator import Orchestrator, OrchestratorStatistics

__version__ = "0.1.0"

__all__ = [
    "CancelTimer",
    "ChoreographyBuilder",
    "ChoreographyDefinition",
    "ChoreographyEvent",
    "ChoreographyStep",
    "Command",
    "CompensateStep",
    "CompensationReaction",
    "CompensationFailed",
    "CompensationSucceeded",
    "CompensationTimedOut",
    "EVENT_TYPES",
    "Event",
    "ExecuteStep",
    "IgnoredTrigger",
    "IllegalTransition",
    "InvalidArgument",
    "InvalidConfig",
    "InvalidDefinition",
    "InvalidSnapshot",
    "LIFECYCLES",
    "LifecycleSpec",
    "MissingExtra",
    "Orchestrator",
    "OrchestratorStatistics",
    "OutcomeReaction",
    "Recorder",
    "RetryPolicy",
    "SAGA_LIFECYCLE",
    "SNAPSHOT_VERSION",
    "STEP_LIFECYCLE",
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
    "Transition",
    "UnknownSaga",
    "UnknownStep",
    "__version__",
    "choreography_from",
]
