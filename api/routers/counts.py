"""Time-bucketed counts per zone and line, as JSON or CSV (``Accept: text/csv``).

Buckets (``15m``, ``1h``, ``1d``…) are aligned in the store's time zone by
:func:`storesense.zones.metrics.bucket_counts` — the same events and the same
function behind ``storesense count``. With ``k_anonymity`` = k > 0, a bucket
count below k is suppressed (``null`` in JSON, empty in CSV).
"""

from __future__ import annotations

import csv
import io
import math
import time
from datetime import UTC, datetime, timedelta
from typing import Annotated, cast
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from storesense.api.auth import Principal, Scope, require
from storesense.api.schemas import CountRow, CountsOut, unix_text
from storesense.api.store.base import Store
from storesense.api.store.read_cache import ANALYTICS_BUSY_FACTOR, Same, read_cache_of
from storesense.zones.config import StoreLayout
from storesense.zones.events import Event, EventType
from storesense.zones.timemodel import QUERY_AHEAD_S, check_range, parse_bucket, parse_timestamp

router = APIRouter(prefix="/v1", tags=["counts"])

MAX_BUCKETS = 100_000
MAX_ROWS = 250_000
"""Rows (buckets x zones and lines x 2 measures) in one answer: 26 hours of one-second
buckets over six zones and a line were 1.3 million rows, 12 s and 179 MB of JSON."""
CSV_COLUMNS = ("bucket_start", "bucket_start_iso", "target", "kind", "measure", "count")


FromQuery = Annotated[
    str | None,
    Query(alias="from", description="Unix seconds or ISO 8601; default: today's local midnight"),
]
ToQuery = Annotated[
    str | None,
    Query(description="Unix seconds or ISO 8601 (exclusive); default: the end of that day"),
]


def bucket_step(text: str, start: float, end: float, max_buckets: int) -> timedelta:
    """The ``bucket`` query parameter for ``[start, end)``, or 422 with the reason (malformed,
    or more than ``max_buckets`` buckets)."""
    try:
        step = parse_bucket(text)
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from None
    if (end - start) / step.total_seconds() > max_buckets:
        raise HTTPException(422, f"more than {max_buckets} buckets: use a larger bucket")
    return step


def _local_midnight(moment: float, timezone: ZoneInfo | None, days: int = 0) -> float:
    """Unix time of the local midnight starting ``moment``'s day, ``days`` later (DST-safe)."""
    local = datetime.fromtimestamp(moment, timezone)
    wall = datetime(local.year, local.month, local.day) + timedelta(days=days)
    return wall.replace(tzinfo=timezone).timestamp()


def time_range(
    from_: str | None, to: str | None, timezone: ZoneInfo | None = None
) -> tuple[float, float]:
    """Validated ``[from, to)`` in Unix seconds (:mod:`storesense.zones.timemodel`), or 422
    with the reason.

    With ``timezone``, a missing ``from`` is the start of today there and a
    missing ``to`` the end of that day, so ``GET /v1/counts`` alone is today.
    """
    if (from_ is None or to is None) and timezone is None:
        raise HTTPException(422, "'from' and 'to' are required")
    try:
        if from_ is None:
            start = _local_midnight(time.time(), timezone)
        else:
            start = parse_timestamp(from_, what="'from'", ahead_s=QUERY_AHEAD_S)
        if to is None:
            end = _local_midnight(start, timezone, days=1)
        else:
            end = parse_timestamp(to, what="'to'", ahead_s=QUERY_AHEAD_S)
        check_range(start, end)
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from None
    return start, end


