"""The floor plan in metres: track positions and speeds, heatmaps, store-wide occupancy.

A camera with a ``homography`` in the layout (image pixels → floor metres) places
every person's feet (the bottom-centre of the box) on the store's floor plan.
This module builds on that:

* :func:`floor_positions` / :func:`floor_speeds`: a frame's tracks in metres and m/s;
* :class:`Heatmap`: person-seconds per floor cell (or per image cell for a camera
  without a homography), aggregated and anonymous: no track id is kept;
* :class:`StoreOccupancy`: people in the store now, over several cameras that share
  the floor plan, counting a person seen by two overlapping cameras once.

Example:
    >>> heatmap = Heatmap(cell=0.5)
    >>> heatmap.add([[0.2, 0.2], [0.3, 0.1], [1.2, 0.4]], seconds=2.0)
    >>> heatmap.person_seconds, heatmap.grid.tolist()
    (6.0, [[4.0, 0.0, 2.0]])
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np
import numpy.typing as npt
from storesense.vision.detections import Tracks
from storesense.zones.config import Anchor, Homography, StoreLayout
from storesense.zones.geometry import anchor_points

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
Unit = Literal["m", "px"]

HEATMAP_SUFFIXES = (".csv", ".npy", ".png")
"""The file types :meth:`Heatmap.write` knows."""

SPEED_STEP_SECONDS = 1e-3
"""Floor speed: the floor displacement of the feet over this short step of their velocity."""


def feet(tracks: Tracks) -> FloatArray:
    """Bottom-centre of each track's box in image pixels, (N, 2) float64."""
    return anchor_points(tracks.xyxy, Anchor.BOTTOM_CENTER)


def floor_positions(tracks: Tracks, homography: Homography) -> tuple[FloatArray, BoolArray]:
    """Each track's feet on the floor plan (N, 2 metres) and whether they are on the floor.

    Feet on or above the image's horizon (a false detection in the sky) have no
    floor position: NaN and ``False``.

    Example:
        >>> h = Homography(image_points=[[0, 0], [100, 0], [100, 100], [0, 100]],
        ...                floor_points=[[0, 0], [1, 0], [1, 1], [0, 1]])
        >>> t = Tracks(np.array([[40, 0, 60, 50]]), np.ones(1), np.array([3]),
        ...            np.array([[100.0, 0.0]]), timestamp=0.0)
        >>> floor_positions(t, h)[0].round(3).tolist(), floor_speeds(t, h).round(3).tolist()
        ([[0.5, 0.5]], [1.0])
    """
    return homography.to_floor_checked(feet(tracks))


def floor_speeds(tracks: Tracks, homography: Homography) -> FloatArray:
    """Each track's floor speed in m/s from its feet's image velocity (NaN off the floor)."""
    start = feet(tracks)
    ahead = start + tracks.velocity.astype(np.float64) * SPEED_STEP_SECONDS
    here, _ = homography.to_floor_checked(start)
    there, _ = homography.to_floor_checked(ahead)
    speeds: FloatArray = np.sqrt(((there - here) ** 2).sum(axis=1)) / SPEED_STEP_SECONDS
    return speeds


