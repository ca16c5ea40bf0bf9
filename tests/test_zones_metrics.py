"""Store metrics on constructed event streams: Little's law, DST buckets, staff, queues."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from storesense.zones.config import StoreLayout
from storesense.zones.events import Event, EventType
from storesense.zones.metrics import bucket_counts, bucket_edges, compute_metrics, littles_law

LONDON = ZoneInfo("Europe/London")
LAYOUT = StoreLayout.model_validate(
    {
        "store": {"id": "s", "timezone": "Europe/London"},
        "cameras": [{"id": "door-cam"}, {"id": "floor-cam"}],
        "zones": [
            {
                "id": "street",
                "camera": "door-cam",
                "kind": "passerby",
                "polygon": [[0, 0], [10, 0], [10, 10], [0, 10]],
            },
            {
                "id": "till",
                "camera": "floor-cam",
                "kind": "queue",
                "polygon": [[0, 0], [10, 0], [10, 10], [0, 10]],
            },
            {
                "id": "back",
                "camera": "floor-cam",
                "kind": "staff_only",
                "staff_after_seconds": 300,
                "polygon": [[20, 0], [30, 0], [30, 10], [20, 10]],
            },
        ],
        "lines": [
            {
                "id": "door",
                "camera": "door-cam",
                "points": [[0, 0], [0, 10]],
                "inside": [5, 5],
                "entrance": True,
            }
        ],
    }
)
T0 = datetime(2026, 6, 1, 9, tzinfo=LONDON)


def cross(track: int, seconds: float, direction: str, camera: str = "door-cam") -> Event:
    return Event.create(
        EventType.LINE_CROSS,
        "s",
        camera,
        "door",
        track,
        T0.timestamp() + seconds,
        {"direction": direction},
    )


def visit(
    zone: str, track: int, enter: float, leave: float, camera: str = "floor-cam"
) -> list[Event]:
    return [
        Event.create(EventType.ZONE_ENTER, "s", camera, zone, track, T0.timestamp() + enter),
        Event.create(
            EventType.ZONE_EXIT,
            "s",
            camera,
            zone,
            track,
            T0.timestamp() + leave,
            {"dwell_seconds": leave - enter},
        ),
    ]


def test_littles_law_on_a_constructed_stream() -> None:
    # One arrival every 60 s for an hour, each stays 300 s; the door camera loses the
    # track ids between in and out (outs come with fresh ids), so there are no per-track visits.
    events = []
    for k in range(60):
        events.append(cross(k, 60.0 * k, "in"))
        events.append(cross(1000 + k, 60.0 * k + 300.0, "out"))
    metrics = compute_metrics(events, LAYOUT, start=T0, end=T0 + timedelta(hours=1))
    assert metrics.footfall == 60
    assert metrics.visit_duration_method == "littles_law"
    # L = 5 people inside on average (except the first 5 minutes' ramp), λ = 1/60 per second.
    expected_inside = (5 * 3600 - (1 + 2 + 3 + 4) * 60) / 3600
    assert metrics.visit_duration_seconds == pytest.approx(expected_inside * 60, rel=1e-3)
    assert 270 < metrics.visit_duration_seconds < 300


def test_per_track_visits_bounce_and_sales_conversion() -> None:
    events = [
        cross(1, 0, "in"),
        cross(1, 20, "out"),
        cross(2, 10, "in"),
        cross(2, 610, "out"),
        cross(3, 30, "in"),
        cross(3, 330, "out"),
        cross(4, 40, "out"),
    ]
    events += visit("street", 10, 0, 5, camera="door-cam") + visit("street", 11, 1, 6, "door-cam")
    events += visit("street", 12, 2, 9, camera="door-cam") + visit("street", 13, 3, 4, "door-cam")
    events += visit("street", 14, 4, 8, camera="door-cam") + visit("street", 15, 5, 7, "door-cam")
    metrics = compute_metrics(
        events,
        LAYOUT,
        start=T0,
        end=T0 + timedelta(hours=1),
        transactions={T0 + timedelta(minutes=30): 2, T0 + timedelta(hours=2): 9},
        bounce_seconds=30,
    )
    assert metrics.footfall == 3
    assert metrics.visit_duration_method == "per_track"
    assert metrics.visit_duration_seconds == pytest.approx((20 + 600 + 300) / 3, abs=1e-3)
    assert metrics.bounce_rate == pytest.approx(1 / 3, abs=1e-3)
    assert metrics.passersby == 6
    assert metrics.shopfront_conversion == pytest.approx(0.5)
    assert metrics.transactions == 2
    assert metrics.sales_conversion == pytest.approx(2 / 3, abs=1e-3)


def test_queue_dwell_occupancy_and_staff_exclusion() -> None:
    events = visit("till", 1, 0, 120) + visit("till", 2, 60, 240) + visit("till", 3, 100, 160)
    # Track 9 spends 400 s in the staff-only room, then stands at the till for an hour.
    events += visit("back", 9, 0, 400) + visit("till", 9, 500, 3500)
    metrics = compute_metrics(events, LAYOUT, start=T0, end=T0 + timedelta(minutes=10))
    assert metrics.staff_tracks == 1
    queue = metrics.queues["till"]
    assert queue.peak_length == 3
    # 120 + 180 + 60 person-seconds over 600 s.
    assert queue.mean_length == pytest.approx(360 / 600, abs=1e-4)
    assert queue.mean_wait_seconds == pytest.approx(120)
    assert metrics.dwell["till"].visits == 3
    assert metrics.dwell["till"].p90_seconds == pytest.approx(168.0)
    with_staff = compute_metrics(
        events,
        LAYOUT,
        start=T0,
        end=T0 + timedelta(minutes=10),
        staff_track_keys=[("floor-cam", 2)],
    )
    assert with_staff.staff_tracks == 2 and with_staff.dwell["till"].visits == 2


def test_day_buckets_follow_local_midnight_across_dst() -> None:
    # Clocks go forward in London at 01:00 UTC on 29 March 2026: that day is 23 hours long.
    start = datetime(2026, 3, 28, tzinfo=LONDON)
    edges = bucket_edges(start, start + timedelta(days=3), timedelta(days=1), LONDON)
    assert [b.isoformat() for b, _ in edges] == [
        "2026-03-28T00:00:00+00:00",
        "2026-03-29T00:00:00+00:00",
        "2026-03-30T00:00:00+01:00",
    ]
    assert [
        (e - b).total_seconds() / 3600
        for b, e in ((b.astimezone(UTC), e.astimezone(UTC)) for b, e in edges)
    ] == [24, 23, 24]
    # 23:30 UTC on the 29th is 00:30 local on the 30th: the third bucket.
    late = datetime(2026, 3, 29, 23, 30, tzinfo=UTC).timestamp()
    early = datetime(2026, 3, 29, 0, 30, tzinfo=UTC).timestamp()
    events = [
        Event.create(EventType.LINE_CROSS, "s", "door-cam", "door", 1, t, {"direction": d})
        for t, d in ((late, "in"), (early, "out"), (early + 60, "in"))
    ]
    rows = bucket_counts(
        events, LAYOUT, start=start, end=start + timedelta(days=3), bucket=timedelta(days=1)
    )
    assert [r["lines"]["door"] for r in rows] == [
        {"in": 0, "out": 0},
        {"in": 1, "out": 1},
        {"in": 1, "out": 0},
    ]
    metrics = compute_metrics(
        events, LAYOUT, start=start, end=start + timedelta(days=3), bucket=timedelta(days=1)
    )
    assert metrics.buckets is not None and [b.footfall for b in metrics.buckets] == [0, 1, 1]


def test_hour_buckets_are_real_hours_on_the_dst_night() -> None:
    start = datetime(2026, 3, 29, tzinfo=LONDON)
    edges = bucket_edges(start, start + timedelta(hours=4), timedelta(hours=1), LONDON)
    durations = [e.timestamp() - b.timestamp() for b, e in edges]
    assert durations == [3600.0] * 3
    assert edges[1][0].isoformat() == "2026-03-29T02:00:00+01:00"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"end": T0 - timedelta(seconds=1)}, "must be after start"),
        ({"bounce_seconds": -1}, "bounce_seconds"),
        ({"bucket": timedelta(0)}, "bucket must be positive"),
    ],
)
def test_bad_parameters(kwargs: dict[str, object], message: str) -> None:
    args: dict[str, object] = {"start": T0, "end": T0 + timedelta(hours=1), **kwargs}
    with pytest.raises(ValueError, match=message):
        compute_metrics([], LAYOUT, **args)
    with pytest.raises(ValueError, match="arrival rate"):
        littles_law(1.0, 0.0)


def on_one_floor_plan(layout: StoreLayout) -> StoreLayout:
    """``layout`` with every camera given a homography onto one floor plan (side by side)."""
    placed = layout.model_dump()
    square = [[0, 0], [10, 0], [10, 10], [0, 10]]
    for x, camera in enumerate(placed["cameras"]):
        camera["homography"] = {
            "image_points": square,
            "floor_points": [[x, 0], [x + 1, 0], [x + 1, 1], [x, 1]],
        }
    return StoreLayout.model_validate(placed)


def test_visit_duration_from_store_visits_when_cameras_share_a_floor_plan() -> None:
    """Cameras on one floor plan: each visit's own time in the store, across cameras
    (``store_visits``), not Little's law. The door camera loses every track between in and
    out, so without the floor plan only Little's law is left."""
    floor_plan = on_one_floor_plan(LAYOUT)

    def seen(
        kind: EventType, camera: str, target: str, track: int, at: float, **extra: object
    ) -> Event:
        attributes = {"visit_id": f"door-cam:{visit_of[track]}", **extra}
        return Event.create(kind, "s", camera, target, track, T0.timestamp() + at, attributes)

    # Tracks 1, 2 and 3 go in; 7 and 8 are two of them at the till (floor camera);
    # 11, 12, 13 are the door camera's fresh tracks of them going out.
    visit_of = {1: 1, 7: 1, 11: 1, 2: 2, 12: 2, 3: 3, 8: 3, 13: 3}
    events = [
        seen(EventType.LINE_CROSS, "door-cam", "door", 1, 0, direction="in"),
        seen(EventType.ZONE_ENTER, "floor-cam", "till", 7, 20),
        seen(EventType.ZONE_EXIT, "floor-cam", "till", 7, 100, dwell_seconds=80.0),
        seen(EventType.LINE_CROSS, "door-cam", "door", 11, 120, direction="out"),
        seen(EventType.LINE_CROSS, "door-cam", "door", 2, 30, direction="in"),
        seen(EventType.LINE_CROSS, "door-cam", "door", 12, 60, direction="out"),
        seen(EventType.LINE_CROSS, "door-cam", "door", 3, 200, direction="in"),
        seen(EventType.ZONE_EXIT, "floor-cam", "till", 8, 260, dwell_seconds=40.0),
        seen(EventType.LINE_CROSS, "door-cam", "door", 13, 290, direction="out"),
    ]
    window = {"start": T0, "end": T0 + timedelta(minutes=5), "bounce_seconds": 60}
    metrics = compute_metrics(events, floor_plan, **window)
    assert metrics.visit_duration_method == "store_visits"
    assert metrics.visit_duration_seconds == pytest.approx((120 + 30 + 90) / 3, abs=1e-3)
    assert metrics.bounce_rate == pytest.approx(1 / 3, abs=1e-3)  # the 30 s visit
    fallback = compute_metrics(events, LAYOUT, **window)
    assert fallback.visit_duration_method == "littles_law"


