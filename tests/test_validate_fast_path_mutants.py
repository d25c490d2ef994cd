"""``check_json_mapping``: a dict is recognised without the ABC check, any other Mapping still
passes, and anything that is not a mapping is refused, named, even when it is JSON data."""

from __future__ import annotations

from collections import OrderedDict
from types import MappingProxyType

import pytest

from sagafsm._validate import check_json_mapping
from sagafsm.errors import InvalidArgument


@pytest.mark.parametrize(
    "value", [{"a": 1}, MappingProxyType({"a": [1, {"b": None}]}), OrderedDict(a="x")]
)
def test_a_dict_and_any_other_mapping_of_json_data_pass_as_they_are(value: object) -> None:
    """Returned unchanged, the same object."""
    assert check_json_mapping(value, "saga data") is value


@pytest.mark.parametrize("value", [[1, 2], "text", 3, None, ("a", 1)])
def test_json_data_that_is_not_a_mapping_is_refused_by_name(value: object) -> None:
    """A list, a string or a number is JSON, but not a mapping: refused, naming what it was."""
    with pytest.raises(InvalidArgument, match=r"^saga data must be a mapping, got "):
        check_json_mapping(value, "saga data")
