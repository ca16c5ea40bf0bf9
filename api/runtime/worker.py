"""A camera worker: the :class:`~storesense.api.runtime.runner.CameraRunner` in its own
daemon thread, writing to the store through a :class:`StoreSink`, restarting with
back-off (``tenacity``) on failure; it never takes the API or other cameras down.

Cameras without a ``source`` in the layout are *push* cameras: their frames
arrive through ``POST /v1/cameras/{id}/frames`` (:meth:`CameraWorker.push`).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Generator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Protocol

import numpy as np
import tenacity
from storesense.api import telemetry
from storesense.api.live_heatmap import LiveHeatmap
from storesense.api.privacy.service import OptInService
from storesense.api.runtime.factories import EngineFactory, PipelineFactory, SourceOpener
from storesense.api.runtime.frames import is_replayable, time_origin_for
from storesense.api.runtime.outage import OutageBuffer
from storesense.api.runtime.runner import (
    CameraAnalyticsLike,
    CameraRunner,
    FrameResult,
    RunClock,
)
from storesense.api.runtime.snapshots import DebugSnapshots
from storesense.api.runtime.status import FPS_WINDOW_FRAMES, CameraState, CameraStatus, recent_fps
from storesense.api.runtime.visits import OpenVisitCloser, event_identity_scope
from storesense.api.settings import ServiceSettings
from storesense.api.store.base import Store, StoreUnavailableError
from storesense.api.store_wide import publish_store_count, store_wide_counts
from storesense.vision.frames import Frame
from storesense.vision.tracking import run_first_track_id
from storesense.zones.config import CameraConfig, StoreLayout
from storesense.zones.events import Event
from storesense.zones.store_visits import STORE_CAMERA, StoreWideCounts

logger = logging.getLogger(__name__)


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


@dataclass(frozen=True)
class WorkerParts:
    """What every camera worker of a supervisor shares
    (see :class:`~storesense.api.runtime.supervisor.WorkerSupervisor`)."""

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


class StoreSink:
    """One run of a camera worker as a :class:`~storesense.api.runtime.runner.RunSink`:
    opt-in hooks, events to the store (through the outage buffer) and the live sink,
    occupancy and the store-wide count when they change, the floor heatmap, debug
    snapshots, the camera's status and its ``/metrics``."""

    def __init__(self, worker: CameraWorker, clock: RunClock) -> None:
        self._worker = worker
        self._clock = clock
        self.camera_id = camera_id = worker.camera.id
        self._store = worker.parts.store
        self._settings = worker.parts.settings
        self._optin = worker.parts.optin
        self._live = worker.parts.sink
        self._snapshots = worker.parts.snapshots
        self._analytics: CameraAnalyticsLike | None = None
        self._heatmap: LiveHeatmap | None = None
        self._heatmap_due = time.monotonic() + self._settings.heatmap_publish_s
        self._last_occupancy: tuple[dict[str, int], dict[str, int]] | None = None
        self._unwritten: tuple[dict[str, int], dict[str, int], float] | None = None
        """Counts (occupancy, approaching, frame time) changed since the last store write."""
        self._write_every = self._settings.store_write_s
        self._write_due = 0.0
        self._store_count: StoreWideCounts | None = None
        self._last_frame_time: float | None = None
        self._zones_seconds = telemetry.STAGE_SECONDS.labels(camera_id, "zones")
        self._store_seconds = telemetry.STAGE_SECONDS.labels(camera_id, "store")
        self._frames_processed = telemetry.FRAMES_PROCESSED.labels(camera_id)
        self._camera_up = telemetry.CAMERA_UP.labels(camera_id)

    # RunSink -----------------------------------------------------------------
    def started(self, layout: StoreLayout | None, analytics: CameraAnalyticsLike) -> None:
        self._analytics = analytics
        self._last_occupancy = None
        self.publish_heatmap(finish=True)
        self._heatmap = None if layout is None else self._new_heatmap(layout)

    def frame(self, result: FrameResult) -> None:
        """Events and count changes go to the live sink at once and to the store at most
        every ``store_write_s`` (one transaction of each kind instead of one a frame)."""
        self._offer_snapshot(result)
        start = time.perf_counter()
        tracks = result.tracks
        events = result.events
        if self._optin is not None:
            image = result.frame.image if result.frame is not None else None
            events = self._optin.on_frame(
                self.camera_id, tracks, events, image=image, now=result.frame_time
            )
        if self._heatmap is not None:
            self._heatmap.add(tracks, float(tracks.timestamp))
        zones_done = time.perf_counter()
        now = time.monotonic()
        due = now >= self._write_due
        self._worker.write(events, store=due)
        if self._heatmap is not None and now >= self._heatmap_due:
            self.publish_heatmap()
            self._heatmap_due = now + self._settings.heatmap_publish_s
        counts = (result.occupancy, result.approaching)
        if counts != self._last_occupancy:
            if self._live is not None:
                self._live.occupancy(
                    self.camera_id, result.occupancy, result.approaching, result.frame_time
                )
            self._unwritten = (result.occupancy, result.approaching, result.frame_time)
            self._last_occupancy = counts
        if due:
            self._write_counts(result.frame_time)
            self._write_due = now + self._write_every
        self._zones_seconds.observe(result.analytics_seconds + zones_done - start)
        self._store_seconds.observe(time.perf_counter() - zones_done)
        self._frames_processed.inc()
        self._last_frame_time = result.frame_time
        self._worker.frame_done(result.frame_time, result.occupancy)
        self._camera_up.set(1)

    def flush(self) -> None:
        """Write what waits for the store (the camera is idle, or the analytics close)."""
        self._worker.outage.add((), write=True)
        if self._last_frame_time is not None:
            self._write_counts(self._last_frame_time)

    def finished(self, events: list[Event], end: float, *, final: bool) -> None:
        self.flush()
        self._worker.write(self._tag_members(events))
        if final and self._analytics is not None and self._last_frame_time is not None:
            zeros = dict.fromkeys(self._analytics.occupancy(), 0)
            self._set_occupancy(zeros, self._last_frame_time)

    # parts -------------------------------------------------------------------
    def _offer_snapshot(self, result: FrameResult) -> None:
        """Debug snapshots on: keep this frame and every person box (detections and tracks)."""
        if result.frame is None or not self._snapshots.is_on(self.camera_id):
            return
        detected = result.detections
        tracks = result.tracks
        boxes = [tracks.xyxy] if detected is None else [detected.xyxy, tracks.xyxy]
        self._snapshots.offer(
            self.camera_id,
            result.frame.image,
            np.concatenate(boxes).astype(np.float32, copy=False),
            result.frame_time,
        )

    def _tag_members(self, events: list[Event]) -> list[Event]:
        """Events outside a frame (analytics finish): opt-in members' are tagged all the same."""
        if self._optin is None or not events:
            return events
        return self._optin.dispatcher.process(self.camera_id, events)

    def _new_heatmap(self, layout: StoreLayout) -> LiveHeatmap | None:
        """A floor heatmap for this camera when the layout gives it a homography."""
        homography = layout.camera(self.camera_id).homography
        if homography is None:
            return None
        return LiveHeatmap(self.camera_id, homography, self._clock.time_origin)

    def publish_heatmap(self, *, finish: bool = False) -> None:
        """Add the heatmap sums since the last publish to the store (kept on an outage)."""
        heatmap = self._heatmap
        if heatmap is None:
            return
        if finish:
            heatmap.finish()
        try:
            heatmap.publish(self._store)
        except StoreUnavailableError:
            logger.warning("camera %s: store unavailable, heatmap kept for later", self.camera_id)
        except Exception:
            logger.exception("camera %s: publishing the floor heatmap failed", self.camera_id)

    def _write_counts(self, frame_time: float) -> None:
        """The changed zone counts and the store-wide count to the store (kept on an outage)."""
        unwritten = self._unwritten
        if unwritten is not None:
            occupancy, approaching, changed_at = unwritten
            try:
                self._store.set_occupancy(self.camera_id, occupancy, changed_at, approaching)
                self._unwritten = None
            except StoreUnavailableError:
                logger.warning(
                    "camera %s: store unavailable, occupancy not published", self.camera_id
                )
        counts = store_wide_counts(self._analytics)
        self._store_count = publish_store_count(self._store, counts, frame_time, self._store_count)
        if self._live is not None and counts is not None and counts.zones:
            # The live sink keeps the last value of each zone and sends only changes.
            self._live.occupancy(STORE_CAMERA, counts.zones, counts.approaching, frame_time)

    def _set_occupancy(
        self,
        counts: Mapping[str, int],
        timestamp: float,
        approaching: Mapping[str, int] | None = None,
    ) -> None:
        if self._live is not None:
            self._live.occupancy(self.camera_id, counts, approaching, timestamp)
        try:
            self._store.set_occupancy(self.camera_id, counts, timestamp, approaching)
        except StoreUnavailableError:
            logger.warning("camera %s: store unavailable, occupancy not published", self.camera_id)


