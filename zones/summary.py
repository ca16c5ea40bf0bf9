"""Run tracks (or a whole video) through a camera's analytics and summarise the counts.

This is what ``storesense count`` prints; the service builds ``/v1/counts``
from the same events, so both agree.

Example:
    >>> import numpy as np
    >>> from storesense.vision.detections import Tracks
    >>> from storesense.zones.config import StoreLayout
    >>> layout = StoreLayout.model_validate({
    ...     "store": {"id": "s"}, "cameras": [{"id": "c"}],
    ...     "zones": [{"id": "z", "camera": "c", "polygon": [[0, 0], [10, 0], [10, 10], [0, 10]]}]})
    >>> frames = [Tracks(np.array([[4, 0, 6, 5]]), np.ones(1), np.array([1]), np.zeros((1, 2)),
    ...                  timestamp=i * 0.5) for i in range(4)]
    >>> summary = summarise_tracks(layout, "c", frames)
    >>> zone = summary.to_dict()["zones"]["z"]
    >>> zone["entries"], zone["exits"], zone["mean_occupancy"], zone["dwell_seconds_total"]
    (1, 1, 1.0, 2.0)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
from storesense.vision.detections import Detections, Tracks
from storesense.zones.camera import CameraAnalytics
from storesense.zones.config import StoreLayout
from storesense.zones.engine import ZoneEngine
from storesense.zones.events import Event, EventType
from storesense.zones.floorplan import Heatmap, feet, heatmap_for_camera
from storesense.zones.masks import MaskSet, StaticDetectionFinder

if TYPE_CHECKING:
    from storesense.vision.detector import Detector
    from storesense.vision.tracking import TrackerConfig

EventSink = Callable[[Event], None]


@dataclass
class ZoneTotals:
    entries: int = 0
    exits: int = 0
    occupancy_sum: int = 0
    peak_occupancy: int = 0
    dwell_seconds_total: float = 0.0


_SHELF_COUNTERS = {
    EventType.SHELF_INTERACTION: "interactions",
    EventType.ITEM_TAKEN: "takes",
    EventType.ITEM_RETURNED: "put_backs",
}


@dataclass
class CountSummary:
    """Counts per line, zone and shelf, plus per-frame occupancy accumulated over the run."""

    zone_ids: list[str]
    line_ids: list[str]
    shelf_ids: list[str] = field(default_factory=list)
    frames: int = 0
    zones: dict[str, ZoneTotals] = field(default_factory=dict)
    lines: dict[str, dict[str, int]] = field(default_factory=dict)
    shelves: dict[str, dict[str, int]] = field(default_factory=dict)
    """Per shelf zone: ``interactions``, ``takes``, ``put_backs``."""
    approaching: int = 0
    heatmap: Heatmap | None = None
    """Person-seconds per floor cell (metres) or image cell (pixels)."""

    def __post_init__(self) -> None:
        for zone_id in self.zone_ids:
            self.zones.setdefault(zone_id, ZoneTotals())
        for line_id in self.line_ids:
            self.lines.setdefault(line_id, {"in": 0, "out": 0})
        for shelf_id in self.shelf_ids:
            self.shelves.setdefault(shelf_id, dict.fromkeys(_SHELF_COUNTERS.values(), 0))

    def add_frame(self, occupancy: dict[str, int]) -> None:
        """One processed frame's occupancy (``ZoneEngine.occupancy()`` after its update)."""
        self.frames += 1
        for zone_id, count in occupancy.items():
            totals = self.zones[zone_id]
            totals.occupancy_sum += count
            totals.peak_occupancy = max(totals.peak_occupancy, count)

    def add_event(self, event: Event) -> None:
        if event.type == EventType.LINE_CROSS and event.target in self.lines:
            self.lines[event.target][str(event.attributes["direction"])] += 1
        elif event.type == EventType.ZONE_ENTER and event.target in self.zones:
            self.zones[event.target].entries += 1
        elif event.type == EventType.ZONE_EXIT and event.target in self.zones:
            totals = self.zones[event.target]
            totals.exits += 1
            totals.dwell_seconds_total += float(event.attributes["dwell_seconds"])
        elif event.type == EventType.APPROACHING:
            self.approaching += 1
        elif event.type in _SHELF_COUNTERS and event.target in self.shelves:
            self.shelves[event.target][_SHELF_COUNTERS[event.type]] += 1

    def to_dict(self) -> dict[str, Any]:
        frames = max(self.frames, 1)
        result: dict[str, Any] = {
            "frames": self.frames,
            "lines": {line_id: dict(counts) for line_id, counts in self.lines.items()},
            "zones": {
                zone_id: {
                    "entries": t.entries,
                    "exits": t.exits,
                    "mean_occupancy": round(t.occupancy_sum / frames, 3),
                    "peak_occupancy": t.peak_occupancy,
                    "dwell_seconds_total": round(t.dwell_seconds_total, 3),
                }
                for zone_id, t in self.zones.items()
            },
            "shelves": {shelf_id: dict(counts) for shelf_id, counts in self.shelves.items()},
        }
        if self.heatmap is not None:
            result["heatmap"] = self.heatmap.to_dict()
        return result


