"""Prometheus metrics of the service (served at ``/metrics``)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram
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
