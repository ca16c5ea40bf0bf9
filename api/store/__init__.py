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

from storesense.api.store.base import (
    ApiKeyRecord,
    CameraReport,
    EventQuery,
    Store,
    StoreUnavailableError,
    ZoneOccupancy,
)
from storesense.api.store.url import is_redis_url, parse_store_url

DEFAULT_STORE_URL = "sqlite:///storesense.db"

__all__ = [
    "DEFAULT_STORE_URL",
    "ApiKeyRecord",
    "CameraReport",
    "EventQuery",
    "Store",
    "StoreUnavailableError",
    "ZoneOccupancy",
    "is_redis_url",
    "open_store",
    "parse_store_url",
]


def open_store(
    url: str = DEFAULT_STORE_URL, store_id: str = "default", spool_path: str | Path | None = None
) -> Store:
    """Open the store at ``url`` for ``store_id``.

    With ``spool_path`` the store is wrapped in a :class:`~.spool.SpoolingStore`:
    events written while the back-end is unreachable wait in that local file.
    Raises ``ValueError`` for an unknown scheme or a malformed URL.
    """
    parsed = parse_store_url(url)
    store: Store
    if parsed.backend == "sqlite":
        from storesense.api.store.sqlite import SQLiteStore

        assert parsed.path is not None
        synchronous = parsed.options.get("synchronous", "full")
        store = SQLiteStore(parsed.path, store_id, synchronous=synchronous)
    else:
        from storesense.api.store.redis import RedisStore

        store = RedisStore.from_url(url, store_id)
    if spool_path is not None:
        from storesense.api.store.spool import SpoolingStore

        return SpoolingStore(store, spool_path)
    return store
