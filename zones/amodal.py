"""Occlusion-aware ("amodal") boxes: where the feet are when the legs are hidden.

Hand-written, not a library: it runs on every frame before the zone engine (a few
microseconds a track; ``benchmarks/amodal.py`` times it).

A person walking behind someone closer to the camera (or behind a shelf) keeps their
head in view while the detector's box ends at the visible knees: the box's bottom, the
feet point every zone and line uses, jumps up by a third of a person and back, though
the person never moved. :class:`AmodalBoxes` puts such a box's bottom back at
``top + full height`` when

* the box is suddenly shorter than the track's full height, by more than ``min_shrink``
  of it, and shorter than every box of the track in the last ``smooth_seconds`` it was
  seen (a person walking away shrinks slowly);
* the shortening is at the bottom: the feet rose against where their own recent motion
  puts them, while the top is where the track's motion puts it (within half the
  shortening; within all of it when the feet point lies inside another, closer
  person's box);
* the track has been seen whole for ``warmup`` frames over ``warmup_seconds`` and looks
  like one upright person (its full height 0.75-1.33 x the camera's usual height at its
  row), and at least 40 % of it is still in view.

A closer person who walks across the legs covers them over several frames, so the box
shrinks gradually and none of its frames is sudden. Such a box is cut too when its feet
point lies inside the closer person's box and, against the track's last sightings clear
of every other box (its *recent height*), its top is where the track's motion puts it,
its width is the same (within ``min_shrink``), its feet rose against their speed then, and
it is shorter by more than three quarters of ``min_shrink`` (the level that keeps a cut box
cut); the recent height must agree with the track's full height within half of
``min_shrink`` (a recent box that held two people is no person's height). Its bottom is
put back at ``top + recent height`` (scaled by the perspective) while the cut lasts.

The full height is the track's median, over its unoccluded frames, of its box height
divided by the camera's usual height at that frame's feet row: a line fitted online to
every unoccluded box of the camera (on a flat floor a person's height in pixels grows
linearly with the row of their feet). The corrected bottom is where that scaled height
meets the observed top, so it holds at any scale and as people walk towards or away from
the camera. Until the camera's boxes span enough rows for a line, the track's median
height of the last second is used as it is.

Legs hidden behind an object (a shelf end, a counter, a sign) have no closer box to tell:
the camera's ``occluders`` (image polygons, ``cameras[].occluders``) stand in for it. A box
whose legs meet one (the middle half of its bottom edge inside the polygon, or the polygon
within ``_OCCLUDER_REACH`` of the box's height below it) is treated as behind a closer
person by both rules above, and is no clear sighting. With no occluders nothing changes.

A box that shrinks from the top (someone crouching, a head hidden) is left as it is. Once
cut, a box stays corrected while it is shorter by three quarters of ``min_shrink``
(hysteresis), for at most ``max_seconds`` at a stretch; then the observed box is the
truth again (someone who sat down).

Example:
    >>> import numpy as np
    >>> from storesense.vision.detections import Tracks
    >>> amodal = AmodalBoxes()
    >>> def frame(t, bottom):
    ...     box = np.array([[100.0, 50.0, 140.0, bottom]])
    ...     return Tracks(box, np.ones(1), np.array([3]), np.zeros((1, 2)), timestamp=t)
    >>> {float(amodal.update(frame(k / 10, 170.0)).xyxy[0, 3]) for k in range(12)}
    {170.0}
    >>> float(amodal.update(frame(1.2, 120.0)).xyxy[0, 3])   # legs hidden: feet kept
    170.0
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import numpy.typing as npt
import shapely
from storesense.vision.detections import Tracks
from storesense.zones.config import check_polygon

FloatArray = npt.NDArray[np.float64]
_PLAUSIBLE = (0.75, 1.33)
"""A track's height over the camera's usual height at its row: outside this, the box is
not one whole upright person (two people in one box, a child, someone sitting) and is
never corrected."""
_MIN_VISIBLE = 0.4
"""Less than this fraction of a person in view: too little to place the rest."""
_RATIO_EVERY = 8
"""Recompute a track's median height once this fraction (1/8) of its frames is new."""
_RECENT = 3
"""Sightings clear of other boxes whose median height is a track's recent height."""
_OCCLUDER_REACH = 0.1
"""A box's legs meet an occluder that starts within this fraction of the box's height
below its bottom (the detector's box ends a few pixels above the object hiding the rest)."""