def test_visit_duration_from_visit_end_events() -> None:
    """A visit that ended has a ``visit_end`` (its time in the store, first to last
    sighting by any camera): that is its duration, however few zone events it has, and the
    visits joined into it (``joined_visits``) are not visits of their own. One that began
    before the range counts from the range's start; one still going on, from its events;
    one that ended twice (a layout change ends every visit) is one visit."""
    floor_plan = on_one_floor_plan(LAYOUT)

    def at(kind: EventType, camera: str, target: str, seconds: float, **attributes: Any) -> Event:
        return Event.create(kind, "s", camera, target, 1, T0.timestamp() + seconds, attributes)

    events = [
        # Visit a: one short till stay, 100 s in the store; b was joined into it.
        at(EventType.ZONE_ENTER, "floor-cam", "till", 40, visit_id="door-cam:1"),
        at(EventType.ZONE_EXIT, "floor-cam", "till", 50, visit_id="door-cam:1", dwell_seconds=10),
        at(EventType.ZONE_ENTER, "floor-cam", "till", 60, visit_id="floor-cam:9"),
        at(
            EventType.VISIT_END,
            "@store",
            "@store",
            110,
            visit_id="door-cam:1",
            dwell_seconds=100.0,
            joined_visits=["floor-cam:9"],
        ),
        # Visit c began 30 s before the range and ended 20 s into it.
        at(EventType.VISIT_END, "@store", "@store", 20, visit_id="door-cam:3", dwell_seconds=50.0),
        # Visit e ended twice (a layout change between): one visit, 120 s to 180 s.
        at(EventType.VISIT_END, "@store", "@store", 150, visit_id="door-cam:5", dwell_seconds=30.0),
        at(EventType.VISIT_END, "@store", "@store", 180, visit_id="door-cam:5", dwell_seconds=20.0),
        # Visit d goes on after the range: from its events, 200 s to 260 s.
        at(EventType.ZONE_ENTER, "floor-cam", "till", 200, visit_id="door-cam:4"),
        at(EventType.ZONE_EXIT, "floor-cam", "till", 260, visit_id="door-cam:4", dwell_seconds=60),
    ]
    metrics = compute_metrics(events, floor_plan, start=T0, end=T0 + timedelta(minutes=5))
    assert metrics.visit_duration_method == "store_visits"
    assert metrics.visit_duration_seconds == pytest.approx((100 + 20 + 60 + 60) / 4, abs=1e-3)
