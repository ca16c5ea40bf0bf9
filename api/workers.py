"""Camera workers: source → pipeline → camera analytics → store, one thread per camera.

A :class:`CameraWorker` that fails (source gone, decoder error, anything raised)
restarts with exponential back-off; it never takes the API or other cameras
down. A :class:`WorkerSupervisor` owns one worker per camera of the layout and
applies layout changes between frames (camera added → started, removed →
stopped, zones/lines changed → camera analytics rebuilt).

Cameras without a ``source`` in the layout are *push* cameras: their frames
arrive through ``POST /v1/cameras/{id}/frames`` (:meth:`WorkerSupervisor.push_frame`).

Example (the components are real; a layout with a file source):
    >>> supervisor = WorkerSupervisor(layout, store, settings)   # doctest: +SKIP
    >>> supervisor.start(); supervisor.statuses()["cam1"].state   # doctest: +SKIP
    <CameraState.RUNNING: 'running'>
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import json
import logging
import math
import os
import queue
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Protocol

import numpy as np
import numpy.typing as npt
from storesense.api import telemetry
from storesense.api.live_heatmap import LiveHeatmap
from storesense.api.privacy.service import OptInService
from storesense.api.settings import ServiceSettings
from storesense.api.store.base import CameraReport, EventQuery, Store, StoreUnavailableError
from storesense.api.store_wide import StoreWideAnalytics, publish_store_count
from storesense.vision.detections import Tracks
from storesense.vision.detector import Detector
from storesense.vision.frames import Frame
from storesense.vision.inference import InferenceService
from storesense.vision.pipeline import CameraPipeline, run_pipeline
from storesense.zones.config import CameraConfig, StoreLayout
from storesense.zones.events import Event, EventType

logger = logging.getLogger(__name__)

OUTAGE_RETRY_INITIAL_S = 0.5
OUTAGE_RETRY_MAX_S = 30.0
"""Back-off between retries of the in-memory outage buffer (doubling, capped)."""
VISIT_LOOKBACK_S = 86_400.0
"""How far back a restarting live camera looks for visits its last run left open."""
CLOSED_BY_RESTART = "restart"
"""``attributes.closed_by`` of a ``zone_exit`` written for a visit a killed run left open."""


class CameraAnalyticsLike(Protocol):
    """What a camera worker feeds each frame (:class:`~storesense.zones.camera.CameraAnalytics`)."""

    def update(self, frame_image: npt.NDArray[np.uint8] | None, tracks: Tracks) -> list[Event]: ...

    def occupancy(self) -> dict[str, int]: ...

    def approaching(self) -> dict[str, int]: ...

    def finish(self, timestamp: float) -> list[Event]: ...


class LiveSink(Protocol):
    """Gets each camera's events and zone-count changes as they happen (e.g. the MQTT
    publisher). Called on the camera's thread: it must return at once, never block."""

    def events(self, camera_id: str, events: Sequence[Event]) -> None: ...

    def occupancy(
        self,
        camera_id: str,
        counts: Mapping[str, int],
        approaching: Mapping[str, int] | None,
        timestamp: float,
    ) -> None: ...


PipelineFactory = Callable[[CameraConfig], CameraPipeline]
"""One :class:`CameraPipeline` (own tracker, the camera's masks) per camera run."""
EngineFactory = Callable[[StoreLayout, str, str, float], CameraAnalyticsLike]
"""``(layout, camera_id, identity, time_origin) -> analytics`` (zones, lines and shelves);
``identity`` goes into every event id (:func:`event_identity_scope`)."""
SourceOpener = Callable[[CameraConfig, ServiceSettings], Iterable[Frame]]


def open_camera_source(camera: CameraConfig, settings: ServiceSettings) -> Iterable[Frame]:
    """The camera's frames through :func:`storesense.vision.sources.open_source`."""
    from storesense.vision.sources import open_source

    if camera.source is None:
        raise ValueError(f"camera {camera.id!r} has no source (it is a push camera)")
    return open_source(
        camera.source,
        camera_id=camera.id,
        fps=camera.fps,
        loop=settings.loop_sources,
        realtime=settings.realtime,
        max_lag=settings.source_max_lag_s if settings.realtime else None,
    )


def build_camera_analytics(
    layout: StoreLayout, camera_id: str, run_id: str, time_origin: float
) -> CameraAnalyticsLike:
    """The camera's zone, line and shelf analytics: the same object ``storesense count`` uses."""
    from storesense.zones.camera import CameraAnalytics

    return CameraAnalytics(layout, camera_id, run_id=run_id, time_origin=time_origin)


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


def event_identity_scope(layout: StoreLayout, camera_id: str) -> str:
    """What identifies a camera's run in its event ids: the camera and its part of the layout.

    Deterministic (no random run id): the same camera with the same configuration,
    zones and lines gives the same scope after a restart, in any process, so events
    re-emitted from the same source position get the same ids and the store keeps
    them once. A change to an unrelated camera's zones does not change it.

    >>> from storesense.zones.config import parse_layout
    >>> layout = parse_layout({"store": {"id": "s"}, "cameras": [{"id": "a"}, {"id": "b"}]})
    >>> event_identity_scope(layout, "a") == event_identity_scope(layout, "a")
    True
    >>> event_identity_scope(layout, "a") == event_identity_scope(layout, "b")
    False
    """
    camera = layout.camera(camera_id)
    parts = [
        camera.model_dump_json(),
        *(zone.model_dump_json() for zone in layout.zones_of(camera_id)),
        *(line.model_dump_json() for line in layout.lines_of(camera_id)),
    ]
    digest = hashlib.blake2b("\n".join(parts).encode(), digest_size=8).hexdigest()
    return f"{camera_id}@{digest}"


