"""Store URLs: how a command line or a configuration names a store.

``sqlite:///orders.db`` (relative to the working directory), ``sqlite:////var/lib/orders.db``
(absolute), a bare path ending in ``.db``, ``.sqlite`` or ``.sqlite3``, ``memory://``, or
``postgresql://user:password@host:port/database`` (also ``postgres://``: a libpq URI, which needs
the ``postgres`` extra: ``pip install 'sagafsm[postgres]'``). Anything
else is refused with a :class:`StoreError` naming the URL (a password in it is masked), rather than
guessed at: a typo must not silently create a new, empty store.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Final

from .errors import StoreError
from .memory_store import MemoryStore
from .sqlite_store import SqliteStore

if TYPE_CHECKING:
    from .postgres_store import PostgresStore

__all__ = ["open_store", "shown_url"]

SQLITE_PREFIX: Final = "sqlite:///"
MEMORY_URL: Final = "memory://"
SQLITE_SUFFIXES: Final = (".db", ".sqlite", ".sqlite3")
_USAGE: Final = "use sqlite:///PATH, postgresql://... or memory://"
_SCHEME: Final = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):")
_PASSWORD: Final = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*://[^/:@]*:)[^/@]*@")


def shown_url(url: str) -> str:
    """The URL as messages show it: a password in it masked."""
    return _PASSWORD.sub(r"\1***@", url)


def _postgres(url: str, options: dict[str, Any]) -> PostgresStore:
    try:
        from .postgres_store import PostgresStore
    except ImportError as error:
        raise StoreError(
            f"{shown_url(url)}: postgresql:// stores need psycopg ({error}); "
            "pip install 'sagafsm[postgres]'"
        ) from None
    return PostgresStore(url, **options)


def open_store(url: str, **options: Any) -> SqliteStore | MemoryStore | PostgresStore:
    """The store a URL names, not opened yet (``await store.open()`` or ``async with``).

    ``options`` go to the store's constructor (:class:`SqliteStore`: ``synchronous``,
    ``busy_timeout``, ``retention``; :class:`MemoryStore`: ``retention``;
    :class:`~sagafsm.runtime.postgres_store.PostgresStore`: ``pool_size``, ``connect_timeout``,
    ``retention``). Raises :class:`StoreError` for a URL of no known kind, an empty path, a
    ``sqlite://`` URL with a host, a query or a fragment, and for ``postgresql://`` without psycopg
    installed. Nothing connects yet: an unreachable server is refused by ``open()``.
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
        if name in ("postgresql", "postgres") and url[len(name) : len(name) + 3] == "://":
            return _postgres(url, options)
        raise StoreError(f"{shown_url(url)}: not a store URL; {_USAGE}")
    if url.lower().endswith(SQLITE_SUFFIXES):
        return SqliteStore(url, **options)
    raise StoreError(f"{url!r}: not a store URL; {_USAGE}")
