"""The store layout file: cameras, zones, lines, masks and floor homographies.

One YAML or JSON file describes a store. :func:`load_layout` reads and validates
it; :meth:`StoreLayout.model_validate` validates a dict (what the API receives).
Every problem is reported as ``path: message``, e.g.
``zones[2].polygon: self-intersecting``.

Example:
    >>> layout = StoreLayout.model_validate({
    ...     "store": {"id": "demo", "timezone": "Europe/London"},
    ...     "cameras": [{"id": "cam1"}],
    ...     "zones": [{"id": "z", "camera": "cam1", "polygon": [[0, 0], [10, 0], [10, 10]]}],
    ...     "lines": [{"id": "door", "camera": "cam1", "points": [[0, 0], [0, 10]],
    ...                "inside": [5, 5]}],
    ... })
    >>> layout.zone("z").kind.value, layout.line("door").entrance
    ('area', False)
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from enum import StrEnum
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import cv2
import numpy as np
import numpy.typing as npt
import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from shapely.geometry import Polygon
from shapely.validation import explain_validity
from storesense.vision.motion import MotionConfig
from storesense.vision.tracking.config import TrackerConfig
from storesense.zones.timemodel import MAX_FPS, MIN_FPS, check_fps, parse_timestamp

MAX_ID_LENGTH = 200
"""Store, camera, zone, line and funnel ids: names, not documents (an id becomes an MQTT
topic level, which MQTT limits to 65,535 bytes in all)."""

Point = tuple[float, float]
FinitePoint = tuple[
    Annotated[float, Field(allow_inf_nan=False)], Annotated[float, Field(allow_inf_nan=False)]
]
FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]


class LayoutError(ValueError):
    """A layout file that cannot be used; the message lists each ``path: message``."""


class ZoneKind(StrEnum):
    AREA = "area"
    ENTRANCE = "entrance"
    PASSERBY = "passerby"
    QUEUE = "queue"
    SHELF = "shelf"
    STAFF_ONLY = "staff_only"
    DISPLAY = "display"
    """The area in front of a digital display: a visit that stays ``exposure_seconds`` is
    exposed to it (see :mod:`storesense.zones.journeys`)."""


class Anchor(StrEnum):
    """Which point of a person's box decides membership."""

    BOTTOM_CENTER = "bottom_center"
    CENTER = "center"
    TOP_CENTER = "top_center"


ANCHOR_ORDER: tuple[Anchor, ...] = (Anchor.BOTTOM_CENTER, Anchor.CENTER, Anchor.TOP_CENTER)


def check_polygon(points: list[Point]) -> list[Point]:
    """``points`` if they make a valid image polygon (at least 3 finite points, not all on
    one line, not self-intersecting); else a ValueError saying what is wrong."""
    if len(points) < 3:
        raise ValueError(f"needs at least 3 points, got {len(points)}")
    coords = np.asarray(points, np.float64)
    if coords.shape[1:] != (2,) or not np.all(np.isfinite(coords)):
        raise ValueError("points must be finite [x, y] pairs")
    if np.linalg.matrix_rank(coords[1:] - coords[0], tol=1e-9) < 2:
        raise ValueError("degenerate (all points on one line, zero area)")
    shape = Polygon(points)
    if not shape.is_valid:
        reason = explain_validity(shape)
        if "Self-intersection" in reason:
            raise ValueError(f"self-intersecting ({reason})")
        raise ValueError(f"invalid polygon ({reason})")
    return points


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FunnelConfig(_Strict):
    """A custom funnel: visits reaching each step in order within ``within_seconds``."""

    id: str = Field(min_length=1, max_length=MAX_ID_LENGTH)
    """The funnel's name, unique among ``funnels``; served at ``/v1/funnels/{id}``."""
    steps: list[str] = Field(min_length=1, max_length=20)
    """Zone ids or zone kinds (``kind:shelf``), in order."""
    within_seconds: float = Field(default=600.0, gt=0)
    """The last step must be reached this long after the first at most."""

    @field_validator("within_seconds")
    @classmethod
    def _finite_number(cls, value: float) -> float:
        return _finite(value)