def open_visits(events: Iterable[Event]) -> list[Event]:
    """``zone_enter`` events that no ``zone_exit`` closes, oldest first.

    An exit closes the enter of the same zone at ``exit time - dwell_seconds``
    (a re-linked track exits under a new track id), preferring the same track.

    >>> from storesense.zones.events import EventType as T
    >>> enter = Event.create(T.ZONE_ENTER, "s", "c", "left", 1, 10.0)
    >>> other = Event.create(T.ZONE_ENTER, "s", "c", "left", 2, 11.0)
    >>> exit_ = Event.create(T.ZONE_EXIT, "s", "c", "left", 5, 14.0, {"dwell_seconds": 4.0})
    >>> [e.track_id for e in open_visits([enter, other, exit_])]
    [2]
    """
    ordered = sorted(events, key=lambda e: (e.timestamp, e.type != EventType.ZONE_ENTER))
    open_enters: list[Event] = []
    for event in ordered:
        if event.type == EventType.ZONE_ENTER:
            if all(e.event_id != event.event_id for e in open_enters):
                open_enters.append(event)
            continue
        if event.type != EventType.ZONE_EXIT:
            continue
        dwell = event.attributes.get("dwell_seconds")
        entered = event.timestamp - float(dwell) if isinstance(dwell, int | float) else None
        candidates = [
            e
            for e in open_enters
            if e.target == event.target
            and (
                entered is None or abs(e.timestamp - entered) < 0.01 or e.track_id == event.track_id
            )
        ]
        if candidates:
            same_track = [e for e in candidates if e.track_id == event.track_id]
            open_enters.remove((same_track or candidates)[0])
    return open_enters


def visit_closing_exits(open_enters: Iterable[Event], closed_at: float) -> list[Event]:
    """A ``zone_exit`` at ``closed_at`` for each open visit (``closed_by: restart``).

    The exit's id derives from its enter, so two workers closing the same visit
    write one exit.
    """
    exits = []
    for enter in open_enters:
        at = max(closed_at, enter.timestamp)
        exits.append(
            Event.create(
                EventType.ZONE_EXIT,
                enter.store_id,
                enter.camera_id,
                enter.target,
                enter.track_id,
                at,
                {"dwell_seconds": round(at - enter.timestamp, 3), "closed_by": CLOSED_BY_RESTART},
                run_id=f"closes:{enter.event_id}",
                position=enter.timestamp,
            )
        )
    return exits


def pipeline_factory_for(detector: Detector | InferenceService) -> PipelineFactory:
    """Per camera run: a :class:`CameraPipeline` sharing ``detector``, with its own tracker
    (the camera's ``tracker`` settings), the camera's masks as ``detection_filter`` and
    stage times in ``/metrics``.

    The same detect → mask → track path as ``storesense count``.
    """
    from storesense.zones.masks import MaskSet

    def make(camera: CameraConfig) -> CameraPipeline:
        masks = MaskSet(camera.masks)
        return CameraPipeline(
            detector,
            camera.tracker,
            stats=telemetry.PrometheusPipelineStats(camera.id),
            detection_filter=masks.apply if len(masks) else None,
            motion=camera.motion,
            input_size=camera.detector_input_size,
        )

    return make


@dataclass(frozen=True)
class DebugFrame:
    """The latest frame of a camera with debug snapshots on, and every person box in it."""

    image: npt.NDArray[np.uint8]
    person_boxes: npt.NDArray[np.float32]
    """xyxy of every detection (before masks) and every track: all get pixelated."""
    frame_time: float
    """Unix seconds of the frame."""


class DebugSnapshots:
    """Per-camera debug-snapshot switches with an expiry, and the latest frame while on.

    Off by default. While a camera's switch is on, its worker hands over each
    frame (a reference, no copy) and only the latest is kept; when the switch
    is turned off or expires, the frame is dropped. Thread-safe.

    Example:
        >>> snapshots = DebugSnapshots(clock=lambda: 100.0)
        >>> snapshots.is_on("cam1")
        False
        >>> snapshots.enable("cam1", ttl_s=600)
        700.0
        >>> snapshots.is_on("cam1"), snapshots.latest("cam1") is None
        (True, True)
    """

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._expires: dict[str, float] = {}
        self._frames: dict[str, DebugFrame] = {}

    def enable(self, camera_id: str, ttl_s: float) -> float:
        """Turn snapshots on for ``ttl_s`` seconds; returns the Unix time they turn off."""
        if not ttl_s > 0:
            raise ValueError(f"ttl_s must be > 0 seconds, got {ttl_s}")
        expires_at = self._clock() + ttl_s
        with self._lock:
            self._expires[camera_id] = expires_at
        return expires_at

    def disable(self, camera_id: str) -> None:
        with self._lock:
            self._expires.pop(camera_id, None)
            self._frames.pop(camera_id, None)

    def expires_at(self, camera_id: str) -> float | None:
        """When the switch turns off; ``None`` while it is off (an expired switch is off)."""
        with self._lock:
            expires_at = self._expires.get(camera_id)
            if expires_at is not None and expires_at <= self._clock():
                del self._expires[camera_id]
                self._frames.pop(camera_id, None)
                return None
            return expires_at

    def is_on(self, camera_id: str) -> bool:
        return self.expires_at(camera_id) is not None

    def offer(
        self,
        camera_id: str,
        image: npt.NDArray[np.uint8],
        person_boxes: npt.NDArray[np.float32],
        frame_time: float,
    ) -> None:
        """Worker side: keep this frame as the latest if the switch is on (else nothing)."""
        if self.is_on(camera_id):
            with self._lock:
                self._frames[camera_id] = DebugFrame(image, person_boxes, frame_time)

    def latest(self, camera_id: str) -> DebugFrame | None:
        """The latest frame while the switch is on; ``None`` when off or none seen yet."""
        if not self.is_on(camera_id):
            return None
        with self._lock:
            return self._frames.get(camera_id)

    def drop_frame(self, camera_id: str) -> None:
        """The camera's run ended: its frame goes (the switch stays until it expires)."""
        with self._lock:
            self._frames.pop(camera_id, None)


