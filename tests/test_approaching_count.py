"""The live ``approaching`` count per zone: camera analytics → store → ``/v1/occupancy``."""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient
from service_helpers import SETTINGS, T0, layout_dict, wait_for
from storesense.api.app import create_app
from storesense.api.store import open_store
from storesense.api.store.base import Store
from storesense.api.store.spool import SpoolingStore
from storesense.vision.detections import Tracks
from storesense.zones.camera import CameraAnalytics
from storesense.zones.config import StoreLayout
from storesense.zones.events import EventType

pytest_plugins = ["service_helpers"]

ZONE = [[100, 0], [200, 0], [200, 100], [100, 100]]


def _layout(approach: float = 3.0) -> StoreLayout:
    return StoreLayout.model_validate(
        {
            "store": {"id": "s"},
            "cameras": [{"id": "c"}],
            "zones": [
                {"id": "shop", "camera": "c", "polygon": ZONE, "approach_seconds": approach},
                {"id": "far", "camera": "c", "polygon": [[900, 900], [950, 900], [950, 950]]},
            ],
        }
    )


def _walker(x: float, vx: float, t: float, track_id: int = 1) -> Tracks:
    """One person whose feet are at (x, 50), walking at ``vx`` px/s."""
    return Tracks(
        np.array([[x - 5, 20, x + 5, 50]]),
        np.array([0.9]),
        np.array([track_id]),
        np.array([[vx, 0.0]]),
        timestamp=t,
    )


def _nobody(t: float, lost: list[int] | None = None) -> Tracks:
    return Tracks(
        np.zeros((0, 4)),
        np.zeros(0),
        np.zeros(0, np.int64),
        np.zeros((0, 2)),
        timestamp=t,
        lost_ids=np.array(lost or [], np.int64),
    )


def _walk(analytics: CameraAnalytics, frames: list[Tracks]) -> list[dict[str, int]]:
    counts = []
    for tracks in frames:
        analytics.update(None, tracks)
        counts.append(analytics.approaching())
    return counts


def test_a_walker_counts_as_approaching_until_it_enters() -> None:
    analytics = CameraAnalytics(_layout(), "c", time_origin=T0)
    # 40 px/s from x=20 towards the zone's left edge at x=100: it enters after 2 s.
    frames = [_walker(20 + 40 * t, 40.0, t) for t in np.arange(0, 3.01, 0.25)]
    counts = _walk(analytics, frames)
    assert counts[0] == {"shop": 1, "far": 0}
    inside_from = next(i for i, f in enumerate(frames) if f.xyxy[0, 0] + 5 >= 100)
    assert all(c["shop"] == 1 for c in counts[:inside_from])
    assert all(c["shop"] == 0 for c in counts[inside_from:])
    assert analytics.occupancy()["shop"] == 1


@pytest.mark.parametrize(
    ("name", "after"),
    [
        # Stops short of the zone: the predicted entry time passes without an entry.
        ("stops", [_walker(60, 0.0, t) for t in np.arange(0.25, 4.01, 0.25)]),
        # The tracker says the person left the scene.
        ("lost", [_nobody(0.25, lost=[1])]),
        # Unseen for longer than the camera's lost_after_seconds (2 s): the track is closed.
        ("unseen", [_nobody(t) for t in np.arange(0.25, 2.51, 0.25)]),
    ],
)
def test_an_approach_ends_without_an_entry(name: str, after: list[Tracks]) -> None:
    analytics = CameraAnalytics(_layout(), "c", time_origin=T0)
    assert _walk(analytics, [_walker(20, 40.0, 0.0)]) == [{"shop": 1, "far": 0}]
    counts = _walk(analytics, after)
    assert counts[-1] == {"shop": 0, "far": 0}, name
    assert analytics.occupancy()["shop"] == 0


def test_approach_off_and_end_of_stream() -> None:
    off = CameraAnalytics(_layout(approach=0), "c")
    assert _walk(off, [_walker(20, 40.0, 0.0)]) == [{"shop": 0, "far": 0}]
    on = CameraAnalytics(_layout(), "c")
    events = on.update(None, _walker(20, 40.0, 0.0))
    assert [e.type for e in events] == [EventType.APPROACHING]
    on.finish(0.1)
    assert on.approaching() == {"shop": 0, "far": 0}