class _StopRequested(Exception):
    """The worker was told to stop while it waited out the back-off."""


class CameraWorker:
    """One camera's runner in its own daemon thread, restarting with back-off on failure.

    The back-off is ``settings.backoff``: ``initial_s * factor**n`` capped at ``max_s``,
    ``n`` counting consecutive failures (a run of ``healthy_after_s`` or more resets it);
    after ``max_restarts`` restarts the camera is ``failed`` for good.
    """

    def __init__(self, camera: CameraConfig, layout: StoreLayout, parts: WorkerParts) -> None:
        self.camera = camera
        self.parts = parts
        self._layout = layout
        self._pending_layout: StoreLayout | None = None
        self._settings = settings = parts.settings
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._inbox: queue.Queue[Frame] = queue.Queue(maxsize=settings.ingest_queue_size)
        self.visits = OpenVisitCloser(
            parts.store, camera.id, parts.worker_name, settings.camera_report_s
        )
        self.outage = OutageBuffer(
            parts.store,
            camera.id,
            max_events=settings.outage_buffer_events,
            on_written=self.visits.close,
        )
        self._status = CameraStatus(
            camera.id, CameraState.STARTING, "push" if camera.source is None else "pull"
        )
        self._thread = threading.Thread(target=self._run, name=f"camera-{camera.id}", daemon=True)
        self._frame_clock: deque[float] = deque(maxlen=FPS_WINDOW_FRAMES)
        self._failures = 0
        """Consecutive failures (the back-off exponent)."""
        self._sink: StoreSink | None = None
        """The current run's sink (the camera thread's own)."""

    # public ---------------------------------------------------------------
    @property
    def is_push(self) -> bool:
        return self.camera.source is None

    def start(self) -> None:
        self._thread.start()

    def request_stop(self) -> None:
        """Ask the worker to stop after its current frame (see :meth:`stop`)."""
        self._stop.set()

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

    def write(self, events: Sequence[Event], *, store: bool = True) -> None:
        """Events to the live sink and the outage buffer, and (``store``) what the buffer
        holds to the store (kept through an outage)."""
        if events and self.parts.sink is not None:
            self.parts.sink.events(self.camera.id, events)
        self.outage.add(events, write=store)

    def frame_done(self, frame_time: float, occupancy: Mapping[str, int]) -> None:
        """The runner's sink processed a frame: the camera's status follows."""
        self._frame_clock.append(time.monotonic())
        self._set(
            state=CameraState.RUNNING,
            frames_processed=self._status.frames_processed + 1,
            last_frame_time=frame_time,
            last_frame_at=time.time(),
            next_restart_at=None,
            occupancy=occupancy,
        )

    # restarts ---------------------------------------------------------------
    def _set(self, **changes: object) -> None:
        self._status = replace(self._status, **changes)  # type: ignore[arg-type]

    def _attempt(self) -> None:
        """One run; counts it as a failure (reset first if it ran long enough)."""
        started = time.monotonic()
        try:
            self._run_once()
        except Exception:
            if time.monotonic() - started >= self._settings.backoff.healthy_after_s:
                self._failures = 0
            self._failures += 1
            raise

    def _gives_up(self, retry_state: tenacity.RetryCallState) -> bool:
        max_restarts = self._settings.backoff.max_restarts
        return max_restarts is not None and self._status.restarts >= max_restarts

    def _wait(self, retry_state: tenacity.RetryCallState) -> float:
        return self._settings.backoff.delay(self._failures)

    def _sleep(self, seconds: float) -> None:
        if self._stop.wait(seconds):
            raise _StopRequested

    def _restarting(self, retry_state: tenacity.RetryCallState) -> None:
        exc = retry_state.outcome.exception() if retry_state.outcome is not None else None
        reason = f"{type(exc).__name__}: {exc}"
        delay = retry_state.next_action.sleep if retry_state.next_action is not None else 0.0
        telemetry.CAMERA_UP.labels(self.camera.id).set(0)
        logger.warning("camera %s failed (%s); restarting in %.1f s", self.camera.id, reason, delay)
        self._set(
            state=CameraState.RESTARTING, last_error=reason, next_restart_at=time.time() + delay
        )

    def _before_attempt(self, retry_state: tenacity.RetryCallState) -> None:
        if retry_state.attempt_number > 1:
            telemetry.WORKER_RESTARTS.labels(self.camera.id).inc()
            self._set(restarts=self._status.restarts + 1, state=CameraState.STARTING)

    def _run(self) -> None:
        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception(lambda _exc: not self._stop.is_set()),
            stop=self._gives_up,
            wait=self._wait,
            sleep=self._sleep,
            before=self._before_attempt,
            before_sleep=self._restarting,
            reraise=True,
        )
        try:
            retrying(self._attempt)
        except _StopRequested:
            pass
        except Exception as exc:
            telemetry.CAMERA_UP.labels(self.camera.id).set(0)
            if not self._stop.is_set():
                reason = f"{type(exc).__name__}: {exc}"
                logger.error("camera %s failed for good: %s", self.camera.id, reason)
                self._set(state=CameraState.FAILED, last_error=reason, next_restart_at=None)
                return
        else:
            if not self._stop.is_set():
                self._set(state=CameraState.FINISHED)
                telemetry.CAMERA_UP.labels(self.camera.id).set(0)
                return
        self._set(state=CameraState.STOPPED, next_restart_at=None)
        telemetry.CAMERA_UP.labels(self.camera.id).set(0)

    # one run ----------------------------------------------------------------
    def _pushed_frames(self) -> Generator[Frame, None, None]:
        while not self._stop.is_set():
            try:
                yield self._inbox.get(timeout=0.2)
            except queue.Empty:
                sink = self._sink
                if sink is not None:
                    sink.flush()  # no frame for a while: write what waits for the store
                continue

    def _layout_change(self) -> StoreLayout | None:
        with self._lock:
            new_layout, self._pending_layout = self._pending_layout, None
        if new_layout is not None:
            self._layout = new_layout
        return new_layout

    def _run_once(self) -> None:
        camera = self.camera
        pipeline = self.parts.pipeline_factory(camera)
        telemetry.DETECTOR_FRAMES.track(camera.id, pipeline)
        run_started = time.time()
        time_origin = time_origin_for(camera, run_started)
        # Event ids come from the source position: a file's frame clock (the analytics run
        # on it, events are moved to Unix time after), a live or pushed frame's capture time.
        clock = RunClock(time_origin, shift=time_origin if is_replayable(camera) else 0.0)
        if not is_replayable(camera):
            # A replayed file re-emits its visits (same track ids, same event ids); a live
            # camera's last run cannot, and this run's people are others: new track ids.
            pipeline.tracker.reset(first_id=run_first_track_id(run_started))
            self.visits.due(run_started)
            self.visits.close()
        if self.parts.optin is not None:
            self.parts.optin.camera_restarted(camera.id, time.time())
        sink = self._sink = StoreSink(self, clock)
        engine_factory = self.parts.engine_factory

        def analytics(layout: StoreLayout, origin: float) -> CameraAnalyticsLike:
            return engine_factory(
                layout, camera.id, event_identity_scope(layout, camera.id), origin
            )

        runner = CameraRunner(
            camera.id,
            sink,
            layout=self._layout,
            analytics_factory=analytics,
            clock=clock,
            layout_changes=self._layout_change,
            should_stop=self._stop.is_set,
        )
        if self.is_push:
            self._set(state=CameraState.RUNNING, next_restart_at=None)
            telemetry.CAMERA_UP.labels(camera.id).set(1)
        try:
            if self.is_push:
                runner.run(self._pushed_frames(), pipeline, prefetch=None)
            else:
                source = self.parts.source_opener(camera, self._settings)
                runner.run(source, pipeline, prefetch=self._settings.decode_prefetch)
        finally:
            self.parts.snapshots.drop_frame(camera.id)
            self.outage.flush()
            sink.publish_heatmap(finish=True)
