"""Test a saga's handlers on the real runtime, the way every saga should be tested and few are.

::

    from sagafsm.testing import check_saga_handlers

    def test_the_order_handlers():
        check_saga_handlers(order, [inventory, payment, shipping], data={"amount": 10})

Each check runs the saga on the runtime (:class:`~sagafsm.runtime.runtime.Runtime`, a
:class:`~sagafsm.runtime.memory_store.MemoryStore`, the in-process transport and a
:class:`~sagafsm.runtime.host.ParticipantHost` serving your participants) under a virtual clock
that jumps to the next timer whenever nothing else can happen, so a five-minute timeout costs
milliseconds. It judges every run from the participants' ledger in the trace, with the same
checkers that judge a simulation (:func:`sagafsm.checks.check_history`), and with your own
``probe`` if you give one. On a problem it raises :class:`AssertionError` whose message names the
run, what was expected, what happened, and the saga's history; otherwise it returns a report.

- :func:`check_failure_at_every_step`: a definite failure
  (:class:`~sagafsm.runtime.participant.Refused`) injected at each step in turn compensates
  exactly the steps that landed, in reverse order; read-only steps are never compensated, a
  failed pivot compensates what came before it, a retriable step is retried and the saga
  completes.
- :func:`check_duplicate_delivery`: the same runs, with every command delivered twice: each
  action and compensation still has one effect.
- :func:`check_crash_recovery`: for every crash point and every time a clean run reaches it, the
  runtime and the participants are stopped there as a kill would stop them, restarted on the same
  store, and the saga finishes once, with no violation.

``data`` must be data the saga completes with. Handlers keep their effects idempotent by
``call.idempotency_key``, or write them through ``call.db`` (a SQL store, given as
``RunOptions(store=...)``); an effect kept anywhere else may repeat after a crash between the
handler and its commit, which a ``probe`` that counts effects shows.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Iterable, Mapping
from typing import Any, Final, TypeVar

import attrs

from ._saga_run import INJECTED_REASON, RunOptions, SagaRun, run_saga
from .definition import SagaDefinition, StepKind
from .errors import InvalidArgument
from .history import LedgerEffect
from .runtime import crashpoints
from .runtime.participant import Participant

__all__ = [
    "SagaRun",
    "RunOptions",
    "CheckReport",
    "HandlersReport",
    "Probe",
    "INJECTED_REASON",
    "run_saga",
    "check_failure_at_every_step",
    "check_duplicate_delivery",
    "check_crash_recovery",
    "check_saga_handlers",
]

_COMPLETED: Final = "completed"
_FAILED: Final = "failed"
_OPERATOR: Final = "operator_required"

Probe = Callable[[SagaRun], Iterable[str] | None]
"""Your own check after each run: return (or yield) one sentence per problem, or raise
AssertionError. It sees the run (``run.saga_id``, ``run.state``, ``run.failed_step``,
``run.crash``...) and whatever state your handlers keep."""


@attrs.frozen(kw_only=True)
class CheckReport:
    """The runs one check made, and the problems it found (one entry per run gone wrong)."""

    check: str
    definition: str
    runs: tuple[SagaRun, ...]
    problems: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.problems

    def message(self) -> str:
        head = (
            f"sagafsm.testing, {self.check}, saga {self.definition!r}: "
            f"{len(self.problems)} of {len(self.runs)} runs went wrong"
        )
        return "\n".join([head, *self.problems])


@attrs.frozen(kw_only=True)
class HandlersReport:
    """What :func:`check_saga_handlers` ran: each check's report."""

    failures: CheckReport
    duplicates: CheckReport
    crashes: CheckReport

    @property
    def reports(self) -> tuple[CheckReport, ...]:
        return (self.failures, self.duplicates, self.crashes)

    @property
    def ok(self) -> bool:
        return all(report.ok for report in self.reports)


@attrs.frozen(kw_only=True)
class _Plan:
    """What every run of one check shares."""

    definition: SagaDefinition
    participants: list[Participant]
    data: Mapping[str, Any] | None
    probe: Probe | None
    options: RunOptions

    async def run(self, label: str, **how: Any) -> SagaRun:
        return await run_saga(
            self.definition, self.participants, self.data, label=label, options=self.options, **how
        )


# -- what to expect ----------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class _Expect:
    state: str
    ledger: Mapping[str, list[str]]
    compensated: tuple[str, ...] = ()


