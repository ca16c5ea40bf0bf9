"""Store metrics from events: footfall, conversion, dwell, occupancy, queues, visits.

Pure functions over :class:`~storesense.zones.events.Event` lists (no I/O), for
any time range, bucketed in the store's local time zone.

Definitions (also in the README):

* footfall — ``in`` crossings of lines with ``entrance: true``; a layout without
  entrance lines uses entries into ``entrance`` zones instead;
* passers-by — distinct tracks entering ``passerby`` zones;
* shopfront conversion — footfall / passers-by;
* visit duration — when every camera has a homography (one floor plan, store-wide
  visits across cameras), each visit's own time in the store: its first to its last
  sighting in the range's events over every camera (``store_visits``); else per track
  (entrance-line ``in`` then ``out`` by the same track of one camera); with neither,
  Little's law: mean number inside / arrival rate, the number inside rebuilt from
  entrance crossings (``littles_law``: a steady-state estimate, unreliable over a range
  of a few minutes or with a few arrivals, where it can read hours);
* bounce rate — share of visits shorter than ``bounce_seconds``;
* shelves — per ``kind: shelf`` zone: interactions, takes (``item_taken``), put-backs
  (``item_returned``), take rate = takes / interactions, put-back rate = put-backs / takes;
* staff — tracks inside ``staff_only`` zones for ``staff_after_seconds`` in total
  (plus ``staff_track_keys``) are left out of every customer figure.

Example:
    >>> from datetime import datetime, timedelta, timezone
    >>> from storesense.zones.config import StoreLayout
    >>> from storesense.zones.events import Event, EventType
    >>> layout = StoreLayout.model_validate({
    ...     "store": {"id": "s"}, "cameras": [{"id": "c"}],
    ...     "lines": [{"id": "door", "camera": "c", "points": [[0, 0], [0, 9]],
    ...                "inside": [5, 5], "entrance": True}]})
    >>> t0 = datetime(2026, 1, 5, 9, tzinfo=timezone.utc).timestamp()
    >>> events = [Event.create(EventType.LINE_CROSS, "s", "c", "door", 1, t0 + 10, {"direction": d})
    ...           for d in ("in",)]
    >>> m = compute_metrics(events, layout, start=datetime(2026, 1, 5, 9, tzinfo=timezone.utc),
    ...                     end=datetime(2026, 1, 5, 10, tzinfo=timezone.utc))
    >>> m.footfall
    1
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
from pydantic import BaseModel
from storesense.zones.config import StoreLayout, ZoneKind
from storesense.zones.events import Event, EventType
from storesense.zones.journeys import JOINED_VISITS_ATTRIBUTE, visit_key
from storesense.zones.shelf import shelf_metrics

TrackKey = tuple[str, int]


class DwellStats(BaseModel):
    visits: int = 0
    mean_seconds: float | None = None
    median_seconds: float | None = None
    p90_seconds: float | None = None


class OccupancyStats(BaseModel):
    mean: float = 0.0
    """Time-weighted over the range."""
    peak: int = 0


class QueueStats(BaseModel):
    mean_length: float = 0.0
    peak_length: int = 0
    mean_wait_seconds: float | None = None
    p90_wait_seconds: float | None = None


class ShelfStats(BaseModel):
    """One shelf zone over the range (see :func:`storesense.zones.shelf.shelf_metrics`)."""

    interactions: int = 0
    takes: int = 0
    put_backs: int = 0
    take_rate: float | None = None
    """Takes per interaction (``None`` without interactions)."""
    put_back_rate: float | None = None
    """Put-backs per take (``None`` without takes)."""


class StoreMetrics(BaseModel):
    start: datetime
    end: datetime
    footfall: int
    passersby: int
    shopfront_conversion: float | None
    bounce_rate: float | None
    visit_duration_seconds: float | None
    visit_duration_method: str | None
    """``store_visits``, ``per_track`` or ``littles_law``."""
    dwell: dict[str, DwellStats]
    occupancy: dict[str, OccupancyStats]
    queues: dict[str, QueueStats]
    transactions: int | None
    sales_conversion: float | None
    staff_tracks: int
    shelves: dict[str, ShelfStats] = {}
    """Per ``kind: shelf`` zone: interactions, takes, put-backs and their rates."""
    buckets: list[StoreMetrics] | None = None
    members: dict[str, float] | None = None
    """Opt-in member aggregates (visits, repeat-visit rate) when the server has opt-in."""


def _aware(moment: datetime, tz: ZoneInfo) -> datetime:
    return moment.replace(tzinfo=tz) if moment.tzinfo is None else moment


def _dwell_stats(values: list[float]) -> DwellStats:
    if not values:
        return DwellStats()
    array = np.asarray(values)
    return DwellStats(
        visits=len(values),
        mean_seconds=round(float(array.mean()), 3),
        median_seconds=round(float(np.median(array)), 3),
        p90_seconds=round(float(np.percentile(array, 90)), 3),
    )


def staff_tracks(events: Iterable[Event], layout: StoreLayout) -> set[TrackKey]:
    """Tracks whose time in a ``staff_only`` zone reaches its ``staff_after_seconds``."""
    threshold = {z.id: z.staff_after_seconds for z in layout.zones if z.kind == ZoneKind.STAFF_ONLY}
    totals: dict[tuple[str, int, str], float] = defaultdict(float)
    for event in events:
        if event.type == EventType.ZONE_EXIT and event.target in threshold:
            totals[(event.camera_id, event.track_id, event.target)] += float(
                event.attributes.get("dwell_seconds", 0.0)
            )
    return {
        (cam, track) for (cam, track, zone), seconds in totals.items() if seconds >= threshold[zone]
    }


def occupancy_timeline(
    events: Iterable[Event],
    target: str,
    enter: tuple[EventType, str | None] = (EventType.ZONE_ENTER, None),
    leave: tuple[EventType, str | None] = (EventType.ZONE_EXIT, None),
) -> list[tuple[float, int]]:
    """(timestamp, count after it) steps for one zone (or line, with directions)."""
    steps: list[tuple[float, int]] = []
    for event in events:
        if event.target != target:
            continue
        direction = event.attributes.get("direction")
        if event.type == enter[0] and (enter[1] is None or direction == enter[1]):
            steps.append((event.timestamp, 1))
        elif event.type == leave[0] and (leave[1] is None or direction == leave[1]):
            steps.append((event.timestamp, -1))
    steps.sort()
    timeline, count = [], 0
    for timestamp, delta in steps:
        count = max(count + delta, 0)
        timeline.append((timestamp, count))
    return timeline


def _time_weighted(timeline: list[tuple[float, int]], start: float, end: float) -> OccupancyStats:
    """Time-weighted mean and peak of an occupancy step function over ``[start, end)``;
    callers clip ``end`` to what was observed (never the future). An empty span is 0.

    >>> _time_weighted([(10.0, 2), (20.0, 0)], 0.0, 40.0)
    OccupancyStats(mean=0.5, peak=2)
    >>> _time_weighted([(10.0, 2)], 0.0, 20.0), _time_weighted([(10.0, 2)], 30.0, 30.0)
    (OccupancyStats(mean=1.0, peak=2), OccupancyStats(mean=0.0, peak=0))
    """
    if end <= start:
        return OccupancyStats(mean=0.0, peak=0)
    count, area, peak, cursor = 0, 0.0, 0, start
    for timestamp, after in timeline:
        if timestamp <= start:
            count = after
            continue
        if timestamp >= end:
            break
        area += count * (timestamp - cursor)
        peak = max(peak, count)
        cursor, count = timestamp, after
    area += count * (end - cursor)
    peak = max(peak, count)
    duration = end - start
    return OccupancyStats(mean=round(area / duration, 4) if duration > 0 else 0.0, peak=peak)


def compute_metrics(
    events: Iterable[Event],
    layout: StoreLayout,
    *,
    start: datetime,
    end: datetime,
    bucket: timedelta | None = None,
    transactions: Mapping[datetime, int] | None = None,
    bounce_seconds: float = 30.0,
    staff_track_keys: Iterable[TrackKey] = (),
    observed_until: datetime | None = None,
) -> StoreMetrics:
    """Store metrics for ``[start, end)``; with ``bucket``, also one per local-time bucket.

    Naive datetimes are read in the store's time zone. ``transactions`` maps a
    time to a till count (e.g. per hour); those inside the range are summed.
    ``observed_until`` (e.g. now, for today) ends the time-weighted means (occupancy,
    queues, Little's law) there when it falls before ``end``: the current count is
    not carried forward into time not yet observed.
    """
    tz = layout.store.tz
    start, end = _aware(start, tz), _aware(end, tz)
    if end <= start:
        raise ValueError(f"end ({end}) must be after start ({start})")
    if bounce_seconds < 0:
        raise ValueError(f"bounce_seconds must be >= 0, got {bounce_seconds}")
    all_events = sorted(events, key=lambda e: e.timestamp)
    staff = staff_tracks(all_events, layout) | set(staff_track_keys)
    customer = [e for e in all_events if (e.camera_id, e.track_id) not in staff]
    timelines = _Timelines(customer, layout)
    observed = math.inf if observed_until is None else _aware(observed_until, tz).timestamp()
    metrics = _metrics(
        customer, layout, timelines, start, end, transactions, bounce_seconds, len(staff), observed
    )
    if bucket is not None:
        metrics.buckets = [
            _metrics(
                customer,
                layout,
                timelines,
                b_start,
                b_end,
                transactions,
                bounce_seconds,
                len(staff),
                observed,
            )
            for b_start, b_end in bucket_edges(start, end, bucket, tz)
        ]
    return metrics


class _Timelines:
    """Occupancy steps of every zone and entrance line over all events, built once for
    the whole range and shared by every bucket."""

    def __init__(self, events: list[Event], layout: StoreLayout) -> None:
        self.zones = {z.id: occupancy_timeline(events, z.id) for z in layout.zones}
        self.entrance_lines = {
            ln.id: occupancy_timeline(
                events, ln.id, (EventType.LINE_CROSS, "in"), (EventType.LINE_CROSS, "out")
            )
            for ln in layout.lines
            if ln.entrance
        }


def _metrics(
    events: list[Event],
    layout: StoreLayout,
    timelines: _Timelines,
    start: datetime,
    end: datetime,
    transactions: Mapping[datetime, int] | None,
    bounce_seconds: float,
    staff_count: int,
    observed_until: float = math.inf,
) -> StoreMetrics:
    t0, t1 = start.timestamp(), end.timestamp()
    seen_until = min(t1, observed_until)
    in_range = [e for e in events if t0 <= e.timestamp < t1]
    kinds = {z.id: z.kind for z in layout.zones}
    entrance_lines = set(timelines.entrance_lines)
    if entrance_lines:
        arrivals = [
            e
            for e in in_range
            if e.type == EventType.LINE_CROSS
            and e.target in entrance_lines
            and e.attributes.get("direction") == "in"
        ]
    else:
        arrivals = [
            e
            for e in in_range
            if e.type == EventType.ZONE_ENTER and kinds.get(e.target) == ZoneKind.ENTRANCE
        ]
    footfall = len(arrivals)
    passersby = len(
        {
            (e.camera_id, e.track_id)
            for e in in_range
            if e.type == EventType.ZONE_ENTER and kinds.get(e.target) == ZoneKind.PASSERBY
        }
    )

    method: str | None = None
    visit_seconds: float | None = None
    visits = _store_visit_durations(in_range, layout, t0)
    if visits:
        method = "store_visits"
    else:
        visits = _per_track_visits(in_range, entrance_lines)
        method = "per_track" if visits else None
    if visits:
        visit_seconds = round(float(np.mean(visits)), 3)
    elif footfall and entrance_lines:
        inside = sum(
            _time_weighted(timeline, t0, seen_until).mean
            for timeline in timelines.entrance_lines.values()
        )
        arrival_rate = footfall / max(seen_until - t0, 1e-9)
        method, visit_seconds = "littles_law", round(littles_law(inside, arrival_rate), 3)
    if not visits:
        visits = [
            float(e.attributes.get("dwell_seconds", 0.0))
            for e in in_range
            if e.type == EventType.ZONE_EXIT and kinds.get(e.target) == ZoneKind.ENTRANCE
        ]
    bounce = sum(v < bounce_seconds for v in visits) / len(visits) if visits else None

    dwell_values: dict[str, list[float]] = defaultdict(list)
    for e in in_range:
        if e.type == EventType.ZONE_EXIT:
            dwell_values[e.target].append(float(e.attributes.get("dwell_seconds", 0.0)))
    zone_ids = [z.id for z in layout.zones]
    occupancy = {z: _time_weighted(timelines.zones[z], t0, seen_until) for z in zone_ids}
    dwell = {z: _dwell_stats(dwell_values[z]) for z in zone_ids}
    queues = {
        z.id: QueueStats(
            mean_length=occupancy[z.id].mean,
            peak_length=occupancy[z.id].peak,
            mean_wait_seconds=dwell[z.id].mean_seconds,
            p90_wait_seconds=dwell[z.id].p90_seconds,
        )
        for z in layout.zones
        if z.kind == ZoneKind.QUEUE
    }
    shelf_ids = [z.id for z in layout.zones if z.kind == ZoneKind.SHELF]
    shelves = {z: ShelfStats() for z in shelf_ids}
    for row in shelf_metrics(in_range, t1 - t0, zone_ids=shelf_ids, origin=t0):
        shelves[row.zone_id] = ShelfStats(
            interactions=row.interactions,
            takes=row.takes,
            put_backs=row.put_backs,
            take_rate=None if row.take_rate is None else round(row.take_rate, 4),
            put_back_rate=None if row.put_back_rate is None else round(row.put_back_rate, 4),
        )
    sold: int | None = None
    if transactions is not None:
        tz = layout.store.tz
        sold = sum(
            n for moment, n in transactions.items() if t0 <= _aware(moment, tz).timestamp() < t1
        )
    return StoreMetrics(
        start=start,
        end=end,
        footfall=footfall,
        passersby=passersby,
        shopfront_conversion=round(footfall / passersby, 4) if passersby else None,
        bounce_rate=round(bounce, 4) if bounce is not None else None,
        visit_duration_seconds=visit_seconds,
        visit_duration_method=method,
        dwell=dwell,
        occupancy=occupancy,
        queues=queues,
        transactions=sold,
        sales_conversion=round(sold / footfall, 4) if sold is not None and footfall else None,
        staff_tracks=staff_count,
        shelves=shelves,
    )


def _store_visit_durations(
    events: list[Event], layout: StoreLayout, start: float = -math.inf
) -> list[float]:
    """Each store-wide visit's time in the store, when every camera of the layout has a
    homography (the cameras share one floor plan and their events carry the visits of
    ``StoreVisits``, which continue from camera to camera); else none.

    A visit that ended in the range has a ``visit_end`` event: its ``dwell_seconds`` (from
    its first sighting by any camera to its last), from ``start`` if it began before.
    Others (going on after the range, or cut off by a killed process) count from their
    first sighting in the range's events to their last (a zone stay from its enter,
    ``dwell_seconds`` before its exit). Visits seen at a single moment are left out."""
    if not layout.cameras or any(c.homography is None for c in layout.cameras):
        return []
    ended: dict[str, tuple[float, float]] = {}
    covered: set[str] = set()
    for e in events:
        if e.type == EventType.VISIT_END:
            # One key may end twice (a layout change ends every visit; the track goes on).
            key = visit_key(e)
            first = e.timestamp - float(e.attributes.get("dwell_seconds", 0.0) or 0.0)
            begun, last = ended.get(key, (first, e.timestamp))
            ended[key] = (min(begun, first), max(last, e.timestamp))
            covered |= {key, *map(str, e.attributes.get(JOINED_VISITS_ATTRIBUTE) or ())}
    spans: dict[str, tuple[float, float]] = {}
    for e in events:
        key = visit_key(e)
        if e.type == EventType.VISIT_END or key in covered:
            continue
        end = e.timestamp
        begin = end - float(e.attributes.get("dwell_seconds", 0.0) or 0.0)
        first, last = spans.get(key, (begin, end))
        spans[key] = (min(first, begin), max(last, end))
    durations = [last - first for first, last in spans.values() if last > first]
    ends = [last - max(first, start) for first, last in ended.values()]
    return [seconds for seconds in ends if seconds > 0] + durations


def _per_track_visits(events: list[Event], entrance_lines: set[str]) -> list[float]:
    """Entrance ``in`` followed by ``out`` of the same camera track: one visit each."""
    came_in: dict[TrackKey, float] = {}
    visits = []
    for e in events:
        if e.type != EventType.LINE_CROSS or e.target not in entrance_lines:
            continue
        key = (e.camera_id, e.track_id)
        if e.attributes.get("direction") == "in":
            came_in[key] = e.timestamp
        elif key in came_in:
            visits.append(e.timestamp - came_in.pop(key))
    return visits


def littles_law(mean_inside: float, arrivals_per_second: float) -> float:
    """Mean time in the system W = L / λ.

    >>> littles_law(4.0, 0.02)
    200.0
    """
    if arrivals_per_second <= 0:
        raise ValueError(f"arrival rate must be > 0, got {arrivals_per_second}")
    return mean_inside / arrivals_per_second


def bucket_edges(
    start: datetime, end: datetime, bucket: timedelta, tz: ZoneInfo
) -> list[tuple[datetime, datetime]]:
    """Buckets covering [start, end), aligned in local time.

    Whole-day buckets start at local midnight and follow the wall clock (a DST
    day is 23 or 25 hours); shorter ones step from local midnight in real time.
    """
    if bucket <= timedelta(0):
        raise ValueError(f"bucket must be positive, got {bucket}")
    local_start = start.astimezone(tz)
    midnight = datetime(local_start.year, local_start.month, local_start.day, tzinfo=tz)
    edges: list[tuple[datetime, datetime]] = []
    whole_days = bucket % timedelta(days=1) == timedelta(0)
    cursor = midnight
    step = 0
    while True:
        if whole_days:
            step += 1
            local_next = (midnight.replace(tzinfo=None) + bucket * step).replace(tzinfo=tz)
        else:
            local_next = datetime.fromtimestamp(cursor.timestamp() + bucket.total_seconds(), tz)
        if local_next.timestamp() > start.timestamp():
            edges.append(
                (
                    max(cursor, start, key=lambda d: d.timestamp()),
                    min(local_next, end, key=lambda d: d.timestamp()),
                )
            )
        if local_next.timestamp() >= end.timestamp():
            return edges
        cursor = local_next


def bucket_counts(
    events: Iterable[Event],
    layout: StoreLayout,
    *,
    start: datetime,
    end: datetime,
    bucket: timedelta,
) -> list[dict[str, Any]]:
    """Per bucket: ``zones[id] = {entries, exits}`` and ``lines[id] = {in, out}``.

    Buckets are aligned in the store's time zone (see :func:`bucket_edges`).
    """
    tz = layout.store.tz
    start, end = _aware(start, tz), _aware(end, tz)
    if end <= start:
        raise ValueError(f"end ({end}) must be after start ({start})")
    edges = bucket_edges(start, end, bucket, tz)
    bounds = np.array([b[0].timestamp() for b in edges] + [edges[-1][1].timestamp()])
    rows: list[dict[str, Any]] = [
        {
            "start": b0.isoformat(),
            "end": b1.isoformat(),
            "zones": {z.id: {"entries": 0, "exits": 0} for z in layout.zones},
            "lines": {ln.id: {"in": 0, "out": 0} for ln in layout.lines},
        }
        for b0, b1 in edges
    ]
    for e in events:
        index = int(np.searchsorted(bounds, e.timestamp, side="right")) - 1
        if not 0 <= index < len(rows):
            continue
        row = rows[index]
        zones, lines = row["zones"], row["lines"]
        if e.type == EventType.ZONE_ENTER and e.target in zones:
            zones[e.target]["entries"] += 1
        elif e.type == EventType.ZONE_EXIT and e.target in zones:
            zones[e.target]["exits"] += 1
        elif e.type == EventType.LINE_CROSS and e.target in lines:
            lines[e.target][str(e.attributes.get("direction"))] += 1
    return rows
