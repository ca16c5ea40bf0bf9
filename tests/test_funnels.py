"""Store funnel, custom funnels and display attribution: pure functions and the API."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from service_helpers import SETTINGS, T0
from storesense.api.app import create_app
from storesense.api.store import open_store
from storesense.api.store.base import Store
from storesense.zones.config import StoreLayout
from storesense.zones.events import Event, EventType
from storesense.zones.funnels import custom_funnel, display_attribution, store_funnel_buckets
from storesense.zones.journeys import ZoneStay

pytest_plugins = ["service_helpers"]


def box(x: float) -> list[list[float]]:
    return [[x, 0], [x + 90, 0], [x + 90, 90], [x, 90]]


def shop_layout() -> StoreLayout:
    zones: list[dict[str, Any]] = [
        {"id": zid, "camera": "c", "kind": kind, "polygon": box(100 * i)}
        for i, (zid, kind) in enumerate(
            [
                ("street", "passerby"),
                ("aisle", "area"),
                ("screen", "display"),
                ("till", "queue"),
                ("back", "staff_only"),
            ]
        )
    ]
    return StoreLayout.model_validate(
        {
            "store": {
                "id": "shop",
                "timezone": "Europe/London",
                "journeys": {
                    "engaged_seconds": 10,
                    "exposure_seconds": 2,
                    "attribution_seconds": 60,
                    "funnels": [
                        {"id": "to-till", "steps": ["aisle", "till"], "within_seconds": 60}
                    ],
                },
            },
            "cameras": [{"id": "c"}],
            "zones": zones,
            "lines": [
                {
                    "id": "door",
                    "camera": "c",
                    "points": [[0, 100], [500, 100]],
                    "inside": [50, 150],
                    "entrance": True,
                }
            ],
        }
    )


def stay(track: int, zone: str, start: float, seconds: float) -> list[Event]:
    return [
        Event.create(EventType.ZONE_ENTER, "shop", "c", zone, track, T0 + start),
        Event.create(
            EventType.ZONE_EXIT,
            "shop",
            "c",
            zone,
            track,
            T0 + start + seconds,
            {"dwell_seconds": seconds},
        ),
    ]


def event(kind: EventType, track: int, target: str, at: float, **attrs: Any) -> Event:
    return Event.create(kind, "shop", "c", target, track, T0 + at, attrs)


def funnel_stream() -> list[Event]:
    events: list[Event] = []
    for track in range(1, 7):  # six passers-by
        events += stay(track, "street", track, 2)
    for track in range(1, 5):  # four come in
        events.append(event(EventType.LINE_CROSS, track, "door", 10 + track, direction="in"))
    for track in (1, 2, 3):  # three engage (12 s ≥ 10 s in a product zone)
        events += stay(track, "aisle", 20, 12)
    events += stay(4, "aisle", 20, 5)  # one bounces
    events += stay(4, "till", 40, 30)  # a queue is not a product zone
    for track in (1, 2):  # two touch a shelf
        events.append(event(EventType.SHELF_INTERACTION, track, "aisle", 25))
    # Staff: 70 s in the back room; their aisle time counts nowhere.
    events += stay(99, "back", 0, 70) + stay(99, "aisle", 80, 30)
    return events


def test_store_funnel_stages_rates_and_bounce() -> None:
    layout = shop_layout()
    start = datetime.fromtimestamp(T0, UTC)
    whole, buckets = store_funnel_buckets(
        funnel_stream(), layout, start, start + timedelta(hours=1), None, {T0 + 100: 1}
    )
    assert [(s.stage, s.count, s.rate) for s in whole.stages] == [
        ("passersby", 6, None),
        ("entered", 4, 0.6667),
        ("engaged", 3, 0.75),
        ("interacted", 2, 0.6667),
        ("purchased", 1, 0.5),
    ]
    assert whole.bounce_rate == 0.25
    assert buckets == []


def test_store_funnel_buckets_and_no_purchases_without_transactions() -> None:
    layout = shop_layout()
    events = [*funnel_stream(), event(EventType.LINE_CROSS, 50, "door", 1800 + 5, direction="in")]
    start = datetime.fromtimestamp(T0, UTC)
    whole, buckets = store_funnel_buckets(
        events, layout, start, start + timedelta(hours=1), timedelta(minutes=30)
    )
    assert [s.stage for s in whole.stages] == ["passersby", "entered", "engaged", "interacted"]
    assert [b.start for b in buckets] == [T0, T0 + 1800]
    # Whoever came in also passed by (the street zone missed track 50): the stages nest.
    assert [[s.count for s in b.stages] for b in buckets] == [[6, 4, 3, 2], [1, 1, 0, 0]]
    assert buckets[1].stages[1].rate == 1.0
    assert buckets[1].bounce_rate == 1.0


def test_store_funnel_stages_nest() -> None:
    """Engaged could exceed entered when one counted door crossings and the other visits:
    now every stage is a set of the previous stage's visits."""
    layout = shop_layout()
    events = funnel_stream()
    # Track 1 goes out and in again: still one visit that entered.
    events.append(event(EventType.LINE_CROSS, 1, "door", 50, direction="out"))
    events.append(event(EventType.LINE_CROSS, 1, "door", 55, direction="in"))
    # Tracks 20-24 were inside before the range (or their entry was missed): they linger
    # in the aisle and one touches a shelf, with no entry seen.
    for track in range(20, 25):
        events += stay(track, "aisle", 30, 40)
    events.append(event(EventType.SHELF_INTERACTION, 20, "aisle", 35))
    # Track 4 touches a shelf after only 5 s in the aisle: touching is engaging.
    events.append(event(EventType.ITEM_TAKEN, 4, "aisle", 22))
    start = datetime.fromtimestamp(T0, UTC)
    whole, buckets = store_funnel_buckets(
        events, layout, start, start + timedelta(hours=1), timedelta(minutes=10)
    )
    counts = {s.stage: s.count for s in whole.stages}
    assert counts == {"passersby": 6, "entered": 4, "engaged": 4, "interacted": 3}
    assert whole.bounce_rate == 0.0
    for funnel in [whole, *buckets]:
        numbers = [s.count for s in funnel.stages]
        assert numbers == sorted(numbers, reverse=True), numbers
        assert all(s.rate is None or s.rate <= 1 for s in funnel.stages)


