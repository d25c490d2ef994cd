"""The checks at the door (sagafsm._validate), on their own: what each accepts, what it refuses and
the line it refuses with. The engine, the events and the snapshot format call them; these tests
pin their edges (depth, exact types, copies) where mutation testing found them unpinned."""

from __future__ import annotations

import json
import math
from collections import OrderedDict
from types import MappingProxyType
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from strategies import json_values

from sagafsm._validate import (
    check_json_mapping,
    check_now,
    check_recorder,
    is_json_value,
    plain_json,
)
from sagafsm.errors import InvalidArgument


def nested(depth: int, container: str) -> Any:
    """A value ``depth`` containers deep (lists, dicts or both in turn), a 1 at the bottom."""
    value: Any = 1
    for level in range(depth):
        kind = container if container != "mixed" else ("list", "dict")[level % 2]
        value = [value] if kind == "list" else {"k": value}
    return value


# -- check_now ------------------------------------------------------------------------------------


@given(st.integers(-(2**53), 2**53) | st.floats(allow_nan=False, allow_infinity=False))
def test_any_finite_time_is_taken_as_a_float_of_the_same_value(now: float) -> None:
    """An int is taken as is, turned into the float the engine computes with."""
    taken = check_now(now)
    assert type(taken) is float and taken == now


@pytest.mark.parametrize("now", [math.nan, math.inf, -math.inf, 10**400, True, "1", None, [1]])
def test_a_time_that_is_not_a_finite_number_is_refused_in_one_line(now: Any) -> None:
    """Not a number, not finite, a bool, or an int too large for a float (no clock holds it)."""
    with pytest.raises(InvalidArgument) as refused:
        check_now(now)
    assert str(refused.value) == f"now must be a finite number of seconds, got {now!r}"


# -- is_json_value and check_json_mapping ---------------------------------------------------------


@given(json_values)
def test_plain_json_data_is_json_and_survives_a_round_trip_through_plain_json(value: Any) -> None:
    """Whatever JSON holds is accepted; plain_json copies it to an equal value."""
    assert is_json_value(value)
    copy = plain_json(value)
    assert copy == value == json.loads(json.dumps(copy))


@pytest.mark.parametrize("container", ["list", "dict", "mixed"])
def test_json_data_may_nest_32_deep_and_no_deeper(container: str) -> None:
    """32 containers deep is accepted (the leaf inside the last is fine), 33 is refused, whether
    the containers are lists, dicts, or both in turn."""
    assert is_json_value(nested(32, container))
    assert not is_json_value(nested(33, container))
    assert is_json_value(nested(16, container))


@pytest.mark.parametrize(
    "value",
    [
        [1, "a", None, True, 2.5],
        (1, (2, [3])),
        {"a": {"b": [1, {"c": None}]}},
        OrderedDict(a=[1]),
        MappingProxyType({"a": {"b": 1}}),
    ],
    ids=["list", "tuple", "nested dict", "OrderedDict", "mapping proxy"],
)
def test_lists_tuples_and_any_mapping_of_json_data_are_json(value: Any) -> None:
    """Not only dict and list: a tuple, and a mapping of another class, hold JSON data too."""
    assert is_json_value(value)


@pytest.mark.parametrize(
    "value",
    [
        object(),
        b"bytes",
        {1, 2},
        [math.nan],
        [1, object()],
        (math.inf,),
        {"a": [1, {"b": math.inf}]},
        {1: "non-string key"},
        MappingProxyType({"a": object()}),
    ],
    ids=[
        "object",
        "bytes",
        "set",
        "nan in a list",
        "object in a list",
        "inf in a tuple",
        "inf deep in a dict",
        "int key",
        "object in a mapping proxy",
    ],
)
def test_anything_else_anywhere_inside_is_not_json(value: Any) -> None:
    """Whatever JSON cannot hold is refused, at the top or nested in a list, tuple or mapping."""
    assert not is_json_value(value)


def test_check_json_mapping_says_which_input_is_not_a_mapping_or_not_json() -> None:
    """The line names the input (``what``) and what it got."""
    with pytest.raises(InvalidArgument) as refused:
        check_json_mapping([1], "data")
    assert str(refused.value) == "data must be a mapping, got [1]"
    with pytest.raises(InvalidArgument, match=r"^result must hold only JSON data \(str keys; "):
        check_json_mapping({"a": math.nan}, "result")
    proxy = MappingProxyType({"a": [1]})
    assert check_json_mapping(proxy, "data") is proxy


# -- plain_json -----------------------------------------------------------------------------------


def test_plain_json_copies_every_container_into_a_plain_dict_or_list() -> None:
    """Nothing of the copy is shared with the original; a tuple becomes a list, any mapping a
    dict, so that a snapshot survives a JSON round trip unchanged."""
    inner = [1, 2]
    original = {"a": inner, "t": (3, "x", None), "m": MappingProxyType({"b": True, "f": 1.5})}
    copy = plain_json(original)
    assert copy == {"a": [1, 2], "t": [3, "x", None], "m": {"b": True, "f": 1.5}}
    assert copy is not original and copy["a"] is not inner
    assert type(copy["t"]) is list and type(copy["m"]) is dict
    inner.append(3)
    assert copy["a"] == [1, 2]
    assert plain_json([{"a": 1}, (2,)]) == [{"a": 1}, [2]]
    assert type(plain_json(OrderedDict(a=1))) is dict


# -- check_recorder -------------------------------------------------------------------------------


class _Both:
    def transition(self) -> None: ...

    def ignored(self) -> None: ...


class _OnlyTransition:
    def transition(self) -> None: ...


class _OnlyIgnored:
    def ignored(self) -> None: ...


class _NotCallable:
    transition = "not a method"
    ignored = "nor this"


def test_a_recorder_needs_both_methods() -> None:
    """None or an object with transition() and ignored(): one of the two is not enough."""
    assert check_recorder(None) is None
    recorder = _Both()
    assert check_recorder(recorder) is recorder
    for bad in (_OnlyTransition(), _OnlyIgnored(), _NotCallable(), object()):
        with pytest.raises(InvalidArgument) as refused:
            check_recorder(bad)
        assert str(refused.value) == (
            f"recorder must have transition() and ignored() methods, got {bad!r}"
        )
