"""Motion gate: cheap motion detection on a small grey copy of each frame, as Frigate does.

Hand-written on the per-frame hot path (OpenCV primitives on a 1/8-scale image, 0.12 ms
a frame on 768x576, best of repeats); ``cv2.createBackgroundSubtractorMOG2`` on the same
small image took 0.23 ms and has no brightness normalisation: lights 30 % brighter
made 99.6 % of its pixels foreground (measured side by side on PETS09 frames).

Per frame, :class:`MotionDetector`:

1. shrinks the frame by ``scale`` (bilinear), converts it to grey and blurs it;
2. normalises its brightness to the background's (one gain, the ratio of means),
   so that a light turned on or an auto-exposure step changes nothing;
3. compares it with a running-average background; a pixel moved when it differs by
   more than ``max(min_threshold, noise_factor * noise)``, where ``noise`` follows the
   scene's own sensor / compression noise (from the mean absolute difference of the
   pixels that did not change);
4. returns the moving regions (connected components of at least ``min_area``) in
   frame pixels.

:class:`MotionGate` decides, per frame, whether the detector has to run; see
:class:`MotionConfig` for the rules.

Example:
    >>> import numpy as np
    >>> still = np.full((240, 320, 3), 90, np.uint8)
    >>> motion = MotionDetector(MotionConfig())
    >>> [motion.update(still).moving for _ in range(3)]   # the first frame is unknown
    [True, False, False]
    >>> lit = (still * 1.4).astype(np.uint8)               # lights on: no motion
    >>> motion.update(lit).moving
    False
    >>> person = still.copy(); person[80:200, 100:140] = 20
    >>> result = motion.update(person)
    >>> result.moving, result.regions.round(-1).tolist()
    (True, [[100.0, 70.0, 140.0, 210.0]])
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field, field_validator

_SIGMA_FROM_MEAN_ABS = math.sqrt(math.pi / 2)
_EMPTY_REGIONS = np.zeros((0, 4), np.float32)
_BLACK, _DARKEST, _BLOWN, _WHITE = (0, 0, 0), (6, 6, 6), (249, 249, 249), (255, 255, 255)
_NEIGHBOURS = np.ones((3, 3), np.uint8)
_SMALL_GAIN = 0.03
"""A gain closer to 1 moves no pixel by 8 grey levels: below ``min_threshold``'s default."""


