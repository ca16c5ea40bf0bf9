"""A camera worker's floor heatmap: person-seconds per 0.5 m floor cell and hour, published
to the store as anonymous sums (no track ids, no positions of anyone at any moment).

The same crediting as ``storesense count --heatmap``
(:class:`storesense.api.runtime.count.CountSink`): each frame's people are credited
with the time to the next frame, the last frame with the interval before it.
"""

from __future__ import annotations

import math

import numpy as np
from storesense.api.store.base import HEATMAP_BUCKET_S, HEATMAP_CELL_M, HeatmapCell, Store
from storesense.vision.detections import Tracks
from storesense.zones.config import Homography
from storesense.zones.floorplan import FloatArray, Heatmap, floor_positions

MAX_CREDIT_S = 5.0
"""Longest time one frame's people are credited with: a stalled camera credits no more."""
MAX_CELLS_PER_HOUR = 250_000
"""Grid cap per hour bucket (about 250 m x 250 m at 0.5 m); feet farther off are not counted."""


class LiveHeatmap:
    """Person-seconds per floor cell and hour of one camera with a homography.

    ``add(tracks, timestamp)`` per frame (``timestamp``: the frame's clock; plus
    ``time_origin``, Unix seconds: intervals stay exact on the frame's own clock),
    ``finish()`` at the end of a run, ``take()`` the sums since the last ``take`` as
    :class:`~storesense.api.store.base.HeatmapCell` rows.

    Example:
        >>> from storesense.zones.config import Homography
        >>> h = Homography(image_points=[[0, 0], [100, 0], [100, 100], [0, 100]],
        ...                floor_points=[[0, 0], [10, 0], [10, 10], [0, 10]])
        >>> live = LiveHeatmap("cam1", h)
        >>> person = Tracks(np.array([[22, 0, 32, 50]]), np.ones(1), np.array([1]),
        ...                 np.zeros((1, 2)), timestamp=0.0)
        >>> live.add(person, 7200.0); live.add(person, 7200.5); live.finish()
        >>> live.take()   # feet at (2.7 m, 5 m): cell (5, 10), 0.5 s + the last frame's 0.5 s
        [HeatmapCell(camera_id='cam1', hour=7200.0, x=5, y=10, person_seconds=1.0)]
    """

    def __init__(self, camera_id: str, homography: Homography, time_origin: float = 0.0) -> None:
        self.camera_id = camera_id
        self.homography = homography
        self.time_origin = float(time_origin)
        self._hours: dict[float, Heatmap] = {}
        self._people: FloatArray = np.zeros((0, 2))
        self._last: float | None = None
        self._interval = 0.0
        self._unpublished: dict[tuple[float, int, int], float] = {}

    def add(self, tracks: Tracks, timestamp: float) -> None:
        """This frame's people; the previous frame's are credited with the time since it."""
        if self._last is not None:
            self._interval = timestamp - self._last
            self._credit(self._interval)
        positions, on_floor = floor_positions(tracks, self.homography)
        self._people = positions[on_floor]
        self._last = timestamp

    def finish(self) -> None:
        """End of a run: the last frame lasts as long as the interval before it."""
        if self._last is not None:
            self._credit(self._interval)
        self._people = np.zeros((0, 2))
        self._last = None
        self._interval = 0.0

    def _credit(self, seconds: float) -> None:
        if self._last is None or not math.isfinite(seconds) or seconds <= 0:
            return
        moment = self.time_origin + self._last
        hour = float(math.floor(moment / HEATMAP_BUCKET_S) * HEATMAP_BUCKET_S)
        heatmap = self._hours.get(hour)
        if heatmap is None:
            heatmap = self._hours[hour] = Heatmap(
                HEATMAP_CELL_M, unit="m", max_cells=MAX_CELLS_PER_HOUR
            )
        heatmap.add(self._people, min(seconds, MAX_CREDIT_S))

    def take(self) -> list[HeatmapCell]:
        """The sums since the last ``take`` (or the ones a failed ``publish`` kept)."""
        sums = self._unpublished
        self._unpublished = {}
        for hour, heatmap in self._hours.items():
            column0, row0 = (round(v / HEATMAP_CELL_M) for v in heatmap.origin)
            rows, cols = np.nonzero(heatmap.grid > 0)
            for row, col, seconds in zip(
                rows.tolist(), cols.tolist(), heatmap.grid[rows, cols].tolist(), strict=True
            ):
                key = (hour, column0 + col, row0 + row)
                sums[key] = sums.get(key, 0.0) + seconds
        self._hours = {}
        return [
            HeatmapCell(self.camera_id, hour, x, y, seconds)
            for (hour, x, y), seconds in sorted(sums.items())
        ]

    def publish(self, store: Store) -> int:
        """Add the sums since the last publish to ``store``; returns how many cells.

        On any store error the sums are kept for the next publish and the error raised.
        """
        cells = self.take()
        if not cells:
            return 0
        try:
            store.add_heatmap(cells)
        except Exception:
            for cell in cells:
                key = (cell.hour, cell.x, cell.y)
                self._unpublished[key] = self._unpublished.get(key, 0.0) + cell.person_seconds
            raise
        return len(cells)
