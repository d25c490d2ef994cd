"""Checks at the door: every public entry point refuses a bad value before anything changes.

Each function returns the value (normalised where that is free) or raises
:class:`~sagafsm.errors.InvalidArgument` naming what was wrong and where.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from .errors import InvalidArgument

__all__ = [
    "check_name",
    "check_now",
    "check_json_mapping",
    "check_recorder",
    "is_finite_number",
    "is_json_value",
    "plain_json",
]

_MAX_DEPTH = 32


def is_finite_number(value: Any) -> bool:
    """An int or float (not a bool) that is finite as a float: ``10**400`` is not, since no
    timer or clock can hold it."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # an int too large for a float
        return False


def check_name(value: Any, what: str) -> str:
    """A non-empty string (a saga id, a step name...)."""
    if not isinstance(value, str) or not value:
        raise InvalidArgument(f"{what} must be a non-empty string, got {value!r}")
    return value


def check_now(now: Any) -> float:
    """The driver's current time: a finite number of seconds (an int is taken as is)."""
    if now.__class__ is float:
        if math.isfinite(now):
            return now
    elif is_finite_number(now):
        return float(now)
    raise InvalidArgument(f"now must be a finite number of seconds, got {now!r}")


def is_json_value(value: Any, depth: int = 0) -> bool:
    """Whether ``value`` is plain JSON data: None, bool, int, finite float, str, and lists and
    string-keyed mappings of those (nested at most 32 deep)."""
    cls = value.__class__
    if value is None or cls is str or cls is int or cls is bool:
        return True
    if cls is float:
        return math.isfinite(value)
    if depth >= _MAX_DEPTH:
        return False
    # exact dict and list first: an ABC isinstance check costs several times more
    if cls is dict or (cls is not list and isinstance(value, Mapping)):
        return all(isinstance(k, str) and is_json_value(v, depth + 1) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return all(is_json_value(v, depth + 1) for v in value)
    return False


def check_json_mapping(value: Any, what: str) -> Mapping[str, Any]:
    """A mapping from strings to plain JSON data (see :func:`is_json_value`)."""
    if value.__class__ is not dict and not isinstance(value, Mapping):  # dict: no ABC check
        raise InvalidArgument(f"{what} must be a mapping, got {value!r}")
    if not is_json_value(value):
        raise InvalidArgument(
            f"{what} must hold only JSON data (str keys; None, bool, int, finite float, str, "
            f"lists and mappings), got {value!r}"
        )
    return value


def plain_json(value: Any) -> Any:
    """A deep copy of JSON data (see :func:`is_json_value`) as plain dicts and lists: what a
    snapshot holds, so that it shares nothing with the live saga and survives a JSON round trip
    unchanged (a tuple comes back as a list)."""
    cls = value.__class__
    if value is None or cls is str or cls is int or cls is float or cls is bool:
        return value  # the common leaves first, without an ABC isinstance check
    if cls is dict or (cls is not list and isinstance(value, Mapping)):
        return {k: plain_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain_json(v) for v in value]
    return value


def check_recorder(recorder: Any) -> Any:
    """None, or an object with ``transition()`` and ``ignored()`` methods."""
    if recorder is not None and not (
        callable(getattr(recorder, "transition", None))
        and callable(getattr(recorder, "ignored", None))
    ):
        raise InvalidArgument(
            f"recorder must have transition() and ignored() methods, got {recorder!r}"
        )
    return recorder
