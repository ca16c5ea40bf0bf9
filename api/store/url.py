"""The one parser of store URLs: every module reading one calls :func:`parse_store_url`.

Example:
    >>> url = parse_store_url("sqlite:///shop.db?synchronous=normal")
    >>> url.backend, url.path, url.options
    ('sqlite', 'shop.db', {'synchronous': 'normal'})
    >>> parse_store_url("redis://localhost:6379/0").backend
    'redis'
    >>> parse_store_url("ftp://x")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: unknown store URL scheme 'ftp' in 'ftp://x': use sqlite:///path.db, ...
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import parse_qs, urlsplit

REDIS_SCHEMES = ("redis", "rediss", "unix", "redis+cluster", "rediss+cluster")
"""Schemes the Redis back-end opens (``unix://`` is a Redis socket)."""
SQLITE_OPTIONS = frozenset({"synchronous"})


@dataclass(frozen=True)
class StoreURL:
    """A checked store URL: which back-end, and for SQLite the file and its options."""

    backend: Literal["sqlite", "redis"]
    url: str
    path: str | None = None
    """SQLite: the database file (``:memory:`` in memory), relative to the working directory
    for ``sqlite:///x.db``, absolute for ``sqlite:////x.db``."""
    options: dict[str, str] = field(default_factory=dict)
    cluster: bool = False
    """Redis: ``redis+cluster://`` or ``rediss+cluster://`` (a Redis Cluster)."""

    @property
    def client_url(self) -> str:
        """The URL redis-py opens: the store URL without ``+cluster`` in its scheme.

        >>> parse_store_url("rediss+cluster://h:7000").client_url
        'rediss://h:7000'
        """
        if not self.cluster:
            return self.url
        scheme, _, rest = self.url.partition("://")
        return scheme[: -len("+cluster")] + "://" + rest


def parse_store_url(url: str) -> StoreURL:
    """Check ``url`` and say which back-end opens it; ``ValueError`` (one line) if bad."""
    scheme, separator, rest = url.partition("://")
    if not separator:
        raise ValueError(
            f"store URL {url!r} has no scheme: use sqlite:///path.db or redis://host:port/db"
        )
    scheme = scheme.lower()
    if scheme == "sqlite":
        path, _, query = rest.partition("?")
        if path.startswith("/"):
            path = path[1:]  # sqlite:///relative.db, sqlite:////absolute.db
        if not path:
            raise ValueError(f"store URL {url!r} names no database file")
        options = {key: values[-1] for key, values in parse_qs(query).items()}
        unknown = set(options) - SQLITE_OPTIONS
        if unknown:
            raise ValueError(f"unknown SQLite store option(s) {sorted(unknown)} in {url!r}")
        return StoreURL("sqlite", url, path, options)
    if scheme in REDIS_SCHEMES:
        if scheme != "unix" and not urlsplit(url).hostname:
            raise ValueError(f"store URL {url!r} names no Redis host")
        return StoreURL("redis", url, cluster=scheme.endswith("+cluster"))
    raise ValueError(
        f"unknown store URL scheme {scheme!r} in {url!r}: use sqlite:///path.db, "
        "sqlite://:memory:, redis://host:port/db, rediss://… or redis+cluster://…"
    )


def is_redis_url(url: str) -> bool:
    """True when ``url`` is a valid Redis store URL.

    >>> is_redis_url("unix:///run/redis.sock"), is_redis_url("sqlite:///x.db")
    (True, False)
    """
    try:
        return parse_store_url(url).backend == "redis"
    except ValueError:
        return False
