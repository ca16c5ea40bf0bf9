"""The live part of the dashboard at ``/`` (zone cards, today's counts) in a real headless
Chromium, against a running service (the whole web app: tests/test_webapp.py)."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, expect
from service_helpers import SETTINGS, LiveServer, layout_dict
from storesense.api.app import create_app
from storesense.api.auth import new_key
from storesense.api.store import open_store
from storesense.api.store.base import Store
from storesense.zones.config import StoreLayout
from storesense.zones.events import Event, EventType

pytest_plugins = ["service_helpers"]


@pytest.fixture()
def store(tmp_path: Path) -> Iterator[Store]:
    opened = open_store(f"sqlite:///{tmp_path / 'live.db'}", f"live{uuid.uuid4().hex[:6]}")
    yield opened
    opened.close()


def test_live_page_shows_occupancy_and_todays_counts(
    browser: Browser, store: Store, tmp_path: Path
) -> None:
    key, record = new_key("front screen", ["analyst"])
    store.put_api_key(record)
    layout = StoreLayout.model_validate(layout_dict(store.store_id))
    now = time.time()
    store.write_events(
        [
            Event.create(EventType.ZONE_ENTER, store.store_id, "cam1", "left", i, now - 60 + i)
            for i in range(5)
        ]
    )
    store.set_occupancy("cam1", {"left": 2, "right": 0}, now)
    with LiveServer(create_app(SETTINGS, store, layout)) as server:
        page = browser.new_page()
        page.goto(f"{server.url}/#key={key}")
        expect(page.locator('.card[data-zone="left"] .count')).to_have_text("2")
        expect(page.locator('.card[data-zone="right"] .count')).to_have_text("0")
        entries = page.locator('#today tr[data-target="left"][data-measure="entries"] td.num')
        expect(entries).to_have_text("5")
        store.set_occupancy("cam1", {"left": 4, "right": 1}, now + 1)
        expect(page.locator('.card[data-zone="left"] .count')).to_have_text("4", timeout=5000)
        expect(page.locator('.card[data-zone="right"] .count')).to_have_text("1")
        expect(page.locator("#status")).to_have_text("live")
        screenshot = os.environ.get("STORESENSE_SCREENSHOT", str(tmp_path / "live.png"))
        page.screenshot(path=screenshot, full_page=True)

        anonymous = browser.new_page()
        anonymous.goto(server.url + "/")
        expect(anonymous.get_by_test_id("sign-in")).to_be_visible()  # asks for a key
        expect(anonymous.locator("#status")).to_have_text("sign in")
        anonymous.close()
        page.close()
