"""The only module that imports ``transitions``.

One ``Machine`` per lifecycle is built once, from its spec in :mod:`sagafsm.lifecycle`, with no
model registered. Saga and step objects are driven through it by calling the machine's event
directly, so no instance owns a ``transitions`` object: a ``Machine`` per instance costs
hundreds of microseconds and tens of kilobytes, ``add_model`` is O(live models). Models need only a
``state`` attribute and identity equality (``transitions`` compares models, so value-equal models
would be confused).

Nothing outside this module sees ``transitions``' run-time methods or its ``MachineError``.

**The fast path.** A legal move of a callback-free machine does nothing but set ``model.state``,
yet ``Event.trigger`` spends ~10 µs on it (an ``EventData``, a ``partial``, five state look-ups,
callback lists walked, seven ``logging.debug`` calls). So :func:`read_table` reads the built
machine's own transition table once, ``(trigger, source) -> dest``, and
:meth:`LifecycleMachine.fire` sets the destination it finds there; anything not in the table
(an illegal or unknown trigger) still goes through ``trigger``, which raises as before. The
table is read from the ``Machine``, not from the spec, and is refused (``None``: every move goes
through ``trigger``) as soon as the machine, a state or a transition carries anything that would
make a move more than an assignment: conditions, callbacks, internal transitions, queued
processing, ignored invalid triggers. ``tests/test_machine.py`` fires every (trigger, state)
pair both ways and compares.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import Any, Protocol

from transitions import Machine, MachineError, State

from .errors import IllegalTransition
from .lifecycle import SAGA_LIFECYCLE, STEP_LIFECYCLE, LifecycleSpec

__all__ = ["LifecycleMachine", "SAGA_MACHINE", "STEP_MACHINE", "Stateful", "read_table"]

FastTable = dict[tuple[str, Any], Any]
"""``(trigger, source member) -> destination member``: every legal move of a machine."""

_MACHINE_CALLBACKS = (
    "prepare_event",
    "before_state_change",
    "after_state_change",
    "finalize_event",
    "on_exception",
    "on_final",
)


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


def read_table(machine: Machine) -> FastTable | None:
    """The moves of a built machine as one dict, or None if a move could do more than set the
    model's state (see the module docstring): then every move must go through ``trigger``."""
    if machine.has_queue or machine.model_attribute != "state" or machine.ignore_invalid_triggers:
        return None
    if any(getattr(machine, name) for name in _MACHINE_CALLBACKS):
        return None
    states = machine.states
    for state in states.values():
        if state.on_enter or state.on_exit or state.ignore_invalid_triggers:
            return None
        if not isinstance(state.value, enum.Enum):
            return None  # our states are Enum members: the model holds the member itself
    table: FastTable = {}
    for trigger, event in machine.events.items():
        for source, candidates in event.transitions.items():
            for move in candidates:
                if move.conditions or move.prepare or move.before or move.after:
                    return None
                if move.dest is None:  # an internal transition: no state change, callbacks
                    return None
            if candidates:
                # Without conditions the first candidate always executes, as ``trigger`` does.
                dest = states[str(candidates[0].dest)]
                table[trigger, states[source].value] = dest.value
    return table


class LifecycleMachine:
    """A lifecycle spec turned into a ``transitions`` machine shared by every instance.

    ``fast=False`` sends every move through ``trigger`` (the equivalence test compares both)."""

    def __init__(self, spec: LifecycleSpec[Any], *, fast: bool = True) -> None:
        self.spec = spec
        self.name = spec.name
        self._machine = _Machine(
            model=None,
            states=spec.states,
            initial=spec.initial,
            transitions=[
                {"trigger": t.trigger, "source": t.source, "dest": t.dest} for t in spec.rows
            ],
            auto_transitions=False,
            ignore_invalid_triggers=False,
        )
        self._fire: dict[str, Callable[[Stateful], bool]] = {
            name: event.trigger for name, event in self._machine.events.items()
        }
        self._fast = read_table(self._machine) if fast else None

    @property
    def fast(self) -> bool:
        """Whether legal moves skip ``trigger`` (the machine's table was read, see above)."""
        return self._fast is not None

    @property
    def triggers(self) -> tuple[str, ...]:
        return tuple(self._fire)

    def fire(self, model: Stateful, trigger: str, subject: str, *parts: Any) -> None:
        """Move ``model`` along ``trigger``, or raise :class:`IllegalTransition` naming
        ``subject``. With ``parts``, ``subject`` is a format string they fill in, only if the move
        is refused: the engine's moves nearly always succeed, and need no text."""
        fast = self._fast
        if fast is not None:
            dest = fast.get((trigger, model.state))
            if dest is not None:
                model.state = dest
                return
        if parts:
            subject = subject.format(*parts)
        fire = self._fire.get(trigger)
        if fire is None:
            raise IllegalTransition(self.name, trigger, model.state.value, subject)
        try:
            fire(model)
        except MachineError:
            raise IllegalTransition(self.name, trigger, model.state.value, subject) from None


SAGA_MACHINE = LifecycleMachine(SAGA_LIFECYCLE)
STEP_MACHINE = LifecycleMachine(STEP_LIFECYCLE)
