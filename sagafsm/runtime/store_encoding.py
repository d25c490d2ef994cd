"""How the stores encode what they keep, and the checks both make: one copy, so that the memory
store and the SQLite store refuse the same data and hand back the same values.

Snapshots, results, outbox messages, inbox results and trace records are kept as compact JSON
text (ASCII, so that lone surrogates survive SQLite); what comes back has been through JSON in
both stores (tuples come back as lists, trace records as tuples). A batch of commits is checked
and encoded once, by :class:`EncodedBatch`, before either store changes anything.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Iterable, Sequence
from typing import Any, Final

from ..errors import InvalidArgument
from .store import KEEP, Commit, InboxEntry, SagaStatus, TimerRow

__all__ = [
    "status_from_row",
    "DEFAULT_RETENTION",
    "INBOX_KINDS",
    "RESOLVABLE",
    "EncodedBatch",
    "InboxRow",
    "check_retention",
    "check_states",
    "decode_entry",
    "decode_records",
    "dumps",
    "encode_entry",
    "encode_records",
    "loads",
]

DEFAULT_RETENTION: Final = 7 * 86400.0
"""Seconds a finished saga's status is kept before :meth:`prune` may drop it (the runtime asks)."""

INBOX_KINDS: Final = frozenset({"action", "tombstone", "compensation"})

RESOLVABLE: Final = "operator_required"
"""The one state a store's ``resolve`` marks resolved."""


def _not_json(value: object) -> Any:
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _compact_encoder() -> Callable[[Any], str]:
    """Compact JSON (ASCII: lone surrogates survive SQLite) through the C encoder built once.

    ``JSONEncoder.encode`` builds a C encoder on every call, a few microseconds that a commit
    pays per snapshot, message and result. Without the circular-reference markers a cycle is a
    RecursionError (caught as "not JSON"). If this Python's private encoder API differs, the
    public encoder is used instead."""
    public = json.JSONEncoder(separators=(",", ":"), default=_not_json).encode
    try:
        make = json.encoder.c_make_encoder  # type: ignore[attr-defined]
        # (markers, default, string encoder, indent, ":", ",", sort_keys, skipkeys, allow_nan)
        options = (None, _not_json, json.encoder.encode_basestring_ascii, None, ":", ",")
        encode = make(*options, False, False, True)

        def dumps(value: Any) -> str:
            return "".join(encode(value, 0))

        probe = {"a": [1, 2.5, None, True, "\u00e9\ud800"], "b": {"c": -0.0}}
        if dumps(probe) == public(probe):
            return dumps
    except Exception:  # any difference: the public encoder will do
        pass
    return public


dumps: Final = _compact_encoder()
loads: Final = json.loads

_NOT_JSON: Final = (TypeError, ValueError, RecursionError)


