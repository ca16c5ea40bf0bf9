"""Multi-object tracker (ByteTrack family, time-based Kalman filter, lost buffer in seconds).

Example:
    >>> from storesense.vision.tracking import Tracker, TrackerConfig
    >>> tracker = Tracker(TrackerConfig(lost_buffer_seconds=1.5))
    >>> tracker.active_count
    0
"""

from storesense.vision.tracking.config import TrackerConfig
from storesense.vision.tracking.kalman import ConstantVelocityKalman
from storesense.vision.tracking.tracker import Tracker, run_first_track_id

__all__ = ["ConstantVelocityKalman", "Tracker", "TrackerConfig", "run_first_track_id"]
