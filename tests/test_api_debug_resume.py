"""Admin debug snapshots (pixelated, audited, expiring) and event-stream resume."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient
from service_helpers import SETTINGS, T0, LiveServer, jpeg_of, layout_dict, make_event, wait_for
from storesense.api.app import create_app
from storesense.api.auth import new_key
from storesense.api.privacy.service import OptInService
from storesense.api.runtime import DebugSnapshots, WorkerSupervisor, pipeline_factory_for
from storesense.api.store import open_store
from storesense.api.store.base import Store
from storesense.zones.config import StoreLayout
from storesense.zones.events import EventType

pytest_plugins = ["service_helpers"]


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def fine_detail(image: np.ndarray, tile: int = 4) -> float:
    """Median grey-level spread inside ``tile``x``tile`` squares: texture, edges, faces.

    A mosaic leaves nearly flat squares (only those across a cell border vary).
    """
    grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY).astype(np.float32)
    height, width = (grey.shape[0] // tile) * tile, (grey.shape[1] // tile) * tile
    tiles = grey[:height, :width].reshape(height // tile, tile, width // tile, tile)
    return float(np.median(tiles.std(axis=(1, 3))))


@pytest.fixture()
def sqlite_store(tmp_path: Path) -> Iterator[tuple[Store, str]]:
    url = f"sqlite:///{tmp_path / 'debug.db'}"
    opened = open_store(url, f"d{uuid.uuid4().hex[:8]}")
    yield opened, url
    opened.close()


def test_debug_snapshots_admin_only_pixelated_audited_and_expiring(
    sqlite_store: tuple[Store, str],
    pets_frames: list[np.ndarray],
    yolox_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    from storesense.vision.detector import Detector

    caplog.set_level(logging.WARNING, logger="storesense.api.routers.cameras")
    db, _url = sqlite_store
    admin_key, admin = new_key("ops", ["admin"])
    analyst_key, analyst = new_key("office", ["analyst"])
    db.put_api_key(admin)
    db.put_api_key(analyst)
    layout = StoreLayout.model_validate(layout_dict(db.store_id))
    detector = Detector.from_model("yolox-nano")
    clock = FakeClock()
    supervisor = WorkerSupervisor(
        layout,
        db,
        SETTINGS,
        pipeline_factory=pipeline_factory_for(detector),
        snapshots=DebugSnapshots(clock=clock),
    )
    optin = OptInService.for_store(db, layout)
    as_admin = {"X-API-Key": admin_key}
    as_analyst = {"X-API-Key": analyst_key}
    app = create_app(SETTINGS, db, layout, supervisor=supervisor, optin=optin)
    with TestClient(app) as client:
        debug_url, snapshot_url = "/v1/cameras/cam1/debug", "/v1/cameras/cam1/snapshot"
        assert client.get(debug_url, headers=as_admin).json()["snapshots"] is False
        off = client.get(snapshot_url, headers=as_admin)
        assert off.status_code == 409 and "off" in off.json()["detail"]
        on = {"snapshots": True, "ttl_seconds": 60}
        assert client.put(debug_url, json=on, headers=as_analyst).status_code == 403
        assert client.get(snapshot_url, headers=as_analyst).status_code == 403
        assert client.put(debug_url, json={"snapshots": True, "ttl_seconds": 0}).status_code == 401
        for bad_ttl in (0, -5, 10**6):
            bad = client.put(
                debug_url, json={"snapshots": True, "ttl_seconds": bad_ttl}, headers=as_admin
            )
            assert bad.status_code == 422, bad.text
        # Frames processed while the switch is off leave nothing behind.
        frame_headers = {"Content-Type": "image/jpeg", **as_admin}
        client.post(
            "/v1/cameras/cam1/frames",
            content=jpeg_of(pets_frames[0]),
            headers={**frame_headers, "X-Capture-Time": str(T0)},
        )
        wait_for(lambda: supervisor.statuses()["cam1"].frames_processed >= 1, what="a frame")
        assert supervisor.snapshots._frames == {}

        state = client.put(debug_url, json=on, headers=as_admin).json()
        assert state == {"camera_id": "cam1", "snapshots": True, "expires_at": clock.now + 60}
        assert client.get(snapshot_url, headers=as_admin).status_code == 404  # no frame yet
        original = pets_frames[1]
        client.post(
            "/v1/cameras/cam1/frames",
            content=jpeg_of(original),
            headers={**frame_headers, "X-Capture-Time": str(T0 + 1)},
        )
        snapshot = wait_for(
            lambda: (r := client.get(snapshot_url, headers=as_admin)).status_code == 200 and r,
            what="a snapshot",
        )
        assert snapshot.headers["content-type"] == "image/jpeg"
        assert snapshot.headers["cache-control"] == "no-store"
        image = cv2.imdecode(np.frombuffer(snapshot.content, np.uint8), cv2.IMREAD_COLOR)
        assert image is not None
        assert image.shape == original.shape
        people = detector.detect(original)
        boxes = people.xyxy[people.confidence >= 0.5].astype(int)
        assert len(boxes) >= 3  # PETS09 shows several people on the plaza
        for x0, y0, x1, y1 in boxes:
            inside, pixelated = original[y0:y1, x0:x1], image[y0:y1, x0:x1]
            detail = fine_detail(pixelated)
            assert detail < 3.0 and detail < 0.5 * fine_detail(inside), (x0, y0, x1, y1)
        # Outside the people it is the same frame (JPEG aside).
        top = slice(0, int(boxes[:, 1].min()) - 20)
        assert np.abs(image[top].astype(int) - original[top].astype(int)).mean() < 8

        audit = optin.store.audit_log()
        assert [(e.action, e.subject) for e in audit] == [
            ("debug_on", "camera:cam1"),
            ("snapshot", "camera:cam1"),
        ]
        assert audit[1].actor == admin.key_id
        assert any(f"key={admin.key_id}" in r.getMessage() for r in caplog.records)

        clock.now += 61  # the switch expires by itself
        expired = client.get(snapshot_url, headers=as_admin)
        assert expired.status_code == 409
        assert client.get(debug_url, headers=as_admin).json() == {
            "camera_id": "cam1",
            "snapshots": False,
            "expires_at": None,
        }
        assert supervisor.snapshots._frames == {}  # the held frame went with the switch
        unknown = client.get("/v1/cameras/cam9/snapshot", headers=as_admin)
        assert unknown.status_code == 404 and "cam9" in unknown.json()["detail"]


def read_messages(lines: Iterator[str], events: int) -> list[dict[str, Any]]:
    """SSE messages (id, event, data) until ``events`` messages with data were read."""
    messages: list[dict[str, Any]] = []
    current: dict[str, Any] = {}
    seen = 0
    for line in lines:
        if line == "":
            if current:
                messages.append(current)
                seen += "data" in current
                current = {}
                if seen == events:
                    break
            continue
        field, _, value = line.partition(": ")
        if field in ("id", "event", "retry"):
            current[field] = value
        elif field == "data":
            current["data"] = json.loads(value)
    return messages


def last_id(messages: list[dict[str, Any]]) -> str:
    return [m["id"] for m in messages if "id" in m][-1]


def test_event_stream_resumes_from_last_event_id_without_loss_or_repeat(
    store: Store,
    layout: StoreLayout,
) -> None:
    app = create_app(SETTINGS, store, layout)
    url = "/v1/events/stream?zone=left"
    with LiveServer(app) as server, httpx.Client(base_url=server.url, timeout=10) as client:
        with client.stream("GET", url) as response:
            wait_for(lambda: len(app.state.events._subscribers) == 1, what="subscription")
            store.write_events(
                [make_event(store, "left", EventType.ZONE_ENTER, T0 + i) for i in range(2)]
            )
            first = read_messages(response.iter_lines(), 2)
        assert first[0]["retry"] == "3000"
        wait_for(lambda: not app.state.events._subscribers, what="disconnect")
        missed = [make_event(store, "left", EventType.ZONE_EXIT, T0 + 10 + i) for i in range(3)]
        store.write_events([*missed, make_event(store, "right", EventType.ZONE_ENTER, T0 + 20)])
        resume = {"Last-Event-ID": last_id(first)}
        with client.stream("GET", url, headers=resume) as response:
            lines = response.iter_lines()
            caught_up = read_messages(lines, 3)
            wait_for(lambda: len(app.state.events._subscribers) == 1, what="resubscription")
            live = make_event(store, "left", EventType.ZONE_ENTER, T0 + 30)
            store.write_events([live])
            after = read_messages(lines, 1)
        bad = client.get("/v1/events/stream", headers={"Last-Event-ID": "x"})
        assert bad.status_code == 400 and "Last-Event-ID" in bad.json()["detail"]
    received = [m["data"]["event_id"] for m in caught_up + after if "data" in m]
    assert received == [e.event_id for e in [*missed, live]]  # exactly the missed, then live
    assert "id" in after[-1]


def test_event_stream_sends_keepalive_comments_while_idle_and_frames_events(
    store: Store, layout: StoreLayout
) -> None:
    settings = SETTINGS.model_copy(update={"sse_keepalive_s": 0.2})
    app = create_app(settings, store, layout)
    with (
        LiveServer(app) as server,
        httpx.Client(base_url=server.url, timeout=10) as client,
        client.stream("GET", "/v1/events/stream") as response,
    ):
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["cache-control"] == "no-cache"
        lines = response.iter_lines()
        head = [next(lines) for _ in range(6)]
        assert head[:3] == [": connected", "retry: 3000", ""]
        assert head[3].startswith("id: ") and head[4] == ""
        assert head[5] == ": keepalive"  # nothing happened for 0.2 s
        store.write_events([make_event(store, "left", EventType.ZONE_ENTER, T0)])
        message = read_messages(lines, 1)[-1]
    assert message["event"] == "zone_enter" and message["data"]["target"] == "left"
    assert "id" in message  # the store cursor, for Last-Event-ID
