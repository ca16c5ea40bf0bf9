"""Store-wide people count and visits across cameras in the service: camera workers of one
process share one ``StoreVisits`` (``StoreWideAnalytics``), publish the count, and
``GET /v1/occupancy`` serves it as ``store`` with the zones' version and ETag."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient
from service_helpers import SETTINGS, T0, layout_dict, wait_for
from storesense.api.app import create_app
from storesense.api.store import open_store
from storesense.api.store.base import Store
from storesense.api.store_wide import (
    STORE_OCCUPANCY_KEY,
    StoreWideAnalytics,
    publish_store_count,
    store_wide_counts,
)
from storesense.vision.detections import Tracks
from storesense.zones.config import StoreLayout
from storesense.zones.events import EventType
from storesense.zones.store_visits import StoreWideCounts

pytest_plugins = ["service_helpers"]

SQUARE = [[0, 0], [100, 0], [100, 100], [0, 100]]


def _layout(placed: tuple[str, ...] = ("a", "b"), plain: tuple[str, ...] = ()) -> StoreLayout:
    """Cameras ``placed`` see the same square metre of floor (100 px = 1 m)."""
    cameras: list[dict[str, Any]] = [
        {
            "id": camera_id,
            "homography": {
                "image_points": SQUARE,
                "floor_points": [[0, 0], [1, 0], [1, 1], [0, 1]],
            },
        }
        for camera_id in placed
    ]
    cameras += [{"id": camera_id} for camera_id in plain]
    zones = [
        {"id": f"zone-{c['id']}", "camera": c["id"], "polygon": [[0, 0], [100, 0], [100, 100]]}
        for c in cameras
    ]
    return StoreLayout.model_validate({"store": {"id": "s"}, "cameras": cameras, "zones": zones})


def _people(t: float, *xs: float, first_id: int = 1) -> Tracks:
    """People with feet at image (x, 50)."""
    boxes = np.array([[x - 5, 10, x + 5, 50] for x in xs], np.float64).reshape(-1, 4)
    return Tracks(
        boxes,
        np.full(len(xs), 0.9),
        np.arange(first_id, first_id + len(xs)),
        np.zeros((len(xs), 2)),
        timestamp=t,
    )


def test_cameras_of_one_process_share_visits_and_count_each_person_once() -> None:
    layout = _layout()
    engines = StoreWideAnalytics()
    a, b = engines(layout, "a", "run", T0), engines(layout, "b", "run", T0)
    assert a.store_visits is b.store_visits
    for i in range(3):
        a.update(None, _people(0.1 * i, 50))
        b.update(None, _people(0.1 * i, 52, first_id=9))
    # One person seen by both cameras: counted once, one visit for both tracks.
    assert engines.count() == 1
    assert b.store_visits is not None
    assert b.store_visits.visit_of("b", 9) == b.store_visits.visit_of("a", 1) == "a:1"
    # A new layout (edited zones) starts new store visits; the same layout keeps them.
    assert engines.visits_for(layout) is a.store_visits
    edited = _layout(("a", "b", "c"))
    assert engines.visits_for(edited) is not a.store_visits


@pytest.mark.parametrize(
    ("placed", "plain", "expected"), [((), ("p", "q"), 3), (("a",), ("p",), 3)]
)
def test_cameras_without_homography_add_their_people_as_they_are(
    placed: tuple[str, ...], plain: tuple[str, ...], expected: int
) -> None:
    layout = _layout(placed, plain)
    engines = StoreWideAnalytics()
    cameras = [*placed, *plain]
    analytics = {c: engines(layout, c, "run", T0) for c in cameras}
    people = {cameras[0]: (20.0, 80.0), cameras[1]: (50.0,)}
    for camera_id, engine in analytics.items():
        events = engine.update(None, _people(0.0, *people[camera_id]))
        # Each camera's events carry a visit key of its own tracks.
        assert all(e.attributes["visit_id"].startswith(f"{camera_id}:") for e in events)
    assert engines.count() == expected


def test_publishing_writes_only_changes_of_the_store_count(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'store.db'}", "s")
    try:
        engines = StoreWideAnalytics()
        engine = engines(_layout(), "a", "run", T0)
        engine.update(None, _people(0.0, 20, 70))
        published = publish_store_count(store, store_wide_counts(engine), T0, None)
        version, rows = store.get_occupancy()
        assert published is not None and published.count == 2
        assert rows[STORE_OCCUPANCY_KEY].count == 2
        assert publish_store_count(store, store_wide_counts(engine), T0 + 1, published) is published
        assert store.get_occupancy()[0] == version  # unchanged count: no new version
        # An engine without shared store visits publishes nothing.
        last = StoreWideCounts(5, {})
        assert publish_store_count(store, store_wide_counts(object()), T0, last) is last
    finally:
        store.close()


def test_occupancy_endpoint_serves_the_store_count_with_the_etag(store: Store) -> None:
    layout = StoreLayout.model_validate(layout_dict(store.store_id))
    with TestClient(create_app(SETTINGS, store, layout)) as client:
        first = client.get("/v1/occupancy")
        assert first.json()["store"] == {"count": 0, "updated_at": None}
        etag = first.headers["etag"]
        store.set_occupancy(STORE_OCCUPANCY_KEY, {STORE_OCCUPANCY_KEY: 4}, T0)

        def changed() -> httpx.Response | None:
            r = client.get("/v1/occupancy", headers={"If-None-Match": etag})
            return r if r.status_code == 200 else None

        fresh = wait_for(changed, what="a new occupancy version")
        body = fresh.json()
        assert body["store"] == {"count": 4, "updated_at": T0}
        # The store row is not a zone of the layout.
        assert set(body["zones"]) == {"left", "right"}
        again = client.get("/v1/occupancy", headers={"If-None-Match": fresh.headers["etag"]})
        assert again.status_code == 304


# ------------------------------------------------------------------- camera workers
PETS_IMAGE_POINTS = [[50, 550], [718, 550], [524, 150], [244, 150]]
PETS_FLOOR_POINTS = [[0, 0], [10, 0], [10, 15], [0, 15]]
FRAMES = 10


def test_camera_workers_share_visits_and_publish_one_store_count(
    tmp_path: Path, pets09: Path, detector: Any
) -> None:
    """Two cameras showing the same PETS09 clip on the same floor plan: the service's
    workers share visits (one visit id for one person in both cameras' events) and
    publish a store-wide count of each person once."""
    from service_helpers import cut_clip
    from storesense.api.runtime import CameraState, WorkerSupervisor, pipeline_factory_for
    from storesense.api.settings import ServiceSettings
    from storesense.api.store.base import EventQuery

    clip = cut_clip(pets09 / "PETS09-S2L1.avi", tmp_path / "clip.avi", FRAMES)
    store = open_store(f"sqlite:///{tmp_path / 'w.db'}", f"w{uuid.uuid4().hex[:8]}")
    homography = {"image_points": PETS_IMAGE_POINTS, "floor_points": PETS_FLOOR_POINTS}
    whole = [[0, 0], [768, 0], [768, 576], [0, 576]]
    layout = StoreLayout.model_validate(
        {
            "store": {"id": store.store_id, "timezone": "UTC"},
            "cameras": [
                {"id": c, "source": str(clip), "fps": 7, "homography": homography}
                for c in ("cam1", "cam2")
            ],
            "zones": [
                *({"id": f"floor-{c}", "camera": c, "polygon": whole} for c in ("cam1", "cam2")),
                # A store-wide floor zone over the whole plaza both cameras see.
                {"id": "plaza", "floor_polygon": PETS_FLOOR_POINTS},
            ],
        }
    )
    settings = ServiceSettings(
        store_url="sqlite:///unused.db", occupancy_refresh_s=0.02, realtime=True
    )
    live = _RecordingSink()
    supervisor = WorkerSupervisor(
        layout, store, settings, pipeline_factory=pipeline_factory_for(detector), sink=live
    )
    try:
        with TestClient(create_app(settings, store, layout, supervisor=supervisor)) as client:

            def finished() -> bool:
                cameras = client.get("/readyz").json()["cameras"]
                return all(c["state"] == CameraState.FINISHED for c in cameras)

            wait_for(
                finished,
                timeout=60,
                what="both clips processed",
            )
            published = wait_for(
                lambda: (s := client.get("/v1/occupancy").json()["store"])["updated_at"] and s,
                what="the store-wide count",
            )
            plaza = client.get("/v1/zones/plaza/occupancy").json()
            served = client.get(
                "/v1/events",
                params={"from": time.time() - 3600, "to": time.time() + 3600, "zone": "plaza"},
            ).json()
        events = store.query_events(EventQuery(limit=10_000))
    finally:
        store.close()
    cameras_of: dict[str, set[str]] = {}
    for event in events:
        cameras_of.setdefault(event.attributes["visit_id"], set()).add(event.camera_id)
    assert any(cams == {"cam1", "cam2", STORE_OCCUPANCY_KEY} for cams in cameras_of.values())
    # The store-wide floor zone has its own events (camera @store), one enter and one
    # exit per visit however many cameras see it, served by GET /v1/events.
    store_wide = [
        e for e in events if e.camera_id == STORE_OCCUPANCY_KEY and e.type != EventType.VISIT_END
    ]
    assert {e.target for e in store_wide} == {"plaza"}
    assert {e.type for e in store_wide} == {
        EventType.APPROACHING,
        EventType.ZONE_ENTER,
        EventType.ZONE_EXIT,
    }
    # Each visit ends once (``visit_end``, when both runs finished), its ``dwell_seconds``
    # spanning its events on every camera: the visit's time in the store.
    ends = [e for e in events if e.type == EventType.VISIT_END]
    assert ends and {(e.camera_id, e.target) for e in ends} == {(STORE_OCCUPANCY_KEY,) * 2}
    assert len({e.attributes["visit_id"] for e in ends}) == len(ends)
    for end in ends:
        key, began = end.attributes["visit_id"], end.timestamp - end.attributes["dwell_seconds"]
        times = [e.timestamp for e in events if e.attributes["visit_id"] == key]
        assert began - 0.2 <= min(times) and max(times) <= end.timestamp + 0.2, (end, times)
    for visit in cameras_of:
        mine = sorted(
            (e.timestamp, e.type.value)
            for e in store_wide
            if e.attributes["visit_id"] == visit and e.type != EventType.APPROACHING
        )
        assert [t for _, t in mine] == ["zone_enter", "zone_exit"], (visit, mine)
    assert isinstance(served, list), served
    assert sorted(e["event_id"] for e in served) == sorted(e.event_id for e in store_wide)
    people = {e.track_id for e in events if e.camera_id == "cam1"}
    # Each person once although both cameras see everyone.
    assert 1 <= published["count"] <= len(people)
    # The store-wide floor zone too, published by the workers beside the store count.
    assert plaza["camera"] is None and 1 <= plaza["count"] <= len(people)
    assert plaza["updated_at"] == published["updated_at"]
    # The live sink (MQTT) gets the store-wide floor zone's counts too, as camera "@store",
    # and they change as people come and go.
    floor_counts = [c["plaza"] for camera, c in live.occupancies if camera == STORE_OCCUPANCY_KEY]
    assert floor_counts and max(floor_counts) >= 1
    assert len(set(floor_counts)) > 1
    assert all(
        set(c) == {"plaza"} for camera, c in live.occupancies if camera == STORE_OCCUPANCY_KEY
    )


class _RecordingSink:
    """A live sink (the MQTT publisher's interface) that keeps what it is handed."""

    def __init__(self) -> None:
        self.occupancies: list[tuple[str, dict[str, int]]] = []

    def events(self, camera_id: str, events: Any) -> None:
        pass

    def occupancy(self, camera_id: str, counts: Any, approaching: Any, timestamp: float) -> None:
        self.occupancies.append((camera_id, dict(counts)))


# ------------------------------------------------------------ store-wide floor zones
def _overlapping(zones: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """Camera ``a`` sees floor x 0-1 m, ``b`` x 0.5-1.5 m (100 px = 1 m, feet at y 0.5 m);
    store-wide floor zones ``middle`` (x 0.6-1.0, seen by both) and ``east`` (x 1.1-1.5,
    only ``b``)."""

    def camera(camera_id: str, x: float) -> dict[str, Any]:
        floor = [[x, 0], [x + 1, 0], [x + 1, 1], [x, 1]]
        return {"id": camera_id, "homography": {"image_points": SQUARE, "floor_points": floor}}

    return {
        "store": {"id": "s"},
        "cameras": [camera("a", 0.0), camera("b", 0.5)],
        "zones": zones
        if zones is not None
        else [
            {"id": "middle", "floor_polygon": [[0.6, 0], [1.0, 0], [1.0, 1], [0.6, 1]]},
            {"id": "east", "floor_polygon": [[1.1, 0], [1.5, 0], [1.5, 1], [1.1, 1]]},
            {"id": "a-view", "camera": "a", "polygon": SQUARE},
        ],
    }


def test_a_person_in_the_overlap_counts_once_in_a_store_wide_floor_zone() -> None:
    layout = StoreLayout.model_validate(_overlapping())
    assert [z.id for z in layout.store_zones] == ["middle", "east"]
    assert [z.id for z in layout.zones_of("a")] == ["a-view"] and not layout.zones_of("b")
    engines = StoreWideAnalytics()
    a, b = engines(layout, "a", "run", T0), engines(layout, "b", "run", T0)
    assert b.store_visits is not None
    for i in range(3):
        # Floor x 0.8 m: image x 80 in a and 30 in b. Floor x 1.3 m: only b (image x 80).
        a.update(None, _people(0.1 * i, 80))
        b.update(None, _people(0.1 * i, 32, 80, first_id=9))
    counts = b.store_visits.counts()
    # Both cameras see the person in the middle: one person there, not two.
    assert counts.count == 2 and counts.zones == {"middle": 1, "east": 1}
    # The person in the middle walks out of it (to floor x 0.2 m, only a sees them).
    a.update(None, _people(0.3, 20))
    b.update(None, _people(0.3, 80, first_id=10))
    assert b.store_visits.counts().zones == {"middle": 0, "east": 1}


def test_store_wide_floor_zones_are_served_like_zones_with_the_etag(store: Store) -> None:
    from storesense.api.auth import new_key

    layout = StoreLayout.model_validate({**_overlapping(), "store": {"id": store.store_id}})
    key, record = new_key("lobby screen", ["display"])
    store.put_api_key(record)
    headers = {"X-API-Key": key}
    engines = StoreWideAnalytics()
    a, b = engines(layout, "a", "run", T0), engines(layout, "b", "run", T0)
    for i in range(3):
        a.update(None, _people(0.1 * i, 80))
        b.update(None, _people(0.1 * i, 32, 80, first_id=9))
    with TestClient(create_app(SETTINGS, store, layout)) as client:
        assert client.get("/v1/zones/middle/occupancy").status_code == 401
        first = client.get("/v1/occupancy", headers=headers)
        assert first.json()["zones"]["middle"]["count"] == 0
        published = publish_store_count(store, store_wide_counts(b), T0, None)
        assert published is not None and published.zones == {"middle": 1, "east": 1}
        # Unchanged counts: nothing written, no new version.
        version = store.get_occupancy()[0]
        assert publish_store_count(store, store_wide_counts(a), T0 + 1, published) is published
        assert store.get_occupancy()[0] == version

        def changed() -> httpx.Response | None:
            r = client.get(
                "/v1/occupancy", headers={**headers, "If-None-Match": first.headers["etag"]}
            )
            return r if r.status_code == 200 else None

        body = wait_for(changed, what="the store-wide zones published")
        zones = body.json()["zones"]
        assert body.json()["store"]["count"] == 2
        assert {z: zones[z]["count"] for z in zones} == {"middle": 1, "east": 1, "a-view": 0}
        assert zones["middle"]["camera"] is None and zones["a-view"]["camera"] == "a"
        one = client.get("/v1/zones/middle/occupancy", headers=headers)
        assert one.status_code == 200 and one.headers["etag"] == body.headers["etag"]
        assert one.json() == {**zones["middle"], "approaching": 0, "updated_at": T0}
        again = client.get(
            "/v1/zones/middle/occupancy", headers={**headers, "If-None-Match": one.headers["etag"]}
        )
        assert again.status_code == 304


@pytest.mark.parametrize(
    ("zone", "cameras", "message"),
    [
        (
            {"id": "f", "floor_polygon": [[0, 0], [1, 0], [1, 1]]},
            [{"id": "plain"}],
            "zones[0].camera: omitted, so 'f' is a store-wide floor zone, but no camera has a "
            "homography",
        ),
        (
            {"id": "f", "polygon": [[0, 0], [100, 0], [100, 100]]},
            None,
            "zones[0]: polygon is in one camera's pixels: give that camera",
        ),
        (
            {"id": "f", "kind": "shelf", "floor_polygon": [[0, 0], [1, 0], [1, 1]]},
            None,
            "zones[0]: kind 'shelf' needs one camera's view",
        ),
        (
            {"id": "@store", "camera": "a", "polygon": [[0, 0], [100, 0], [100, 100]]},
            None,
            "zones[0].id: '@store': ids starting with @ are reserved",
        ),
        (
            {"id": "f", "floor_polygon": [[0, 0], [1, 0], [1, 1]]},
            [{"id": "@store"}, {"id": "a"}],
            "cameras[0].id: '@store': ids starting with @ are reserved",
        ),
        (
            {"id": "f", "floor_polygon": [[0, 0], [1, 1], [1, 0], [0, 1]]},
            None,
            "zones[0].floor_polygon: self-intersecting",
        ),
    ],
)
def test_store_wide_floor_zones_are_validated(
    zone: dict[str, Any], cameras: list[dict[str, Any]] | None, message: str
) -> None:
    from storesense.zones.config import LayoutError, parse_layout

    data = _overlapping([zone])
    if cameras is not None:
        data["cameras"] = cameras
    with pytest.raises(LayoutError) as raised:
        parse_layout(data)
    assert str(raised.value).startswith(message), str(raised.value)


def test_a_bad_store_wide_zone_is_422_from_the_api(store: Store) -> None:
    layout = StoreLayout.model_validate(layout_dict(store.store_id))
    body = layout_dict(store.store_id)
    body["zones"].append({"id": "hall", "floor_polygon": [[0, 0], [5, 0], [5, 5]]})
    with TestClient(create_app(SETTINGS, store, layout)) as client:
        response = client.put("/v1/layout", json=body)
        assert response.status_code == 422, response.text
        errors = response.json()["errors"]
        assert any(
            e["path"] == "zones[2].camera" and "no camera has a homography" in e["message"]
            for e in errors
        ), errors
        body["cameras"][0]["homography"] = {
            "image_points": PETS_IMAGE_POINTS,
            "floor_points": PETS_FLOOR_POINTS,
        }
        assert client.put("/v1/layout", json=body).status_code == 200
        served = client.get("/v1/occupancy").json()["zones"]["hall"]
        assert served["camera"] is None and served["count"] == 0


def test_a_person_hidden_in_a_store_wide_floor_zone_stays_counted_while_lost() -> None:
    """Every camera loses a person standing in ``middle`` (hidden behind someone): the zone
    keeps them for the camera's ``lost_after_seconds`` (2 s), then lets them go; the store
    count does not hold them."""
    layout = StoreLayout.model_validate(_overlapping())
    visits = StoreWideAnalytics()(layout, "a", "run", T0).store_visits
    assert visits is not None
    for i in range(5):
        visits.update("a", _people(0.1 * i, 80))
        visits.update("b", _people(0.1 * i, 32, first_id=9))
    assert visits.counts().zones["middle"] == 1
    for t, inside in ((1.0, 1), (2.3, 1), (2.5, 0)):
        visits.update("a", _people(t))
        visits.update("b", _people(t))
        now = visits.counts()
        assert (now.count, now.zones["middle"]) == (0, inside), t
