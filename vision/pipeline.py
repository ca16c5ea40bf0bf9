"""One camera's detect → track loop, with per-stage timings and decode overlapped.

Example:
    >>> from storesense.vision.detector import Detector, Letterbox
    >>> from storesense.vision.pipeline import CameraPipeline, run_pipeline
    >>> from storesense.vision.sources import open_source
    >>> pipeline = CameraPipeline(Detector.from_model("yolox-nano"))          # doctest: +SKIP
    >>> with open_source("PETS09-S2L1.avi", camera_id="plaza", fps=7) as source:  # doctest: +SKIP
    ...     for frame, tracks in run_pipeline(source, pipeline):
    ...         print(frame.index, tracks.track_id.tolist())
    >>> pipeline.stats.summary()["inference"]["median_ms"]                    # doctest: +SKIP
    11.2
"""

from __future__ import annotations

import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Generator, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar, cast

import numpy as np
import numpy.typing as npt
from storesense.vision.detections import Detections, Tracks
from storesense.vision.detector import Detector, Letterbox
from storesense.vision.frames import Frame

if TYPE_CHECKING:
    from storesense.vision.tracking import TrackerConfig

STAGES = ("decode", "preprocess", "inference", "postprocess", "tracker")


class PipelineStats:
    """Per-stage wall times in seconds: running totals plus the last ``window`` samples.

    Totals and counts only grow (Prometheus counters); medians and p95 come from
    the recent window. Thread-safe: the decode thread records too.

    Example:
        >>> stats = PipelineStats()
        >>> for ms in (10, 20, 30):
        ...     stats.record("inference", ms / 1000)
        >>> stats.count("inference"), round(stats.median("inference") * 1000, 1)
        (3, 20.0)
    """

    def __init__(self, window: int = 2000) -> None:
        if window < 1:
            raise ValueError(f"window must be >= 1, got {window}")
        self._lock = threading.Lock()
        self._recent: dict[str, deque[float]] = {s: deque(maxlen=window) for s in STAGES}
        self._total: dict[str, float] = dict.fromkeys(STAGES, 0.0)
        self._count: dict[str, int] = dict.fromkeys(STAGES, 0)
        self.frames = 0

    def record(self, stage: str, seconds: float) -> None:
        if stage not in self._total:
            raise ValueError(f"unknown stage {stage!r} (known: {', '.join(STAGES)})")
        with self._lock:
            self._recent[stage].append(seconds)
            self._total[stage] += seconds
            self._count[stage] += 1

    def total(self, stage: str) -> float:
        return self._total[stage]

    def count(self, stage: str) -> int:
        return self._count[stage]

    def quantile(self, stage: str, q: float) -> float:
        """Quantile ``q`` in [0, 1] of the recent samples, seconds (0.0 when none)."""
        with self._lock:
            samples = np.fromiter(self._recent[stage], dtype=np.float64)
        return float(np.quantile(samples, q)) if samples.size else 0.0

    def median(self, stage: str) -> float:
        return self.quantile(stage, 0.5)

    def p95(self, stage: str) -> float:
        return self.quantile(stage, 0.95)

    def summary(self) -> dict[str, dict[str, float]]:
        """``{stage: {count, total_s, median_ms, p95_ms}}`` for every stage."""
        return {
            stage: {
                "count": float(self.count(stage)),
                "total_s": self.total(stage),
                "median_ms": self.median(stage) * 1000,
                "p95_ms": self.p95(stage) * 1000,
            }
            for stage in STAGES
        }


