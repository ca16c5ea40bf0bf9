"""``/v1/counts`` and ``/v1/metrics`` without ``from``/``to``: today in the store's time zone."""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient
from service_helpers import SETTINGS, T0, layout_dict, make_event
from storesense.api.app import create_app
from storesense.api.store.base import Store
from storesense.zones.config import StoreLayout
from storesense.zones.events import EventType

pytest_plugins = ["service_helpers"]


@pytest.mark.parametrize("timezone", ["UTC", "Pacific/Kiritimati", "America/Adak"])
def test_counts_default_to_today_in_the_store_time_zone(store: Store, timezone: str) -> None:
    zone = ZoneInfo(timezone)
    data = layout_dict(store.store_id)
    data["store"]["timezone"] = timezone
    layout = StoreLayout.model_validate(data)
    now = datetime.now(zone)
    midnight = datetime(now.year, now.month, now.day, tzinfo=zone)
    today = midnight.timestamp()
    yesterday = (midnight - timedelta(hours=1)).timestamp()
    store.write_events(
        [
            make_event(store, "left", EventType.ZONE_ENTER, today + 1),
            make_event(store, "left", EventType.ZONE_ENTER, min(time.time(), today + 2)),
            make_event(store, "left", EventType.ZONE_ENTER, yesterday),
        ]
    )
    with TestClient(create_app(SETTINGS, store, layout)) as client:
        body = client.get("/v1/counts?bucket=1d&zone=left").json()
        metrics = client.get("/v1/metrics").json()
    assert body["start"] == pytest.approx(today)
    tomorrow = datetime(now.year, now.month, now.day) + timedelta(days=1)
    assert body["end"] == pytest.approx(tomorrow.replace(tzinfo=zone).timestamp())
    entries = [r["count"] for r in body["rows"] if r["measure"] == "entries"]
    assert entries == [2]
    assert datetime.fromisoformat(metrics["start"]).timestamp() == pytest.approx(today)
    assert datetime.fromisoformat(metrics["end"]).timestamp() == pytest.approx(body["end"])


@pytest.mark.parametrize(
    ("path", "bucket", "message"),
    [
        ("/v1/counts", "1s", "more than 100000 buckets: use a larger bucket"),
        ("/v1/metrics", "1s", "more than 10000 buckets: use a larger bucket"),
        ("/v1/counts", "7x", "bucket '7x' must be a positive number and a unit s/m/h/d"),
        ("/v1/metrics", "0m", "bucket '0m' must be a positive number and a unit s/m/h/d"),
    ],
)
def test_bad_or_too_fine_buckets_are_422_with_the_reason(
    store: Store, path: str, bucket: str, message: str
) -> None:
    layout = StoreLayout.model_validate(layout_dict(store.store_id))
    with TestClient(create_app(SETTINGS, store, layout)) as client:
        response = client.get(path, params={"from": T0, "to": T0 + 2 * 86_400, "bucket": bucket})
    assert response.status_code == 422
    assert message in response.json()["detail"]