# ----------------------------------------------------------------------------- stores
@pytest.fixture(params=["sqlite", "redis", "spool+redis"])
def any_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    store_id = f"a{uuid.uuid4().hex[:8]}"
    opened: Store
    if request.param == "sqlite":
        opened = open_store(f"sqlite:///{tmp_path / 'store.db'}", store_id)
    elif request.param == "redis":
        opened = open_store(request.getfixturevalue("redis_url"), store_id)
    else:
        primary = open_store(request.getfixturevalue("redis_url"), store_id)
        opened = SpoolingStore(primary, tmp_path / "spool.db")
    yield opened
    opened.close()


def test_store_keeps_approaching_and_versions_on_its_change(any_store: Store) -> None:
    any_store.set_occupancy("cam1", {"aisle": 2, "till": 0}, T0)
    v1, zones = any_store.get_occupancy()
    assert {z: (o.count, o.approaching) for z, o in zones.items()} == {
        "aisle": (2, 0),
        "till": (0, 0),
    }
    any_store.set_occupancy("cam1", {"aisle": 2, "till": 0}, T0 + 1, {"till": 3})
    v2, zones = any_store.get_occupancy()
    assert v2 != v1
    assert (zones["till"].count, zones["till"].approaching) == (0, 3)
    any_store.set_occupancy("cam1", {"aisle": 2, "till": 0}, T0 + 2, {"till": 3})
    v3, zones = any_store.get_occupancy()
    assert v3 == v2 and zones["till"].updated_at == T0 + 2
    with pytest.raises(ValueError, match="negative"):
        any_store.set_occupancy("cam1", {"aisle": 1}, T0, {"aisle": -1})


def test_sqlite_file_from_before_the_column_is_upgraded(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as conn:
        conn.execute(
            "CREATE TABLE occupancy (store_id TEXT NOT NULL, zone_id TEXT NOT NULL, "
            "camera_id TEXT NOT NULL, count INTEGER NOT NULL, updated_at REAL NOT NULL, "
            "PRIMARY KEY (store_id, zone_id))"
        )
        conn.execute("INSERT INTO occupancy VALUES ('old', 'aisle', 'cam1', 4, ?)", (T0,))
    store = open_store(f"sqlite:///{path}", "old")
    try:
        _, zones = store.get_occupancy()
        assert (zones["aisle"].count, zones["aisle"].approaching) == (4, 0)
        store.set_occupancy("cam1", {"aisle": 4}, T0 + 1, {"aisle": 2})
        assert store.get_occupancy()[1]["aisle"].approaching == 2
    finally:
        store.close()


# -------------------------------------------------------------------------------- API
def test_occupancy_endpoints_return_approaching_with_etag(any_store: Store) -> None:
    layout = StoreLayout.model_validate(layout_dict(any_store.store_id))
    with TestClient(create_app(SETTINGS, any_store, layout)) as client:
        first = client.get("/v1/occupancy")
        assert first.json()["zones"]["left"]["approaching"] == 0
        etag = first.headers["etag"]
        any_store.set_occupancy("cam1", {"left": 1, "right": 0}, T0, {"right": 2})

        def changed() -> httpx.Response | None:
            r = client.get("/v1/occupancy", headers={"If-None-Match": etag})
            return r if r.status_code == 200 else None

        fresh = wait_for(changed, what="a new occupancy version")
        zones = fresh.json()["zones"]
        assert (zones["right"]["count"], zones["right"]["approaching"]) == (0, 2)
        assert zones["left"]["approaching"] == 0
        one = client.get("/v1/zones/right/occupancy")
        assert one.json()["approaching"] == 2 and one.headers["etag"] == fresh.headers["etag"]
        etag = one.headers["etag"]
        again = client.get("/v1/zones/right/occupancy", headers={"If-None-Match": etag})
        assert again.status_code == 304
