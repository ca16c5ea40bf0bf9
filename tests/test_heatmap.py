"""Floor heatmap in the service: a real camera worker (real detector, PETS09 frames, the
example's homography) publishes person-seconds per floor cell; ``GET /v1/heatmap`` sums them.
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import numpy as np
import pytest
import yaml
from fastapi.testclient import TestClient
from service_helpers import cut_clip, wait_for
from storesense.api.app import create_app
from storesense.api.auth import new_key
from storesense.api.live_heatmap import LiveHeatmap
from storesense.api.runtime import CameraState, WorkerSupervisor, count_video, pipeline_factory_for
from storesense.api.settings import ServiceSettings
from storesense.api.store import open_store
from storesense.api.store.base import HEATMAP_CELL_M, HeatmapCell, Store, StoreUnavailableError
from storesense.vision.detections import Tracks
from storesense.zones.config import Homography, StoreLayout
from storesense.zones.floorplan import Heatmap

pytest_plugins = ["service_helpers"]

FRAMES = 45
EXAMPLE = Path(__file__).parent.parent / "examples" / "pets09.yaml"
SETTINGS = ServiceSettings(store_url="sqlite:///unused.db", realtime=False, heatmap_publish_s=0.3)


def pets_layout(store_id: str, clip: Path, *, homography: bool = True) -> StoreLayout:
    """examples/pets09.yaml (zones, lines, homography) on ``clip``, plus a camera without one."""
    data = yaml.safe_load(EXAMPLE.read_text())
    data["store"] = {"id": store_id, "timezone": "UTC"}
    data["cameras"][0]["source"] = str(clip)
    if not homography:
        data["cameras"][0].pop("homography")
        data["zones"] = [z for z in data["zones"] if "floor_polygon" not in z]
        data["lines"] = [ln for ln in data["lines"] if ln.get("coordinates") != "floor"]
    data["cameras"].append({"id": "door-cam"})
    return StoreLayout.model_validate(data)


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory, pets09: Path) -> Path:
    folder = tmp_path_factory.mktemp("heatmap")
    return cut_clip(pets09 / "PETS09-S2L1.avi", folder / "clip.avi", FRAMES)


@pytest.fixture(scope="module")
def expected(clip: Path, detector: Any) -> Heatmap:
    """What ``storesense count --heatmap`` credits on the same clip (the same pipeline)."""
    heatmap = Heatmap(HEATMAP_CELL_M, unit="m")
    count_video(pets_layout("expected", clip), "cam1", detector, heatmap=heatmap)
    return heatmap


def keys_of(store: Store) -> dict[str, str]:
    keys = {}
    for scope in ("display", "analyst"):
        key, record = new_key(f"{scope} key", [scope])
        store.put_api_key(record)
        keys[scope] = key
    return keys


def run_worker(store: Store, layout: StoreLayout, detector: Any) -> None:
    supervisor = WorkerSupervisor(
        layout, store, SETTINGS, pipeline_factory=pipeline_factory_for(detector)
    )
    supervisor.start(watch_layout=False)
    try:
        wait_for(
            lambda: supervisor.statuses()["cam1"].state == CameraState.FINISHED,
            timeout=180,
            what="the clip processed",
        )
    finally:
        supervisor.stop()


def test_endpoint_sums_are_what_the_worker_accumulated(
    store: Store, clip: Path, expected: Heatmap, detector: Any
) -> None:
    layout = pets_layout(store.store_id, clip)
    started = time.time()
    run_worker(store, layout, detector)
    stored = store.get_heatmap(0, time.time() + 3600)
    assert stored and {c.camera_id for c in stored} == {"cam1"}  # never a track id: sums only
    keys = keys_of(store)
    with TestClient(create_app(SETTINGS, store, layout)) as client:
        answer = client.get(
            "/v1/heatmap",
            params={"from": started - 60, "to": time.time() + 60},
            headers={"X-API-Key": keys["analyst"]},
        )
        assert answer.status_code == 200, answer.text
        body = answer.json()
        denied = client.get("/v1/heatmap", headers={"X-API-Key": keys["display"]})
        assert denied.status_code == 403
    assert body["cameras"] == ["cam1"] and body["cell_m"] == HEATMAP_CELL_M
    xx, yy = expected.cell_centres()
    busy = expected.grid > 0
    want = {
        (round(x, 3), round(y, 3)): s
        for x, y, s in zip(xx[busy], yy[busy], expected.grid[busy], strict=True)
    }
    got = {(round(x, 3), round(y, 3)): s for x, y, s in body["cells"]}
    assert got.keys() == want.keys()
    for cell, seconds in want.items():
        assert got[cell] == pytest.approx(seconds, rel=1e-9, abs=1e-9), cell
    assert body["person_seconds"] == pytest.approx(float(expected.grid.sum()), rel=1e-9)
    assert body["person_seconds"] > 1.0  # people were on the floor
    rows, cols = body["shape"]
    assert [rows, cols] == list(expected.grid.shape)
    assert body["origin_m"] == pytest.approx(list(expected.origin))
    # The stored hours partition the run: one hour's query gives that hour's share only.
    hours = sorted({c.hour for c in stored})
    per_hour = [sum(c.person_seconds for c in stored if c.hour == h) for h in hours]
    assert sum(per_hour) == pytest.approx(body["person_seconds"], rel=1e-9)


@pytest.fixture()
def sqlite_store(tmp_path: Path) -> Iterator[Store]:
    opened = open_store(f"sqlite:///{tmp_path / 'h.db'}", f"h{uuid.uuid4().hex[:8]}")
    yield opened
    opened.close()


HOUR = 1_714_554_000.0  # 2024-05-01T09:00:00Z


def test_range_camera_and_bad_queries(sqlite_store: Store, clip: Path) -> None:
    layout = pets_layout(sqlite_store.store_id, clip)
    sqlite_store.add_heatmap(
        [
            HeatmapCell("cam1", HOUR, 2, 4, 3.0),
            HeatmapCell("cam1", HOUR, -1, 0, 1.0),
            HeatmapCell("cam1", HOUR + 3600, 2, 4, 10.0),
            HeatmapCell("old-cam", HOUR, 2, 4, 100.0),  # no longer in the layout
        ]
    )
    with TestClient(create_app(SETTINGS, sqlite_store, layout)) as client:
        # Mid-hour "from": the hour it falls in is summed (hours are the stored resolution).
        body = client.get("/v1/heatmap", params={"from": HOUR + 1800, "to": HOUR + 3600}).json()
        assert body["hours_start"] == HOUR
        assert body["cells"] == [[-0.25, 0.25, 1.0], [1.25, 2.25, 3.0]]
        assert body["origin_m"] == [-0.5, 0.0] and body["shape"] == [5, 4]
        both = client.get(
            "/v1/heatmap",
            params={"from": "2024-05-01T09:00:00Z", "to": "2024-05-01T11:00:00Z", "camera": "cam1"},
        ).json()
        assert both["person_seconds"] == 14.0 and [1.25, 2.25, 13.0] in both["cells"]
        empty = client.get("/v1/heatmap", params={"from": HOUR - 7200, "to": HOUR}).json()
        assert empty["cells"] == [] and empty["shape"] == [0, 0]
        for params, status, message in (
            ({"from": HOUR, "to": HOUR + 3600, "camera": "nope"}, 422, "unknown camera"),
            ({"from": HOUR, "to": HOUR + 3600, "camera": "door-cam"}, 404, "no homography"),
            ({"from": HOUR + 3600, "to": HOUR}, 422, "'to'"),
            ({"from": "yesterday", "to": HOUR}, 422, "'from'"),
        ):
            answer = client.get("/v1/heatmap", params=params)
            assert answer.status_code == status, answer.text
            assert message in answer.text
    no_floor = pets_layout(sqlite_store.store_id, clip, homography=False)
    with TestClient(create_app(SETTINGS, sqlite_store, no_floor)) as client:
        answer = client.get("/v1/heatmap", params={"from": HOUR, "to": HOUR + 3600})
        assert answer.status_code == 404
        assert "no camera of the layout has a homography" in answer.text


class DownStore:
    """A store that is unreachable until told otherwise, then keeps what it gets."""

    def __init__(self) -> None:
        self.up = False
        self.cells: list[HeatmapCell] = []

    def add_heatmap(self, cells: list[HeatmapCell]) -> None:
        if not self.up:
            raise StoreUnavailableError("down")
        self.cells.extend(cells)


def test_sums_survive_a_store_outage_and_split_at_the_hour() -> None:
    homography = Homography(
        image_points=[[0, 0], [100, 0], [100, 100], [0, 100]],
        floor_points=[[0, 0], [10, 0], [10, 10], [0, 10]],
    )
    live = LiveHeatmap("cam1", homography)
    person = Tracks(
        np.array([[22, 0, 32, 50]]), np.ones(1), np.array([9]), np.zeros((1, 2)), timestamp=0.0
    )
    store = DownStore()
    target = cast(Store, store)
    for t in np.arange(HOUR - 1.0, HOUR + 1.0, 0.25):
        live.add(person, float(t))
    with pytest.raises(StoreUnavailableError):
        live.publish(target)
    live.add(person, HOUR + 1.0)
    live.finish()
    store.up = True
    assert live.publish(store) == 2  # type: ignore[arg-type]
    by_hour = {c.hour: c.person_seconds for c in store.cells}
    assert by_hour == {HOUR - 3600: pytest.approx(1.0), HOUR: pytest.approx(1.25)}
    assert {(c.x, c.y) for c in store.cells} == {(5, 10)}
    assert live.publish(target) == 0  # nothing twice
    assert math.isclose(sum(c.person_seconds for c in store.cells), 2.25)


def test_retention_purges_heatmap_hours_with_the_events(sqlite_store: Store) -> None:
    from storesense.api.privacy.retention import RetentionPolicy, purge_once

    now = HOUR + 40 * 86_400
    sqlite_store.add_heatmap(
        [HeatmapCell("cam1", HOUR, 0, 0, 5.0), HeatmapCell("cam1", now - 3600, 0, 0, 2.0)]
    )
    report = purge_once(RetentionPolicy(30), sqlite_store, now=now)
    assert report.heatmap_cells == 1
    assert sqlite_store.get_heatmap(0, now) == [HeatmapCell("cam1", now - 3600, 0, 0, 2.0)]
