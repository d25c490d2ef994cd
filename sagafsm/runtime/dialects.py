"""The SQL dialects of the stores, for participants that write SQL of their own.

A participant's handler runs its statements through ``call.db.execute``, in the store's own
transaction, so they must be in the store's dialect: ``tx.dialect`` says which. Most of the SQL
a participant needs (``RETURNING``, ``ON CONFLICT DO NOTHING``, ``WITH RECURSIVE``) reads the
same in SQLite and PostgreSQL; what differs is the placeholders (sqlite3 takes ``?``, psycopg
``%s``) and a few column types. So a statement is written once, with ``?``, and
:func:`in_dialect` gives it to the store as the store takes it; the types that differ are in
:data:`ID_COLUMN`.
"""

from __future__ import annotations

import functools
from typing import Final

from ..errors import InvalidConfig

__all__ = ["ID_COLUMN", "in_dialect"]

ID_COLUMN: Final = {
    # Both: an id handed out is never handed out again, even after a rollback.
    "sqlite": "INTEGER PRIMARY KEY AUTOINCREMENT",
    "postgresql": "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY",
}
"""A primary key the database numbers itself, per dialect (the dialects of the stores that have
tables: a memory store has none)."""


@functools.cache
def in_dialect(sql: str, dialect: str) -> str:
    """``sql``, written with ``?`` placeholders, as ``dialect`` takes it: unchanged for SQLite;
    ``%s`` for each ``?`` (and ``%%`` for a literal ``%``) for PostgreSQL. The ``?`` of a
    string literal would be replaced too: pass such text as a parameter. Raises
    :class:`~sagafsm.errors.InvalidConfig` for a dialect without SQL (a memory store's)."""
    if dialect == "sqlite":
        return sql
    if dialect == "postgresql":
        return sql.replace("%", "%%").replace("?", "%s")
    raise InvalidConfig(
        f"a store of dialect {dialect!r} runs no SQL; use sqlite:///PATH or postgresql://..."
    )
