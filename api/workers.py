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

import dataclasses
import json
import logging
import os
import queue
import socket
import threading
import time
import uuid
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Protocol

import numpy as np
import numpy.typing as npt
from storesense.api import telemetry
from storesense.api.privacy.service import OptInService
from storesense.api.settings import ServiceSettings
from storesense.api.store.base import CameraReport, Store, StoreUnavailableError
from storesense.vision.detections import Tracks
from storesense.vision.detector import Detector
from storesense.vision.frames import Frame
from storesense.vision.inference import InferenceService
from storesense.vision.pipeline import CameraPipeline, run_pipeline
from storesense.zones.config import CameraConfig, StoreLayout
from storesense.zones.events import Event

logger = logging.getLogger(__name__)

MAX_PENDING_EVENTS = 1_000_000


class CameraAnalyticsLike(Protocol):
    """What a camera worker feeds each frame (:class:`~storesense.zones.camera.CameraAnalytics`)."""

    def update(self, frame_image: npt.NDArray[np.uint8] | None, tracks: Tracks) -> list[Event]: ...

    def occupancy(self) -> dict[str, int]: ...

    def finish(self, timestamp: float) -> list[Event]: ...


PipelineFactory = Callable[[CameraConfig], CameraPipeline]
"""One :class:`CameraPipeline` (own tracker, the camera's masks) per camera run."""
EngineFactory = Callable[[StoreLayout, str, str, float], CameraAnalyticsLike]
"""``(layout, camera_id, run_id, time_origin) -> analytics`` (zones, lines and shelves)."""
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


