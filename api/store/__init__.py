"""Event and state stores: embedded SQLite and Redis, with an offline spool.

``open_store(url, store_id)`` picks the back-end from the URL:

- ``sqlite:///storesense.db`` (relative path), ``sqlite:////var/lib/storesense.db``
  (absolute), ``sqlite://:memory:``; ``?synchronous=normal`` trades power-cut
  durability for speed (default ``full``).
- ``redis://host:6379/0``, ``rediss://…`` (TLS), ``unix:///run/redis.sock``,
  ``redis+cluster://host:7000`` (Redis Cluster).

Example:
    >>> store = open_store("sqlite://:memory:", "store-1")
    >>> type(store).__name__
    'SQLiteStore'
    >>> store.close()
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from storesense.api.store.base import (
    ApiKeyRecord,
    CameraReport,
    EventQuery,
    Store,
    StoreUnavailableError,
    ZoneOccupancy,
)

DEFAULT_STORE_URL = "sqlite:///storesense.db"

_REDIS_SCHEMES = ("redis", "rediss", "unix", "redis+cluster", "rediss+cluster")

__all__ = [
    "DEFAULT_STORE_URL",
    "ApiKeyRecord",
    "CameraReport",
    "EventQuery",
    "Store",
    "StoreUnavailableError",
    "ZoneOccupancy",
    "open_store",
]


def open_store(
    url: str = DEFAULT_STORE_URL, store_id: str = "default", spool_path: str | Path | None = None
) -> Store:
    """Open the store at ``url`` for ``store_id``.

    With ``spool_path`` the store is wrapped in a :class:`~.spool.SpoolingStore`:
    events written while the back-end is unreachable wait in that local file.
    Raises ``ValueError`` for an unknown scheme or a malformed URL.
    """
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise ValueError(
            f"store URL {url!r} has no scheme: use sqlite:///path.db or redis://host:port/db"
        )
    scheme = scheme.lower()
    store: Store
    if scheme == "sqlite":
        from storesense.api.store.sqlite import SQLiteStore

        path, _, query = rest.partition("?")
        if path.startswith("/"):
            path = path[1:]  # sqlite:///relative.db, sqlite:////absolute.db
        if not path:
            raise ValueError(f"store URL {url!r} names no database file")
        options = {k: v[-1] for k, v in parse_qs(query).items()}
        unknown = set(options) - {"synchronous"}
        if unknown:
            raise ValueError(f"unknown SQLite store option(s) {sorted(unknown)} in {url!r}")
        store = SQLiteStore(path, store_id, synchronous=options.get("synchronous", "full"))
    elif scheme in _REDIS_SCHEMES:
        from storesense.api.store.redis import RedisStore

        if scheme != "unix" and not urlsplit(url).hostname:
            raise ValueError(f"store URL {url!r} names no Redis host")
        store = RedisStore.from_url(url, store_id)
    else:
        raise ValueError(
            f"unknown store URL scheme {scheme!r} in {url!r}: use sqlite:///path.db, "
            "sqlite://:memory:, redis://host:port/db, rediss://… or redis+cluster://…"
        )
    if spool_path is not None:
        from storesense.api.store.spool import SpoolingStore

        return SpoolingStore(store, spool_path)
    return store
