"""Streaming-checker cases that mutation testing (mutation/run, issue 15) found unpinned: what
one block of records may hold around a ``forget``, and the checker's defaults."""

from __future__ import annotations

from typing import Any

import pytest
from test_checks import (
    THREE,
    VERIFIED,
    History,
    completed,
    details,
    failed_at_ship,
    properties,
)

from sagafsm.checks import StreamingChecker, check_history
from sagafsm.errors import InvalidArgument
from sagafsm.history import LedgerEffect as Effect


def broken(saga_id: str) -> History:
    """A saga that compensated in forward order (reverse-order is broken)."""
    history = History(THREE, saga_id).start().succeed("reserve").succeed("charge").fail("ship")
    return history.abort().compensate("reserve").compensate("charge").failed()


def test_records_after_a_forget_in_the_same_block_are_still_read() -> None:
    """One block: a saga, its forget, a straggler of it, then another saga: both are checked,
    each violation under its own saga id."""
    first, second = broken("s1"), broken("s2")
    block = [
        *first.records,
        (first.t + 1, "forget", "s1"),
        (first.t + 2, "deliver", "s1", 99),
        *second.records,
    ]
    checker = StreamingChecker(THREE)
    checker.observe_block(block)
    assert checker.checked == 1 and len(checker) == 1
    checker.finish()
    assert [v.saga_id for v in checker.violations] == ["s1", "s2"]
    assert checker.definition is THREE


def test_a_forget_for_a_saga_never_seen_opens_nothing() -> None:
    checker = StreamingChecker(THREE)
    checker.observe((1.0, "forget", "ghost"))
    assert len(checker) == 0
    assert checker.finish() == [] and checker.checked == 0
    clean = StreamingChecker(THREE)
    clean.observe_block([*completed(saga_id="s1").records, (9.0, "forget", "s1")])
    clean.observe_block(failed_at_ship("s2").records)
    assert clean.finish() == [] and clean.checked == 2


def test_a_thousand_violations_are_kept_by_default_and_every_one_counted() -> None:
    checker = StreamingChecker(THREE)
    checker.observe_block(
        record for n in range(1001) for record in History(THREE, f"s{n}").start().records
    )
    violations = checker.finish()
    assert len(violations) == 1000
    assert checker.counts["termination"] == 1001
    assert properties(violations) == {"termination"}


def test_a_read_only_first_step_does_not_excuse_the_steps_after_it() -> None:
    """reserve landed and was never undone: reported, though the read-only verify comes first."""
    history = History(VERIFIED).start().succeed("verify").succeed("reserve").fail("charge")
    history.abort().failed()
    assert details(history.check(), "compensated-exactly-once") == [
        "the action of step 'reserve' took effect but was compensated 0 times"
    ]


def test_two_compensations_sent_to_a_read_only_step_read_in_the_plural() -> None:
    history = History(VERIFIED).start().succeed("verify").succeed("reserve").fail("charge")
    history.abort().compensate("reserve")
    history.step("verify", "compensate", "succeeded", "compensating")
    history.send("verify", "compensate", "undo_verify_customer")
    history.send("verify", "compensate", "undo_verify_customer")
    history.step("verify", "compensated", "compensating", "compensated").failed()
    assert details(history.check(), "read-only-untouched") == [
        "read-only step 'verify' was compensated: 2 compensations sent"
    ]


@pytest.mark.parametrize(
    ("short", "message"),
    [
        ((1.0, "finish", "s1"), "a record of kind 'finish' has 5 items"),
        ((1.0, "transition", "s1", "reserve"), "a record of kind 'transition' has 7 items"),
        (
            (1.0, "send", "s1", 1, "orchestrator", "inventory", "compensate", "reserve", "x", 1),
            "a record of kind 'send' has 11 items",
        ),
    ],
)
def test_a_short_record_streamed_in_is_refused_with_its_kind(
    short: tuple[Any, ...], message: str
) -> None:
    checker = StreamingChecker(THREE)
    checker.observe_block(History(THREE).start().records)
    with pytest.raises(ValueError, match=message):
        checker.observe(short)


def test_a_step_the_definition_lacks_is_judged_by_the_table_too() -> None:
    """Records of a step named nowhere in the definition (a renamed step, a trace of another
    version) still follow the step table from its initial state, and the outbox rule."""
    clean = completed()
    clean.step("extra", "send", "pending", "executing")
    clean.add("effect", "elsewhere", "extra", Effect.ACTION)
    clean.step("extra", "succeed", "executing", "succeeded")
    assert clean.check() == []
    skipped = completed().step("extra", "succeed", "executing", "succeeded")
    assert details(skipped.check(), "declared-transitions") == [
        "step 'extra' moved from 'executing' while it was in 'pending'"
    ]
    early = completed().add("effect", "elsewhere", "extra", Effect.ACTION)
    early.step("extra", "send", "pending", "executing")
    assert details(early.check(), "outbox-rule") == [
        "participant 'elsewhere' recorded action for step 'extra' before the orchestrator "
        "committed the step executing"
    ]


def test_transition_coverage_counts_a_step_the_definition_lacks_under_the_step_lifecycle() -> None:
    """Its moves are the step table's moves, so coverage reads them as such (here the one move
    no step of the definition made)."""
    moves = []
    for history in (completed(), completed().give_up("extra")):
        checker = StreamingChecker(THREE)
        checker.observe_block(history.records)
        moves.append(checker.moves)
    assert moves[1] - moves[0] == {("step", "executing", "give_up", "timed_out")}
    assert ("saga", "pending", "complete", "completed") in moves[0]


def test_a_history_kept_as_packed_bytes_reads_back_every_record() -> None:
    """The simulator hands the checker each record's MessagePack bytes beside it, and the
    checker keeps an open saga's history as those bytes: the violations, their histories
    (every record of the saga, in order) and what on_checked sees are those of the records."""
    msgpack = pytest.importorskip("msgpack")
    from sagafsm.sim.trace import unpack_records

    block = [*broken("s1").records, (99.0, "forget", "s1"), *broken("s2").records]
    block += [(100.0, "deliver", "s1", 7)]  # a straggler of a forgotten saga: not kept
    packed = [msgpack.packb(record, use_bin_type=True) for record in block]
    seen: list[list[Any]] = [[], []]
    plain = StreamingChecker(THREE, on_checked=seen[0].append)
    plain.observe_block(block)
    compact = StreamingChecker(THREE, on_checked=seen[1].append, unpack=unpack_records)
    compact.observe_block(block, packed)
    expected = plain.finish()
    assert compact.finish() == expected and len(expected) == 2
    assert len(expected[0].history) == len(broken("s1").records)
    assert seen[0] == seen[1] and len(seen[0]) == 2
    refused = r"^packed records need a checker built with unpack=$"
    with pytest.raises(InvalidArgument, match=refused):
        StreamingChecker(THREE).observe_block(block, packed)
    with pytest.raises(ValueError, match="zip"):  # a record without its bytes, or bytes without
        compact.observe_block(block, packed[:-1])
    # a checker that can read bytes back still takes plain records, and keeps them as they are
    mixed = StreamingChecker(THREE, unpack=unpack_records)
    mixed.observe_block(block)
    assert mixed.finish() == expected


def test_records_given_as_a_generator_are_each_kept_once() -> None:
    """observe_block takes any iterable, read once: a generator's records each join the
    history (a history shows every record of the saga)."""
    records = broken("s1").records
    violations = check_history((record for record in records), THREE)
    assert violations and {len(v.history) for v in violations} == {len(records)}