class JourneySettings(_Strict):
    """How visits become paths, funnels, exposures and groups (``store.journeys``)."""

    path_min_seconds: float = Field(default=1.0, ge=0)
    """A zone joins a visit's path once the person has stayed inside this long."""
    path_gap_seconds: float = Field(default=1.0, ge=0)
    """Two stays in one zone this close together are one stay (edge flicker, occlusion)."""
    path_max_length: int = Field(default=6, ge=1, le=50)
    """Top paths are counted over prefixes of at most this many zones."""
    k_anonymity: int = Field(default=2, ge=0)
    """``/v1/journeys``: a path or transition seen fewer than k times is folded into other."""
    link_seconds: float = Field(default=4.0, ge=0)
    """A new track starting this soon after another ended near where it was continues the
    same visit (0: only the zone engine's re-link)."""
    link_distance: float = Field(default=1.0, gt=0)
    """... within this many box heights of where the ended track was heading."""
    link_hidden_seconds: float = Field(default=15.0, ge=0)
    """A person hidden this long at most (standing behind someone) who comes back near where
    they were continues their visit, when no other track competes (0: off)."""
    link_overlap_seconds: float = Field(default=1.0, ge=0)
    """A track born at most this long before another one vanished nearby continues it (the
    tracker started a new id on the person before dropping the old one; 0: off)."""
    engaged_seconds: float = Field(default=10.0, ge=0)
    """Funnel: a visit is engaged once it stayed this long in one product zone."""
    exposure_seconds: float = Field(default=2.0, ge=0)
    """A visit is exposed to a ``display`` zone once it stayed in it this long."""
    attribution_seconds: float = Field(default=600.0, gt=0)
    """Attribution: the target must be reached this long after the exposure at most."""
    group_seconds: float = Field(default=2.0, ge=0)
    """Groups: people crossing an entrance line within this time of each other ..."""
    group_distance: float = Field(default=1.5, gt=0)
    """... and within this many box heights (or metres with a homography) ..."""
    group_together_seconds: float = Field(default=3.0, ge=0)
    """... who then stay that close for this long form one group (a buying unit)."""
    funnels: list[FunnelConfig] = Field(default_factory=list)
    """Custom funnels besides the built-in one (none by default)."""

    @field_validator(
        "path_min_seconds",
        "path_gap_seconds",
        "link_seconds",
        "link_distance",
        "link_hidden_seconds",
        "link_overlap_seconds",
        "engaged_seconds",
        "exposure_seconds",
        "attribution_seconds",
        "group_seconds",
        "group_distance",
        "group_together_seconds",
    )
    @classmethod
    def _finite_number(cls, value: float) -> float:
        return _finite(value)

    @field_validator("funnels")
    @classmethod
    def _unique_funnels(cls, funnels: list[FunnelConfig]) -> list[FunnelConfig]:
        seen: set[str] = set()
        for index, funnel in enumerate(funnels):
            if funnel.id in seen:
                raise ValueError(f"funnels[{index}].id: duplicate id {funnel.id!r}")
            seen.add(funnel.id)
        return funnels


class StoreInfo(_Strict):
    id: str = Field(min_length=1, max_length=MAX_ID_LENGTH)
    """The store's name; also its name inside the store back-end unless the service's
    ``store_id`` says otherwise."""
    timezone: str = "UTC"
    """IANA time zone (e.g. ``Europe/London``) in which dates and day boundaries of the
    metrics, journeys and MQTT daily counts are taken."""
    journeys: JourneySettings = Field(default_factory=lambda: JourneySettings())
    """Paths, funnels, displays and groups (defaults shown in the journeys guide)."""

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError, OSError) as exc:
            # OSError: a tz database folder ("Europe") or a name too long for a file name.
            raise ValueError(f"unknown timezone {value[:80]!r} (use an IANA name)") from exc
        return value

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