def count_rows(
    store: Store,
    layout: StoreLayout,
    start: float,
    end: float,
    bucket: timedelta,
    *,
    zones: set[str] | None,
    lines: set[str] | None,
    k_anonymity: int,
) -> list[CountRow]:
    from storesense.zones.metrics import bucket_counts

    # Only timestamp, type, target and direction are counted: read just those
    # (an EventFact has every field of an Event that bucket_counts reads).
    events = cast(
        "list[Event]",
        store.event_facts(
            start, end, frozenset({EventType.ZONE_ENTER, EventType.ZONE_EXIT, EventType.LINE_CROSS})
        ),
    )
    buckets = bucket_counts(
        events,
        layout,
        start=datetime.fromtimestamp(start, UTC),
        end=datetime.fromtimestamp(end, UTC),
        bucket=bucket,
    )
    rows: list[CountRow] = []
    filtering = zones is not None or lines is not None
    for item in buckets:
        begins = datetime.fromisoformat(item["start"])
        groups = (("zone", item["zones"], zones), ("line", item["lines"], lines))
        for kind, per_target, wanted in groups:
            for target, measures in per_target.items():
                if filtering and (wanted is None or target not in wanted):
                    continue
                for measure, count in measures.items():
                    shown = None if 0 < count < k_anonymity else int(count)
                    rows.append(
                        CountRow(
                            bucket_start=begins.timestamp(),
                            bucket_start_iso=begins.isoformat(),
                            target=target,
                            kind=kind,
                            measure=measure,
                            count=shown,
                        )
                    )
    return rows


def _csv(rows: list[CountRow]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for row in rows:
        writer.writerow(
            [
                unix_text(row.bucket_start),
                row.bucket_start_iso,
                row.target,
                row.kind,
                row.measure,
                "" if row.count is None else row.count,
            ]
        )
    return out.getvalue()


@router.get(
    "/counts",
    response_model=CountsOut,
    responses={200: {"content": {"text/csv": {}}, "description": "JSON, or CSV on Accept"}},
)
def get_counts(
    request: Request,
    _: Annotated[Principal, Depends(require(Scope.ANALYST))],
    from_: FromQuery = None,
    to: ToQuery = None,
    bucket: Annotated[str, Query(description="15m, 1h, 1d…, aligned in the store's zone")] = "1h",
    zone: Annotated[list[str] | None, Query(description="zone ids; repeatable")] = None,
    line: Annotated[list[str] | None, Query(description="line ids; repeatable")] = None,
) -> CountsOut | Response:
    """Zone entries/exits and line in/out per bucket (scope ``analyst``).

    ``Accept: text/csv`` gives CSV. Without ``zone``/``line`` every zone and line is listed.
    """
    layout: StoreLayout = request.app.state.layout
    start, end = time_range(from_, to, layout.store.tz)
    step = bucket_step(bucket, start, end, MAX_BUCKETS)
    known_zones = {z.id for z in layout.zones}
    known_lines = {ln.id for ln in layout.lines}
    for given, known, what in ((zone, known_zones, "zone"), (line, known_lines, "line")):
        unknown = set(given or ()) - known
        if unknown:
            raise HTTPException(
                422, f"unknown {what}(s) {sorted(unknown)} (known: {sorted(known)})"
            )
    series = 2 * (
        len(known_zones) + len(known_lines)
        if zone is None and line is None
        else len(set(zone or ())) + len(set(line or ()))
    )
    row_count = math.ceil((end - start) / step.total_seconds()) * series
    if row_count > MAX_ROWS:
        raise HTTPException(
            422,
            f"{row_count} rows (buckets x zones and lines x 2) exceed the {MAX_ROWS} limit: "
            "use a larger bucket, a shorter range or fewer zone/line parameters",
        )
    k: int = request.app.state.settings.k_anonymity
    store: Store = request.app.state.store
    zones_wanted = frozenset(zone) if zone else None
    lines_wanted = frozenset(line) if line else None
    as_csv = "text/csv" in request.headers.get("accept", "")

    def render() -> bytes:
        rows = count_rows(
            store,
            layout,
            start,
            end,
            step,
            zones=None if zones_wanted is None else set(zones_wanted),
            lines=None if lines_wanted is None else set(lines_wanted),
            k_anonymity=k,
        )
        if as_csv:
            return _csv(rows).encode()
        out = CountsOut(
            start=start,
            end=end,
            bucket=bucket,
            timezone=layout.store.timezone,
            k_anonymity=k,
            rows=rows,
        )
        return out.model_dump_json().encode()

    # The rendered body, once per events version, shared by concurrent callers.
    body = read_cache_of(request.app.state).get(
        ("counts", Same(layout), start, end, step, bucket, zones_wanted, lines_wanted, k, as_csv),
        store.events_version(),
        render,
        busy_factor=ANALYTICS_BUSY_FACTOR,
    )
    if as_csv:
        return Response(
            body,
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": 'attachment; filename="counts.csv"'},
        )
    return Response(body, media_type="application/json")
