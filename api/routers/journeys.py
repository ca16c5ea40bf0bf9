"""Customer journeys (paths between zones), the store funnel, custom funnels and displays.

All computed by the pure functions of :mod:`storesense.zones.journeys` and
:mod:`storesense.zones.funnels` from stored events, the same code behind
``storesense count``'s ``journeys``. Anonymous: no track or visit id leaves here, and
rare paths and transitions are folded (k-anonymity).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Annotated, TypeVar

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from storesense.api.auth import Principal, Scope, require
from storesense.api.routers.counts import FromQuery, ToQuery, bucket_step, time_range
from storesense.api.schemas import (
    CustomFunnelOut,
    DisplayOut,
    DisplaysOut,
    FunnelBucketOut,
    FunnelOut,
    FunnelStageOut,
    FunnelStepOut,
    GroupsOut,
    JourneyPathOut,
    JourneysOut,
)
from storesense.api.store.base import EventQuery, Store
from storesense.api.store.read_cache import ANALYTICS_BUSY_FACTOR, Same, read_cache_of
from storesense.zones.config import StoreLayout, ZoneKind
from storesense.zones.events import EventType
from storesense.zones.funnels import (
    StageCount,
    StoreFunnel,
    custom_funnel,
    display_attribution,
    store_funnel_buckets,
)
from storesense.zones.groups import group_footfall
from storesense.zones.journeys import JourneySummary, summarise_journeys

T = TypeVar("T")

router = APIRouter(prefix="/v1", tags=["journeys"])

CSV_COLUMNS = ("kind", "path", "visits")
"""``/v1/journeys?format=csv``: ``kind`` is ``visits``, ``path``, ``other`` or ``transition``;
``path`` joins zone ids with `` > ``."""

ZONE_EVENTS = frozenset({EventType.ZONE_ENTER, EventType.ZONE_EXIT})
MAX_FUNNEL_BUCKETS = 10_000


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
    camera_id = _camera(layout, camera)
    settings = layout.store.journeys

    def compute() -> JourneySummary:
        events = store.query_events(
            EventQuery(start=start, end=end, types=ZONE_EVENTS, camera_id=camera_id)
        )
        return summarise_journeys(
            events,
            path_min_seconds=settings.path_min_seconds,
            path_gap_seconds=settings.path_gap_seconds,
            path_max_length=settings.path_max_length,
            k_anonymity=k_anonymity_of(request, layout),
        )

    summary = _cached(request, ("journeys", start, end, camera_id), compute)
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


def _cached(request: Request, key: tuple[object, ...], compute: Callable[[], T]) -> T:
    """``compute()`` shared per store events version, as counts and metrics are
    (:class:`~storesense.api.store.read_cache.ReadCache`): a dashboard of 64 viewers
    reads a day of events once, not 64 times."""
    store: Store = request.app.state.store
    layout: StoreLayout = request.app.state.layout
    return read_cache_of(request.app.state).get(
        (*key, Same(layout)),
        store.events_version(),
        compute,
        max_age_s=1.0,
        busy_factor=ANALYTICS_BUSY_FACTOR,
    )


def _stages(stages: list[StageCount]) -> list[FunnelStageOut]:
    return [FunnelStageOut(stage=s.stage, count=s.count, rate=s.rate) for s in stages]


@router.get("/funnel", response_model=FunnelOut)
def get_funnel(
    request: Request,
    _: Annotated[Principal, Depends(require(Scope.ANALYST))],
    from_: FromQuery = None,
    to: ToQuery = None,
    bucket: Annotated[str | None, Query(description="15m, 1h, 1d… (optional)")] = None,
) -> FunnelOut:
    """The store funnel in ``[from, to)`` (default: today), optionally per bucket aligned
    in the store's time zone: passers-by → entered → engaged → interacted → purchased
    (transactions from ``POST /v1/transactions``, only when there are some). Scope
    ``analyst``; staff tracks are left out.
    """
    layout: StoreLayout = request.app.state.layout
    start, end = time_range(from_, to, layout.store.tz)
    step = bucket_step(bucket, start, end, MAX_FUNNEL_BUCKETS) if bucket else None
    store: Store = request.app.state.store

    def compute() -> tuple[StoreFunnel, list[StoreFunnel]]:
        events = store.query_events(EventQuery(start=start, end=end))
        till = store.get_transactions(start, end) or None
        return store_funnel_buckets(
            events,
            layout,
            datetime.fromtimestamp(start, UTC),
            datetime.fromtimestamp(end, UTC),
            step,
            till,
        )

    whole, buckets = _cached(request, ("funnel", start, end, step), compute)
    return FunnelOut(
        start=start,
        end=end,
        timezone=layout.store.timezone,
        stages=_stages(whole.stages),
        bounce_rate=whole.bounce_rate,
        buckets=[FunnelBucketOut(bucket_start=b.start, stages=_stages(b.stages)) for b in buckets],
    )


def _custom(
    request: Request,
    funnel_id: str | None,
    steps: list[str],
    within: float,
    from_: str | None,
    to: str | None,
) -> CustomFunnelOut:
    layout: StoreLayout = request.app.state.layout
    start, end = time_range(from_, to, layout.store.tz)
    store: Store = request.app.state.store
    counts = _cached(
        request,
        ("custom-funnel", start, end, tuple(steps), within),
        lambda: custom_funnel(
            store.query_events(EventQuery(start=start, end=end)), layout, steps, within
        ),
    )
    return CustomFunnelOut(
        id=funnel_id,
        start=start,
        end=end,
        within_seconds=within,
        steps=[FunnelStepOut(step=c.stage, count=c.count, rate=c.rate) for c in counts],
    )


@router.get("/funnels/{funnel_id}", response_model=CustomFunnelOut)
def get_layout_funnel(
    request: Request,
    funnel_id: str,
    _: Annotated[Principal, Depends(require(Scope.ANALYST))],
    from_: FromQuery = None,
    to: ToQuery = None,
) -> CustomFunnelOut:
    """A custom funnel of the layout (``store.journeys.funnels``): visits that reached
    each step in order, the last within its ``within_seconds``. Scope ``analyst``."""
    layout: StoreLayout = request.app.state.layout
    funnels = {f.id: f for f in layout.store.journeys.funnels}
    if funnel_id not in funnels:
        raise HTTPException(404, f"unknown funnel {funnel_id!r} (known: {sorted(funnels)})")
    funnel = funnels[funnel_id]
    return _custom(request, funnel_id, funnel.steps, funnel.within_seconds, from_, to)


@router.get("/funnels", response_model=CustomFunnelOut)
def get_query_funnel(
    request: Request,
    _: Annotated[Principal, Depends(require(Scope.ANALYST))],
    steps: Annotated[str, Query(description="zone ids or kind:KIND, comma-separated")],
    within: Annotated[float, Query(gt=0, le=7 * 86400, description="seconds")] = 600.0,
    from_: FromQuery = None,
    to: ToQuery = None,
) -> CustomFunnelOut:
    """An ad-hoc funnel: ``?steps=door,aisle,kind:queue&within=600``. Scope ``analyst``."""
    layout: StoreLayout = request.app.state.layout
    names = [s.strip() for s in steps.split(",") if s.strip()]
    if not names or len(names) > 20:
        raise HTTPException(422, f"steps: give 1 to 20 comma-separated steps, got {steps!r}")
    zone_ids = {z.id for z in layout.zones}
    kinds = {k.value for k in ZoneKind}
    unknown = [
        s
        for s in names
        if (s.removeprefix("kind:") not in kinds if s.startswith("kind:") else s not in zone_ids)
    ]
    if unknown:
        raise HTTPException(
            422, f"steps: unknown zone(s) or kind(s) {unknown} (zones: {sorted(zone_ids)})"
        )
    return _custom(request, None, names, within, from_, to)


@router.get("/displays", response_model=DisplaysOut)
def get_displays(
    request: Request,
    _: Annotated[Principal, Depends(require(Scope.ANALYST))],
    target: Annotated[
        str, Query(description="a zone id, kind:KIND (e.g. kind:queue) or interaction")
    ] = "interaction",
    from_: FromQuery = None,
    to: ToQuery = None,
) -> DisplaysOut:
    """Per ``display`` zone: exposures, mean dwell, and the share of exposed visits that
    reached ``target`` within ``attribution_seconds`` beside the share of unexposed
    visits that did, and the difference (uplift). Observational, not causal. Scope
    ``analyst``.
    """
    layout: StoreLayout = request.app.state.layout
    start, end = time_range(from_, to, layout.store.tz)
    store: Store = request.app.state.store
    events = store.query_events(EventQuery(start=start, end=end))
    try:
        rows = display_attribution(events, layout, target)
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from None
    settings = layout.store.journeys
    return DisplaysOut(
        start=start,
        end=end,
        target=target,
        exposure_seconds=settings.exposure_seconds,
        attribution_seconds=settings.attribution_seconds,
        displays=[DisplayOut(**asdict(row)) for row in rows],
    )


@router.get("/groups", response_model=GroupsOut)
def get_groups(
    request: Request,
    _: Annotated[Principal, Depends(require(Scope.ANALYST))],
    from_: FromQuery = None,
    to: ToQuery = None,
) -> GroupsOut:
    """Footfall as people and as buying units (people who came in together, see
    ``store.journeys.group_*``), with conversion per group beside conversion per person
    (transactions from ``POST /v1/transactions``). Scope ``analyst``."""
    layout: StoreLayout = request.app.state.layout
    start, end = time_range(from_, to, layout.store.tz)
    store: Store = request.app.state.store
    entrance = frozenset(line.id for line in layout.lines if line.entrance)
    events = store.query_events(
        EventQuery(start=start, end=end, types=frozenset({EventType.LINE_CROSS}), targets=entrance)
    )
    till = store.get_transactions(start, end)
    stats = group_footfall(events, entrance, start, end, sum(till.values()) if till else None)
    return GroupsOut(start=start, end=end, **asdict(stats))