class Homography(_Strict):
    """Image pixels → floor metres from ≥4 point pairs (``cv2.findHomography``)."""

    image_points: list[Point]
    """Image pixels ``[x, y]`` of at least 4 points on the floor."""
    floor_points: list[Point]
    """The same points' floor positions in metres, in the same order."""

    @model_validator(mode="after")
    def _enough_pairs(self) -> Homography:
        if len(self.image_points) != len(self.floor_points):
            raise ValueError(
                f"image_points ({len(self.image_points)}) and floor_points "
                f"({len(self.floor_points)}) differ in length"
            )
        if len(self.image_points) < 4:
            raise ValueError(f"needs at least 4 point pairs, got {len(self.image_points)}")
        matrix = self._solve()
        if matrix is None:
            raise ValueError("points are degenerate (collinear?): no homography")
        image = np.asarray(self.image_points, np.float64)
        w = np.column_stack([image, np.ones(len(image))]) @ matrix[2]
        if not (np.all(w > 0) or np.all(w < 0)):
            raise ValueError(
                "image_points and floor_points are not in a consistent order (the mapping "
                "puts some image points behind the camera): list the pairs in the same order"
            )
        return self

    def _solve(self) -> FloatArray | None:
        src = np.asarray(self.image_points, np.float64)
        dst = np.asarray(self.floor_points, np.float64)
        matrix, _ = cv2.findHomography(src, dst, 0)
        if matrix is None or not np.all(np.isfinite(matrix)) or abs(np.linalg.det(matrix)) < 1e-12:
            return None
        return np.asarray(matrix, np.float64)

    @cached_property
    def matrix(self) -> FloatArray:
        """3x3 image→floor matrix."""
        solved = self._solve()
        assert solved is not None
        return solved

    @cached_property
    def inverse(self) -> FloatArray:
        """3x3 floor→image matrix, scaled so floor points in front of the camera have w > 0."""
        inverse = np.asarray(np.linalg.inv(self.matrix), np.float64)
        floor = np.asarray(self.floor_points, np.float64)
        if (np.column_stack([floor, np.ones(len(floor))]) @ inverse[2]).mean() < 0:
            inverse = -inverse
        return inverse

    @cached_property
    def forward(self) -> FloatArray:
        """:attr:`matrix` scaled so image points below the horizon have w > 0."""
        image = np.asarray(self.image_points, np.float64)
        sign = np.sign((np.column_stack([image, np.ones(len(image))]) @ self.matrix[2]).mean())
        return np.asarray(self.matrix * sign, np.float64)

    def to_floor(self, points: npt.ArrayLike) -> FloatArray:
        """Image pixels (N, 2) → floor metres (N, 2)."""
        return _project(self.matrix, points)

    def to_image(self, points: npt.ArrayLike) -> FloatArray:
        """Floor metres (N, 2) → image pixels (N, 2)."""
        return _project(self.inverse, points)

    def to_floor_checked(self, points: npt.ArrayLike) -> tuple[FloatArray, BoolArray]:
        """Image pixels (N, 2) → floor metres (N, 2) and which points lie on the floor.

        A point on or above the image's horizon has no floor position: its row is NaN
        and its flag False (a false detection in the sky must not land behind the camera).
        """
        return _project_checked(self.forward, points)

    def to_image_checked(self, points: npt.ArrayLike) -> tuple[FloatArray, BoolArray]:
        """Floor metres (N, 2) → image pixels (N, 2) and which lie in front of the camera."""
        return _project_checked(self.inverse, points)


def _project(matrix: FloatArray, points: npt.ArrayLike) -> FloatArray:
    pts = np.asarray(points, np.float64).reshape(-1, 2)
    if len(pts) == 0:
        return np.zeros((0, 2), np.float64)
    out = cv2.perspectiveTransform(pts[None], matrix)[0]
    return np.asarray(out, np.float64)


