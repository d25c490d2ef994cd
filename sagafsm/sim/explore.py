"""Search fault placements for a violation, and shrink it to a minimal counterexample.

Two modes. :func:`search` lets Hypothesis place faults (which message of which saga is dropped,
duplicated or delayed past its timeout; which step fails or hangs; when the orchestrator, or a
participant, crashes) and shrinks the first violating plan to the fewest sagas and faults.
:func:`exhaustive` runs every placement of one fault, and of two, on a small run, so "no
violation" is a statement about all of them, with the count. Both return plans as configuration
data that ``sagafsm simulate --config`` and ``sagafsm replay --config`` accept. Needs the
``explore`` extra (Hypothesis searches, plans are saved as TOML): without it, importing this
module raises :class:`~sagafsm.MissingExtra`.
"""

from __future__ import annotations

import itertools
import random
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import attrs

from .._extras import require
from ..checks import Violation
from .config import merge
from .coverage import Coverage
from .mutants import Mutant
from .run import simulate
from .scenario import Scenario
from .selfcheck import NO_FAULTS

require("explore", "sagafsm.sim.explore")  # Hypothesis and tomli-w load when a search runs

__all__ = [
    "Counterexample",
    "ExhaustiveReport",
    "search",
    "exhaustive",
    "plan_data",
    "save_plan",
]

_MESSAGE_FAULTS = ("drop", "duplicate", "delay")
_STEP_FAULTS = ("fail", "hang", "hang_lands", "compensation_fail")
_CRASH_DOWNTIME = 0.1
_STORE_LATENCY = 0.002
"""Explored runs give the orchestrator's store write a little time, so a crash can fall between a
transaction and its commit (what the outbox order is for)."""
_LATE = 20
"""A delayed message arrives this many step timeouts late: after every retry has given up."""


@attrs.frozen(kw_only=True)
class Placement:
    """One fault: on the n-th message of a saga, on a step of a saga, or a crash at a time."""

    saga: int = 0
    fault: str
    message: int | None = None
    step: str | None = None
    at: float | None = None
    """For ``crash`` and ``participant_crash``: when the orchestrator (or ``participant``) goes
    down; it is back ``_CRASH_DOWNTIME`` later."""
    participant: str | None = None


@attrs.frozen(kw_only=True)
class Counterexample:
    data: dict[str, Any]
    """The plan as configuration data (TOML layout), scenario and mutant included."""
    violations: tuple[Violation, ...]
    sagas: int
    faults: int
    seconds: float
    examples: int
    """Plans run before (and while) shrinking."""
    shrunk: bool = True
    """False when the time budget ran out while shrinking: a violating plan, maybe not minimal."""


@attrs.frozen(kw_only=True)
class ExhaustiveReport:
    sagas: int
    single: int
    """Placements of one fault that were run."""
    pairs: int
    """Placements of two faults that were run."""
    violating: int
    first: Counterexample | None
    seconds: float
    planned: int = 0
    """Placements there were to run; more than ``single + pairs`` when the time budget ran out."""


def plan_data(
    scenario: Scenario,
    mutant: Mutant | None,
    sagas: int,
    placements: list[Placement],
    retry_attempts: int | None = None,
    *,
    seed: int = 0,
    scenario_ref: str | None = None,
    style: str | None = None,
) -> dict[str, Any]:
    """Configuration data for a small burst of ``sagas`` with exactly these faults (and, if
    given, that many tries per action), run in ``style`` (a choreography mutant's always runs
    choreographed; an orchestrator crash placement does nothing to a choreography)."""
    timeout = max(step.timeout for step in scenario.definition.steps)
    targeted = []
    crashes = []
    participant_crashes = []
    for p in placements:
        if p.fault == "crash":
            assert p.at is not None
            crashes.append({"start": p.at, "end": p.at + _CRASH_DOWNTIME})
        elif p.fault == "participant_crash":
            assert p.at is not None and p.participant is not None
            window = {"participant": p.participant, "start": p.at, "end": p.at + _CRASH_DOWNTIME}
            participant_crashes.append(window)
        elif p.message is not None:
            entry: dict[str, Any] = {"saga": f"s{p.saga}", "message": p.message, "fault": p.fault}
            if p.fault == "delay":
                entry["delay"] = _LATE * timeout
            targeted.append(entry)
        else:
            targeted.append({"saga": f"s{p.saga}", "step": p.step, "fault": p.fault})
    data = merge(
        NO_FAULTS,
        {
            "scenario": scenario_ref or scenario.name,
            "sagas": sagas,
            "seed": seed,
            "load": {"kind": "burst"},
            "store_latency": _STORE_LATENCY,
            "faults": {
                "targeted": targeted,
                "orchestrator_crashes": crashes,
                "participant_crashes": participant_crashes,
            },
        },
    )
    if retry_attempts is not None:
        data["retry_attempts"] = retry_attempts
    if mutant is not None:
        data["mutant"] = mutant.name
        if mutant.style == "choreography":
            style = mutant.style
    if style is not None:
        data["style"] = style
    return data


