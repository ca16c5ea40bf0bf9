"""Floor heatmap: person-seconds per 0.5 m floor cell over a time range, from the sums the
camera workers publish (cameras with a homography only). Aggregate only: no track ids, no
positions of anyone at any moment; hours are the finest time resolution stored.
"""

from __future__ import annotations

import math
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from storesense.api.auth import Principal, Scope, require
from storesense.api.routers.counts import FromQuery, ToQuery, time_range
from storesense.api.schemas import HeatmapOut
from storesense.api.store.base import HEATMAP_BUCKET_S, HEATMAP_CELL_M, HeatmapCell, Store
from storesense.zones.config import StoreLayout

router = APIRouter(prefix="/v1", tags=["heatmap"])

NO_HOMOGRAPHY = (
    "no camera of the layout has a homography, so there is no floor heatmap: give a camera "
    "'homography' (image_points and floor_points) in the layout"
)


def floor_cameras(layout: StoreLayout, camera: str | None) -> list[str]:
    """The cameras to sum: ``camera`` (422 unknown, 404 without a homography) or every
    camera with a homography (404 when none has one)."""
    if camera is not None:
        known = sorted(c.id for c in layout.cameras)
        if camera not in known:
            raise HTTPException(422, f"unknown camera {camera!r} (known: {known})")
        if layout.camera(camera).homography is None:
            raise HTTPException(
                404, f"camera {camera!r} has no homography, so it has no floor heatmap"
            )
        return [camera]
    cameras = sorted(c.id for c in layout.cameras if c.homography is not None)
    if not cameras:
        raise HTTPException(404, NO_HOMOGRAPHY)
    return cameras


def heatmap_out(
    cells: list[HeatmapCell], cameras: list[str], start: float, end: float, hours_start: float
) -> HeatmapOut:
    """Sum ``cells`` of ``cameras`` over their hours into one floor grid."""
    wanted = set(cameras)
    sums: dict[tuple[int, int], float] = {}
    for cell in cells:
        if cell.camera_id in wanted:
            sums[(cell.x, cell.y)] = sums.get((cell.x, cell.y), 0.0) + cell.person_seconds
    if sums:
        xs = [x for x, _ in sums]
        ys = [y for _, y in sums]
        origin = [min(xs) * HEATMAP_CELL_M, min(ys) * HEATMAP_CELL_M]
        shape = [max(ys) - min(ys) + 1, max(xs) - min(xs) + 1]
    else:
        origin, shape = [0.0, 0.0], [0, 0]
    return HeatmapOut(
        start=start,
        end=end,
        hours_start=hours_start,
        cameras=cameras,
        cell_m=HEATMAP_CELL_M,
        origin_m=origin,
        shape=shape,
        person_seconds=sum(sums.values()),
        cells=[
            [(x + 0.5) * HEATMAP_CELL_M, (y + 0.5) * HEATMAP_CELL_M, seconds]
            for (x, y), seconds in sorted(sums.items(), key=lambda item: (item[0][1], item[0][0]))
        ],
    )


@router.get(
    "/heatmap",
    response_model=HeatmapOut,
    responses={404: {"description": "no camera (or not the given camera) has a homography"}},
)
def get_heatmap(
    request: Request,
    _: Annotated[Principal, Depends(require(Scope.ANALYST))],
    from_: FromQuery = None,
    to: ToQuery = None,
    camera: Annotated[
        str | None, Query(description="one camera's heatmap; default: every camera summed")
    ] = None,
) -> HeatmapOut:
    """Person-seconds per floor cell (scope ``analyst``), summed over the hours that overlap
    ``[from, to)`` and over the cameras with a homography (overlapping cameras add up).
    """
    layout: StoreLayout = request.app.state.layout
    start, end = time_range(from_, to, layout.store.tz)
    cameras = floor_cameras(layout, camera)
    hours_start = math.floor(start / HEATMAP_BUCKET_S) * HEATMAP_BUCKET_S
    store: Store = request.app.state.store
    cells = store.get_heatmap(float(hours_start), end, camera)
    return heatmap_out(cells, cameras, start, end, float(hours_start))
