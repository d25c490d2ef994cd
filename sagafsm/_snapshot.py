"""A saga as plain data, and back: the snapshot format and its validation.

Format (version 2), all JSON::

    {"version": 2, "saga_id": "o-1", "definition": "order", "step_names": ["reserve", ...],
     "state": "pending", "reason": null, "data": {...},
     "steps": [[state, attempt, compensation_attempt, generation, result or null], ...],
     "timer": null or [timer_id, purpose, step_index, due_time], "timer_seq": 3}

:func:`load` checks everything before it writes anything: types and ranges of every field, and
that the saga's state agrees with its steps' states and with its timer (exactly one active step,
with the timer its state waits on, while the saga runs; none once it has finished; results only
on steps that succeeded). Extra keys are ignored, so a subclass may store more.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ._validate import is_json_value
from .definition import SagaDefinition, StepKind
from .errors import InvalidSnapshot
from .lifecycle import SAGA_LIFECYCLE, STEP_LIFECYCLE, SagaState, StepState, TimerPurpose

if TYPE_CHECKING:
    from .engine import SagaInstance

__all__ = ["VERSION", "dump", "load"]

VERSION = 2

_HAS_RESULT = STEP_LIFECYCLE.reachable(StepState.SUCCEEDED) - STEP_LIFECYCLE.reachable(
    StepState.TIMED_OUT
)
_MAY_HAVE_RESULT = STEP_LIFECYCLE.reachable(StepState.SUCCEEDED)
"""A step that succeeded keeps its result through its compensation; one that timed out has none."""
_COMPENSATION_STATES = STEP_LIFECYCLE.reachable(StepState.COMPENSATING)


def dump(saga: SagaInstance) -> dict[str, Any]:
    timer = None
    if saga.timer_id is not None and saga.timer_purpose is not None:
        timer = [saga.timer_id, saga.timer_purpose.value, saga.timer_step, saga.timer_due]
    return {
        "version": VERSION,
        "saga_id": saga.saga_id,
        "definition": saga.definition.name,
        "step_names": list(saga.definition.step_names),
        "state": saga.state.value,
        "reason": saga.reason,
        "data": dict(saga.data),
        "steps": [
            [
                r.state.value,
                r.attempt,
                r.compensation_attempt,
                r.generation,
                None if r.result is None else dict(r.result),
            ]
            for r in saga.steps
        ],
        "timer": timer,
        "timer_seq": saga.timer_seq,
    }


def load(saga: SagaInstance, data: Any) -> None:
    """Fill a fresh ``saga`` from snapshot ``data``, or raise InvalidSnapshot (``saga`` is then
    left as it was built: nothing is written before every check passed)."""
    definition = saga.definition
    if not isinstance(data, Mapping):
        raise InvalidSnapshot(f"a saga snapshot is a mapping, got {data!r}")
    missing = [k for k in _KEYS if k not in data]
    if missing:
        raise InvalidSnapshot(f"saga snapshot lacks {', '.join(map(repr, missing))}")
    if data["version"] != VERSION or isinstance(data["version"], bool):
        raise InvalidSnapshot(
            f"unsupported snapshot version {data['version']!r} (this sagafsm reads {VERSION})"
        )
    if data["definition"] != definition.name:
        raise InvalidSnapshot(
            f"snapshot is of saga {data['definition']!r}, not {definition.name!r}"
        )
    names = data["step_names"]
    if not _is_list(names) or list(names) != list(definition.step_names):
        raise InvalidSnapshot(
            f"snapshot has steps {names!r}, "
            f"definition {definition.name!r} has {list(definition.step_names)!r}"
        )
    saga_id = data["saga_id"]
    if not isinstance(saga_id, str) or not saga_id:
        raise InvalidSnapshot(f"snapshot saga_id must be a non-empty string, got {saga_id!r}")
    where = f"snapshot of saga {saga_id!r}"
    state = _enum(SagaState, data["state"], f"{where}: state")
    reason = data["reason"]
    if reason is not None and not isinstance(reason, str):
        raise InvalidSnapshot(f"{where}: reason must be a string or null, got {reason!r}")
    saga_data = data["data"]
    if not isinstance(saga_data, Mapping) or not is_json_value(saga_data):
        raise InvalidSnapshot(f"{where}: data must be a JSON mapping, got {saga_data!r}")
    rows = data["steps"]
    if not _is_list(rows) or len(rows) != len(definition.steps):
        raise InvalidSnapshot(
            f"{where}: steps must be a list of {len(definition.steps)} rows, got {rows!r}"
        )
    steps = [_step_row(definition, i, row, where) for i, row in enumerate(rows)]
    timer = _timer(data["timer"], len(steps), where)
    timer_seq = _count(data["timer_seq"], f"{where}: timer_seq")
    _consistent(definition, state, steps, timer, where)
    saga.saga_id = saga_id
    saga.state = state
    saga.reason = reason
    saga.data = saga_data
    for run, (step_state, attempt, compensation_attempt, generation, result) in zip(
        saga.steps, steps, strict=True
    ):
        run.state = step_state
        run.attempt = attempt
        run.compensation_attempt = compensation_attempt
        run.generation = generation
        run.result = result
    if timer is not None:
        saga.timer_id, saga.timer_purpose, saga.timer_step, saga.timer_due = timer
    saga.timer_seq = timer_seq


_KEYS = (
    "version",
    "saga_id",
    "definition",
    "step_names",
    "state",
    "reason",
    "data",
    "steps",
    "timer",
    "timer_seq",
)
_StepRow = tuple[StepState, int, int, int, "Mapping[str, Any] | None"]
_Timer = tuple[str, TimerPurpose, int, float]


def _is_list(value: Any) -> bool:
    return isinstance(value, Sequence) and not isinstance(value, (str, bytes))


def _enum(cls: Any, value: Any, what: str) -> Any:
    try:
        return cls(value)
    except (ValueError, TypeError):
        known = ", ".join(repr(m.value) for m in cls)
        raise InvalidSnapshot(f"{what} must be one of {known}, got {value!r}") from None


def _count(value: Any, what: str, most: int | None = None) -> int:
    if value.__class__ is not int or value < 0 or (most is not None and value > most):
        bound = "" if most is None else f" and at most {most}"
        raise InvalidSnapshot(f"{what} must be an integer >= 0{bound}, got {value!r}")
    return int(value)


def _step_row(definition: SagaDefinition, index: int, row: Any, where: str) -> _StepRow:
    step = definition.steps[index]
    what = f"{where}: step {step.name!r}"
    if not _is_list(row) or len(row) != 5:
        raise InvalidSnapshot(
            f"{what} must be [state, attempt, compensation_attempt, generation, result], "
            f"got {row!r}"
        )
    state = _enum(StepState, row[0], f"{what} state")
    attempt = _count(row[1], f"{what} attempt", step.retry.max_attempts)
    compensation_attempt = _count(
        row[2], f"{what} compensation_attempt", step.compensation_retry.max_attempts
    )
    most = max(0, step.retry.max_attempts - 1) if step.kind is StepKind.RETRIABLE else 0
    generation = _count(row[3], f"{what} generation", most)
    result = row[4]
    if result is not None and (not isinstance(result, Mapping) or not is_json_value(result)):
        raise InvalidSnapshot(f"{what} result must be a JSON mapping or null, got {result!r}")
    if (state is STEP_LIFECYCLE.initial) != (attempt == 0):
        raise InvalidSnapshot(f"{what} is {state.value} after {attempt} tries")
    if (state in _COMPENSATION_STATES) != (compensation_attempt > 0):
        raise InvalidSnapshot(
            f"{what} is {state.value} after {compensation_attempt} compensation tries"
        )
    if state in _COMPENSATION_STATES and not step.kind.compensable:
        raise InvalidSnapshot(
            f"{what} is {state.value}, but a {step.kind.value} step has no compensation"
        )
    if result is None and state in _HAS_RESULT:
        raise InvalidSnapshot(f"{what} is {state.value} but has no result")
    if result is not None and state not in _MAY_HAVE_RESULT:
        raise InvalidSnapshot(f"{what} is {state.value} but has a result")
    return state, attempt, compensation_attempt, generation, result


def _timer(value: Any, steps: int, where: str) -> _Timer | None:
    if value is None:
        return None
    if not _is_list(value) or len(value) != 4:
        raise InvalidSnapshot(
            f"{where}: timer must be [id, purpose, step, due] or null, got {value!r}"
        )
    timer_id, purpose, step, due = value
    if not isinstance(timer_id, str) or not timer_id:
        raise InvalidSnapshot(f"{where}: timer id must be a non-empty string, got {timer_id!r}")
    purpose = _enum(TimerPurpose, purpose, f"{where}: timer purpose")
    if step.__class__ is not int or not 0 <= step < steps:
        raise InvalidSnapshot(f"{where}: timer names no step of the saga: {step!r}")
    if not isinstance(due, (int, float)) or isinstance(due, bool) or not math.isfinite(due):
        raise InvalidSnapshot(f"{where}: timer due time must be a finite number, got {due!r}")
    return timer_id, purpose, step, float(due)


def _consistent(
    definition: SagaDefinition,
    state: SagaState,
    steps: list[_StepRow],
    timer: _Timer | None,
    where: str,
) -> None:
    """The saga's state, its steps' states and its timer tell one story."""
    active = [i for i, row in enumerate(steps) if row[0] in STEP_LIFECYCLE.waiting]
    names = definition.step_names
    if state is SAGA_LIFECYCLE.initial:
        if any(row[0] is not STEP_LIFECYCLE.initial for row in steps) or timer is not None:
            raise InvalidSnapshot(f"{where}: a saga not started yet has a step or timer running")
        return
    if state in SAGA_LIFECYCLE.terminal:
        if active or timer is not None:
            running = ", ".join(repr(names[i]) for i in active) or "its timer"
            raise InvalidSnapshot(f"{where}: the saga is {state.value} but {running} still runs")
        if state is SagaState.COMPLETED and any(row[0] is not StepState.SUCCEEDED for row in steps):
            raise InvalidSnapshot(f"{where}: the saga completed but not every step succeeded")
        return
    if len(active) != 1:
        raise InvalidSnapshot(
            f"{where}: a {state.value} saga has exactly one step running, not {len(active)}"
        )
    index = active[0]
    waits_for = STEP_LIFECYCLE.waiting[steps[index][0]]
    if timer is None or timer[2] != index or timer[1] is not waits_for:
        raise InvalidSnapshot(
            f"{where}: step {names[index]!r} is {steps[index][0].value}, so its "
            f"{waits_for.value} timer must be armed; the snapshot has {timer!r}"
        )
    compensating = steps[index][0] in _COMPENSATION_STATES
    if compensating != (state is SagaState.COMPENSATING):
        raise InvalidSnapshot(
            f"{where}: the saga is {state.value} while step {names[index]!r} is "
            f"{steps[index][0].value}"
        )
    if state is SagaState.PENDING and (
        any(row[0] is not StepState.SUCCEEDED for row in steps[:index])
        or any(row[0] is not STEP_LIFECYCLE.initial for row in steps[index + 1 :])
    ):
        raise InvalidSnapshot(
            f"{where}: a pending saga runs its steps in order, but its steps are "
            f"{[row[0].value for row in steps]}"
        )
