"""Issue 9 item 1: member tokens and track ids never reach display or analyst keys.

A real uvicorn serves the app over a real SQLite store with the real opt-in service;
a check-in links a track, the zone events of that track carry the member token in
the store, and every reader is checked: ``GET /v1/events`` (analyst, admin), the SSE
stream (display, analyst, admin) with ``Last-Event-ID: 0``.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from service_helpers import LiveServer, kiosk_bakery_layout, wait_for
from storesense.api.app import create_app
from storesense.api.auth import new_key
from storesense.api.privacy.redaction import PUBLIC_ATTRIBUTES, public_event_fields
from storesense.api.privacy.service import OptInService, OptInSettings
from storesense.api.settings import ServiceSettings
from storesense.api.store import open_store
from storesense.api.store.base import EventQuery, Store
from storesense.vision.detections import Tracks
from storesense.zones.events import Event, EventType


@dataclass
class Service:
    url: str
    store: Store
    optin: OptInService
    keys: dict[str, str]
    token: str


def _tracks(timestamp: float, boxes: dict[int, tuple[float, float, float, float]]) -> Tracks:
    ids = list(boxes)
    return Tracks(
        np.array([boxes[i] for i in ids], dtype=float).reshape(-1, 4),
        np.ones(len(ids)),
        np.array(ids),
        np.zeros((len(ids), 2)),
        timestamp=timestamp,
    )


def _member_events(service: Service, track: int, at: float) -> None:
    """Zone events of a linked track (4) and an anonymous one (5), tagged by the real hook."""
    store, optin = service.store, service.optin
    events = [
        Event.create(EventType.ZONE_ENTER, store.store_id, "cam1", "bakery", t, at) for t in (4, 5)
    ]
    tracks = _tracks(at, {4: (350, 100, 400, 300), 5: (400, 100, 450, 250)})
    store.write_events(optin.on_frame("cam1", tracks, events))


@pytest.fixture()
def service(tmp_path: Path) -> Iterator[Service]:
    store_id = f"t{uuid.uuid4().hex[:8]}"
    url = f"sqlite:///{tmp_path / 'store.db'}"
    store = open_store(url, store_id)
    layout = kiosk_bakery_layout(store_id)
    optin = OptInService.for_store(store, layout, OptInSettings(visit_gap_s=3600))
    keys = {}
    for scope in ("ingest", "display", "analyst", "admin"):
        key, record = new_key(f"{scope} key", [scope])
        store.put_api_key(record)
        keys[scope] = key
    app = create_app(ServiceSettings(store_url=url), store, layout, optin=optin)
    token = "m-" + uuid.uuid4().hex
    with LiveServer(app) as server:
        then = time.time() - 3600  # an hour ago: history, not live
        optin.on_frame("cam1", _tracks(then, {4: (50, 250, 100, 400)}), [])
        checkin = httpx.post(
            f"{server.url}/v1/optin/checkins",
            json={"member_token": token, "zone_id": "kiosk", "timestamp": then},
            headers={"Authorization": f"Bearer {keys['ingest']}"},
        )
        assert checkin.json()["outcome"] == "linked", checkin.text
        service = Service(server.url, store, optin, keys, token)
        _member_events(service, 4, then + 1)
        stored = {e.track_id: e.attributes.get("member") for e in store.query_events(EventQuery())}
        assert stored == {4: token, 5: None}  # the store keeps it (for erasure)
        yield service
    store.close()


def _get(service: Service, path: str, scope: str, **params: Any) -> httpx.Response:
    return httpx.get(
        f"{service.url}{path}",
        params=params,
        headers={"Authorization": f"Bearer {service.keys[scope]}"},
        timeout=10,
    )


def _sse_events(
    service: Service, scope: str, last_event_id: str | None, until: int, timeout_s: float = 5.0
) -> list[dict[str, Any]]:
    """Data of the first ``until`` event messages (or all received within ``timeout_s``)."""
    headers = {"Authorization": f"Bearer {service.keys[scope]}"}
    if last_event_id is not None:
        headers["Last-Event-ID"] = last_event_id
    received: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout_s
    with httpx.stream(
        "GET", f"{service.url}/v1/events/stream", headers=headers, timeout=timeout_s
    ) as response:
        assert response.status_code == 200
        name = None
        try:
            for line in response.iter_lines():
                if line.startswith("event: "):
                    name = line[7:]
                elif line.startswith("data: ") and name not in (None, "dropped"):
                    received.append(json.loads(line[6:]))
                    if len(received) >= until:
                        break
                if time.monotonic() > deadline:
                    break
        except httpx.ReadTimeout:
            pass
    return received


def _assert_public(payload: dict[str, Any], token: str) -> None:
    assert "track_id" not in payload
    assert token not in json.dumps(payload)
    assert set(payload["attributes"]) <= PUBLIC_ATTRIBUTES


def test_analyst_event_list_has_no_member_token_or_track_id(service: Service) -> None:
    window = {"from": time.time() - 7200, "to": time.time() + 10}
    analyst = _get(service, "/v1/events", "analyst", **window)
    assert analyst.status_code == 200 and len(analyst.json()) == 2
    assert service.token not in analyst.text
    for payload in analyst.json():
        _assert_public(payload, service.token)
    admin = _get(service, "/v1/events", "admin", **window).json()
    assert {e["track_id"]: e["attributes"].get("member") for e in admin} == {
        4: service.token,
        5: None,
    }


def test_display_stream_gets_no_history_and_no_member_token(service: Service) -> None:
    # Last-Event-ID: 0 asks for the whole history: a display gets none of it ...
    assert _sse_events(service, "display", "0", until=1, timeout_s=2.0) == []
    # ... but live events (member tagged in the store) arrive redacted.
    received: list[dict[str, Any]] = []

    def live_event_arrives() -> bool:
        _member_events(service, 4, time.time())
        received.extend(_sse_events(service, "display", "0", until=2, timeout_s=2.0))
        return bool(received)

    wait_for(live_event_arrives, timeout=20, what="a live event on the display stream")
    for payload in received:
        _assert_public(payload, service.token)
        assert payload["timestamp"] > time.time() - 60


def test_analyst_stream_replays_history_redacted_and_admin_sees_members(
    service: Service,
) -> None:
    analyst = _sse_events(service, "analyst", "0", until=2)
    assert [e["target"] for e in analyst] == ["bakery", "bakery"]
    for payload in analyst:
        _assert_public(payload, service.token)
    admin = _sse_events(service, "admin", "0", until=2)
    assert {e["track_id"]: e["attributes"].get("member") for e in admin} == {
        4: service.token,
        5: None,
    }


@pytest.mark.parametrize(
    ("kind", "attributes", "shown"),
    [
        (EventType.ZONE_EXIT, {"dwell_seconds": 3.5, "member": "m-1"}, {"dwell_seconds": 3.5}),
        (EventType.LINE_CROSS, {"direction": "in", "member": "m-1"}, {"direction": "in"}),
        (
            EventType.ITEM_RETURNED,
            {"cell": [0, 1], "take_event_id": "abc", "take_track_id": 9},
            {"cell": [0, 1], "take_event_id": "abc"},
        ),
        (EventType.ZONE_ENTER, {"anything_new": 1}, {}),
    ],
)
def test_public_event_fields_keep_only_event_attributes(
    kind: EventType, attributes: dict[str, Any], shown: dict[str, Any]
) -> None:
    event = Event.create(kind, "s", "cam1", "z", 9, 1.0, attributes)
    fields = public_event_fields(event)
    assert fields["attributes"] == shown
    assert set(fields) == {"event_id", "type", "camera_id", "target", "timestamp", "attributes"}
