"""Choreographed sagas: no orchestrator; participants react to each other's events.

A choreography is declared once, as one global table (:class:`ChoreographyBuilder`, or
:func:`choreography_from` an orchestration definition), validated when it is built, and projected
into one explicit lifecycle per participant's step (:func:`project`).
"""

from __future__ import annotations

from .builder import ChoreographyBuilder
from .events import ChoreographyEvent
from .table import (
    ChoreographyDefinition,
    ChoreographyStep,
    CompensationReaction,
    OutcomeReaction,
    Reaction,
)
from .validation import problems

__all__ = [
    "ChoreographyBuilder",
    "ChoreographyDefinition",
    "ChoreographyEvent",
    "ChoreographyStep",
    "CompensationReaction",
    "OutcomeReaction",
    "Reaction",
    "problems",
]