def _project_checked(matrix: FloatArray, points: npt.ArrayLike) -> tuple[FloatArray, BoolArray]:
    pts = np.asarray(points, np.float64).reshape(-1, 2)
    mapped = pts @ matrix[:2, :2].T + matrix[:2, 2]
    w = pts @ matrix[2, :2] + matrix[2, 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        out = mapped / w[:, None]
    valid = (w > 0) & np.isfinite(out).all(axis=1)
    out[~valid] = np.nan
    return out, valid


MAX_IMAGE_COORDINATE = 20_000.0
"""A floor shape whose image lands farther out than this (pixels) is too close to the horizon."""


def _floor_shape_problems(homography: Homography, points: Sequence[Point], path: str) -> list[str]:
    """Why floor points cannot be drawn on the image: behind the horizon or absurdly far."""
    image, in_front = homography.to_image_checked(points)
    problems = []
    for index, (point, ok, pixel) in enumerate(zip(points, in_front, image, strict=True)):
        where = f"{path}[{index}] {list(point)} m"
        if not ok:
            problems.append(f"{where} is behind the camera (beyond its horizon): it cannot be seen")
        elif np.abs(pixel).max() > MAX_IMAGE_COORDINATE:
            problems.append(
                f"{where} maps to image pixel [{pixel[0]:.0f}, {pixel[1]:.0f}], too close to "
                f"the horizon (beyond ±{MAX_IMAGE_COORDINATE:.0f} px)"
            )
    return problems


def _side_sign(points: npt.ArrayLike, inside: npt.ArrayLike) -> int:
    """+1 or -1: sign of the cross product (b - a) × (inside - a) for the "in" side."""
    (ax, ay), (bx, by) = np.asarray(points, np.float64).tolist()
    ix, iy = np.asarray(inside, np.float64).tolist()
    return 1 if (bx - ax) * (iy - ay) - (by - ay) * (ix - ax) > 0 else -1


def _not_reserved(value: str) -> str:
    """Zone and camera ids starting with ``@`` name the service's own occupancy rows."""
    if value.startswith("@"):
        raise ValueError(f"{value!r}: ids starting with @ are reserved (e.g. @store)")
    return value


def _finite(value: float) -> float:
    if not np.isfinite(value):
        raise ValueError(f"must be a finite number, got {value}")
    return value


class CameraConfig(_Strict):
    id: str = Field(min_length=1, max_length=MAX_ID_LENGTH)
    """The camera's name, unique in the layout (``--camera ID``); must not start with ``@``."""
    source: str | None = None
    """Video file (relative to the layout file's folder), URL or device."""
    fps: float | None = Field(default=None, ge=MIN_FPS, le=MAX_FPS)
    """Overrides the container's frame rate (e.g. PETS09's header says 10, real is 7);
    0.01 to 1000 (:mod:`storesense.zones.timemodel`)."""
    start_time: datetime | None = None
    """Wall-clock time of the first frame (Unix seconds or ISO 8601, naive = UTC, from
    2000-01-01 to now + 1 day); events then carry Unix time."""
    masks: list[list[Point]] = Field(default_factory=list)
    """Image polygons where detections are ignored (mannequins, posters)."""
    occluders: list[list[Point]] = Field(default_factory=list)
    """Image polygons of static objects in front of the floor that can hide a person's
    legs (shelf ends, counters, tills, a sign), checked like ``masks``: a box whose legs
    end at one and that got shorter at the bottom keeps the track's recent height (see
    Hidden legs in the zones guide). A property of the camera, drawn once like a mask."""
    homography: Homography | None = None
    """Image → floor mapping; needed for floor zones and lines, floor heatmaps, metre
    distances and store-wide floor zones (``null``: pixels only)."""
    lost_after_seconds: float = Field(default=2.0, gt=0)
    """A track unseen this long is treated as gone (if the tracker did not say so)."""
    occupancy_hold_seconds: float = Field(default=0.5, ge=0)
    """Live occupancy counts a person inside while seen within this time (short occlusions)."""
    relink_seconds: float = Field(default=1.0, ge=0)
    """Longest gap over which a new track id takes over a lost one's visits (0: off); at
    most ``lost_after_seconds`` (the default is shortened to it)."""
    relink_distance: float = Field(default=0.5, ge=0)
    """Largest floor-point jump for a re-link, as a fraction of the new box's height."""
    occlusion_aware: bool = True
    """A track hidden behind someone stays in its zones where its motion says it is
    (up to ``lost_after_seconds``); re-links look where the old track should be by now,
    and where it vanished (a person who stopped or turned while hidden)."""
    tracker: TrackerConfig = Field(default_factory=TrackerConfig)
    """This camera's tracker settings (score thresholds, confirmation, lost buffer…);
    the defaults are tuned on PETS09-S2L1 and TUD-Campus."""
    motion: MotionConfig = Field(default_factory=MotionConfig)
    """Motion-gated detection: the detector runs on frames with motion, while the tracker
    settles, and every ``refresh_seconds`` otherwise (``enabled: false`` runs it always)."""
    detector_input_size: int | None = Field(default=None, ge=128, le=1280, multiple_of=32)
    """Square detector input in pixels for this camera (e.g. 320 for a camera close to
    people: about 0.65x the CPU of 416); ``null`` keeps the model's own (416)."""

    @field_validator("id")
    @classmethod
    def _not_reserved(cls, value: str) -> str:
        return _not_reserved(value)

    @field_validator("fps", mode="before")
    @classmethod
    def _bounded_fps(cls, value: object) -> object:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return check_fps(value)
        return value

    @field_validator("start_time", mode="before")
    @classmethod
    def _start_time(cls, value: object) -> datetime | None:
        if value is None:
            return None
        return datetime.fromtimestamp(parse_timestamp(value, what="start_time"), UTC)

    @field_validator(
        "lost_after_seconds", "occupancy_hold_seconds", "relink_seconds", "relink_distance"
    )
    @classmethod
    def _finite_number(cls, value: float) -> float:
        return _finite(value)

    @model_validator(mode="after")
    def _relink_within_lost_after(self) -> CameraConfig:
        if self.relink_seconds > self.lost_after_seconds:
            if "relink_seconds" not in self.model_fields_set:
                # Only the default is too long for this camera: shorten it quietly.
                object.__setattr__(self, "relink_seconds", self.lost_after_seconds)
                return self
            raise ValueError(
                f"relink_seconds: {self.relink_seconds} exceeds lost_after_seconds "
                f"({self.lost_after_seconds}); a track is closed before it could be re-linked"
            )
        return self

    @field_validator("masks", "occluders")
    @classmethod
    def _valid_polygons(
        cls, polygons: list[list[Point]], info: ValidationInfo
    ) -> list[list[Point]]:
        for index, polygon in enumerate(polygons):
            try:
                check_polygon(polygon)
            except ValueError as exc:
                raise ValueError(f"{info.field_name}[{index}]: {exc}") from exc
        return polygons


class ShelfZoneOptions(_Strict):
    """Extra settings for ``kind: shelf`` zones: the one definition of these fields, their
    defaults and limits (:class:`~storesense.zones.shelf.ShelfOptions` validates with it)."""

    reach_band_px: float = Field(default=40.0, ge=0)
    """How far outside the shelf face (pixels) a person's box still counts as reaching
    (0: only the face itself)."""
    grid: tuple[int, int] = (3, 6)
    """Rows and columns of cells over the face; one cell misses items smaller than about
    12 % of it, so aim for one cell per product facing."""
    min_interaction_seconds: float = Field(default=0.5, ge=0)
    """A person must be in the reach band (and slow) this long for a visit to count."""
    max_reach_speed: float | None = Field(default=0.6, gt=0)
    """Floor-point speed in box heights per second above which time in the reach band is
    walking past, not reaching; ``null`` turns the check off."""
    arm_seconds: float = Field(default=1.0, ge=0)
    """The shelf takes its first reference only after the reach band has been clear (and
    the shelf face still) this long, so a camera started with shoppers in reach waits."""

    @field_validator("grid")
    @classmethod
    def _positive_grid(cls, grid: tuple[int, int]) -> tuple[int, int]:
        if grid[0] < 1 or grid[1] < 1:
            raise ValueError(f"rows and cols must be ≥ 1, got {list(grid)}")
        return grid

    @field_validator("reach_band_px", "min_interaction_seconds", "max_reach_speed", "arm_seconds")
    @classmethod
    def _finite_number(cls, value: float | None) -> float | None:
        return None if value is None else _finite(value)


NonNegative = Annotated[float, Field(ge=0, allow_inf_nan=False)]

LINE_DEPTH = 0.04
"""Default :attr:`LineConfig.depth`: the detector's anchor noise, a fraction of the box
height (``python benchmarks/counting.py --anchor-noise`` measures it on TUD-Campus)."""


_CAMERA_ONLY_KINDS = frozenset({ZoneKind.SHELF, ZoneKind.STAFF_ONLY})
"""Kinds that need one camera's tracks or image (a shelf's face, staff time per track)."""


class ZoneConfig(_Strict):
    id: str = Field(min_length=1, max_length=MAX_ID_LENGTH)
    """The zone's name, unique among zones (the ``target`` of its events); must not start
    with ``@``."""
    camera: str | None = None
    """The camera whose view the zone is drawn in. Omitted: a **store-wide floor zone**,
    drawn in ``floor_polygon`` metres and counted on the merged floor of every camera with
    a homography (a person seen by two overlapping cameras once); its enter/exit events
    (camera ``@store``) and ``approaching`` are per store-wide visit (see the journeys
    guide)."""
    kind: ZoneKind = ZoneKind.AREA
    """What the zone is for: ``area`` (plain), ``entrance`` (entries are footfall when the
    layout has no entrance line), ``passerby`` (pavement outside, for shopfront conversion),
    ``queue`` (length and wait metrics), ``shelf`` (reach interactions, see ``shelf``),
    ``staff_only`` (marks staff) or ``display`` (exposures). ``shelf`` and ``staff_only``
    need a camera."""
    polygon: list[Point] | None = None
    """Image pixels."""
    floor_polygon: list[Point] | None = None
    """Floor metres (needs the camera's homography, or any camera's for a store-wide zone);
    used when ``polygon`` is absent."""
    anchor: Anchor = Anchor.BOTTOM_CENTER
    """Which point of a person's box must be inside: the feet (``bottom_center``), the
    box centre or the top of the box (``top_center``)."""
    min_inside_seconds: NonNegative = 0.0
    """Inside this long before an entry counts (hysteresis; the entry keeps the time the
    person first stepped in; live occupancy counts them only from then)."""
    min_outside_seconds: NonNegative = 0.5
    """Outside this long before an exit event counts (hysteresis; the exit keeps the time
    the person first stepped out, and live occupancy drops at once). 0.5 s: a box
    jittering on the edge is not a new visit (``python benchmarks/counting.py --holdout``:
    quick re-entries 12 -> 0, entries +17 % -> +8 % over truth, occupancy unchanged)."""
    min_dwell_seconds: NonNegative = 0.0
    """A visit is reported (enter and exit) only once it has lasted this long."""
    approach_seconds: NonNegative = 3.0
    """Emit ``approaching`` when a track is predicted to enter within this time (0: off)."""
    staff_after_seconds: NonNegative = 60.0
    """``staff_only`` zones: a track inside this long in total is staff."""
    shelf: ShelfZoneOptions | None = None
    """``kind: shelf`` settings; filled with their defaults for a shelf zone without them."""

    @field_validator("id")
    @classmethod
    def _not_reserved(cls, value: str) -> str:
        return _not_reserved(value)

    @field_validator("polygon", "floor_polygon")
    @classmethod
    def _valid_polygon(cls, points: list[Point] | None) -> list[Point] | None:
        return None if points is None else check_polygon(points)

    @model_validator(mode="after")
    def _one_shape(self) -> ZoneConfig:
        if self.camera is None and self.polygon is not None:
            raise ValueError(
                "polygon is in one camera's pixels: give that camera, or draw a store-wide "
                "zone (no camera) as floor_polygon in metres"
            )
        if (self.polygon is None) == (self.floor_polygon is None):
            raise ValueError("give exactly one of polygon (pixels) or floor_polygon (metres)")
        if self.camera is None and self.kind in _CAMERA_ONLY_KINDS:
            raise ValueError(
                f"kind {self.kind.value!r} needs one camera's view: give the zone a camera "
                "(a zone without one is a store-wide floor zone)"
            )
        if self.kind == ZoneKind.SHELF and self.shelf is None:
            object.__setattr__(self, "shelf", ShelfZoneOptions())
        return self


class Coordinates(StrEnum):
    """What a line's ``points`` and ``inside`` are measured in."""

    IMAGE = "image"
    FLOOR = "floor"


class LineConfig(_Strict):
    id: str = Field(min_length=1, max_length=MAX_ID_LENGTH)
    """The line's name, unique among lines (the ``target`` of its crossing events)."""
    camera: str
    """The camera whose view the line is drawn in (one of ``cameras[].id``)."""
    points: tuple[FinitePoint, FinitePoint]
    """The line's two distinct end points, in ``coordinates``."""
    inside: FinitePoint
    """Any point on the side that counts as "in"."""
    coordinates: Coordinates = Coordinates.IMAGE
    """``image`` (pixels) or ``floor`` (metres; needs the camera's homography)."""
    entrance: bool = False
    """In-crossings of entrance lines are footfall."""
    anchor: Anchor = Anchor.BOTTOM_CENTER
    """Which point of a person's box crosses the line: the feet (``bottom_center``), the
    box centre or the top of the box (``top_center``)."""
    min_side_seconds: NonNegative = 0.5
    """A crossing counts once the person stays on the new side this long (a box that
    jitters across the line and back is not a crossing); 0 counts every side change."""
    depth: Annotated[float, Field(ge=0, le=1)] = LINE_DEPTH
    """Hysteresis band around the line, as a fraction of the person's box height: a side
    change becomes a crossing only once the anchor has also been this far beyond the line
    (a person walking along it, feet wandering a few pixels either side, crosses nothing).
    Scale-aware by construction (a fraction of the person, not pixels); the default is the
    detector's anchor noise (robust standard deviation of the box's horizontal centre
    against the ground truth, over the box height) measured on TUD-Campus, not on the
    layouts the counts are reported on; 0 counts every side change."""

    @model_validator(mode="after")
    def _valid_line(self) -> LineConfig:
        (ax, ay), (bx, by) = self.points
        length = float(np.hypot(bx - ax, by - ay))
        if length == 0.0:
            raise ValueError("points: the two points are identical")
        ix, iy = self.inside
        if abs((bx - ax) * (iy - ay) - (by - ay) * (ix - ax)) / length < 1e-6:
            raise ValueError("inside: the point lies on the line; pick one on the 'in' side")
        return self

    @property
    def inside_sign(self) -> int:
        """+1 or -1: sign of the cross product for the "in" side, in the line's own
        ``coordinates`` (for pixels of a floor line use ``StoreLayout.image_inside_sign``)."""
        return _side_sign(self.points, self.inside)


class StoreLayout(_Strict):
    store: StoreInfo
    """The store's name, time zone and journey settings."""
    cameras: list[CameraConfig] = Field(min_length=1)
    """At least one camera; ids are unique."""
    zones: list[ZoneConfig] = Field(default_factory=list)
    """Areas counted for entries, exits, dwell and occupancy; ids are unique."""
    lines: list[LineConfig] = Field(default_factory=list)
    """Lines counted for in/out crossings; ids are unique."""

    @model_validator(mode="after")
    def _cross_references(self) -> StoreLayout:
        problems: list[str] = []
        cameras = {camera.id: camera for camera in self.cameras}
        groups: tuple[tuple[str, Sequence[CameraConfig | ZoneConfig | LineConfig]], ...] = (
            ("cameras", self.cameras),
            ("zones", self.zones),
            ("lines", self.lines),
        )
        for group, items in groups:
            seen: set[str] = set()
            for index, item in enumerate(items):
                if item.id in seen:
                    problems.append(f"{group}[{index}].id: duplicate id {item.id!r}")
                seen.add(item.id)
        known = ", ".join(sorted(cameras))
        placed: tuple[tuple[str, Sequence[ZoneConfig | LineConfig]], ...] = (
            ("zones", self.zones),
            ("lines", self.lines),
        )
        for group, placed_items in placed:
            for index, item in enumerate(placed_items):
                if item.camera is None:
                    continue  # a store-wide floor zone (lines always name a camera)
                if item.camera not in cameras:
                    problems.append(
                        f"{group}[{index}].camera: unknown camera {item.camera!r} (known: {known})"
                    )
        problems += self._store_zone_problems()
        for index, zone in enumerate(self.zones):
            camera = cameras.get(zone.camera) if zone.camera is not None else None
            if zone.floor_polygon is None or camera is None:
                continue
            if camera.homography is None:
                problems.append(
                    f"zones[{index}].floor_polygon: camera {zone.camera!r} has no homography"
                )
            else:
                problems += _floor_shape_problems(
                    camera.homography, zone.floor_polygon, f"zones[{index}].floor_polygon"
                )
        for index, line in enumerate(self.lines):
            camera = cameras.get(line.camera)
            if line.coordinates != Coordinates.FLOOR or camera is None:
                continue
            if camera.homography is None:
                problems.append(
                    f"lines[{index}].coordinates: floor, but camera {line.camera!r} "
                    "has no homography"
                )
            else:
                problems += _floor_shape_problems(
                    camera.homography, line.points, f"lines[{index}].points"
                )
                problems += [
                    p.replace(".inside[0]", ".inside", 1)
                    for p in _floor_shape_problems(
                        camera.homography, [line.inside], f"lines[{index}].inside"
                    )
                ]
        problems += self._funnel_problems()
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def _store_zone_problems(self) -> list[str]:
        """Store-wide floor zones (no camera) need a floor: a camera with a homography."""
        store_wide = [i for i, zone in enumerate(self.zones) if zone.camera is None]
        if not store_wide or any(camera.homography is not None for camera in self.cameras):
            return []
        return [
            f"zones[{index}].camera: omitted, so {self.zones[index].id!r} is a store-wide "
            "floor zone, but no camera has a homography (no floor plan to count it on): give "
            "a camera a homography, or name the zone's camera"
            for index in store_wide
        ]

    def _funnel_problems(self) -> list[str]:
        zone_ids = {zone.id for zone in self.zones}
        kinds = {kind.value for kind in ZoneKind}
        problems = []
        for f_index, funnel in enumerate(self.store.journeys.funnels):
            for s_index, step in enumerate(funnel.steps):
                path = f"store.journeys.funnels[{f_index}].steps[{s_index}]"
                if step.startswith("kind:"):
                    if step.removeprefix("kind:") not in kinds:
                        problems.append(
                            f"{path}: unknown zone kind {step!r} (known: {sorted(kinds)})"
                        )
                elif step not in zone_ids:
                    problems.append(f"{path}: unknown zone {step!r} (or use kind:KIND)")
        return problems

    def camera(self, camera_id: str) -> CameraConfig:
        for camera in self.cameras:
            if camera.id == camera_id:
                return camera
        raise ValueError(f"unknown camera {camera_id!r} (known: {[c.id for c in self.cameras]})")

    def zone(self, zone_id: str) -> ZoneConfig:
        for zone in self.zones:
            if zone.id == zone_id:
                return zone
        raise ValueError(f"unknown zone {zone_id!r}")

    def line(self, line_id: str) -> LineConfig:
        for line in self.lines:
            if line.id == line_id:
                return line
        raise ValueError(f"unknown line {line_id!r}")

    def zones_of(self, camera_id: str) -> list[ZoneConfig]:
        """The zones drawn in this camera's view (store-wide floor zones are in none)."""
        return [zone for zone in self.zones if zone.camera == camera_id]

    @property
    def store_zones(self) -> list[ZoneConfig]:
        """Store-wide floor zones: no camera, counted on the merged floor of all cameras."""
        return [zone for zone in self.zones if zone.camera is None]

    def lines_of(self, camera_id: str) -> list[LineConfig]:
        return [line for line in self.lines if line.camera == camera_id]

    def image_polygon(self, zone: ZoneConfig) -> FloatArray:
        """The zone's polygon in image pixels (floor polygons mapped through the homography)."""
        if zone.polygon is not None:
            return np.asarray(zone.polygon, np.float64)
        if zone.camera is None:
            raise ValueError(f"zone {zone.id!r} is store-wide: it has no image polygon")
        homography = self.camera(zone.camera).homography
        assert homography is not None and zone.floor_polygon is not None
        return homography.to_image(zone.floor_polygon)

    def image_line(self, line: LineConfig) -> tuple[FloatArray, FloatArray]:
        """The line's two end points (2, 2) and its ``inside`` point (2,) in image pixels.

        A homography maps straight lines to straight lines and keeps the sides of a
        line apart for points in front of the camera, so a floor line is exact in pixels.
        """
        points = np.asarray(line.points, np.float64)
        inside = np.asarray(line.inside, np.float64)
        if line.coordinates == Coordinates.IMAGE:
            return points, inside
        homography = self.camera(line.camera).homography
        assert homography is not None
        mapped = homography.to_image(np.vstack([points, inside[None]]))
        return mapped[:2], mapped[2]

    def image_inside_sign(self, line: LineConfig) -> int:
        """+1 or -1: sign of the image cross product for the line's "in" side."""
        return _side_sign(*self.image_line(line))


_POLYGON_LISTS = ("masks", "occluders")
"""Camera fields holding polygons; their errors name the polygon (``masks[0]: ...``)."""
_FIELD_PREFIX = re.compile(r"^[a-z_]+(\[\d+\])?: ")


def format_validation_error(error: ValidationError) -> str:
    """One ``path: message`` per problem, joined by newlines."""
    lines: list[str] = []
    for item in error.errors():
        path = ""
        for part in item["loc"]:
            path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
        message = str(item["msg"]).removeprefix("Value error, ")
        if not path:
            lines.extend(message.split("; "))
        elif (polygons := path.rpartition(".")[2]) in _POLYGON_LISTS and message.startswith(
            f"{polygons}["
        ):
            lines.append(f"{path.removesuffix('.' + polygons)}.{message}")
        elif _FIELD_PREFIX.match(message):
            lines.append(f"{path}.{message}")
        else:
            lines.append(f"{path}: {message}")
    return "\n".join(lines)


def parse_layout(data: Any, *, base_dir: Path | None = None) -> StoreLayout:
    """Validate a dict; raise :class:`LayoutError`; resolve relative file sources."""
    try:
        layout = StoreLayout.model_validate(data)
    except ValidationError as exc:
        raise LayoutError(format_validation_error(exc)) from None
    if base_dir is None:
        return layout
    cameras = []
    for camera in layout.cameras:
        source = camera.source
        if (
            source
            and "://" not in source
            and not source.isdigit()
            and not Path(source).is_absolute()
        ):
            source = str((base_dir / source).resolve())
        cameras.append(camera.model_copy(update={"source": source}))
    return layout.model_copy(update={"cameras": cameras})


NESTED_TOO_DEEPLY = "lists or mappings nested too deeply to read (thousands of levels)"
"""JSON/YAML nested thousands of levels deep (the parsers recurse): refused, not a crash."""


def syntax_error_message(error: json.JSONDecodeError | yaml.YAMLError) -> str:
    """One line for a YAML/JSON syntax error: what is wrong and where.

    >>> try:
    ...     yaml.safe_load("zones: [")
    ... except yaml.YAMLError as exc:
    ...     print(syntax_error_message(exc))
    not valid YAML/JSON at line 1, column 9: expected the node content, but found '<stream end>'
    """
    if isinstance(error, json.JSONDecodeError):
        return f"not valid JSON at line {error.lineno}, column {error.colno}: {error.msg}"
    if isinstance(error, yaml.MarkedYAMLError) and error.problem_mark is not None:
        mark = error.problem_mark
        problem = error.problem or error.context or "syntax error"
        return f"not valid YAML/JSON at line {mark.line + 1}, column {mark.column + 1}: {problem}"
    return "not valid YAML/JSON: " + " ".join(str(error).split())


def load_layout(path: str | Path) -> StoreLayout:
    """Read a YAML/JSON layout file. Raises :class:`LayoutError` with every problem."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise LayoutError(f"{file}: cannot read layout ({exc.strerror})") from None
    except UnicodeDecodeError as exc:
        raise LayoutError(f"{file}: not UTF-8 text (byte {exc.start}): not a layout file") from None
    try:
        data = json.loads(text) if file.suffix.lower() == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise LayoutError(f"{file}: {syntax_error_message(exc)}") from None
    except RecursionError:
        raise LayoutError(f"{file}: {NESTED_TOO_DEEPLY}") from None
    if not isinstance(data, dict):
        raise LayoutError(f"{file}: the layout must be a mapping with store, cameras, zones, lines")
    return parse_layout(data, base_dir=file.resolve().parent)
