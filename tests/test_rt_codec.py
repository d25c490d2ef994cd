"""The envelope codec: every envelope survives a trip through JSON exactly, and a dict that is not
an envelope is refused with a message naming the field."""

from __future__ import annotations

import json
from types import MappingProxyType
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from strategies import json_mappings

from sagafsm.errors import InvalidArgument
from sagafsm.messages import NO_PAYLOAD, Envelope, MessageKind, Outcome
from sagafsm.runtime.codec import envelope_from_dict, envelope_to_dict

_names = st.text(min_size=1, max_size=8)
_ids = st.integers(0, 2**63)

envelopes: st.SearchStrategy[Envelope] = st.builds(
    Envelope,
    message_id=_ids,
    kind=st.sampled_from(MessageKind),
    saga_id=_names,
    causation_id=st.none() | _ids,
    idempotency_key=_names,
    source=_names,
    dest=_names,
    step=_names,
    operation=_names,
    attempt=st.integers(1, 100),
    outcome=st.none() | st.sampled_from(Outcome),
    action_key=st.none() | _names,
    data=json_mappings(),
    results=st.dictionaries(_names, json_mappings(), max_size=3),
    action_result=st.none() | json_mappings(),
    result=st.none() | json_mappings(),
    reason=st.text(max_size=20),
)
"""Any envelope whose payloads are plain JSON (other test modules import it)."""


@given(envelopes)
def test_an_envelope_survives_a_round_trip_through_json_text(message: Envelope) -> None:
    """to_dict, JSON text, from_dict: the same envelope, and the dict holds only JSON data."""
    data = envelope_to_dict(message)
    text = json.dumps(data)
    assert json.loads(text) == data
    assert envelope_from_dict(json.loads(text)) == message
    assert envelope_from_dict(data) == message


@given(envelopes)
def test_the_outbox_form_shares_plain_dicts_and_encodes_to_the_same_json(
    message: Envelope,
) -> None:
    """copy=False (the runtime's outbox) gives the same JSON text as the copying form; a plain
    dict is handed over as it is, any other mapping (the shared empty payload) as a dict."""
    shared = envelope_to_dict(message, copy=False)
    assert json.dumps(shared) == json.dumps(envelope_to_dict(message))
    for field in ("data", "results", "action_result", "result"):
        value = getattr(message, field)
        if value.__class__ is dict:
            assert shared[field] is value
        elif value is not None:
            assert shared[field].__class__ is dict
    assert envelope_from_dict(json.loads(json.dumps(shared))) == message


def test_the_outbox_form_copies_a_mapping_that_is_not_a_dict() -> None:
    """A read-only mapping (the shared empty payload, a mapping proxy) becomes a plain dict even
    with copy=False: the store's encoder takes dicts only."""
    message = Envelope(
        message_id=1, kind=MessageKind.COMPENSATE, saga_id="s", causation_id=None,
        idempotency_key="k", source="orchestrator", dest="inventory", step="reserve",
        operation="release", data=MappingProxyType({"a": {"b": 1}}),
    )  # fmt: skip
    shared = envelope_to_dict(message, copy=False)
    assert shared["data"] == {"a": {"b": 1}} and shared["data"].__class__ is dict
    assert shared["results"] == {} and shared["results"].__class__ is dict
    assert json.loads(json.dumps(shared)) == envelope_to_dict(message)


def test_enums_travel_as_their_values() -> None:
    """kind and outcome are stored as "action_reply" and "failed", readable in a database."""
    message = Envelope(
        message_id=7, kind=MessageKind.ACTION_REPLY, saga_id="s", causation_id=3,
        idempotency_key="k", source="inventory", dest="orchestrator", step="reserve",
        operation="reserve", outcome=Outcome.FAILED, reason="out of stock",
    )  # fmt: skip
    data = envelope_to_dict(message)
    assert data["kind"] == "action_reply"
    assert data["outcome"] == "failed"
    decoded = envelope_from_dict(data)
    assert decoded.kind is MessageKind.ACTION_REPLY
    assert decoded.outcome is Outcome.FAILED
    assert decoded.data is NO_PAYLOAD  # an empty payload is the shared empty mapping again


def test_optional_fields_may_be_missing() -> None:
    """Only the header is required: the rest take the envelope's defaults."""
    header = {
        "message_id": 1, "kind": "execute", "saga_id": "s", "causation_id": None,
        "idempotency_key": "k", "source": "orchestrator", "dest": "inventory",
        "step": "reserve", "operation": "reserve",
    }  # fmt: skip
    message = envelope_from_dict(header)
    assert message.attempt == 1 and message.outcome is None and message.reason == ""
    assert dict(message.data) == {} and message.action_result is None


def _good() -> dict[str, Any]:
    message = Envelope(
        message_id=1, kind=MessageKind.EXECUTE, saga_id="s", causation_id=None,
        idempotency_key="k", source="orchestrator", dest="inventory", step="reserve",
        operation="reserve", data={"sku": "a"},
    )  # fmt: skip
    return envelope_to_dict(message)


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"kind": "shout"}, "kind must be one of"),
        ({"kind": None}, "kind must be one of"),
        ({"outcome": "maybe"}, "outcome must be None or one of"),
        ({"message_id": "1"}, "message_id must be an int"),
        ({"message_id": True}, "message_id must be an int"),
        ({"attempt": 1.0}, "attempt must be an int"),
        ({"causation_id": 2.5}, "causation_id must be an int"),
        ({"saga_id": 3}, "saga_id must be a string"),
        ({"action_key": 3}, "action_key must be a string"),
        ({"data": None}, "data must be a mapping of JSON data"),
        ({"data": {"x": float("nan")}}, "data must be a mapping of JSON data"),
        ({"results": {"reserve": 3}}, "results['reserve'] must be a mapping"),
        ({"result": [1]}, "result must be a mapping of JSON data or None"),
        ({"reason": None}, "reason must be a string"),
        ({"colour": "red"}, "unknown field colour"),
    ],
)
def test_a_bad_field_is_refused_by_name(change: dict[str, Any], words: str) -> None:
    """Each malformed field raises InvalidArgument (a ValueError) that names it."""
    data = {**_good(), **change}
    with pytest.raises(ValueError, match=words.replace("[", r"\[").replace("]", r"\]")) as raised:
        envelope_from_dict(data)
    assert isinstance(raised.value, InvalidArgument)


def test_a_missing_header_field_or_a_non_mapping_is_refused() -> None:
    """No saga_id, or a list instead of a dict: InvalidArgument saying so."""
    data = _good()
    del data["saga_id"]
    with pytest.raises(InvalidArgument, match="missing saga_id"):
        envelope_from_dict(data)
    with pytest.raises(InvalidArgument, match="must be a mapping"):
        envelope_from_dict([("saga_id", "s")])