def summarise_frames(
    layout: StoreLayout,
    camera_id: str,
    frames: Iterable[tuple[npt.NDArray[np.uint8] | None, Tracks]],
    analytics: CameraAnalytics,
    *,
    sink: EventSink | None = None,
    heatmap: Heatmap | None = None,
) -> CountSummary:
    """Feed every frame's image and tracks to ``analytics``; close open visits at the end.

    The last frame is taken to last as long as the interval before it, so a
    person still inside at the end is credited with that frame's time.
    ``heatmap`` (default: :func:`heatmap_for_camera`, metres when the camera has
    a homography) credits each frame's people with the time to the next frame,
    the same time a zone's dwell credits them.
    """
    heatmap = heatmap if heatmap is not None else heatmap_for_camera(layout, camera_id)
    homography = layout.camera(camera_id).homography
    summary = CountSummary(
        analytics.zone_ids, analytics.line_ids, analytics.shelf_zone_ids, heatmap=heatmap
    )

    def emit(events: list[Event]) -> None:
        for event in events:
            summary.add_event(event)
            if sink is not None:
                sink(event)

    previous: float | None = None
    last: float | None = None
    people = np.zeros((0, 2))
    for image, frame_tracks in frames:
        emit(analytics.update(image, frame_tracks))
        summary.add_frame(analytics.occupancy())
        previous, last = last, float(frame_tracks.timestamp)
        if previous is not None:
            heatmap.add(people, last - previous)
        people = feet(frame_tracks)
        if homography is not None:
            people = homography.to_floor_checked(people)[0]
    if last is not None:
        interval = last - previous if previous is not None else 0.0
        heatmap.add(people, interval)
        emit(analytics.finish(last + interval))
    return summary


def summarise_tracks(
    layout: StoreLayout,
    camera_id: str,
    tracks: Iterable[Tracks],
    *,
    run_id: str = "",
    time_origin: float | None = None,
    sink: EventSink | None = None,
    engine: ZoneEngine | None = None,
    heatmap: Heatmap | None = None,
) -> CountSummary:
    """Tracks only (no images, so no shelf events): :func:`summarise_frames` over a
    :class:`ZoneEngine` (``engine``, or a new one)."""
    analytics = (
        CameraAnalytics.of(engine)
        if engine is not None
        else CameraAnalytics(
            layout, camera_id, run_id=run_id, time_origin=time_origin, shelves=False
        )
    )
    frames = ((None, frame_tracks) for frame_tracks in tracks)
    return summarise_frames(layout, camera_id, frames, analytics, sink=sink, heatmap=heatmap)


def count_video(
    layout: StoreLayout,
    camera_id: str,
    detector: Detector,
    *,
    source: str | None = None,
    fps: float | None = None,
    sample_fps: float | None = None,
    tracker_config: TrackerConfig | None = None,
    run_id: str = "",
    sink: EventSink | None = None,
    static_finder: StaticDetectionFinder | None = None,
    progress: Callable[[int], None] | None = None,
    heatmap: Heatmap | None = None,
    prefetch: int = 4,
) -> CountSummary:
    """Decode, detect, mask, track and count one camera's video, shelves included.

    The same path as the service's camera workers: a
    :class:`~storesense.vision.pipeline.CameraPipeline` with the camera's masks as its
    detection filter, :func:`~storesense.vision.pipeline.run_pipeline` (``prefetch``
    frames decoded ahead on a thread) and one :class:`CameraAnalytics`.
    ``source``, ``fps`` and ``tracker_config`` default to the camera's entries in the layout.
    ``static_finder`` (optional) sees every unmasked person detection, to
    suggest new masks. ``heatmap``: see :func:`summarise_frames`.
    """
    from storesense.vision.pipeline import CameraPipeline, run_pipeline
    from storesense.vision.sources import open_source

    camera = layout.camera(camera_id)
    source = source or camera.source
    if not source:
        raise ValueError(f"camera {camera_id!r} has no source: give one")
    masks = MaskSet(camera.masks)
    kept: list[Detections] = []

    def mask_and_keep(detections: Detections) -> Detections:
        unmasked = masks.apply(detections)
        kept[:] = [unmasked]
        return unmasked

    pipeline = CameraPipeline(
        detector,
        tracker_config or camera.tracker,
        detection_filter=mask_and_keep if len(masks) or static_finder is not None else None,
    )
    analytics = CameraAnalytics(layout, camera_id, run_id=run_id)

    def frames_of_video() -> Iterator[tuple[npt.NDArray[np.uint8], Tracks]]:
        with open_source(
            source, camera_id=camera_id, fps=fps or camera.fps, sample_fps=sample_fps
        ) as frames:
            tracked = run_pipeline(frames, pipeline, prefetch=prefetch)
            try:
                for frame, tracks in tracked:
                    if static_finder is not None:
                        static_finder.update(kept[0], frame.timestamp)
                    yield frame.image, tracks
                    if progress is not None:
                        progress(frame.index)
            finally:
                close = getattr(tracked, "close", None)
                if close is not None:
                    close()

    return summarise_frames(
        layout, camera_id, frames_of_video(), analytics, sink=sink, heatmap=heatmap
    )
