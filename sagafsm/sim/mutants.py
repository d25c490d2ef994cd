"""Deliberately broken variants of the engine, the participants and the orchestrator.

A checker is trusted only once it catches a mutant: ``sagafsm selfcheck`` runs each one on every
built-in scenario it applies to, under a fault plan able to expose it there
(:meth:`Mutant.plan_for`), and the correct system under the same plan. A mutant that cannot go
wrong on a saga (forward-order compensation with one compensatable step, compensating after the
pivot with no pivot) says why in one line (:meth:`Mutant.refusal`) instead of running.

The broken engines live in :mod:`.mutant_engines`. They are wrong on purpose: never use them for
anything but that.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import attrs

from ..choreography.examples import order_saga_as_written_unchecked
from ..choreography.table import ChoreographyDefinition
from ..definition import SagaDefinition, StepKind
from ..engine import SagaInstance
from ..errors import InvalidConfig
from .choreography_node import Switches
from .mutant_engines import (
    CompensateAfterPivot,
    CompensateReadOnly,
    ForwardOrderCompensation,
    NoCompensationRetry,
    TutorialOrchestrator,
    WrongCompensationResult,
)

__all__ = ["Mutant", "MUTANTS", "get_mutant"]

Requirement = Callable[[SagaDefinition], "str | None"]
"""Why a mutant cannot run on a saga (None: it can)."""


def _anywhere(definition: SagaDefinition) -> str | None:
    return None


def _compensatable(count: int) -> Requirement:
    wanted = "a compensatable step" if count == 1 else f"{count} compensatable steps"

    def needs(definition: SagaDefinition) -> str | None:
        have = sum(step.kind.compensable for step in definition.steps)
        if have >= count:
            return None
        return f"it needs {wanted} (saga {definition.name!r} has {have})"

    return needs


def _pivot_and_retriable(definition: SagaDefinition) -> str | None:
    if definition.pivot is not None and any(
        step.kind is StepKind.RETRIABLE for step in definition.steps
    ):
        return None
    return f"it needs a pivot and a retriable step (saga {definition.name!r} has no " + (
        "pivot)" if definition.pivot is None else "retriable step)"
    )


def _read_only(definition: SagaDefinition) -> str | None:
    if any(step.kind is StepKind.READ_ONLY for step in definition.steps):
        return None
    return f"it needs a read-only step (saga {definition.name!r} has none)"


@attrs.frozen(kw_only=True)
class Mutant:
    name: str
    description: str
    exposing: Mapping[str, Any]
    """A fault plan (configuration data, over a fault-free base) able to expose it, on any
    scenario it applies to unless :attr:`exposing_on` has one for that scenario."""
    catches: tuple[str, ...]
    """Properties expected to fire (selfcheck reports every property that did)."""
    scenario: str = "order_fulfillment"
    """The built-in scenario that shows it best (the explorer's tests search there)."""
    exposing_on: Mapping[str, Mapping[str, Any]] = attrs.field(factory=dict)
    """Scenario name -> the plan that exposes it there (in place of :attr:`exposing`)."""
    requires: Requirement = _anywhere
    engine: type[SagaInstance] = SagaInstance
    participant_dedup: bool = True
    participant_tombstones: bool = True
    send_before_save: bool = False
    style: str = "orchestration"
    """``"choreography"``: a broken choreographed participant (:attr:`switches`) or table
    (:attr:`choreography`); it always runs choreographed."""
    switches: Switches = attrs.field(factory=Switches)
    choreography: Callable[[], ChoreographyDefinition] | None = None
    """The table it runs in place of the scenario's (None: the scenario's own)."""

    @property
    def expected_set(self) -> frozenset[str]:
        return frozenset(self.catches)

    def plan_for(self, scenario: str) -> Mapping[str, Any]:
        """The fault plan that exposes this mutant on ``scenario`` (a scenario's name)."""
        return self.exposing_on.get(scenario, self.exposing)

    def refusal(self, definition: SagaDefinition) -> str | None:
        """Why this mutant cannot go wrong on ``definition``, in one line; None if it can."""
        return self.requires(definition)

    def check_applies(self, scenario: str, definition: SagaDefinition) -> None:
        """Raise :class:`~sagafsm.InvalidConfig` (one line) if this mutant does not apply."""
        reason = self.refusal(definition)
        if reason is not None:
            raise InvalidConfig(
                f"mutant {self.name!r} does not apply to scenario {scenario!r}: {reason}"
            )


def _order_services(definition: SagaDefinition) -> str | None:
    have = {step.participant for step in definition.steps}
    missing = sorted({"inventory", "payment", "shipping"} - have)
    if not missing:
        return None
    return (
        f"it runs the notes' order saga, whose participants {', '.join(missing)} "
        f"saga {definition.name!r} does not have"
    )


# -- the catalogue -----------------------------------------------------------------------------

_STRESS = {"sagas": 400, "seed": 11}
_FAILING = {**_STRESS, "participant": {"failure_rate": 0.2}}
_CHOREOGRAPHED = {**_STRESS, "style": "choreography"}
MUTANTS: dict[str, Mutant] = {
    m.name: m
    for m in (
        Mutant(
            name="tutorial-orchestrator",
            description="the saga tutorials' orchestrator: compensates only replied steps, "
            "advances on late and duplicate replies, hangs when the first step fails",
            engine=TutorialOrchestrator,
            catches=(
                "termination",
                "completed-exactly-once",
                "compensated-exactly-once",
                "pivot-rule",
                "outbox-rule",
            ),
            exposing={
                **_STRESS,
                "step_timeout": 0.05,
                "participant": {"failure_rate": 0.1, "hang_rate": 0.05, "hang_lands": 1.0},
                "faults": {"duplicate": 0.1, "reorder": 0.1},
            },
        ),
        Mutant(
            name="no-dedup-participant",
            description="participants apply a duplicated command twice",
            participant_dedup=False,
            catches=("no-duplicate-effect",),
            exposing={**_STRESS, "faults": {"duplicate": 0.2}},
        ),
        Mutant(
            name="forward-order-compensation",
            description="compensations run in forward order",
            engine=ForwardOrderCompensation,
            requires=_compensatable(2),
            catches=("reverse-order",),
            exposing=_FAILING,
        ),
        Mutant(
            name="no-compensation-retry",
            description="a failed compensation is dropped, not retried",
            engine=NoCompensationRetry,
            requires=_compensatable(1),
            catches=("compensated-exactly-once",),
            exposing={
                **_STRESS,
                "participant": {"failure_rate": 0.2, "compensation_failure_rate": 0.3},
            },
        ),
        Mutant(
            name="no-tombstone",
            description="an action arriving after its compensation is applied",
            participant_tombstones=False,
            requires=_compensatable(1),
            catches=("no-effect-after-compensation",),
            exposing={
                **_STRESS,
                "step_timeout": 0.05,
                "faults": {"loss": 0.2, "reorder": 0.5, "reorder_delay": "uniform:0.1:1.0"},
            },
        ),
        Mutant(
            name="send-before-save",
            description="the orchestrator sends commands before saving its state",
            send_before_save=True,
            catches=("outbox-rule", "termination"),
            exposing={
                **_STRESS,
                "store_latency": 0.005,
                "faults": {"orchestrator_crash_rate": 2.0, "orchestrator_downtime": "const:0.1"},
            },
        ),
        Mutant(
            name="compensate-after-pivot",
            description="a step after the pivot that cannot finish makes the saga compensate, "
            "although the pivot already landed",
            scenario="travel_booking",
            engine=CompensateAfterPivot,
            requires=_pivot_and_retriable,
            catches=("pivot-rule",),
            exposing={**_STRESS, "retry_attempts": 2, "participant": {"failure_rate": 0.3}},
            exposing_on={
                "travel_booking": {**_STRESS, "participants": {"mailer": {"failure_rate": 0.9}}}
            },
        ),
        Mutant(
            name="wrong-compensation-result",
            description="a compensation is handed another step's result",
            engine=WrongCompensationResult,
            requires=_compensatable(2),
            catches=("compensation-input",),
            exposing=_FAILING,
        ),
        Mutant(
            name="tutorial-choreography",
            description="the notes' choreographed order saga as written (validation refuses "
            "it): nothing handles a failed reservation, no deadline anywhere, a failed shipment "
            "refunds and releases side by side and never fails the order",
            style="choreography",
            choreography=order_saga_as_written_unchecked,
            requires=_order_services,
            catches=("termination",),
            exposing={**_CHOREOGRAPHED, "participant": {"failure_rate": 0.2}},
        ),
        Mutant(
            name="no-dedup-events",
            description="choreographed participants do not deduplicate by event id: a "
            "redelivered event runs its step again",
            style="choreography",
            switches=Switches(dedup=False),
            catches=("no-duplicate-effect",),
            exposing={**_CHOREOGRAPHED, "faults": {"duplicate": 0.2}},
        ),
        Mutant(
            name="no-deadline",
            description="choreographed participants hold no deadline: a step whose action "
            "never answers strands the saga, and the steps before it wait for ever",
            style="choreography",
            switches=Switches(deadlines=False),
            requires=_compensatable(1),
            catches=("termination",),
            exposing={**_CHOREOGRAPHED, "participant": {"hang_rate": 0.5}},
        ),
        Mutant(
            name="emit-before-compensating",
            description="a choreographed participant emits its compensation's event before "
            "the compensation's effect is recorded",
            style="choreography",
            switches=Switches(effect_before_event=False),
            requires=_compensatable(1),
            catches=("effect-before-event",),
            exposing={**_CHOREOGRAPHED, "participant": {"failure_rate": 0.2}},
        ),
        Mutant(
            name="compensate-read-only",
            description="read-only steps are compensated too (with a fake undo_<action>)",
            engine=CompensateReadOnly,
            requires=_read_only,
            catches=("read-only-untouched",),
            exposing=_FAILING,
        ),
    )
}


def get_mutant(name: str) -> Mutant:
    try:
        return MUTANTS[name]
    except KeyError:
        raise InvalidConfig(f"unknown mutant {name!r} (known: {', '.join(MUTANTS)})") from None