def _expect_clean(definition: SagaDefinition) -> _Expect:
    ledger = {step.name: [LedgerEffect.ACTION] for step in definition.steps}
    return _Expect(state=_COMPLETED, ledger=ledger)


def _expect_failure(definition: SagaDefinition, index: int) -> _Expect:
    """What the definition says a definite failure of step ``index``'s first try leads to."""
    steps, failed = definition.steps, definition.steps[index]
    ledger: dict[str, list[str]] = {step.name: [] for step in steps}
    if failed.kind is StepKind.RETRIABLE:
        # Retried under a fresh key while tries remain; nothing after the pivot is compensated.
        retried = failed.retry.max_attempts > 1
        for step in steps if retried else steps[:index]:
            ledger[step.name] = [LedgerEffect.ACTION]
        ledger[failed.name] = [LedgerEffect.ACTION_FAILED, *[LedgerEffect.ACTION] * retried]
        return _Expect(state=_COMPLETED if retried else _OPERATOR, ledger=ledger)
    landed = steps[:index]  # a failed pivot too: what came before it is undone
    for step in landed:
        ledger[step.name] = [LedgerEffect.ACTION]
        if step.kind is StepKind.COMPENSATABLE:  # a read-only step has nothing to undo
            ledger[step.name].append(LedgerEffect.COMPENSATION)
    ledger[failed.name] = [LedgerEffect.ACTION_FAILED]
    undone = [step.name for step in landed if step.kind is StepKind.COMPENSATABLE]
    return _Expect(state=_FAILED, ledger=ledger, compensated=tuple(reversed(undone)))


# -- judging a run -----------------------------------------------------------------------------


def _problems(run: SagaRun, expect: _Expect | None, probe: Probe | None) -> list[str]:
    found = [f"[{v.property}] {v.detail}" for v in run.violations]
    if expect is not None:
        if run.state != expect.state:
            found.append(
                f"expected the saga to end {expect.state}, it ended {run.state} ({run.reason})"
            )
        for step, effects in expect.ledger.items():
            if run.ledger(step) != effects:
                found.append(
                    f"step {step!r}: expected the ledger {effects}, got {run.ledger(step)}"
                )
        if run.compensated != expect.compensated:
            found.append(
                f"expected compensations in the order {list(expect.compensated)}, "
                f"the ledger shows {list(run.compensated)}"
            )
    if probe is not None:
        try:
            found += [f"your probe: {problem}" for problem in probe(run) or ()]
        except AssertionError as error:
            found.append(f"your probe: {error}")
    return found


def _entry(run: SagaRun, found: list[str]) -> str:
    """One run's problems, and its history, as one readable block."""
    lines = [f"- {run.label} (saga {run.saga_id!r}):", *(f"    {problem}" for problem in found)]
    lines.append("    history:")
    lines += [f"      {line}" for line in run.history().splitlines()]
    return "\n".join(lines)


def _crash_problems(run: SagaRun, counted: SagaRun) -> list[str]:
    if not run.crashed:
        return ["the crash point was never reached (does the run depend on chance?)"]
    if run.state is None:
        # Never committed: fine if the start was refused and nothing of the saga happened
        # (effects of a saga never started are the checkers' "single-run" violation).
        if run.accepted:
            return ["the runtime accepted the start, yet the saga is not in its store"]
        return []
    if run.state != counted.state:
        return [
            f"the saga ended {run.state} ({run.reason}); without the crash it ended "
            f"{counted.state} (a handler whose effect is kept outside its transaction?)"
        ]
    return []


# -- the checks --------------------------------------------------------------------------------


async def _failures(plan: _Plan, *, duplicate: bool) -> CheckReport:
    prefix = "duplicated, " if duplicate else ""
    definition = plan.definition
    clean = await plan.run(f"{prefix}clean", duplicate=duplicate)
    runs, problems = [clean], []
    found = _problems(clean, _expect_clean(definition), plan.probe)
    if found:
        problems.append(_entry(clean, found))
    if clean.state == _COMPLETED:
        for index, step in enumerate(definition.steps):
            label = f"{prefix}failure at step {step.name}"
            run = await plan.run(label, fail_step=step.name, duplicate=duplicate)
            runs.append(run)
            found = _problems(run, _expect_failure(definition, index), plan.probe)
            if found:
                problems.append(_entry(run, found))
    else:
        problems.append("- the clean run must complete: give data the saga completes with")
    return CheckReport(
        check="duplicate delivery" if duplicate else "failure at every step",
        definition=definition.name,
        runs=tuple(runs),
        problems=tuple(problems),
    )


