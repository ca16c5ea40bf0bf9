"""Store-wide people count and visits across the cameras of one worker process.

:class:`StoreWideAnalytics` is the camera workers' engine factory: every camera's
:class:`~storesense.zones.camera.CameraAnalytics` shares one
:class:`~storesense.zones.store_visits.StoreVisits` per layout, so a person walking from
one camera's view into another's keeps one visit, and :meth:`StoreWideAnalytics.count`
is the number of people in the store now: de-duplicated across overlapping cameras
with homographies (one floor plan), plus the people of cameras without one as they are.

The count is published through the store's occupancy rows under
:data:`STORE_OCCUPANCY_KEY` (so it shares their version and ETag) and served as the
``store`` entry of ``GET /v1/occupancy``. The layout's store-wide floor zones (zones
without a camera) are counted on the same de-duplicated floor and published beside it
(rows of the camera :data:`STORE_OCCUPANCY_KEY`, one per zone id), so they are served in
``GET /v1/occupancy`` and ``GET /v1/zones/{id}/occupancy`` like any zone.

Several worker processes of one store (``--camera`` per box, one Redis store): the store's
:class:`~storesense.api.store.live_floor.LiveFloorLink` (``live_floor``) shares every
process's cameras' live floor tracks, so each process's ``StoreVisits`` holds all cameras
of the store (visits continue from a camera of one box into a camera of another) and each
publishes the same de-duplicated union count. On SQLite (one process) there is no link.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

from storesense.api.store.base import StoreUnavailableError
from storesense.zones.camera import CameraAnalytics
from storesense.zones.config import StoreLayout
from storesense.zones.store_visits import STORE_CAMERA, StoreVisits, StoreWideCounts

if TYPE_CHECKING:
    from storesense.api.store.base import Store
    from storesense.api.store.live_floor import LiveFloorLink

logger = logging.getLogger(__name__)

STORE_OCCUPANCY_KEY = STORE_CAMERA
"""The occupancy row (zone and camera id) that carries the store-wide count; also the
``camera_id`` of the store-wide floor zones' events."""


class StoreWideAnalytics:
    """Engine factory ``(layout, camera_id, run_id, time_origin) -> CameraAnalytics``
    whose cameras share one :class:`StoreVisits` per layout (a new layout starts a new one).

    Example:
        >>> from storesense.zones.config import StoreLayout
        >>> layout = StoreLayout.model_validate(
        ...     {"store": {"id": "s"}, "cameras": [{"id": "a"}, {"id": "b"}]})
        >>> engines = StoreWideAnalytics()
        >>> a, b = engines(layout, "a", "run", 0.0), engines(layout, "b", "run", 0.0)
        >>> a.store_visits is b.store_visits, engines.count()
        (True, 0)
    """

    def __init__(self, live_floor: LiveFloorLink | None = None) -> None:
        self._lock = threading.Lock()
        self._layout: StoreLayout | None = None
        self._visits: StoreVisits | None = None
        self.live_floor = live_floor
        """Shares the cameras with the store's other worker processes (None: alone)."""

    def visits_for(self, layout: StoreLayout) -> StoreVisits:
        """The :class:`StoreVisits` of this layout (the same object for every camera)."""
        with self._lock:
            if self._visits is None or (self._layout is not layout and self._layout != layout):
                self._layout, self._visits = layout, StoreVisits(layout)
                if self.live_floor is not None:
                    self.live_floor.attach(self._visits)
                    self.live_floor.start()
            return self._visits

    def close(self) -> None:
        """Stop sharing live floor tracks (the worker supervisor stops)."""
        if self.live_floor is not None:
            self.live_floor.stop()

    def __call__(
        self, layout: StoreLayout, camera_id: str, run_id: str, time_origin: float
    ) -> CameraAnalytics:
        return CameraAnalytics(
            layout,
            camera_id,
            run_id=run_id,
            time_origin=time_origin,
            store_visits=self.visits_for(layout),
        )

    def count(self) -> int | None:
        """People in the store now over this process's cameras and those shared by the
        store's other processes (None before any camera)."""
        visits = self._visits
        return None if visits is None else visits.count()


def store_wide_counts(engine: object) -> StoreWideCounts | None:
    """The store-wide counts of ``engine``'s shared :class:`StoreVisits` (``None`` for an
    engine that shares none)."""
    visits = getattr(engine, "store_visits", None)
    return visits.counts() if isinstance(visits, StoreVisits) else None


def publish_store_count(
    store: Store, counts: StoreWideCounts | None, timestamp: float, last: StoreWideCounts | None
) -> StoreWideCounts | None:
    """Publish the store-wide count and the store-wide floor zones' counts (from
    :func:`store_wide_counts`) when they changed from ``last``, as the occupancy rows of
    the camera :data:`STORE_OCCUPANCY_KEY` (one write: one version); returns the counts
    published (``last`` for ``None``, an engine that shares none, or while the store is
    unavailable: the next frame tries again)."""
    if counts is None or counts == last:
        return last
    try:
        store.set_occupancy(
            STORE_OCCUPANCY_KEY,
            {STORE_OCCUPANCY_KEY: counts.count, **counts.zones},
            timestamp,
            counts.approaching,
        )
    except StoreUnavailableError:
        logger.warning("store unavailable, store-wide occupancy not published")
        return last
    return counts
