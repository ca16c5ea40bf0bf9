"""Shelf interactions: who reached into a shelf, and what was taken or put back.

A shelf zone is a polygon drawn over a shelf face in one camera's image. The
:class:`ShelfMonitor` keeps a reference picture of that face, refreshed (at
most every ``refresh_interval_s``) only while nobody's box overlaps the zone's
reach band (the polygon grown by ``reach_band_px``). Per frame it only checks
box overlap, vectorised. When people have been in the band and it is clear
again, it compares the face after (``confirm_frames`` clear frames, all of
which must agree) with the face before, cell by cell on a ``grid`` over the
rectified face:

* a persistent local change is an ``item_taken``;
* a change that restores a place changed by an earlier take to its pre-take
  look is an ``item_returned`` (``attributes["take_event_id"]`` links it);
* every reaching person also gets one ``shelf_interaction`` per visit, with
  ``attributes["outcome"]`` ``browse`` (no lasting change), ``take``,
  ``return`` or ``take_and_return``.

Lighting changes are absorbed by a robust per-channel gain before comparing;
a change covering more than ``max_changed_fraction`` of the cells (and at least 3) is treated
as global (lights, exposure, camera moved) and never yields a take.

Example:
    >>> import numpy as np
    >>> from storesense.vision.detections import Tracks
    >>> monitor = ShelfMonitor("shelf-1", "cam1", [(10, 10), (90, 10), (90, 50), (10, 50)],
    ...                        ShelfOptions(grid=(2, 4), reach_band_px=5))
    >>> image = np.full((100, 100, 3), 80, np.uint8)
    >>> monitor.update(image, Tracks.empty(timestamp=0.0))
    []
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any, Literal

import cv2
import numpy as np
import numpy.typing as npt
import shapely
from pydantic import ValidationError
from scipy import ndimage
from shapely.geometry import Polygon
from storesense.vision.detections import Tracks
from storesense.zones.config import ShelfZoneOptions
from storesense.zones.events import Event, EventType

if TYPE_CHECKING:
    from storesense.zones.config import StoreLayout

FloatImage = npt.NDArray[np.float32]
BoolArray = npt.NDArray[np.bool_]
ChangeMethod = Literal["gain_diff", "zncc", "mog2"]
CHANGE_METHODS: tuple[ChangeMethod, ...] = ("gain_diff", "zncc", "mog2")


_LAYOUT_FIELDS = (
    "reach_band_px",
    "grid",
    "min_interaction_seconds",
    "max_reach_speed",
    "arm_seconds",
)
_LAYOUT_DEFAULTS: dict[str, Any] = {
    name: ShelfZoneOptions.model_fields[name].default for name in _LAYOUT_FIELDS
}
"""The layout's ``shelf:`` fields are defined once, in :class:`ShelfZoneOptions`."""


def _check_layout_fields(options: ShelfOptions) -> None:
    """``ValueError`` naming the field when a layout field breaks ShelfZoneOptions' limits."""
    values = {name: getattr(options, name) for name in _LAYOUT_FIELDS}
    try:
        ShelfZoneOptions.model_validate(values)
    except ValidationError as exc:
        error = exc.errors()[0]
        name = ".".join(str(part) for part in error["loc"]) or "shelf options"
        message = str(error["msg"]).removeprefix("Value error, ")
        raise ValueError(f"{name}: {message}, got {values.get(name)!r}") from None


