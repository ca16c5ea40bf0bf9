"""Admin debug snapshots: per-camera switches with an expiry and the latest frame while on."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt


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
