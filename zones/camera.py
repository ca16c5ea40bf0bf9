"""All analytics of one camera: zone and line events plus shelf events, on one clock.

:class:`CameraAnalytics` is what ``storesense count`` and the service's camera
workers feed with each frame's image and tracks: it runs the camera's
:class:`~storesense.zones.engine.ZoneEngine` and, when the camera has
``kind: shelf`` zones, its :class:`~storesense.zones.shelf.ShelfEngine`. Both
date their events ``time_origin + frame seconds``.

Example:
    >>> import numpy as np
    >>> from storesense.vision.detections import Tracks
    >>> from storesense.zones.config import StoreLayout
    >>> layout = StoreLayout.model_validate({
    ...     "store": {"id": "s"}, "cameras": [{"id": "c"}],
    ...     "zones": [{"id": "z", "camera": "c", "polygon": [[0, 0], [10, 0], [10, 10], [0, 10]]},
    ...               {"id": "shelf", "camera": "c", "kind": "shelf",
    ...                "polygon": [[40, 0], [90, 0], [90, 30], [40, 30]]}]})
    >>> analytics = CameraAnalytics(layout, "c", time_origin=1000.0)
    >>> analytics.shelf_zone_ids
    ['shelf']
    >>> box = Tracks(np.array([[4, 0, 6, 5]]), np.ones(1), np.array([1]), np.zeros((1, 2)),
    ...              timestamp=0.5)
    >>> image = np.zeros((60, 100, 3), np.uint8)
    >>> [(e.type.value, e.timestamp) for e in analytics.update(image, box)]
    [('zone_enter', 1000.5)]
    >>> analytics.occupancy()
    {'z': 1, 'shelf': 0}
    >>> analytics.approaching()
    {'z': 0, 'shelf': 0}
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from storesense.vision.detections import Tracks
from storesense.zones.config import StoreLayout, ZoneKind
from storesense.zones.engine import APPROACH_CHECK_SECONDS, ZoneEngine
from storesense.zones.events import Event, EventType
from storesense.zones.groups import GroupTagger
from storesense.zones.journeys import VisitLinker
from storesense.zones.shelf import ShelfEngine
from storesense.zones.store_visits import StoreVisits


class CameraAnalytics:
    """Zone, line and shelf events of one camera of a store layout.

    ``run_id`` goes into every event id; ``time_origin`` (Unix seconds of frame
    clock 0) defaults to the camera's ``start_time``, else 0. ``shelves=False``
    leaves shelf zones to the zone engine only (enter/exit), for callers that
    have tracks but no images.

    Every event carries its visit's key in ``attributes["visit_id"]``
    (:class:`~storesense.zones.journeys.VisitLinker`, with the store's ``journeys``
    link settings; it learns the frame size from the first image, or ``frame_size``);
    entrance ``in`` crossings also carry ``group_id``
    (:class:`~storesense.zones.groups.GroupTagger`). Cameras that share one floor plan
    may share one :class:`~storesense.zones.store_visits.StoreVisits` (``store_visits``):
    their events then carry store-wide visit keys, one visit across cameras (a camera
    without a homography keeps its own visits; it still counts in the store-wide count),
    and the events of the layout's store-wide floor zones (camera ``@store``) come out of
    the update of whichever camera's frame completed them.
    """

    def __init__(
        self,
        layout: StoreLayout,
        camera_id: str,
        *,
        run_id: str = "",
        time_origin: float | None = None,
        shelves: bool = True,
        frame_size: tuple[int, int] | None = None,
        store_visits: StoreVisits | None = None,
    ) -> None:
        self.camera_id = camera_id
        self.store_visits = store_visits
        self.zone_engine = ZoneEngine(layout, camera_id, run_id=run_id, time_origin=time_origin)
        self.visit_linker = visit_linker_for(layout, camera_id, frame_size)
        if frame_size is not None:
            self.zone_engine.frame_size = frame_size
        self.group_tagger = GroupTagger(layout, camera_id)
        self.time_origin = self.zone_engine.time_origin
        self._approaches: dict[tuple[int, str], float] = {}
        has_shelves = any(zone.kind == ZoneKind.SHELF for zone in layout.zones_of(camera_id))
        self.shelf_engine: ShelfEngine | None = (
            ShelfEngine.from_layout(layout, camera_id, run_id=run_id, time_origin=self.time_origin)
            if shelves and has_shelves
            else None
        )

    @classmethod
    def of(
        cls, zone_engine: ZoneEngine, shelf_engine: ShelfEngine | None = None
    ) -> CameraAnalytics:
        """Wrap engines built elsewhere (same camera, same clock)."""
        if shelf_engine is not None and shelf_engine.camera_id != zone_engine.camera_id:
            raise ValueError(
                f"shelf engine of camera {shelf_engine.camera_id!r} with a zone engine of "
                f"camera {zone_engine.camera_id!r}"
            )
        analytics = cls.__new__(cls)
        analytics.camera_id = zone_engine.camera_id
        analytics.zone_engine = zone_engine
        analytics.time_origin = zone_engine.time_origin
        analytics.shelf_engine = shelf_engine
        analytics._approaches = {}
        analytics.store_visits = None
        analytics.visit_linker = visit_linker_for(zone_engine.layout, zone_engine.camera_id)
        analytics.group_tagger = GroupTagger(zone_engine.layout, zone_engine.camera_id)
        return analytics

    @property
    def zone_ids(self) -> list[str]:
        return self.zone_engine.zone_ids

    @property
    def line_ids(self) -> list[str]:
        return self.zone_engine.line_ids

    @property
    def shelf_zone_ids(self) -> list[str]:
        """The shelf zones watched for takes and put-backs (empty with ``shelves=False``)."""
        if self.shelf_engine is None:
            return []
        return [monitor.zone_id for monitor in self.shelf_engine.monitors]

    @property
    def needs_images(self) -> bool:
        """True when :meth:`update` needs the frame image (the camera has shelf zones)."""
        return self.shelf_engine is not None

    def update(self, frame_image: npt.NDArray[np.uint8] | None, tracks: Tracks) -> list[Event]:
        """One frame's events: zones and lines first, then shelves.

        ``frame_image`` (BGR uint8) may be ``None`` only when :attr:`needs_images` is false.
        """
        if self.shelf_engine is not None and frame_image is None:
            raise ValueError(
                f"camera {self.camera_id!r} has shelf zones: update() needs the frame image"
            )
        if frame_image is not None and self.zone_engine.frame_size is None:
            height, width = frame_image.shape[:2]
            self.zone_engine.frame_size = (int(width), int(height))
        if self.visit_linker.frame_size is None:
            self.visit_linker.frame_size = self.zone_engine.frame_size
        if self.store_visits is not None:
            self.store_visits.update(self.camera_id, tracks, self.time_origin)
        if not self._store_wide_visits:
            self.visit_linker.update(tracks)
        self.group_tagger.update(tracks)
        events = self.zone_engine.update(tracks)
        self._follow_approaches(events, self.time_origin + float(tracks.timestamp))
        if self.shelf_engine is not None and frame_image is not None:
            events += self.shelf_engine.update(frame_image, tracks)
        events = self.group_tagger.tag(self._stamp(events))
        if self.store_visits is not None:
            events += self.store_visits.take_events()
        return events

    @property
    def _store_wide_visits(self) -> bool:
        """Visits come from the shared :class:`StoreVisits` (this camera is on its floor
        plan); a camera without a homography keeps its own :class:`VisitLinker`."""
        return (
            self.store_visits is not None
            and self.store_visits.layout.camera(self.camera_id).homography is not None
        )

    def _stamp(self, events: list[Event]) -> list[Event]:
        if self.store_visits is not None and self._store_wide_visits:
            return self.store_visits.stamp(self.camera_id, events)
        return self.visit_linker.stamp(events)

    def _follow_approaches(self, events: list[Event], now: float) -> None:
        """Keep the live approaches: from a track's ``approaching`` event until it enters
        or leaves the zone, the tracker drops it, or its predicted entry time has passed
        (``eta_seconds`` plus one re-evaluation interval) without an entry."""
        approaches = self._approaches
        for event in events:
            key = (event.track_id, event.target)
            if event.type == EventType.APPROACHING:
                eta = float(event.attributes.get("eta_seconds", 0.0))
                approaches[key] = event.timestamp + eta + APPROACH_CHECK_SECONDS
            elif event.type in (EventType.ZONE_ENTER, EventType.ZONE_EXIT):
                approaches.pop(key, None)
        if approaches:
            active = set(self.zone_engine.active_track_ids)
            for key, until in list(approaches.items()):
                if key[0] not in active or now > until:
                    del approaches[key]

    def occupancy(self) -> dict[str, int]:
        """People inside each zone of this camera now (see :meth:`ZoneEngine.occupancy`)."""
        return self.zone_engine.occupancy()

    def approaching(self) -> dict[str, int]:
        """Confirmed tracks predicted to enter each zone of this camera within its
        ``approach_seconds`` now (0 for zones with approach predictions off).

        A track counts from its ``approaching`` event until it enters the zone, the
        tracker drops it, or the predicted entry time has passed without an entry.
        """
        counts = dict.fromkeys(self.zone_engine.zone_ids, 0)
        for _, zone_id in self._approaches:
            counts[zone_id] += 1
        return counts

    def finish(self, timestamp: float) -> list[Event]:
        """End of stream (``timestamp`` on the frame clock): close every visit, settle shelves."""
        self._approaches.clear()
        events = self.zone_engine.finish(timestamp)
        if self.shelf_engine is not None:
            events += self.shelf_engine.finish(timestamp)
        events = self.group_tagger.tag(self._stamp(events))
        if self.store_visits is not None:
            events += self.store_visits.finish(self.camera_id, self.time_origin + timestamp)
        return events


def visit_linker_for(
    layout: StoreLayout, camera_id: str, frame_size: tuple[int, int] | None = None
) -> VisitLinker:
    """A :class:`VisitLinker` with the store's ``journeys`` link settings."""
    settings = layout.store.journeys
    return VisitLinker(
        camera_id,
        link_seconds=settings.link_seconds,
        link_distance=settings.link_distance,
        hidden_seconds=settings.link_hidden_seconds,
        overlap_seconds=settings.link_overlap_seconds,
        frame_size=frame_size,
    )
