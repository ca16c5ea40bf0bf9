"""The one per-frame loop: source → vision pipeline → camera analytics → sink.

Hand-written on purpose: this is the per-frame hot path (one call per frame, no library fits).

:class:`CameraRunner` is what ``storesense count``, ``storesense track`` and the
service's camera workers all run. It knows nothing about HTTP, stores or privacy:
a :class:`RunSink` receives each frame's tracks, events, occupancy and approaches,
and the events that close the analytics (end of the stream, or a layout change).
``count`` uses :class:`~storesense.api.runtime.count.CountSink` (builds the
:class:`~storesense.zones.summary.CountSummary`), ``track`` writes MOT lines, and a
worker uses :class:`~storesense.api.runtime.worker.StoreSink` (store, live sink, status).

Tracks only, no detector (:meth:`CameraRunner.run_tracks`):

Example:
    >>> import numpy as np
    >>> from storesense.vision.detections import Tracks
    >>> from storesense.zones.camera import CameraAnalytics
    >>> layout = StoreLayout.model_validate({
    ...     "store": {"id": "s"}, "cameras": [{"id": "c"}],
    ...     "zones": [{"id": "z", "camera": "c", "polygon": [[0, 0], [10, 0], [10, 10], [0, 10]]}]})
    >>> class Printer:
    ...     def started(self, layout, analytics): pass
    ...     def frame(self, result): print(result.frame_time, [e.type.value for e in result.events])
    ...     def finished(self, events, end, *, final): print(end, [e.type.value for e in events])
    >>> def analytics(layout, origin):
    ...     return CameraAnalytics(layout, "c", time_origin=origin)
    >>> runner = CameraRunner("c", Printer(), layout=layout, analytics_factory=analytics)
    >>> runner.run_tracks((None, Tracks(np.array([[4, 0, 6, 5]]), np.ones(1), np.array([1]),
    ...                                 np.zeros((1, 2)), timestamp=t)) for t in (0.0, 0.5))
    0.0 ['zone_enter']
    0.5 []
    1.0 ['zone_exit']
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from typing import Protocol

import numpy as np
import numpy.typing as npt
from storesense.api.runtime.frames import OrderedFrames
from storesense.vision.detections import Detections, Tracks
from storesense.vision.frames import Frame
from storesense.vision.pipeline import CameraPipeline, run_pipeline
from storesense.zones.config import StoreLayout
from storesense.zones.events import Event


class CameraAnalyticsLike(Protocol):
    """What the runner feeds each frame (:class:`~storesense.zones.camera.CameraAnalytics`)."""

    def update(self, frame_image: npt.NDArray[np.uint8] | None, tracks: Tracks) -> list[Event]: ...

    def occupancy(self) -> dict[str, int]: ...

    def approaching(self) -> dict[str, int]: ...

    def finish(self, timestamp: float) -> list[Event]: ...


class NoAnalytics:
    """No zones, lines or shelves (``storesense track``): no events, no occupancy."""

    def update(self, frame_image: npt.NDArray[np.uint8] | None, tracks: Tracks) -> list[Event]:
        return []

    def occupancy(self) -> dict[str, int]:
        return {}

    def approaching(self) -> dict[str, int]:
        return {}

    def finish(self, timestamp: float) -> list[Event]:
        return []


AnalyticsFactory = Callable[[StoreLayout, float], CameraAnalyticsLike]
"""``(layout, time_origin) -> analytics`` of the runner's camera, dated
``time_origin + frame seconds`` (rebuilt on a layout change)."""


@dataclass(frozen=True)
class RunClock:
    """How frame times (seconds on the source's clock) become event times.

    ``time_origin``: Unix seconds (or any origin) of frame clock 0. ``shift``: the part of
    it added to events after the analytics, which then run on ``time_origin - shift``
    (a replayable file's events keep ids from the file's own clock).

    >>> clock = RunClock(1000.0, shift=1000.0)
    >>> clock.analytics_origin, clock.frame_time(2.5)
    (0.0, 1002.5)
    """

    time_origin: float = 0.0
    shift: float = 0.0

    @property
    def analytics_origin(self) -> float:
        return self.time_origin - self.shift

    def frame_time(self, timestamp: float) -> float:
        return self.time_origin + timestamp

    def shifted(self, events: list[Event]) -> list[Event]:
        """Events from the analytics moved by ``shift``."""
        if not self.shift:
            return events
        return [replace(e, timestamp=e.timestamp + self.shift) for e in events]


@dataclass(frozen=True)
class FrameResult:
    """One processed frame, as a sink receives it."""

    frame: Frame | None
    """``None`` when the runner was given tracks only (:meth:`CameraRunner.run_tracks`)."""
    tracks: Tracks
    events: list[Event]
    occupancy: dict[str, int]
    approaching: dict[str, int]
    frame_time: float
    """``time_origin + frame seconds`` (Unix seconds for a worker)."""
    detections: Detections | None = None
    """The pipeline's last detections, before masks (every person box seen)."""
    analytics_seconds: float = 0.0
    """Time the camera analytics took on this frame."""


class RunSink(Protocol):
    """Receives a run's results on the runner's thread."""

    def started(self, layout: StoreLayout | None, analytics: CameraAnalyticsLike) -> None:
        """New analytics (at the start and after each layout change)."""

    def frame(self, result: FrameResult) -> None:
        """One frame's tracks, events and zone counts."""

    def finished(self, events: list[Event], end: float, *, final: bool) -> None:
        """The analytics closed every visit at ``end`` (frame clock): the end of the stream
        (``final``) or a layout change (new analytics follow)."""


class CameraRunner:
    """One camera's per-frame loop: pipeline, analytics and a sink, on one clock.

    ``analytics_factory`` (default: none, :class:`NoAnalytics`) builds the camera's
    analytics for ``layout``; ``layout_changes`` (polled once a frame) returns a new
    layout to switch to between frames, or ``None``; ``should_stop`` ends the run
    between frames. At the end (or on an error) the analytics are finished at the last
    frame's time plus one frame interval: a person still inside is credited with it.
    """

    def __init__(
        self,
        camera_id: str,
        sink: RunSink,
        *,
        layout: StoreLayout | None = None,
        analytics_factory: AnalyticsFactory | None = None,
        clock: RunClock | None = None,
        layout_changes: Callable[[], StoreLayout | None] | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> None:
        if analytics_factory is not None and layout is None:
            raise ValueError("analytics need a layout")
        self.camera_id = camera_id
        self.sink = sink
        self.layout = layout
        self.clock = clock or RunClock()
        self._factory = analytics_factory
        self._layout_changes = layout_changes
        self._should_stop = should_stop

    def _new_analytics(self) -> CameraAnalyticsLike:
        if self._factory is None or self.layout is None:
            return NoAnalytics()
        return self._factory(self.layout, self.clock.analytics_origin)

    def run(
        self, frames: Iterable[Frame], pipeline: CameraPipeline, *, prefetch: int | None = 4
    ) -> None:
        """Run ``frames`` (closed at the end) through ``pipeline`` and the analytics.

        ``prefetch``: frames decoded and letterboxed ahead on a thread
        (:func:`~storesense.vision.pipeline.run_pipeline`); ``None`` processes each frame
        on this thread as it comes (pushed frames). Frames older than the last one are
        dropped (:class:`~storesense.api.runtime.frames.OrderedFrames`).
        """
        ordered = OrderedFrames(frames, self.camera_id)
        tracked: Iterator[tuple[Frame, Tracks]]
        if prefetch is None:
            tracked = ((frame, pipeline.process(frame)) for frame in ordered)
        else:
            tracked = run_pipeline(ordered, pipeline, prefetch=prefetch)
        try:
            self._loop(
                (frame, frame.image, tracks, pipeline.last_detections) for frame, tracks in tracked
            )
        finally:
            close = getattr(tracked, "close", None)
            if close is not None:
                close()
            ordered.close()

    def run_tracks(self, frames: Iterable[tuple[npt.NDArray[np.uint8] | None, Tracks]]) -> None:
        """Tracks computed elsewhere (a benchmark's cached detections, a test's boxes),
        each with its frame image (``None`` unless the camera has shelf zones)."""
        self._loop((None, image, tracks, None) for image, tracks in frames)

    def _loop(
        self,
        items: Iterable[
            tuple[Frame | None, npt.NDArray[np.uint8] | None, Tracks, Detections | None]
        ],
    ) -> None:
        sink, clock = self.sink, self.clock
        analytics = self._new_analytics()
        sink.started(self.layout, analytics)
        last: float | None = None
        interval = 0.0
        try:
            for frame, image, tracks, detections in items:
                if self._should_stop is not None and self._should_stop():
                    break
                new_layout = self._layout_changes() if self._layout_changes is not None else None
                if new_layout is not None:
                    if last is not None:
                        sink.finished(clock.shifted(analytics.finish(last)), last, final=False)
                    self.layout = new_layout
                    analytics = self._new_analytics()
                    sink.started(new_layout, analytics)
                timestamp = float(tracks.timestamp)
                start = time.perf_counter()
                events = clock.shifted(analytics.update(image, tracks))
                occupancy = analytics.occupancy()
                approaching = analytics.approaching()
                spent = time.perf_counter() - start
                sink.frame(
                    FrameResult(
                        frame,
                        tracks,
                        events,
                        occupancy,
                        approaching,
                        clock.frame_time(timestamp),
                        detections,
                        spent,
                    )
                )
                if last is not None:
                    interval = timestamp - last
                last = timestamp
        finally:
            if last is not None:
                end = last + interval
                sink.finished(clock.shifted(analytics.finish(end)), end, final=True)
