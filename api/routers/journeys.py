"""Customer journeys (paths between zones), the store funnel, custom funnels and displays.

All computed by the pure functions of :mod:`storesense.zones.journeys` and
:mod:`storesense.zones.funnels` from stored events, the same code behind
``storesense count``'s ``journeys``. Anonymous: no track or visit id leaves here, and
rare paths and transitions are folded (k-anonymity).
"""

from __future__ import annotations

import csv
import io
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from storesense.api.auth import Principal, Scope, require
from storesense.api.routers.counts import FromQuery, ToQuery, time_range
from storesense.api.schemas import JourneyPathOut, JourneysOut
from storesense.api.store.base import EventQuery, Store
from storesense.zones.config import StoreLayout
from storesense.zones.events import EventType
from storesense.zones.journeys import JourneySummary, summarise_journeys

router = APIRouter(prefix="/v1", tags=["journeys"])

CSV_COLUMNS = ("kind", "path", "visits")
"""``/v1/journeys?format=csv``: ``kind`` is ``visits``, ``path``, ``other`` or ``transition``;
``path`` joins zone ids with `` > ``."""

ZONE_EVENTS = frozenset({EventType.ZONE_ENTER, EventType.ZONE_EXIT})


def k_anonymity_of(request: Request, layout: StoreLayout) -> int:
    """The stricter of the service's ``k_anonymity`` and the store's journeys setting."""
    return max(int(request.app.state.settings.k_anonymity), layout.store.journeys.k_anonymity)


def _camera(layout: StoreLayout, camera: str | None) -> str | None:
    if camera is not None and camera not in {c.id for c in layout.cameras}:
        known = sorted(c.id for c in layout.cameras)
        raise HTTPException(422, f"unknown camera {camera!r} (known: {known})")
    return camera


def _journeys_csv(summary: JourneySummary) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    writer.writerow(["visits", "", summary.visits])
    for path, visits in summary.paths:
        writer.writerow(["path", " > ".join(path), visits])
    writer.writerow(["other", "", summary.other_visits])
    for a, row in summary.transitions.items():
        for b, visits in row.items():
            writer.writerow(["transition", f"{a} > {b}", visits])
    return out.getvalue()


@router.get(
    "/journeys",
    response_model=JourneysOut,
    responses={200: {"content": {"text/csv": {}}, "description": "JSON, or CSV"}},
)
def get_journeys(
    request: Request,
    _: Annotated[Principal, Depends(require(Scope.ANALYST))],
    from_: FromQuery = None,
    to: ToQuery = None,
    camera: Annotated[str | None, Query(description="only this camera's visits")] = None,
    format: Annotated[str, Query(pattern="^(json|csv)$", description="json or csv")] = "json",
) -> JourneysOut | Response:
    """Visits, transitions between zones and the most frequent paths in ``[from, to)``
    (default: today in the store's time zone), scope ``analyst``.

    A zone stay counts in the range its exit falls in. Paths and transitions seen fewer
    than k times (the stricter of the service's ``k_anonymity`` and the store's
    ``journeys.k_anonymity``) are folded: paths into ``other_visits``, transitions left
    out. ``format=csv`` (or ``Accept: text/csv``) gives CSV.
    """
    layout: StoreLayout = request.app.state.layout
    start, end = time_range(from_, to, layout.store.tz)
    store: Store = request.app.state.store
    events = store.query_events(
        EventQuery(start=start, end=end, types=ZONE_EVENTS, camera_id=_camera(layout, camera))
    )
    settings = layout.store.journeys
    summary = summarise_journeys(
        events,
        path_min_seconds=settings.path_min_seconds,
        path_gap_seconds=settings.path_gap_seconds,
        path_max_length=settings.path_max_length,
        k_anonymity=k_anonymity_of(request, layout),
    )
    if format == "csv" or "text/csv" in request.headers.get("accept", ""):
        return Response(
            _journeys_csv(summary),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": 'attachment; filename="journeys.csv"'},
        )
    return JourneysOut(
        start=start,
        end=end,
        visits=summary.visits,
        transitions=summary.transitions,
        paths=[JourneyPathOut(path=list(path), visits=n) for path, n in summary.paths],
        k_anonymity=summary.k_anonymity,
        other_visits=summary.other_visits,
    )
