"""Correctness properties, checked from what the participants actually did.

Rules for this module: checkers are pure functions over trace records (the typed records of
:mod:`sagafsm.history`, or the plain tuples they stand for) and a saga definition. They import no
SimPy and no driver, and trust nothing the orchestrator believes: outcomes are judged from the
participants' ledgers (``effect`` records). Every lifecycle fact (rows, initial and final states)
is read from the specs in :mod:`sagafsm.lifecycle`, never restated. The same functions run after
every simulation, inside Hypothesis state-machine tests, and over a JSONL trace file.

:class:`StreamingChecker` folds each saga's records as they arrive (:mod:`sagafsm._saga_fold` holds
the properties, as a fold), checks a saga once it can no longer change and forgets it, so a
million-saga run is checked in the memory of the sagas still open.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import attrs

from ._saga_fold import READ, STRAGGLERS, SagaFold, Steps, findings, folders
from .definition import SagaDefinition
from .errors import InvalidArgument
from .history import KIND, SAGA, RawRecord, TraceRecord, as_record, format_record

__all__ = [
    "PROPERTIES",
    "Violation",
    "check_saga",
    "check_history",
    "StreamingChecker",
    "format_record",
]

Record = RawRecord | TraceRecord
"""What the checkers accept: a typed record, or the plain tuple a driver wrote."""

PROPERTIES: dict[str, str] = {
    "termination": "every saga reaches a final state, at the latest termination_bound "
    "simulated seconds after the last start request",
    "single-run": "every saga is started once and finishes once, across crashes",
    "completed-exactly-once": "a completed saga applied every action exactly once and "
    "no compensation",
    "compensated-exactly-once": "a failed saga compensated every landed action exactly once, "
    "and nothing whose action never landed (a read-only step has nothing to compensate)",
    "reverse-order": "compensations run in reverse step order",
    "no-effect-after-compensation": "no action takes effect after its compensation",
    "no-duplicate-effect": "no action or compensation takes effect twice",
    "declared-transitions": "every lifecycle change is a declared transition from the current "
    "state, and nothing leaves a final state but an operator's retry",
    "pivot-rule": "once the pivot landed, nothing is compensated and the saga does not fail",
    "read-only-untouched": "no compensation is ever sent to a read-only step",
    "compensation-input": "every compensation is handed its own action's result "
    "(participants refuse any other)",
    "outbox-rule": "a participant acts only on a committed decision: each effect comes after "
    "its step's committed move into executing (an action) or compensating (a compensation)",
    "domain-invariants": "the scenario's totals (stock, money...) balance once every saga ended",
    "effect-before-event": "choreography: a participant records its action's or compensation's "
    "effect before it emits the event that announces it",
}


@attrs.frozen(kw_only=True)
class Violation:
    """A broken property: which saga (None for a run-wide one), which property, what happened,
    and the saga's history as readable lines."""

    saga_id: str | None
    property: str
    detail: str
    history: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "saga_id": self.saga_id,
            "property": self.property,
            "detail": self.detail,
            "history": list(self.history),
        }


def check_saga(
    saga_id: str, history: Sequence[Record], definition: SagaDefinition
) -> list[Violation]:
    """Every per-saga property, over one saga's records (typed or plain) in time order."""
    records = [as_record(r) for r in history]  # refuses an unknown kind or a wrong arity
    steps = Steps.of(definition)
    fold = steps.new_fold()
    fold_kind = folders(steps, set())
    fold.history = records
    for record in records:
        folder = fold_kind.get(record[KIND])
        if folder is not None:
            folder(fold, record)
    return _violations(fold, saga_id, steps)


def _violations(
    fold: SagaFold,
    saga_id: str,
    steps: Steps,
    unpack: Callable[[bytearray], Sequence[Record]] | None = None,
) -> list[Violation]:
    found = findings(fold, steps)
    if not found:
        return []
    lines = tuple(format_record(r) for r in _history(fold, unpack))
    return [Violation(saga_id=saga_id, property=p, detail=d, history=lines) for p, d in found]


def _history(
    fold: SagaFold, unpack: Callable[[bytearray], Sequence[Record]] | None
) -> Sequence[Any]:
    """A fold's history as records, read back if it was kept as bytes (observe_block refuses
    bytes to a checker without ``unpack``)."""
    history = fold.history
    if isinstance(history, bytearray) and unpack is not None:
        return unpack(history)
    return history


