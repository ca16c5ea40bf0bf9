"""All live tracks of one tracker as parallel arrays (one row per track).

Keeping tracks as columns rather than objects lets the tracker predict, match and
update every track with a handful of numpy calls per frame.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
from storesense.vision.tracking.kalman import STATE_DIM

Array = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]


def _rows(*shape: int) -> Array:
    return np.zeros((0, *shape), np.float64)


@dataclass
class TrackTable:
    """Rows are tracks. ``track_id`` is 0 while a track is tentative (not yet confirmed)."""

    mean: Array = field(default_factory=lambda: _rows(STATE_DIM))
    covariance: Array = field(default_factory=lambda: _rows(3, 4))
    track_id: IntArray = field(default_factory=lambda: np.zeros(0, np.int64))
    hits: IntArray = field(default_factory=lambda: np.zeros(0, np.int64))
    """Consecutive matched updates."""
    missed: IntArray = field(default_factory=lambda: np.zeros(0, np.int64))
    """Updates since the last match (0: matched at the latest update)."""
    last_seen: Array = field(default_factory=lambda: np.zeros(0, np.float64))
    """Timestamp of the last match, seconds."""
    last_glimpse: Array = field(default_factory=lambda: np.zeros(0, np.float64))
    """Timestamp of the last match or glimpse (see ``TrackerConfig.glimpse_hold``), seconds."""
    held: BoolArray = field(default_factory=lambda: np.zeros(0, np.bool_))
    """Past the lost buffer, kept only while glimpsed: never matched or reported again."""
    last_box: Array = field(default_factory=lambda: _rows(4))
    """Last matched detection, cx, cy, w, h."""
    last_score: Array = field(default_factory=lambda: np.zeros(0, np.float64))
    saved_mean: Array = field(default_factory=lambda: _rows(STATE_DIM))
    """Filter state right after the last match (for observation-centric re-update)."""
    saved_covariance: Array = field(default_factory=lambda: _rows(3, 4))

    def __len__(self) -> int:
        return len(self.track_id)

    @property
    def confirmed(self) -> BoolArray:
        return self.track_id > 0

    def keep(self, mask: BoolArray) -> None:
        """Drop the rows where ``mask`` is False."""
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(self, name)[mask])

    def append(self, other: TrackTable) -> None:
        for name in self.__dataclass_fields__:
            setattr(self, name, np.concatenate([getattr(self, name), getattr(other, name)]))
