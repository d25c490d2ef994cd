"""Saga and step definitions: frozen values, validated when built.

Step kinds follow Garcia-Molina & Salem (1987) and Richardson (*Microservices Patterns*, 4.3):
compensatable steps first, each with a compensation, and read-only steps among them (a
verification: nothing to undo); then at most one pivot, the point of no return; then retriable
steps, which are retried until they succeed. A definition that breaks these rules, or holds a value
of the wrong type, raises :class:`~sagafsm.InvalidDefinition` when it is built, never while a saga
runs.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from typing import Any

import attrs

from ._validate import is_finite_number
from .errors import InvalidArgument, InvalidDefinition, UnknownStep

__all__ = ["StepKind", "RetryPolicy", "StepDefinition", "SagaDefinition", "SagaBuilder"]


class StepKind(enum.Enum):
    COMPENSATABLE = "compensatable"
    """Can be undone by its compensation; comes before the pivot."""
    READ_ONLY = "read_only"
    """Has no effect to undo (a verification, a lookup): no compensation, never compensated.
    Comes before the pivot; its failure aborts the saga like a compensatable step's."""
    PIVOT = "pivot"
    """The go/no-go step: once it succeeds the saga can only go forward. Has no compensation."""
    RETRIABLE = "retriable"
    """After the pivot; retried (failures included) until it succeeds. Has no compensation."""

    @property
    def compensable(self) -> bool:
        """Whether a step of this kind has a compensation that undoes it."""
        return self is StepKind.COMPENSATABLE

    @property
    def before_pivot(self) -> bool:
        """Whether a step of this kind comes before the pivot: its failure or timeout aborts the
        saga, which then compensates what landed."""
        return self is StepKind.COMPENSATABLE or self is StepKind.READ_ONLY


_finite_number = is_finite_number


def _positive_number(value: Any) -> bool:
    return _finite_number(value) and value > 0


@attrs.frozen(kw_only=True)
class RetryPolicy:
    """How often an operation is tried, and how long to wait between tries.

    The wait after failed try ``n`` (1-based) is ``min(initial_backoff * multiplier ** (n - 1),
    max_backoff)``. There is no jitter: the engine draws no random number; a driver that wants
    jitter adds it when it arms the timer.
    """

    max_attempts: int = 3
    initial_backoff: float = 0.05
    multiplier: float = 2.0
    max_backoff: float = 5.0

    def __attrs_post_init__(self) -> None:
        if isinstance(self.max_attempts, bool) or not isinstance(self.max_attempts, int):
            raise InvalidDefinition(f"max_attempts must be an integer, got {self.max_attempts!r}")
        if self.max_attempts < 1:
            raise InvalidDefinition(f"max_attempts must be at least 1, got {self.max_attempts}")
        if not (_finite_number(self.initial_backoff) and self.initial_backoff >= 0):
            raise InvalidDefinition(
                f"initial_backoff must be a number >= 0, got {self.initial_backoff!r}"
            )
        if not (_finite_number(self.multiplier) and self.multiplier >= 1):
            raise InvalidDefinition(f"multiplier must be >= 1, got {self.multiplier!r}")
        if not (_finite_number(self.max_backoff) and self.max_backoff >= self.initial_backoff):
            raise InvalidDefinition(
                f"max_backoff must be >= initial_backoff ({self.initial_backoff}), "
                f"got {self.max_backoff!r}"
            )

    def backoff(self, failed_attempt: int) -> float:
        """Seconds to wait after try number ``failed_attempt`` (1-based) failed.

        Raises :class:`~sagafsm.InvalidArgument` if ``failed_attempt`` is not an integer >= 1.
        """
        if failed_attempt.__class__ is not int or failed_attempt < 1:
            raise InvalidArgument(f"failed_attempt must be an integer >= 1, got {failed_attempt!r}")
        try:
            delay = self.initial_backoff * self.multiplier ** (failed_attempt - 1)
        except OverflowError:  # a long retry budget: the geometric wait is far past the cap
            return self.max_backoff
        return min(delay, self.max_backoff)


_STEP_OPTIONS = ("timeout", "retry", "compensation_timeout", "compensation_retry")


