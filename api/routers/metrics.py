"""Store metrics (footfall, conversion, dwell, occupancy, queues) from ``zones.metrics``."""

from __future__ import annotations

import time
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response
from storesense.api.auth import Principal, Scope, require
from storesense.api.routers.counts import FromQuery, ToQuery, bucket_step, time_range
from storesense.api.store.base import EventQuery, Store
from storesense.api.store.read_cache import ANALYTICS_BUSY_FACTOR, Same, read_cache_of
from storesense.zones.config import StoreLayout
from storesense.zones.metrics import StoreMetrics, compute_metrics

router = APIRouter(prefix="/v1", tags=["metrics"])

MAX_METRIC_BUCKETS = 10_000


@router.get("/metrics", response_model=StoreMetrics)
def get_metrics(
    request: Request,
    _: Annotated[Principal, Depends(require(Scope.ANALYST))],
    from_: FromQuery = None,
    to: ToQuery = None,
    bucket: Annotated[str | None, Query(description="15m, 1h, 1d… (optional)")] = None,
) -> Response:
    """Footfall, passers-by, conversions (sales conversion from ``POST /v1/transactions``),
    dwell, occupancy and queues for ``[from, to)`` (default: today in the store's time zone),
    optionally per bucket (scope ``analyst``).
    """
    layout: StoreLayout = request.app.state.layout
    start, end = time_range(from_, to, layout.store.tz)
    step = bucket_step(bucket, start, end, MAX_METRIC_BUCKETS) if bucket else None
    store: Store = request.app.state.store

    def compute() -> bytes:
        events = store.query_events(EventQuery(start=start, end=end))
        till = store.get_transactions(start, end)
        optin = getattr(request.app.state, "optin", None)
        staff_keys = optin.staff_track_keys(start, end) if optin is not None else set()
        metrics = compute_metrics(
            events,
            layout,
            start=datetime.fromtimestamp(start, UTC),
            end=datetime.fromtimestamp(end, UTC),
            bucket=step,
            transactions={datetime.fromtimestamp(t, UTC): n for t, n in till.items()} or None,
            staff_track_keys=staff_keys,
            observed_until=datetime.fromtimestamp(time.time(), UTC),
        )
        if optin is not None:
            metrics.members = asdict(optin.aggregates(start, end))
        return metrics.model_dump_json().encode()

    # The rendered body, shared per events version and at most 1 s old (transactions,
    # opt-in aggregates and "now" change without events).
    body = read_cache_of(request.app.state).get(
        ("metrics", Same(layout), start, end, step),
        store.events_version(),
        compute,
        max_age_s=1.0,
        busy_factor=ANALYTICS_BUSY_FACTOR,
    )
    return Response(body, media_type="application/json")
