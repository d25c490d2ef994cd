"""The optional parts of sagafsm and the extra that installs each: the one table that says so.

``import sagafsm``, the engine and the runtime need only ``transitions`` and ``attrs``. An optional
part (the simulator, the plots, exploration, Dask, sensitivity analysis) calls :func:`require`
before it imports anything heavy, and a command before it does any work, so a missing library is
one line naming the extra to install, never a traceback halfway through. The check finds modules
without importing them: it costs microseconds and loads nothing.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping

from .errors import MissingExtra

__all__ = ["EXTRAS", "require"]

EXTRAS: Mapping[str, tuple[str, ...]] = {
    "sim": ("simpy", "cattrs", "msgpack", "rich", "scipy"),
    "plots": ("matplotlib",),
    "explore": ("hypothesis", "tomli_w"),
    "dask": ("distributed",),
    "sensitivity": ("SALib",),
    "postgres": ("psycopg", "psycopg_pool"),
}
"""Each extra's top-level modules, as ``pyproject.toml``'s optional dependencies install them
(``tests/test_extras.py`` keeps the two in step)."""


def require(extra: str, what: str) -> None:
    """Raise :class:`~sagafsm.MissingExtra` if a library of ``extra`` is not installed.

    ``what`` names the part that needs it, as the message starts: ``"sagafsm.sim"``,
    ``"--plots"``."""
    missing = [name for name in EXTRAS[extra] if importlib.util.find_spec(name) is None]
    if missing:
        raise MissingExtra(extra, what, missing)
