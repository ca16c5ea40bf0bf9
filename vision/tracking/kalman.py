"""Constant-velocity Kalman filter over many boxes at once, with any time step.

The state of one box is ``[cx, cy, w, h, vcx, vcy, vw, vh]``: centre, size and
their rates in pixels and pixels per SECOND, so the filter is correct at any
frame rate and with dropped or irregular frames. ``mean`` is ``(N, 8)``.

The motion model, the process noise (white-noise acceleration) and the
measurement noise are the same kind for each of the four coordinates and do not
mix them, so the full 8x8 covariance is four independent 2x2 blocks. They are
stored as ``covariance`` of shape ``(N, 3, 4)``: ``[:, 0]`` variance of each
coordinate, ``[:, 1]`` its covariance with its rate, ``[:, 2]`` variance of the
rate. Predict and update are then a few element-wise operations over all boxes
(no matrix inverse), exactly equal to the dense filter (see
:func:`dense_covariance`). Noise scales with box height, as people far from the
camera are small and move few pixels.

Example:
    >>> import numpy as np
    >>> kf = ConstantVelocityKalman()
    >>> mean, cov = kf.initiate(np.array([[100.0, 200.0, 40.0, 100.0]]))
    >>> for step in range(1, 30):        # a box moving +50 px/s in x, seen at 10 fps
    ...     mean, cov = kf.predict(mean, cov, 0.1)
    ...     mean, cov = kf.update(mean, cov, np.array([[100.0 + 5.0 * step, 200.0, 40.0, 100.0]]))
    >>> round(float(mean[0, 4]))
    50
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

Array = npt.NDArray[np.float64]

STATE_DIM = 8


def xyxy_to_cxcywh(xyxy: npt.NDArray[np.floating]) -> Array:
    """Corner boxes ``(N, 4)`` → centre, width, height ``(N, 4)``."""
    out = np.empty((len(xyxy), 4), np.float64)
    out[:, :2] = xyxy[:, :2] + xyxy[:, 2:]
    out[:, :2] *= 0.5
    out[:, 2:] = xyxy[:, 2:] - xyxy[:, :2]
    return out


def cxcywh_to_xyxy(boxes: npt.NDArray[np.floating]) -> Array:
    """Centre, width, height ``(N, >=4)`` → corner boxes ``(N, 4)``."""
    out = np.empty((len(boxes), 4), np.float64)
    half = boxes[:, 2:4] * 0.5
    out[:, :2] = boxes[:, :2] - half
    out[:, 2:] = boxes[:, :2] + half
    return out


def dense_covariance(covariance: Array) -> Array:
    """The ``(N, 8, 8)`` covariance that the ``(N, 3, 4)`` block form stands for."""
    n = len(covariance)
    dense = np.zeros((n, STATE_DIM, STATE_DIM), np.float64)
    i = np.arange(4)
    dense[:, i, i] = covariance[:, 0]
    dense[:, i, i + 4] = covariance[:, 1]
    dense[:, i + 4, i] = covariance[:, 1]
    dense[:, i + 4, i + 4] = covariance[:, 2]
    return dense


@dataclass(frozen=True)
class ConstantVelocityKalman:
    """Noise model of the filter; every standard deviation is a fraction of box height.

    ``measurement_std``: detector box noise (fraction of height).
    ``acceleration_std``: white-noise acceleration of the centre, heights per second squared.
    ``size_acceleration_std``: the same for width and height (people change size slowly).
    ``initial_velocity_std``: uncertainty of a new box's speed, heights per second.
    """

    measurement_std: float = 0.15
    acceleration_std: float = 0.5
    size_acceleration_std: float = 0.1
    initial_velocity_std: float = 1.0

    def __post_init__(self) -> None:
        for name in (
            "measurement_std",
            "acceleration_std",
            "size_acceleration_std",
            "initial_velocity_std",
        ):
            value = getattr(self, name)
            if not (np.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a positive number, got {value}")
        scale = np.array([self.acceleration_std] * 2 + [self.size_acceleration_std] * 2)
        object.__setattr__(self, "_acceleration_var", scale * scale)

    def initiate(self, boxes: Array) -> tuple[Array, Array]:
        """New states from ``(N, 4)`` cx, cy, w, h measurements, velocity zero."""
        n = len(boxes)
        mean = np.zeros((n, STATE_DIM), np.float64)
        mean[:, :4] = boxes
        height2 = (boxes[:, 3] * boxes[:, 3])[:, None]
        covariance = np.zeros((n, 3, 4), np.float64)
        covariance[:, 0] = (2.0 * self.measurement_std) ** 2 * height2
        velocity_var = self.initial_velocity_std**2 * height2
        covariance[:, 2, :2] = velocity_var
        covariance[:, 2, 2:] = 0.01 * velocity_var
        return mean, covariance

    def predict(self, mean: Array, covariance: Array, dt: float) -> tuple[Array, Array]:
        """States ``dt`` seconds later, in place (also returned). ``dt`` may differ each call."""
        if dt <= 0.0 or len(mean) == 0:
            return mean, covariance
        q = (mean[:, 3] * mean[:, 3])[:, None] * self._acceleration_var  # type: ignore[attr-defined]
        mean[:, :4] += dt * mean[:, 4:]
        p_pos, p_cross, p_vel = covariance[:, 0], covariance[:, 1], covariance[:, 2]
        # F P F^T for F = [[1, dt], [0, 1]] per coordinate, then Q of white-noise acceleration.
        p_pos += dt * (2.0 * p_cross + dt * p_vel)
        p_cross += dt * p_vel
        p_pos += q * (dt**3 / 3.0)
        p_cross += q * (dt**2 / 2.0)
        p_vel += q * dt
        return mean, covariance

    def update(self, mean: Array, covariance: Array, measurement: Array) -> tuple[Array, Array]:
        """Posterior states given ``(N, 4)`` cx, cy, w, h measurements (new arrays)."""
        if len(mean) == 0:
            return mean, covariance
        p_pos, p_cross, p_vel = covariance[:, 0], covariance[:, 1], covariance[:, 2]
        measurement_var = (self.measurement_std * measurement[:, 3]) ** 2
        inverse_innovation = 1.0 / (p_pos + measurement_var[:, None])
        gain_pos = p_pos * inverse_innovation
        gain_vel = p_cross * inverse_innovation
        residual = measurement - mean[:, :4]
        new_mean = np.empty_like(mean)
        new_mean[:, :4] = mean[:, :4] + gain_pos * residual
        new_mean[:, 4:] = mean[:, 4:] + gain_vel * residual
        new_covariance = np.empty_like(covariance)
        keep = 1.0 - gain_pos
        new_covariance[:, 0] = keep * p_pos
        new_covariance[:, 1] = keep * p_cross
        new_covariance[:, 2] = p_vel - gain_vel * p_cross
        return new_mean, new_covariance
