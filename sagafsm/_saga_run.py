"""One run of a saga for :mod:`sagafsm.testing`: what was done to it and what came of it.

:func:`run_saga` is the building block of every check there: a fresh store, the saga run to its
end by the :class:`~sagafsm._harness.Driver` (with a failure injected, commands duplicated or a
crash point armed, as asked), and a :class:`SagaRun` holding the run's whole trace and the
checkers' verdict on it. The checks only decide what to expect of it.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, Final

import attrs

from ._harness import Driver, RunStore, arm_for_counting, crash_point_hits
from .checks import Violation, check_history
from .definition import SagaDefinition, StepDefinition
from .errors import InvalidConfig
from .history import LedgerEffect, RawRecord, format_record
from .runtime import crashpoints
from .runtime.host import ParticipantHost
from .runtime.memory_store import MemoryStore
from .runtime.participant import ActionCall, Participant, Refused, check_handlers
from .runtime.runtime import Runtime

__all__ = ["RunOptions", "SagaRun", "INJECTED_REASON", "run_saga"]

INJECTED_REASON: Final = "injected by sagafsm.testing"
"""The start of the reason of every failure the checks inject (the failed saga's reason)."""

_HISTORY_LINES: Final = 80
_NOT_IN_AN_ID: Final = re.compile(r"[^A-Za-z0-9_.]+")


@attrs.frozen(kw_only=True)
class RunOptions:
    """How the runs are made. ``store`` makes each run's fresh store (a
    :class:`~sagafsm.runtime.memory_store.MemoryStore` unless given: give a SQLite one when your
    handlers write through ``call.db``). ``runtime_class`` and ``host_class`` exist to show that
    the checks catch a broken runtime or participant host (:mod:`sagafsm.runtime.mutants`).
    ``max_jumps`` caps the clock's jumps to the next timer in one run, ``settle_timeout`` the
    real seconds a run may go without settling; ``handler_timeout`` (real seconds) abandons a
    handler that hangs, as the host does in production."""

    store: Callable[[], RunStore] | None = None
    runtime_class: type[Runtime] = Runtime
    host_class: type[ParticipantHost] = ParticipantHost
    max_jumps: int = 10_000
    settle_timeout: float = 30.0
    handler_timeout: float | None = 10.0


@attrs.frozen(kw_only=True)
class SagaRun:
    """One run of the saga: what was done to it, how it ended, and its whole trace."""

    label: str
    saga_id: str
    data: Mapping[str, Any] | None
    failed_step: str | None = None
    """The step whose action was made to refuse its first call."""
    duplicated: bool = False
    """Every command was delivered twice."""
    crash: tuple[str, int] | None = None
    """The crash point armed, and at which of its hits it crashes."""
    crashed: tuple[str, ...] = ()
    """The crash points that fired."""
    accepted: bool
    """The runtime acknowledged the start (it does not when a crash comes first)."""
    state: str | None
    """The saga's final state; None if its start was never committed."""
    reason: str | None
    results: Mapping[str, Any] | None
    records: tuple[RawRecord, ...]
    """Every trace record of the run: the runtime's, and the participants' ledger."""
    violations: tuple[Violation, ...]
    """What :func:`sagafsm.checks.check_history` found in ``records``."""
    jumps: int
    """How often the virtual clock jumped to the next timer."""
    virtual_seconds: float
    """Virtual time at the end of the run (it starts at 0)."""
    hits: Mapping[str, int] = attrs.field(factory=dict)
    """How often each crash point was reached (in a run asked to count them)."""

    @property
    def effects(self) -> tuple[tuple[str, str], ...]:
        """``(step, effect)`` of this saga's ledger, in the order the participants wrote them."""
        saga = self.saga_id
        return tuple((r[4], r[5]) for r in self.records if r[1] == "effect" and r[2] == saga)

    def ledger(self, step: str) -> list[str]:
        """The effects one step's participant wrote for this saga, in order."""
        return [effect for name, effect in self.effects if name == step]

    @property
    def compensated(self) -> tuple[str, ...]:
        """The steps whose compensation took effect, in the order it did."""
        return tuple(name for name, effect in self.effects if effect == LedgerEffect.COMPENSATION)

    def history(self) -> str:
        """This saga's records (and the restarts) as readable lines."""
        lines = [format_record(r) for r in self.records if r[2] in (self.saga_id, None)]
        if len(lines) > _HISTORY_LINES:
            lines = [*lines[:_HISTORY_LINES], f"... ({len(lines) - _HISTORY_LINES} more)"]
        return "\n".join(lines)


def _refuse_once(
    handler: Callable[[ActionCall], Awaitable[Mapping[str, Any] | None]],
    step: str,
    left: list[int],
) -> Callable[[ActionCall], Awaitable[Mapping[str, Any] | None]]:
    async def refuse_once(call: ActionCall) -> Mapping[str, Any] | None:
        if call.step == step and left[0] > 0:
            left[0] -= 1
            raise Refused(f"{INJECTED_REASON}: step {step!r} fails")
        return await handler(call)

    return refuse_once


def _failing(participants: Iterable[Participant], step: StepDefinition) -> list[Participant]:
    """Copies of the participants in which ``step``'s action refuses its first call (only that
    step's: two steps may share an action). The user's participants are left alone."""
    left = [1]
    copies = []
    for participant in participants:
        if participant.name != step.participant:
            copies.append(participant)
            continue
        copy = Participant(participant.name)
        for name, handler in participant.actions.items():
            copy.action(name)(
                _refuse_once(handler, step.name, left) if name == step.action else handler
            )
        for name, compensation in participant.compensations.items():
            copy.compensation(name)(compensation)
        copies.append(copy)
    return copies


async def run_saga(
    definition: SagaDefinition,
    participants: Iterable[Participant],
    data: Mapping[str, Any] | None = None,
    *,
    label: str = "run",
    saga_id: str | None = None,
    fail_step: str | None = None,
    duplicate: bool = False,
    crash: tuple[str, int] | None = None,
    count_crash_points: bool = False,
    options: RunOptions | None = None,
) -> SagaRun:
    """Run the saga once, to its end, on a fresh store: the building block of the checks.

    ``fail_step`` makes that step's action refuse its first call; ``duplicate`` delivers every
    command twice; ``crash=(point, n)`` crashes at the ``n``-th hit of that crash point, then
    restarts the runtime and the host on the same store; ``count_crash_points`` counts every
    point's hits (:attr:`SagaRun.hits`). The saga id is ``<definition>-<label>`` unless given.
    Raises :class:`~sagafsm.errors.InvalidConfig` for a missing handler (or crash points armed
    from elsewhere), and AssertionError if the saga cannot end.
    """
    options = options or RunOptions()
    participants = list(participants)
    check_handlers([definition], participants)
    if crashpoints.armed():
        raise InvalidConfig(
            f"crash points are armed already ({', '.join(crashpoints.armed())}; "
            f"{crashpoints.ENVIRONMENT_VARIABLE} set?): sagafsm.testing arms its own"
        )
    if fail_step is not None:
        participants = _failing(participants, definition.steps[definition.index_of(fail_step)])
    store = options.store() if options.store is not None else MemoryStore()
    if saga_id is None:
        saga_id = f"{definition.name}-{_NOT_IN_AN_ID.sub('-', label).strip('-')}"
    driver = Driver(
        definition,
        participants,
        store,
        saga_id=saga_id,
        data=data,
        duplicate=duplicate,
        runtime_class=options.runtime_class,
        host_class=options.host_class,
        max_jumps=options.max_jumps,
        settle_timeout=options.settle_timeout,
        handler_timeout=options.handler_timeout,
    )
    hits: dict[str, int] = {}
    try:
        if count_crash_points:
            arm_for_counting()
        elif crash is not None:
            crashpoints.arm(crash[0], crash[1], action="raise")
        status = await driver.run()
        if count_crash_points:
            hits = crash_point_hits()
        crashpoints.disarm()
        records = tuple(await store.trace())
    finally:
        crashpoints.disarm()
        await driver.close()
    return SagaRun(
        label=label,
        saga_id=saga_id,
        data=data,
        failed_step=fail_step,
        duplicated=duplicate,
        crash=crash,
        crashed=tuple(driver.crashes),
        accepted=driver.accepted,
        state=None if status is None else status.state,
        reason=None if status is None else status.reason,
        results=None if status is None else status.results,
        records=records,
        violations=tuple(check_history(records, definition)),
        jumps=driver.jumps,
        virtual_seconds=driver.clock.now(),
        hits=hits,
    )