def test_custom_funnel_counts_steps_in_order_within_the_window() -> None:
    layout = shop_layout()
    events = stay(1, "aisle", 0, 5) + stay(1, "till", 30, 5)  # in order, in time
    events += stay(2, "aisle", 0, 5) + stay(2, "till", 100, 5)  # too late
    events += stay(3, "till", 0, 5) + stay(3, "aisle", 10, 5)  # wrong order
    events += stay(4, "aisle", 0, 0.5) + stay(4, "till", 5, 5)  # aisle too short
    events += stay(5, "aisle", 0, 5) + stay(5, "aisle", 200, 5) + stay(5, "till", 230, 5)
    counts = custom_funnel(events, layout, ["aisle", "till"], 60)
    assert [(c.stage, c.count, c.rate) for c in counts] == [("aisle", 4, None), ("till", 2, 0.5)]
    by_kind = custom_funnel(events, layout, ["kind:area", "kind:queue"], 60)
    assert [c.count for c in by_kind] == [4, 2]


def test_display_attribution_with_exposed_and_unexposed_visits() -> None:
    layout = shop_layout()
    events = [*stay(1, "screen", 0, 3), event(EventType.ITEM_TAKEN, 1, "aisle", 30)]
    events += stay(2, "screen", 0, 4)  # exposed, never reaches the target
    late = event(EventType.ITEM_TAKEN, 3, "aisle", 100)  # after the 60 s window
    events += [*stay(3, "screen", 0, 3), late]
    events += [*stay(4, "screen", 0, 1), event(EventType.SHELF_INTERACTION, 4, "aisle", 5)]
    events += [*stay(5, "aisle", 0, 20), event(EventType.SHELF_INTERACTION, 5, "aisle", 5)]
    events += stay(6, "aisle", 0, 20)
    (row,) = display_attribution(events, layout, "interaction")
    assert row.display == "screen"
    assert row.exposures == 3  # visit 4 stayed 1 s < exposure_seconds
    assert row.mean_dwell_seconds == pytest.approx(10 / 3, abs=1e-3)
    assert (row.exposed_reached, row.exposed_rate) == (1, 0.3333)
    assert (row.unexposed_visits, row.unexposed_reached, row.unexposed_rate) == (3, 2, 0.6667)
    assert row.uplift == pytest.approx(0.3333 - 0.6667)
    (till,) = display_attribution(events + stay(2, "till", 20, 5), layout, "till")
    assert (till.exposed_reached, till.unexposed_reached) == (1, 0)
    with pytest.raises(ValueError, match="unknown target"):
        display_attribution(events, layout, "nowhere")


