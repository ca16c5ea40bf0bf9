"""One camera's detect → track loop, with per-stage timings and decode overlapped.

Example:
    >>> from storesense.vision.detector import Detector, Letterbox
    >>> from storesense.vision.pipeline import CameraPipeline, run_pipeline
    >>> from storesense.vision.sources import open_source
    >>> pipeline = CameraPipeline(Detector.from_model("yolox-nano"))          # doctest: +SKIP
    >>> with open_source("PETS09-S2L1.avi", camera_id="plaza", fps=7) as source:  # doctest: +SKIP
    ...     for frame, tracks in run_pipeline(source, pipeline):
    ...         print(frame.index, tracks.track_id.tolist())
    >>> pipeline.stats.summary()["inference"]["mean_ms"]                      # doctest: +SKIP
    11.2
"""

from __future__ import annotations

import queue
import threading
import time
import zlib
from collections.abc import Callable, Generator, Iterable, Iterator
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, TypeVar, cast

import numpy as np
import numpy.typing as npt
from storesense.vision.detections import Detections, Tracks
from storesense.vision.detector import Detector, Letterbox
from storesense.vision.frames import Frame
from storesense.vision.inference import InferenceService
from storesense.vision.motion import (
    Motion,
    MotionConfig,
    MotionDetector,
    MotionGate,
    detection_region,
)

if TYPE_CHECKING:
    from storesense.vision.tracking import TrackerConfig

STAGES = ("decode", "preprocess", "inference", "postprocess", "tracker")