def _run(
    scenario: Scenario,
    mutant: Mutant | None,
    data: dict[str, Any],
    coverage: Coverage | None = None,
) -> tuple[Violation, ...]:
    observe = coverage.observe if coverage is not None else None
    return simulate(scenario, scenario.config(data), mutant=mutant, observe=observe).violations


def _arrivals(scenario: Scenario, records: list[tuple[Any, ...]]) -> list[tuple[str, float]]:
    """Just after each delivery to a participant that runs steps, in a run's ``records``: the
    moments a crash of that participant takes what it was asked while it is in service."""
    ledgers = set(_participants(scenario))
    return sorted({(r[4], r[0] + 1e-6) for r in records if r[1] == "deliver" and r[4] in ledgers})


def search(
    scenario: Scenario,
    mutant: Mutant | None = None,
    *,
    max_sagas: int = 3,
    max_message: int = 16,
    max_faults: int = 4,
    max_examples: int = 1000,
    seed: int = 0,
    retry_attempts: int | None = None,
    coverage: Coverage | None = None,
    scenario_ref: str | None = None,
    max_seconds: float | None = None,
    style: str | None = None,
) -> Counterexample | None:
    """Hypothesis search for a violating plan, shrunk to a minimal one; None if none found.

    Plans draw the tries per action from 1 to 3 (shrinking towards 1) unless ``retry_attempts``
    fixes it. Saved plans name the scenario by ``scenario_ref`` (a file's path) or its name.
    ``max_seconds`` bounds the search: when it runs out, the smallest violating plan found so far
    is returned (``shrunk=False``), or None. Hypothesis keeps its files in a temporary directory,
    never in the working directory."""
    from hypothesis import HealthCheck, Phase, Verbosity, find, settings
    from hypothesis import strategies as st
    from hypothesis.errors import NoSuchExample

    steps = list(scenario.definition.step_names)
    participants = _participants(scenario)
    moment = st.integers(0, 50).map(lambda ms: ms / 1000)

    def placement(sagas: int) -> st.SearchStrategy[Placement]:
        saga = st.integers(0, sagas - 1)
        return st.one_of(
            st.builds(
                Placement,
                saga=saga,
                fault=st.sampled_from(_STEP_FAULTS),
                step=st.sampled_from(steps),
            ),
            st.builds(
                Placement,
                saga=saga,
                fault=st.sampled_from(_MESSAGE_FAULTS),
                message=st.integers(1, max_message),
            ),
            st.one_of(  # (one branch for both crashes: they share the others' third)
                st.builds(Placement, fault=st.just("crash"), at=moment),
                st.builds(
                    Placement,
                    fault=st.just("participant_crash"),
                    participant=st.sampled_from(participants),
                    at=moment,
                ),
            ),
        )

    plans = st.integers(1, max_sagas).flatmap(
        lambda n: st.tuples(
            st.just(n),
            st.lists(placement(n), max_size=max_faults),
            st.integers(1, 3) if retry_attempts is None else st.just(retry_attempts),
        )
    )
    runs = 0
    started = time.perf_counter()
    deadline = started + max_seconds if max_seconds is not None else None
    smallest: list[tuple[int, list[Placement], int]] = []

    def violates(plan: tuple[int, list[Placement], int]) -> bool:
        nonlocal runs
        if deadline is not None and time.perf_counter() >= deadline:
            raise _OutOfTime
        runs += 1
        data = plan_data(scenario, mutant, *plan, scenario_ref=scenario_ref, style=style)
        found = bool(_run(scenario, mutant, data, coverage))
        if found:  # while shrinking, each plan that still violates is smaller than the last
            smallest[:] = [plan]
        return found

    shrunk = True
    try:
        with _hypothesis_files_elsewhere():
            sagas, placements, attempts = find(
                plans,
                violates,
                settings=settings(
                    max_examples=max_examples,
                    database=None,
                    deadline=None,
                    phases=[Phase.generate, Phase.shrink],
                    suppress_health_check=list(HealthCheck),
                    verbosity=Verbosity.quiet,
                ),
                random=random.Random(seed),
            )
    except NoSuchExample:
        return None
    except _OutOfTime:
        if not smallest:
            return None
        (sagas, placements, attempts), shrunk = smallest[0], False
    data = plan_data(
        scenario, mutant, sagas, placements, attempts, scenario_ref=scenario_ref, style=style
    )
    return Counterexample(
        data=data,
        violations=_run(scenario, mutant, data),
        sagas=sagas,
        faults=len(placements),
        seconds=time.perf_counter() - started,
        examples=runs,
        shrunk=shrunk,
    )


class _OutOfTime(BaseException):
    """The search's time budget ran out (a BaseException: Hypothesis must not shrink it)."""