class CameraPipeline:
    """Detector plus a fresh tracker for one camera; :meth:`process` runs one frame.

    ``detection_filter`` (privacy masks, say) edits each frame's detections before
    the tracker sees them; its time counts as postprocessing. One detector may be
    shared by the pipelines of several cameras.
    """

    def __init__(
        self,
        detector: Detector,
        tracker_config: TrackerConfig | None = None,
        *,
        stats: PipelineStats | None = None,
        detection_filter: Callable[[Detections], Detections] | None = None,
    ) -> None:
        from storesense.vision.tracking import Tracker, TrackerConfig

        self.detector = detector
        self.detection_filter = detection_filter
        self.tracker = Tracker(tracker_config or TrackerConfig())
        self.stats = stats or PipelineStats()
        self.last_detections: Detections | None = None
        """The last frame's detections before ``detection_filter`` (every person box seen)."""

    def prepare(self, frame: Frame) -> Prepared:
        """Letterbox one frame into the network input (thread-safe: no pipeline state)."""
        start = time.perf_counter()
        tensor, box = self.detector.preprocess(frame.image)
        self.stats.record("preprocess", time.perf_counter() - start)
        return Prepared(frame, tensor, box)

    def detect(self, frame: Frame | Prepared) -> Detections:
        """``session.run`` and postprocess one frame (prepared here if it is not yet)."""
        prepared = frame if isinstance(frame, Prepared) else self.prepare(frame)
        clock = time.perf_counter
        start = clock()
        raw = self.detector.run(prepared.tensor[None])[0]
        inferred = clock()
        detections = self.detector.postprocess(raw, prepared.letterbox)
        self.last_detections = detections
        if self.detection_filter is not None:
            detections = self.detection_filter(detections)
        self.stats.record("inference", inferred - start)
        self.stats.record("postprocess", clock() - inferred)
        return detections

    def process(self, frame: Frame | Prepared) -> Tracks:
        """Detect and track one frame; returns the confirmed tracks at its timestamp."""
        detections = self.detect(frame)
        frame = frame.frame if isinstance(frame, Prepared) else frame
        start = time.perf_counter()
        tracks = self.tracker.update(detections, timestamp=frame.timestamp, frame_index=frame.index)
        self.stats.record("tracker", time.perf_counter() - start)
        self.stats.frames += 1
        return tracks


@dataclass(frozen=True)
class Prepared:
    """A frame with its network input tensor, ready for ``session.run``."""

    frame: Frame
    tensor: npt.NDArray[np.float32]
    letterbox: Letterbox


_END = object()
T = TypeVar("T")


def _timed_decode(frames: Iterable[Frame], stats: PipelineStats) -> Iterator[Frame]:
    iterator = iter(frames)
    while True:
        start = time.perf_counter()
        frame = next(iterator, None)
        if frame is None:
            return
        stats.record("decode", time.perf_counter() - start)
        yield frame


def _in_background(
    items: Iterator[T], *, depth: int, on_close: Callable[[], None] | None
) -> Generator[T, None, None]:
    """Run ``items`` on a thread, at most ``depth`` ahead; errors are re-raised here."""
    buffer: queue.Queue[object] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: object) -> bool:
        while not stop.is_set():
            try:
                buffer.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if stop.is_set() or not put(item):
                    return
        except BaseException as exc:  # handed to the consumer, which re-raises it
            put(exc)
            return
        put(_END)

    thread = threading.Thread(target=produce, name="frame-decode", daemon=True)
    thread.start()
    try:
        while True:
            item = buffer.get()
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            yield cast(T, item)
    finally:
        stop.set()
        if on_close is not None:
            on_close()
        thread.join(timeout=5.0)


def _closer(frames: Iterable[Frame]) -> Callable[[], None] | None:
    close = getattr(frames, "close", None)
    return close if callable(close) else None


def run_pipeline(
    frames: Iterable[Frame], pipeline: CameraPipeline, *, prefetch: int = 4
) -> Iterator[tuple[Frame, Tracks]]:
    """Every frame of ``frames`` (a :class:`FrameSource`, say) with its tracks.

    ``prefetch=0`` runs everything on the calling thread; otherwise a background
    thread decodes and letterboxes up to ``prefetch`` frames ahead while this one
    runs inference, postprocessing and the tracker. ``frames`` is closed at the end.
    """
    if prefetch < 0:
        raise ValueError(f"prefetch must be >= 0, got {prefetch}")
    decoded = _timed_decode(frames, pipeline.stats)
    if prefetch == 0:
        for frame in decoded:
            yield frame, pipeline.process(frame)
        return
    prepared = (pipeline.prepare(frame) for frame in decoded)
    stream = _in_background(prepared, depth=prefetch, on_close=_closer(frames))
    try:
        for item in stream:
            yield item.frame, pipeline.process(item)
    finally:
        stream.close()
