"""The number, mutant and crash-spec checks both run plans make before anything starts.

``sagafsm run`` refuses bad input in one line, exit 2, before any store or process exists; the
orchestrated plan (:class:`.supervisor.RunPlan`) and the choreographed one
(:class:`.choreography_supervisor.ChoreographyPlan`) share these so that a flag means the same
under either style and is refused in the same words.
"""

from __future__ import annotations

from collections.abc import Iterable

from ..errors import InvalidConfig

__all__ = ["check_counts", "check_crash_specs", "check_mutant"]


def check_counts(
    *,
    sagas: object,
    concurrency: object,
    timeout: object,
    kill_every: object,
    deadline: object,
    kills: object,
) -> None:
    """Counts at least 1, durations positive (or None), kills 0 or more."""
    for name, value in (("sagas", sagas), ("concurrency", concurrency)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise InvalidConfig(f"--{name} must be at least 1, got {value!r}")
    for name, value in (("timeout", timeout), ("kill-every", kill_every), ("deadline", deadline)):
        if value is not None and not (
            isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0
        ):
            raise InvalidConfig(f"--{name} must be positive, got {value!r}")
    if isinstance(kills, bool) or not isinstance(kills, int) or kills < 0:
        raise InvalidConfig(f"kills must be an int, 0 or more, got {kills!r}")


def check_mutant(mutant: str | None, known: Iterable[str], run: str) -> None:
    """``mutant`` is None or one of ``known``; ``run`` names the kind of run in the refusal."""
    names = tuple(known)
    if mutant is not None and mutant not in names:
        raise InvalidConfig(f"unknown mutant {mutant!r} for {run}; known: {', '.join(names)}")


def check_crash_specs(specs: Iterable[str], points: Iterable[str], whose: str) -> None:
    """Each spec is ``POINT:COUNT`` with a count of at least 1 and a point among ``points``;
    ``whose`` names the points in the refusal."""
    allowed = tuple(points)
    for spec in specs:
        point, _, count = spec.partition(":")
        if point not in allowed or not (count.isdigit() and int(count) >= 1):
            raise InvalidConfig(
                f"crash spec {spec!r}: not POINT:COUNT with a count of at least 1 and "
                f"{whose} among {', '.join(allowed)}"
            )
