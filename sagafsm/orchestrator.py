"""Many sagas behind one door: route events to their :class:`SagaInstance`, drop finished ones.

Still sans-IO: the orchestrator returns commands and never sends them. It keeps only running
sagas, so its memory grows with sagas in flight, not with sagas started.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any

import attrs

from ._validate import check_name, check_now, check_recorder
from .commands import Command, SagaFinished
from .definition import SagaDefinition
from .engine import Recorder, SagaInstance, refuse_event
from .errors import IllegalTransition, InvalidArgument, UnknownSaga
from .events import EVENT_TYPES, Event

__all__ = ["Orchestrator", "OrchestratorStatistics"]


@attrs.frozen(kw_only=True)
class OrchestratorStatistics:
    started: int
    running: int
    finished: Mapping[str, int]
    """Terminal state name -> count."""
    unroutable: int
    """Events for a saga this orchestrator does not hold (finished and dropped, or unknown)."""


class Orchestrator:
    """Starts sagas, routes each event to its saga by saga id, forgets sagas once finished.

    Every argument is checked as :class:`SagaInstance` checks it, before anything changes.
    """

    def __init__(self, *, recorder: Recorder | None = None) -> None:
        self._recorder = check_recorder(recorder)
        self._running: dict[str, SagaInstance] = {}
        self._started = 0
        self._finished: Counter[str] = Counter()
        self._unroutable = 0

    def start(
        self,
        definition: SagaDefinition,
        saga_id: str,
        now: float,
        *,
        data: Mapping[str, Any] | None = None,
    ) -> list[Command]:
        """Start a saga with its input ``data``; IllegalTransition if that id is running here."""
        check_name(saga_id, "saga_id")
        now = check_now(now)
        if saga_id in self._running:
            raise IllegalTransition("saga", "begin", "running", f"saga {saga_id}")
        saga = SagaInstance(definition, saga_id, data=data, recorder=self._recorder)
        commands = saga.start(now)
        self._running[saga_id] = saga
        self._started += 1
        return self._settle(saga, commands)

    def handle(self, event: Event, now: float) -> list[Command]:
        if type(event) not in EVENT_TYPES:  # not __class__, which a test double can fake
            refuse_event(event)
        now = check_now(now)
        saga = self._running.get(event.saga_id)
        if saga is None:
            self._unroutable += 1
            if self._recorder is not None:
                self._recorder.ignored(now, event.saga_id, event, "no running saga with that id")
            return []
        return self._settle(saga, saga.handle(event, now))

    def adopt(self, saga: SagaInstance, now: float) -> list[Command]:
        """Take over a saga restored from a store and return what it must re-send.

        Raises IllegalTransition if a saga with that id is already running here. A finished saga
        is not taken over: its :class:`SagaFinished` is returned again, and not counted twice.
        """
        if not isinstance(saga, SagaInstance):
            raise InvalidArgument(f"adopt() takes a SagaInstance, got {saga!r}")
        now = check_now(now)
        if saga.saga_id in self._running:
            raise IllegalTransition("saga", "adopt", "running", f"saga {saga.saga_id}")
        if saga.finished:
            return saga.resume(now)
        self._running[saga.saga_id] = saga
        self._started += 1
        return self._settle(saga, saga.resume(now))

    def get(self, saga_id: str) -> SagaInstance:
        try:
            return self._running[saga_id]
        except (KeyError, TypeError):
            raise UnknownSaga(f"no running saga {saga_id!r}") from None

    def __len__(self) -> int:
        return len(self._running)

    def statistics(self) -> OrchestratorStatistics:
        return OrchestratorStatistics(
            started=self._started,
            running=len(self._running),
            finished=dict(self._finished),
            unroutable=self._unroutable,
        )

    def _settle(self, saga: SagaInstance, commands: list[Command]) -> list[Command]:
        if commands and isinstance(commands[-1], SagaFinished):
            del self._running[saga.saga_id]
            self._finished[saga.state.value] += 1
        return commands
