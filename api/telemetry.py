"""Prometheus metrics of the service (served at ``/metrics``)."""

from __future__ import annotations

import threading
from collections.abc import Iterator

from prometheus_client import REGISTRY, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, Metric
from storesense.vision.pipeline import STAGES, PipelineStats

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56)

FRAMES_PROCESSED = Counter(
    "storesense_frames_processed_total", "Frames run through the pipeline", ["camera"]
)
FRAMES_DROPPED = Counter(
    "storesense_frames_dropped_total",
    "Frames not processed (ingest queue full, undecodable, out of order, reader too late)",
    ["camera", "reason"],
)
STAGE_SECONDS = Histogram(
    "storesense_stage_seconds",
    "Per-frame latency of each worker stage (decode, preprocess, inference, postprocess, "
    "tracker from the camera pipeline; zones and store from the worker)",
    ["camera", "stage"],
    buckets=_LATENCY_BUCKETS,
)
EVENTS_WRITTEN = Counter(
    "storesense_events_written_total", "Events acknowledged by the store", ["camera"]
)
EVENTS_DROPPED = Counter(
    "storesense_events_dropped_total",
    "Events a camera gave up on: 'outage_buffer_full' (store down, no spool, buffer full) "
    "or 'rejected' (the store refused the event itself)",
    ["camera", "reason"],
)
WORKER_RESTARTS = Counter(
    "storesense_worker_restarts_total", "Camera worker restarts after a failure", ["camera"]
)
CAMERA_UP = Gauge("storesense_camera_up", "1 while the camera worker is running", ["camera"])


def frames_dropped(camera_id: str) -> dict[str, int]:
    """This process's dropped frames of a camera per reason (``storesense_frames_dropped_total``).

    >>> FRAMES_DROPPED.labels("doc-drop", "late").inc(3)
    >>> frames_dropped("doc-drop")
    {'late': 3}
    """
    counts: dict[str, int] = {}
    for metric in FRAMES_DROPPED.collect():
        for sample in metric.samples:
            if sample.name.endswith("_total") and sample.labels.get("camera") == camera_id:
                counts[sample.labels["reason"]] = int(sample.value)
    return counts


SSE_CLIENTS = Gauge("storesense_sse_clients", "Connected event-stream clients")
SSE_DROPPED = Counter(
    "storesense_sse_dropped_events_total",
    "Events dropped for slow event-stream clients (their queue was full)",
)
SNAPSHOTS_SERVED = Counter(
    "storesense_debug_snapshots_total", "Pixelated debug snapshots served", ["camera"]
)
MQTT_CONNECTED = Gauge("storesense_mqtt_connected", "1 while connected to the MQTT broker")
MQTT_PUBLISHED = Counter(
    "storesense_mqtt_messages_total",
    "Messages handed to the MQTT client, by kind (status, occupancy, line_count, camera, "
    "discovery, event)",
    ["kind"],
)
MQTT_DROPPED = Counter(
    "storesense_mqtt_dropped_total",
    "Messages dropped because the MQTT queue was full (broker down or slow), by kind",
    ["kind"],
)
MQTT_DISCONNECTS = Counter(
    "storesense_mqtt_disconnects_total", "Connections to the MQTT broker that were lost"
)


class PrometheusPipelineStats(PipelineStats):
    """:class:`PipelineStats` that feeds each stage time to ``storesense_stage_seconds``: the
    service's one source of stage latencies (percentiles with ``histogram_quantile``).

    Example:
        >>> from prometheus_client import REGISTRY
        >>> stats = PrometheusPipelineStats("doc-cam")
        >>> stats.record("inference", 0.012)
        >>> labels = {"camera": "doc-cam", "stage": "inference"}
        >>> REGISTRY.get_sample_value("storesense_stage_seconds_sum", labels)
        0.012
    """

    def __init__(self, camera_id: str) -> None:
        super().__init__()
        self._histograms = {stage: STAGE_SECONDS.labels(camera_id, stage) for stage in STAGES}

    def record(self, stage: str, seconds: float) -> None:
        super().record(stage, seconds)
        self._histograms[stage].observe(seconds)


DETECTOR_FRAME_KINDS = {"full": "full_runs", "region": "region_runs", "skipped": "gated_frames"}
"""``kind`` label of ``storesense_detector_frames_total`` -> the pipeline's counter."""


class DetectorFrames:
    """``storesense_detector_frames_total{camera, kind}``: each processed frame's detector
    run, from the camera pipelines' own counters (``full_runs``, ``region_runs``,
    ``gated_frames`` of :class:`~storesense.vision.pipeline.CameraPipeline`), read when
    ``/metrics`` is scraped: nothing is added to the per-frame path. ``kind`` is ``full``
    (whole frame), ``region`` (a crop, region-gated detection) or ``skipped`` (the motion
    gate kept the last tracks). A camera's counts carry over its restarts (new pipelines).

    Example:
        >>> class Pipeline:
        ...     full_runs, region_runs, gated_frames = 2, 0, 5
        >>> frames = DetectorFrames()
        >>> frames.track("doc-cam", Pipeline()); frames.track("doc-cam", Pipeline())
        >>> [(s.labels["kind"], s.value) for s in next(frames.collect()).samples]
        [('full', 4), ('region', 0), ('skipped', 10)]
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pipelines: dict[str, object] = {}
        self._before: dict[tuple[str, str], int] = {}
        """Counts of a camera's earlier pipelines (runs before a restart)."""

    def track(self, camera_id: str, pipeline: object) -> None:
        """Count ``pipeline``'s frames as ``camera_id``'s from now on (it replaces the last)."""
        with self._lock:
            old = self._pipelines.get(camera_id)
            if old is not None and old is not pipeline:
                for kind, attribute in DETECTOR_FRAME_KINDS.items():
                    key = (camera_id, kind)
                    self._before[key] = self._before.get(key, 0) + _count(old, attribute)
            self._pipelines[camera_id] = pipeline

    def describe(self) -> list[Metric]:
        return [self._family()]

    def collect(self) -> Iterator[Metric]:
        family = self._family()
        with self._lock:
            pipelines = dict(self._pipelines)
            before = dict(self._before)
        for camera_id, pipeline in sorted(pipelines.items()):
            for kind, attribute in DETECTOR_FRAME_KINDS.items():
                value = before.get((camera_id, kind), 0) + _count(pipeline, attribute)
                family.add_metric([camera_id, kind], value)
        yield family

    @staticmethod
    def _family() -> CounterMetricFamily:
        return CounterMetricFamily(
            "storesense_detector_frames",
            "Processed frames by detector run: 'full' (whole frame), 'region' (a crop around "
            "the motion, region-gated detection) or 'skipped' (the motion gate kept the "
            "last tracks)",
            labels=["camera", "kind"],
        )


def _count(pipeline: object, attribute: str) -> int:
    value = getattr(pipeline, attribute, 0)
    return value if isinstance(value, int) else 0


DETECTOR_FRAMES = DetectorFrames()
REGISTRY.register(DETECTOR_FRAMES)