@contextmanager
def _hypothesis_files_elsewhere() -> Iterator[None]:
    """Hypothesis caches what it learns under ``./.hypothesis``; a command run in a user's
    directory must not leave it there, so it goes to a temporary directory for the search."""
    from hypothesis import configuration

    previous = getattr(configuration, "__hypothesis_home_directory", None)
    with tempfile.TemporaryDirectory(prefix="sagafsm-hypothesis-") as home:
        configuration.set_hypothesis_home_dir(home)
        try:
            yield
        finally:
            configuration.set_hypothesis_home_dir(previous)


def _participants(scenario: Scenario) -> list[str]:
    """The participants that run steps (the ones a crash can take an operation from)."""
    return list(dict.fromkeys(step.participant for step in scenario.definition.steps))


def _placements(
    scenario: Scenario,
    sagas: int,
    messages: int,
    times: list[float],
    arrivals: list[tuple[str, float]],
) -> Iterator[Placement]:
    for saga in range(sagas):
        for step in scenario.definition.step_names:
            for fault in _STEP_FAULTS:
                yield Placement(saga=saga, fault=fault, step=step)
        for message in range(1, messages + 1):
            for fault in _MESSAGE_FAULTS:
                yield Placement(saga=saga, fault=fault, message=message)
    for at in times:
        yield Placement(fault="crash", at=at)
    for participant, at in arrivals:
        yield Placement(fault="participant_crash", participant=participant, at=at)


def exhaustive(
    scenario: Scenario,
    mutant: Mutant | None = None,
    *,
    sagas: int = 1,
    pairs: bool = True,
    retry_attempts: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    coverage: Coverage | None = None,
    scenario_ref: str | None = None,
    max_seconds: float | None = None,
    style: str | None = None,
) -> ExhaustiveReport:
    """Run every placement of one fault (and of two, with ``pairs``) on ``sagas`` sagas.

    Message placements cover twice the messages a fault-free run sends (retries and compensations
    send more); orchestrator crash placements start just after each message of the fault-free run
    is sent, and participant crash placements just after each message a participant that runs
    steps is delivered (while what it asks is in service). A pair is two of the other placements,
    or one of them with a participant crash just after a delivery of *its* run: what a fault makes
    a participant do (a compensation, a retry) is not in the fault-free run.
    ``max_seconds`` stops it early: the report counts the placements that did run.
    """
    started = time.perf_counter()
    deadline = started + max_seconds if max_seconds is not None else None
    baseline = plan_data(scenario, mutant, sagas, [], retry_attempts, style=style)
    records: list[tuple[Any, ...]] = []
    simulate(scenario, scenario.config(baseline), observe=records.append)
    sends = [r for r in records if r[1] == "send"]
    per_saga = max((sum(1 for r in sends if r[2] == f"s{i}") for i in range(sagas)), default=1)
    times = sorted({r[0] + 1e-6 for r in sends})
    singles = list(_placements(scenario, sagas, 2 * per_saga, times, _arrivals(scenario, records)))
    plans: list[list[Placement]] = [[p] for p in singles]
    if pairs:
        faults = [p for p in singles if p.fault != "participant_crash"]
        plans += [list(pair) for pair in itertools.combinations(faults, 2)]
        for fault in faults:
            if deadline is not None and time.perf_counter() >= deadline:
                break
            data = plan_data(scenario, mutant, sagas, [fault], retry_attempts, style=style)
            run: list[tuple[Any, ...]] = []
            simulate(scenario, scenario.config(data), mutant=mutant, observe=run.append)
            for participant, at in _arrivals(scenario, run):
                crash = Placement(fault="participant_crash", participant=participant, at=at)
                plans.append([fault, crash])
    violating = 0
    first: Counterexample | None = None
    ran = 0
    for done, placements in enumerate(plans, 1):
        if deadline is not None and time.perf_counter() >= deadline:
            break
        ran = done
        data = plan_data(
            scenario,
            mutant,
            sagas,
            placements,
            retry_attempts,
            scenario_ref=scenario_ref,
            style=style,
        )
        found = _run(scenario, mutant, data, coverage)
        if found:
            violating += 1
            if first is None:
                first = Counterexample(
                    data=data,
                    violations=found,
                    sagas=sagas,
                    faults=len(placements),
                    seconds=0.0,
                    examples=done,
                )
        if progress is not None and (done % 100 == 0 or done == len(plans)):
            progress(done, len(plans))
    return ExhaustiveReport(
        sagas=sagas,
        single=min(ran, len(singles)),
        pairs=max(0, ran - len(singles)),
        violating=violating,
        first=first,
        seconds=time.perf_counter() - started,
        planned=len(plans),
    )


def save_plan(data: dict[str, Any], path: str | Path) -> None:
    """Write a plan as TOML (through a temporary file: nothing half-written)."""
    import os
    import tempfile

    import tomli_w

    target = Path(path)
    handle, temporary = tempfile.mkstemp(dir=target.parent, suffix=".toml.partial")
    try:
        with os.fdopen(handle, "wb") as stream:
            tomli_w.dump(data, stream)
        os.replace(temporary, target)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)