def check_history(
    records: Iterable[Record], definition: SagaDefinition, *, steps: Steps | None = None
) -> list[Violation]:
    """Check a whole run's records (typed or plain; e.g. read back from a trace file) at once.
    ``steps``: see :class:`StreamingChecker`."""
    checker = StreamingChecker(definition, steps=steps)
    checker.observe_block(records)
    return checker.finish()


class StreamingChecker:
    """Folds each saga's records as they come, checks it when it can no longer change, then
    forgets it.

    A saga is checked when a ``forget`` record says the participants dropped its idempotency
    records (nothing of it can happen after that), or at :meth:`finish` for the rest. Every record
    of an open saga is kept, for the lines of a violation's history; only the kinds a check reads
    are folded on arrival (see :class:`SagaFold`), so checking a saga is a look at a few counters.
    """

    def __init__(
        self,
        definition: SagaDefinition,
        *,
        max_reported: int = 1000,
        on_checked: Callable[[list[Record]], None] | None = None,
        steps: Steps | None = None,
        unpack: Callable[[bytearray], Sequence[Record]] | None = None,
    ) -> None:
        self.definition = definition
        self.max_reported = max_reported
        self.on_checked = on_checked
        """Called with each saga's history once it is checked, the records the checks read
        (transitions, effects, finishes, compensations sent) typed."""
        self.moves: set[tuple[str, str, str, str]] = set()
        """Every committed transition seen, as ``(lifecycle, source, trigger, dest)``: what
        transition coverage reads."""
        self._steps = Steps.of(definition) if steps is None else steps
        """What the checks read of the saga: ``steps`` when given (a choreography's roles, see
        :func:`sagafsm.choreography.checking.choreography_steps`), else ``definition``'s."""
        self._folders = folders(self._steps, self.moves)
        self._unpack = unpack
        """Reads back a history kept as bytes (see :meth:`observe_block`)."""
        self._open: dict[str, SagaFold] = {}
        self.violations: list[Violation] = []
        self.counts: Counter[str] = Counter()
        self.checked = 0

    def observe(self, record: Record) -> None:
        """Take one record of the run (see :meth:`observe_block`)."""
        self.observe_block((record,))

    def observe_block(
        self, records: Iterable[Record], packed: Iterable[bytes] | None = None
    ) -> None:
        """Take records of the run, in order: each one of an open saga joins its history, and
        the kinds a check reads are folded (a block at a time, as the simulator hands them).

        ``packed``, beside the records, is each one's encoding as bytes (the simulator's trace
        hands the MessagePack bytes it hashed): the history is then kept as those bytes, for the
        checker's ``unpack`` to read back only if the saga broke a property. A held saga's
        history is most of what it costs in memory, and bytes take about half of the tuples'."""
        sagas, fold_kind, check = self._open, self._folders, self._check
        new_fold = self._steps.new_fold
        if packed is not None and self._unpack is None:
            raise InvalidArgument("packed records need a checker built with unpack=")
        pairs: Iterable[tuple[Any, Any]]
        if packed is None:
            pairs = ((record, None) for record in records)
        else:
            pairs = zip(records, packed, strict=True)
        for record, keep in pairs:
            # look at the shared header first: most records are only kept
            saga_id = record[SAGA]
            if saga_id is None:
                continue
            kind = record[KIND]
            fold = sagas.get(saga_id)
            if fold is None:
                if kind == "forget" or kind in STRAGGLERS:
                    # Message traffic of a saga already checked and forgotten (a reply held back
                    # past the retention): participants refuse it, it cannot change the verdict.
                    continue
                fold = sagas[saga_id] = new_fold()
                if packed is not None:
                    fold.history = bytearray()
            elif kind == "forget":
                del sagas[saga_id]
                check(saga_id, fold)
                continue
            history = fold.history
            if isinstance(history, bytearray):
                history += keep
            else:
                history.append(record)
            folder = fold_kind.get(kind)
            if folder is not None:
                folder(fold, record)

    def _check(self, saga_id: str, fold: SagaFold) -> None:
        self.checked += 1
        for violation in _violations(fold, saga_id, self._steps, self._unpack):
            self.counts[violation.property] += 1
            if len(self.violations) < self.max_reported:
                self.violations.append(violation)
        if self.on_checked is not None:
            history = list(_history(fold, self._unpack))
            for at, record in enumerate(history):
                if record[KIND] in READ:
                    history[at] = as_record(record)
            self.on_checked(history)

    def finish(self) -> list[Violation]:
        """Check every saga still open; return every violation found (up to ``max_reported``)."""
        for saga_id, fold in self._open.items():
            self._check(saga_id, fold)
        self._open.clear()
        return self.violations

    def __len__(self) -> int:
        return len(self._open)
