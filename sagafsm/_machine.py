"""The only module that imports ``transitions``.

One ``Machine`` per lifecycle is built once, from the tables in :mod:`sagafsm.lifecycle`, with no
model registered. Saga and step objects are driven through it by calling the machine's event
directly, so no instance owns a ``transitions`` object: a ``Machine`` per instance costs
hundreds of microseconds and tens of kilobytes, ``add_model`` is O(live models). Models need only a
``state`` attribute and identity equality (``transitions`` compares models, so value-equal models
would be confused).

Nothing outside this module sees ``transitions``' run-time methods or its ``MachineError``.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from transitions import Machine, MachineError, State

from .errors import IllegalTransition
from .lifecycle import (
    SAGA_TRANSITIONS,
    STEP_IGNORED,
    STEP_TRANSITIONS,
    IgnoredTrigger,
    SagaState,
    StepState,
    Transition,
)

__all__ = ["Lifecycle", "SAGA_LIFECYCLE", "STEP_LIFECYCLE", "Stateful"]


class Stateful(Protocol):
    state: Any


class _CallbackFreeState(State):
    """A state with no enter or exit callbacks, which ours never have.

    ``transitions`` recomputes an Enum state's name on every access and walks its (empty) callback
    lists, with logging, on every entry and exit. Through its documented ``state_cls`` extension
    point this class computes the name once and skips empty callback lists: 27% less time per
    transition, and nothing else changes (a state that does get callbacks runs them as usual).
    """

    def __init__(self, name: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(name, *args, **kwargs)
        self._plain_name = name.name if isinstance(name, enum.Enum) else name

    @property
    def name(self) -> str:
        return self._plain_name

    def enter(self, event_data: Any) -> None:
        if self.on_enter:
            super().enter(event_data)

    def exit(self, event_data: Any) -> None:
        if self.on_exit:
            super().exit(event_data)


class _Machine(Machine):
    """Our tables never change after the machine is built, so the State object of each Enum
    member is looked up once (``get_state`` runs five times per transition)."""

    state_cls = _CallbackFreeState

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._state_cache: dict[Any, State] = {}
        super().__init__(*args, **kwargs)

    def get_state(self, state: Any) -> State:
        cached = self._state_cache.get(state)
        if cached is None:
            cached = self._state_cache[state] = super().get_state(state)
        return cached


class Lifecycle:
    """A lifecycle table turned into a ``transitions`` machine shared by every instance."""

    def __init__(
        self,
        name: str,
        states: type[enum.Enum],
        initial: enum.Enum,
        table: Iterable[Transition],
        ignored: Iterable[IgnoredTrigger] = (),
    ) -> None:
        self.name = name
        self.states = states
        self.initial = initial
        self.table = tuple(table)
        self._machine = _Machine(
            model=None,
            states=states,
            initial=initial,
            transitions=[
                {"trigger": t.trigger, "source": t.source, "dest": t.dest} for t in self.table
            ],
            auto_transitions=False,
            ignore_invalid_triggers=False,
        )
        self._fire: dict[str, Callable[[Stateful], bool]] = {
            name: event.trigger for name, event in self._machine.events.items()
        }
        self._declared = frozenset((t.trigger, t.source) for t in self.table)
        self.ignored: dict[tuple[str, enum.Enum], str] = {
            (i.trigger, i.source): i.reason for i in ignored
        }
        overlap = self._declared & self.ignored.keys()
        if overlap:  # a table bug, caught at import time
            raise ValueError(f"{name}: both declared and ignored: {sorted(map(str, overlap))}")

    @property
    def triggers(self) -> tuple[str, ...]:
        return tuple(self._fire)

    def allows(self, trigger: str, state: enum.Enum) -> bool:
        return (trigger, state) in self._declared

    def fire(self, model: Stateful, trigger: str, subject: str) -> None:
        """Move ``model`` along ``trigger``, or raise :class:`IllegalTransition`."""
        fire = self._fire.get(trigger)
        if fire is None:
            raise IllegalTransition(self.name, trigger, model.state.value, subject)
        try:
            fire(model)
        except MachineError:
            raise IllegalTransition(self.name, trigger, model.state.value, subject) from None

    def ignored_reason(self, trigger: str, state: enum.Enum) -> str | None:
        """Why ``trigger`` is dropped in ``state``, if the table declares it dropped."""
        return self.ignored.get((trigger, state))


SAGA_LIFECYCLE = Lifecycle("saga", SagaState, SagaState.STARTED, SAGA_TRANSITIONS)
STEP_LIFECYCLE = Lifecycle("step", StepState, StepState.PENDING, STEP_TRANSITIONS, STEP_IGNORED)