def _check_option(option: str, value: Any, where: str) -> None:
    """One of the options a step (or a builder, as a default) takes; InvalidDefinition if bad."""
    if option == "timeout":
        if not _positive_number(value):
            raise InvalidDefinition(f"{where}: timeout must be a positive number, got {value!r}")
    elif option == "compensation_timeout":
        if value is not None and not _positive_number(value):
            raise InvalidDefinition(
                f"{where}: compensation_timeout must be a positive number or None, got {value!r}"
            )
    elif not isinstance(value, RetryPolicy):
        raise InvalidDefinition(f"{where}: {option} must be a RetryPolicy, got {value!r}")


@attrs.frozen(kw_only=True)
class StepDefinition:
    """One step: which participant does what, and what undoes it.

    ``timeout`` is how long the orchestrator waits for a reply to one try of the action; the
    compensation waits ``compensation_timeout`` (the same as ``timeout`` unless given).
    """

    name: str
    participant: str
    action: str
    compensation: str | None = None
    kind: StepKind = StepKind.COMPENSATABLE
    timeout: float = 1.0
    retry: RetryPolicy = RetryPolicy()
    compensation_timeout: float | None = None
    compensation_retry: RetryPolicy = RetryPolicy(max_attempts=5)

    def __attrs_post_init__(self) -> None:
        for field in ("name", "participant", "action"):
            value = getattr(self, field)
            if not isinstance(value, str) or not value:
                raise InvalidDefinition(f"step {field} must be a non-empty string, got {value!r}")
        where = f"step {self.name!r}"
        if not isinstance(self.kind, StepKind):
            raise InvalidDefinition(f"{where}: kind must be a StepKind, got {self.kind!r}")
        if self.compensation is not None and (
            not isinstance(self.compensation, str) or not self.compensation
        ):
            raise InvalidDefinition(
                f"{where}: compensation must be a non-empty string or None, "
                f"got {self.compensation!r}"
            )
        for option in _STEP_OPTIONS:
            _check_option(option, getattr(self, option), where)
        if self.kind is StepKind.COMPENSATABLE and self.compensation is None:
            raise InvalidDefinition(
                f"{where}: a compensatable step needs a compensation "
                "(declare a step with nothing to undo as read-only)"
            )
        if not self.kind.compensable and self.compensation is not None:
            raise InvalidDefinition(
                f"{where}: a {self.kind.value.replace('_', '-')} step cannot have a compensation "
                + (
                    "(it has no effect to undo)"
                    if self.kind is StepKind.READ_ONLY
                    else "(nothing at or after the pivot is ever undone)"
                )
            )

    @property
    def effective_compensation_timeout(self) -> float:
        return self.timeout if self.compensation_timeout is None else self.compensation_timeout


def _as_tuple(steps: Iterable[StepDefinition]) -> tuple[StepDefinition, ...]:
    if isinstance(steps, (str, bytes, Mapping)) or not isinstance(steps, Iterable):
        raise InvalidDefinition(f"saga steps must be a sequence of StepDefinition, got {steps!r}")
    return tuple(steps)


