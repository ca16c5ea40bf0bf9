"""``storesense count`` on the camera runtime: the :class:`CountSink` builds a
:class:`~storesense.zones.summary.CountSummary` from what :class:`CameraRunner` hands it.

The video path (:func:`count_video`) is the one a service camera worker runs: the same
pipeline factory (masks, motion gate, detector input size of the camera) and the same
runner; only the sink differs.

Tracks only (no images, so no shelf events):

Example:
    >>> import numpy as np
    >>> from storesense.vision.detections import Tracks
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

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
from storesense.api.runtime.factories import pipeline_factory_for
from storesense.api.runtime.runner import (
    CameraAnalyticsLike,
    CameraRunner,
    FrameResult,
    RunClock,
)
from storesense.vision.detections import Tracks
from storesense.zones.camera import CameraAnalytics
from storesense.zones.config import StoreLayout
from storesense.zones.engine import ZoneEngine
from storesense.zones.events import Event
from storesense.zones.floorplan import Heatmap, feet, heatmap_for_camera
from storesense.zones.masks import MaskSet, StaticDetectionFinder
from storesense.zones.summary import CountSummary

if TYPE_CHECKING:
    from storesense.vision.detector import Detector

EventCallback = Callable[[Event], None]


class CountSink:
    """A run's :class:`CountSummary`: events, occupancy per frame and a heatmap.

    ``heatmap`` (default: :func:`heatmap_for_camera`, metres when the camera has a
    homography) credits each frame's people with the time to the next frame, the same
    time a zone's dwell credits them; the last frame lasts as long as the one before.
    ``on_event`` sees every event as it comes; ``static_finder`` every unmasked person
    detection (to suggest masks).
    """

    def __init__(
        self,
        layout: StoreLayout,
        camera_id: str,
        *,
        heatmap: Heatmap | None = None,
        on_event: EventCallback | None = None,
        static_finder: StaticDetectionFinder | None = None,
    ) -> None:
        camera = layout.camera(camera_id)
        self.layout = layout
        self.heatmap = heatmap if heatmap is not None else heatmap_for_camera(layout, camera_id)
        self._homography = camera.homography
        self._masks = MaskSet(camera.masks)
        self._on_event = on_event
        self._static_finder = static_finder
        self._summary: CountSummary | None = None
        self._previous: float | None = None
        self._last: float | None = None
        self._people: npt.NDArray[np.float64] = np.zeros((0, 2))

    @property
    def summary(self) -> CountSummary:
        if self._summary is None:
            raise RuntimeError("the run has not started")
        return self._summary

    def started(self, layout: StoreLayout | None, analytics: CameraAnalyticsLike) -> None:
        if self._summary is not None:
            return
        if not isinstance(analytics, CameraAnalytics):
            raise TypeError(f"a count needs CameraAnalytics, got {type(analytics).__name__}")
        self._summary = CountSummary(
            analytics.zone_ids,
            analytics.line_ids,
            analytics.shelf_zone_ids,
            heatmap=self.heatmap,
            journey_settings=self.layout.store.journeys,
        )

    def _emit(self, events: list[Event]) -> None:
        for event in events:
            self.summary.add_event(event)
            if self._on_event is not None:
                self._on_event(event)

    def frame(self, result: FrameResult) -> None:
        self._emit(result.events)
        self.summary.add_frame(result.occupancy)
        if self._static_finder is not None and result.detections is not None:
            self._static_finder.update(
                self._masks.apply(result.detections), float(result.tracks.timestamp)
            )
        self._previous, self._last = self._last, float(result.tracks.timestamp)
        if self._previous is not None:
            self.heatmap.add(self._people, self._last - self._previous)
        people = feet(result.tracks)
        if self._homography is not None:
            people = self._homography.to_floor_checked(people)[0]
        self._people = people

    def finished(self, events: list[Event], end: float, *, final: bool) -> None:
        if final and self._last is not None:
            self.heatmap.add(self._people, end - self._last)
        self._emit(events)


def summarise_frames(
    layout: StoreLayout,
    camera_id: str,
    frames: Iterable[tuple[npt.NDArray[np.uint8] | None, Tracks]],
    analytics: CameraAnalytics,
    *,
    sink: EventCallback | None = None,
    heatmap: Heatmap | None = None,
) -> CountSummary:
    """Feed every frame's image and tracks to ``analytics`` through the runner; close
    open visits at the end (see :class:`CountSink`)."""
    count = CountSink(layout, camera_id, heatmap=heatmap, on_event=sink)
    runner = CameraRunner(
        camera_id, count, layout=layout, analytics_factory=lambda _layout, _origin: analytics
    )
    runner.run_tracks(frames)
    return count.summary


def summarise_tracks(
    layout: StoreLayout,
    camera_id: str,
    tracks: Iterable[Tracks],
    *,
    run_id: str = "",
    time_origin: float | None = None,
    sink: EventCallback | None = None,
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
    run_id: str = "",
    sink: EventCallback | None = None,
    static_finder: StaticDetectionFinder | None = None,
    heatmap: Heatmap | None = None,
    prefetch: int = 4,
) -> CountSummary:
    """Decode, detect, mask, track and count one camera's video, shelves included.

    The service's camera-worker path: :func:`pipeline_factory_for` (the camera's masks,
    motion gate and detector input size), :class:`CameraRunner` (``prefetch`` frames
    decoded ahead on a thread) and one :class:`CameraAnalytics` dated from the camera's
    ``start_time`` (else 0). ``source`` and ``fps`` default to the camera's entries.
    """
    from storesense.vision.sources import open_source

    camera = layout.camera(camera_id)
    source = source or camera.source
    if not source:
        raise ValueError(f"camera {camera_id!r} has no source: give one")
    pipeline = pipeline_factory_for(detector)(camera)
    count = CountSink(
        layout, camera_id, heatmap=heatmap, on_event=sink, static_finder=static_finder
    )
    runner = CameraRunner(
        camera_id,
        count,
        layout=layout,
        analytics_factory=lambda layout, origin: CameraAnalytics(
            layout, camera_id, run_id=run_id, time_origin=origin
        ),
        clock=count_clock(layout, camera_id),
    )
    with open_source(
        source, camera_id=camera_id, fps=fps or camera.fps, sample_fps=sample_fps
    ) as frames:
        runner.run(frames, pipeline, prefetch=prefetch)
    return count.summary


def count_clock(layout: StoreLayout, camera_id: str) -> RunClock:
    """A count's clock: events dated from the camera's ``start_time`` (else 0), unshifted."""
    start = layout.camera(camera_id).start_time
    return RunClock(start.timestamp() if start is not None else 0.0)