def test_funnel_reach_rejects_bad_input() -> None:
    from storesense.zones.funnels import funnel_reach

    with pytest.raises(ValueError, match="at least one step"):
        funnel_reach({"v": [ZoneStay(0, 1, "a")]}, [], within_seconds=5)
    with pytest.raises(ValueError, match="within_seconds"):
        funnel_reach({}, ["a"], within_seconds=0)


@pytest.fixture()
def shop_store(tmp_path: Path) -> Iterator[Store]:
    opened = open_store(f"sqlite:///{tmp_path / 'funnel.db'}", "shop")
    opened.write_events(funnel_stream())
    opened.add_transactions({T0 + 600: 1})
    yield opened
    opened.close()


def test_funnel_api_has_exactly_the_dashboard_shape(shop_store: Store) -> None:
    with TestClient(create_app(SETTINGS, shop_store, shop_layout())) as client:
        response = client.get("/v1/funnel", params={"from": T0, "to": T0 + 3600, "bucket": "30m"})
    assert response.status_code == 200
    body = response.json()
    stages = [
        {"stage": "passersby", "count": 6, "rate": None},
        {"stage": "entered", "count": 4, "rate": 0.6667},
        {"stage": "engaged", "count": 3, "rate": 0.75},
        {"stage": "interacted", "count": 2, "rate": 0.6667},
        {"stage": "purchased", "count": 1, "rate": 0.5},
    ]
    assert body == {
        "start": T0,
        "end": T0 + 3600,
        "timezone": "Europe/London",
        "stages": stages,
        "bounce_rate": 0.25,
        "buckets": [
            {"bucket_start": T0, "stages": stages},
            {
                "bucket_start": T0 + 1800,
                "stages": [
                    {"stage": s, "count": 0, "rate": None}
                    for s in ("passersby", "entered", "engaged", "interacted", "purchased")
                ],
            },
        ],
    }


def test_custom_funnel_and_display_endpoints(shop_store: Store) -> None:
    extra = stay(7, "aisle", 100, 5) + stay(7, "till", 120, 5) + stay(8, "screen", 100, 5)
    shop_store.write_events(extra)
    hour = {"from": T0, "to": T0 + 3600}
    with TestClient(create_app(SETTINGS, shop_store, shop_layout())) as client:
        named = client.get("/v1/funnels/to-till", params=hour).json()
        adhoc = client.get(
            "/v1/funnels", params={**hour, "steps": "aisle,kind:queue", "within": 10}
        ).json()
        displays = client.get("/v1/displays", params={**hour, "target": "till"}).json()
        missing = client.get("/v1/funnels/nope", params=hour)
        bad_steps = client.get("/v1/funnels", params={**hour, "steps": "aisle,attic"})
        bad_target = client.get("/v1/displays", params={**hour, "target": "attic"})
        bad_bucket = client.get("/v1/funnel", params={**hour, "bucket": "0m"})
    assert named["id"] == "to-till" and named["within_seconds"] == 60
    # aisle: visits 1-4 and 7; till within 60 s of the aisle: 4 (20 → 40) and 7.
    assert named["steps"] == [
        {"step": "aisle", "count": 5, "rate": None},
        {"step": "till", "count": 2, "rate": 0.4},
    ]
    assert adhoc["id"] is None
    assert [s["count"] for s in adhoc["steps"]] == [5, 0]  # both took 20 s > 10 s
    assert displays["displays"][0]["display"] == "screen"
    assert displays["displays"][0]["exposures"] == 1
    assert "not causal" in displays["note"]
    assert missing.status_code == 404 and "to-till" in missing.json()["detail"]
    assert bad_steps.status_code == 422 and "attic" in bad_steps.json()["detail"]
    assert bad_target.status_code == 422 and "unknown target" in bad_target.json()["detail"]
    assert bad_bucket.status_code == 422


# ------------------------------------------------------------------- groups
def door_layout(**journeys: Any) -> StoreLayout:
    return StoreLayout.model_validate(
        {
            "store": {"id": "shop", "journeys": journeys},
            "cameras": [{"id": "c"}],
            "lines": [
                {
                    "id": "door",
                    "camera": "c",
                    "points": [[0, 300], [768, 300]],
                    "inside": [384, 500],
                    "entrance": True,
                }
            ],
        }
    )


