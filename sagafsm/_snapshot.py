"""A saga as plain data, and back: the snapshot format and its validation.

Format (version 2), all JSON::

    {"version": 2, "saga_id": "o-1", "definition": "order", "step_names": ["reserve", ...],
     "state": "pending", "reason": null, "data": {...},
     "steps": [[state, attempt, compensation_attempt, generation, result or null], ...],
     "timer": null or [timer_id, purpose, step_index, due_time], "timer_seq": 3}

:func:`load` checks everything before it writes anything: types and ranges of every field, and
that the saga's state agrees with its steps' states and with its timer (exactly one active step,
with the timer its state waits on, while the saga runs; none once it has finished; results only
on the steps whose success reply arrived; the steps tell one story: run in order, compensated
top down, the saga's state the one that story ends in). Extra keys are ignored, so a subclass may
store more. A snapshot shares nothing with the live saga (data and results are copied), and
survives a JSON round trip unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ._validate import is_finite_number, is_json_value, plain_json
from .definition import SagaDefinition, StepKind
from .errors import InvalidSnapshot
from .lifecycle import SAGA_LIFECYCLE, STEP_LIFECYCLE, SagaState, StepState, TimerPurpose

if TYPE_CHECKING:
    from .engine import SagaInstance

__all__ = ["VERSION", "dump", "load"]

VERSION = 2

_T = StepState
_SUCCEEDED_ONCE = STEP_LIFECYCLE.reachable(_T.SUCCEEDED)
"""A step whose success reply arrived: it keeps its result through its compensation."""
_COMPENSATION_STATES = STEP_LIFECYCLE.reachable(_T.COMPENSATING)
_COMPENSATION_ACTIVE = frozenset(STEP_LIFECYCLE.waiting) & _COMPENSATION_STATES
_FORWARD_ACTIVE = frozenset(STEP_LIFECYCLE.waiting) - _COMPENSATION_STATES


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
        "data": plain_json(saga.data),
        "steps": [
            [
                r.state.value,
                r.attempt,
                r.compensation_attempt,
                r.generation,
                None if r.result is None else plain_json(r.result),
            ]
            for r in saga.steps
        ],
        "timer": timer,
        "timer_seq": saga.timer_seq,
    }


def load(saga: SagaInstance, data: Any, *, check_story: bool = True) -> None:
    """Fill a fresh ``saga`` from snapshot ``data``, or raise InvalidSnapshot (``saga`` is then
    left as it was built: nothing is written before every check passed).

    ``check_story=False`` skips only the checks across steps and the timer (that the saga's
    state, its steps' states and its timer tell one story); the mutants, which reach
    inconsistent states on purpose, restore that way."""
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
    if check_story:
        _consistent(definition, state, reason, steps, timer, where)
        if timer is not None and timer[0] != f"{saga_id}#{timer_seq}":
            raise InvalidSnapshot(
                f"{where}: the armed timer is the last one armed, {saga_id}#{timer_seq}, "
                f"not {timer[0]!r}"
            )
    saga.saga_id = saga_id
    saga.state = state
    saga.reason = reason
    saga.data = plain_json(saga_data)
    for run, (step_state, attempt, compensation_attempt, generation, result) in zip(
        saga.steps, steps, strict=True
    ):
        run.state = step_state
        run.attempt = attempt
        run.compensation_attempt = compensation_attempt
        run.generation = generation
        run.result = None if result is None else plain_json(result)
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
    tries, most_tries = step.retry.max_attempts, step.compensation_retry.max_attempts
    if (
        (state is STEP_LIFECYCLE.initial) != (attempt == 0)
        # a step backs off only while it has tries left, and gives up only when it has none
        or (state is _T.WAITING_RETRY and attempt == tries)
        or (state is _T.TIMED_OUT and attempt < tries)
        or (state is _T.FAILED and step.kind is StepKind.RETRIABLE and attempt < tries)
    ):
        raise InvalidSnapshot(f"{what} is {state.value} after {attempt} of {tries} tries")
    if (
        (state in _COMPENSATION_STATES) != (compensation_attempt > 0)
        or (state is _T.WAITING_COMPENSATION_RETRY and compensation_attempt == most_tries)
        or (state is _T.COMPENSATION_FAILED and compensation_attempt < most_tries)
    ):
        raise InvalidSnapshot(
            f"{what} is {state.value} after {compensation_attempt} of {most_tries} "
            "compensation tries"
        )
    if generation > attempt:  # each try fails at most once, spending one key
        raise InvalidSnapshot(f"{what} has spent {generation} keys in {attempt} tries")
    if state in _COMPENSATION_STATES and not step.kind.compensable:
        raise InvalidSnapshot(
            f"{what} is {state.value}, but a {step.kind.value} step has no compensation"
        )
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
    if not is_finite_number(due):
        raise InvalidSnapshot(f"{where}: timer due time must be a finite number, got {due!r}")
    return timer_id, purpose, step, float(due)


def _consistent(
    definition: SagaDefinition,
    state: SagaState,
    reason: str | None,
    steps: list[_StepRow],
    timer: _Timer | None,
    where: str,
) -> None:
    """The saga's state, its reason, its steps' states and its timer tell one story."""
    told = _story(definition, steps, where)
    if told is not state:
        raise InvalidSnapshot(
            f"{where}: the saga is {state.value}, but its steps "
            f"{[row[0].value for row in steps]} say {told.value}"
        )
    if (reason is None) != (state in _NO_REASON):
        raise InvalidSnapshot(
            f"{where}: a {state.value} saga has "
            + ("no reason" if reason is None else f"no reason to give, not {reason!r}")
        )
    active = [i for i, row in enumerate(steps) if row[0] in STEP_LIFECYCLE.waiting]
    if state is SAGA_LIFECYCLE.initial or state in SAGA_LIFECYCLE.terminal:
        if timer is not None:
            raise InvalidSnapshot(f"{where}: a {state.value} saga has a timer armed: {timer!r}")
        return
    if len(active) != 1:  # unreachable: the story of a running saga has one step active
        raise InvalidSnapshot(f"{where}: a {state.value} saga has {len(active)} steps running")
    index = active[0]
    waits_for = STEP_LIFECYCLE.waiting[steps[index][0]]
    if timer is None or timer[2] != index or timer[1] is not waits_for:
        raise InvalidSnapshot(
            f"{where}: step {definition.step_names[index]!r} is {steps[index][0].value}, so its "
            f"{waits_for.value} timer must be armed; the snapshot has {timer!r}"
        )


_S = SagaState
_NO_REASON = frozenset({_S.STARTED, _S.PENDING, _S.COMPLETED})


def _story(definition: SagaDefinition, steps: list[_StepRow], where: str) -> SagaState:
    """The saga state its steps' states imply, or InvalidSnapshot if no run could leave them so.

    Steps run in order, each sent once the one before it succeeded: the last step sent (the
    *frontier*) may be in any state, every step before it succeeded (and may be compensated
    since), every step after it is pending. Compensation runs top down over the compensatable
    steps: compensated ones, then at most one under way or given up, then untouched ones.
    """
    kinds = [step.kind for step in definition.steps]
    states = [row[0] for row in steps]
    names = definition.step_names
    sent = [i for i, s in enumerate(states) if s is not STEP_LIFECYCLE.initial]
    if not sent:
        return SAGA_LIFECYCLE.initial
    front = sent[-1]
    head, last = states[front], len(states) - 1

    def bad(story: str) -> InvalidSnapshot:
        return InvalidSnapshot(f"{where}: {story}; its steps are {[s.value for s in states]}")

    for i in range(len(states)):
        succeeded = states[i] in _SUCCEEDED_ONCE and (
            i < front or (i == front and head is _T.SUCCEEDED)
        )
        if i < front and states[i] not in _SUCCEEDED_ONCE:
            raise bad(f"step {names[i]!r} is {states[i].value}, yet a later step was sent")
        if (steps[i][4] is not None) != succeeded:
            has, did = ("has a", "did not") if succeeded is False else ("has no", "did")
            raise bad(f"step {names[i]!r} {has} result, but its success reply {did} arrive")
    undo = [
        states[i]
        for i in range(front, -1, -1)
        if kinds[i].compensable and (i < front or head in _COMPENSATION_STATES)
    ]
    done = next((n for n, s in enumerate(undo) if s is not _T.COMPENSATED), len(undo))
    at = undo[done] if done < len(undo) else None
    if any(s is not _T.SUCCEEDED for s in undo[done + 1 :]) or (
        at is not None and at is not _T.SUCCEEDED and at not in _COMPENSATION_STATES
    ):
        raise bad("compensations run top down, one at a time")
    undoing = done > 0 or (at is not None and at is not _T.SUCCEEDED)
    kind = kinds[front]
    culprit = (
        head in _COMPENSATION_STATES  # a compensatable step that timed out, being undone
        or (head is _T.FAILED and kind is not StepKind.RETRIABLE)
        or (head is _T.TIMED_OUT and kind is StepKind.READ_ONLY)
    )
    if not culprit:
        if undoing:
            raise bad("a step is compensated although no step before the pivot failed")
        if head in _FORWARD_ACTIVE:
            return _S.PENDING
        if head is _T.SUCCEEDED and front == last:
            return _S.COMPLETED
        if head in (_T.FAILED, _T.TIMED_OUT) and not kind.before_pivot:
            return (
                _S.OPERATOR_REQUIRED
            )  # a retriable step failed, or the pivot's outcome is unknown
        raise bad(f"step {names[front]!r} is {head.value} and nothing follows it")
    if at is None:
        return _S.FAILED
    if at in _COMPENSATION_ACTIVE:
        return _S.COMPENSATING
    if at is _T.COMPENSATION_FAILED:
        return _S.OPERATOR_REQUIRED
    raise bad(f"step {names[front]!r} failed, yet its compensation stopped")