def old_replay_warnings(layout: StoreLayout, retention_days: float, now: float) -> list[str]:
    """One line per camera whose ``start_time`` lies before the retention window.

    Events carry the video's own time (``start_time`` + frame time), and the
    retention purge deletes events older than ``retention_days`` by that time,
    so such a replay's events are deleted at the next purge (at start-up and
    every ``retention.interval_s``).

    >>> from storesense.zones.config import parse_layout
    >>> layout = parse_layout({"store": {"id": "s"}, "cameras": [
    ...     {"id": "old", "source": "a.avi", "start_time": "2020-01-01T00:00:00Z"},
    ...     {"id": "live", "source": "b.avi"}]})
    >>> [line.split(":")[0] for line in old_replay_warnings(layout, 30, 1.7e9)]
    ['camera old']
    """
    cutoff = now - retention_days * 86_400.0
    warnings = []
    for camera in layout.cameras:
        if camera.source is None or camera.start_time is None:
            continue
        started = camera.start_time.timestamp()
        if started < cutoff:
            age_days = (now - started) / 86_400.0
            warnings.append(
                f"camera {camera.id}: start_time {camera.start_time.isoformat()} is "
                f"{age_days:.0f} days ago, beyond retention.days={retention_days:g}; its "
                "events will be DELETED by the next retention purge. Give a recent "
                "start_time, or raise retention.days in the privacy settings to keep them"
            )
    return warnings


CLOCK_JUMP_S = 5.0
"""A frame this much older than the last one is a camera clock set back, not a late frame."""


class ClockJumpedBackError(RuntimeError):
    """The camera's clock went back: the worker restarts (a fresh tracker and engine)
    instead of dropping every frame until the clock catches up."""


class _CameraFrames:
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


FPS_WINDOW_S = 10.0
FPS_WINDOW_FRAMES = 512


def recent_fps(frame_clock: Sequence[float], now: float, window_s: float = FPS_WINDOW_S) -> float:
    """Frames per second among monotonic frame times within ``window_s`` before ``now``.

    >>> recent_fps([1.0, 1.5, 2.0, 2.5], now=3.0), recent_fps([1.0], now=30.0)
    (2.0, 0.0)
    """
    recent = [t for t in frame_clock if now - t <= window_s]
    if len(recent) < 2 or recent[-1] <= recent[0]:
        return 0.0
    return round((len(recent) - 1) / (recent[-1] - recent[0]), 2)


class CameraState(StrEnum):
    STARTING = "starting"
    RUNNING = "running"
    RESTARTING = "restarting"
    """Failed; waiting out the back-off before the next attempt."""
    FAILED = "failed"
    """Gave up after ``backoff.max_restarts`` restarts."""
    FINISHED = "finished"
    """A file source reached its end."""
    STOPPED = "stopped"


@dataclass(frozen=True)
class CameraStatus:
    camera_id: str
    state: CameraState
    mode: str
    """``pull`` (reads its source) or ``push`` (frames are POSTed)."""
    frames_processed: int = 0
    restarts: int = 0
    last_frame_time: float | None = None
    """Capture time (Unix seconds) of the last processed frame."""
    last_frame_at: float | None = None
    """Unix time when the last frame was processed."""
    last_error: str | None = None
    next_restart_at: float | None = None
    occupancy: Mapping[str, int] | None = None
    fps: float | None = None
    """Frames processed per second over the last ``FPS_WINDOW_S`` seconds."""
    frames_dropped: Mapping[str, int] = dataclasses.field(default_factory=dict)
    """Frames not processed since the process started, per reason (as in ``/metrics``)."""

    def to_report(self, worker: str, reported_at: float) -> CameraReport:
        """This status as other processes see it (occupancy has its own store path).

        >>> status = CameraStatus("door", CameraState.RUNNING, "pull", 42)
        >>> report = status.to_report("till-pc:812", 1_700_000_000.0)
        >>> json.loads(report.status_json)["frames_processed"], report.reported_at
        (42, 1700000000.0)
        """
        fields = {**self.public_fields(), "worker": worker}
        return CameraReport(self.camera_id, json.dumps(fields), reported_at)

    def public_fields(self) -> dict[str, object]:
        """The fields the API shows (``CameraStatusOut``); occupancy is served on its own."""
        fields = dataclasses.asdict(self)
        fields.pop("occupancy")
        fields["state"] = self.state.value
        return fields


def camera_not_ready_reason(status: CameraStatus) -> str | None:
    """Why a camera is not ready (``/readyz``); ``None`` when it runs or finished its file.

    >>> camera_not_ready_reason(CameraStatus("door", CameraState.RUNNING, "pull"))
    >>> camera_not_ready_reason(CameraStatus("door", CameraState.RESTARTING, "pull",
    ...                         last_error="SourceError: video file not found: a.avi"))
    'camera door: restarting after an error: SourceError: video file not found: a.avi'
    """
    name = f"camera {status.camera_id}"
    error = status.last_error or "no error recorded"
    if status.state in (CameraState.RUNNING, CameraState.FINISHED):
        return None
    if status.state == CameraState.RESTARTING:
        return f"{name}: restarting after an error: {error}"
    if status.state == CameraState.FAILED:
        return f"{name}: failed for good: {error}"
    if status.state == CameraState.STARTING:
        after = f" (last error: {status.last_error})" if status.last_error else ""
        return f"{name}: starting, no frame processed yet{after}"
    return f"{name}: {status.state.value}"


