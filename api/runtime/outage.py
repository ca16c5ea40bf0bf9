"""A camera's events on their way to the store, kept in memory through a store outage.

Hand-written back-off: it is checked on every frame and must never block, so it is a
``retry_at`` timestamp, not a sleeping retry loop (tenacity).

Bounded (``outage_buffer_events``: the oldest go first, counted in
``storesense_events_dropped_total``); while the store is down it is retried with a
doubling back-off, not on every frame; an event the store refuses is dropped (logged),
never retried, so one bad event cannot wedge the camera. A spool (``serve --spool``)
keeps events on disk instead.

A store that is down, then back:

Example:
    >>> from storesense.api.store.base import StoreUnavailableError
    >>> class Flaky:
    ...     down, written = True, []
    ...     def write_events(self, events):
    ...         if self.down: raise StoreUnavailableError("down")
    ...         self.written += events
    >>> store = Flaky()
    >>> buffer = OutageBuffer(store, "cam1", max_events=2)
    >>> buffer.add(["a", "b", "c"]); list(buffer.pending)   # the oldest dropped
    ['b', 'c']
    >>> store.down = False; buffer.retry_at = 0.0   # the back-off has passed
    >>> buffer.add([]); store.written, list(buffer.pending)
    (['b', 'c'], [])
"""

from __future__ import annotations

import collections
import logging
import time
from collections.abc import Callable, Sequence

from storesense.api import telemetry
from storesense.api.store.base import Store, StoreUnavailableError
from storesense.zones.events import Event

logger = logging.getLogger(__name__)

OUTAGE_RETRY_INITIAL_S = 0.5
OUTAGE_RETRY_MAX_S = 30.0
"""Back-off between retries of the in-memory outage buffer (doubling, capped)."""


class OutageBuffer:
    """Events not yet in the store, oldest first; :meth:`add` writes when the back-off allows.

    ``on_written`` runs after each successful write (the worker closes the visits a
    killed run left open once the store answers).
    """

    def __init__(
        self,
        store: Store,
        camera_id: str,
        *,
        max_events: int,
        on_written: Callable[[], None] | None = None,
    ) -> None:
        self._store = store
        self.camera_id = camera_id
        self.max_events = max_events
        self._on_written = on_written
        self.pending: collections.deque[Event] = collections.deque()
        self.retry_at = 0.0
        """``time.monotonic()`` before which no write is tried (the back-off)."""
        self._retry_delay = OUTAGE_RETRY_INITIAL_S
        self._drop_logged = False
        self._dropped_in_outage = 0

    def add(self, events: Sequence[Event], *, write: bool = True) -> None:
        """Queue ``events`` (dropping the oldest beyond ``max_events``) and, with ``write``,
        write what is queued unless the back-off says wait."""
        if events:
            self.pending.extend(events)
            overflow = len(self.pending) - self.max_events
            if overflow > 0:
                for _ in range(overflow):
                    self.pending.popleft()
                telemetry.EVENTS_DROPPED.labels(self.camera_id, "outage_buffer_full").inc(overflow)
                self._dropped_in_outage += overflow
            if overflow > 0 and not self._drop_logged:
                self._drop_logged = True
                logger.error(
                    "camera %s: store unavailable and the outage buffer is full (%d events): "
                    "oldest events DROPPED from now on (counted in "
                    "storesense_events_dropped_total); use a spool (serve --spool) to keep them",
                    self.camera_id,
                    self.max_events,
                )
        if write and time.monotonic() >= self.retry_at:
            self.flush()

    def flush(self) -> None:
        """Write the buffered events; on an outage keep them and wait (back-off) before
        the next try; an event the store refuses is dropped (logged), never retried."""
        if not self.pending:
            return
        batch = list(self.pending)
        try:
            self._store.write_events(batch)
        except StoreUnavailableError as exc:
            self.retry_at = time.monotonic() + self._retry_delay
            logger.warning(
                "camera %s: store unavailable, %d events kept in memory; next try in %.1f s (%s)",
                self.camera_id,
                len(batch),
                self._retry_delay,
                exc,
            )
            self._retry_delay = min(self._retry_delay * 2, OUTAGE_RETRY_MAX_S)
            return
        except Exception:
            self._write_one_by_one(batch)
            return
        self._written(len(batch))

    def _written(self, count: int) -> None:
        for _ in range(count):
            self.pending.popleft()
        telemetry.EVENTS_WRITTEN.labels(self.camera_id).inc(count)
        self.retry_at = 0.0
        self._retry_delay = OUTAGE_RETRY_INITIAL_S
        if self._drop_logged:
            logger.warning(
                "camera %s: store reachable again; %d events were dropped during the outage",
                self.camera_id,
                self._dropped_in_outage,
            )
            self._drop_logged, self._dropped_in_outage = False, 0
        if self._on_written is not None:
            self._on_written()

    def _write_one_by_one(self, batch: list[Event]) -> None:
        """The store refused the batch: find the events it refuses and drop only those."""
        for event in batch:
            try:
                self._store.write_events([event])
            except StoreUnavailableError:
                self.retry_at = time.monotonic() + self._retry_delay
                return
            except Exception as exc:
                self.pending.popleft()
                telemetry.EVENTS_DROPPED.labels(self.camera_id, "rejected").inc()
                logger.error(
                    "camera %s: the store refused event %s (%s); dropped: %s",
                    self.camera_id,
                    event.event_id,
                    event.type,
                    exc,
                )
            else:
                self._written(1)