class PipelineStats:
    """Per-stage wall times in seconds: running totals and counts (they only grow).

    No percentiles here: the service feeds every sample to the Prometheus histogram
    ``storesense_stage_seconds`` (``api.telemetry.PrometheusPipelineStats``), the one
    source of stage latencies; a benchmark that wants medians keeps its own samples
    (override :meth:`record`). Thread-safe: the decode thread records too.

    Example:
        >>> stats = PipelineStats()
        >>> for ms in (10, 20, 30):
        ...     stats.record("inference", ms / 1000)
        >>> stats.count("inference"), round(stats.mean("inference") * 1000, 1)
        (3, 20.0)
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._total: dict[str, float] = dict.fromkeys(STAGES, 0.0)
        self._count: dict[str, int] = dict.fromkeys(STAGES, 0)
        self.frames = 0

    def record(self, stage: str, seconds: float) -> None:
        if stage not in self._total:
            raise ValueError(f"unknown stage {stage!r} (known: {', '.join(STAGES)})")
        with self._lock:
            self._total[stage] += seconds
            self._count[stage] += 1

    def total(self, stage: str) -> float:
        return self._total[stage]

    def count(self, stage: str) -> int:
        return self._count[stage]

    def mean(self, stage: str) -> float:
        """Mean seconds per recorded sample of ``stage`` (0.0 when none)."""
        with self._lock:
            count, total = self._count[stage], self._total[stage]
        return total / count if count else 0.0

    def summary(self) -> dict[str, dict[str, float]]:
        """``{stage: {count, total_s, mean_ms}}`` for every stage."""
        return {
            stage: {
                "count": float(self.count(stage)),
                "total_s": self.total(stage),
                "mean_ms": self.mean(stage) * 1000,
            }
            for stage in STAGES
        }


class CameraPipeline:
    """Detector plus a fresh tracker for one camera; :meth:`process` runs one frame.

    ``detection_filter`` (privacy masks, say) edits each frame's detections before
    the tracker sees them; its time counts as postprocessing. One detector may be
    shared by the pipelines of several cameras; ``detector`` may also be an
    :class:`~storesense.vision.inference.InferenceService`, which runs every
    camera's ``session.run`` on its own threads, fairly.

    ``input_size`` (pixels, square) runs this camera at another detector input size
    (a cached copy of the model). ``motion`` gates the detector on motion
    (:class:`~storesense.vision.motion.MotionConfig`): frames it skips report the
    tracks of the last detection at their own timestamp; ``detector_runs`` and
    ``gated_frames`` count both kinds. With ``motion.region_input_sizes``, a detection
    runs on a crop around the motion and the tracked people with a smaller model when
    they fit (:func:`~storesense.vision.motion.detection_region`; ``region_runs``), and
    on the whole frame otherwise, and at least every refresh period (``full_runs``).
    """

    def __init__(
        self,
        detector: Detector | InferenceService,
        tracker_config: TrackerConfig | None = None,
        *,
        stats: PipelineStats | None = None,
        detection_filter: Callable[[Detections], Detections] | None = None,
        motion: MotionConfig | None = None,
        input_size: int | None = None,
    ) -> None:
        from storesense.vision.tracking import Tracker, TrackerConfig

        if isinstance(detector, InferenceService):
            self.inference: InferenceService | None = detector
            self.detector = detector.detector_for(input_size)
        else:
            self.inference = None
            self.detector = detector.variant(input_size=input_size)
        self.detection_filter = detection_filter
        self.tracker = Tracker(tracker_config or TrackerConfig())
        self.stats = stats or PipelineStats()
        self.last_detections: Detections | None = None
        """The last detection's detections before ``detection_filter`` (every person box seen)."""
        gated = motion is not None and motion.enabled
        self.motion = MotionDetector(motion) if gated else None
        self.gate = MotionGate(motion) if motion is not None and gated else None
        self.motion_seconds = 0.0
        """Time spent in motion detection (the gate's whole cost)."""
        self.detector_runs = 0
        self.gated_frames = 0
        """Frames the motion gate let through without running the detector."""
        self.region_runs = 0
        """Detections on a crop around motion and tracks (with a smaller model)."""
        self.full_runs = 0
        """Detections on the whole frame."""
        self._last_tracks: Tracks | None = None
        self._last_full: float | None = None
        self._region_detectors: dict[int, Detector] | None = None

    def prepare(self, frame: Frame) -> Prepared:
        """Motion (when gated) and, unless the frame is still, the network input tensor.

        Thread-safe against :meth:`process` (the decode thread calls it), but frames of
        one camera must be prepared in order.
        """
        motion = None
        if self.motion is not None:
            start = time.perf_counter()
            motion = self.motion.update(frame.image)
            self.motion_seconds += time.perf_counter() - start
            if not motion.moving or self.motion.config.region_input_sizes:
                # Still frames are mostly skipped, and with region detection a detected
                # frame may run on a crop that depends on the tracker: letterbox later.
                return Prepared(frame, None, None, motion)
        start = time.perf_counter()
        tensor, box = self.detector.preprocess(frame.image)
        self.stats.record("preprocess", time.perf_counter() - start)
        return Prepared(frame, tensor, box, motion)

    def detect(
        self,
        frame: Frame | Prepared,
        region: tuple[tuple[int, int, int, int], int] | None = None,
    ) -> Detections:
        """``session.run`` and postprocess one frame (prepared here if it is not yet).

        ``region`` ``((x0, y0, x1, y1), input_size)``: detect on that crop of the frame
        with the model of that input size instead (boxes in frame pixels; boxes cut by
        a crop edge inside the frame are dropped: that person is only partly seen)."""
        prepared = frame if isinstance(frame, Prepared) else self.prepare(frame)
        detector = self.detector
        image = prepared.frame.image
        if region is not None:
            (x0, y0, x1, y1), size = region
            detector = self._region_detector(size)
            image = image[y0:y1, x0:x1]
        if region is not None or prepared.tensor is None or prepared.letterbox is None:
            start = time.perf_counter()
            tensor, box = detector.preprocess(image)
            self.stats.record("preprocess", time.perf_counter() - start)
        else:
            tensor, box = prepared.tensor, prepared.letterbox
        clock = time.perf_counter
        start = clock()
        if self.inference is not None:
            raw = self.inference.infer(prepared.frame.camera_id, tensor, detector)
        else:
            raw = detector.run(tensor[None])[0]
        inferred = clock()
        detections = detector.postprocess(raw, box)
        if region is not None:
            detections = _from_crop(detections, region[0], prepared.frame.image.shape)
            self.region_runs += 1
        else:
            self.full_runs += 1
        self.last_detections = detections
        if self.detection_filter is not None:
            detections = self.detection_filter(detections)
        self.stats.record("inference", inferred - start)
        self.stats.record("postprocess", clock() - inferred)
        self.detector_runs += 1
        return detections

    def process(self, frame: Frame | Prepared) -> Tracks:
        """Detect and track one frame; returns the confirmed tracks at its timestamp.

        With the motion gate, a frame it skips returns the last detection's tracks
        (same boxes and ids) at this frame's timestamp and index.
        """
        prepared = frame if isinstance(frame, Prepared) else self.prepare(frame)
        image_frame = prepared.frame
        if self.gate is not None and prepared.motion is not None:
            if self._last_tracks is None:
                self.gate.phase = _phase_of(image_frame.camera_id)
            last = self._last_tracks
            settled = last is not None and self.tracker.active_count == len(last)
            if not self.gate.should_detect(
                moving=prepared.motion.moving,
                timestamp=image_frame.timestamp,
                settled=settled,
                tracked=0 if last is None else len(last),
            ):
                assert last is not None
                self.gated_frames += 1
                self.stats.frames += 1
                return replace(
                    last,
                    timestamp=image_frame.timestamp,
                    frame_index=image_frame.index,
                    lost_ids=_NO_IDS,
                )
            self.gate.detected(image_frame.timestamp)
        region = None
        if self.gate is not None and prepared.motion is not None:
            region = self._region(prepared.frame, prepared.motion, settled)
            if region is None:
                self._last_full = image_frame.timestamp
        detections = self.detect(prepared, region)
        start = time.perf_counter()
        tracks = self.tracker.update(
            detections, timestamp=image_frame.timestamp, frame_index=image_frame.index
        )
        self.stats.record("tracker", time.perf_counter() - start)
        self.stats.frames += 1
        self._last_tracks = tracks
        return tracks

    def _region(
        self, frame: Frame, motion: Motion, settled: bool
    ) -> tuple[tuple[int, int, int, int], int] | None:
        """The crop and model size for this detection, or ``None`` for the whole frame:
        the whole frame at least every refresh period (someone the motion detector
        missed, standing still, is found there), while the tracker is not settled (a
        new track waits for its confirmation, or a tracked person was missed: looked
        for on the whole frame, as without regions), after a restart of the background,
        and when the motion and the tracked people do not fit a smaller model."""
        assert self.gate is not None
        config = self.gate.config
        if not config.region_input_sizes or self._last_full is None or not settled:
            return None
        if motion.moving and len(motion.regions) == 0:
            return None  # the background restarted: no regions to go by
        tracked = self._last_tracks is not None and len(self._last_tracks) > 0
        refresh = config.refresh_seconds if tracked else config.empty_refresh_seconds
        elapsed = frame.timestamp - self._last_full
        if elapsed >= refresh - 1e-6 or elapsed < 0:
            return None
        boxes = self.tracker.held_boxes(frame.timestamp)
        if motion.moving:
            boxes = np.concatenate([motion.regions, boxes]) if len(boxes) else motion.regions
        height, width = frame.image.shape[:2]
        full = self.detector.input_size
        scale = min(full[0] / height, full[1] / width)
        sizes = tuple(size for size in config.region_input_sizes if size < min(full))
        return detection_region(boxes, (height, width), scale, sizes, config.region_margin)

    def _region_detector(self, size: int) -> Detector:
        if self._region_detectors is None:
            self._region_detectors = {}
        found = self._region_detectors.get(size)
        if found is None:
            if self.inference is not None:
                found = self.inference.detector_for(size)
            else:
                found = self.detector.variant(input_size=size)
            self._region_detectors[size] = found
        return found