class MotionConfig(BaseModel):
    """A camera's motion gate (``motion:`` in the layout's camera block).

    With ``enabled`` the detector runs on a frame only when one of these holds:
    something moved; motion ended less than ``hold_seconds`` ago; the tracker is not
    settled (a tentative track waits for confirmation, or a confirmed one was missed
    at the last detection); or ``refresh_seconds`` passed since the last detection,
    so that people standing still stay detected and counted (``empty_refresh_seconds``
    while nobody is tracked: nobody stands still in an empty scene, and whoever comes
    in moves). Other frames reuse the last detection's tracks (nobody moved).

    Example:
        >>> MotionConfig(refresh_seconds=2).refresh_seconds
        2.0
        >>> try:
        ...     MotionConfig(scale=0)
        ... except ValueError as error:
        ...     print("greater than or equal to 1" in str(error))
        True
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    enabled: bool = True
    """Gate the detector on motion (off: every frame is detected)."""
    refresh_seconds: float = Field(default=1.0, gt=0.0, le=60.0)
    """Longest time between two detections without motion while people are tracked
    (people standing still)."""
    empty_refresh_seconds: float = Field(default=5.0, gt=0.0, le=600.0)
    """Longest time between two detections without motion while nobody is tracked
    (a safety net for someone the motion detector missed)."""
    hold_seconds: float = Field(default=0.5, ge=0.0, le=60.0)
    """Keep detecting this long after the last motion (people stopping, leaving)."""
    scale: int = Field(default=8, ge=1, le=32)
    """The motion image is the frame shrunk by this factor (8: 768x576 → 96x72)."""
    min_threshold: float = Field(default=10.0, gt=0.0, le=255.0)
    """Smallest grey-level difference (0-255) that counts as motion."""
    noise_factor: float = Field(default=4.0, gt=0.0, le=100.0)
    """The threshold rises to this many noise standard deviations on a noisy camera."""
    min_area: float = Field(default=0.0005, ge=0.0, le=1.0)
    """Smallest moving region, as a fraction of the frame (0.0005: 220 px of 768x576)."""
    background_alpha: float = Field(default=0.05, gt=0.0, le=1.0)
    """Weight of each frame in the running background (0.05: about 20 frames)."""
    max_changed_fraction: float = Field(default=0.6, gt=0.0, le=1.0)
    """More of the frame than this changed at once (camera moved, lighting the
    normalisation cannot undo): the background restarts from this frame."""

    region_input_sizes: tuple[int, ...] = ()
    """Region detection, as Frigate does (off by default; ``[256, 320]`` turns it on):
    when motion and the tracked people fit in a square this many network pixels wide at
    the full frame's scale, the detector runs on that crop with a model of this input
    size (the smallest that fits) instead of the whole frame. The whole frame is still
    detected at least every ``refresh_seconds`` (``empty_refresh_seconds`` while nobody
    is tracked) and while the tracker is not settled."""
    region_margin: float = Field(default=0.5, ge=0.0, le=4.0)
    """Margin around each moving region and tracked box, in box heights."""

    @field_validator("*")
    @classmethod
    def _finite(cls, value: object) -> object:
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError("must be a finite number")
        return value

    @field_validator("region_input_sizes")
    @classmethod
    def _multiples_of_32(cls, sizes: tuple[int, ...]) -> tuple[int, ...]:
        if any(size < 32 or size % 32 for size in sizes):
            raise ValueError(f"region input sizes must be multiples of 32 (>= 32), got {sizes}")
        return tuple(sorted(set(sizes)))


@dataclass(frozen=True)
class Motion:
    """What moved in one frame."""

    moving: bool
    """Something moved (or the detector cannot tell yet: first frame, restart)."""
    regions: npt.NDArray[np.float32]
    """xyxy boxes of the moving regions, frame pixels, shape (N, 4)."""
    changed_fraction: float
    """Fraction of the frame's pixels that changed."""
    threshold: float
    """Grey-level difference used as the threshold for this frame."""


