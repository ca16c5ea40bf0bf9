"""Issue 9 item 3: one time model; every timestamp the service accepts is finite, in a
sane window, Unix seconds or ISO 8601, and anything else is a 422 with a reason.

Real uvicorn over a real SQLite store with the opt-in service; each case was a 500 (or
was stored and did harm) before :mod:`storesense.zones.timemodel`.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from service_helpers import SETTINGS, LiveServer, layout_dict
from storesense.api.app import create_app
from storesense.api.privacy.service import OptInService, OptInSettings
from storesense.api.store import open_store
from storesense.api.store.base import Store
from storesense.zones.config import LayoutError, StoreLayout, parse_layout
from storesense.zones.timemodel import parse_bucket, parse_timestamp


@dataclass
class Live:
    url: str
    store: Store


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    store_id = f"t{uuid.uuid4().hex[:8]}"
    url = f"sqlite:///{tmp_path_factory.mktemp('time') / 'store.db'}"
    store = open_store(url, store_id)
    layout = StoreLayout.model_validate(layout_dict(store_id))
    optin = OptInService.for_store(store, layout, OptInSettings())
    app = create_app(SETTINGS, store, layout, optin=optin)
    with LiveServer(app) as server:
        yield Live(server.url, store)
    store.close()


BAD_QUERIES = [
    {"from": "nan", "to": "nan"},
    {"from": "1714557600", "to": "inf"},
    {"from": "-inf", "to": "1714557600"},
    {"from": "1714557600", "to": "1714561200", "bucket": "99999999999d"},
    {"from": "1e15", "to": "1e15"},
    {"from": "1714557600", "to": "1e15"},
    {"from": "0001-01-01T00:00:00", "to": "1714557600"},
    {"from": "1714557600", "to": "9999-12-31T23:59:59+00:00"},
    {"from": "1714557600", "to": "1714557600"},
    {"from": "1000000000", "to": "1714557600", "bucket": "1d"},  # 2001..2024 > 10 years
    {"from": "yesterday", "to": "1714557600"},
    {"from": "2024-05-01T10:00:00-25:00", "to": "1714557600"},
]


BAD_QUERY_CASES = [
    (path, params)
    for path in ("/v1/counts", "/v1/metrics", "/v1/events", "/v1/transactions")
    for params in BAD_QUERIES
    if "bucket" not in params or path in ("/v1/counts", "/v1/metrics")
]


@pytest.mark.parametrize(
    ("path", "params"),
    BAD_QUERY_CASES,
    ids=[f"{p}?{'&'.join(q.values())}" for p, q in BAD_QUERY_CASES],
)
def test_bad_query_times_are_422_with_a_reason(
    live: Live, path: str, params: dict[str, str]
) -> None:
    response = httpx.get(f"{live.url}{path}", params=params, timeout=10)
    assert response.status_code == 422, (path, params, response.text)
    message = json.dumps(response.json()["detail"])
    assert any(word in message for word in ("'from'", "'to'", "bucket", "from", "to")), message


@pytest.mark.parametrize("path", ["/v1/counts", "/v1/metrics"])
def test_iso_and_unix_query_bounds_are_the_same(live: Live, path: str) -> None:
    iso = httpx.get(
        f"{live.url}{path}",
        params={"from": "2024-05-01T10:00:00Z", "to": "2024-05-01T12:00:00+02:00", "bucket": "1h"},
    )
    unix = httpx.get(
        f"{live.url}{path}", params={"from": "1714557600", "to": "1714557600", "bucket": "1h"}
    )
    assert unix.status_code == 422  # empty range
    assert iso.status_code == 422  # 12:00+02:00 is 10:00Z: the same empty range
    ok = httpx.get(
        f"{live.url}{path}",
        params={"from": "2024-05-01T10:00:00Z", "to": "1714564800", "bucket": "1h"},
    )
    assert ok.status_code == 200, ok.text


@pytest.mark.parametrize(
    "body",
    [
        b'{"buckets": [{"start": NaN, "count": 3}]}',
        b'{"buckets": [{"start": Infinity, "count": 3}]}',
        b'{"buckets": [{"start": 1714557600, "count": 1e23}]}',
        b'{"buckets": [{"start": 1714557600, "count": -1}]}',
        b'{"buckets": [{"start": 1714557600, "count": 2.5}]}',
        b'{"buckets": [{"start": 1e300, "count": 3}]}',
        b'{"buckets": [{"start": "0001-01-01T00:00:00", "count": 3}]}',
        b'{"buckets": [{"start": "2100-01-01T00:00:00Z", "count": 3}]}',
    ],
)
def test_bad_transactions_are_refused_and_not_stored(live: Live, body: bytes) -> None:
    response = httpx.post(
        f"{live.url}/v1/transactions",
        content=body,
        headers={"Content-Type": "application/json"},
        timeout=10,
    )
    assert response.status_code == 422, response.text
    assert "buckets[0]" in json.dumps(response.json()["detail"])
    assert live.store.get_transactions(-1e18, 1e18) == {}


def test_transactions_accept_iso_and_unix(live: Live) -> None:
    body = {
        "buckets": [
            {"start": "2024-05-01T10:00:00Z", "count": 3},
            {"start": 1714561200, "count": 4.0},
        ]
    }
    assert httpx.post(f"{live.url}/v1/transactions", json=body).status_code == 204
    got = httpx.get(
        f"{live.url}/v1/transactions", params={"from": "2024-05-01", "to": "2024-05-02"}
    )
    assert got.json() == {"buckets": {"1714557600": 3, "1714561200": 4}}


@pytest.mark.parametrize(
    ("timestamp", "status"),
    [
        ("Infinity", 422),
        ("NaN", 422),
        ("-1e300", 422),
        ('"0001-01-01T00:00:00"', 422),
        ('"2100-01-01T00:00:00Z"', 422),
        ("0", 422),
        ('"2024-05-01T10:00:00Z"', 200),  # ISO, as everywhere else
        ("1714557600", 200),
    ],
)
def test_checkin_timestamps_follow_the_time_model(live: Live, timestamp: str, status: int) -> None:
    token = f"m-{uuid.uuid4().hex[:6]}"
    body = f'{{"member_token": "{token}", "camera_id": "cam1", "timestamp": {timestamp}}}'
    response = httpx.post(
        f"{live.url}/v1/optin/checkins",
        content=body.encode(),
        headers={"Content-Type": "application/json"},
        timeout=10,
    )
    assert response.status_code == status, response.text
    if status == 422:
        assert "timestamp" in response.text


@pytest.mark.parametrize(
    ("camera", "fragment"),
    [
        ({"id": "cam1", "fps": 1e-300}, "fps"),
        ({"id": "cam1", "fps": 1e9}, "fps"),
        ({"id": "cam1", "fps": 0}, "fps"),
        ({"id": "cam1", "start_time": "0001-01-01T00:00:00"}, "start_time"),
        ({"id": "cam1", "start_time": 1e300}, "start_time"),
        ({"id": "cam1", "start_time": "2100-01-01T00:00:00Z"}, "start_time"),
    ],
)
def test_layout_fps_and_start_time_are_bounded(
    live: Live, camera: dict[str, object], fragment: str
) -> None:
    data = layout_dict(live.store.store_id, cameras=[camera])
    with pytest.raises(LayoutError, match=fragment):
        parse_layout(data)
    response = httpx.put(f"{live.url}/v1/layout", json=data, timeout=10)
    assert response.status_code == 422, response.text
    assert fragment in response.text


def test_layout_start_time_in_either_form_is_the_same_utc_moment() -> None:
    def start(value: object) -> float:
        data = layout_dict("s", cameras=[{"id": "cam1", "start_time": value}])
        moment = parse_layout(data).cameras[0].start_time
        assert moment is not None
        return moment.timestamp()

    assert start("2024-05-01T10:00:00") == start("2024-05-01T10:00:00Z") == start(1714557600)


def test_window_follows_the_clock() -> None:
    now = time.time()
    assert parse_timestamp(now + 3600) == now + 3600
    with pytest.raises(ValueError, match="ahead of the server clock"):
        parse_timestamp(now + 2 * 86_400)
    with pytest.raises(ValueError, match="366 days"):
        parse_bucket("367d")
