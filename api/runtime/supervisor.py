"""The camera workers of one process: one :class:`~storesense.api.runtime.worker.CameraWorker`
per camera of the layout; the supervisor only adds restarts (each worker's back-off),
camera reports (:class:`~storesense.api.runtime.reporter.CameraReporter`) and layout changes
(applied between frames: camera added -> started, removed -> stopped, zones/lines changed
-> camera analytics rebuilt; :class:`~storesense.api.runtime.layout_watch.LayoutWatcher`
follows the changes other replicas store).

The components are real; a layout with a file source:

Example:
    >>> supervisor = WorkerSupervisor(layout, store, settings)   # doctest: +SKIP
    >>> supervisor.start(); supervisor.statuses()["cam1"].state   # doctest: +SKIP
    <CameraState.RUNNING: 'running'>
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Iterable

import cv2
from storesense.api.privacy.service import OptInService
from storesense.api.runtime.factories import (
    EngineFactory,
    PipelineFactory,
    SourceOpener,
    open_camera_source,
)
from storesense.api.runtime.layout_watch import LayoutWatcher
from storesense.api.runtime.reporter import CameraReporter
from storesense.api.runtime.snapshots import DebugSnapshots
from storesense.api.runtime.status import CameraStatus
from storesense.api.runtime.worker import CameraWorker, LiveSink, WorkerParts
from storesense.api.settings import ServiceSettings
from storesense.api.store.base import Store
from storesense.api.store_wide import StoreWideAnalytics
from storesense.vision.frames import Frame
from storesense.zones.config import CameraConfig, StoreLayout

logger = logging.getLogger(__name__)


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
            # Cameras share one StoreVisits, and through the store's live floor link
            # (Redis; None on SQLite) with the store's other worker processes.
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
        self._layout_json = layout.model_dump_json()
        self.reporter = CameraReporter(
            store, self.statuses, self.worker_name, settings.camera_report_s
        )
        self.layout_watcher = LayoutWatcher(
            store, lambda: self._layout_json, self.apply_layout, settings.layout_poll_s
        )

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
        if self._settings.opencv_threads is not None:
            # OpenCV's own pool (one thread a core) only adds hand-offs to per-frame
            # decode and resize beside the detector's threads (capacity guide).
            cv2.setNumThreads(self._settings.opencv_threads)
        with self._lock:
            for camera in self._own(self.layout):
                worker = self._new_worker(camera, self.layout)
                self._workers[camera.id] = worker
                worker.start()
        self.reporter.start()
        if watch_layout:
            self.layout_watcher.start()

    def stop(self) -> None:
        self.layout_watcher.stop()
        with self._lock:
            workers = list(self._workers.values())
        for worker in workers:
            worker.request_stop()
        for worker in workers:
            worker.stop()
        self.reporter.stop()
        # Stop sharing live floor tracks with the other processes (StoreWideAnalytics.close).
        close_engines = getattr(self._parts.engine_factory, "close", None)
        if callable(close_engines):
            close_engines()

    def publish_reports(self) -> None:
        """Publish every camera's status to the store, for replicas that run no workers."""
        self.reporter.publish()

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
                worker.request_stop()
            for worker in to_stop:
                worker.stop()
            for worker in to_start:
                worker.start()

    def publish_layout_later(self) -> None:
        """The layout could not be stored at start-up (store down): the layout watcher
        stores it once the store answers, before it reads the shared layout again."""
        self.layout_watcher.publish_later()

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