class Heatmap:
    """Person-seconds per square cell of the floor (metres) or of the image (pixels).

    ``add(points, seconds)`` credits each point with ``seconds`` in its cell. With
    ``bounds=(x_min, y_min, x_max, y_max)`` the grid is fixed and points outside it
    go to :attr:`outside_person_seconds`; without, the grid grows to cover every
    point (up to ``max_cells`` cells; farther points go to ``outside_person_seconds``).
    Points that are NaN (feet off the floor) count as outside too, so
    :attr:`person_seconds` (grid + outside) is every second seen. Row 0 of
    :attr:`grid` holds the smallest y, column 0 the smallest x.
    """

    def __init__(
        self,
        cell: float = 0.5,
        bounds: tuple[float, float, float, float] | None = None,
        *,
        unit: Unit = "m",
        max_cells: int = 4_000_000,
    ) -> None:
        if not (math.isfinite(cell) and cell > 0):
            raise ValueError(f"cell must be a finite size > 0, got {cell}")
        if unit not in ("m", "px"):
            raise ValueError(f"unit must be 'm' or 'px', got {unit!r}")
        if max_cells < 1:
            raise ValueError(f"max_cells must be >= 1, got {max_cells}")
        self.cell = float(cell)
        self.unit: Unit = unit
        self.max_cells = int(max_cells)
        self.fixed = bounds is not None
        self.outside_person_seconds = 0.0
        if bounds is None:
            self._origin = np.zeros(2)
            self._grid = np.zeros((0, 0))
            return
        x_min, y_min, x_max, y_max = (float(v) for v in bounds)
        if not all(map(math.isfinite, (x_min, y_min, x_max, y_max))) or not (
            x_max > x_min and y_max > y_min
        ):
            raise ValueError(f"bounds must be finite (x_min, y_min, x_max, y_max), got {bounds}")
        cols = math.ceil((x_max - x_min) / self.cell)
        rows = math.ceil((y_max - y_min) / self.cell)
        if rows * cols > self.max_cells:
            raise ValueError(
                f"bounds {bounds} at cell {cell} need {rows * cols} cells (max_cells {max_cells})"
            )
        self._origin = np.array([x_min, y_min])
        self._grid = np.zeros((rows, cols))

    @property
    def grid(self) -> FloatArray:
        """Person-seconds per cell, shape (rows along y, cols along x)."""
        return self._grid

    @property
    def origin(self) -> tuple[float, float]:
        """The lower corner (smallest x, smallest y) of cell [0, 0]."""
        return float(self._origin[0]), float(self._origin[1])

    @property
    def person_seconds(self) -> float:
        """Every person-second added: inside the grid and outside it."""
        return float(self._grid.sum()) + self.outside_person_seconds

    def add(self, points: npt.ArrayLike, seconds: float) -> None:
        """Credit each (x, y) point with ``seconds`` (e.g. one frame interval)."""
        if not (math.isfinite(seconds) and seconds >= 0):
            raise ValueError(f"seconds must be a finite number >= 0, got {seconds}")
        pts = np.asarray(points, np.float64).reshape(-1, 2)
        if len(pts) == 0 or seconds == 0:
            return
        cells = np.floor((pts - self._origin) / self.cell)
        # NaN (feet off the floor) compares False everywhere: never fits.
        fits = self._fits(cells)
        if not self.fixed and not fits.all():
            finite = np.isfinite(cells).all(axis=1)
            if finite.any():
                cells[finite] = self._grow(cells[finite].astype(np.int64))
                fits = self._fits(cells)
        cols = self._grid.shape[1]
        placed = cells[fits].astype(np.int64)
        np.add.at(self._grid.reshape(-1), placed[:, 1] * cols + placed[:, 0], seconds)
        self.outside_person_seconds += seconds * (len(pts) - int(np.count_nonzero(fits)))

    def _fits(self, cells: FloatArray) -> BoolArray:
        rows, cols = self._grid.shape
        fits: BoolArray = np.logical_and(
            (cells >= 0).all(axis=1), (cells < (cols, rows)).all(axis=1)
        )
        return fits

    def _grow(self, cells: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
        """Enlarge the grid to cover these cells (grid-relative); return them re-based."""
        rows, cols = self._grid.shape
        low = np.minimum(cells.min(axis=0), 0) if rows else cells.min(axis=0)
        high = np.maximum(cells.max(axis=0) + 1, (cols, rows)) if rows else cells.max(axis=0) + 1
        size = high - low
        if (rows and np.array_equal(low, (0, 0)) and np.array_equal(size, (cols, rows))) or int(
            size[0]
        ) * int(size[1]) > self.max_cells:
            return cells
        grown = np.zeros((int(size[1]), int(size[0])))
        if rows:
            grown[-low[1] : -low[1] + rows, -low[0] : -low[0] + cols] = self._grid
        self._grid = grown
        self._origin = self._origin + low * self.cell
        return cells - low

    def cell_centres(self) -> tuple[FloatArray, FloatArray]:
        """x and y of every cell's centre, each shaped like :attr:`grid`."""
        rows, cols = self._grid.shape
        x = self._origin[0] + (np.arange(cols) + 0.5) * self.cell
        y = self._origin[1] + (np.arange(rows) + 0.5) * self.cell
        xx, yy = np.meshgrid(x, y)
        return xx, yy

    def to_dict(self) -> dict[str, Any]:
        """The totals for a JSON summary (no per-cell values)."""
        rows, cols = self._grid.shape
        return {
            f"cell_{self.unit}": self.cell,
            "person_seconds": round(self.person_seconds, 3),
            "outside_person_seconds": round(self.outside_person_seconds, 3),
            f"origin_{self.unit}": [round(v, 3) for v in self.origin],
            "shape": [rows, cols],
        }

    def write(self, path: str | Path) -> Path:
        """Save as ``.csv`` (cell centre x, y and person-seconds of every non-empty cell),
        ``.npy`` (the grid) or ``.png`` (a colour map, row 0 at the top, 0 = black)."""
        out = Path(path)
        suffix = out.suffix.lower()
        if suffix not in HEATMAP_SUFFIXES:
            raise ValueError(f"heatmap file must end in .csv, .npy or .png, got {out.name!r}")
        out.parent.mkdir(parents=True, exist_ok=True)
        if suffix == ".npy":
            np.save(out, self._grid)
        elif suffix == ".csv":
            xx, yy = self.cell_centres()
            busy = self._grid > 0
            table = np.column_stack([xx[busy], yy[busy], self._grid[busy]])
            header = f"x_{self.unit},y_{self.unit},person_seconds"
            np.savetxt(out, table, fmt="%.6g", delimiter=",", header=header, comments="")
        else:
            if not cv2.imwrite(str(out), self.image()):
                raise ValueError(f"cannot write {out}")
        return out

    def image(self, min_side_px: int = 256) -> npt.NDArray[np.uint8]:
        """BGR colour map of the grid (brightest = busiest), cells scaled up to be visible."""
        grid = self._grid if self._grid.size else np.zeros((1, 1))
        peak = float(grid.max())
        scaled = np.zeros(grid.shape, np.uint8)
        if peak > 0:
            scaled = np.round(grid / peak * 255).astype(np.uint8)
        coloured = cv2.applyColorMap(scaled, cv2.COLORMAP_INFERNO)
        coloured[grid == 0] = 0
        factor = max(1, math.ceil(min_side_px / max(1, min(grid.shape))))
        factor = min(factor, max(1, 4096 // max(grid.shape)))
        return np.asarray(
            cv2.resize(coloured, None, fx=factor, fy=factor, interpolation=cv2.INTER_NEAREST),
            np.uint8,
        )


def heatmap_for_camera(layout: StoreLayout, camera_id: str, cell: float | None = None) -> Heatmap:
    """A growing heatmap in floor metres (camera with a homography; cell 0.5 m by default)
    or in image pixels (cell 16 px by default)."""
    if layout.camera(camera_id).homography is not None:
        return Heatmap(0.5 if cell is None else cell, unit="m")
    return Heatmap(16.0 if cell is None else cell, unit="px")


@dataclass
class _CameraView:
    timestamp: float
    floor: FloatArray | None
    """Feet on the floor (metres), or None for a camera without a homography."""
    count: int


class StoreOccupancy:
    """People in the store now, over every camera, a person seen twice counted once.

    Feed each camera's tracks as they come (``update``); ``count()`` merges the
    latest view of every camera. Two people of *different* cameras whose feet lie
    within ``merge_distance_m`` on the floor plan, in frames at most
    ``time_tolerance_seconds`` apart, are one person (nearest pairs first; a
    person merges at most once per camera). Cameras not updated for
    ``max_age_seconds`` (offline, lagging) are left out. Cameras without a
    homography cannot be de-duplicated: their people are added as they are.
    Timestamps are each camera's frame clock plus its ``start_time`` (when set),
    so cameras must share a clock.

    Example:
        >>> layout = StoreLayout.model_validate({"store": {"id": "s"}, "cameras": [
        ...     {"id": c, "homography": {"image_points": [[0, 0], [100, 0], [100, 100], [0, 100]],
        ...                              "floor_points": [[x, 0], [x + 1, 0], [x + 1, 1], [x, 1]]}}
        ...     for c, x in (("a", 0.0), ("b", 0.5))]})
        >>> occupancy = StoreOccupancy(layout)
        >>> def person_at(x):   # feet at image x (0-100), y = 100
        ...     return Tracks(np.array([[x - 5, 50, x + 5, 100]]), np.ones(1), np.array([1]),
        ...                   np.zeros((1, 2)), timestamp=0.0)
        >>> occupancy.update("a", person_at(80)); occupancy.update("b", person_at(30))
        >>> occupancy.count()   # both see the person at floor x = 0.8 m
        1
    """

    def __init__(
        self,
        layout: StoreLayout,
        *,
        merge_distance_m: float = 1.0,
        time_tolerance_seconds: float = 0.5,
        max_age_seconds: float = 2.0,
    ) -> None:
        for name, value in (
            ("merge_distance_m", merge_distance_m),
            ("time_tolerance_seconds", time_tolerance_seconds),
            ("max_age_seconds", max_age_seconds),
        ):
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be a finite number >= 0, got {value}")
        self.layout = layout
        self.merge_distance_m = float(merge_distance_m)
        self.time_tolerance_seconds = float(time_tolerance_seconds)
        self.max_age_seconds = float(max_age_seconds)
        self._views: dict[str, _CameraView] = {}

    def update(self, camera_id: str, tracks: Tracks) -> None:
        """This camera's latest tracks (replaces its previous view)."""
        camera = self.layout.camera(camera_id)
        timestamp = float(tracks.timestamp) + (
            camera.start_time.timestamp() if camera.start_time else 0.0
        )
        floor = None
        if camera.homography is not None:
            positions, on_floor = floor_positions(tracks, camera.homography)
            floor = positions[on_floor]
        self._views[camera_id] = _CameraView(timestamp, floor, len(tracks))

    def update_floor(
        self, camera_id: str, timestamp: float, floor: FloatArray | None, count: int
    ) -> None:
        """A camera's latest view already on the floor plan (e.g. another process's camera):
        ``timestamp`` on the shared clock, ``floor`` its people's feet (metres; None for a
        camera without a homography) and ``count`` its people."""
        self._views[camera_id] = _CameraView(float(timestamp), floor, int(count))

    def count(self, now: float | None = None) -> int:
        """People in the store at ``now`` (default: the latest update's time)."""
        unplaced, placed = self.people(now)
        return unplaced + len(placed)

    def people(self, now: float | None = None) -> tuple[int, FloatArray]:
        """The people in the store at ``now``: how many of cameras without a homography,
        and where each other person stands on the floor (N, 2 metres; a person seen by
        several cameras once, at the mean of their feet)."""
        if not self._views:
            return 0, np.zeros((0, 2))
        if now is None:
            now = max(view.timestamp for view in self._views.values())
        fresh = [v for v in self._views.values() if now - v.timestamp <= self.max_age_seconds]
        unplaced = sum(v.count for v in fresh if v.floor is None)
        placed = [v for v in fresh if v.floor is not None]
        groups = self._merge(placed)
        if not groups:
            return unplaced, np.zeros((0, 2))
        points = np.concatenate([v.floor for v in placed if v.floor is not None])
        return unplaced, np.array([points[group].mean(axis=0) for group in groups])

    def _merge(self, views: Sequence[_CameraView]) -> list[list[int]]:
        """Groups of people (indices into the stacked points), one group per person."""
        if not views:
            return []
        floors = [v.floor for v in views if v.floor is not None]
        points = np.concatenate(floors)
        camera = np.repeat(np.arange(len(floors)), [len(f) for f in floors])
        times = np.array([v.timestamp for v in views])[camera]
        gaps = np.sqrt(((points[:, None] - points[None]) ** 2).sum(axis=2))
        joinable = (
            (camera[:, None] != camera[None])
            & (gaps <= self.merge_distance_m)
            & (np.abs(times[:, None] - times[None]) <= self.time_tolerance_seconds)
        )
        groups = [[i] for i in range(len(points))]
        group_of = list(range(len(points)))
        order = np.argsort(np.where(joinable, gaps, np.inf), axis=None)
        for flat in order.tolist():
            a, b = divmod(flat, len(points))
            if not joinable[a, b]:
                break
            ga, gb = group_of[a], group_of[b]
            if ga == gb:
                continue
            merged = groups[ga] + groups[gb]
            # One person per camera: a group never holds two people of the same camera.
            if len({int(camera[i]) for i in merged}) < len(merged):
                continue
            if not joinable[np.ix_(merged, merged)][~np.eye(len(merged), dtype=bool)].all():
                continue
            groups[ga] = merged
            groups[gb] = []
            for i in groups[ga]:
                group_of[i] = ga
        return [group for group in groups if group]