@dataclass(frozen=True)
class ShelfOptions:
    """Settings of one shelf zone; every field has a working default.

    ``reach_band_px``, ``grid`` and ``min_interaction_seconds`` match the layout
    file's ``shelf:`` block; the rest are tuning knobs.

    Example:
        >>> ShelfOptions(grid=(3, 6)).cell_count
        18
        >>> ShelfOptions(grid=(0, 2))
        Traceback (most recent call last):
        ...
        ValueError: grid must be [rows, cols] with both ≥ 1, got [0, 2]
    """

    reach_band_px: float = _LAYOUT_DEFAULTS["reach_band_px"]
    """The zone polygon grown by this many pixels is where a box counts as reaching."""
    grid: tuple[int, int] = _LAYOUT_DEFAULTS["grid"]
    """Rows and columns of cells over the shelf face; a take reports its cell."""
    min_interaction_seconds: float = _LAYOUT_DEFAULTS["min_interaction_seconds"]
    """A person must be in the reach band (and slow) this long for a visit to count."""
    max_reach_speed: float | None = _LAYOUT_DEFAULTS["max_reach_speed"]
    """Floor-point speed (box heights per second) above which time in the band does not
    count as reaching (someone walking past); ``None`` disables the check."""
    cell_px: int = 24
    """Side of one cell, in pixels, in the rectified shelf image."""
    confirm_frames: int = 2
    """Clear frames that must all show a change before it is reported."""
    confirm_seconds: float = 0.5
    """...and the shelf must have been clear this long (limbs and shadows leave)."""
    refresh_interval_s: float = 1.0
    reference_alpha: float = 0.5
    """Weight of a new clear frame in the reference (running average)."""
    method: ChangeMethod = "gain_diff"
    pixel_threshold: float = 20.0
    """gain_diff/mog2: a pixel differs when its gain-compensated difference exceeds this."""
    cell_change_fraction: float = 0.12
    """A cell changed when this fraction of its pixels differ (gain_diff, mog2)."""
    zncc_threshold: float = 0.5
    """zncc: a cell changed when 1 − correlation exceeds this."""
    max_changed_fraction: float = 0.5
    """More changed cells than this fraction (and at least 3) is a global change, never a
    take; a grid of 1 or 2 cells cannot tell, so keep at least 4 cells."""
    max_gap_s: float = 1.0
    """Longest time step credited as reaching (covers dropped frames, not outages)."""
    arm_seconds: float = _LAYOUT_DEFAULTS["arm_seconds"]
    """The shelf arms (takes its first reference) only once the reach band has been clear
    this long AND the face has stayed still meanwhile: a camera that starts with shoppers
    in reach (before the tracker confirms them, or missed by the detector while they
    move) waits for a clear view. Visits before that are reported ``unverified``."""

    def __post_init__(self) -> None:
        if len(self.grid) != 2 or min(int(v) for v in self.grid) < 1:
            raise ValueError(f"grid must be [rows, cols] with both ≥ 1, got {list(self.grid)}")
        rows, cols = (int(v) for v in self.grid)
        object.__setattr__(self, "grid", (rows, cols))
        if self.method not in CHANGE_METHODS:
            choices = ", ".join(CHANGE_METHODS)
            raise ValueError(f"method must be one of {choices}, got {self.method!r}")
        _check_layout_fields(self)
        checks: list[tuple[str, bool, str]] = [
            ("cell_px", 4 <= self.cell_px <= 256, "between 4 and 256"),
            ("confirm_frames", self.confirm_frames >= 1, "≥ 1"),
            ("confirm_seconds", self.confirm_seconds >= 0, "≥ 0"),
            ("refresh_interval_s", self.refresh_interval_s >= 0, "≥ 0"),
            ("reference_alpha", 0 < self.reference_alpha <= 1, "in (0, 1]"),
            ("pixel_threshold", self.pixel_threshold > 0, "> 0"),
            ("cell_change_fraction", 0 < self.cell_change_fraction <= 1, "in (0, 1]"),
            ("zncc_threshold", 0 < self.zncc_threshold <= 2, "in (0, 2]"),
            ("max_changed_fraction", 0 < self.max_changed_fraction <= 1, "in (0, 1]"),
            ("max_gap_s", self.max_gap_s > 0, "> 0"),
        ]
        for name, ok, rule in checks:
            value = getattr(self, name)
            if not ok or (isinstance(value, float) and not math.isfinite(value)):
                raise ValueError(f"{name} must be {rule}, got {value!r}")

    @property
    def cell_count(self) -> int:
        return self.grid[0] * self.grid[1]

    @classmethod
    def from_mapping(cls, values: dict[str, Any]) -> ShelfOptions:
        """Build from a dict, ignoring keys that are not fields (a layout's extras)."""
        names = {f.name for f in fields(cls)}
        kwargs = {k: v for k, v in values.items() if k in names}
        if "grid" in kwargs:
            kwargs["grid"] = tuple(kwargs["grid"])
        return cls(**kwargs)


# --------------------------------------------------------------------------- comparison


def _blur(image: FloatImage) -> FloatImage:
    return np.asarray(cv2.GaussianBlur(image, (5, 5), 1.2), np.float32)


def _channel_gain(before: FloatImage, after: FloatImage, mask: BoolArray) -> FloatImage:
    """Per-channel gain after ≈ gain · before, robust to local changes (median ratio)."""
    ratio = (after[mask][::3] + 4.0) / (before[mask][::3] + 4.0)
    return np.asarray(np.median(ratio, axis=0), np.float32)


