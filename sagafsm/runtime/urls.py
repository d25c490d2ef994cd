"""Store URLs: how a command line or a configuration names a store.

``sqlite:///orders.db`` (relative to the working directory), ``sqlite:////var/lib/orders.db``
(absolute), a bare path ending in ``.db``, ``.sqlite`` or ``.sqlite3``, or ``memory://``. Anything
else is refused with a :class:`StoreError` naming the URL (a password in it is masked), rather than
guessed at: a typo must not silently create a new, empty store.
"""

from __future__ import annotations

import re
from typing import Any, Final

from .errors import StoreError
from .memory_store import MemoryStore
from .sqlite_store import SqliteStore

__all__ = ["open_store"]

SQLITE_PREFIX: Final = "sqlite:///"
MEMORY_URL: Final = "memory://"
SQLITE_SUFFIXES: Final = (".db", ".sqlite", ".sqlite3")
_USAGE: Final = "use sqlite:///PATH or memory://"
_SCHEME: Final = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):")
_PASSWORD: Final = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*://[^/:@]*:)[^/@]*@")


def _shown(url: str) -> str:
    return _PASSWORD.sub(r"\1***@", url)


def open_store(url: str, **options: Any) -> SqliteStore | MemoryStore:
    """The store a URL names, not opened yet (``await store.open()`` or ``async with``).

    ``options`` go to the store's constructor (:class:`SqliteStore`: ``synchronous``,
    ``busy_timeout``, ``retention``; :class:`MemoryStore`: ``retention``). Raises
    :class:`StoreError` for a URL of no known kind, an empty path, a ``sqlite://`` URL with a
    host, a query or a fragment, and for ``postgresql://`` (not in this version).
    """
    if not isinstance(url, str):
        raise StoreError(f"{url!r}: a store URL is a string; {_USAGE}")
    if url == MEMORY_URL:
        unknown = sorted(set(options) - {"retention"})
        if unknown:
            raise StoreError(f"{url}: a memory store has no option {', '.join(unknown)}")
        return MemoryStore(**options)
    if url.startswith(SQLITE_PREFIX):
        path = url[len(SQLITE_PREFIX) :]
        if not path or path.endswith("/") or "?" in path or "#" in path:
            raise StoreError(f"{url}: not a SQLite store URL; {_USAGE} (PATH names a file)")
        return SqliteStore(path, **options)
    scheme = _SCHEME.match(url)
    if scheme is not None and len(scheme.group(1)) > 1:  # "C:\\orders.db" is a path
        name = scheme.group(1).lower()
        if name in ("postgresql", "postgres"):
            raise StoreError(
                f"{_shown(url)}: postgresql:// stores are not available in this version; "
                "use sqlite:///PATH"
            )
        raise StoreError(f"{_shown(url)}: not a store URL; {_USAGE}")
    if url.lower().endswith(SQLITE_SUFFIXES):
        return SqliteStore(url, **options)
    raise StoreError(f"{url!r}: not a store URL; {_USAGE}")
