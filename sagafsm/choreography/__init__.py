"""Choreographed sagas: no orchestrator; participants react to each other's events.

A choreography is declared once, as one global table (:class:`ChoreographyBuilder`, or
:func:`choreography_from` an orchestration definition), validated when it is built (:func:`problems`
lists what is wrong with a table), and projected into one explicit lifecycle per role a participant
plays (:func:`project`). Importing it loads no simulation or plotting library.
"""

from __future__ import annotations

from .builder import ChoreographyBuilder
from .derive import choreography_from
from .diagram import (
    flow_mermaid,
    path_of,
    render_role_png,
    render_sequence_png,
    role_mermaid,
    sequence_mermaid,
)
from .events import ChoreographyEvent
from .examples import order_saga, order_saga_as_written
from .paths import Occurrence, Path
from .projection import DEADLINE_PASSED, OutcomeState, Projection, Role, RoleRun, RoleState, project
from .table import (
    ChoreographyDefinition,
    ChoreographyStep,
    CompensationReaction,
    OutcomeReaction,
    Reaction,
)
from .validation import problems

__all__ = [
    "DEADLINE_PASSED",
    "ChoreographyBuilder",
    "ChoreographyDefinition",
    "ChoreographyEvent",
    "ChoreographyStep",
    "CompensationReaction",
    "Occurrence",
    "OutcomeReaction",
    "OutcomeState",
    "Path",
    "Projection",
    "Reaction",
    "Role",
    "RoleRun",
    "RoleState",
    "choreography_from",
    "flow_mermaid",
    "order_saga",
    "order_saga_as_written",
    "path_of",
    "problems",
    "project",
    "render_role_png",
    "render_sequence_png",
    "role_mermaid",
    "sequence_mermaid",
]
