"""A camera's frames before the pipeline: the frame clock's origin and the time-order guard."""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator

from storesense.api import telemetry
from storesense.vision.frames import Frame
from storesense.zones.config import CameraConfig


def time_origin_for(camera: CameraConfig, run_started_at: float) -> float:
    """Unix time of frame clock 0: pushed frames carry Unix time already (0); a pulled
    source starts at the camera's ``start_time`` or else when this run started."""
    if camera.source is None:
        return 0.0
    return camera.start_time.timestamp() if camera.start_time else run_started_at


def is_replayable(camera: CameraConfig) -> bool:
    """A file (or image folder) source: a restart reads the same frames again from the start.

    >>> from storesense.zones.config import CameraConfig
    >>> [is_replayable(CameraConfig(id="c", source=s)) for s in ("a.avi", "rtsp://cam/1", "0")]
    [True, False, False]
    >>> is_replayable(CameraConfig(id="pushed"))
    False
    """
    from storesense.vision.sources import is_stream_uri

    source = camera.source
    if source is None:
        return False
    text = str(source)
    return not (is_stream_uri(text) or text.isdigit())


CLOCK_JUMP_S = 5.0
"""A frame this much older than the last one is a camera clock set back, not a late frame."""


class ClockJumpedBackError(RuntimeError):
    """The camera's clock went back: the worker restarts (a fresh tracker and engine)
    instead of dropping every frame until the clock catches up."""


class OrderedFrames:
    """A camera's frames, in time order: an older frame than the last one kept is dropped
    (pushed frames can arrive late; ``reason="out_of_order"``), and frames a paced source
    dropped because the reader fell behind are counted (``reason="late"``). A frame more
    than :data:`CLOCK_JUMP_S` older raises :class:`ClockJumpedBackError` (one bad frame
    from the future never blinds the camera); a non-finite time is dropped.

    ``close`` is thread-safe (it closes the source, which may be read on a decode thread).
    """

    def __init__(self, frames: Iterable[Frame], camera_id: str) -> None:
        self._frames = frames
        self._late = telemetry.FRAMES_DROPPED.labels(camera_id, "late")
        self._out_of_order = telemetry.FRAMES_DROPPED.labels(camera_id, "out_of_order")
        self._late_counted = 0

    def _count_late(self) -> None:
        late = int(getattr(self._frames, "dropped_late", 0))
        if late > self._late_counted:
            self._late.inc(late - self._late_counted)
            self._late_counted = late

    def __iter__(self) -> Iterator[Frame]:
        last_timestamp: float | None = None
        for frame in self._frames:
            self._count_late()
            if not math.isfinite(frame.timestamp):
                self._out_of_order.inc()
                continue
            if last_timestamp is not None and frame.timestamp < last_timestamp:
                if last_timestamp - frame.timestamp > CLOCK_JUMP_S:
                    raise ClockJumpedBackError(
                        f"camera clock went back {last_timestamp - frame.timestamp:.1f} s "
                        "(a frame from the future, or the clock was reset): tracking restarts"
                    )
                self._out_of_order.inc()
                continue
            last_timestamp = frame.timestamp
            yield frame
        self._count_late()

    def close(self) -> None:
        close = getattr(self._frames, "close", None)
        if callable(close):
            close()