def walkers(t: float, people: dict[int, tuple[float, float]]) -> Any:
    """Tracks at time t: id → (feet x, feet y), boxes 100 px tall."""
    import numpy as np
    from storesense.vision.detections import Tracks

    ids = list(people)
    xyxy = np.array([[x - 20, y - 100, x + 20, y] for x, y in people.values()]).reshape(-1, 4)
    return Tracks(xyxy, np.ones(len(ids)), np.array(ids), np.zeros((len(ids), 2)), timestamp=t)


def group_stream() -> list[Any]:
    """Frames at 5 fps: a couple walks in side by side (ids 1, 2, 40 px apart); 1 s later
    a stranger (3) crosses far away; 10 s later a person alone (4); then two people (5, 6)
    who cross within a second of each other but came from opposite sides."""
    frames = []
    for i in range(60):
        t = i * 0.2
        people: dict[int, tuple[float, float]] = {}
        y = 200 + 40 * t  # walking down through y = 300 at t = 2.5 s
        if y < 576:
            people[1] = (100, y)
            people[2] = (140, y + 5)
        y3 = 200 + 40 * (t - 1)
        if t - 1 >= 0 and y3 < 576:
            people[3] = (600, y3)
        frames.append(walkers(t, people))
    for i in range(60):
        t = 12 + i * 0.2
        people = {4: (384, 200 + 40 * (t - 12))}
        x5, x6 = 100 + 60 * (t - 12), 700 - 60 * (t - 12)
        people[5] = (x5, 200 + 40 * (t - 12))
        people[6] = (x6, 210 + 40 * (t - 12))
        frames.append(walkers(t, people))
    return frames


def test_groups_of_people_who_come_in_together() -> None:
    from storesense.zones.camera import CameraAnalytics
    from storesense.zones.groups import group_footfall

    layout = door_layout()
    analytics = CameraAnalytics(layout, "c", shelves=False)
    events: list[Event] = []
    frames = group_stream()
    for frame in frames:
        events += analytics.update(None, frame)
    events += analytics.finish(frames[-1].timestamp + 0.2)
    crossings = {e.track_id: e.attributes["group_id"] for e in events if e.type == "line_cross"}
    assert sorted(crossings) == [1, 2, 3, 4, 5, 6]
    assert crossings[1] == crossings[2] == "c:2"  # 2 walks 5 px ahead: crosses first
    assert len({crossings[i] for i in (3, 4, 5, 6)}) == 4
    stats = group_footfall(events, {"door"}, 0.0, 100.0, transactions=2)
    assert (stats.footfall, stats.groups, stats.mean_group_size) == (6, 5, 1.2)
    assert (stats.conversion_per_group, stats.conversion_per_person) == (0.4, 0.3333)


@pytest.mark.parametrize(
    ("journeys", "couple"),
    [
        ({"group_distance": 0.2}, False),  # 40 px apart = 0.4 box heights: too far
        ({"group_seconds": 0.1}, False),  # they cross 0.2 s apart
        ({"group_together_seconds": 10.0}, False),  # not seen together for 5 s
        ({"group_seconds": 0.5, "group_distance": 0.5}, True),
    ],
)
def test_group_thresholds_are_configurable(journeys: dict[str, Any], couple: bool) -> None:
    from storesense.zones.camera import CameraAnalytics

    analytics = CameraAnalytics(door_layout(**journeys), "c", shelves=False)
    events: list[Event] = []
    for frame in group_stream():
        events += analytics.update(None, frame)
    groups = {e.track_id: e.attributes["group_id"] for e in events if e.type == "line_cross"}
    assert (groups[1] == groups[2]) is couple


def test_groups_endpoint(tmp_path: Path) -> None:
    from storesense.zones.camera import CameraAnalytics

    layout = door_layout()
    analytics = CameraAnalytics(layout, "c", shelves=False, time_origin=T0)
    events: list[Event] = []
    for frame in group_stream():
        events += analytics.update(None, frame)
    store = open_store(f"sqlite:///{tmp_path / 'groups.db'}", "shop")
    try:
        store.write_events(events)
        hour = {"from": T0, "to": T0 + 3600}
        with TestClient(create_app(SETTINGS, store, layout)) as client:
            before = client.get("/v1/groups", params=hour).json()
            store.add_transactions({T0: 2})
            after = client.get("/v1/groups", params=hour).json()
    finally:
        store.close()
    assert before == {
        "start": T0,
        "end": T0 + 3600,
        "footfall": 6,
        "groups": 5,
        "mean_group_size": 1.2,
        "transactions": None,
        "conversion_per_group": None,
        "conversion_per_person": None,
    }
    assert (after["conversion_per_group"], after["conversion_per_person"]) == (0.4, 0.3333)
