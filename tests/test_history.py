"""Typed trace records: one named tuple per kind, and the plain tuples the simulator writes.

The typed records must stay interchangeable with the plain tuples (same items, same field order
as :data:`~sagafsm.history.RECORD_FIELDS`), survive a JSONL round trip, and leave the trace
digest alone: it hashes plain tuples whatever a caller hands to ``Trace.record``.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from typing import Any, get_args, get_type_hints

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from sagafsm import history
from sagafsm.history import (
    RECORD_FIELDS,
    RECORD_TYPES,
    EffectRecord,
    LedgerEffect,
    TransitionRecord,
    as_record,
    format_record,
    record_from_dict,
    record_to_dict,
)

SCALARS = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text()


@st.composite
def plain_records(draw: st.DrawFn) -> tuple[Any, ...]:
    """A plain tuple of any kind, with JSON-able scalars in its fields."""
    kind = draw(st.sampled_from(sorted(RECORD_FIELDS)))
    t = draw(st.floats(min_value=0, max_value=1e6))
    fields = draw(st.tuples(*(SCALARS for _ in RECORD_FIELDS[kind])))
    return (t, kind, *fields)


def test_every_kind_has_one_record_type_whose_fields_start_with_the_header() -> None:
    """Each class is for the one kind its ``kind`` Literal names; t, kind, saga come first."""
    assert set(RECORD_TYPES) == set(RECORD_FIELDS)
    for kind, cls in RECORD_TYPES.items():
        assert get_args(get_type_hints(cls)["kind"]) == (kind,)
        assert cls._fields[:3] == ("t", "kind", "saga")
        assert RECORD_FIELDS[kind] == cls._fields[2:]
    assert set(history.__all__) >= {cls.__name__ for cls in RECORD_TYPES.values()}


def test_the_simulator_module_exports_the_same_field_names() -> None:
    """``sagafsm.sim.RECORD_FIELDS`` (what the docs show) is derived from the typed records."""
    from sagafsm.sim import RECORD_FIELDS as sim_fields
    from sagafsm.sim.trace import RECORD_FIELDS as trace_fields

    assert sim_fields is RECORD_FIELDS and trace_fields is RECORD_FIELDS
    assert RECORD_FIELDS["effect"] == ("saga", "participant", "step", "effect")


@given(record=plain_records())
def test_a_typed_record_is_the_plain_tuple_with_names(record: tuple[Any, ...]) -> None:
    """as_record keeps every item in place, names each, and returns a typed record unchanged."""
    typed = as_record(record)
    assert type(typed) is RECORD_TYPES[record[1]]
    assert typed == record and tuple(typed) == record
    assert [getattr(typed, name) for name in typed._fields] == list(record)
    assert as_record(typed) is typed
    assert format_record(typed) == format_record(record)


@given(record=plain_records())
def test_a_record_survives_a_jsonl_round_trip(record: tuple[Any, ...]) -> None:
    """record_to_dict, json, record_from_dict: the same record, typed."""
    line = json.dumps(record_to_dict(record))
    back = record_from_dict(json.loads(line))
    assert back == record and type(back) is RECORD_TYPES[record[1]]


def test_a_jsonl_line_missing_a_field_reads_it_as_none() -> None:
    """An older trace without a newer field still reads; the absent field is None."""
    back = record_from_dict({"t": 1.0, "kind": "finish", "saga": "s1", "state": "completed"})
    assert back.kind == "finish" and back.state == "completed" and back.reason is None


@pytest.mark.parametrize(
    "bad",
    [
        pytest.param((1.0, "teleport", "s1"), id="unknown-kind"),
        pytest.param((1.0,), id="no-kind"),
        pytest.param((1.0, "effect", "s1", "payment", "charge"), id="a-field-short"),
        pytest.param((1.0, "forget", "s1", "extra"), id="a-field-too-many"),
    ],
)
def test_a_malformed_tuple_is_refused(bad: tuple[Any, ...]) -> None:
    """Unknown kinds and wrong arities are a ValueError, never a silently misread record."""
    with pytest.raises(ValueError, match="record"):
        as_record(bad)


@pytest.mark.parametrize(
    "line",
    [
        {"t": 1.0, "kind": "teleport", "saga": "s1"},
        {"t": 1.0, "kind": ["forget"], "saga": "s1"},
        {"kind": "forget", "saga": "s1"},
        {},
    ],
)
def test_a_malformed_jsonl_line_is_refused(line: dict[str, Any]) -> None:
    """A line with an unknown kind or no time is not a trace record."""
    with pytest.raises(ValueError, match="not a trace record"):
        record_from_dict(line)


def test_fields_read_by_name() -> None:
    """The names the checkers read: a transition's step and states, an effect's ledger entry."""
    move = as_record((2.5, "transition", "s1", "charge", "succeed", "executing", "succeeded"))
    assert isinstance(move, TransitionRecord)
    assert (move.step, move.trigger, move.source, move.dest) == (
        "charge",
        "succeed",
        "executing",
        "succeeded",
    )
    entry = as_record((2.6, "effect", "s1", "payment", "charge", LedgerEffect.COMPENSATION_REFUSED))
    assert isinstance(entry, EffectRecord)
    assert (entry.participant, entry.step, entry.effect) == (
        "payment",
        "charge",
        "compensation_refused",
    )


def test_format_record_names_every_field_but_the_saga() -> None:
    """One line: time, kind, then ``name=value`` for each field that is not None."""
    line = format_record((3.0, "effect", "s1", "payment", "charge", "compensation_refused"))
    assert (
        line
        == "    3.0000  effect      participant=payment step=charge effect=compensation_refused"
    )
    assert format_record((3.0, "teleport", "s1", "x")) == "    3.0000  teleport"


def test_the_digest_hashes_plain_tuples_whatever_a_caller_hands_over() -> None:
    """Recording a typed record's fields gives the digest of the plain tuple, byte for byte:
    SHA-256 of the MessagePack array of the records."""
    from sagafsm.sim.trace import Trace

    plain = [
        (0.0, "start", "s1", "three"),
        (0.01, "transition", "s1", None, "begin", "started", "pending"),
        (0.02, "effect", "s1", "payment", "charge", "action"),
    ]
    expected = hashlib.sha256(msgpack.packb(plain, use_bin_type=True)).hexdigest()
    for records in (plain, [as_record(r) for r in plain]):
        trace = Trace()
        for record in records:
            trace.record(*record)
        assert trace.digest() == expected


def test_the_digest_encoding_is_pinned() -> None:
    """The digest of fixed records is a known value: a change of encoding (a float written in 4
    bytes or as text, another array or string format, another hash) would change every recorded
    digest, and fails here first. Computed once with msgpack 1.2 on CPython 3.11."""
    from sagafsm.sim.trace import Trace

    trace = Trace()
    for record in (
        (0.0, "start", "s1", "three"),
        (0.1, "transition", "s1", None, "begin", "started", "pending"),
        (1e-300, "send", "s1", 2**40, "orchestrator", "payment", "execute", "c", "c", 1, None),
        (float("inf"), "effect", "s1", "payé", "charge", "action"),
    ):
        trace.record(*record)
    assert trace.digest() == "570d2e81ffff346a5caa2ad287cc5a06a06459fa698b99cf77d588e7503f34b2"


def test_the_history_and_checks_modules_import_no_simulator() -> None:
    """history and checks are part of the library: no simpy, and nothing of ``sagafsm.sim``."""
    code = (
        "import sys, sagafsm.history, sagafsm.checks; "
        "print(','.join(m for m in sys.modules if m == 'simpy' or m.startswith('sagafsm.sim')))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == ""


def test_block_listeners_get_every_record_once_in_order() -> None:
    """A block listener sees each full block when it is hashed and the last, partial one at
    digest(): every record once, in order, the same records a per-record listener sees."""
    from sagafsm.sim.trace import Trace

    each: list[Any] = []
    blocks: list[list[Any]] = []
    packed: list[list[bytes]] = []

    def on_block(block: list[Any], encoded: list[bytes]) -> None:
        blocks.append(list(block))
        packed.append(list(encoded))

    trace = Trace(listeners=[each.append], block_listeners=[on_block])
    for index in range(5000):
        if index % 2:
            trace.record(float(index), "forget", f"s{index}")
        else:
            trace.add((float(index), "forget", f"s{index}"))
    assert [len(b) for b in blocks] == [4096]
    digest = trace.digest()
    assert [len(b) for b in blocks] == [4096, 904]
    assert [r for b in blocks for r in b] == each and len(each) == 5000
    assert trace.digest() == digest and len(blocks) == 2  # nothing left to hand over
    assert [len(p) for p in packed] == [4096, 904]


def test_records_packed_one_by_one_hash_as_the_block_packed_whole() -> None:
    """The digest is SHA-256 over each block packed as one MessagePack array; the trace packs
    each record on its own (for the checker's histories) and hashes the array's header and the
    records' bytes: the same bytes, so the same digest. Each record's bytes read back as it was."""
    import hashlib

    import msgpack

    from sagafsm.sim.trace import Trace, unpack_records

    records: list[Any] = [
        (
            index / 7,
            "send",
            f"s{index}",
            index,
            "orchestrator",
            "payment",
            "execute",
            "charge",
            "charge",
            1 + index % 3,
            None if index % 2 else "succeeded",
        )
        for index in range(4096 + 17)
    ]
    seen: list[bytes] = []
    trace = Trace(block_listeners=[lambda block, encoded: seen.extend(encoded)])
    for record in records:
        trace.add(record)
    whole = hashlib.sha256()
    for start in (0, 4096):
        whole.update(msgpack.packb(records[start : start + 4096], use_bin_type=True))
    assert trace.digest() == whole.hexdigest()
    assert len(seen) == len(records)
    assert unpack_records(b"".join(seen)) == records
    assert unpack_records(bytearray(seen[3])) == [records[3]]


def test_add_all_is_add_of_each_record_across_block_boundaries() -> None:
    """A move's records go to the trace in one call: the same blocks, digest and listener calls
    as one add() per record, also when the records fill a block halfway through."""
    from sagafsm.sim.trace import Trace

    moves = [[(float(m), "forget", f"s{m}-{i}") for i in range(m % 7)] for m in range(3000)]
    traces, seen, blocks = [], [[], []], [[], []]
    for at in (0, 1):
        trace = Trace(
            listeners=[seen[at].append] if at else [],
            block_listeners=[lambda block, _, at=at: blocks[at].append(len(block))],
        )
        for move in moves:
            if at:
                for record in move:
                    trace.add(record)
            else:
                trace.add_all(move)
        traces.append(trace.digest())
    assert traces[0] == traces[1] and blocks[0] == blocks[1] and blocks[0][0] == 4096
    assert seen[1] == [record for move in moves for record in move]
    with_listener: list[Any] = []
    trace = Trace(listeners=[with_listener.append])
    trace.add_all(moves[5])
    assert with_listener == moves[5]
