"""The camera runtime: one per-frame loop (source → vision pipeline → camera analytics →
sink) that ``storesense count``, ``storesense track`` and the ``serve`` workers all run.

Modules by job:

- :mod:`~storesense.api.runtime.runner`: :class:`CameraRunner`, the loop, and the sink protocol;
- :mod:`~storesense.api.runtime.count`: the in-memory sink behind ``storesense count``;
- :mod:`~storesense.api.runtime.factories`: a camera's source, pipeline and analytics;
- :mod:`~storesense.api.runtime.frames`: the frame clock's origin, the time-order guard;
- :mod:`~storesense.api.runtime.worker`: a camera worker thread and its store sink;
- :mod:`~storesense.api.runtime.outage`: events kept in memory through a store outage;
- :mod:`~storesense.api.runtime.visits`: event ids across restarts, visits left open;
- :mod:`~storesense.api.runtime.supervisor`: one worker per camera, restarts, layout changes;
- :mod:`~storesense.api.runtime.reporter`, :mod:`~storesense.api.runtime.layout_watch`:
  camera reports and the layout shared through the store;
- :mod:`~storesense.api.runtime.status`, :mod:`~storesense.api.runtime.snapshots`:
  what ``/v1/cameras`` and the debug snapshots show.
"""

from storesense.api.runtime.count import CountSink, count_video, summarise_frames, summarise_tracks
from storesense.api.runtime.factories import (
    build_camera_analytics,
    open_camera_source,
    pipeline_factory_for,
)
from storesense.api.runtime.runner import CameraRunner, FrameResult, RunClock, RunSink
from storesense.api.runtime.snapshots import DebugFrame, DebugSnapshots
from storesense.api.runtime.status import (
    CameraState,
    CameraStatus,
    camera_not_ready_reason,
    live_count_line,
)
from storesense.api.runtime.supervisor import (
    NotAPushCameraError,
    UnknownCameraError,
    WorkerSupervisor,
    check_camera_ids,
    old_replay_warnings,
)
from storesense.api.runtime.worker import CameraWorker, LiveSink, StoreSink, WorkerParts

__all__ = [
    "CameraRunner",
    "CameraState",
    "CameraStatus",
    "CameraWorker",
    "CountSink",
    "DebugFrame",
    "DebugSnapshots",
    "FrameResult",
    "LiveSink",
    "NotAPushCameraError",
    "RunClock",
    "RunSink",
    "StoreSink",
    "UnknownCameraError",
    "WorkerParts",
    "WorkerSupervisor",
    "build_camera_analytics",
    "camera_not_ready_reason",
    "check_camera_ids",
    "count_video",
    "live_count_line",
    "old_replay_warnings",
    "open_camera_source",
    "pipeline_factory_for",
    "summarise_frames",
    "summarise_tracks",
]
