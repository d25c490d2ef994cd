"""One saga's story, read from trace records: messages, faults, transitions, ledger effects."""

from __future__ import annotations

from collections.abc import Iterable

import attrs

from ..history import format_record, record_from_dict
from .trace import Record

__all__ = ["saga_timeline", "format_timeline", "record_from_dict", "Arrow", "message_arrows"]


def saga_timeline(records: Iterable[Record], saga_id: str) -> list[Record]:
    """The saga's own records, plus the crashes and restarts while it ran, in time order."""
    records = list(records)
    own = [r[0] for r in records if r[2] == saga_id and r[1] != "forget"]
    if not own:
        return []
    first, last = min(own), max(own)
    return [
        r
        for r in records
        if r[2] == saga_id or (r[1] in ("crash", "restart") and first <= r[0] <= last)
    ]


def format_timeline(records: Iterable[Record], saga_id: str) -> str:
    lines = [format_record(r) for r in saga_timeline(records, saga_id)]
    return "\n".join([f"timeline of saga {saga_id}", *lines]) if lines else ""


@attrs.frozen(kw_only=True)
class Arrow:
    """One copy of one message: from its sender at ``sent`` to its receiver (or its loss)."""

    message: int
    source: str
    dest: str
    label: str
    sent: float
    ended: float | None
    """Delivery or drop time (None: still in flight when the trace ends)."""
    dropped: str | None = None
    """Why it was lost, if it was."""


def message_arrows(records: Iterable[Record]) -> list[Arrow]:
    """Pair each send with its deliveries or drops (a duplicated message has two copies)."""
    sends: dict[int, Record] = {}
    ends: dict[int, list[tuple[float, str | None]]] = {}
    for record in records:
        kind = record[1]
        if kind == "send":
            sends[record[3]] = record
        elif kind == "deliver":
            ends.setdefault(record[3], []).append((record[0], None))
        elif kind == "drop":
            ends.setdefault(record[3], []).append((record[0], record[4]))
    arrows = []
    for message, send in sends.items():
        t, _, _, _, source, dest, _, _, op, attempt, outcome = send
        label = f"{op}#{attempt}" if outcome is None else f"{outcome}"
        for ended, dropped in ends.get(message, [(None, None)]):
            arrows.append(
                Arrow(
                    message=message,
                    source=source,
                    dest=dest,
                    label=label,
                    sent=t,
                    ended=ended,
                    dropped=dropped,
                )
            )
    return arrows
