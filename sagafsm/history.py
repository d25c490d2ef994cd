"""Trace records, typed: one named tuple per record kind, the vocabulary the checkers read.

Rules for this module: it defines the record format every driver writes (the simulator today, the
runtime later) and the checkers read, and nothing else. It imports no driver and no SimPy.

A record is a tuple ``(t, kind, saga, *fields)``. Drivers write plain tuples on their hot path; a
reader turns each into its typed record once, with :func:`as_record` (from a tuple) or
:func:`record_from_dict` (from a JSONL trace line), and then reads fields by name. Each typed
record *is* a tuple with the same items (it compares equal to the plain one, costs no more memory
and encodes the same for the simulator's digest); only its ``repr`` differs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final, Literal, NamedTuple, TypeAlias, get_args, get_type_hints

__all__ = [
    "StartRecord",
    "SendRecord",
    "DeliverRecord",
    "DropRecord",
    "DuplicateRecord",
    "DelayRecord",
    "TimerRecord",
    "TimerFiredRecord",
    "TransitionRecord",
    "IgnoredRecord",
    "EffectRecord",
    "FinishRecord",
    "CrashRecord",
    "RestartRecord",
    "ForgetRecord",
    "OperatorRecord",
    "EmitRecord",
    "RETRY_ACTION",
    "TraceRecord",
    "RawRecord",
    "RECORD_TYPES",
    "RECORD_FIELDS",
    "KIND",
    "SAGA",
    "LedgerEffect",
    "as_record",
    "record_from_dict",
    "record_to_dict",
    "format_record",
]

RawRecord: TypeAlias = tuple[Any, ...]
"""A record as a driver writes it: ``(t, kind, saga, *fields)``."""

KIND: Final = 1
SAGA: Final = 2
"""Positions of the header every record kind shares, for hot-path listeners that look at a raw
record's kind or saga before deciding whether to convert it."""


class StartRecord(NamedTuple):
    """A saga was started (``definition`` is the saga definition's name)."""

    t: float
    kind: Literal["start"]
    saga: str
    definition: str


class SendRecord(NamedTuple):
    """A message was sent: ``type`` is its :class:`~sagafsm.messages.MessageKind` value
    (``"execute"``, ``"compensate"``, or a reply), ``op`` the action or compensation name,
    ``outcome`` the reply's outcome (None for a command)."""

    t: float
    kind: Literal["send"]
    saga: str
    msg: int
    src: str
    dst: str
    type: str
    step: str
    op: str
    attempt: int
    outcome: str | None


class DeliverRecord(NamedTuple):
    t: float
    kind: Literal["deliver"]
    saga: str
    msg: int
    dst: str


class DropRecord(NamedTuple):
    t: float
    kind: Literal["drop"]
    saga: str
    msg: int
    reason: str


class DuplicateRecord(NamedTuple):
    t: float
    kind: Literal["duplicate"]
    saga: str
    msg: int


class DelayRecord(NamedTuple):
    t: float
    kind: Literal["delay"]
    saga: str
    msg: int
    extra: float


class TimerRecord(NamedTuple):
    """A timer was armed (``purpose`` is a :class:`~sagafsm.TimerPurpose` value)."""

    t: float
    kind: Literal["timer"]
    saga: str
    timer: str
    delay: float
    purpose: str
    step: str


class TimerFiredRecord(NamedTuple):
    t: float
    kind: Literal["timer_fired"]
    saga: str
    timer: str


class TransitionRecord(NamedTuple):
    """A committed lifecycle move: the saga's (``step`` is None) or one step's."""

    t: float
    kind: Literal["transition"]
    saga: str
    step: str | None
    trigger: str
    source: str
    dest: str


class IgnoredRecord(NamedTuple):
    """An event the engine dropped (``event`` is its class name), and why."""

    t: float
    kind: Literal["ignored"]
    saga: str
    event: str
    reason: str


class EffectRecord(NamedTuple):
    """One line of a participant's ledger: what it actually did (a :class:`LedgerEffect`)."""

    t: float
    kind: Literal["effect"]
    saga: str
    participant: str
    step: str
    effect: str


class FinishRecord(NamedTuple):
    """The saga reached ``state`` (a :class:`~sagafsm.SagaState` value), with its reason."""

    t: float
    kind: Literal["finish"]
    saga: str
    state: str
    reason: str | None


class CrashRecord(NamedTuple):
    """A node crashed (run-wide: ``saga`` is None)."""

    t: float
    kind: Literal["crash"]
    saga: None
    node: str


class RestartRecord(NamedTuple):
    """A node restarted, recovering ``recovered`` sagas (run-wide: ``saga`` is None)."""

    t: float
    kind: Literal["restart"]
    saga: None
    node: str
    recovered: int


class ForgetRecord(NamedTuple):
    """The saga's retention ran out: its participants dropped its idempotency records."""

    t: float
    kind: Literal["forget"]
    saga: str


RETRY_ACTION: Final = "retry"
"""An :class:`OperatorRecord` action: the saga's compensation that gave up is tried again."""


class OperatorRecord(NamedTuple):
    """A person acted on a finished saga, with their ``note``: ``action`` ``"resolve"`` marks an
    ``operator_required`` saga resolved (no lifecycle or ledger changes); :data:`RETRY_ACTION`
    sends a saga parked by a compensation that gave up back to compensating (the checkers then
    accept the lifecycles' ``operator_retry`` rows, and judge the saga by its last finish)."""

    t: float
    kind: Literal["operator"]
    saga: str
    action: str
    note: str


