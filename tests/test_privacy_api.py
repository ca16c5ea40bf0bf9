"""The ``/v1/optin`` endpoints in the real app: scopes, linking, erasure, audit, aggregates."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from fastapi.testclient import TestClient
from service_helpers import kiosk_bakery_layout
from storesense.api.app import create_app
from storesense.api.auth import new_key
from storesense.api.privacy.service import OptInService, OptInSettings
from storesense.api.settings import ServiceSettings
from storesense.api.store import open_store
from storesense.api.store.base import EventQuery, Store
from storesense.vision.detections import Tracks
from storesense.vision.frames import Frame
from storesense.zones.config import StoreLayout
from storesense.zones.events import Event, EventType

T0 = time.time() - 60  # recent: the retention loop runs with the app


@pytest.fixture()
def setup(tmp_path: Path) -> Iterator[tuple[TestClient, Store, OptInService, dict[str, str]]]:
    store_id = f"t{uuid.uuid4().hex[:8]}"
    url = f"sqlite:///{tmp_path / 'store.db'}"
    store = open_store(url, store_id)
    layout = kiosk_bakery_layout(store_id)
    optin = OptInService.for_store(store, layout, OptInSettings(visit_gap_s=60))
    headers = {}
    for scope in ("ingest", "analyst", "admin"):
        key, record = new_key(f"{scope} key", [scope])
        store.put_api_key(record)
        headers[scope] = key
    app = create_app(ServiceSettings(store_url=url), store, layout, optin=optin)
    with TestClient(app) as client:
        yield client, store, optin, headers
    store.close()


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def frame(timestamp: float, boxes: dict[int, tuple[float, float, float, float]]) -> Tracks:
    ids = list(boxes)
    return Tracks(
        np.array([boxes[i] for i in ids]).reshape(-1, 4),
        np.ones(len(ids)),
        np.array(ids),
        np.zeros((len(ids), 2)),
        timestamp=timestamp,
    )


def test_checkin_link_read_erase_and_audit_over_http(
    setup: tuple[TestClient, Store, OptInService, dict[str, str]],
) -> None:
    client, store, optin, keys = setup
    token = "m-" + uuid.uuid4().hex
    optin.on_frame("cam1", frame(T0, {4: (50, 250, 100, 400), 5: (400, 100, 450, 250)}), [])
    body: dict[str, Any] = {
        "member_token": token,
        "zone_id": "kiosk",
        "timestamp": T0,
        "policy_version": "2024-05",
        "source": "kiosk",
    }
    response = client.post("/v1/optin/checkins", json=body, headers=auth(keys["ingest"]))
    assert response.status_code == 200, response.text
    assert response.json()["outcome"] == "linked"
    assert response.json()["linked_track"] == {"camera_id": "cam1", "track_id": 4}

    events = [
        Event.create(EventType.ZONE_ENTER, store.store_id, "cam1", "bakery", t, T0 + 1)
        for t in (4, 5)
    ]
    store.write_events(
        optin.on_frame(
            "cam1", frame(T0 + 1, {4: (350, 100, 400, 300), 5: (400, 100, 450, 250)}), events
        )
    )
    stored = {e.track_id: e.attributes.get("member") for e in store.query_events(EventQuery())}
    assert stored == {4: token, 5: None}

    assert (
        client.get(f"/v1/optin/members/{token}", headers=auth(keys["analyst"])).status_code == 403
    )
    record = client.get(f"/v1/optin/members/{token}", headers=auth(keys["admin"])).json()
    assert record["consents"][0]["policy_version"] == "2024-05"
    assert (
        client.delete(f"/v1/optin/members/{token}", headers=auth(keys["ingest"])).status_code == 403
    )
    erased = client.delete(f"/v1/optin/members/{token}", headers=auth(keys["admin"])).json()
    assert erased["events"] == 1 and erased["active_visit_ended"]
    assert [e.track_id for e in store.query_events(EventQuery())] == [5]

    audit = client.get(
        "/v1/optin/audit", params={"member_token": token}, headers=auth(keys["admin"])
    ).json()
    assert [entry["action"] for entry in audit] == ["checkin", "read", "erase"]
    key_ids = {r.name.split()[0]: r.key_id for r in store.list_api_keys()}
    assert [entry["actor"] for entry in audit] == [
        key_ids["ingest"],
        key_ids["admin"],
        key_ids["admin"],
    ]
    assert all(token not in str(entry) for entry in audit)
    assert client.get("/v1/optin/audit", headers=auth(keys["analyst"])).status_code == 403


def test_ambiguous_checkin_says_so_and_links_none(
    setup: tuple[TestClient, Store, OptInService, dict[str, str]],
) -> None:
    client, _, optin, keys = setup
    optin.on_frame("cam1", frame(T0, {4: (50, 250, 100, 400), 6: (120, 260, 170, 420)}), [])
    response = client.post(
        "/v1/optin/checkins",
        headers=auth(keys["ingest"]),
        json={"member_token": "m-1", "zone_id": "kiosk", "timestamp": T0},
    )
    assert response.status_code == 200
    assert response.json()["outcome"] == "ambiguous" and response.json()["candidates"] == 2
    assert "linked none" in response.json()["message"]
    assert response.json()["linked_track"] is None


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"member_token": "m-1"}, "camera_id or zone_id"),
        ({"member_token": "has space", "zone_id": "kiosk"}, "member token"),
        ({"member_token": "m-1", "zone_id": "nowhere"}, "unknown zone"),
        ({"member_token": "m-1", "zone_id": "kiosk", "role": "boss"}, "role"),
    ],
)
def test_bad_checkins_get_clear_422s(
    setup: tuple[TestClient, Store, OptInService, dict[str, str]],
    body: dict[str, Any],
    fragment: str,
) -> None:
    client, _, _, keys = setup
    response = client.post("/v1/optin/checkins", json=body, headers=auth(keys["ingest"]))
    assert response.status_code == 422
    assert fragment in response.text


def test_aggregates_are_analyst_visible_and_carry_no_tokens(
    setup: tuple[TestClient, Store, OptInService, dict[str, str]],
) -> None:
    client, _, _, keys = setup
    now = time.time()
    for token, when in (("m-a", now - 86_400), ("m-a", now - 10), ("m-b", now - 5)):
        client.post(
            "/v1/optin/checkins",
            headers=auth(keys["ingest"]),
            json={"member_token": token, "camera_id": "cam1", "timestamp": when},
        )
    response = client.get(
        "/v1/optin/aggregates",
        params={"from": now - 3600, "to": now + 1},
        headers=auth(keys["analyst"]),
    )
    assert response.status_code == 200
    assert response.json() == {
        "member_visits": 2,
        "distinct_members": 2,
        "repeat_members": 1,
        "repeat_visit_rate": 0.5,
    }
    assert "m-a" not in response.text


def wait_until(condition: Callable[[], bool], what: str, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)


def test_camera_worker_links_a_checked_in_member_end_to_end(
    tmp_path: Path, pets09: Path, yolox_path: Path
) -> None:
    """Real frames pushed to a real worker: linked at the kiosk, exit tagged, then erased."""
    from storesense.api.runtime import WorkerSupervisor, pipeline_factory_for
    from storesense.vision.detector import Detector

    store_id = f"t{uuid.uuid4().hex[:8]}"
    url = f"sqlite:///{tmp_path / 'store.db'}"
    store = open_store(url, store_id)
    layout = StoreLayout.model_validate(
        {
            "store": {"id": store_id, "timezone": "UTC"},
            "cameras": [{"id": "cam1"}],
            # PETS09 frames 2-5: one walker's floor point crosses x 660 → 627 at y 324.
            "zones": [
                {
                    "id": "kiosk",
                    "camera": "cam1",
                    "polygon": [[620, 290], [720, 290], [720, 360], [620, 360]],
                }
            ],
        }
    )
    settings = ServiceSettings(store_url=url, occupancy_refresh_s=0.02)
    optin = OptInService.for_store(store, layout)
    supervisor = WorkerSupervisor(
        layout,
        store,
        settings,
        optin=optin,
        pipeline_factory=pipeline_factory_for(Detector(yolox_path)),
    )
    capture = cv2.VideoCapture(str(pets09 / "PETS09-S2L1.avi"))
    images = [capture.read()[1] for _ in range(10)]
    capture.release()
    start = time.time() - 30

    def push(first: int, last: int) -> None:
        for number in range(first, last + 1):
            supervisor.push_frame(
                Frame(images[number - 1], number, start + (number - 1) / 7, "cam1")
            )
            time.sleep(0.02)
        wait_until(
            lambda: supervisor.statuses()["cam1"].frames_processed >= last,
            f"{last} frames processed",
        )

    token = "m-" + uuid.uuid4().hex
    with TestClient(
        create_app(settings, store, layout, supervisor=supervisor, optin=optin)
    ) as client:
        push(1, 4)
        response = client.post(
            "/v1/optin/checkins",
            json={"member_token": token, "zone_id": "kiosk", "timestamp": start + 2 / 7},
        )
        assert response.json()["outcome"] == "linked", response.text
        push(5, 10)
        wait_until(
            lambda: any(
                e.attributes.get("member") == token for e in store.query_events(EventQuery())
            ),
            "a tagged event",
        )
        tagged = [e for e in store.query_events(EventQuery()) if "member" in e.attributes]
        assert {(e.type, e.target) for e in tagged} == {(EventType.ZONE_EXIT, "kiosk")}
        erased = client.delete(f"/v1/optin/members/{token}").json()
        assert erased["events"] == len(tagged)
    assert all("member" not in e.attributes for e in store.query_events(EventQuery()))
    store.close()


def test_metrics_carry_member_aggregates_and_leave_staff_out(
    setup: tuple[TestClient, Store, OptInService, dict[str, str]],
) -> None:
    client, store, optin, keys = setup
    now = time.time()
    optin.on_frame("cam1", frame(now - 20, {7: (50, 250, 100, 400)}), [])
    badge = client.post(
        "/v1/optin/checkins",
        headers=auth(keys["ingest"]),
        json={
            "member_token": "badge-1",
            "zone_id": "kiosk",
            "timestamp": now - 20,
            "role": "staff",
        },
    )
    assert badge.json()["outcome"] == "linked"
    client.post(
        "/v1/optin/checkins",
        headers=auth(keys["ingest"]),
        json={"member_token": "m-a", "camera_id": "cam1", "timestamp": now - 10},
    )
    store.write_events(
        [
            Event.create(EventType.ZONE_ENTER, store.store_id, "cam1", "bakery", track, now - 5)
            for track in (7, 8)
        ]
    )
    metrics = client.get(
        "/v1/metrics", params={"from": now - 3600, "to": now + 1}, headers=auth(keys["analyst"])
    )
    assert metrics.status_code == 200, metrics.text
    body = metrics.json()
    assert body["staff_tracks"] == 1
    assert body["members"] == {
        "member_visits": 1,
        "distinct_members": 1,
        "repeat_members": 0,
        "repeat_visit_rate": 0.0,
    }
    assert "m-a" not in metrics.text and "badge-1" not in metrics.text


def test_optin_endpoints_answer_503_when_the_redis_store_is_lost(
    new_redis_server: Callable[..., Any],
) -> None:
    """Consent lives in the store: a Redis outage is 503 on /v1/optin, as everywhere."""
    server = new_redis_server()
    store_id = f"t{uuid.uuid4().hex[:8]}"
    store = open_store(server.url + "?socket_timeout=0.5", store_id)
    layout = kiosk_bakery_layout(store_id)
    optin = OptInService.for_store(store, layout)
    app = create_app(ServiceSettings(store_url=server.url), store, layout, optin=optin)
    body = {"member_token": "m-lost", "zone_id": "kiosk", "timestamp": T0}
    try:
        with TestClient(app) as client:
            assert client.post("/v1/optin/checkins", json=body).status_code == 200
            assert len(store.checkins(member_token="m-lost")) == 1
            server.stop()
            calls = [
                client.post("/v1/optin/checkins", json=body),
                client.get("/v1/optin/members/m-lost"),
                client.delete("/v1/optin/members/m-lost"),
                client.get("/v1/optin/audit"),
                client.get("/v1/optin/aggregates", params={"from": T0 - 60, "to": T0 + 60}),
            ]
            for response in calls:
                assert response.status_code == 503, (response.request.url, response.text)
                assert "store unavailable" in response.json()["detail"]
    finally:
        optin.close()
        store.close()