class EncodedBatch:
    """A batch of :class:`Commit` checked and encoded once, before any store changes.

    ``inserts`` rows are ``(saga_id, definition, state, reason, results, snapshot, now, now)``,
    ``updates`` rows ``(state, reason, results, snapshot, parked, now, saga_id)`` in commit
    order; ``retried`` the sagas whose retry request goes with the batch;
    ``timers`` maps a saga to the timer it ends the batch with (None: cancelled), the last
    non-KEEP word of its commits (finishing cancels); ``outbox`` rows are ``(saga_id, message)``
    beside the caller's ``messages``; ``records`` is every trace record of the batch, in order,
    as one JSON list (None if there are none). JSON values are text.
    """

    __slots__ = ("inserts", "messages", "outbox", "records", "retried", "timers", "updates")

    def __init__(self, commits: Sequence[Commit]) -> None:
        inserts: list[tuple[Any, ...]] = []
        updates: list[tuple[Any, ...]] = []
        outbox: list[tuple[str, str]] = []
        messages: list[dict[str, Any]] = []
        timers: dict[str, TimerRow | None] = {}
        records: list[tuple[Any, ...]] = []
        retried: list[tuple[str]] = []
        seen: set[str] = set()
        encode = dumps
        for commit in commits:
            saga_id = commit.saga_id
            snapshot = commit.snapshot
            results = commit.results
            parked = commit.parked
            try:
                snapshot_json = None if snapshot is None else encode(snapshot)
                parked_json = None if parked is None else encode(parked)
                results_json = None if results is None else encode(results)
                for message in commit.outbox:
                    outbox.append((saga_id, encode(message)))
            except _NOT_JSON as error:
                raise InvalidArgument(
                    f"saga {saga_id!r}: a commit holds data that is not JSON ({error})"
                ) from None
            messages.extend(commit.outbox)
            records.extend(commit.records)
            now = float(commit.now)
            if commit.started:
                if saga_id in seen:
                    raise InvalidArgument(f"saga {saga_id!r}: started after its first commit")
                row = (saga_id, commit.definition, commit.state, commit.reason)
                inserts.append((*row, results_json, snapshot_json, now, now))
            else:
                columns = (commit.state, commit.reason, results_json, snapshot_json, parked_json)
                updates.append((*columns, now, saga_id))
            if commit.retried:
                retried.append((saga_id,))
            seen.add(saga_id)
            timer = commit.timer
            if snapshot is None:
                timers[saga_id] = None
            elif timer is not KEEP:
                if timer is not None and timer.saga_id != saga_id:
                    raise InvalidArgument(
                        f"saga {saga_id!r}: its commit arms a timer of saga {timer.saga_id!r}"
                    )
                timers[saga_id] = timer
        self.inserts = inserts
        self.updates = updates
        self.outbox = outbox
        self.messages = messages
        self.timers = timers
        self.retried = retried
        self.records = encode_records(records) if records else None


def encode_records(records: Sequence[tuple[Any, ...]]) -> str:
    """Trace records as one JSON list of lists (a trace row holds one append's records)."""
    try:
        return dumps(records)
    except _NOT_JSON:
        for record in records:
            try:
                dumps(record)
            except _NOT_JSON as error:
                raise InvalidArgument(
                    f"trace record {record!r} is not JSON data ({error})"
                ) from None
        raise


def decode_records(chunks: Iterable[str]) -> list[tuple[Any, ...]]:
    return [tuple(record) for chunk in chunks for record in loads(chunk)]


InboxRow = tuple[str, str | None, str | None, str]
"""An inbox entry as the stores keep it: ``(kind, outcome, result as JSON text, reason)``."""


def encode_entry(key: str, entry: InboxEntry) -> InboxRow:
    """An inbox entry as ``(kind, outcome, result, reason)`` with the result as JSON text."""
    if entry.kind not in INBOX_KINDS:
        raise InvalidArgument(
            f"inbox key {key!r}: kind {entry.kind!r} is not one of {sorted(INBOX_KINDS)}"
        )
    try:
        result = None if entry.result is None else dumps(entry.result)
    except _NOT_JSON as error:
        raise InvalidArgument(f"inbox key {key!r}: its result is not JSON ({error})") from None
    return (entry.kind, entry.outcome, result, entry.reason)


def decode_entry(row: Sequence[Any]) -> InboxEntry:
    kind, outcome, result, reason = row
    return InboxEntry(kind, outcome, None if result is None else loads(result), reason)


def check_states(states: Collection[str] | None) -> None:
    if isinstance(states, str):
        raise InvalidArgument(f"states must be a collection of names, not the string {states!r}")


def check_retention(retention: float) -> float:
    if not isinstance(retention, int | float) or not retention >= 0 or retention == float("inf"):
        raise InvalidArgument(f"retention must be finite seconds >= 0, got {retention!r}")
    return float(retention)


def status_from_row(row: Sequence[Any]) -> SagaStatus:
    """A saga's status from its stored columns, in the order both stores keep them:
    ``(saga_id, definition, state, reason, results, snapshot, started_at, updated_at,
    resolution, parked)``, results and snapshot as encoded JSON (or None), ``parked`` anything
    that is None when the saga is not parked."""
    saga_id, definition, state, reason, results, snapshot, started_at, updated_at = row[:8]
    resolution, parked = row[8:]
    return SagaStatus(
        saga_id=saga_id,
        definition=definition,
        state=state,
        reason=reason,
        results=None if results is None else loads(results),
        snapshot=None if snapshot is None else loads(snapshot),
        started_at=started_at,
        updated_at=updated_at,
        resolution=resolution,
        retryable=parked is not None,
    )
