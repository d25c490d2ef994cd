"""Swept parameters: ``KEY=VALUES`` read against the configuration's own types.

A key is any dotted configuration key of a scalar (``faults.loss``, ``load.arrival_rate``,
``participants.payment.capacity``, ``latency``). Its values are a list (``20,50,100``; any type),
or, for a number, a range ``LO:HI:N`` (N evenly spaced values, both ends included; a sampled
design draws from ``LO:HI`` itself). ``none`` is the value None where a key may be unset
(``step_timeout=none,0.5``). Every value is checked by building the configuration it gives, so a
bad one is refused with the configuration's own message, before anything runs.
"""

from __future__ import annotations

import math
import types
import typing
from collections.abc import Mapping
from typing import Any, Literal

import attrs

from ..errors import InvalidConfig
from ..sim.config import SimulationConfig
from ..sim.distributions import Distribution

__all__ = ["Parameter", "parse_parameter", "parameter_from_value", "key_kind"]

Kind = Literal["integer", "number", "text"]

_NOT_SWEPT = {
    "seed": "seeds are swept with --seeds K",
    "scenario": "the scenario is the SCENARIO argument",
}


@attrs.frozen(kw_only=True)
class Parameter:
    """One swept configuration key: the values a grid takes, and the span a sample draws from."""

    key: str
    kind: Kind
    values: tuple[Any, ...]
    """The grid's values, in order (a range gives N evenly spaced ones)."""
    span: tuple[float, float] | None = None
    """``(LO, HI)`` for a range: sampled designs draw anywhere in it; None: a list, which
    sampled designs treat as categories, each equally likely."""

    def sample(self, u: float) -> Any:
        """The value at quantile ``u`` in [0, 1) of this parameter (for sampled designs)."""
        if self.span is None:
            return self.values[min(int(u * len(self.values)), len(self.values) - 1)]
        low, high = self.span
        value = low + u * (high - low)
        return round(value) if self.kind == "integer" else value


def key_kind(key: str) -> tuple[Kind, bool]:
    """What a dotted configuration key holds (integer, number or text) and whether it may be
    None; :class:`~sagafsm.InvalidConfig` for a key that is unknown or not a scalar."""
    if not key or any(not part for part in key.split(".")):
        raise InvalidConfig(f"--param {key!r}: not a configuration key")
    if key in _NOT_SWEPT:
        raise InvalidConfig(f"--param {key}: {_NOT_SWEPT[key]}")
    owner: Any = SimulationConfig
    parts = key.split(".")
    where = ""
    index = 0
    while index < len(parts):
        part = parts[index]
        hints = typing.get_type_hints(owner)
        if part not in hints or part not in attrs.fields_dict(owner):
            known = ", ".join(f.name for f in attrs.fields(owner))
            raise InvalidConfig(f"--param {key}: unknown key {where + part!r} (known: {known})")
        hint = hints[part]
        where += part + "."
        index += 1
        if typing.get_origin(hint) is Mapping:  # participants.NAME..., links.NAME
            if index == len(parts):
                raise InvalidConfig(f"--param {key}: give one entry, {key}.NAME...")
            where += parts[index] + "."
            index += 1
            hint = typing.get_args(hint)[1]
        if attrs.has(hint) and hint is not Distribution:  # a distribution is written as text
            if index == len(parts):
                raise InvalidConfig(f"--param {key}: a table, not a value (sweep one of its keys)")
            owner = hint
            continue
        if index < len(parts):
            raise InvalidConfig(f"--param {key}: {where.rstrip('.')!r} has no keys")
        return _leaf_kind(key, hint)
    raise AssertionError("unreachable")


def _leaf_kind(key: str, hint: Any) -> tuple[Kind, bool]:
    args = typing.get_args(hint)
    optional = isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union
    if optional:
        hint = next(a for a in args if a is not type(None))
    if hint is int:
        return "integer", optional
    if hint is float:
        return "number", optional
    if hint in (str, Distribution) or typing.get_origin(hint) is Literal:
        return "text", optional
    raise InvalidConfig(f"--param {key}: a list of tables, not a value that can be swept")


