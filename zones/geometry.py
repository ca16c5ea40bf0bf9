"""Vectorised geometry for the per-frame hot path: points in many polygons, line sides.

Shapely's ``contains_xy`` costs several microseconds per call and one call per
polygon; for a handful of people and ten zones a single crossing-number test
over all points × all edges at once is several times faster (see
``benchmarks/counting.py``). Shapely stays the reference in the tests.

Example:
    >>> import numpy as np
    >>> zones = PolygonSet([np.array([[0, 0], [10, 0], [10, 10], [0, 10]]),
    ...                     np.array([[5, 5], [20, 5], [20, 20]])])
    >>> zones.contains(np.array([[1.0, 1.0], [15.0, 8.0], [30.0, 30.0]])).tolist()
    [[True, False], [False, True], [False, False]]
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
from storesense.zones.config import Anchor

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]


def anchor_points(xyxy: npt.NDArray[np.floating], anchor: Anchor) -> FloatArray:
    """One point per box (N, 2): bottom-centre (feet), centre or top-centre."""
    boxes = np.asarray(xyxy, np.float64)
    x = (boxes[:, 0] + boxes[:, 2]) * 0.5
    if anchor == Anchor.BOTTOM_CENTER:
        y = boxes[:, 3]
    elif anchor == Anchor.TOP_CENTER:
        y = boxes[:, 1]
    else:
        y = (boxes[:, 1] + boxes[:, 3]) * 0.5
    return np.stack([x, y], axis=1)


class PolygonSet:
    """Many polygons tested against many points in one crossing-number pass.

    Edges of every polygon are concatenated; a horizontal ray from each point
    toggles parity per crossed edge, folded per polygon with ``np.logical_xor.reduceat``
    (cheaper than summing crossings with a product by an edge-to-polygon matrix).
    Points exactly on an edge may fall either side (as with any ray test).
    """

    def __init__(self, polygons: Sequence[npt.ArrayLike]) -> None:
        starts: list[FloatArray] = []
        ends: list[FloatArray] = []
        offsets: list[int] = []
        total = 0
        for polygon in polygons:
            vertices = np.asarray(polygon, np.float64).reshape(-1, 2)
            if len(vertices) < 3:
                raise ValueError(f"a polygon needs at least 3 points, got {len(vertices)}")
            offsets.append(total)
            starts.append(vertices)
            ends.append(np.roll(vertices, -1, axis=0))
            total += len(vertices)
        self.count = len(offsets)
        if self.count == 0:
            self._offsets = np.zeros(0, np.int64)
            return
        start = np.concatenate(starts)
        end = np.concatenate(ends)
        self._offsets = np.asarray(offsets, np.int64)
        self._x1, self._y1 = start[:, 0], start[:, 1]
        self._x2, self._y2 = end[:, 0], end[:, 1]
        dy = end[:, 1] - start[:, 1]
        # Horizontal edges never straddle a ray; their slope is irrelevant.
        self._inv_slope = np.where(dy != 0, (end[:, 0] - start[:, 0]) / np.where(dy != 0, dy, 1), 0)

    def contains(self, points: FloatArray) -> BoolArray:
        """(N, 2) points → (N, P) membership."""
        if self.count == 0 or len(points) == 0:
            return np.zeros((len(points), self.count), np.bool_)
        return self.contains_per_edge(points[:, 0:1], points[:, 1:2])

    def contains_per_edge(self, px: FloatArray, py: FloatArray) -> BoolArray:
        """Membership given point coordinates per edge: ``px``/``py`` broadcast to (N, E).

        Lets each polygon use its own anchor: pass (N, E) arrays picked per edge.
        """
        straddles = (self._y1 > py) != (self._y2 > py)
        x_cross = self._x1 + (py - self._y1) * self._inv_slope
        crossings = straddles & (px < x_cross)
        parity: BoolArray = np.logical_xor.reduceat(crossings, self._offsets, axis=1)
        return parity

    def ray_entry_fraction(self, points: FloatArray, displacement: FloatArray) -> FloatArray:
        """Smallest fraction ``t`` in [0, 1] at which ``p + t·d`` hits each polygon's edge.

        (N, 2) points and (N, 2) displacements → (N, P), ``inf`` where the segment
        misses the polygon's boundary.
        """
        n = len(points)
        if self.count == 0 or n == 0:
            return np.full((n, self.count), np.inf)
        ex, ey = self._x1, self._y1
        edge_dx, edge_dy = self._x2 - ex, self._y2 - ey
        px, py = points[:, 0:1], points[:, 1:2]
        dx, dy = displacement[:, 0:1], displacement[:, 1:2]
        denom = dx * edge_dy - dy * edge_dx
        qx, qy = ex - px, ey - py
        with np.errstate(divide="ignore", invalid="ignore"):
            t = (qx * edge_dy - qy * edge_dx) / denom
            u = (qx * dy - qy * dx) / denom
        hit = (denom != 0) & (t >= 0) & (t <= 1) & (u >= 0) & (u <= 1)
        t = np.where(hit, t, np.inf)
        return np.minimum.reduceat(t, self._offsets, axis=1)


class LineSet:
    """Many directed line segments: the signed side of points as one linear form.

    Side is +1 on the line's "in" side, -1 on the other, 0 exactly on the line.
    """

    def __init__(
        self, segments: Sequence[tuple[npt.ArrayLike, npt.ArrayLike]], inside_signs: Sequence[int]
    ) -> None:
        if len(segments) != len(inside_signs):
            raise ValueError("segments and inside_signs differ in length")
        self.count = len(segments)
        pts = np.asarray(
            [[np.asarray(a, np.float64), np.asarray(b, np.float64)] for a, b in segments],
            np.float64,
        ).reshape(-1, 2, 2)
        self._ax, self._ay = pts[:, 0, 0], pts[:, 0, 1]
        self._dx = pts[:, 1, 0] - pts[:, 0, 0]
        self._dy = pts[:, 1, 1] - pts[:, 0, 1]
        length_sq = self._dx**2 + self._dy**2
        if np.any(length_sq == 0):
            raise ValueError("a line's two points are identical")
        self._inv_length_sq = 1.0 / length_sq
        self._sign = np.asarray(inside_signs, np.float64)

    def linear_form(self) -> tuple[FloatArray, FloatArray]:
        """(W, c) with signed distance ``[x, y] @ W + c``, "in" positive; W is (2, L).

        The signed distance is the cross product ``d × (p - a)`` times the "in" sign,
        for a line from ``a`` with direction ``d``.
        """
        weights = np.stack([-self._dy * self._sign, self._dx * self._sign])
        offset = (self._dy * self._ax - self._dx * self._ay) * self._sign
        return weights, offset

    def segments(self) -> list[tuple[float, float, float, float, float, float]]:
        """Per line, as Python floats for scalar code: first end (x, y), direction
        (dx, dy), 1 / length² and the "in" sign."""
        return list(
            zip(
                self._ax.tolist(),
                self._ay.tolist(),
                self._dx.tolist(),
                self._dy.tolist(),
                self._inv_length_sq.tolist(),
                self._sign.tolist(),
                strict=True,
            )
        )