async def _crashes(plan: _Plan) -> CheckReport:
    counted = await plan.run("crash points counted", count_crash_points=True)
    runs, problems = [counted], []
    found = _problems(counted, None, plan.probe)
    if found:
        problems.append(_entry(counted, found))
    for point in crashpoints.CRASH_POINTS:
        for n in range(1, counted.hits.get(point, 0) + 1):
            run = await plan.run(f"crash at {point} #{n}", crash=(point, n))
            runs.append(run)
            found = _crash_problems(run, counted) + _problems(run, None, plan.probe)
            if found:
                problems.append(_entry(run, found))
    return CheckReport(
        check="crash recovery",
        definition=plan.definition.name,
        runs=tuple(runs),
        problems=tuple(problems),
    )


async def _all(plan: _Plan) -> HandlersReport:
    return HandlersReport(
        failures=await _failures(plan, duplicate=False),
        duplicates=await _failures(plan, duplicate=True),
        crashes=await _crashes(plan),
    )


_T = TypeVar("_T")


def _sync(run: Callable[[_Plan], Coroutine[Any, Any, _T]], plan: _Plan) -> _T:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(run(plan))
    raise InvalidArgument(
        "the sagafsm.testing checks run their own event loop: call them from a plain (not "
        "async) test function, or await run_saga() in async code"
    )


def _plan(
    definition: SagaDefinition,
    participants: Iterable[Participant],
    data: Mapping[str, Any] | None,
    probe: Probe | None,
    options: RunOptions | None,
) -> _Plan:
    if not isinstance(definition, SagaDefinition):
        raise InvalidArgument(f"a definition must be a SagaDefinition, got {definition!r}")
    return _Plan(
        definition=definition,
        participants=list(participants),
        data=data,
        probe=probe,
        options=options or RunOptions(),
    )


def _checked(report: CheckReport) -> CheckReport:
    if not report.ok:
        raise AssertionError(report.message())
    return report


def check_failure_at_every_step(
    definition: SagaDefinition,
    participants: Iterable[Participant],
    data: Mapping[str, Any] | None = None,
    *,
    probe: Probe | None = None,
    options: RunOptions | None = None,
) -> CheckReport:
    """A clean run completes, one action per step; then a definite failure at each step in turn
    compensates exactly the steps that landed, in reverse order, as the definition says (module
    docstring). AssertionError listing every run that went otherwise."""
    plan = _plan(definition, participants, data, probe, options)
    return _checked(_sync(lambda p: _failures(p, duplicate=False), plan))


def check_duplicate_delivery(
    definition: SagaDefinition,
    participants: Iterable[Participant],
    data: Mapping[str, Any] | None = None,
    *,
    probe: Probe | None = None,
    options: RunOptions | None = None,
) -> CheckReport:
    """The runs of :func:`check_failure_at_every_step` with every command delivered twice: each
    action and each compensation still takes effect once, and every run ends as it should."""
    plan = _plan(definition, participants, data, probe, options)
    return _checked(_sync(lambda p: _failures(p, duplicate=True), plan))


def check_crash_recovery(
    definition: SagaDefinition,
    participants: Iterable[Participant],
    data: Mapping[str, Any] | None = None,
    *,
    probe: Probe | None = None,
    options: RunOptions | None = None,
) -> CheckReport:
    """A crash at every hit of every crash point of a clean run recovers: restarted on the same
    store, the saga finishes once, as it would have without the crash, with no violation (or,
    crashed before its start was committed, nothing of it happened)."""
    plan = _plan(definition, participants, data, probe, options)
    return _checked(_sync(_crashes, plan))


def check_saga_handlers(
    definition: SagaDefinition,
    participants: Iterable[Participant],
    data: Mapping[str, Any] | None = None,
    *,
    probe: Probe | None = None,
    options: RunOptions | None = None,
) -> HandlersReport:
    """All three checks; one AssertionError with every problem of every check, if any."""
    report = _sync(_all, _plan(definition, participants, data, probe, options))
    if not report.ok:
        raise AssertionError("\n\n".join(r.message() for r in report.reports if not r.ok))
    return report
