"""The HTTP API over a real store: every test runs against SQLite AND a real redis-server."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient
from fixtures_redis import RedisServer
from service_helpers import SETTINGS, T0, LiveServer, jpeg_of, layout_dict, make_event, wait_for
from storesense.api.app import create_app
from storesense.api.auth import new_key
from storesense.api.store import open_store
from storesense.api.store.base import CameraReport, Store
from storesense.vision.frames import Frame
from storesense.zones.config import StoreLayout
from storesense.zones.events import Event, EventType

# --------------------------------------------------------------------------- auth
ENDPOINTS: list[tuple[str, str, str]] = [
    ("GET", "/v1/occupancy", "display"),
    ("GET", "/v1/zones/left/occupancy", "display"),
    ("GET", f"/v1/counts?from={T0}&to={T0 + 3600}&bucket=1h", "analyst"),
    ("GET", f"/v1/metrics?from={T0}&to={T0 + 3600}&bucket=1h", "analyst"),
    ("GET", f"/v1/events?from={T0}&to={T0 + 3600}", "analyst"),
    ("GET", f"/v1/transactions?from={T0}&to={T0 + 3600}", "analyst"),
    ("GET", "/v1/cameras", "analyst"),
    ("GET", "/v1/layout", "admin"),
    ("GET", "/v1/keys", "admin"),
    ("POST", "/v1/cameras/cam1/frames", "ingest"),
]
IMPLIES = {
    "ingest": {"ingest"},
    "display": {"display"},
    "analyst": {"analyst", "display"},
    "admin": {"ingest", "display", "analyst", "admin"},
}

pytest_plugins = ["service_helpers"]


def test_auth_scopes_per_endpoint(store: Store, layout: StoreLayout) -> None:
    keys = {}
    for scope in IMPLIES:
        key, record = new_key(f"{scope} key", [scope])
        store.put_api_key(record)
        keys[scope] = key
    with TestClient(create_app(SETTINGS, store, layout)) as client:
        for method, path, needed in ENDPOINTS:
            assert client.request(method, path).status_code == 401, path
            bad = client.request(method, path, headers={"X-API-Key": "ss_not-a-key"})
            assert bad.status_code == 401, path
            for scope, key in keys.items():
                response = client.request(method, path, headers={"Authorization": f"Bearer {key}"})
                if needed in IMPLIES[scope]:
                    assert response.status_code not in (401, 403), (path, scope, response.text)
                else:
                    assert response.status_code == 403, (path, scope)
                    assert needed in response.json()["detail"]


def test_open_mode_without_keys_then_first_key_turns_auth_on(
    store: Store, layout: StoreLayout
) -> None:
    with TestClient(create_app(SETTINGS, store, layout)) as client:
        assert client.get("/v1/occupancy").status_code == 200
        created = client.post("/v1/keys", json={"name": "ops", "scopes": ["admin"]})
        assert created.status_code == 201
        secret = created.json()["key"]
        assert client.get("/v1/occupancy").status_code == 401
        listed = client.get("/v1/keys", headers={"X-API-Key": secret}).json()
        assert [k["name"] for k in listed] == ["ops"] and "key" not in listed[0]
        assert all(secret not in json.dumps(r.__dict__, default=str) for r in store.list_api_keys())
        key_id = created.json()["key_id"]
        deleted = client.delete(f"/v1/keys/{key_id}", headers={"X-API-Key": secret})
        assert deleted.status_code == 204
        assert client.get("/v1/occupancy", headers={"X-API-Key": secret}).status_code == 401


@pytest.mark.parametrize("scopes", [["everything"], []])
def test_bad_key_request_is_422(store: Store, layout: StoreLayout, scopes: list[str]) -> None:
    with TestClient(create_app(SETTINGS, store, layout)) as client:
        response = client.post("/v1/keys", json={"name": "x", "scopes": scopes})
        assert response.status_code == 422
        assert response.json()["errors"][0]["path"] == "body.scopes"


# ---------------------------------------------------------------------- occupancy
def test_occupancy_etag_and_304(store: Store, layout: StoreLayout) -> None:
    with TestClient(create_app(SETTINGS, store, layout)) as client:
        first = client.get("/v1/occupancy")
        assert first.status_code == 200
        assert {z: v["count"] for z, v in first.json()["zones"].items()} == {"left": 0, "right": 0}
        etag = first.headers["etag"]
        again = client.get("/v1/occupancy", headers={"If-None-Match": etag})
        assert again.status_code == 304 and again.content == b""
        store.set_occupancy("cam1", {"left": 3, "right": 1}, T0)

        def changed() -> httpx.Response | None:
            r = client.get("/v1/occupancy", headers={"If-None-Match": etag})
            return r if r.status_code == 200 else None

        fresh = wait_for(changed, what="a new occupancy version")
        assert fresh.headers["etag"] != etag
        assert fresh.json()["zones"]["left"]["count"] == 3
        zone = client.get("/v1/zones/right/occupancy")
        assert zone.json()["count"] == 1 and zone.json()["updated_at"] == T0
        assert zone.headers["etag"] == fresh.headers["etag"]
        missing = client.get("/v1/zones/nowhere/occupancy")
        assert missing.status_code == 404 and "left" in missing.json()["detail"]


# ------------------------------------------------------------------------ layout
@pytest.mark.parametrize(
    ("mutate", "path"),
    [
        (lambda d: d["zones"][1].update(polygon=[[0, 0], [10, 10], [10, 0], [0, 10]]),
         "zones[1].polygon"),
        (lambda d: d["zones"][0].update(camera="cam9"), "zones[0].camera"),
        (lambda d: d["lines"][0].update(inside=[384, 10]), "lines[0]"),
        (lambda d: d.update(cameras=[]), "cameras"),
        (lambda d: d["zones"][0].update(colour="red"), "zones[0].colour"),
    ],
)  # fmt: skip
def test_bad_layout_is_422_with_field_path(
    store: Store, layout: StoreLayout, mutate: Any, path: str
) -> None:
    body = layout_dict(store.store_id)
    mutate(body)
    with TestClient(create_app(SETTINGS, store, layout)) as client:
        response = client.put("/v1/layout", json=body)
        assert response.status_code == 422, response.text
        paths = [p["path"] for p in response.json()["errors"]]
        assert any(p.startswith(path) for p in paths), paths
        assert client.get("/v1/layout").json()["zones"][1]["polygon"][0] == [384.0, 0.0]


def test_put_layout_is_stored_and_served(store: Store, layout: StoreLayout) -> None:
    body = layout_dict(store.store_id)
    body["zones"].append(
        {"id": "till", "camera": "cam1", "polygon": [[0, 0], [100, 0], [100, 100], [0, 100]]}
    )
    with TestClient(create_app(SETTINGS, store, layout)) as client:
        assert client.put("/v1/layout", json=body).status_code == 200
        assert [z["id"] for z in client.get("/v1/layout").json()["zones"]][-1] == "till"
        assert "till" in client.get("/v1/occupancy").json()["zones"]
        stored = json.loads(store.get_layout() or "{}")
        assert stored["zones"][-1]["id"] == "till"


# ------------------------------------------------------------------ transactions
def test_transactions_round_trip_and_validation(store: Store, layout: StoreLayout) -> None:
    with TestClient(create_app(SETTINGS, store, layout)) as client:
        posted = client.post(
            "/v1/transactions",
            json={"buckets": [{"start": "2024-05-01T10:00:00Z", "count": 4},
                              {"start": T0 + 3600, "count": 2}]},
        )  # fmt: skip
        assert posted.status_code == 204, posted.text
        got = client.get(f"/v1/transactions?from={T0}&to={T0 + 7200}").json()
        assert got["buckets"] == {"1714557600": 4, "1714561200": 2}
        bad = client.post("/v1/transactions", json={"buckets": [{"start": "noon", "count": 1}]})
        assert bad.status_code == 422 and bad.json()["errors"][0]["path"].startswith("body.")
        negative = client.post("/v1/transactions", json={"buckets": [{"start": T0, "count": -1}]})
        assert negative.status_code == 422


# ------------------------------------------------------------------ counts, metrics
def write_visits(store: Store) -> None:
    """3 people enter 'left' and cross the door in between 10:00 and 11:00, one at 11:30."""
    events = []
    for i, minute in enumerate([5, 20, 40, 90]):
        at = T0 + minute * 60
        events.append(Event.create(EventType.ZONE_ENTER, store.store_id, "cam1", "left", i, at))
        events.append(
            Event.create(EventType.LINE_CROSS, store.store_id, "cam1", "door", i, at + 5,
                         {"direction": "in"})
        )  # fmt: skip
    store.write_events(events)


def test_counts_json_and_csv(store: Store, layout: StoreLayout) -> None:
    write_visits(store)
    with TestClient(create_app(SETTINGS, store, layout)) as client:
        url = "/v1/counts?from=2024-05-01T10:00:00Z&to=2024-05-01T12:00:00Z&bucket=1h"
        data = client.get(url + "&zone=left").json()
        entries = [
            (r["bucket_start"], r["count"]) for r in data["rows"] if r["measure"] == "entries"
        ]
        assert entries == [(T0, 3), (T0 + 3600, 1)]
        assert {r["target"] for r in data["rows"]} == {"left"}
        csv_response = client.get(url + "&line=door", headers={"Accept": "text/csv"})
        assert csv_response.headers["content-type"].startswith("text/csv")
        lines = csv_response.text.strip().splitlines()
        assert lines[0] == "bucket_start,bucket_start_iso,target,kind,measure,count"
        assert "1714557600,2024-05-01T10:00:00+00:00,door,line,in,3" in lines
        assert "1714561200,2024-05-01T11:00:00+00:00,door,line,in,1" in lines
        for bad, reason in [("&bucket=7x", "bucket"), ("&zone=attic", "attic")]:
            response = client.get(url.replace("&bucket=1h", "") + bad)
            assert response.status_code == 422 and reason in response.json()["detail"]
        backwards = client.get(f"/v1/counts?from={T0}&to={T0 - 1}")
        assert backwards.status_code == 422


def test_counts_k_anonymity_suppresses_small_buckets(store: Store, layout: StoreLayout) -> None:
    write_visits(store)
    settings = SETTINGS.model_copy(update={"k_anonymity": 3})
    with TestClient(create_app(settings, store, layout)) as client:
        url = f"/v1/counts?from={T0}&to={T0 + 7200}&bucket=1h&zone=left"
        rows = [r for r in client.get(url).json()["rows"] if r["measure"] == "entries"]
        assert [r["count"] for r in rows] == [3, None]
        csv_lines = client.get(url, headers={"Accept": "text/csv"}).text.splitlines()
        assert "1714561200,2024-05-01T11:00:00+00:00,left,zone,entries," in csv_lines


def test_transactions_give_sales_conversion_in_metrics(store: Store, layout: StoreLayout) -> None:
    write_visits(store)
    with TestClient(create_app(SETTINGS, store, layout)) as client:
        posted = client.post(
            "/v1/transactions",
            json={"buckets": [{"start": T0, "count": 2}, {"start": T0 + 3600, "count": 1}]},
        )
        assert posted.status_code == 204
        metrics = client.get(f"/v1/metrics?from={T0}&to={T0 + 7200}&bucket=1h").json()
        assert metrics["footfall"] == 4 and metrics["transactions"] == 3
        assert metrics["sales_conversion"] == pytest.approx(3 / 4, abs=1e-4)
        first_hour = metrics["buckets"][0]
        assert first_hour["footfall"] == 3
        assert first_hour["sales_conversion"] == pytest.approx(2 / 3, abs=1e-4)


def shelf_layout(store: Store) -> StoreLayout:
    data = layout_dict(store.store_id)
    data["zones"].append(
        {
            "id": "cereal",
            "camera": "cam1",
            "kind": "shelf",
            "polygon": [[100, 50], [300, 50], [300, 150], [100, 150]],
        }
    )
    data["zones"].append(
        {"id": "tea", "camera": "cam1", "kind": "shelf", "polygon": [[400, 50], [600, 50],
                                                                     [600, 150], [400, 150]]}
    )  # fmt: skip
    return StoreLayout.model_validate(data)


def shelf_event(store: Store, kind: EventType, track: int, ts: float, **attrs: Any) -> Event:
    return Event.create(kind, store.store_id, "cam1", "cereal", track, ts, attrs)


def test_metrics_serve_shelf_interactions_takes_and_put_backs(store: Store) -> None:
    interaction = EventType.SHELF_INTERACTION
    store.write_events(
        [
            shelf_event(store, interaction, 1, T0 + 60, outcome="take"),
            shelf_event(store, EventType.ITEM_TAKEN, 1, T0 + 60, cell=[0, 1]),
            shelf_event(store, interaction, 2, T0 + 600, outcome="browse"),
            shelf_event(store, interaction, 3, T0 + 900, outcome="return"),
            shelf_event(store, EventType.ITEM_RETURNED, 3, T0 + 900, cell=[0, 1]),
            shelf_event(store, interaction, 4, T0 + 3700, outcome="take"),
            shelf_event(store, EventType.ITEM_TAKEN, 4, T0 + 3700, cell=[1, 2]),
        ]
    )
    with TestClient(create_app(SETTINGS, store, shelf_layout(store))) as client:
        metrics = client.get(f"/v1/metrics?from={T0}&to={T0 + 7200}&bucket=1h").json()
    assert metrics["shelves"]["cereal"] == {
        "interactions": 4,
        "takes": 2,
        "put_backs": 1,
        "take_rate": 0.5,
        "put_back_rate": 0.5,
    }
    assert metrics["shelves"]["tea"] == {
        "interactions": 0,
        "takes": 0,
        "put_backs": 0,
        "take_rate": None,
        "put_back_rate": None,
    }
    first, second = (bucket["shelves"]["cereal"] for bucket in metrics["buckets"])
    assert (first["interactions"], first["takes"], first["put_backs"]) == (3, 1, 1)
    assert first["take_rate"] == pytest.approx(1 / 3, abs=1e-4) and first["put_back_rate"] == 1.0
    assert (second["interactions"], second["takes"], second["put_backs"]) == (1, 1, 0)


# ------------------------------------------------------------------------- events
def test_events_listing_hides_track_ids_from_non_admin(store: Store, layout: StoreLayout) -> None:
    key, record = new_key("analyst", ["analyst"])
    admin_key, admin = new_key("admin", ["admin"])
    store.put_api_key(record)
    store.put_api_key(admin)
    store.write_events([make_event(store, "left", EventType.ZONE_ENTER, T0 + 5)])
    with TestClient(create_app(SETTINGS, store, layout)) as client:
        url = f"/v1/events?from={T0}&to={T0 + 60}"
        seen = client.get(url, headers={"X-API-Key": key}).json()
        assert [e["target"] for e in seen] == ["left"] and "track_id" not in seen[0]
        full = client.get(url, headers={"X-API-Key": admin_key}).json()
        assert full[0]["track_id"] == 7


def read_sse(response: httpx.Response, count: int) -> list[tuple[str, dict[str, Any]]]:
    received: list[tuple[str, dict[str, Any]]] = []
    name = ""
    for line in response.iter_lines():
        if line.startswith("event: "):
            name = line.removeprefix("event: ")
        elif line.startswith("data: "):
            received.append((name, json.loads(line.removeprefix("data: "))))
            if len(received) == count:
                break
    return received


def test_event_stream_receives_stored_events_filtered_by_zone(
    store: Store, layout: StoreLayout
) -> None:
    app = create_app(SETTINGS, store, layout)
    with LiveServer(app) as server, httpx.Client(base_url=server.url, timeout=10) as client:
        url = "/v1/events/stream?zone=left&zone=door"
        with client.stream("GET", url) as response:
            assert response.headers["content-type"].startswith("text/event-stream")
            wait_for(lambda: len(app.state.events._subscribers) == 1, what="subscription")
            store.write_events(
                [
                    make_event(store, "right", EventType.ZONE_ENTER, T0 + 1),
                    make_event(store, "left", EventType.ZONE_ENTER, T0 + 2),
                    make_event(store, "door", EventType.LINE_CROSS, T0 + 3, direction="in"),
                ]
            )
            received = read_sse(response, 2)
    assert [(name, e["target"]) for name, e in received] == [
        ("zone_enter", "left"),
        ("line_cross", "door"),
    ]
    assert received[1][1]["attributes"] == {"direction": "in"}
    assert all("track_id" in e for _, e in received)  # open (no keys) mode: the local operator


@pytest.mark.parametrize(
    "types", [["item_taken"], ["item_taken", "item_returned", "shelf_interaction"]]
)
def test_event_stream_filters_shelf_events_by_type(store: Store, types: list[str]) -> None:
    app = create_app(SETTINGS, store, shelf_layout(store))
    query = "&".join(f"type={name}" for name in types)
    written = [
        make_event(store, "left", EventType.ZONE_ENTER, T0 + 1),
        shelf_event(store, EventType.SHELF_INTERACTION, 5, T0 + 2, outcome="take"),
        shelf_event(store, EventType.ITEM_TAKEN, 5, T0 + 2, cell=[0, 1], box=[0, 0, 0.5, 0.5]),
        shelf_event(store, EventType.ITEM_RETURNED, 6, T0 + 3, cell=[0, 1]),
        make_event(store, "left", EventType.ZONE_EXIT, T0 + 4, dwell_seconds=3.0),
    ]
    expected = [(str(e.type), e.target) for e in written if str(e.type) in types]
    with (
        LiveServer(app) as server,
        httpx.Client(base_url=server.url, timeout=10) as client,
        client.stream("GET", f"/v1/events/stream?{query}") as response,
    ):
        wait_for(lambda: len(app.state.events._subscribers) == 1, what="subscription")
        store.write_events(written)
        # a last item_taken closes the window: nothing filtered out arrived before it
        store.write_events([make_event(store, "cereal", EventType.ITEM_TAKEN, T0 + 9)])
        received = read_sse(response, len(expected) + 1)
    assert [(name, e["target"]) for name, e in received[:-1]] == expected
    assert received[-1][1]["timestamp"] == T0 + 9
    taken = next(e for name, e in received if name == "item_taken")
    assert taken["attributes"]["cell"] == [0, 1] and taken["track_id"] == 5


def test_slow_event_stream_client_loses_oldest_events_not_the_pipeline(store: Store) -> None:
    import asyncio

    from prometheus_client import REGISTRY
    from storesense.api.routers.events import EventHub

    hub = EventHub(store, queue_size=3, poll_ms=50)
    hub.start()
    dropped_before = REGISTRY.get_sample_value("storesense_sse_dropped_events_total") or 0.0

    async def scenario() -> tuple[list[str], int]:
        slow = hub.subscribe(frozenset({"left"}), None)
        started = time.perf_counter()
        store.write_events(
            [make_event(store, "left", EventType.ZONE_ENTER, T0 + i) for i in range(10)]
        )
        assert time.perf_counter() - started < 1.0  # the writer never waits for the client
        for _ in range(200):
            if slow.dropped >= 7:
                break
            await asyncio.sleep(0.02)
        kept = [slow.queue.get_nowait()[0].timestamp for _ in range(slow.queue.qsize())]
        hub.unsubscribe(slow)
        return [f"{t - T0:g}" for t in kept], slow.dropped

    try:
        kept, dropped = asyncio.run(scenario())
    finally:
        hub.stop()
    assert kept == ["7", "8", "9"] and dropped == 7
    dropped_after = REGISTRY.get_sample_value("storesense_sse_dropped_events_total") or 0.0
    assert dropped_after - dropped_before == 7


def test_event_stream_rejects_unknown_type(store: Store, layout: StoreLayout) -> None:
    with TestClient(create_app(SETTINGS, store, layout)) as client:
        response = client.get("/v1/events/stream?type=teleport")
        assert response.status_code == 422 and "teleport" in response.json()["detail"]


# ------------------------------------------------------------------------ health
def test_health_ready_and_prometheus(store: Store, layout: StoreLayout) -> None:
    with TestClient(create_app(SETTINGS, store, layout)) as client:
        assert client.get("/healthz").json() == {"status": "ok"}
        ready = client.get("/readyz")
        assert ready.status_code == 200 and ready.json()["store"] == "ok"
        metrics = client.get("/metrics").text
        assert "storesense_sse_clients" in metrics
        assert "/v1/occupancy" in client.get("/openapi.json").json()["paths"]


@pytest.mark.parametrize("backend", ["sqlite", "redis"])
def test_lost_store_answers_503_with_reason(tmp_path: Path, backend: str) -> None:
    """SQLite: the database closed under the API; Redis: its own server killed."""
    server = None
    if backend == "sqlite":
        lost = open_store(f"sqlite:///{tmp_path / 'lost.db'}", "lost")
    else:
        server = RedisServer(tmp_path / "redis-lost")
        server.start()
        lost = open_store(server.url, "lost")
    layout = StoreLayout.model_validate(layout_dict("lost"))
    try:
        with TestClient(create_app(SETTINGS, lost, layout)) as client:
            assert client.get("/v1/occupancy").status_code == 200
            if server is not None:
                server.kill()
            else:
                lost.close()
            ready = client.get("/readyz")
            assert ready.status_code == 503 and ready.json()["ready"] is False
            assert "store" in ready.json()["store"]
            listing = client.get(f"/v1/events?from={T0}&to={T0 + 60}")
            assert listing.status_code == 503 and "store unavailable" in listing.json()["detail"]
            occupancy = wait_for(
                lambda: (r := client.get("/v1/occupancy")).status_code == 503 and r,
                what="occupancy 503",
            )
            assert "store unavailable" in occupancy.json()["detail"]
    finally:
        lost.close()
        if server is not None:
            server.stop()


# ------------------------------------------------------------------------- ingest
@pytest.mark.parametrize(
    ("camera", "body", "content_type", "status", "reason"),
    [
        ("cam1", b"", "image/jpeg", 422, "empty body"),
        ("cam1", b"hello, not an image", "image/jpeg", 422, "not a JPEG or PNG"),
        ("cam1", b"\xff\xd8\xff\xe0truncated", "image/jpeg", 422, "could not be decoded"),
        ("cam1", b"{}", "application/json", 415, "application/json"),
        ("cam7", b"x", "image/jpeg", 404, "unknown camera 'cam7'"),
    ],
)
def test_bad_frames_are_rejected_with_reason(
    store: Store,
    layout: StoreLayout,
    detector_supervisor: Any,
    camera: str,
    body: bytes,
    content_type: str,
    status: int,
    reason: str,
) -> None:
    supervisor = detector_supervisor(layout, store)
    with TestClient(create_app(SETTINGS, store, layout, supervisor=supervisor)) as client:
        response = client.post(
            f"/v1/cameras/{camera}/frames", content=body, headers={"Content-Type": content_type}
        )
        assert response.status_code == status, response.text
        assert reason in response.json()["detail"]


def test_pushed_frames_run_through_the_pipeline(
    store: Store, layout: StoreLayout, detector_supervisor: Any, pets_frames: list[np.ndarray]
) -> None:
    supervisor = detector_supervisor(layout, store)
    with TestClient(create_app(SETTINGS, store, layout, supervisor=supervisor)) as client:
        bad_time = client.post(
            "/v1/cameras/cam1/frames",
            content=jpeg_of(pets_frames[0]),
            headers={"Content-Type": "image/jpeg", "X-Capture-Time": "yesterday"},
        )
        assert bad_time.status_code == 422 and "X-Capture-Time" in bad_time.json()["detail"]
        for i, image in enumerate(pets_frames[:6]):
            stamp = "2024-05-01T10:00:00Z" if i == 0 else str(T0 + i / 7)
            response = client.post(
                "/v1/cameras/cam1/frames",
                content=jpeg_of(image),
                headers={"Content-Type": "image/jpeg", "X-Capture-Time": stamp},
            )
            assert response.status_code == 202, response.text
            assert response.json()["width"] == 768
            time.sleep(0.05)

        def processed() -> dict[str, Any] | None:
            cams = client.get("/readyz").json()["cameras"]
            return cams[0] if cams and cams[0]["frames_processed"] >= 4 else None

        camera = wait_for(processed, what="pushed frames processed")
        assert camera["mode"] == "push" and camera["state"] == "running"
        assert T0 <= camera["last_frame_time"] <= T0 + 1
        occupancy = wait_for(
            lambda: sum(z["count"] for z in client.get("/v1/occupancy").json()["zones"].values()),
            what="people counted in the zones",
        )
        assert occupancy >= 3  # PETS09 frame 1 shows several people on the plaza


# ------------------------------------------------------------- cameras across processes
def test_cameras_lists_every_camera_of_the_layout_whichever_process_runs_it(
    store: Store, detector_supervisor: Any, pets_frames: list[np.ndarray]
) -> None:
    cameras = [{"id": "cam1"}, {"id": "cam2"}, {"id": "cam3"}]
    layout = StoreLayout.model_validate(layout_dict(store.store_id, cameras=cameras))
    settings = SETTINGS.model_copy(update={"camera_report_s": 0.1})
    with pytest.raises(ValueError, match=r"camera\(s\) till not in the layout"):
        detector_supervisor(layout, store, cameras=["cam1", "till"])
    # A worker process of its own runs cam1 and cam2; this replica runs no workers.
    workers = detector_supervisor(layout, store, settings, cameras=["cam1", "cam2"])
    workers.start(watch_layout=False)
    assert sorted(workers.camera_ids()) == ["cam1", "cam2"]
    store.put_camera_report(CameraReport("removed-cam", '{"state": "running"}', time.time()))
    with TestClient(create_app(settings, store, layout)) as replica:
        for index, image in enumerate(pets_frames[:4], start=1):
            workers.push_frame(Frame(image, index, T0 + index / 7, "cam1"))
            time.sleep(0.05)

        def cam1_processed() -> list[dict[str, Any]] | None:
            listed = replica.get("/v1/cameras").json()
            return listed if listed[0]["frames_processed"] >= 3 else None

        listed = wait_for(cam1_processed, what="cam1's frames seen by the replica")
        assert [c["camera_id"] for c in listed] == ["cam1", "cam2", "cam3"]
        cam1, cam2, cam3 = listed
        assert cam1["state"] == "running" and cam1["mode"] == "push"
        assert cam1["worker"] == workers.worker_name and not cam1["stale"]
        assert T0 < cam1["last_frame_time"] <= T0 + 1
        assert cam2["worker"] == workers.worker_name and cam2["frames_processed"] == 0
        assert cam3["state"] == "unassigned" and cam3["worker"] is None

        workers.stop()
        states = {c["camera_id"]: c["state"] for c in replica.get("/v1/cameras").json()}
        assert states == {"cam1": "stopped", "cam2": "stopped", "cam3": "unassigned"}

        store.put_camera_report(
            CameraReport(
                "cam3",
                '{"state": "running", "mode": "pull", "frames_processed": 9, "restarts": 0}',
                time.time() - 1,
            )
        )
        cam3 = replica.get("/v1/cameras").json()[2]
        assert cam3["state"] == "running" and cam3["stale"]  # three reports (0.3 s) missed

        store.put_camera_report(CameraReport("cam2", "{not json", time.time()))
        cam2 = replica.get("/v1/cameras").json()[1]
        assert cam2["state"] == "unknown" and "unreadable" in cam2["last_error"]