@dataclass(frozen=True)
class WorkerParts:
    """What every camera worker of a supervisor shares (see :class:`WorkerSupervisor`)."""

    store: Store
    settings: ServiceSettings
    pipeline_factory: PipelineFactory
    engine_factory: EngineFactory
    source_opener: SourceOpener
    optin: OptInService | None
    snapshots: DebugSnapshots
    sink: LiveSink | None = None
    worker_name: str = ""
    """``host:pid`` of this process, as in the camera reports it publishes."""


class CameraWorker:
    """One camera's loop in its own daemon thread, restarting with back-off on failure."""

    def __init__(self, camera: CameraConfig, layout: StoreLayout, parts: WorkerParts) -> None:
        self.camera = camera
        self._optin = parts.optin
        self._snapshots = parts.snapshots
        self._sink = parts.sink
        self._layout = layout
        self._pending_layout: StoreLayout | None = None
        self._store = parts.store
        self._worker_name = parts.worker_name
        self._settings = settings = parts.settings
        self._pipeline_factory = parts.pipeline_factory
        self._engine_factory = parts.engine_factory
        self._source_opener = parts.source_opener
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._inbox: queue.Queue[Frame] = queue.Queue(maxsize=settings.ingest_queue_size)
        self._pending_events: collections.deque[Event] = collections.deque()
        self._retry_at = 0.0
        self._retry_delay = OUTAGE_RETRY_INITIAL_S
        self._drop_logged = False
        self._dropped_in_outage = 0
        self._visits_to_close_before: float | None = None
        self._status = CameraStatus(
            camera.id, CameraState.STARTING, "push" if camera.source is None else "pull"
        )
        self._thread = threading.Thread(target=self._run, name=f"camera-{camera.id}", daemon=True)
        self._generation = 0
        self._frame_clock: deque[float] = deque(maxlen=FPS_WINDOW_FRAMES)

    # public ---------------------------------------------------------------
    @property
    def is_push(self) -> bool:
        return self.camera.source is None

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float | None = 10.0) -> None:
        self._stop.set()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout)

    def is_alive(self) -> bool:
        return self._thread.is_alive()

    def status(self) -> CameraStatus:
        return replace(
            self._status,
            fps=recent_fps(list(self._frame_clock), time.monotonic()),
            frames_dropped=telemetry.frames_dropped(self.camera.id),
        )

    def apply_layout(self, layout: StoreLayout) -> None:
        """Use ``layout`` from the next frame on (the camera analytics are rebuilt)."""
        with self._lock:
            self._pending_layout = layout

    def push(self, frame: Frame) -> bool:
        """Queue a pushed frame; when the queue is full the oldest frame is dropped.

        Returns ``False`` when a frame had to be dropped.
        """
        dropped = False
        while True:
            try:
                self._inbox.put_nowait(frame)
                return not dropped
            except queue.Full:
                try:
                    self._inbox.get_nowait()
                    dropped = True
                    telemetry.FRAMES_DROPPED.labels(self.camera.id, "ingest_queue_full").inc()
                except queue.Empty:
                    pass

    # loop -------------------------------------------------------------------
    def _set(self, **changes: object) -> None:
        self._status = replace(self._status, **changes)  # type: ignore[arg-type]

    def _run(self) -> None:
        failures = 0
        backoff = self._settings.backoff
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                self._run_once()
                if self._stop.is_set():
                    break
                self._set(state=CameraState.FINISHED)
                telemetry.CAMERA_UP.labels(self.camera.id).set(0)
                return
            except Exception as exc:
                telemetry.CAMERA_UP.labels(self.camera.id).set(0)
                if self._stop.is_set():
                    break
                if time.monotonic() - started >= backoff.healthy_after_s:
                    failures = 0
                failures += 1
                reason = f"{type(exc).__name__}: {exc}"
                if (
                    backoff.max_restarts is not None
                    and self._status.restarts >= backoff.max_restarts
                ):
                    logger.error("camera %s failed for good: %s", self.camera.id, reason)
                    self._set(state=CameraState.FAILED, last_error=reason, next_restart_at=None)
                    return
                delay = backoff.delay(failures)
                logger.warning(
                    "camera %s failed (%s); restarting in %.1f s", self.camera.id, reason, delay
                )
                self._set(
                    state=CameraState.RESTARTING,
                    last_error=reason,
                    next_restart_at=time.time() + delay,
                )
                if self._stop.wait(delay):
                    break
                telemetry.WORKER_RESTARTS.labels(self.camera.id).inc()
                self._set(restarts=self._status.restarts + 1, state=CameraState.STARTING)
        self._set(state=CameraState.STOPPED, next_restart_at=None)
        telemetry.CAMERA_UP.labels(self.camera.id).set(0)

    def _pushed_frames(self) -> Generator[Frame, None, None]:
        while not self._stop.is_set():
            try:
                yield self._inbox.get(timeout=0.2)
            except queue.Empty:
                continue

    def _tracked(self, pipeline: CameraPipeline) -> Generator[tuple[Frame, Tracks], None, None]:
        """Each frame with its tracks: pushed frames on this thread; a pulled source decoded
        ``settings.decode_prefetch`` frames ahead on a background thread (``run_pipeline``)."""
        if self.is_push:
            frames = _CameraFrames(self._pushed_frames(), self.camera.id)
            try:
                for frame in frames:
                    yield frame, pipeline.process(frame)
            finally:
                frames.close()
            return
        source = self._source_opener(self.camera, self._settings)
        frames = _CameraFrames(source, self.camera.id)
        try:
            yield from run_pipeline(frames, pipeline, prefetch=self._settings.decode_prefetch)
        finally:
            frames.close()

    def _new_engine(self, layout: StoreLayout, time_origin: float) -> CameraAnalyticsLike:
        identity = event_identity_scope(layout, self.camera.id)
        return self._engine_factory(layout, self.camera.id, identity, time_origin)

    @staticmethod
    def _shifted(events: list[Event], offset: float) -> list[Event]:
        """Events of a file run (ids from the file's frame clock) moved to Unix time."""
        if not offset:
            return events
        return [replace(e, timestamp=e.timestamp + offset) for e in events]

    def _run_once(self) -> None:
        camera_id = self.camera.id
        pipeline = self._pipeline_factory(self.camera)
        run_started = time.time()
        time_origin = time_origin_for(self.camera, run_started)
        # Event ids come from the source position: a file's frame clock (the engine runs
        # on it, events are moved to Unix time after), a live or pushed frame's capture time.
        offset = time_origin if is_replayable(self.camera) else 0.0
        engine = self._new_engine(self._layout, time_origin - offset)
        if not is_replayable(self.camera):
            # A replayed file re-emits its visits; a live camera's last run cannot.
            self._visits_to_close_before = run_started
            self._close_open_visits()
        if self._optin is not None:
            self._optin.camera_restarted(camera_id, time.time())
        last_timestamp: float | None = None
        frame_interval = 0.0
        last_occupancy: tuple[dict[str, int], dict[str, int]] | None = None
        store_count: int | None = None
        heatmap = self._new_heatmap(self._layout, time_origin)
        heatmap_due = time.monotonic() + self._settings.heatmap_publish_s
        tracked = self._tracked(pipeline)
        zones_seconds = telemetry.STAGE_SECONDS.labels(camera_id, "zones")
        store_seconds = telemetry.STAGE_SECONDS.labels(camera_id, "store")
        frames_processed = telemetry.FRAMES_PROCESSED.labels(camera_id)
        camera_up = telemetry.CAMERA_UP.labels(camera_id)
        if self.is_push:
            self._set(state=CameraState.RUNNING, next_restart_at=None)
            camera_up.set(1)
        try:
            for frame, tracks in tracked:
                if self._stop.is_set():
                    break
                self._offer_snapshot(pipeline, frame, tracks, time_origin)
                with self._lock:
                    new_layout, self._pending_layout = self._pending_layout, None
                if new_layout is not None:
                    if last_timestamp is not None:
                        finished = self._shifted(engine.finish(last_timestamp), offset)
                        self._write(self._tag_members(finished))
                    self._layout = new_layout
                    engine = self._new_engine(new_layout, time_origin - offset)
                    last_occupancy = None
                    self._publish_heatmap(heatmap, finish=True)
                    heatmap = self._new_heatmap(new_layout, time_origin)
                t1 = time.perf_counter()
                events = self._shifted(engine.update(frame.image, tracks), offset)
                if self._optin is not None:
                    events = self._optin.on_frame(
                        camera_id,
                        tracks,
                        events,
                        image=frame.image,
                        now=time_origin + frame.timestamp,
                    )
                occupancy = engine.occupancy()
                approaching = engine.approaching()
                if heatmap is not None:
                    heatmap.add(tracks, frame.timestamp)
                t2 = time.perf_counter()
                self._write(events)
                if heatmap is not None and time.monotonic() >= heatmap_due:
                    self._publish_heatmap(heatmap)
                    heatmap_due = time.monotonic() + self._settings.heatmap_publish_s
                if (occupancy, approaching) != last_occupancy:
                    self._set_occupancy(occupancy, time_origin + frame.timestamp, approaching)
                    last_occupancy = (occupancy, approaching)
                now = time_origin + frame.timestamp
                store_count = publish_store_count(self._store, engine, now, store_count)
                t3 = time.perf_counter()
                zones_seconds.observe(t2 - t1)
                store_seconds.observe(t3 - t2)
                frames_processed.inc()
                self._frame_clock.append(time.monotonic())
                if last_timestamp is not None:
                    frame_interval = frame.timestamp - last_timestamp
                last_timestamp = frame.timestamp
                self._set(
                    state=CameraState.RUNNING,
                    frames_processed=self._status.frames_processed + 1,
                    last_frame_time=time_origin + frame.timestamp,
                    last_frame_at=time.time(),
                    next_restart_at=None,
                    occupancy=occupancy,
                )
                camera_up.set(1)
        finally:
            if last_timestamp is not None:
                # As ``storesense count``: the last frame lasts as long as the one before.
                finished = self._shifted(engine.finish(last_timestamp + frame_interval), offset)
                self._write(self._tag_members(finished))
                self._set_occupancy(
                    {zone: 0 for zone in engine.occupancy()}, time_origin + last_timestamp
                )
            tracked.close()
            self._snapshots.drop_frame(camera_id)
            self._flush_pending()
            self._publish_heatmap(heatmap, finish=True)

    def _offer_snapshot(
        self, pipeline: CameraPipeline, frame: Frame, tracks: Tracks, time_origin: float
    ) -> None:
        """Debug snapshots on: keep this frame and every person box (detections and tracks)."""
        if not self._snapshots.is_on(self.camera.id):
            return
        detected = pipeline.last_detections
        boxes = [tracks.xyxy] if detected is None else [detected.xyxy, tracks.xyxy]
        self._snapshots.offer(
            self.camera.id,
            frame.image,
            np.concatenate(boxes).astype(np.float32, copy=False),
            time_origin + frame.timestamp,
        )

    def _tag_members(self, events: list[Event]) -> list[Event]:
        """Events outside a frame (engine finish): opt-in members' are tagged all the same."""
        if self._optin is None or not events:
            return events
        return self._optin.dispatcher.process(self.camera.id, events)

    # store writes that survive a store outage ---------------------------------
    def _write(self, events: Sequence[Event]) -> None:
        if events:
            self._pending_events.extend(events)
            if self._sink is not None:
                self._sink.events(self.camera.id, events)
            overflow = len(self._pending_events) - self._settings.outage_buffer_events
            if overflow > 0:
                for _ in range(overflow):
                    self._pending_events.popleft()
                telemetry.EVENTS_DROPPED.labels(self.camera.id, "outage_buffer_full").inc(overflow)
                self._dropped_in_outage += overflow
            if overflow > 0 and not self._drop_logged:
                self._drop_logged = True
                logger.error(
                    "camera %s: store unavailable and the outage buffer is full (%d events): "
                    "oldest events DROPPED from now on (counted in "
                    "storesense_events_dropped_total); use a spool (serve --spool) to keep them",
                    self.camera.id,
                    self._settings.outage_buffer_events,
                )
        if time.monotonic() >= self._retry_at:
            self._flush_pending()

    def _flush_pending(self) -> None:
        """Write the buffered events; on an outage keep them and wait (back-off) before
        the next try; an event the store refuses is dropped (logged), never retried."""
        if not self._pending_events:
            return
        batch = list(self._pending_events)
        try:
            self._store.write_events(batch)
        except StoreUnavailableError as exc:
            self._retry_at = time.monotonic() + self._retry_delay
            logger.warning(
                "camera %s: store unavailable, %d events kept in memory; next try in %.1f s (%s)",
                self.camera.id,
                len(batch),
                self._retry_delay,
                exc,
            )
            self._retry_delay = min(self._retry_delay * 2, OUTAGE_RETRY_MAX_S)
            return
        except Exception:
            self._write_one_by_one(batch)
            return
        self._written(len(batch))

    def _written(self, count: int) -> None:
        for _ in range(count):
            self._pending_events.popleft()
        telemetry.EVENTS_WRITTEN.labels(self.camera.id).inc(count)
        self._retry_at = 0.0
        self._retry_delay = OUTAGE_RETRY_INITIAL_S
        if self._drop_logged:
            logger.warning(
                "camera %s: store reachable again; %d events were dropped during the outage",
                self.camera.id,
                self._dropped_in_outage,
            )
            self._drop_logged, self._dropped_in_outage = False, 0
        if self._visits_to_close_before is not None:
            self._close_open_visits()

    def _write_one_by_one(self, batch: list[Event]) -> None:
        """The store refused the batch: find the events it refuses and drop only those."""
        for event in batch:
            try:
                self._store.write_events([event])
            except StoreUnavailableError:
                self._retry_at = time.monotonic() + self._retry_delay
                return
            except Exception as exc:
                self._pending_events.popleft()
                telemetry.EVENTS_DROPPED.labels(self.camera.id, "rejected").inc()
                logger.error(
                    "camera %s: the store refused event %s (%s); dropped: %s",
                    self.camera.id,
                    event.event_id,
                    event.type,
                    exc,
                )
            else:
                self._written(1)

    def _another_worker_runs_this_camera(self) -> bool:
        """A fresh report of this camera, running, signed by another process."""
        report = self._store.get_camera_reports().get(self.camera.id)
        if report is None:
            return False
        try:
            fields = json.loads(report.status_json)
        except ValueError:
            return False
        worker = str(fields.get("worker") or "")
        fresh = time.time() - report.reported_at < 3 * self._settings.camera_report_s
        if not fresh or fields.get("state") != CameraState.RUNNING.value:
            return False
        if worker in ("", self._worker_name):
            return False
        return _worker_may_be_alive(worker)

    def _close_open_visits(self) -> None:
        """Close the visits an earlier run of this camera left open (a killed worker)."""
        before = self._visits_to_close_before
        if before is None:
            return
        try:
            if self._another_worker_runs_this_camera():
                logger.warning(
                    "camera %s: another live worker runs this camera; its open visits "
                    "are its own, none closed",
                    self.camera.id,
                )
                self._visits_to_close_before = None
                return
            stored = self._store.query_events(
                EventQuery(
                    start=before - VISIT_LOOKBACK_S,
                    end=before,
                    types=frozenset({EventType.ZONE_ENTER, EventType.ZONE_EXIT}),
                    camera_id=self.camera.id,
                )
            )
            if stored:
                last_seen = max(e.timestamp for e in stored)
                exits = visit_closing_exits(open_visits(stored), last_seen)
                if exits:
                    self._store.write_events(exits)
                    logger.warning(
                        "camera %s: closed %d visit(s) an earlier run left open",
                        self.camera.id,
                        len(exits),
                    )
        except StoreUnavailableError as exc:
            logger.info("camera %s: open visits not closed yet: %s", self.camera.id, exc)
            return
        except Exception:
            logger.exception("camera %s: closing open visits failed", self.camera.id)
        self._visits_to_close_before = None

    def _new_heatmap(self, layout: StoreLayout, time_origin: float) -> LiveHeatmap | None:
        """A floor heatmap for this camera when the layout gives it a homography."""
        homography = layout.camera(self.camera.id).homography
        if homography is None:
            return None
        return LiveHeatmap(self.camera.id, homography, time_origin)

    def _publish_heatmap(self, heatmap: LiveHeatmap | None, *, finish: bool = False) -> None:
        """Add the heatmap sums since the last publish to the store (kept on an outage)."""
        if heatmap is None:
            return
        if finish:
            heatmap.finish()
        try:
            heatmap.publish(self._store)
        except StoreUnavailableError:
            logger.warning("camera %s: store unavailable, heatmap kept for later", self.camera.id)
        except Exception:
            logger.exception("camera %s: publishing the floor heatmap failed", self.camera.id)

    def _set_occupancy(
        self,
        counts: Mapping[str, int],
        timestamp: float,
        approaching: Mapping[str, int] | None = None,
    ) -> None:
        if self._sink is not None:
            self._sink.occupancy(self.camera.id, counts, approaching, timestamp)
        try:
            self._store.set_occupancy(self.camera.id, counts, timestamp, approaching)
        except StoreUnavailableError:
            logger.warning("camera %s: store unavailable, occupancy not published", self.camera.id)