@dataclass(slots=True)
class _Track:
    top: float
    top_velocity: float
    seen: float
    full_seen: float
    """Time and feet row of the last sighting at full height, and the feet's speed."""
    full_bottom: float
    bottom_velocity: float
    heights: deque[tuple[float, float, float]]
    """Unoccluded frames: (time, feet row, height)."""
    ratio: float = math.nan
    """Median height over the camera's perspective line (recomputed every few frames)."""
    appended: int = 0
    version: int = -1
    hidden_since: float = math.nan
    clear: deque[tuple[float, float, float, float, float]] = field(
        default_factory=lambda: deque(maxlen=_RECENT)
    )
    """The last sightings whose feet point lay inside no other box: (time, height, feet
    row, width, feet speed)."""
    cut_behind: bool = False
    """Cut while behind a closer person: the cut keeps the recent height, not the full."""


@dataclass
class _Perspective:
    """Box height against the row of the feet over every unoccluded box of the camera:
    on a flat floor an upright person's height in pixels grows linearly with that row."""

    n: float = 0.0
    sy: float = 0.0
    sh: float = 0.0
    syy: float = 0.0
    syh: float = 0.0

    fitted_at: float = 0.0
    version: int = 0
    """Bumped at each refit: ratios measured against an older line are stale."""
    _line: tuple[float, float] = (0.0, 1.0)

    def current(self) -> tuple[float, float]:
        """The line, refitted only when the boxes seen since the last fit are as many as
        before it (or 500): a line that holds still keeps every track's ratio valid."""
        if self.n >= 20 and (self.n >= 2 * self.fitted_at or self.n - self.fitted_at >= 500):
            self.fitted_at = self.n
            line = self.line()
            if line != self._line:
                self._line = line
                self.version += 1
        return self._line

    def add(self, bottom: float, height: float) -> None:
        self.n += 1.0
        self.sy += bottom
        self.sh += height
        self.syy += bottom * bottom
        self.syh += bottom * height

    def line(self) -> tuple[float, float]:
        """(slope, intercept) of height = slope x row + intercept; (0, 1) until the boxes
        span enough rows to say, or when they say something no camera gives."""
        if self.n < 20:
            return 0.0, 1.0
        mean_y, mean_h = self.sy / self.n, self.sh / self.n
        var_y = self.syy / self.n - mean_y * mean_y
        if var_y < (0.5 * mean_h) ** 2:
            return 0.0, 1.0
        slope = (self.syh / self.n - mean_y * mean_h) / var_y
        if not 0.0 < slope < 1.0:
            return 0.0, 1.0
        return slope, mean_h - slope * mean_y


