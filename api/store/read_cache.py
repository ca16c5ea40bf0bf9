"""Cheap analytics reads under concurrency: one computation per store version, shared.

``/v1/counts`` and ``/v1/metrics`` read a day of events and aggregate them; 64
dashboards polling at once made every request do that work (p99 ~20 s). A
:class:`ReadCache` keeps each answer with the store's *events version*
(:meth:`~storesense.api.store.base.Store.events_version`, which changes on every
write, erasure and purge): a request whose version matches is a dictionary
look-up; concurrent requests for a result being recomputed wait for that one
computation (single flight) or, when an older answer exists, get the older answer
at once (stale for at most one computation). In a busy store, where the version
changes every second, ``busy_factor`` keeps an answer a few times as long as it
took to compute, so recomputing never eats the server. Measured in
``benchmarks/api_polling.py``.

Example:
    >>> cache = ReadCache()
    >>> calls = []
    >>> def compute() -> int:
    ...     calls.append(1)
    ...     return 42
    >>> cache.get(("counts", 0, 60), "v1", compute), cache.get(("counts", 0, 60), "v1", compute)
    (42, 42)
    >>> len(calls)
    1
    >>> cache.get(("counts", 0, 60), "v2", compute), len(calls)
    (42, 2)
"""

from __future__ import annotations

import collections
import concurrent.futures
import threading
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T")

ANALYTICS_BUSY_FACTOR = 4.0
"""``busy_factor`` of the analytics reads (counts, metrics, journeys, funnels): while
events stream in, an answer that took ``t`` s to compute is served for ``4 t`` s, so
recomputing takes at most a fifth of the server's time and a dashboard is at most a
few seconds behind."""


@dataclass(frozen=True)
class _Entry:
    version: str | None
    computed_at: float
    compute_s: float
    value: Any


class ReadCache:
    """Results per key, valid while the store's version is unchanged (and ``max_age_s``)."""

    def __init__(self, max_entries: int = 256, clock: Callable[[], float] = time.monotonic):
        if max_entries < 1:
            raise ValueError(f"max_entries must be >= 1, got {max_entries}")
        self._max_entries = max_entries
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: collections.OrderedDict[Hashable, _Entry] = collections.OrderedDict()
        self._in_flight: dict[Hashable, concurrent.futures.Future[Any]] = {}

    def get(
        self,
        key: Hashable,
        version: str | None,
        compute: Callable[[], T],
        max_age_s: float = 60.0,
        busy_factor: float = 0.0,
    ) -> T:
        """The cached value of ``key`` at ``version``, else ``compute()`` (once at a time).

        ``version=None`` (a store that cannot tell) caches for ``max_age_s`` only.
        ``busy_factor`` bounds the time spent recomputing under a stream of new versions:
        an answer that took ``t`` seconds is kept, whatever the version, for
        ``busy_factor * t`` seconds (4: at most a fifth of the time recomputing).
        """
        now = self._clock()
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and (
                (entry.version == version and now - entry.computed_at < max_age_s)
                or now - entry.computed_at < busy_factor * entry.compute_s
            ):
                self._entries.move_to_end(key)
                return entry.value
            flight = self._in_flight.get(key)
            if flight is not None and entry is not None:
                return entry.value
            owner = flight is None
            if flight is None:
                flight = self._in_flight[key] = concurrent.futures.Future()
        if not owner:
            return flight.result()
        try:
            value = compute()
            compute_s = self._clock() - now
        except BaseException as exc:
            with self._lock:
                del self._in_flight[key]
            flight.set_exception(exc)
            raise
        with self._lock:
            self._entries[key] = _Entry(version, now, compute_s, value)
            self._entries.move_to_end(key)
            while len(self._entries) > self._max_entries:
                self._entries.popitem(last=False)
            del self._in_flight[key]
        flight.set_result(value)
        return value

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


class Same:
    """A cache-key part equal only to the very same object (e.g. the layout in force);
    it holds the object, so its id cannot be reused while the key exists."""

    __slots__ = ("obj",)

    def __init__(self, obj: object) -> None:
        self.obj = obj

    def __hash__(self) -> int:
        return id(self.obj)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Same) and other.obj is self.obj


def read_cache_of(state: Any) -> ReadCache:
    """The app's shared :class:`ReadCache` (made on first use, kept in ``app.state``)."""
    cache: ReadCache | None = getattr(state, "read_cache", None)
    if cache is None:
        cache = state.read_cache = ReadCache()
    return cache