def parse_parameter(spec: str) -> tuple[str, str]:
    """``KEY=VALUES`` split in two, refused unless both halves are there."""
    key, equals, values = spec.partition("=")
    key, values = key.strip(), values.strip()
    if not equals or not key:
        raise InvalidConfig(f"--param {spec!r}: expected KEY=VALUES (faults.loss=0:0.2:5)")
    if not values:
        raise InvalidConfig(f"--param {key}: no values (give a list a,b,c or a range LO:HI:N)")
    return key, values


def parameter_from_value(key: str, value: str | list[Any] | Any) -> Parameter:
    """The parameter ``key`` takes ``value``: text as on the command line, or (from a config
    file's ``[sweep.params]``) a list of values."""
    kind, optional = key_kind(key)
    if isinstance(value, list):
        if not value:
            raise InvalidConfig(f"--param {key}: an empty list")
        values = tuple(_typed(key, kind, optional, item) for item in value)
        return Parameter(key=key, kind=kind, values=values)
    if not isinstance(value, str):
        return Parameter(key=key, kind=kind, values=(_typed(key, kind, optional, value),))
    text = value.strip()
    if kind != "text" and ":" in text:
        return _range(key, kind, text)
    items = [item.strip() for item in text.split(",")]
    if not all(items):
        raise InvalidConfig(f"--param {key}: an empty value in {text!r}")
    return Parameter(
        key=key, kind=kind, values=tuple(_typed(key, kind, optional, i) for i in items)
    )


def _range(key: str, kind: Kind, text: str) -> Parameter:
    parts = text.split(":")
    if len(parts) not in (2, 3):
        raise InvalidConfig(f"--param {key}: range {text!r} is not LO:HI:N (or LO:HI)")
    low, high = (_number(key, kind, part) for part in parts[:2])
    if not low < high:
        raise InvalidConfig(f"--param {key}: range {text!r} needs LO < HI")
    if len(parts) == 2:  # only sampled designs can use it; a grid says so
        return Parameter(key=key, kind=kind, values=(), span=(low, high))
    try:
        count = int(parts[2])
    except ValueError:
        raise InvalidConfig(f"--param {key}: range {text!r}: N must be an integer") from None
    if count < 2:
        raise InvalidConfig(f"--param {key}: range {text!r}: N must be at least 2")
    values = [low + (high - low) * i / (count - 1) for i in range(count)]
    if kind == "integer":
        values = list(dict.fromkeys(round(v) for v in values))
    return Parameter(key=key, kind=kind, values=tuple(values), span=(low, high))


def _number(key: str, kind: Kind, text: str) -> float:
    value = _typed(key, kind, False, text.strip())
    assert isinstance(value, (int, float))
    return value


def _typed(key: str, kind: Kind, optional: bool, item: Any) -> Any:
    """One value, converted to the key's type (numbers from text; text stays text)."""
    if optional and (item is None or (isinstance(item, str) and item.lower() == "none")):
        return None
    if kind == "text":
        if not isinstance(item, str):
            raise InvalidConfig(f"--param {key}: expected text, got {item!r}")
        return item
    if isinstance(item, bool):
        raise InvalidConfig(f"--param {key}: expected a number, got {item!r}")
    if kind == "integer":
        if isinstance(item, int):
            return item
        try:
            return int(str(item))
        except ValueError:
            raise InvalidConfig(f"--param {key}: expected an integer, got {item!r}") from None
    try:
        number = float(item)
    except (TypeError, ValueError):
        raise InvalidConfig(f"--param {key}: expected a number, got {item!r}") from None
    if not math.isfinite(number):
        raise InvalidConfig(f"--param {key}: expected a finite number, got {item!r}")
    return number
