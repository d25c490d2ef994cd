"""The exceptions sagafsm raises.

Every error derives from :class:`SagaError`, and also from the builtin it resembles, so callers
that already catch ``ValueError`` or ``RuntimeError`` keep working. No exception of a third-party
library (``transitions.MachineError``, SimPy's) ever crosses the public API.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = [
    "SagaError",
    "InvalidArgument",
    "InvalidDefinition",
    "IllegalTransition",
    "UnknownSaga",
    "UnknownStep",
    "InvalidSnapshot",
    "InvalidConfig",
    "MissingExtra",
]


class SagaError(Exception):
    """Root of every error sagafsm raises on purpose."""


class InvalidArgument(SagaError, TypeError, ValueError):
    """A value handed to the engine's public API has the wrong type or is out of range.

    Raised at the door, before anything changes: an event that is not an event (a command, a
    dict, None), a ``now`` that is not a finite number, saga data that is not a JSON-able mapping,
    an event field of the wrong type. It is both a ``TypeError`` and a ``ValueError``, so callers
    catching either keep working. Not raised for a bad definition (:class:`InvalidDefinition`) or
    bad snapshot data (:class:`InvalidSnapshot`).
    """


class InvalidDefinition(SagaError, ValueError):
    """A saga or step definition breaks a rule.

    Raised when a definition is built (never later, while a saga runs). The message names the
    saga, the step and the rule, one problem per error.
    """


class IllegalTransition(SagaError, RuntimeError):
    """A lifecycle was asked to move along a transition its table does not declare.

    Raised for misuse of the engine (starting a saga twice, resuming a finished one). Not raised for
    replies that arrive late, twice or for a step that is no longer running: the tables declare
    those as ignored, and the engine records them instead.
    """

    def __init__(self, lifecycle: str, trigger: str, state: str, subject: str) -> None:
        super().__init__(
            f"{subject}: the {lifecycle} lifecycle has no transition {trigger!r} "
            f"from state {state!r}"
        )
        self.lifecycle = lifecycle
        self.trigger = trigger
        self.state = state
        self.subject = subject


class UnknownSaga(SagaError, KeyError):
    """An event names a saga the orchestrator does not hold (never started, or already dropped).

    Raised only by :meth:`Orchestrator.get`; :meth:`Orchestrator.handle` records such events as
    ignored instead, since a reply for a finished saga is normal on a real network.
    """

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class UnknownStep(SagaError, KeyError):
    """A step name that the saga's definition does not have was asked about.

    Raised by :meth:`SagaInstance.step_state` and :meth:`SagaDefinition.index_of`. Not raised for a
    reply that names an unknown step: the engine records such a reply as ignored.
    """

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class InvalidSnapshot(SagaError, ValueError):
    """Snapshot data does not describe a saga of the given definition.

    Raised by :meth:`SagaInstance.restore`, which checks the whole snapshot (types, ranges, and
    that the saga's state agrees with its steps' and its timer's) before it builds anything.
    """


class InvalidConfig(SagaError, ValueError):
    """A simulation configuration, fault plan or command-line value is out of range or unknown."""


class MissingExtra(SagaError, ImportError):
    """An optional part of sagafsm was asked for without the extra that installs its libraries.

    Raised when the part is imported (``import sagafsm.sim`` without simpy) or, by a command,
    before it does any work. The message names the part, the missing libraries and the extra:
    ``sagafsm.sim needs simpy (not installed): pip install 'sagafsm[sim]'``. An ``ImportError``
    too, so ``except ImportError`` around an optional import keeps working. Never raised by
    ``import sagafsm``, the engine or the runtime: they need no extra.
    """

    def __init__(self, extra: str, what: str, missing: Sequence[str]) -> None:
        names = ", ".join(missing)
        super().__init__(
            f"{what} needs {names} (not installed): pip install 'sagafsm[{extra}]'",
            name=missing[0],
        )
        self.extra = extra
        self.missing = tuple(missing)