@attrs.frozen(kw_only=True)
class SagaDefinition:
    """A named, ordered list of steps that obeys the step-kind rules."""

    name: str
    steps: tuple[StepDefinition, ...] = attrs.field(converter=_as_tuple)
    _index: Mapping[str, int] = attrs.field(init=False, eq=False, repr=False)
    _names: tuple[str, ...] = attrs.field(init=False, eq=False, repr=False)

    def __attrs_post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise InvalidDefinition(f"saga name must be a non-empty string, got {self.name!r}")
        where = f"saga {self.name!r}"
        if not self.steps:
            raise InvalidDefinition(f"{where}: has no steps")
        index: dict[str, int] = {}
        pivot: str | None = None
        for i, step in enumerate(self.steps):
            if not isinstance(step, StepDefinition):
                raise InvalidDefinition(f"{where}: step {i} is not a StepDefinition: {step!r}")
            if step.name in index:
                raise InvalidDefinition(f"{where}: duplicate step name {step.name!r}")
            index[step.name] = i
            if step.kind is StepKind.PIVOT:
                if pivot is not None:
                    raise InvalidDefinition(
                        f"{where}: more than one pivot step ({pivot!r} and {step.name!r})"
                    )
                pivot = step.name
            elif step.kind.before_pivot and pivot is not None:
                raise InvalidDefinition(
                    f"{where}: {step.kind.value.replace('_', '-')} step {step.name!r} comes "
                    f"after the pivot {pivot!r}"
                )
            elif step.kind is StepKind.RETRIABLE and pivot is None:
                raise InvalidDefinition(
                    f"{where}: retriable step {step.name!r} comes before any pivot step"
                )
        object.__setattr__(self, "_index", index)
        object.__setattr__(self, "_names", tuple(index))

    def index_of(self, step_name: str) -> int:
        """Position of a step; :class:`~sagafsm.UnknownStep` (a ``KeyError``) if there is none."""
        try:
            return self._index[step_name]
        except (KeyError, TypeError):
            raise UnknownStep(
                f"saga {self.name!r} has no step {step_name!r} "
                f"(its steps: {', '.join(self.step_names)})"
            ) from None

    def has_step(self, step_name: str) -> bool:
        try:
            return step_name in self._index
        except TypeError:  # unhashable
            return False

    @property
    def pivot(self) -> StepDefinition | None:
        """The pivot step, if the saga has one."""
        return next((s for s in self.steps if s.kind is StepKind.PIVOT), None)

    @property
    def step_names(self) -> tuple[str, ...]:
        return self._names


class SagaBuilder:
    """Builds a :class:`SagaDefinition` step by step, with shared defaults.

    ```pycon
    >>> order = (
    ...     SagaBuilder("order", timeout=0.5)
    ...     .step("reserve", participant="inventory", action="reserve", compensation="release")
    ...     .pivot("charge", participant="payment", action="charge")
    ...     .retriable("notify", participant="email", action="send")
    ...     .build()
    ... )
    >>> order.step_names
    ('reserve', 'charge', 'notify')
    ```

    ``options`` of :meth:`step` (and of the builder, as defaults for every step) are
    ``timeout``, ``retry``, ``compensation_timeout`` and ``compensation_retry``. Each is checked
    when it is given: a bad name, option or value raises :class:`~sagafsm.InvalidDefinition` at
    once, not at :meth:`build`.
    """

    def __init__(self, name: str, **defaults: Any) -> None:
        if not isinstance(name, str) or not name:
            raise InvalidDefinition(f"saga name must be a non-empty string, got {name!r}")
        self._name = name
        self._defaults = self._checked(defaults)
        self._steps: list[StepDefinition] = []

    def step(
        self,
        name: str,
        *,
        participant: str,
        action: str,
        compensation: str | None = None,
        kind: StepKind = StepKind.COMPENSATABLE,
        **options: Any,
    ) -> SagaBuilder:
        """Add a step (compensatable unless ``kind`` says otherwise)."""
        fields = {**self._defaults, **self._checked(options)}
        self._steps.append(
            StepDefinition(
                name=name,
                participant=participant,
                action=action,
                compensation=compensation,
                kind=kind,
                **fields,
            )
        )
        return self

    def read_only(self, name: str, *, participant: str, action: str, **options: Any) -> SagaBuilder:
        """Add a read-only step (a verification): nothing to undo, so never compensated."""
        return self.step(
            name, participant=participant, action=action, kind=StepKind.READ_ONLY, **options
        )

    def pivot(self, name: str, *, participant: str, action: str, **options: Any) -> SagaBuilder:
        """Add the pivot: the step after which the saga can only go forward."""
        return self.step(
            name, participant=participant, action=action, kind=StepKind.PIVOT, **options
        )

    def retriable(self, name: str, *, participant: str, action: str, **options: Any) -> SagaBuilder:
        """Add a retriable step (after the pivot; failures are retried too)."""
        return self.step(
            name, participant=participant, action=action, kind=StepKind.RETRIABLE, **options
        )

    def build(self) -> SagaDefinition:
        return SagaDefinition(name=self._name, steps=self._steps)

    def _checked(self, options: dict[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(options) - set(_STEP_OPTIONS))
        if unknown:
            raise InvalidDefinition(
                f"saga {self._name!r}: unknown step option {unknown[0]!r} "
                f"(known: {', '.join(sorted(_STEP_OPTIONS))})"
            )
        for option, value in options.items():
            _check_option(option, value, f"saga {self._name!r}")
        return options
