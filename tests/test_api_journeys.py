"""``/v1/journeys`` (and the visit id's privacy) over a real SQLite store."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from service_helpers import SETTINGS, T0
from storesense.api.app import create_app
from storesense.api.auth import hash_key
from storesense.api.store import open_store
from storesense.api.store.base import ApiKeyRecord, Store
from storesense.zones.config import StoreLayout
from storesense.zones.events import Event, EventType

pytest_plugins = ["service_helpers"]


@pytest.fixture()
def sqlite_store(tmp_path: Path) -> Iterator[Store]:
    opened = open_store(f"sqlite:///{tmp_path / 'journeys.db'}", "shop")
    yield opened
    opened.close()


def journey_layout(k: int = 2, **journeys: Any) -> StoreLayout:
    return StoreLayout.model_validate(
        {
            "store": {"id": "shop", "journeys": {"k_anonymity": k, **journeys}},
            "cameras": [{"id": "cam1"}, {"id": "cam2"}],
            "zones": [
                {"id": z, "camera": "cam1", "polygon": [[x, 0], [x + 90, 0], [x + 90, 90]]}
                for z, x in (("door", 0), ("aisle", 100), ("till", 200))
            ]
            + [{"id": "cafe", "camera": "cam2", "polygon": [[0, 0], [90, 0], [90, 90]]}],
        }
    )


def visit(camera: str, track: int, zones: list[str], start: float) -> list[Event]:
    events = []
    for i, zone in enumerate(zones):
        entered = start + 5 * i
        events.append(Event.create(EventType.ZONE_ENTER, "shop", camera, zone, track, entered))
        events.append(
            Event.create(
                EventType.ZONE_EXIT,
                "shop",
                camera,
                zone,
                track,
                entered + 3,
                {"dwell_seconds": 3.0, "visit_id": f"{camera}:{track}", "group_id": "g"},
            )
        )
    return events


def fill(store: Store) -> None:
    events: list[Event] = []
    for track in range(1, 4):  # 3 x door → aisle → till
        events += visit("cam1", track, ["door", "aisle", "till"], T0 + 60 * track)
    for track in range(4, 6):  # 2 x door → till
        events += visit("cam1", track, ["door", "till"], T0 + 60 * track)
    events += visit("cam1", 6, ["till", "door"], T0 + 400)  # 1 rare path
    events += visit("cam2", 1, ["cafe"], T0 + 100)
    events += visit("cam1", 7, ["door"], T0 + 7200)  # outside the range asked for
    store.write_events(events)


def test_journeys_json_has_exactly_the_dashboard_shape(sqlite_store: Store) -> None:
    fill(sqlite_store)
    with TestClient(create_app(SETTINGS, sqlite_store, journey_layout())) as client:
        response = client.get("/v1/journeys", params={"from": T0, "to": T0 + 3600})
    assert response.status_code == 200
    assert response.json() == {
        "start": T0,
        "end": T0 + 3600,
        "visits": 7,
        "transitions": {"door": {"aisle": 3, "till": 2}, "aisle": {"till": 3}},
        "paths": [
            {"path": ["door", "aisle", "till"], "visits": 3},
            {"path": ["door", "till"], "visits": 2},
        ],
        "k_anonymity": 2,
        "other_visits": 2,
    }


def test_journeys_of_one_camera_and_without_k(sqlite_store: Store) -> None:
    fill(sqlite_store)
    with TestClient(create_app(SETTINGS, sqlite_store, journey_layout(k=0))) as client:
        body = client.get(
            "/v1/journeys", params={"from": T0, "to": T0 + 3600, "camera": "cam2"}
        ).json()
        everything = client.get("/v1/journeys", params={"from": T0, "to": T0 + 3600}).json()
    assert body["visits"] == 1 and body["paths"] == [{"path": ["cafe"], "visits": 1}]
    assert body["transitions"] == {} and body["other_visits"] == 0
    assert everything["transitions"]["till"] == {"door": 1}
    assert {"path": ["till", "door"], "visits": 1} in everything["paths"]


def test_the_service_k_anonymity_wins_when_stricter(sqlite_store: Store) -> None:
    fill(sqlite_store)
    settings = SETTINGS.model_copy(update={"k_anonymity": 3})
    with TestClient(create_app(settings, sqlite_store, journey_layout(k=2))) as client:
        body = client.get("/v1/journeys", params={"from": T0, "to": T0 + 3600}).json()
    assert body["k_anonymity"] == 3
    assert body["paths"] == [{"path": ["door", "aisle", "till"], "visits": 3}]
    assert body["other_visits"] == 4
    assert body["transitions"] == {"door": {"aisle": 3}, "aisle": {"till": 3}}


@pytest.mark.parametrize("how", [{"format": "csv"}, {"accept": "text/csv"}])
def test_journeys_as_csv(sqlite_store: Store, how: dict[str, str]) -> None:
    fill(sqlite_store)
    params: dict[str, Any] = {"from": T0, "to": T0 + 3600}
    headers = {}
    if "format" in how:
        params["format"] = how["format"]
    else:
        headers["Accept"] = how["accept"]
    with TestClient(create_app(SETTINGS, sqlite_store, journey_layout())) as client:
        response = client.get("/v1/journeys", params=params, headers=headers)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(response.text)))
    assert rows[0] == ["kind", "path", "visits"]
    assert ["visits", "", "7"] in rows
    assert ["path", "door > aisle > till", "3"] in rows
    assert ["other", "", "2"] in rows
    assert ["transition", "door > till", "2"] in rows


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"from": T0, "to": T0 + 60, "camera": "cam9"}, "unknown camera 'cam9'"),
        ({"from": T0 + 60, "to": T0}, "must be after"),
        ({"from": "yesterday", "to": T0}, "neither Unix seconds nor ISO 8601"),
        ({"from": T0, "to": T0 + 60, "format": "xml"}, "format"),
        ({"from": "nan", "to": T0}, "'from' (nan) is not a representable time"),
        ({"from": T0, "to": "1e400"}, "'to' (inf) is not a representable time"),
    ],
)
def test_bad_journey_queries_are_422(
    sqlite_store: Store, params: dict[str, Any], message: str
) -> None:
    with TestClient(create_app(SETTINGS, sqlite_store, journey_layout())) as client:
        response = client.get("/v1/journeys", params=params)
    assert response.status_code == 422
    assert message in str(response.json()["detail"])


def test_journeys_need_the_analyst_scope_and_visit_ids_stay_admin_only(
    sqlite_store: Store,
) -> None:
    fill(sqlite_store)
    keys = {}
    for name, scopes in (("shelf", ["display"]), ("analyst", ["analyst"]), ("boss", ["admin"])):
        secret = f"sk-{name}-0123456789abcdef"
        keys[name] = secret
        sqlite_store.put_api_key(ApiKeyRecord(name, name, hash_key(secret), frozenset(scopes), T0))
    with TestClient(create_app(SETTINGS, sqlite_store, journey_layout())) as client:

        def get(path: str, key: str, **params: Any) -> Any:
            return client.get(path, params=params, headers={"Authorization": f"Bearer {key}"})

        hour = {"from": T0, "to": T0 + 60}
        assert get("/v1/journeys", keys["shelf"], **hour).status_code == 403
        assert get("/v1/journeys", keys["analyst"], **hour).status_code == 200
        analyst = get("/v1/events", keys["analyst"], **{"from": T0, "to": T0 + 3600}).json()
        admin = get("/v1/events", keys["boss"], **{"from": T0, "to": T0 + 3600}).json()
    assert analyst and all(
        "visit_id" not in e["attributes"] and "group_id" not in e["attributes"] for e in analyst
    )
    assert any("visit_id" in e["attributes"] for e in admin)
