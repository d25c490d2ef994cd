"""The trace of a run: every send, delivery, fault, timer, transition and ledger effect.

Records are plain tuples ``(time, kind, saga_id, *fields)``; :data:`RECORD_FIELDS` names the fields
of each kind, as the typed records of :mod:`sagafsm.history` declare them (readers convert to
those; the hot path here never does). The trace is hashed as it goes, so a run's digest costs no
memory; records are kept only when a JSONL file is asked for, or a listener wants them.
Same scenario, configuration and seed give the same digest, byte for byte.

**The digest** is SHA-256 over the `MessagePack <https://msgpack.org>`_ encoding of the records,
hashed in blocks of 4,096 (each block one MessagePack array of record arrays). The encoding is
fixed by the MessagePack specification, not by Python or by the library: a float is its 8 IEEE 754
bytes (big-endian; no decimal printing, so no rounding), an int takes the smallest format that
holds it, a str is its UTF-8 bytes, None, tuples and lists have one encoding each, and nothing
depends on object identity, interning or hash order. So the same records give the same bytes in
every process, on every Python version and platform msgpack supports. (``repr`` gave that too,
at four times the cost, most of it printing floats; ``pickle`` and ``marshal`` are cheaper still
but not canonical: both emit back-references that depend on which equal strings happen to be the
same object, which interning decides and Python versions change.)
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any

import msgpack

from ..history import RECORD_FIELDS, RawRecord, record_to_dict

__all__ = [
    "Trace",
    "RECORD_FIELDS",
    "Record",
    "read_trace",
    "RECORDED",
    "recorded_under",
    "unpack_records",
]

RECORDED = "recorded"
"""The kind of the line ``sagafsm simulate --trace`` appends once the run is over: what the trace
was recorded under (scenario, seed, sagas, mutant, digest). Not a trace record: :func:`read_trace`
skips it, :func:`recorded_under` reads it; traces written before it existed have none."""

Record = RawRecord
"""A record as the simulator writes it: a plain tuple (see :mod:`sagafsm.history` for the typed
record of each kind; a typed record is a tuple and encodes as one, so the digest does not depend on
those classes)."""

_FLUSH_EVERY = 4096


class Trace:
    """Hashes every record; writes them to ``path`` as JSON lines if given.

    ``listeners`` are called with each record as it is written; ``block_listeners`` with each
    block of records (in order, up to 4,096 at a time) when it is hashed, and with the last one by
    :meth:`digest` or :meth:`close`: one call per block instead of one per record, for a
    listener that reads nothing before the run ends (the streaming checker). A block listener
    gets the records and, beside them, each record's MessagePack encoding (the bytes the digest
    hashed; :func:`unpack_records` reads them back): the checker keeps an open saga's history as
    those bytes, about half the memory of the tuples."""

    def __init__(
        self,
        path: str | Path | None = None,
        listeners: Sequence[Callable[[Record], None]] = (),
        block_listeners: Sequence[Callable[[list[Record], list[bytes]], None]] = (),
    ) -> None:
        self._buffer: list[Record] = []
        self._sha = hashlib.sha256()
        packer = msgpack.Packer(use_bin_type=True, use_single_float=False)
        self._pack, self._array_header = packer.pack, packer.pack_array_header
        self.count = 0
        self._file: IO[str] | None = open(path, "w", encoding="utf-8") if path else None  # noqa: SIM115 (closed by close())
        self._listener = _fan_out(listeners)
        self._block_listeners = tuple(block_listeners)

    def record(self, *fields: Any) -> None:
        """Add one record: ``(time, kind, saga_id, *kind-specific fields)``."""
        buffer = self._buffer
        buffer.append(fields)
        if self._listener is not None:
            self._listener(fields)
        if len(buffer) >= _FLUSH_EVERY:
            self._flush()

    def add(self, record: Record) -> None:
        """Add one record that is a tuple already (as :meth:`record` would with its items)."""
        buffer = self._buffer
        buffer.append(record)
        if self._listener is not None:
            self._listener(record)
        if len(buffer) >= _FLUSH_EVERY:
            self._flush()

    def add_all(self, records: Sequence[Record]) -> None:
        """:meth:`add` each of ``records``, in order (one call for a move's records)."""
        buffer = self._buffer
        if self._listener is None and len(buffer) + len(records) < _FLUSH_EVERY:
            buffer.extend(records)  # no listener to call, no block filled: as add() would
            return
        for record in records:
            self.add(record)

    def _flush(self) -> None:
        if not self._buffer:
            return
        buffer = self._buffer
        self.count += len(buffer)
        # Each record packed on its own: a MessagePack array is its header followed by its items'
        # encodings, so these bytes hash to the digest of the block packed as one array.
        packed = list(map(self._pack, buffer))
        sha = self._sha
        sha.update(self._array_header(len(buffer)))
        sha.update(b"".join(packed))
        for listener in self._block_listeners:
            listener(buffer, packed)
        if self._file is not None:
            self._file.writelines(json.dumps(record_to_dict(r)) + "\n" for r in self._buffer)
        self._buffer.clear()

    def digest(self) -> str:
        """SHA-256 of every record so far (flushes pending records)."""
        self._flush()
        return self._sha.hexdigest()

    @property
    def total(self) -> int:
        return self.count + len(self._buffer)

    def close(self) -> None:
        self._flush()
        if self._file is not None:
            self._file.close()
            self._file = None


def _fan_out(
    listeners: Sequence[Callable[[Record], None]],
) -> Callable[[Record], None] | None:
    """One callable for the hot path: the listener itself when there is only one."""
    if not listeners:
        return None
    if len(listeners) == 1:
        return listeners[0]
    every = tuple(listeners)

    def fan_out(record: Record) -> None:
        for listener in every:
            listener(record)

    return fan_out


def unpack_records(packed: bytes | bytearray) -> list[Record]:
    """The records of concatenated MessagePack encodings (a block listener's bytes), as the
    plain tuples they were: every field is a float, int, str or None, which round-trip exactly."""
    unpacker = msgpack.Unpacker(use_list=False, raw=False)
    unpacker.feed(packed)
    return list(unpacker)


def read_trace(path: str | Path) -> Iterator[dict[str, Any]]:
    """The records of a JSONL trace file, as dicts (:func:`sagafsm.history.record_from_dict` types
    each)."""
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                data = json.loads(line)
                if not (isinstance(data, dict) and data.get("kind") == RECORDED):
                    yield data


def recorded_under(path: str | Path) -> dict[str, Any] | None:
    """What the trace at ``path`` was recorded under (its last line, see :data:`RECORDED`), or
    None for a trace without it."""
    with open(path, "rb") as handle:
        handle.seek(0, 2)
        handle.seek(max(0, handle.tell() - 65536))
        lines = handle.read().splitlines()
    for line in reversed(lines):
        if line.strip():
            try:
                data = json.loads(line)
            except ValueError:
                return None
            return data if isinstance(data, dict) and data.get("kind") == RECORDED else None
    return None
