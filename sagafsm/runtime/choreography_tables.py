"""The reads and writes of a choreographed participant's tables, inside one of its transactions.

The tables and what each holds are :mod:`.choreography_wire`'s; when each is read or written is
:class:`~.choreography_host.ChoreographyHost`'s. Every statement is written with ``?``
placeholders and runs in the store's dialect (:func:`~.choreography_port.sql`).
"""

from __future__ import annotations

import json
from typing import Any

from ..choreography.node import RoleNode
from ..messages import MessageKind
from .choreography_port import Pass, sql
from .codec import envelope_to_dict
from .store import ParticipantTx

__all__ = [
    "Recovery",
    "forget_pending",
    "delete_published",
    "read_outbox",
    "read_recovery",
    "read_saga",
    "take_timer",
    "write_pass",
]

Recovery = tuple[list[tuple[Any, ...]], list[tuple[Any, ...]], list[tuple[Any, ...]]]
"""A participant's timer rows, pending compensations and (for the initiator's outcomes) saga
rows, as a restart reads them back."""


async def read_recovery(tx: ParticipantTx, name: str, *, sagas: bool) -> Recovery:
    timers = await sql(
        tx, "SELECT saga_id, role, token, what, due FROM choreography_timers "
        "WHERE participant = ?", (name,),
    )  # fmt: skip
    pending = await sql(
        tx, "SELECT message FROM choreography_pending WHERE participant = ?", (name,)
    )
    rows = []
    if sagas:
        rows = await sql(
            tx, "SELECT saga_id, state FROM choreography_sagas WHERE participant = ?", (name,)
        )
    return timers, pending, rows


async def read_saga(tx: ParticipantTx, name: str, saga_id: str) -> tuple[Any, int] | None:
    """The participant's state of the saga (as JSON text) and how many events it emitted there;
    None before its first pass on it."""
    rows = await sql(
        tx, "SELECT state, emitted FROM choreography_sagas "
        "WHERE participant = ? AND saga_id = ?", (name, saga_id),
    )  # fmt: skip
    return (rows[0][0], rows[0][1]) if rows else None


async def write_pass(tx: ParticipantTx, name: str, node: RoleNode, current: Pass) -> None:
    """Everything one pass decided: its records, the saga's new state, its timers, the events
    into the outbox and the compensations into the pending table."""
    saga_id = current.saga_id
    await tx.append_trace(current.records)
    await sql(
        tx, "INSERT INTO choreography_sagas (participant, saga_id, state, emitted) "
        "VALUES (?, ?, ?, ?) ON CONFLICT (participant, saga_id) DO UPDATE SET "
        "state = excluded.state, emitted = excluded.emitted",
        (name, saga_id, json.dumps(current.saga.to_json()), current.emitted),
    )  # fmt: skip
    for role, (token, what, due) in current.timers.items():
        # one timer per role: a newer one replaces it (an older one would be stale anyway)
        await sql(
            tx, "INSERT INTO choreography_timers (participant, saga_id, role, token, what, "
            "due) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (participant, saga_id, role) DO "
            "UPDATE SET token = excluded.token, what = excluded.what, due = excluded.due",
            (name, saga_id, role, token, what, due),
        )  # fmt: skip
    ended = [r for r, run in current.saga.runs.items() if run.state in node.terminal(r)]
    for role in ended:  # a role that ended never moves again: its timer can only be stale
        await _delete_timer(tx, name, saga_id, role)
    for message in current.events:
        await sql(
            tx,
            "INSERT INTO choreography_outbox (participant, message) VALUES (?, ?)",
            (name, json.dumps(envelope_to_dict(message))),
        )
    for message in current.runs:
        if message.kind is MessageKind.COMPENSATE:
            await sql(
                tx, "INSERT INTO choreography_pending (participant, key, message) VALUES "
                "(?, ?, ?) ON CONFLICT (participant, key) DO NOTHING",
                (name, message.idempotency_key, json.dumps(envelope_to_dict(message))),
            )  # fmt: skip


async def take_timer(
    tx: ParticipantTx, name: str, saga_id: str, role: str, token: int, what: str
) -> bool:
    """Delete the role's timer row if it is still this one (True); False if a newer timer
    replaced it, or it went with its role's end."""
    found = await sql(
        tx, "SELECT token, what FROM choreography_timers WHERE participant = ? AND "
        "saga_id = ? AND role = ?", (name, saga_id, role),
    )  # fmt: skip
    if [tuple(row) for row in found] != [(token, what)]:
        return False
    await _delete_timer(tx, name, saga_id, role)
    return True


async def _delete_timer(tx: ParticipantTx, name: str, saga_id: str, role: str) -> None:
    await sql(
        tx, "DELETE FROM choreography_timers WHERE participant = ? AND saga_id = ? "
        "AND role = ?", (name, saga_id, role),
    )  # fmt: skip


async def forget_pending(tx: ParticipantTx, name: str, key: str) -> None:
    """A compensation answered: it is no longer run again on a restart."""
    await sql(tx, "DELETE FROM choreography_pending WHERE participant = ? AND key = ?", (name, key))


async def read_outbox(tx: ParticipantTx, name: str) -> list[tuple[Any, ...]]:
    """The events committed and not yet published: (id, message JSON), in commit order."""
    return await sql(
        tx, "SELECT id, message FROM choreography_outbox WHERE participant = ? ORDER BY id",
        (name,),
    )  # fmt: skip


async def delete_published(tx: ParticipantTx, name: str, last_id: int) -> None:
    await sql(
        tx, "DELETE FROM choreography_outbox WHERE participant = ? AND id <= ?", (name, last_id)
    )
