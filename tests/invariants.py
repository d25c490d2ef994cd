"""Invariants of one saga's run: pure functions over what the engine emitted and what the
participants did, each returning the violations it finds (empty when the run is sound)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from helpers import Ledger

from sagafsm import (
    CancelTimer,
    Command,
    CompensateStep,
    Event,
    ExecuteStep,
    SagaDefinition,
    SagaFinished,
    StartTimer,
    StepKind,
    StepSucceeded,
    TimerFired,
)

_COMMANDS = (ExecuteStep, CompensateStep, StartTimer, CancelTimer, SagaFinished)


def command_violations(definition: SagaDefinition, history: Sequence[Command | Event]) -> list[str]:
    """Every rule a saga's history (events and commands, interleaved) must obey, whatever the
    replies were. A command-only history is fine too: timers then count as live until cancelled.
    """
    commands = [c for c in history if isinstance(c, _COMMANDS)]
    out: list[str] = []
    index = definition.index_of
    executed: list[int] = []
    compensated: list[int] = []
    action_keys: dict[str, set[str]] = {}
    compensation_keys: dict[str, set[str]] = {}
    live: set[str] = set()
    pivot_passed = False
    kinds = {s.name: s.kind for s in definition.steps}
    names = definition.step_names
    has_events = len(commands) < len(history)
    replied: dict[str, list[Any]] = {}
    """Step -> the results its success replies carried."""
    known: dict[str, Any] = {}
    """Step -> its result, as later commands carry it."""
    data: list[Any] = []
    if any(isinstance(c, SagaFinished) for c in commands[:-1]):
        out.append("a command after SagaFinished")
    for command in history:
        if isinstance(command, (ExecuteStep, CompensateStep)):
            data.append(command.data)
        if isinstance(command, StepSucceeded):
            replied.setdefault(command.step, []).append(command.result)
        elif isinstance(command, TimerFired):
            live.discard(command.timer_id)
        elif isinstance(command, ExecuteStep):
            if index(command.step) not in executed:
                executed.append(index(command.step))
            out += _results_violations(command, names, known, replied if has_events else None)
            action_keys.setdefault(command.step, set()).add(command.idempotency_key)
            if kinds[command.step] is StepKind.RETRIABLE:
                pivot_passed = True
        elif isinstance(command, CompensateStep):
            i = index(command.step)
            if i not in executed:
                out.append(f"compensating {command.step!r}, whose action was never sent")
            if compensated and i > compensated[-1]:
                out.append(f"compensating {command.step!r} after a step below it")
            if not kinds[command.step].compensable:
                out.append(f"compensating {command.step!r}, a {kinds[command.step].value} step")
            elif pivot_passed:
                out.append(f"compensating {command.step!r} after the pivot")
            compensated.append(i)
            compensation_keys.setdefault(command.step, set()).add(command.idempotency_key)
            if command.action_key not in action_keys.get(command.step, set()):
                out.append(f"{command.step!r}: compensation names an action key never sent")
            # a step that succeeded was followed by another, whose command carried its result
            if command.action_result != known.get(command.step):
                out.append(
                    f"{command.step!r}: compensation carries {command.action_result!r}, "
                    f"its action's result is {known.get(command.step)!r}"
                )
        elif isinstance(command, StartTimer):
            if live:
                out.append(f"timer {command.timer_id} armed while {sorted(live)} still live")
            live = {command.timer_id}
        elif isinstance(command, CancelTimer):
            live.discard(command.timer_id)
    if executed != list(range(len(executed))):
        out.append(f"forward steps sent out of order: {executed}")
    # one key for every try; only a retriable step retried after a definite failure gets a new one
    out += [
        f"{s!r} executed under keys {k}"
        for s, k in action_keys.items()
        if len(k) != 1 and kinds[s] is not StepKind.RETRIABLE
    ]
    out += [f"{s!r} undone under keys {k}" for s, k in compensation_keys.items() if len(k) != 1]
    if any(d != data[0] for d in data):
        out.append(f"the saga's data changed along the way: {data}")
    finished = [c for c in commands if isinstance(c, SagaFinished)]
    if finished:
        out += _finished_violations(finished[-1], names, known, executed)
    return out


def _results_violations(
    command: ExecuteStep,
    names: Sequence[str],
    known: dict[str, Any],
    replied: dict[str, list[Any]] | None,
) -> list[str]:
    """An ExecuteStep carries the results of exactly the steps before it, as their replies
    carried them (``replied`` None: the history has no events to tell)."""
    out: list[str] = []
    before = list(names[: names.index(command.step)])
    if list(command.results) != before:
        out.append(f"{command.step!r} handed results of {list(command.results)}, not {before}")
    for step, result in command.results.items():
        if known.setdefault(step, result) != result:
            out.append(f"{step!r}'s result changed from {known[step]!r} to {result!r}")
        if replied is not None and result not in replied.get(step, []):
            out.append(f"{step!r}'s result {result!r} was carried by none of its replies")
    return out


def _finished_violations(
    finished: SagaFinished, names: Sequence[str], known: dict[str, Any], executed: list[int]
) -> list[str]:
    out: list[str] = []
    state = finished.state.value
    if state != "completed" and not finished.reason:
        out.append(f"{state} without a reason")
    if state == "completed" and finished.reason is not None:
        out.append(f"completed with a reason: {finished.reason!r}")
    if state == "failed" and not any(f"'{names[i]}'" in (finished.reason or "") for i in executed):
        out.append(f"failed, and the reason {finished.reason!r} names no step that ran")
    results = dict(finished.results)
    last = names[-1]
    expected_keys = [*known, last] if state == "completed" else list(known)
    if list(results) != expected_keys:
        out.append(f"{state}: SagaFinished has the results of {list(results)}, not {expected_keys}")
    for step, result in known.items():
        if results.get(step) != result:
            out.append(f"SagaFinished carries {results.get(step)!r} for {step!r}, not {result!r}")
    return out


def effects_left(definition: SagaDefinition, ledger: Ledger) -> set[str]:
    """Steps whose effect is applied and not undone (a read-only step has none to leave)."""
    read_only = {s.name for s in definition.steps if s.kind is StepKind.READ_ONLY}
    return ledger.net() - read_only


def ledger_violations(
    definition: SagaDefinition, finished: SagaFinished, ledger: Ledger
) -> list[str]:
    """The design's correctness properties, judged from what the participants did."""
    out: list[str] = []
    names = definition.step_names
    actions, compensations = ledger.actions(), ledger.compensations()
    if len(actions) != len(set(actions)):
        out.append(f"an action applied twice: {actions}")
    if len(compensations) != len(set(compensations)):
        out.append(f"a compensation applied twice: {compensations}")
    if not set(compensations) <= set(actions):
        out.append(f"compensated {compensations} but applied only {actions}")
    order = [names.index(s) for s in compensations]
    if order != sorted(order, reverse=True):
        out.append(f"compensations not in reverse order: {compensations}")
    state = finished.state.value
    if state == "completed" and (actions != list(names) or compensations):
        out.append(f"completed, yet applied {actions} and compensated {compensations}")
    if state == "failed" and effects_left(definition, ledger):
        out.append(f"failed, yet {sorted(effects_left(definition, ledger))} still applied")
    kinds = {s.name: s.kind.value for s in definition.steps}
    if any(kinds[s] != "compensatable" for s in compensations):
        out.append(
            f"a read-only step, or one at or after the pivot, was compensated: {compensations}"
        )
    out += [f"compensation refused (not its action's result): {c!r}" for c in ledger.refused]
    out += ledger.wrong_input
    return out
