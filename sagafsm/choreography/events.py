"""The envelope of one choreography event, as participants exchange it.

With no orchestrator, an event is the only thing that travels: it names its saga (``saga_id``, the
correlation id), itself (``event_id``, unique within the saga, by which a participant deduplicates
a redelivered event) and the event that caused it (``causation_id``: None for the start event), so
a trace can be read as the causal tree the validation explores
(:mod:`sagafsm.choreography.paths`).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import attrs

from .._validate import check_name
from ..errors import InvalidArgument

__all__ = ["ChoreographyEvent"]

_EMPTY: Mapping[str, Any] = MappingProxyType({})


@attrs.frozen(kw_only=True)
class ChoreographyEvent:
    """One event of one saga: ``name`` is an event of the table, ``source`` the participant that
    emitted it, ``data`` what it carries (the saga's input and the results so far)."""

    saga_id: str
    event_id: str
    causation_id: str | None
    name: str
    source: str
    data: Mapping[str, Any] = _EMPTY

    def __attrs_post_init__(self) -> None:
        check_name(self.saga_id, "saga_id")
        check_name(self.event_id, "event_id")
        if self.causation_id is not None:
            check_name(self.causation_id, "causation_id")
        if not isinstance(self.name, str) or not self.name.isidentifier():
            raise InvalidArgument(f"an event name must be an identifier, got {self.name!r}")
        check_name(self.source, "source")

    @property
    def correlation_id(self) -> str:
        return self.saga_id