def _worker_may_be_alive(worker: str) -> bool:
    """``host:pid`` of a report: ``False`` only when it is a process of this host that is gone
    (a killed worker restarted here); a worker on another host may be alive."""
    host, _, pid = worker.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class UnknownCameraError(KeyError):
    """A camera id that the current layout does not have."""


class NotAPushCameraError(ValueError):
    """Frames were pushed to a camera that reads its own source."""


def check_camera_ids(layout: StoreLayout, camera_ids: Iterable[str]) -> frozenset[str]:
    """``camera_ids`` as a set, or ``ValueError`` naming those the layout lacks.

    >>> layout = StoreLayout.model_validate({"store": {"id": "s"}, "cameras": [{"id": "door"}]})
    >>> check_camera_ids(layout, ["till"])
    Traceback (most recent call last):
    ValueError: camera(s) till not in the layout (its cameras: door)
    """
    wanted = frozenset(camera_ids)
    known = {camera.id for camera in layout.cameras}
    unknown = sorted(wanted - known)
    if unknown:
        raise ValueError(
            f"camera(s) {', '.join(unknown)} not in the layout "
            f"(its cameras: {', '.join(sorted(known)) or 'none'})"
        )
    return wanted


class WorkerSupervisor:
    """Runs one :class:`CameraWorker` per camera and keeps them in line with the layout."""

    def __init__(
        self,
        layout: StoreLayout,
        store: Store,
        settings: ServiceSettings,
        *,
        pipeline_factory: PipelineFactory,
        engine_factory: EngineFactory | None = None,
        source_opener: SourceOpener = open_camera_source,
        optin: OptInService | None = None,
        snapshots: DebugSnapshots | None = None,
        cameras: Iterable[str] | None = None,
        sink: LiveSink | None = None,
    ) -> None:
        """``cameras``: run only these cameras of the layout (default all), so that
        several worker processes can share one store's cameras. ``sink`` gets every
        camera's events and zone-count changes live (e.g. the MQTT publisher)."""
        self.cameras = None if cameras is None else check_camera_ids(layout, cameras)
        self.layout = layout
        self.optin = optin
        self.snapshots = snapshots or DebugSnapshots()
        """Admin debug-snapshot switches of this process's cameras (all off at start)."""
        self._store = store
        self._settings = settings
        self.worker_name = f"{socket.gethostname()}:{os.getpid()}"
        """How this process signs the camera reports it publishes (``host:pid``)."""
        self._parts = WorkerParts(
            store,
            settings,
            pipeline_factory,
            # jredis: cameras share one StoreVisits, and through the store's live floor
            # link (Redis; None on SQLite) with the store's other worker processes.
            engine_factory or StoreWideAnalytics(store.live_floor(self.worker_name)),
            source_opener,
            optin,
            self.snapshots,
            sink,
            self.worker_name,
        )
        self._workers: dict[str, CameraWorker] = {}
        self._lock = threading.RLock()
        """Guards ``_workers`` and ``layout``; never held while a worker stops."""
        self._apply_lock = threading.Lock()
        """Serialises layout changes (they may wait for workers to stop)."""
        self._layout_unpublished = False
        self._stop = threading.Event()
        self._watchers: list[threading.Thread] = []
        self._reporter: threading.Thread | None = None
        self._layout_json = layout.model_dump_json()

    def _own(self, layout: StoreLayout) -> list[CameraConfig]:
        """The cameras of ``layout`` this supervisor runs."""
        return [c for c in layout.cameras if self.cameras is None or c.id in self.cameras]

    def _new_worker(self, camera: CameraConfig, layout: StoreLayout) -> CameraWorker:
        return CameraWorker(camera, layout, self._parts)

    def _warn_old_replays(self, layout: StoreLayout) -> None:
        retention = self.optin.retention if self.optin is not None else None
        if retention is None:
            return
        for line in old_replay_warnings(layout, retention.policy.days, time.time()):
            logger.warning(line)

    def start(self, *, watch_layout: bool = True) -> None:
        """Start every camera; optionally follow layout changes made by other replicas."""
        self._warn_old_replays(self.layout)
        with self._lock:
            for camera in self._own(self.layout):
                worker = self._new_worker(camera, self.layout)
                self._workers[camera.id] = worker
                worker.start()
        self._publish_reports_quietly()
        self._reporter = threading.Thread(
            target=self._report_loop, name="camera-reports", daemon=True
        )
        self._reporter.start()
        if watch_layout:
            watcher = threading.Thread(target=self._watch_layout, name="layout-watch", daemon=True)
            watcher.start()
            self._watchers.append(watcher)

    def stop(self) -> None:
        self._stop.set()
        with self._lock:
            workers = list(self._workers.values())
        for worker in workers:
            worker._stop.set()
        for worker in workers:
            worker.stop()
        if self._reporter is not None:
            self._reporter.join(timeout=10)
        self._publish_reports_quietly()
        # jredis: stop sharing live floor tracks (StoreWideAnalytics.close).
        close_engines = getattr(self._parts.engine_factory, "close", None)
        if callable(close_engines):
            close_engines()

    def publish_reports(self) -> None:
        """Publish every camera's status to the store, for replicas that run no workers."""
        now = time.time()
        for status in self.statuses().values():
            self._store.put_camera_report(status.to_report(self.worker_name, now))

    def _publish_reports_quietly(self) -> None:
        try:
            self.publish_reports()
        except StoreUnavailableError as exc:
            logger.debug("camera reports not published: %s", exc)
        except Exception:
            logger.exception("publishing camera reports failed")

    def _report_loop(self) -> None:
        while not self._stop.wait(self._settings.camera_report_s):
            self._publish_reports_quietly()

    def apply_layout(self, layout: StoreLayout) -> None:
        """Bring the running workers in line with ``layout`` without a restart of the service.

        Workers are stopped outside the supervisor's lock: a camera stuck in its source
        or store call delays only this call, never ``statuses()`` (``/healthz``, ``/readyz``).
        """
        self._warn_old_replays(layout)
        with self._apply_lock:
            to_stop: list[CameraWorker] = []
            to_start: list[CameraWorker] = []
            with self._lock:
                old_cameras = {c.id: c for c in self.layout.cameras}
                self.layout = layout
                self._layout_json = layout.model_dump_json()
                own = self._own(layout)
                new_ids = {c.id for c in own}
                for camera_id in list(self._workers):
                    if camera_id not in new_ids:
                        to_stop.append(self._workers.pop(camera_id))
                        self.snapshots.disable(camera_id)
                for camera in own:
                    worker = self._workers.get(camera.id)
                    if worker is not None and old_cameras.get(camera.id) == camera:
                        worker.apply_layout(layout)
                        continue
                    if worker is not None:
                        to_stop.append(worker)
                    replacement = self._new_worker(camera, layout)
                    self._workers[camera.id] = replacement
                    to_start.append(replacement)
            for worker in to_stop:
                worker._stop.set()
            for worker in to_stop:
                worker.stop()
            for worker in to_start:
                worker.start()

    def publish_layout_later(self) -> None:
        """The layout could not be stored at start-up (store down): the layout watcher
        stores it once the store answers, before it reads the shared layout again."""
        self._layout_unpublished = True

    def _publish_layout_if_due(self) -> bool:
        """``False`` while the start-up layout still waits to be stored."""
        if not self._layout_unpublished:
            return True
        try:
            self._store.put_layout(self._layout_json)
        except StoreUnavailableError:
            return False
        self._layout_unpublished = False
        logger.warning("the store answers again: layout stored")
        return True

    def _watch_layout(self) -> None:
        from storesense.zones.config import LayoutError, parse_layout

        while not self._stop.wait(self._settings.layout_poll_s):
            try:
                if not self._publish_layout_if_due():
                    continue
                stored = self._store.get_layout()
            except StoreUnavailableError:
                continue
            except Exception:
                logger.exception("reading the shared layout failed")
                continue
            if stored is None or stored == self._layout_json:
                continue
            try:
                layout = parse_layout(json.loads(stored))
            except (LayoutError, ValueError) as exc:
                logger.error("ignoring an invalid shared layout: %s", exc)
                continue
            if layout.model_dump_json() != self._layout_json:
                logger.warning("layout changed in the store; applying it")
                self.apply_layout(layout)

    def statuses(self) -> dict[str, CameraStatus]:
        with self._lock:
            return {camera_id: w.status() for camera_id, w in self._workers.items()}

    def push_frame(self, frame: Frame) -> bool:
        """Queue a pushed frame for its camera; ``False`` when an older frame was dropped."""
        with self._lock:
            worker = self._workers.get(frame.camera_id)
        if worker is None:
            known = ", ".join(sorted(self._workers)) or "none"
            raise UnknownCameraError(f"unknown camera {frame.camera_id!r} (known: {known})")
        if not worker.is_push:
            raise NotAPushCameraError(
                f"camera {frame.camera_id!r} reads its own source ({worker.camera.source}); "
                "only cameras without a source accept pushed frames"
            )
        return worker.push(frame)

    def camera_ids(self) -> list[str]:
        with self._lock:
            return list(self._workers)


def live_count_line(statuses: Mapping[str, CameraStatus]) -> str:
    """One terminal line per camera: state, frames, occupancy per zone.

    >>> line = live_count_line({"c": CameraStatus("c", CameraState.RUNNING, "pull", 10,
    ...                                           occupancy={"door": 2})})
    >>> line
    'c: running, 10 frames, door=2'
    """
    lines = []
    for camera_id, status in sorted(statuses.items()):
        parts = [f"{camera_id}: {status.state.value}", f"{status.frames_processed} frames"]
        if status.occupancy:
            parts.append(" ".join(f"{z}={n}" for z, n in sorted(status.occupancy.items())))
        if status.state in (CameraState.RESTARTING, CameraState.FAILED) and status.last_error:
            parts.append(f"last error: {status.last_error}")
        lines.append(", ".join(parts))
    return "\n".join(lines)
