"""Which track was in which zone a moment ago: the in-memory index check-ins are linked with.

The camera worker feeds it every frame; it keeps, per camera, the last
``horizon_s`` seconds of (timestamp, {track id: zones its floor point is in}).
Nothing is persisted and entries older than the horizon are dropped as new
frames arrive, so it never holds more than a few seconds of anonymous ids.

A check-in asks :meth:`RecentTrackIndex.tracks_at` for the tracks in a zone
(or on a camera) at the check-in time: the snapshot of that camera closest to
the time, within ``tolerance_s``, decides.

Example:
    >>> from shapely.geometry import Polygon
    >>> kiosk = Polygon([(0, 0), (100, 0), (100, 100), (0, 100)])
    >>> index = RecentTrackIndex({"cam1": {"kiosk": kiosk}})
    >>> index.observe_memberships("cam1", 10.0, {4: {"kiosk"}, 9: set()})
    >>> index.tracks_at(10.2, zone_id="kiosk")
    [TrackKey(camera_id='cam1', track_id=4)]
"""

from __future__ import annotations

import bisect
import threading
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry
from storesense.api.privacy.consent import TrackKey
from storesense.vision.detections import Tracks


@dataclass(frozen=True)
class _Snapshot:
    timestamp: float
    zones_of_track: dict[int, frozenset[str]]


def zone_polygons(layout: object) -> dict[str, dict[str, BaseGeometry]]:
    """Camera id → zone id → image polygon of a ``zones.config.StoreLayout``.

    Zones drawn on the floor plan are projected into their camera's image; store-wide
    floor zones (no camera) are in no image and left out.
    """
    zones: dict[str, dict[str, BaseGeometry]] = {}
    for zone in layout.zones:  # type: ignore[attr-defined]
        if zone.camera is None:
            continue
        polygon = shapely.Polygon(layout.image_polygon(zone))  # type: ignore[attr-defined]
        zones.setdefault(zone.camera, {})[zone.id] = polygon
    return zones


class RecentTrackIndex:
    """Per camera, the last ``horizon_s`` seconds of which tracks were in which zones.

    ``zones`` maps camera id → zone id → polygon in image pixels (see
    :meth:`from_layout`). Thread-safe: the worker writes, API handlers read.
    """

    def __init__(
        self,
        zones: Mapping[str, Mapping[str, BaseGeometry]] | None = None,
        *,
        horizon_s: float = 30.0,
        tolerance_s: float = 2.0,
    ) -> None:
        if horizon_s <= 0:
            raise ValueError(f"horizon_s must be > 0, got {horizon_s}")
        if tolerance_s < 0:
            raise ValueError(f"tolerance_s must be >= 0, got {tolerance_s}")
        self.horizon_s = horizon_s
        self.tolerance_s = tolerance_s
        self._zones: dict[str, dict[str, BaseGeometry]] = {}
        for camera_id, polygons in (zones or {}).items():
            self.set_zones(camera_id, polygons)
        self._history: dict[str, deque[_Snapshot]] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_layout(cls, layout: object, **kwargs: float) -> RecentTrackIndex:
        """Zones of a ``zones.config.StoreLayout`` (image polygons, floor polygons projected)."""
        return cls(zone_polygons(layout), **kwargs)

    def set_zones(self, camera_id: str, polygons: Mapping[str, BaseGeometry]) -> None:
        """Replace one camera's zones (the layout changed)."""
        prepared = dict(polygons)
        for polygon in prepared.values():
            shapely.prepare(polygon)
        self._zones[camera_id] = prepared

    def zone_ids(self) -> set[str]:
        return {zone for polygons in self._zones.values() for zone in polygons}

    def camera_ids(self) -> set[str]:
        return set(self._zones) | set(self._history)

    def observe(self, camera_id: str, tracks: Tracks, timestamp: float | None = None) -> None:
        """Record one frame's tracks: each floor point (bottom-centre) tested against the zones.

        ``timestamp`` (Unix seconds, the clock check-ins use) defaults to ``tracks.timestamp``.
        """
        anchors = tracks.anchors().astype(np.float64)
        memberships: dict[int, set[str]] = {int(t): set() for t in tracks.track_id}
        for zone_id, polygon in self._zones.get(camera_id, {}).items():
            inside = shapely.contains_xy(polygon, anchors[:, 0], anchors[:, 1])
            for track_id in tracks.track_id[inside]:
                memberships[int(track_id)].add(zone_id)
        self.observe_memberships(
            camera_id, tracks.timestamp if timestamp is None else timestamp, memberships
        )

    def observe_memberships(
        self, camera_id: str, timestamp: float, memberships: Mapping[int, Iterable[str]]
    ) -> None:
        """Record one frame as {track id: zone ids} (for a worker that already knows them)."""
        snapshot = _Snapshot(
            float(timestamp), {int(t): frozenset(z) for t, z in memberships.items()}
        )
        with self._lock:
            history = self._history.setdefault(camera_id, deque())
            if history and snapshot.timestamp < history[-1].timestamp:
                history.clear()  # the source clock jumped back (replay restarted)
            history.append(snapshot)
            while history and history[0].timestamp < snapshot.timestamp - self.horizon_s:
                history.popleft()

    def _nearest(self, camera_id: str, timestamp: float) -> _Snapshot | None:
        history = self._history.get(camera_id)
        if not history:
            return None
        times = [s.timestamp for s in history]
        position = bisect.bisect_left(times, timestamp)
        nearby = [history[i] for i in (position - 1, position) if 0 <= i < len(history)]
        best = min(nearby, key=lambda s: abs(s.timestamp - timestamp))
        return best if abs(best.timestamp - timestamp) <= self.tolerance_s else None

    def tracks_at(
        self, timestamp: float, *, zone_id: str | None = None, camera_id: str | None = None
    ) -> list[TrackKey]:
        """Tracks whose floor point was in ``zone_id`` (or on ``camera_id``) at ``timestamp``.

        Give a zone, a camera, or both (the zone on that camera). Several keys
        mean the moment is ambiguous; callers must then link none.
        """
        if zone_id is None and camera_id is None:
            raise ValueError("give a zone_id or a camera_id")
        if zone_id is not None:
            cameras = [c for c, zones in self._zones.items() if zone_id in zones]
            if not cameras:
                raise ValueError(f"unknown zone {zone_id!r} (known: {sorted(self.zone_ids())})")
            if camera_id is not None:
                if camera_id not in cameras:
                    raise ValueError(f"zone {zone_id!r} is not on camera {camera_id!r}")
                cameras = [camera_id]
        else:
            assert camera_id is not None
            cameras = [camera_id]
        found: list[TrackKey] = []
        with self._lock:
            for camera in cameras:
                snapshot = self._nearest(camera, timestamp)
                if snapshot is None:
                    continue
                found.extend(
                    TrackKey(camera, track_id)
                    for track_id, zones in sorted(snapshot.zones_of_track.items())
                    if zone_id is None or zone_id in zones
                )
        return found

    def forget_camera(self, camera_id: str) -> None:
        """Drop a camera's history (its worker restarted: its track ids start over)."""
        with self._lock:
            self._history.pop(camera_id, None)