_NO_IDS = np.zeros(0, np.int64)
_EDGE_PX = 2.0
"""A box within this many pixels of a crop edge inside the frame was cut by the crop."""


def _from_crop(
    detections: Detections, crop: tuple[int, int, int, int], frame_shape: tuple[int, ...]
) -> Detections:
    """Crop-pixel detections → frame pixels, without those cut by an inner crop edge."""
    x0, y0, x1, y1 = crop
    if len(detections) == 0:
        return detections
    boxes = detections.xyxy + np.array([x0, y0, x0, y0], np.float32)
    height, width = frame_shape[0], frame_shape[1]
    cut = np.zeros(len(boxes), np.bool_)
    if x0 > 0:
        cut |= boxes[:, 0] <= x0 + _EDGE_PX
    if y0 > 0:
        cut |= boxes[:, 1] <= y0 + _EDGE_PX
    if x1 < width:
        cut |= boxes[:, 2] >= x1 - _EDGE_PX
    if y1 < height:
        cut |= boxes[:, 3] >= y1 - _EDGE_PX
    keep = ~cut
    return Detections(boxes[keep], detections.confidence[keep], detections.class_id[keep])


def _phase_of(camera_id: str) -> float:
    """A fixed fraction in [0, 1) per camera id (spreads the cameras' refreshes)."""
    return zlib.crc32(camera_id.encode()) / 2**32


@dataclass(frozen=True)
class Prepared:
    """A frame with its network input tensor, ready for ``session.run``."""

    frame: Frame
    tensor: npt.NDArray[np.float32] | None
    """``None`` for a still frame of a gated camera (letterboxed only if detected)."""
    letterbox: Letterbox | None
    motion: Motion | None = None
    """What moved (``None`` when the camera is not motion-gated)."""


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
