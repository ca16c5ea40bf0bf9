"""The typed containers that carry results between pipeline stages."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float32]
IntArray = npt.NDArray[np.int64]


def _as_boxes(xyxy: npt.ArrayLike) -> FloatArray:
    boxes = np.asarray(xyxy, dtype=np.float32)
    if boxes.size == 0:
        return np.zeros((0, 4), dtype=np.float32)
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError(f"boxes must have shape (N, 4), got {boxes.shape}")
    return boxes


@dataclass(frozen=True)
class Detections:
    """Boxes found in one frame: ``xyxy`` pixels, ``confidence`` and ``class_id``.

    Example:
        >>> import numpy as np
        >>> d = Detections(np.array([[0, 0, 10, 20]]), np.array([0.9]), np.array([0]))
        >>> len(d), d.xyxy.dtype.name, d.anchors().tolist()
        (1, 'float32', [[5.0, 20.0]])
    """

    xyxy: FloatArray
    confidence: FloatArray
    class_id: IntArray

    def __post_init__(self) -> None:
        boxes = _as_boxes(self.xyxy)
        conf = np.asarray(self.confidence, dtype=np.float32).reshape(-1)
        cls = np.asarray(self.class_id, dtype=np.int64).reshape(-1)
        if not len(boxes) == len(conf) == len(cls):
            raise ValueError(
                f"xyxy, confidence and class_id disagree in length: "
                f"{len(boxes)}, {len(conf)}, {len(cls)}"
            )
        object.__setattr__(self, "xyxy", boxes)
        object.__setattr__(self, "confidence", conf)
        object.__setattr__(self, "class_id", cls)

    @classmethod
    def empty(cls) -> Detections:
        return cls(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64))

    def __len__(self) -> int:
        return len(self.xyxy)

    def __getitem__(
        self, index: npt.NDArray[np.bool_] | npt.NDArray[np.integer[Any]] | slice
    ) -> Detections:
        return Detections(self.xyxy[index], self.confidence[index], self.class_id[index])

    def anchors(self) -> FloatArray:
        """Bottom-centre point of each box (where the feet are), shape (N, 2)."""
        return bottom_centre(self.xyxy)


def bottom_centre(xyxy: FloatArray) -> FloatArray:
    return np.stack([(xyxy[:, 0] + xyxy[:, 2]) * 0.5, xyxy[:, 3]], axis=1).astype(np.float32)


@dataclass(frozen=True)
class Tracks:
    """Confirmed tracks of one camera at one instant.

    ``track_id`` is anonymous and local to the camera. ``velocity`` is the
    bottom-centre (floor point) velocity in pixels per second, shape (N, 2).
    ``timestamp`` is the frame's capture time in seconds on the source clock.

    Example:
        >>> import numpy as np
        >>> t = Tracks(np.array([[0, 0, 10, 20]]), np.array([0.8]), np.array([7]),
        ...            np.array([[1.5, 0.0]]), timestamp=3.0)
        >>> t.track_id.tolist(), t.anchors().tolist()
        ([7], [[5.0, 20.0]])
    """

    xyxy: FloatArray
    confidence: FloatArray
    track_id: IntArray
    velocity: FloatArray
    timestamp: float
    frame_index: int = 0
    lost_ids: IntArray = field(default_factory=lambda: np.zeros(0, np.int64))
    """Ids of tracks the tracker removed for good at this update (left the scene)."""
    held_ids: IntArray = field(default_factory=lambda: np.zeros(0, np.int64))
    """Ids of confirmed tracks not reported at this update whose person the detector still
    glimpses where the track is held (a weak box there that no reported track explains)."""

    def __post_init__(self) -> None:
        boxes = _as_boxes(self.xyxy)
        object.__setattr__(self, "xyxy", boxes)
        object.__setattr__(self, "confidence", np.asarray(self.confidence, np.float32).reshape(-1))
        object.__setattr__(self, "track_id", np.asarray(self.track_id, np.int64).reshape(-1))
        velocity = np.asarray(self.velocity, np.float32)
        object.__setattr__(
            self,
            "velocity",
            velocity.reshape(-1, 2) if velocity.size else np.zeros((0, 2), np.float32),
        )
        object.__setattr__(self, "lost_ids", np.asarray(self.lost_ids, np.int64).reshape(-1))
        object.__setattr__(self, "held_ids", np.asarray(self.held_ids, np.int64).reshape(-1))
        n = len(boxes)
        if not (len(self.confidence) == len(self.track_id) == len(self.velocity) == n):
            raise ValueError("xyxy, confidence, track_id and velocity disagree in length")

    @classmethod
    def empty(cls, timestamp: float = 0.0, frame_index: int = 0) -> Tracks:
        return cls(
            np.zeros((0, 4), np.float32),
            np.zeros(0, np.float32),
            np.zeros(0, np.int64),
            np.zeros((0, 2), np.float32),
            timestamp=timestamp,
            frame_index=frame_index,
        )

    def __len__(self) -> int:
        return len(self.xyxy)

    def anchors(self) -> FloatArray:
        return bottom_centre(self.xyxy)
