"""Checks at the door: every public entry point refuses a bad value before anything changes.

Each function returns the value (normalised where that is free) or raises
:class:`~sagafsm.errors.InvalidArgument` naming what was wrong and where.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from .errors import InvalidArgument

__all__ = ["check_name", "check_now", "check_json_mapping", "is_json_value"]

_MAX_DEPTH = 32


def check_name(value: Any, what: str) -> str:
    """A non-empty string (a saga id, a step name...)."""
    if not isinstance(value, str) or not value:
        raise InvalidArgument(f"{what} must be a non-empty string, got {value!r}")
    return value


def check_now(now: Any) -> float:
    """The driver's current time: a finite number of seconds (an int is taken as is)."""
    cls = now.__class__
    if cls is float:
        if math.isfinite(now):
            return now  # type: ignore[no-any-return]
    elif cls is int or (
        isinstance(now, (int, float)) and not isinstance(now, bool) and math.isfinite(now)
    ):
        return float(now)
    raise InvalidArgument(f"now must be a finite number of seconds, got {now!r}")


def is_json_value(value: Any, depth: int = 0) -> bool:
    """Whether ``value`` is plain JSON data: None, bool, int, finite float, str, and lists and
    string-keyed mappings of those (nested at most 32 deep)."""
    if value is None or value.__class__ in (str, bool, int):
        return True
    if value.__class__ is float:
        return math.isfinite(value)
    if depth >= _MAX_DEPTH:
        return False
    if isinstance(value, Mapping):
        return all(isinstance(k, str) and is_json_value(v, depth + 1) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return all(is_json_value(v, depth + 1) for v in value)
    return False


def check_json_mapping(value: Any, what: str) -> Mapping[str, Any]:
    """A mapping from strings to plain JSON data (see :func:`is_json_value`)."""
    if not isinstance(value, Mapping):
        raise InvalidArgument(f"{what} must be a mapping, got {value!r}")
    if not is_json_value(value):
        raise InvalidArgument(
            f"{what} must hold only JSON data (str keys; None, bool, int, finite float, str, "
            f"lists and mappings), got {value!r}"
        )
    return value
