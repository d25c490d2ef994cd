"""Envelopes as JSON data, and back: what an outbox row and a transport row hold.

A store keeps an outbox message as a dict (a JSON column) and a transport carries it as JSON
text, so a message that is decoded after a crash must be the very message that was encoded:
:func:`envelope_from_dict` of :func:`envelope_to_dict` is equal to the original, and enums travel
as their values (``"execute"``, ``"succeeded"``) so the rows read well in ``sqlite3``.

Decoding checks every field, since the dict comes from a database or another process: a bad
one raises :class:`~sagafsm.errors.InvalidArgument` (a ``ValueError``) naming the field.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from .._validate import is_json_value, plain_json
from ..errors import InvalidArgument
from ..messages import NO_PAYLOAD, Envelope, MessageKind, Outcome

__all__ = ["envelope_to_dict", "envelope_from_dict"]

_REQUIRED: Final = (
    "message_id",
    "kind",
    "saga_id",
    "causation_id",
    "idempotency_key",
    "source",
    "dest",
    "step",
    "operation",
)
_OPTIONAL: Final = (
    "attempt",
    "outcome",
    "action_key",
    "data",
    "results",
    "action_result",
    "result",
    "reason",
)
_FIELDS: Final = frozenset(_REQUIRED + _OPTIONAL)
_KINDS: Final = {kind.value: kind for kind in MessageKind}
_OUTCOMES: Final = {outcome.value: outcome for outcome in Outcome}


def envelope_to_dict(message: Envelope, *, copy: bool = True) -> dict[str, Any]:
    """Every field of ``message`` as plain JSON data (enums as their values, mappings as dicts).

    ``copy=False`` hands a mapping field that is a plain dict over as it is, shared with the
    envelope (any other mapping is still copied): for a caller that encodes the dict at once and
    whose envelopes carry the engine's values, which are plain JSON all the way down already
    (the runtime's outbox). Copying them again costs more than encoding them."""
    plain = plain_json if copy else _shared
    action_result, result = message.action_result, message.result
    return {
        "message_id": message.message_id,
        "kind": message.kind._value_,
        "saga_id": message.saga_id,
        "causation_id": message.causation_id,
        "idempotency_key": message.idempotency_key,
        "source": message.source,
        "dest": message.dest,
        "step": message.step,
        "operation": message.operation,
        "attempt": message.attempt,
        "outcome": None if message.outcome is None else message.outcome._value_,
        "action_key": message.action_key,
        "data": plain(message.data),
        "results": plain(message.results),
        "action_result": None if action_result is None else plain(action_result),
        "result": None if result is None else plain(result),
        "reason": message.reason,
    }


def _shared(value: Mapping[str, Any]) -> Any:
    """A plain dict as it is; any other mapping as a plain copy."""
    return value if value.__class__ is dict else plain_json(value)


def envelope_from_dict(data: Any) -> Envelope:
    """The envelope :func:`envelope_to_dict` made ``data`` from.

    Fields after ``operation`` may be missing (they take the envelope's defaults); an unknown
    field, a missing required one or a value of the wrong type raises
    :class:`~sagafsm.errors.InvalidArgument`.
    """
    if not isinstance(data, Mapping):
        raise InvalidArgument(f"an envelope must be a mapping, got {data!r}")
    missing = [name for name in _REQUIRED if name not in data]
    if missing:
        raise InvalidArgument(f"not an envelope: missing {', '.join(missing)} in {dict(data)!r}")
    unknown = sorted(str(name) for name in data if name not in _FIELDS)
    if unknown:
        raise InvalidArgument(f"not an envelope: unknown field {', '.join(unknown)}")
    kind = _KINDS.get(data["kind"]) if isinstance(data["kind"], str) else None
    if kind is None:
        raise _bad("kind", data["kind"], f"one of {', '.join(_KINDS)}")
    outcome_value = data.get("outcome")
    outcome = _OUTCOMES.get(outcome_value) if isinstance(outcome_value, str) else None
    if outcome is None and outcome_value is not None:
        raise _bad("outcome", outcome_value, f"None or one of {', '.join(_OUTCOMES)}")
    results = _mapping(data, "results", required=True)
    assert results is not None
    for step, result in results.items():
        if not isinstance(result, Mapping):
            raise _bad(f"results[{step!r}]", result, "a mapping")
    return Envelope(
        message_id=_int(data, "message_id"),
        kind=kind,
        saga_id=_str(data, "saga_id"),
        causation_id=None if data["causation_id"] is None else _int(data, "causation_id"),
        idempotency_key=_str(data, "idempotency_key"),
        source=_str(data, "source"),
        dest=_str(data, "dest"),
        step=_str(data, "step"),
        operation=_str(data, "operation"),
        attempt=_int(data, "attempt", 1),
        outcome=outcome,
        action_key=None if data.get("action_key") is None else _str(data, "action_key"),
        data=_mapping(data, "data", required=True) or NO_PAYLOAD,
        results=results or NO_PAYLOAD,
        action_result=_mapping(data, "action_result"),
        result=_mapping(data, "result"),
        reason=_str(data, "reason", ""),
    )


def _bad(field: str, value: Any, expected: str) -> InvalidArgument:
    return InvalidArgument(f"not an envelope: {field} must be {expected}, got {value!r}")


def _int(data: Mapping[str, Any], field: str, default: int | None = None) -> int:
    value = data.get(field, default)
    if value.__class__ is not int:  # not a bool, not a float
        raise _bad(field, value, "an int")
    return int(value)


def _str(data: Mapping[str, Any], field: str, default: str | None = None) -> str:
    value = data.get(field, default)
    if not isinstance(value, str):
        raise _bad(field, value, "a string")
    return value


def _mapping(
    data: Mapping[str, Any], field: str, *, required: bool = False
) -> dict[str, Any] | None:
    """A plain copy of a JSON mapping field; None stays None unless the field is ``required``
    (``data``, ``results``: a missing one reads as empty)."""
    value = data.get(field, {} if required else None)
    if value is None and not required:
        return None
    if not isinstance(value, Mapping) or not is_json_value(value):
        raise _bad(field, value, "a mapping of JSON data" + ("" if required else " or None"))
    copy: dict[str, Any] = plain_json(value)
    return copy
