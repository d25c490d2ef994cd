"""What ``sagafsm status`` and ``sagafsm resolve`` share: opening a store that must already exist,
finding the definitions its sagas name, and reading a running saga's progress off its snapshot.

A status read from a store is what the last commit left: the snapshot says where each step is,
the definition says what each step is (a read-only step is never compensated, a pivot never
undone), and only the two together say what is still to run. The definition comes from a
scenario, named by ``--scenario`` or, by default, the built-in scenario of the definition's name.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ..definition import SagaDefinition, StepDefinition
from ..engine import SagaInstance
from ..errors import InvalidConfig, InvalidSnapshot
from ..lifecycle import SAGA_LIFECYCLE, STEP_LIFECYCLE, SagaState, StepState
from ..runtime.errors import StoreError
from ..runtime.memory_store import MemoryStore
from ..runtime.sqlite_store import SqliteStore
from ..runtime.store import SagaStatus
from ..runtime.urls import open_store

if TYPE_CHECKING:
    from ..runtime.postgres_store import PostgresStore

__all__ = [
    "RUNNING_STATES",
    "existing_store",
    "definitions_for",
    "progress",
    "add_store_argument",
]

RUNNING_STATES = tuple(s.value for s in SagaState if s not in SAGA_LIFECYCLE.terminal)
"""The states of a saga that has not finished, as the store keeps them."""

_WAITING = frozenset(STEP_LIFECYCLE.waiting)
_UNDOING = _WAITING & STEP_LIFECYCLE.reachable(StepState.COMPENSATING)
"""A step's compensation is in flight or waiting out its back-off."""
_FORWARD = (_WAITING - _UNDOING) | {STEP_LIFECYCLE.initial}
"""A step's action is still to be sent, in flight, or waiting out its back-off."""


def add_store_argument(parser: Any) -> None:
    parser.add_argument(
        "store",
        metavar="STORE",
        help="the store's URL: sqlite:///PATH (relative) or sqlite:////PATH (absolute)",
    )


def existing_store(url: str) -> SqliteStore | MemoryStore | PostgresStore:
    """The store a URL names, not opened yet; StoreError for a SQLite file that is not there (an
    operator's typo must not create an empty store and report it all quiet). A SQL store is
    opened without migrating: an older schema (or none) is refused, not upgraded under its
    runtime."""
    store = open_store(url)
    if isinstance(store, SqliteStore):
        if not os.path.isfile(store.path):
            raise StoreError(f"{url}: no store there ({store.path} does not exist)")
        store = SqliteStore(store.path, migrate=False)
    elif not isinstance(store, MemoryStore):
        store = open_store(url, migrate=False)
    return store


def definitions_for(
    names: Iterable[str], scenarios: Sequence[str], sagas: Mapping[str, str]
) -> dict[str, SagaDefinition]:
    """The definition of every name in ``names``: from the ``scenarios`` given, then from the
    built-in scenario of that name. ``sagas`` (saga id -> definition name) lets the error name a
    saga that needs one. InvalidConfig for an unknown scenario or a definition none provides."""
    from ..sim.scenario import builtin_scenarios, load_scenario

    found: dict[str, SagaDefinition] = {}
    for name in scenarios:
        definition = load_scenario(name).definition
        found.setdefault(definition.name, definition)
    built_in = builtin_scenarios()
    for name in sorted(set(names) - set(found)):
        if name in built_in:
            found[name] = load_scenario(name).definition
            continue
        saga = next(saga for saga, named in sagas.items() if named == name)
        raise InvalidConfig(
            f"saga {saga!r} runs definition {name!r}, which no scenario given defines: "
            f"name its scenario with --scenario NAME or FILE.py (built in: {', '.join(built_in)})"
        )
    return found


def _try(step: StepDefinition, state: StepState, row: Sequence[Any]) -> dict[str, Any]:
    """The step in flight: its state and which try it is on, of how many."""
    undoing = state in _UNDOING
    policy = step.compensation_retry if undoing else step.retry
    return {
        "step": step.name,
        "state": state.value,
        "attempt": row[2] if undoing else row[1],
        "max_attempts": policy.max_attempts,
    }


def progress(status: SagaStatus, definition: SagaDefinition) -> dict[str, Any]:
    """A running saga as JSON data: its state, the step in flight, the steps still to run (or,
    while compensating, still to compensate, in the order they will be), its next timer.

    InvalidConfig if the snapshot does not fit the definition (another version of it)."""
    snapshot = status.snapshot or {}
    try:
        saga = SagaInstance.restore(definition, snapshot)
    except InvalidSnapshot as error:
        raise InvalidConfig(
            f"saga {status.saga_id!r}: its snapshot does not fit definition {definition.name!r} "
            f"({error})"
        ) from None
    rows = snapshot["steps"]
    steps = [(step, saga.step_state(step.name)) for step in definition.steps]
    active = next(
        (_try(step, state, rows[i]) for i, (step, state) in enumerate(steps) if state in _WAITING),
        None,
    )
    to_run: list[str] = []
    to_compensate: list[str] = []
    if saga.state is SagaState.COMPENSATING:
        to_compensate = [
            step.name
            for step, state in reversed(steps)
            if state in _UNDOING or (state in STEP_LIFECYCLE.landed and step.kind.compensable)
        ]
    else:
        to_run = [step.name for step, state in steps if state in _FORWARD]
    return {
        "saga_id": status.saga_id,
        "definition": status.definition,
        "state": status.state,
        "started_at": status.started_at,
        "updated_at": status.updated_at,
        "active": active,
        "to_run": to_run,
        "to_compensate": to_compensate,
        "timer_due": saga.timer_due,
    }
