"""Tracker parameters, validated once at construction.

Example:
    >>> TrackerConfig().lost_buffer_seconds > 0
    True
    >>> try:
    ...     TrackerConfig(high_score=0.2, low_score=0.5)
    ... except ValueError as error:
    ...     print("low_score (0.5) must be below high_score (0.2)" in str(error))
    True
"""

from __future__ import annotations

import math
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from storesense.vision.tracking.kalman import ConstantVelocityKalman

_Fraction = Field(ge=0.0, le=1.0)


class TrackerConfig(BaseModel):
    """How the tracker associates, confirms and forgets people. Defaults are chosen by
    cross-validation: tuned on one of PETS09-S2L1 (7 fps, elevated camera) and TUD-Campus
    (25 fps, eye level), checked on the other and on frame-rate, size, crop and light
    variants (``python benchmarks/tracking.py --folds``).

    Bad values raise ``ValueError`` (pydantic's ``ValidationError`` is one) naming the field.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    high_score: float = Field(default=0.4, ge=0.0, le=1.0)
    """Detections at or above this score take part in the first association stage."""
    low_score: float = Field(default=0.1, ge=0.0, le=1.0)
    """Detections in ``[low_score, high_score)`` may only continue existing tracks."""
    new_track_score: float = Field(default=0.7, ge=0.0, le=1.0)
    """An unmatched high detection starts a tentative track only at or above this score."""
    match_iou: float = Field(default=0.1, gt=0.0, le=1.0)
    """Minimum IoU between a predicted track box and a high-score detection."""
    low_match_iou: float = Field(default=0.5, gt=0.0, le=1.0)
    """Minimum IoU for the low-score stage (stricter: low boxes are often clutter)."""
    tentative_match_iou: float = Field(default=0.3, gt=0.0, le=1.0)
    """Minimum IoU for a tentative (unconfirmed) track to continue."""
    min_hits: int = Field(default=2, ge=1, le=100)
    """Consecutive matched updates before a track is confirmed and reported."""
    lost_buffer_seconds: float = Field(default=2.0, ge=0.0, le=3600.0)
    """How long an unmatched confirmed track is kept for re-association, in seconds."""
    glimpse_hold: bool = True
    """A lost confirmed track whose person the detector still glimpses where it was last
    seen (a leftover box too weak to start a track, covering at least half of its last box
    or lying at least half inside it, not a duplicate of a matched box) is held past
    ``lost_buffer_seconds`` until ``lost_buffer_seconds`` after the last glimpse, or until a
    new track starts on that spot. It is never matched or reported again: its id is listed
    in ``Tracks.held_ids`` while glimpsed, so zone occupancy keeps counting someone who stands
    half hidden (behind a sign, a shelf end) without changing any reported track."""
    coast_seconds: float = Field(default=0.0, ge=0.0, le=3600.0)
    """Keep reporting a confirmed track at its predicted box for this long after its
    last match (0: report only tracks matched at this update)."""
    fuse_score: bool = False
    """Weight IoU by detection score in the first stage (ByteTrack's MOT17 setting)."""
    observation_recovery: bool = False
    """OC-SORT's observation-centric re-update: on re-association after a gap, re-run
    the filter along a straight line between the last and new observation."""
    confirm_score: float = Field(default=0.9, ge=0.0, le=1.0)
    """Confidence-adaptive birth: a new track whose detection scores at least this is
    confirmed at once (1.0: never; every track then waits ``min_hits``)."""
    direction_weight: float = Field(default=0.2, ge=0.0, le=10.0)
    """OC-SORT's velocity-direction consistency: in the first stage, add this weight x
    the cosine between a moving track's velocity and the direction to the detection
    (IoU still gates; 0: off)."""
    output_box: Literal["detection", "filtered"] = "filtered"
    """Report the matched detection box or the Kalman posterior box."""
    measurement_std: float = Field(default=0.15, gt=0.0, le=10.0)
    """Kalman filter: standard deviation of the detector's box noise, as a fraction of the
    box height (higher trusts detections less and smooths more)."""
    acceleration_std: float = Field(default=0.5, gt=0.0, le=1000.0)
    """Kalman filter: white-noise acceleration of the box centre, in box heights per
    second squared (higher follows changes of pace and direction faster)."""
    size_acceleration_std: float = Field(default=0.1, gt=0.0, le=1000.0)
    """Kalman filter: the same for the box's width and height (people change size slowly)."""
    initial_velocity_std: float = Field(default=1.0, gt=0.0, le=1000.0)
    """Kalman filter: uncertainty of a new track's speed, in box heights per second."""

    @field_validator("*")
    @classmethod
    def _finite(cls, value: object) -> object:
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError("must be a finite number")
        return value

    @model_validator(mode="after")
    def _ordered_thresholds(self) -> TrackerConfig:
        if self.low_score >= self.high_score:
            raise ValueError(
                f"low_score ({self.low_score}) must be below high_score ({self.high_score})"
            )
        if self.new_track_score < self.high_score:
            raise ValueError(
                f"new_track_score ({self.new_track_score}) must be at least "
                f"high_score ({self.high_score}): only high detections start tracks"
            )
        if self.confirm_score < self.new_track_score:
            raise ValueError(
                f"confirm_score ({self.confirm_score}) must be at least "
                f"new_track_score ({self.new_track_score})"
            )
        return self

    def kalman(self) -> ConstantVelocityKalman:
        """The motion model these parameters describe."""
        return ConstantVelocityKalman(
            measurement_std=self.measurement_std,
            acceleration_std=self.acceleration_std,
            size_acceleration_std=self.size_acceleration_std,
            initial_velocity_std=self.initial_velocity_std,
        )


__all__ = ["TrackerConfig", "ValidationError"]