@dataclass
class AmodalBoxes:
    """Per-camera state: call :meth:`update` with every frame's tracks, in time order."""

    min_shrink: float = 0.15
    """A box counts as cut at the bottom when it is shorter than the track's height by
    more than this fraction of it."""
    smooth_seconds: float = 0.5
    """A cut is sudden: shorter than every unoccluded height of this last while (also the
    time constant of each track's top speed)."""
    warmup: int = 3
    """Unoccluded frames a track needs before its height is trusted..."""
    warmup_seconds: float = 1.0
    """... over at least this long (a box that held two people for a few frames is no
    person's height)."""
    max_seconds: float = 3.0
    """Longest uninterrupted correction; after it the observed box is believed."""
    forget_seconds: float = 10.0
    """A track unseen this long is forgotten."""
    occluders: Sequence[npt.ArrayLike] = ()
    """The camera's static occluders (``cameras[].occluders``): image polygons of objects
    in front of the floor (a shelf end, a counter, a sign). A box whose legs meet one is
    treated as behind a closer person."""
    _tracks: dict[int, _Track] = field(default_factory=dict, repr=False)
    _occluders: list[_Occluder] = field(default_factory=list, repr=False)
    _perspective: _Perspective = field(default_factory=_Perspective, repr=False)
    _next_forget: float = field(default=-math.inf, repr=False)

    def __post_init__(self) -> None:
        for name in ("min_shrink", "smooth_seconds", "max_seconds", "forget_seconds"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a finite number > 0, got {value}")
        if not (math.isfinite(self.warmup_seconds) and self.warmup_seconds >= 0):
            raise ValueError(
                f"warmup_seconds must be a finite number >= 0, got {self.warmup_seconds}"
            )
        if not 0 < self.min_shrink < 1:
            raise ValueError(f"min_shrink must be between 0 and 1, got {self.min_shrink}")
        if self.warmup < 1:
            raise ValueError(f"warmup must be at least 1, got {self.warmup}")
        self._occluders = [
            _Occluder(polygon, index) for index, polygon in enumerate(self.occluders)
        ]

    def update(self, tracks: Tracks) -> Tracks:
        """These tracks with the bottom of every box whose legs are hidden put back where
        the feet are (same object when nothing changes)."""
        now = float(tracks.timestamp)
        for track_id in tracks.lost_ids.tolist():
            self._tracks.pop(int(track_id), None)
        if now >= self._next_forget:
            self._next_forget = now + 1.0
            self._forget(now)
        n = len(tracks.track_id)
        if n == 0:
            return tracks
        boxes = tracks.xyxy.astype(np.float64)
        tops, bottoms = boxes[:, 1].tolist(), boxes[:, 3].tolist()
        slope, intercept = self._perspective.current()
        version = self._perspective.version
        corrected: dict[int, float] = {}
        behind_rows = _behind(boxes)
        if self._occluders:
            behind_rows |= np.array(
                [any(o.meets_legs(box) for o in self._occluders) for box in boxes.tolist()],
                np.bool_,
            ).reshape(-1)
        for row, track_id in enumerate(tracks.track_id.tolist()):
            state = self._tracks.get(track_id)
            y, b = tops[row], bottoms[row]
            h = b - y
            if state is None:
                self._tracks[track_id] = _Track(
                    y, 0.0, now, now, b, 0.0, deque([(now, b, h)], maxlen=64)
                )
                continue
            dt = max(now - state.seen, 0.0)
            if (
                state.appended * _RATIO_EVERY >= len(state.heights)
                or state.version != version
                or math.isnan(state.ratio)
            ):
                state.ratio = _ratio(state.heights, slope, intercept, self.smooth_seconds)
                state.appended, state.version = 0, version
            hiding = not math.isnan(state.hidden_since)
            if hiding and state.cut_behind:
                ratio = _capped(_recent_ratio(state.clear, slope, intercept), slope)
            else:
                ratio = _capped(state.ratio, slope)
            # The feet row where the track's height, scaled by the perspective from the
            # rows it was seen at, meets this top: b - top = ratio x (slope b + intercept).
            full_bottom = (y + ratio * intercept) / (1.0 - ratio * slope)
            full = full_bottom - y
            shrink = full - h
            top_error = abs(y - (state.top + state.top_velocity * dt))
            # Where the feet would be now: from the last sighting at full height, moved on.
            bottom_rise = state.full_bottom + state.bottom_velocity * (now - state.full_seen) - b
            behind = bool(behind_rows[row])
            behind_cut = math.nan
            if hiding:
                # Hysteresis: once cut, three quarters of the shortening keep it cut.
                cut = shrink > 0.75 * self.min_shrink * full
            else:
                trusted = (
                    len(state.heights) >= self.warmup
                    and now - state.heights[0][0] >= self.warmup_seconds
                    and (slope == 0.0 or _PLAUSIBLE[0] <= ratio <= _PLAUSIBLE[1])
                )
                cut = (
                    trusted
                    and h >= _MIN_VISIBLE * full
                    and shrink > self.min_shrink * full
                    and bottom_rise > 0.5 * shrink
                    and (top_error < 0.5 * shrink or (top_error < shrink and behind))
                    and h < (1.0 - self.min_shrink) * self._recent_height(state)
                )
                if not cut and trusted and behind:
                    behind_cut = self._behind_cut(state, boxes[row], now, ratio, slope, intercept)
                    if not math.isnan(behind_cut):
                        cut = True
                        full_bottom = (y + behind_cut * intercept) / (1.0 - behind_cut * slope)
            if cut and not hiding:
                state.hidden_since = now
                state.cut_behind = not math.isnan(behind_cut)
            if dt > 0:
                weight = 1.0 - math.exp(-dt / self.smooth_seconds)
                state.top_velocity += weight * ((y - state.top) / dt - state.top_velocity)
            state.top, state.seen = y, now
            if cut and now - state.hidden_since <= self.max_seconds:
                corrected[row] = full_bottom
                continue
            if cut:
                # Cut for longer than max_seconds: believe the box again, from scratch.
                state.heights.clear()
                state.ratio = math.nan
            state.hidden_since = math.nan
            state.cut_behind = False
            if not state.heights or h >= (1.0 - 0.5 * self.min_shrink) * state.heights[-1][2]:
                # Not shorter than the last sighting: the feet are seen, follow their speed.
                step = now - state.full_seen
                if step > 0:
                    weight = 1.0 - math.exp(-step / self.smooth_seconds)
                    speed = (b - state.full_bottom) / step
                    state.bottom_velocity += weight * (speed - state.bottom_velocity)
                state.full_seen, state.full_bottom = now, b
            if not behind:
                width = float(boxes[row, 2] - boxes[row, 0])
                state.clear.append((now, h, b, width, state.bottom_velocity))
            state.heights.append((now, b, h))
            state.appended += 1
            self._perspective.add(b, h)
        if not corrected:
            return tracks
        boxes[list(corrected), 3] = list(corrected.values())
        return replace(tracks, xyxy=boxes.astype(tracks.xyxy.dtype))

    def _recent_height(self, state: _Track) -> float:
        """Sudden, not gradual: the tallest box of the last ``smooth_seconds`` it was seen."""
        last_time = state.heights[-1][0]
        tallest = 0.0
        for t, _, h in reversed(state.heights):
            if last_time - t > self.smooth_seconds:
                break
            tallest = max(tallest, h)
        return tallest

    def _behind_cut(
        self,
        state: _Track,
        box: FloatArray,
        now: float,
        ratio: float,
        slope: float,
        intercept: float,
    ) -> float:
        """The track's recent height (over the perspective line) when this box, whose feet
        point lies inside a closer person's box, is that person's legs cut off from the
        bottom against its last sightings clear of other boxes; NaN when it is not."""
        if not state.clear or now - state.clear[-1][0] > self.max_seconds:
            return math.nan
        recent = _capped(_recent_ratio(state.clear, slope, intercept), slope)
        if abs(recent - ratio) >= 0.5 * self.min_shrink * ratio:
            return math.nan
        y, b = float(box[1]), float(box[3])
        full = (y + recent * intercept) / (1.0 - recent * slope) - y
        shrink = full - (b - y)
        seen, _, feet, width, speed = state.clear[-1]
        top_error = abs(y - (state.top + state.top_velocity * max(now - state.seen, 0.0)))
        if (
            b - y >= _MIN_VISIBLE * full
            and shrink > 0.75 * self.min_shrink * full
            and top_error < 0.5 * shrink
            and abs(float(box[2] - box[0]) - width) < self.min_shrink * width
            and feet + speed * (now - seen) - b > 0.5 * shrink
        ):
            return recent
        return math.nan

    def _forget(self, now: float) -> None:
        stale = [i for i, s in self._tracks.items() if now - s.seen > self.forget_seconds]
        for track_id in stale:
            del self._tracks[track_id]


def _ratio(
    heights: deque[tuple[float, float, float]], slope: float, intercept: float, recent: float
) -> float:
    """A track's full height: the median over its unoccluded frames of each height over
    the camera's perspective line at that frame's feet row (robust to a few frames whose
    box also held a raised arm or the head behind). Without a line yet (slope 0), the
    median height in pixels over the last 2 x ``recent`` seconds only (sizes change)."""
    if slope == 0.0:
        last = heights[-1][0]
        ratios = sorted(h / intercept for t, _, h in heights if last - t <= 2.0 * recent)
    else:
        # max(): a feet row above the line's horizon (noise) must not flip the sign.
        ratios = sorted(h / max(slope * bottom + intercept, 1.0) for _, bottom, h in heights)
    middle = len(ratios) // 2
    return ratios[middle] if len(ratios) % 2 else 0.5 * (ratios[middle - 1] + ratios[middle])


def _recent_ratio(
    clear: deque[tuple[float, float, float, float, float]], slope: float, intercept: float
) -> float:
    """A track's recent height: the median of its last sightings clear of other boxes, each
    over the perspective line at its feet row (the line as it is now)."""
    ratios = sorted(h / max(slope * bottom + intercept, 1.0) for _, h, bottom, _, _ in clear)
    return ratios[len(ratios) // 2]


def _capped(ratio: float, slope: float) -> float:
    """A ratio whose feet row stays finite: ``1 - ratio x slope`` is the denominator."""
    return min(ratio, 0.9 / slope) if slope > 0 else ratio


def _behind(boxes: FloatArray) -> npt.NDArray[np.bool_]:
    """Per box: its feet point lies inside another box whose bottom is lower (a person
    closer to the camera, in front of the legs)."""
    x = 0.5 * (boxes[:, 0] + boxes[:, 2])[:, None]
    y = boxes[:, 3][:, None]
    inside: npt.NDArray[np.bool_] = (
        (boxes[:, 0] <= x) & (x <= boxes[:, 2]) & (boxes[:, 1] <= y) & (y < boxes[:, 3])
    )
    result: npt.NDArray[np.bool_] = np.asarray(inside.any(axis=1), np.bool_)
    return result


class _Occluder:
    """One static occluder polygon, tested against the legs of a box."""

    def __init__(self, polygon: npt.ArrayLike, index: int) -> None:
        try:
            points = check_polygon(np.asarray(polygon, np.float64).tolist())
        except (TypeError, ValueError) as exc:
            raise ValueError(f"occluders[{index}]: {exc}") from exc
        self._shape = shapely.Polygon(points)
        shapely.prepare(self._shape)

    def meets_legs(self, box: list[float]) -> bool:
        """The middle half of the box's bottom edge, or the strip ``_OCCLUDER_REACH`` of
        its height below it, overlaps the polygon: the legs end at (or behind) it."""
        x0, top, x1, bottom = box
        quarter = 0.25 * (x1 - x0)
        low = bottom + _OCCLUDER_REACH * (bottom - top)
        return bool(self._shape.intersects(shapely.box(x0 + quarter, bottom, x1 - quarter, low)))
