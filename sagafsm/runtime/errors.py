"""Errors of the runtime's stores."""

from __future__ import annotations

from ..errors import SagaError

__all__ = ["StoreError"]


class StoreError(SagaError):
    """A store that cannot be used: not a sagafsm store, written by a newer schema, a path that
    cannot be opened or written, a URL of no known kind. The message is one line naming it.
    Raised when the store is opened, before anything in it changes."""
