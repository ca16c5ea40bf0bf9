"""Store-wide people count and visits across cameras in the service: camera workers of one
process share one ``StoreVisits`` (``StoreWideAnalytics``), publish the count, and
``GET /v1/occupancy`` serves it as ``store`` with the zones' version and ETag."""

from __future__ import annotations

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
)
from storesense.vision.detections import Tracks
from storesense.zones.config import StoreLayout

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
        published = publish_store_count(store, engine, T0, None)
        version, rows = store.get_occupancy()
        assert published == 2 and rows[STORE_OCCUPANCY_KEY].count == 2
        assert publish_store_count(store, engine, T0 + 1, published) == 2
        assert store.get_occupancy()[0] == version  # unchanged count: no new version
        # An engine without shared store visits publishes nothing.
        assert publish_store_count(store, object(), T0, 5) == 5
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
                {"id": f"floor-{c}", "camera": c, "polygon": whole} for c in ("cam1", "cam2")
            ],
        }
    )
    settings = ServiceSettings(
        store_url="sqlite:///unused.db", occupancy_refresh_s=0.02, realtime=True
    )
    supervisor = WorkerSupervisor(
        layout, store, settings, pipeline_factory=pipeline_factory_for(detector)
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
        events = store.query_events(EventQuery(limit=10_000))
    finally:
        store.close()
    cameras_of: dict[str, set[str]] = {}
    for event in events:
        cameras_of.setdefault(event.attributes["visit_id"], set()).add(event.camera_id)
    assert any(cams == {"cam1", "cam2"} for cams in cameras_of.values()), cameras_of
    people = {e.track_id for e in events if e.camera_id == "cam1"}
    # Each person once although both cameras see everyone.
    assert 1 <= published["count"] <= len(people)