class MotionDetector:
    """Running-background motion detection on a small grey image; one per camera.

    Not thread-safe: feed it one camera's frames in order.
    """

    def __init__(self, config: MotionConfig | None = None) -> None:
        self.config = config or MotionConfig()
        self._background: npt.NDArray[np.float32] | None = None
        self._noise = 0.0
        self._shape: tuple[int, int] | None = None

    def reset(self) -> None:
        """Forget the background: the next frame starts a new one (and counts as motion)."""
        self._background = None
        self._noise = 0.0

    def small_grey(
        self, image: npt.NDArray[np.uint8]
    ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.uint8]]:
        """The frame shrunk by ``scale``: grey and blurred (float32), and in colour."""
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"expected an HxWx3 uint8 BGR image, got {image.shape} {image.dtype}")
        height, width = image.shape[:2]
        scale = self.config.scale
        size = (max(1, width // scale), max(1, height // scale))
        small = cv2.resize(image, size, interpolation=cv2.INTER_LINEAR)
        grey = cv2.cvtColor(small, cv2.COLOR_BGR2GRAY)
        return cv2.GaussianBlur(grey, (3, 3), 0).astype(np.float32), np.asarray(small, np.uint8)

    def update(self, image: npt.NDArray[np.uint8]) -> Motion:
        """Compare one frame with the background, then learn it into the background."""
        grey, small = self.small_grey(image)
        frame_shape = (int(image.shape[0]), int(image.shape[1]))
        background = self._background
        if background is None or background.shape != grey.shape or self._shape != frame_shape:
            self._background = grey
            self._shape = frame_shape
            self._noise = 0.0
            return Motion(True, _EMPTY_REGIONS, 1.0, self.config.min_threshold)
        config = self.config
        # One gain for the whole frame: lights and auto-exposure scale every pixel alike.
        level = cv2.mean(grey)[0]
        gain = cv2.mean(background)[0] / level if level >= 1.0 else 1.0
        valid: npt.NDArray[np.uint8] | None = None
        if abs(gain - 1.0) >= _SMALL_GAIN:
            # A real lighting change: a pixel with a clipped channel (black, blown out)
            # keeps no brightness ratio, so the gain comes from the others, and those
            # clipped in the change's direction are left out (grown by the blur's reach).
            # A dark coat under unchanged light still counts.
            not_blown = cv2.inRange(small, _BLACK, _BLOWN)
            not_black = cv2.inRange(small, _DARKEST, _WHITE)
            unclipped = cv2.bitwise_and(not_blown, not_black)
            level = cv2.mean(grey, mask=unclipped)[0]
            gain = cv2.mean(background, mask=unclipped)[0] / level if level >= 1.0 else 1.0
            if abs(gain - 1.0) >= _SMALL_GAIN:
                clipped_ok = not_blown if gain < 1.0 else not_black
                valid = np.asarray(cv2.erode(clipped_ok, _NEIGHBOURS), np.uint8)
        normalised = grey * np.float32(gain)
        difference = cv2.absdiff(normalised, background)
        threshold = max(config.min_threshold, config.noise_factor * self._noise)
        mask = np.asarray(cv2.compare(difference, threshold, cv2.CMP_GT), np.uint8)  # type: ignore[call-overload]
        if valid is not None:
            mask = np.asarray(cv2.bitwise_and(mask, valid), np.uint8)
        changed_pixels = cv2.countNonZero(mask)
        changed = changed_pixels / mask.size
        # Noise: mean absolute difference of the unchanged pixels (x sqrt(pi/2) for sigma).
        still = cv2.bitwise_not(mask) if valid is None else cv2.bitwise_and(valid, ~mask)
        noise = _SIGMA_FROM_MEAN_ABS * cv2.mean(difference, mask=still)[0]
        self._noise = noise if self._noise == 0.0 else 0.9 * self._noise + 0.1 * noise
        if changed > config.max_changed_fraction:
            self._background = normalised
            return Motion(True, _EMPTY_REGIONS, changed, threshold)
        cv2.accumulateWeighted(normalised, background, config.background_alpha, mask=valid)
        if changed_pixels < max(1.0, config.min_area * mask.size):
            return Motion(False, _EMPTY_REGIONS, changed, threshold)
        regions = self._regions(mask)
        return Motion(len(regions) > 0, regions, changed, threshold)

    def _regions(self, mask: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
        count, _, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
        if count <= 1:
            return _EMPTY_REGIONS
        stats = stats[1:]
        min_pixels = max(1.0, self.config.min_area * mask.size)
        big = stats[stats[:, cv2.CC_STAT_AREA] >= min_pixels]
        if len(big) == 0:
            return _EMPTY_REGIONS
        assert self._shape is not None
        fy = self._shape[0] / mask.shape[0]
        fx = self._shape[1] / mask.shape[1]
        x, y = big[:, cv2.CC_STAT_LEFT], big[:, cv2.CC_STAT_TOP]
        w, h = big[:, cv2.CC_STAT_WIDTH], big[:, cv2.CC_STAT_HEIGHT]
        return np.stack([x * fx, y * fy, (x + w) * fx, (y + h) * fy], axis=1).astype(np.float32)


class MotionGate:
    """Decides per frame whether the detector runs (see :class:`MotionConfig`).

    Example:
        >>> gate = MotionGate(MotionConfig(refresh_seconds=1.0, hold_seconds=0.0))
        >>> gate.should_detect(moving=True, timestamp=0.0, settled=True)
        True
        >>> gate.detected(0.0)
        >>> [gate.should_detect(moving=False, timestamp=t, settled=True) for t in (0.5, 1.0)]
        [False, True]
        >>> gate.should_detect(moving=False, timestamp=0.6, settled=False)   # tracker unsettled
        True
        >>> gate.should_detect(moving=False, timestamp=1.0, settled=True, tracked=0)  # empty
        False
    """

    def __init__(self, config: MotionConfig, *, phase: float = 0.0) -> None:
        self.config = config
        self.phase = phase
        """Fraction of ``refresh_seconds`` by which the first refresh comes early: cameras
        started together then do not all ask for a detection on the same frame."""
        self._last_detection: float | None = None
        self._last_motion: float | None = None

    def should_detect(
        self, *, moving: bool, timestamp: float, settled: bool, tracked: int = 1
    ) -> bool:
        """Whether the detector runs on this frame; ``tracked``: people tracked now."""
        if moving:
            self._last_motion = timestamp
        if not self.config.enabled or moving or not settled or self._last_detection is None:
            return True
        if (
            self._last_motion is not None
            and timestamp - self._last_motion < self.config.hold_seconds
        ):
            return True
        # A clock that went backwards (a restarted stream) detects at once.
        elapsed = timestamp - self._last_detection
        refresh = self.config.refresh_seconds if tracked else self.config.empty_refresh_seconds
        return elapsed >= refresh - 1e-6 or elapsed < 0

    def detected(self, timestamp: float) -> None:
        """The detector ran on the frame at ``timestamp``."""
        if self._last_detection is None:
            timestamp -= min(max(self.phase, 0.0), 1.0) * self.config.refresh_seconds
        self._last_detection = timestamp


def detection_region(
    boxes: npt.NDArray[np.float32],
    frame_shape: tuple[int, int],
    full_scale: float,
    sizes: tuple[int, ...],
    margin: float = 0.5,
) -> tuple[tuple[int, int, int, int], int] | None:
    """The crop to detect on and its model input size, or ``None`` for the whole frame.

    ``boxes`` (xyxy, frame pixels) are where people may be: moving regions and the
    tracker's boxes, each grown by ``margin`` box heights. The crop is a square of
    ``size / full_scale`` frame pixels (clipped to the frame) for the smallest ``size``
    whose square holds all of them, centred on them: the network then sees people at
    the same scale as on the whole frame (``full_scale``: network pixels per frame pixel
    there), so it finds the same people, for the cost of a ``size``-pixel input.

    Example:
        >>> import numpy as np
        >>> person = np.array([[300, 200, 340, 300]], np.float32)
        >>> detection_region(person, (576, 768), 416 / 768, (256, 320))
        ((84, 14, 556, 486), 256)
        >>> spread = np.array([[10, 10, 50, 100], [700, 400, 740, 500]], np.float32)
        >>> detection_region(spread, (576, 768), 416 / 768, (256, 320)) is None
        True
    """
    height, width = frame_shape
    if len(boxes) == 0 or not sizes or full_scale <= 0:
        return None
    grow = margin * (boxes[:, 3] - boxes[:, 1])
    x0 = max(0.0, float((boxes[:, 0] - grow).min()))
    y0 = max(0.0, float((boxes[:, 1] - grow).min()))
    x1 = min(float(width), float((boxes[:, 2] + grow).max()))
    y1 = min(float(height), float((boxes[:, 3] + grow).max()))
    if x1 <= x0 or y1 <= y0:
        return None
    for size in sizes:
        side = size / full_scale
        if side >= width and side >= height:
            return None  # the crop would be the whole frame: no saving
        if x1 - x0 > side or y1 - y0 > side:
            continue
        crop_w, crop_h = min(width, math.floor(side)), min(height, math.floor(side))
        left = min(max(0, round((x0 + x1 - crop_w) / 2)), width - crop_w)
        top = min(max(0, round((y0 + y1 - crop_h) / 2)), height - crop_h)
        return (left, top, left + crop_w, top + crop_h), size
    return None
