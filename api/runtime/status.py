"""Camera status as the API and the camera reports show it: state, frames, fps, why not ready."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

from storesense.api.store.base import CameraReport

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