def _cell_mean(values: npt.NDArray[Any], grid: tuple[int, int]) -> FloatImage:
    rows, cols = grid
    height, width = values.shape[:2]
    cells = values.astype(np.float32).reshape(rows, height // rows, cols, width // cols)
    return np.asarray(cells.mean(axis=(1, 3)), np.float32)


def changed_pixels(
    before: FloatImage, after: FloatImage, mask: BoolArray, threshold: float
) -> BoolArray:
    """Pixels whose gain-compensated colour difference exceeds ``threshold``."""
    gain = _channel_gain(before, after, mask)
    # Compare both ways with the prediction clipped to the sensor's range, so pixels that
    # saturate when the light goes up (or were saturated before it went down) agree; the
    # residuals are then smoothed against noise and compression artefacts.
    forward = _blur(after - np.clip(before * gain, 0.0, 255.0))
    backward = _blur((before - np.clip(after / gain, 0.0, 255.0)) * gain)
    squared = np.minimum(
        np.einsum("ijk,ijk->ij", forward, forward), np.einsum("ijk,ijk->ij", backward, backward)
    )
    changed = ((squared > threshold * threshold) & mask).astype(np.uint8)
    # an opening drops speckles (compression blocks, clipped chroma); a product is a blob
    opened = cv2.morphologyEx(changed, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
    return np.asarray(opened > 0, np.bool_)


def cell_scores(
    before: FloatImage, after: FloatImage, mask: BoolArray, options: ShelfOptions
) -> FloatImage:
    """How much each grid cell changed, by ``options.method``, scaled so that 1.0 is
    the method's threshold (changed at ≥ 1).

    Example:
        >>> import numpy as np
        >>> opts = ShelfOptions(grid=(1, 4), cell_px=16)
        >>> before = np.full((16, 64, 3), 100, np.float32)
        >>> after = before * 1.3  # lights up: not a change
        >>> after[:, 48:] = 10    # last cell emptied: a change
        >>> (cell_scores(before, after, np.ones((16, 64), bool), opts) >= 1).tolist()
        [[False, False, False, True]]
    """
    grid = options.grid
    if options.method == "zncc":
        return np.asarray(
            _zncc_distance(before, after, mask, grid) / options.zncc_threshold, np.float32
        )
    if options.method == "gain_diff":
        pixels = changed_pixels(before, after, mask, options.pixel_threshold)
    else:
        subtractor = cv2.createBackgroundSubtractorMOG2(
            history=2, varThreshold=options.pixel_threshold, detectShadows=False
        )
        before_u8 = np.clip(before, 0, 255).astype(np.uint8)
        for _ in range(3):
            subtractor.apply(before_u8, learningRate=1.0)
        foreground = subtractor.apply(np.clip(after, 0, 255).astype(np.uint8), learningRate=0.0)
        pixels = (foreground > 0) & mask
    mask_share = np.maximum(_cell_mean(mask, grid), 1e-6)
    return np.asarray(
        _cell_mean(pixels, grid) / mask_share / options.cell_change_fraction, np.float32
    )


def cell_changes(
    before: FloatImage, after: FloatImage, mask: BoolArray, options: ShelfOptions
) -> BoolArray:
    """Which grid cells changed (``cell_scores(...) >= 1``)."""
    return np.asarray(cell_scores(before, after, mask, options) >= 1.0, np.bool_)


def _zncc_distance(
    before: FloatImage, after: FloatImage, mask: BoolArray, grid: tuple[int, int]
) -> FloatImage:
    """1 − zero-normalised cross-correlation per cell (gray); flat cells compare means."""
    rows, cols = grid

    def cells(image: FloatImage) -> FloatImage:
        gray = _blur(image).mean(axis=2)
        gray = np.where(mask, gray, 0.0)
        height, width = gray.shape
        return np.asarray(
            gray.reshape(rows, height // rows, cols, width // cols)
            .transpose(0, 2, 1, 3)
            .reshape(rows, cols, -1),
            np.float32,
        )

    b, a = cells(before), cells(after)
    b_c = b - b.mean(axis=2, keepdims=True)
    a_c = a - a.mean(axis=2, keepdims=True)
    b_std, a_std = b_c.std(axis=2), a_c.std(axis=2)
    ncc = (b_c * a_c).mean(axis=2) / np.maximum(b_std * a_std, 1e-6)
    distance = 1.0 - ncc
    flat = (b_std < 4.0) & (a_std < 4.0)
    gain = (np.median(a) + 4.0) / (np.median(b) + 4.0)
    mean_shift = np.abs(a.mean(axis=2) - gain * b.mean(axis=2)) / 32.0
    return np.asarray(np.where(flat, mean_shift, distance), np.float32)


# --------------------------------------------------------------------------- monitor


@dataclass
class _OpenTake:
    event_id: str
    track_id: int
    timestamp: float
    cells: BoolArray
    before: FloatImage


@dataclass
class _Visit:
    started_at: float
    before: FloatImage | None
    last_timestamp: float
    reach_seconds: dict[int, float] = field(default_factory=lambda: defaultdict(float))
    cell_weight: dict[int, FloatImage] = field(default_factory=dict)
    clear_images: list[FloatImage] = field(default_factory=list)
    cleared_at: float | None = None


def _order_quad(points: npt.NDArray[np.float64]) -> npt.NDArray[np.float32]:
    """Top-left, top-right, bottom-right, bottom-left (as the face is seen)."""
    sums, diffs = points.sum(axis=1), points[:, 1] - points[:, 0]
    ordered = [
        points[np.argmin(sums)],
        points[np.argmin(diffs)],
        points[np.argmax(sums)],
        points[np.argmax(diffs)],
    ]
    return np.asarray(ordered, np.float32)


class ShelfMonitor:
    """Watches one shelf zone of one camera and emits shelf events.

    ``polygon`` is the shelf face in image pixels; with 4 corners the face is
    rectified by a homography (corners in any order), otherwise its bounding box
    is used with the polygon as a mask. Call :meth:`update` once per frame with
    the whole image (BGR uint8) and the camera's tracks, and :meth:`finish` at
    the end of the stream so a visit in progress is not lost.
    """

    def __init__(
        self,
        zone_id: str,
        camera_id: str,
        polygon: Sequence[Sequence[float]],
        options: ShelfOptions | None = None,
        *,
        store_id: str = "store",
        run_id: str = "",
        time_origin: float = 0.0,
    ) -> None:
        if not math.isfinite(time_origin):
            raise ValueError(f"time_origin must be finite, got {time_origin}")
        self.zone_id = zone_id
        self.time_origin = float(time_origin)
        """Added to the frame clock in event timestamps (Unix time of frame clock 0)."""
        self.camera_id = camera_id
        self.options = options or ShelfOptions()
        self.store_id = store_id
        self.run_id = run_id
        points = np.asarray(polygon, np.float64)
        if points.ndim != 2 or points.shape[1] != 2 or len(points) < 3:
            raise ValueError(f"shelf {zone_id!r}: polygon needs ≥ 3 [x, y] points")
        shape = Polygon(points)
        if not shape.is_valid or shape.area <= 1.0:
            raise ValueError(f"shelf {zone_id!r}: polygon is invalid or has no area")
        rows, cols = self.options.grid
        cell = self.options.cell_px
        self._size = (cols * cell, rows * cell)
        target = np.asarray(
            [[0, 0], [cols * cell, 0], [cols * cell, rows * cell], [0, rows * cell]], np.float32
        )
        if len(points) == 4:
            source = _order_quad(points)
        else:
            x0, y0, x1, y1 = shape.bounds
            source = np.asarray([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], np.float32)
        self._to_face = cv2.getPerspectiveTransform(source, target)
        face_polygon = cv2.perspectiveTransform(points[None].astype(np.float32), self._to_face)[0]
        mask = np.zeros((rows * cell, cols * cell), np.uint8)
        cv2.fillPoly(mask, [np.round(face_polygon).astype(np.int32)], 1)
        self._mask = (
            np.asarray(mask > 0, np.bool_) if len(points) != 4 else np.ones_like(mask, np.bool_)
        )
        self._band = shapely.buffer(shape, self.options.reach_band_px, join_style="mitre")
        shapely.prepare(self._band)
        self._cell_boxes = self._image_cell_boxes(source, target)
        self._cell_areas = np.maximum(
            (self._cell_boxes[:, 2] - self._cell_boxes[:, 0])
            * (self._cell_boxes[:, 3] - self._cell_boxes[:, 1]),
            1.0,
        )
        self._reference: FloatImage | None = None
        self._arm_face: FloatImage | None = None
        """Before the first reference: the clear face the shelf may arm on, and since when."""
        self._arm_since = math.inf
        self._last_refresh = -math.inf
        self._clear_streak = 0
        self._visit: _Visit | None = None
        self._open_takes: list[_OpenTake] = []
        self._image_shape: tuple[int, ...] | None = None

    def _image_cell_boxes(
        self, source: npt.NDArray[np.float32], target: npt.NDArray[np.float32]
    ) -> npt.NDArray[np.float32]:
        rows, cols = self.options.grid
        cell = self.options.cell_px
        to_image = cv2.getPerspectiveTransform(target, source)
        boxes = np.zeros((rows * cols, 4), np.float32)
        for r in range(rows):
            for c in range(cols):
                corners = (
                    np.asarray([[[c, r], [c + 1, r], [c + 1, r + 1], [c, r + 1]]], np.float32)
                    * cell
                )
                image_pts = cv2.perspectiveTransform(corners, to_image)[0]
                boxes[r * cols + c] = [*image_pts.min(axis=0), *image_pts.max(axis=0)]
        return boxes

    # ------------------------------------------------------------------ public

    @property
    def armed(self) -> bool:
        """True once the shelf holds a reference from a clear, still view."""
        return self._reference is not None

    @property
    def busy(self) -> bool:
        """True while a visit is in progress or being confirmed."""
        return self._visit is not None

    def face(self, image: npt.NDArray[np.uint8]) -> FloatImage:
        """The shelf face cut out of a frame and rectified (float32, cell-aligned)."""
        return np.asarray(
            cv2.warpPerspective(image, self._to_face, self._size, flags=cv2.INTER_AREA),
            np.float32,
        )

    def update(self, frame_image: npt.NDArray[np.uint8], tracks: Tracks) -> list[Event]:
        """Feed one frame; returns the shelf events completed at this frame."""
        self._check_image(frame_image)
        now = float(tracks.timestamp)
        in_band = np.zeros(0, bool)
        if len(tracks):
            # shrunk a hair so a box that only touches the band's edge does not count
            x0, y0, x1, y1 = tracks.xyxy.T
            boxes = shapely.box(x0 + 1e-3, y0 + 1e-3, x1 - 1e-3, y1 - 1e-3)
            in_band = np.asarray(shapely.intersects(boxes, self._band))
        occupied = bool(in_band.any())
        visit = self._visit
        if visit is None:
            if not occupied:
                self._clear_streak += 1
                self._maybe_refresh(frame_image, now)
                return []
            visit = self._visit = _Visit(
                started_at=now,
                before=None if self._reference is None else self._reference.copy(),
                last_timestamp=now,
            )
        if occupied:
            self._clear_streak = 0
            self._arm_face = None
            visit.clear_images.clear()
            visit.cleared_at = None
            self._credit_reach(visit, tracks, in_band, now)
            visit.last_timestamp = now
            return []
        self._clear_streak += 1
        if visit.cleared_at is None:
            visit.cleared_at = now
        visit.clear_images.append(self.face(frame_image))
        del visit.clear_images[: -self.options.confirm_frames]
        if len(visit.clear_images) < self.options.confirm_frames:
            return []
        if now - visit.cleared_at < self.options.confirm_seconds:
            return []
        return self._close_visit(visit)

    def finish(self, timestamp: float) -> list[Event]:
        """End of stream: settle a visit in progress so no interaction is lost.

        With at least one clear frame seen the change is judged on it; otherwise
        each reaching person gets a ``shelf_interaction`` with outcome ``unverified``.
        """
        visit = self._visit
        if visit is None:
            return []
        if visit.cleared_at is None:
            visit.cleared_at = float(timestamp)
        return self._close_visit(visit)

    # ------------------------------------------------------------------ internals

    def _check_image(self, image: npt.NDArray[np.uint8]) -> None:
        if (
            not isinstance(image, np.ndarray)
            or image.dtype != np.uint8
            or image.ndim != 3
            or image.shape[2] != 3
        ):
            shape = getattr(image, "shape", None)
            dtype = getattr(image, "dtype", type(image).__name__)
            raise ValueError(f"frame_image must be an HxWx3 uint8 BGR array, got {shape} {dtype}")
        if self._image_shape is None:
            self._image_shape = image.shape
        elif image.shape != self._image_shape:
            raise ValueError(
                f"shelf {self.zone_id!r}: frame size changed from {self._image_shape[:2]} to "
                f"{image.shape[:2]}; the shelf polygon no longer applies"
            )

    def _arm(self, image: npt.NDArray[np.uint8], now: float) -> None:
        """First reference: only from a view clear of tracks for ``arm_seconds`` that
        did not change meanwhile (a change means someone the tracker misses is there)."""
        current = self.face(image)
        if (
            self._arm_face is None
            or cell_changes(self._arm_face, current, self._mask, self.options).any()
        ):
            self._arm_face, self._arm_since = current, now
            if self.options.arm_seconds > 0:
                return
        if now - self._arm_since >= self.options.arm_seconds:
            self._reference = current
            self._arm_face = None
            self._last_refresh = now

    def _maybe_refresh(self, image: npt.NDArray[np.uint8], now: float) -> None:
        if self._reference is None:
            self._arm(image, now)
            return
        if self._clear_streak < self.options.confirm_frames:
            return
        if now - self._last_refresh < self.options.refresh_interval_s:
            return
        current = self.face(image)
        if self._reference is None:
            self._reference = current
        else:
            alpha = self.options.reference_alpha
            self._reference = np.asarray(
                cv2.addWeighted(self._reference, 1 - alpha, current, alpha, 0.0), np.float32
            )
        self._last_refresh = now

    def _credit_reach(self, visit: _Visit, tracks: Tracks, in_band: BoolArray, now: float) -> None:
        dt = min(max(now - visit.last_timestamp, 0.0), self.options.max_gap_s)
        boxes = tracks.xyxy[in_band]
        ids = tracks.track_id[in_band]
        slow = np.ones(len(boxes), bool)
        if self.options.max_reach_speed is not None:
            heights = np.maximum(boxes[:, 3] - boxes[:, 1], 1.0)
            speed = np.hypot(tracks.velocity[in_band, 0], tracks.velocity[in_band, 1])
            slow = speed / heights <= self.options.max_reach_speed
        cells = self._cell_boxes
        width = np.minimum(boxes[:, None, 2], cells[None, :, 2]) - np.maximum(
            boxes[:, None, 0], cells[None, :, 0]
        )
        height = np.minimum(boxes[:, None, 3], cells[None, :, 3]) - np.maximum(
            boxes[:, None, 1], cells[None, :, 1]
        )
        cover = np.clip(width, 0, None) * np.clip(height, 0, None) / self._cell_areas[None, :]
        for track_id, is_slow, track_cover in zip(ids.tolist(), slow.tolist(), cover, strict=True):
            visit.reach_seconds[track_id] += dt if is_slow else 0.0
            weight = visit.cell_weight.get(track_id)
            step = np.asarray(track_cover * max(dt, 1e-3), np.float32)
            visit.cell_weight[track_id] = step if weight is None else weight + step

    def _close_visit(self, visit: _Visit) -> list[Event]:
        self._visit = None
        ended = visit.cleared_at if visit.cleared_at is not None else visit.last_timestamp
        reachers = {
            tid: secs
            for tid, secs in visit.reach_seconds.items()
            if secs >= self.options.min_interaction_seconds
        }
        after = (
            np.mean(visit.clear_images, axis=0).astype(np.float32) if visit.clear_images else None
        )
        if not reachers:
            if after is not None and self._reference is not None:
                self._reference = after
                self._last_refresh = ended
            return []
        if visit.before is None and after is not None:
            # Not armed yet: the view after the visit is a candidate, held to the arming test.
            self._arm_face, self._arm_since = after, ended
            after_for_reference = None
        else:
            after_for_reference = after
        events: list[Event] = []
        outcomes: dict[int, list[str]] = defaultdict(list)
        global_change = False
        if visit.before is None or after is None:
            for tid in reachers:
                outcomes[tid].append("unverified")
        else:
            change = np.full(self.options.grid, np.inf, np.float32)
            for image in visit.clear_images:
                change = np.minimum(
                    change, cell_scores(visit.before, image, self._mask, self.options)
                )
            changed = change >= 1.0
            if changed.mean() > self.options.max_changed_fraction and changed.sum() >= 3:
                global_change = True
                for tid in reachers:
                    outcomes[tid].append("global_change")
                self._open_takes.clear()
            else:
                events.extend(self._judge_changes(visit, change, after, reachers, ended, outcomes))
        if after_for_reference is not None:
            self._reference = after_for_reference
            self._last_refresh = ended
        for tid, secs in sorted(reachers.items()):
            labels = outcomes.get(tid, [])
            kinds = set(labels)
            if not kinds:
                outcome = "browse"
            elif kinds == {"take", "return"}:
                outcome = "take_and_return"
            else:
                outcome = sorted(kinds)[0]
            attrs: dict[str, Any] = {
                "outcome": outcome,
                "reach_seconds": round(secs, 3),
                "started_at": round(self.time_origin + visit.started_at, 3),
                "takes": labels.count("take"),
                "returns": labels.count("return"),
            }
            if global_change:
                attrs["global_change"] = True
            events.append(self._event(EventType.SHELF_INTERACTION, tid, ended, attrs))
        events.sort(key=lambda e: (e.timestamp, e.type != EventType.SHELF_INTERACTION))
        return events

    def _judge_changes(
        self,
        visit: _Visit,
        change: FloatImage,
        after: FloatImage,
        reachers: dict[int, float],
        ended: float,
        outcomes: dict[int, list[str]],
    ) -> list[Event]:
        assert visit.before is not None
        labels, count = ndimage.label(change >= 1.0, structure=np.ones((3, 3), int))
        events: list[Event] = []
        cols = self.options.grid[1]
        pixels = changed_pixels(visit.before, after, self._mask, self.options.pixel_threshold)
        for label in range(1, count + 1):
            component = np.asarray(labels == label, np.bool_)
            track_id = self._attribute(visit, component, reachers)
            cell_index = self._main_cell(component, pixels)
            attrs: dict[str, Any] = {
                "cell": [cell_index // cols, cell_index % cols],
                "cells": [[int(r), int(c)] for r, c in np.argwhere(component)],
                "box": self._normalised_box(component, pixels),
                "started_at": round(self.time_origin + visit.started_at, 3),
            }
            undone = self._undone_take(component, after, change)
            if undone is not None:
                attrs["take_event_id"] = undone.event_id
                attrs["take_track_id"] = undone.track_id
                self._open_takes.remove(undone)
                events.append(self._event(EventType.ITEM_RETURNED, track_id, ended, attrs))
                outcomes[track_id].append("return")
            else:
                event = self._event(EventType.ITEM_TAKEN, track_id, ended, attrs)
                self._open_takes.append(
                    _OpenTake(event.event_id, track_id, ended, component, visit.before)
                )
                del self._open_takes[:-64]
                events.append(event)
                outcomes[track_id].append("take")
        return events

    def _undone_take(
        self, component: BoolArray, after: FloatImage, change: FloatImage
    ) -> _OpenTake | None:
        """The open take whose place this change restores to its pre-take look, if any.

        Restored means unchanged against the pre-take image, or (real scenes drift)
        at most twice the threshold and far closer to it than to the look just before.
        """
        for take in reversed(self._open_takes):
            if not (take.cells & component).any():
                continue
            versus_pre_take = cell_scores(take.before, after, self._mask, self.options)[take.cells]
            versus_before = change[take.cells]
            if versus_pre_take.max() < 1.0 or (
                versus_pre_take.max() < 2.0 and versus_pre_take.mean() < 0.5 * versus_before.mean()
            ):
                return take
        return None

    def _attribute(self, visit: _Visit, component: BoolArray, reachers: dict[int, float]) -> int:
        flat = component.reshape(-1)
        scores = {
            tid: float(visit.cell_weight[tid][flat].sum()) if tid in visit.cell_weight else 0.0
            for tid in reachers
        }
        return max(reachers, key=lambda tid: (scores[tid], reachers[tid], -tid))

    def _main_cell(self, component: BoolArray, pixels: BoolArray) -> int:
        share = _cell_mean(pixels, self.options.grid) * component
        if share.max() <= 0:
            return int(np.flatnonzero(component.reshape(-1))[0])
        return int(np.argmax(share))

    def _normalised_box(self, component: BoolArray, pixels: BoolArray) -> list[float]:
        cell = self.options.cell_px
        in_component = np.kron(component, np.ones((cell, cell), bool)) & pixels
        height, width = pixels.shape
        if not in_component.any():
            rows_idx, cols_idx = np.nonzero(component)
            y0, y1 = rows_idx.min() * cell, (rows_idx.max() + 1) * cell
            x0, x1 = cols_idx.min() * cell, (cols_idx.max() + 1) * cell
        else:
            ys, xs = np.nonzero(in_component)
            y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
        return [
            round(float(x0) / width, 4),
            round(float(y0) / height, 4),
            round(float(x1) / width, 4),
            round(float(y1) / height, 4),
        ]

    def _event(
        self, kind: EventType, track_id: int, timestamp: float, attrs: dict[str, Any]
    ) -> Event:
        return Event.create(
            kind,
            self.store_id,
            self.camera_id,
            self.zone_id,
            track_id,
            self.time_origin + timestamp,
            attrs,
            run_id=self.run_id,
        )


# --------------------------------------------------------------------------- engine


class ShelfEngine:
    """All shelf zones of one camera: one :meth:`update` per frame for all of them.

    Example:
        >>> import numpy as np
        >>> from storesense.vision.detections import Tracks
        >>> engine = ShelfEngine("cam1", [ShelfMonitor("a", "cam1", [(0, 0), (40, 0), (40, 20),
        ...                                                          (0, 20)])])
        >>> engine.update(np.zeros((60, 60, 3), np.uint8), Tracks.empty(timestamp=0.0))
        []
    """

    def __init__(self, camera_id: str, monitors: Iterable[ShelfMonitor]) -> None:
        self.camera_id = camera_id
        self.monitors = list(monitors)
        for monitor in self.monitors:
            if monitor.camera_id != camera_id:
                raise ValueError(
                    f"shelf {monitor.zone_id!r} belongs to camera "
                    f"{monitor.camera_id!r}, not {camera_id!r}"
                )

    @classmethod
    def from_layout(
        cls,
        layout: StoreLayout,
        camera_id: str,
        *,
        run_id: str = "",
        time_origin: float = 0.0,
    ) -> ShelfEngine:
        """Monitors for every ``kind: shelf`` zone of ``camera_id`` in a store layout.

        ``time_origin`` (Unix seconds of frame clock 0) is added to event timestamps,
        as :class:`~storesense.zones.engine.ZoneEngine` does.
        """
        monitors = []
        for zone in layout.zones_of(camera_id):
            if str(zone.kind) != "shelf":
                continue
            extra = zone.shelf.model_dump() if zone.shelf is not None else {}
            options = ShelfOptions.from_mapping(extra)
            polygon = np.asarray(layout.image_polygon(zone), np.float64).tolist()
            monitors.append(
                ShelfMonitor(
                    zone.id,
                    camera_id,
                    polygon,
                    options,
                    store_id=layout.store.id,
                    run_id=run_id,
                    time_origin=time_origin,
                )
            )
        return cls(camera_id, monitors)

    def update(self, frame_image: npt.NDArray[np.uint8], tracks: Tracks) -> list[Event]:
        events: list[Event] = []
        for monitor in self.monitors:
            events.extend(monitor.update(frame_image, tracks))
        return events

    def finish(self, timestamp: float) -> list[Event]:
        events: list[Event] = []
        for monitor in self.monitors:
            events.extend(monitor.finish(timestamp))
        return events


# --------------------------------------------------------------------------- metrics


@dataclass(frozen=True)
class ShelfMetrics:
    """Shelf activity of one zone in one time bucket."""

    zone_id: str
    bucket_start: float
    interactions: int
    takes: int
    put_backs: int

    @property
    def take_rate(self) -> float | None:
        """Takes per interaction (``None`` without interactions)."""
        return self.takes / self.interactions if self.interactions else None

    @property
    def put_back_rate(self) -> float | None:
        """Put-backs per take (``None`` without takes)."""
        return self.put_backs / self.takes if self.takes else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "zone_id": self.zone_id,
            "bucket_start": self.bucket_start,
            "interactions": self.interactions,
            "takes": self.takes,
            "put_backs": self.put_backs,
            "take_rate": self.take_rate,
            "put_back_rate": self.put_back_rate,
        }


def shelf_metrics(
    events: Iterable[Event],
    bucket_seconds: float = 3600.0,
    *,
    zone_ids: Iterable[str] | None = None,
    origin: float = 0.0,
) -> list[ShelfMetrics]:
    """Interactions, takes, put-backs and their rates per shelf zone and time bucket.

    Buckets are ``[origin + k·bucket_seconds, origin + (k+1)·bucket_seconds)``;
    only buckets with shelf events appear, plus (with ``zone_ids``) nothing for
    other zones. Non-shelf events are ignored. Sorted by zone, then bucket.

    Example:
        >>> from storesense.zones.events import Event, EventType
        >>> evs = [Event.create(EventType.SHELF_INTERACTION, "s", "c", "sh", 1, 10.0),
        ...        Event.create(EventType.SHELF_INTERACTION, "s", "c", "sh", 2, 20.0),
        ...        Event.create(EventType.ITEM_TAKEN, "s", "c", "sh", 1, 10.0)]
        >>> m = shelf_metrics(evs, 60.0)[0]
        >>> m.interactions, m.takes, m.take_rate, m.put_back_rate
        (2, 1, 0.5, 0.0)
    """
    if not bucket_seconds > 0 or not math.isfinite(bucket_seconds):
        raise ValueError(f"bucket_seconds must be a positive number, got {bucket_seconds!r}")
    wanted = None if zone_ids is None else set(zone_ids)
    counts: dict[tuple[str, float], list[int]] = defaultdict(lambda: [0, 0, 0])
    slot = {EventType.SHELF_INTERACTION: 0, EventType.ITEM_TAKEN: 1, EventType.ITEM_RETURNED: 2}
    for event in events:
        index = slot.get(event.type)
        if index is None or (wanted is not None and event.target not in wanted):
            continue
        bucket = origin + math.floor((event.timestamp - origin) / bucket_seconds) * bucket_seconds
        counts[(event.target, bucket)][index] += 1
    ordered = sorted(counts.items())
    return [ShelfMetrics(zone, bucket, *values) for (zone, bucket), values in ordered]