class EmitRecord(NamedTuple):
    """Choreography: participant ``source`` emitted event ``name`` of the saga, with id
    ``event``, caused by the event of id ``cause`` (None for the start event). Its copies on
    their way to each subscriber are ``send`` records of type ``event``; read together, the
    ``emit`` records are the saga's causal tree."""

    t: float
    kind: Literal["emit"]
    saga: str
    event: str
    name: str
    source: str
    cause: str | None


TraceRecord: TypeAlias = (
    StartRecord
    | SendRecord
    | DeliverRecord
    | DropRecord
    | DuplicateRecord
    | DelayRecord
    | TimerRecord
    | TimerFiredRecord
    | TransitionRecord
    | IgnoredRecord
    | EffectRecord
    | FinishRecord
    | CrashRecord
    | RestartRecord
    | ForgetRecord
    | OperatorRecord
    | EmitRecord
)

_TYPES: tuple[type[TraceRecord], ...] = (
    StartRecord,
    SendRecord,
    DeliverRecord,
    DropRecord,
    DuplicateRecord,
    DelayRecord,
    TimerRecord,
    TimerFiredRecord,
    TransitionRecord,
    IgnoredRecord,
    EffectRecord,
    FinishRecord,
    CrashRecord,
    RestartRecord,
    ForgetRecord,
    OperatorRecord,
    EmitRecord,
)


def _kind_of(cls: type[TraceRecord]) -> str:
    """The kind a record class is for: the one value its ``kind`` field's Literal allows."""
    (kind,) = get_args(get_type_hints(cls)["kind"])
    return str(kind)


RECORD_TYPES: Mapping[str, type[TraceRecord]] = {_kind_of(cls): cls for cls in _TYPES}
"""The typed record class of each kind."""

RECORD_FIELDS: Mapping[str, tuple[str, ...]] = {
    kind: cls._fields[2:] for kind, cls in RECORD_TYPES.items()
}
"""Field names after ``t`` and ``kind``, per record kind (``saga`` first)."""

_ARITY = {kind: len(cls._fields) for kind, cls in RECORD_TYPES.items()}
_MAKE = {kind: cls._make for kind, cls in RECORD_TYPES.items()}
_TYPED = frozenset(_TYPES)


class LedgerEffect:
    """The ``effect`` values a participant writes to its ledger (an :class:`EffectRecord`)."""

    ACTION: Final = "action"
    """The action's effect was applied."""
    ACTION_FAILED: Final = "action_failed"
    """The action failed definitely: no effect."""
    ACTION_BLOCKED: Final = "action_blocked"
    """The action arrived after its compensation: the tombstone made it a no-op."""
    COMPENSATION: Final = "compensation"
    """The compensation undid the action's effect."""
    COMPENSATION_NOOP: Final = "compensation_noop"
    """The compensation found no effect to undo (and left a tombstone)."""
    COMPENSATION_FAILED: Final = "compensation_failed"
    """This try of the compensation failed: no effect."""
    COMPENSATION_REFUSED: Final = "compensation_refused"
    """The compensation was handed an action result other than the one the participant gave out
    for that action: refused, no effect, a failure reply."""


def as_record(record: RawRecord | TraceRecord) -> TraceRecord:
    """The typed record of a plain tuple (a typed record is returned as it is).

    Raises :class:`ValueError` for an unknown kind or a wrong number of fields.
    """
    if type(record) in _TYPED:
        return record  # type: ignore[return-value]  # the type check above is exact
    try:
        kind = record[KIND]
        arity = _ARITY[kind]
    except (IndexError, KeyError, TypeError):
        raise ValueError(f"not a trace record (unknown kind): {record!r}") from None
    if len(record) != arity:
        raise ValueError(
            f"a record of kind {kind!r} has {arity} items "
            f"(t, kind, {', '.join(RECORD_FIELDS[kind])}), got {len(record)}: {record!r}"
        )
    return _MAKE[kind](record)


def record_from_dict(data: Mapping[str, Any]) -> TraceRecord:
    """A JSONL trace line (as a dict) to its typed record; a missing field reads as None.

    Raises :class:`ValueError` for a line without ``t`` or with an unknown ``kind``.
    """
    kind = data.get("kind")
    if not isinstance(kind, str) or kind not in _MAKE or "t" not in data:
        raise ValueError(f"not a trace record (unknown kind or no time): {dict(data)!r}")
    return _MAKE[kind]((data["t"], kind, *(data.get(name) for name in RECORD_FIELDS[kind])))


def record_to_dict(record: RawRecord | TraceRecord) -> dict[str, Any]:
    """A record as a JSONL trace line: ``{"t": ..., "kind": ..., <its fields by name>}``."""
    t, kind, *rest = record
    return {"t": t, "kind": kind, **dict(zip(RECORD_FIELDS[kind], rest, strict=True))}


def format_record(record: RawRecord | TraceRecord) -> str:
    """One readable line for a record: time, kind, then its non-empty fields but the saga."""
    t, kind, _saga, *rest = record
    names = RECORD_FIELDS.get(kind, ())[1:]
    text = " ".join(f"{k}={v}" for k, v in zip(names, rest, strict=False) if v is not None)
    return f"{t:10.4f}  {kind:<11} {text}".rstrip()