class _CameraFrames:
    """A camera's frames, in time order: an older frame than the last one kept is dropped
    (pushed frames can arrive late; ``reason="out_of_order"``), and frames a paced source
    dropped because the reader fell behind are counted (``reason="late"``).

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
            if last_timestamp is not None and frame.timestamp < last_timestamp:
                self._out_of_order.inc()
                continue
            last_timestamp = frame.timestamp
            yield frame
        self._count_late()

    def close(self) -> None:
        close = getattr(self._frames, "close", None)
        if callable(close):
            close()


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


class CameraWorker:
    """One camera's loop in its own daemon thread, restarting with back-off on failure."""

    def __init__(self, camera: CameraConfig, layout: StoreLayout, parts: WorkerParts) -> None:
        self.camera = camera
        self._optin = parts.optin
        self._snapshots = parts.snapshots
        self._layout = layout
        self._pending_layout: StoreLayout | None = None
        self._store = parts.store
        self._settings = settings = parts.settings
        self._pipeline_factory = parts.pipeline_factory
        self._engine_factory = parts.engine_factory
        self._source_opener = parts.source_opener
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._inbox: queue.Queue[Frame] = queue.Queue(maxsize=settings.ingest_queue_size)
        self._pending_events: list[Event] = []
        self._status = CameraStatus(
            camera.id, CameraState.STARTING, "push" if camera.source is None else "pull"
        )
        self._thread = threading.Thread(target=self._run, name=f"camera-{camera.id}", daemon=True)
        self._generation = 0

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
        return self._status

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
        self._generation += 1
        run_id = f"{self.camera.id}-{uuid.uuid4().hex[:8]}-{self._generation}"
        return self._engine_factory(layout, self.camera.id, run_id, time_origin)

    def _run_once(self) -> None:
        camera_id = self.camera.id
        pipeline = self._pipeline_factory(self.camera)
        time_origin = time_origin_for(self.camera, time.time())
        engine = self._new_engine(self._layout, time_origin)
        if self._optin is not None:
            self._optin.camera_restarted(camera_id, time.time())
        last_timestamp: float | None = None
        frame_interval = 0.0
        last_occupancy: dict[str, int] | None = None
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
                        self._write(self._tag_members(engine.finish(last_timestamp)))
                    self._layout = new_layout
                    engine = self._new_engine(new_layout, time_origin)
                    last_occupancy = None
                t1 = time.perf_counter()
                events = engine.update(frame.image, tracks)
                if self._optin is not None:
                    events = self._optin.on_frame(
                        camera_id,
                        tracks,
                        events,
                        image=frame.image,
                        now=time_origin + frame.timestamp,
                    )
                occupancy = engine.occupancy()
                t2 = time.perf_counter()
                self._write(events)
                if occupancy != last_occupancy:
                    self._set_occupancy(occupancy, time_origin + frame.timestamp)
                    last_occupancy = occupancy
                t3 = time.perf_counter()
                zones_seconds.observe(t2 - t1)
                store_seconds.observe(t3 - t2)
                frames_processed.inc()
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
                self._write(self._tag_members(engine.finish(last_timestamp + frame_interval)))
                self._set_occupancy(
                    {zone: 0 for zone in engine.occupancy()}, time_origin + last_timestamp
                )
            tracked.close()
            self._snapshots.drop_frame(camera_id)
            self._flush_pending()

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
        self._flush_pending()

    def _flush_pending(self) -> None:
        if not self._pending_events:
            return
        try:
            self._store.write_events(self._pending_events)
        except StoreUnavailableError as exc:
            if len(self._pending_events) > MAX_PENDING_EVENTS:
                raise RuntimeError(
                    f"store unavailable and {len(self._pending_events)} events pending"
                ) from exc
            logger.warning(
                "camera %s: store unavailable, %d events kept for retry",
                self.camera.id,
                len(self._pending_events),
            )
            return
        telemetry.EVENTS_WRITTEN.labels(self.camera.id).inc(len(self._pending_events))
        self._pending_events = []

    def _set_occupancy(self, counts: Mapping[str, int], timestamp: float) -> None:
        try:
            self._store.set_occupancy(self.camera.id, counts, timestamp)
        except StoreUnavailableError:
            logger.warning("camera %s: store unavailable, occupancy not published", self.camera.id)


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
        engine_factory: EngineFactory = build_camera_analytics,
        source_opener: SourceOpener = open_camera_source,
        optin: OptInService | None = None,
        snapshots: DebugSnapshots | None = None,
        cameras: Iterable[str] | None = None,
    ) -> None:
        """``cameras``: run only these cameras of the layout (default all), so that
        several worker processes can share one store's cameras."""
        self.cameras = None if cameras is None else check_camera_ids(layout, cameras)
        self.layout = layout
        self.optin = optin
        self.snapshots = snapshots or DebugSnapshots()
        """Admin debug-snapshot switches of this process's cameras (all off at start)."""
        self._store = store
        self._settings = settings
        self._parts = WorkerParts(
            store,
            settings,
            pipeline_factory,
            engine_factory,
            source_opener,
            optin,
            self.snapshots,
        )
        self._workers: dict[str, CameraWorker] = {}
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._watchers: list[threading.Thread] = []
        self._reporter: threading.Thread | None = None
        self._layout_json = layout.model_dump_json()
        self.worker_name = f"{socket.gethostname()}:{os.getpid()}"
        """How this process signs the camera reports it publishes (``host:pid``)."""

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
        """Bring the running workers in line with ``layout`` without a restart of the service."""
        self._warn_old_replays(layout)
        with self._lock:
            old_cameras = {c.id: c for c in self.layout.cameras}
            self.layout = layout
            self._layout_json = layout.model_dump_json()
            own = self._own(layout)
            new_ids = {c.id for c in own}
            for camera_id in list(self._workers):
                if camera_id not in new_ids:
                    self._workers.pop(camera_id).stop()
                    self.snapshots.disable(camera_id)
            for camera in own:
                worker = self._workers.get(camera.id)
                if worker is not None and old_cameras.get(camera.id) == camera:
                    worker.apply_layout(layout)
                    continue
                if worker is not None:
                    worker.stop()
                replacement = self._new_worker(camera, layout)
                self._workers[camera.id] = replacement
                replacement.start()

    def _watch_layout(self) -> None:
        from storesense.zones.config import LayoutError, parse_layout

        while not self._stop.wait(self._settings.layout_poll_s):
            try:
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
