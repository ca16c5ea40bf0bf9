"""Helpers shared by the service tests (API, workers, serve, live page): real stores
(SQLite and a real redis-server), real uvicorn, real PETS09 frames and the real detector.

Test modules import them as ``from service_helpers import …`` (fixtures included).
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import uvicorn
from fastapi import FastAPI
from fixtures_redis import free_port
from playwright.sync_api import Browser, sync_playwright
from storesense.api.settings import ServiceSettings
from storesense.api.store import open_store
from storesense.api.store.base import Store
from storesense.zones.config import StoreLayout
from storesense.zones.events import Event, EventType

T0 = 1_714_557_600.0  # 2024-05-01T10:00:00Z


def layout_dict(store_id: str, *, cameras: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """PETS09-sized camera split into a left and a right zone, with a door line between."""
    return {
        "store": {"id": store_id, "timezone": "UTC"},
        "cameras": cameras or [{"id": "cam1"}],
        "zones": [
            {"id": "left", "camera": "cam1", "polygon": [[0, 0], [384, 0], [384, 576], [0, 576]]},
            {
                "id": "right",
                "camera": "cam1",
                "polygon": [[384, 0], [768, 0], [768, 576], [384, 576]],
            },
        ],
        "lines": [
            {
                "id": "door",
                "camera": "cam1",
                "points": [[384, 0], [384, 576]],
                "inside": [600, 300],
                "entrance": True,
            }
        ],
    }


def kiosk_bakery_layout(store_id: str) -> StoreLayout:
    """One push camera ``cam1`` (640x480) with a ``kiosk`` and a ``bakery`` zone: the
    opt-in tests' store."""
    return StoreLayout.model_validate(
        {
            "store": {"id": store_id, "timezone": "UTC"},
            "cameras": [{"id": "cam1"}],
            "zones": [
                {
                    "id": "kiosk",
                    "camera": "cam1",
                    "polygon": [[0, 300], [200, 300], [200, 480], [0, 480]],
                },
                {
                    "id": "bakery",
                    "camera": "cam1",
                    "polygon": [[300, 0], [640, 0], [640, 480], [300, 480]],
                },
            ],
        }
    )


@pytest.fixture(params=["sqlite", "redis"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    store_id = f"t{uuid.uuid4().hex[:10]}"
    if request.param == "sqlite":
        opened = open_store(f"sqlite:///{tmp_path / 'store.db'}", store_id)
    else:
        opened = open_store(request.getfixturevalue("redis_url"), store_id)
    yield opened
    opened.close()


@pytest.fixture()
def layout(store: Store) -> StoreLayout:
    return StoreLayout.model_validate(layout_dict(store.store_id))


SETTINGS = ServiceSettings(store_url="sqlite:///unused.db", occupancy_refresh_s=0.02)


def make_event(store: Store, target: str, kind: EventType, ts: float, **attrs: Any) -> Event:
    return Event.create(kind, store.store_id, "cam1", target, 7, ts, attrs)


class LiveServer:
    """The app served by a real uvicorn on a free port, in a thread."""

    def __init__(self, app: FastAPI) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)


def wait_for(condition: Any, timeout: float = 10.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def jpeg_of(image: np.ndarray) -> bytes:
    ok, encoded = cv2.imencode(".jpg", image)
    assert ok
    return bytes(encoded.tobytes())


def cut_clip(source: Path, target: Path, frames: int) -> Path:
    """The first ``frames`` frames of ``source`` as an MJPG AVI at ``target``."""
    capture = cv2.VideoCapture(str(source))
    writer: cv2.VideoWriter | None = None
    try:
        for _ in range(frames):
            ok, image = capture.read()
            if not ok:
                break
            if writer is None:
                height, width = image.shape[:2]
                fourcc = cv2.VideoWriter_fourcc(*"MJPG")  # type: ignore[attr-defined]
                writer = cv2.VideoWriter(str(target), fourcc, 7.0, (width, height))
            writer.write(image)
    finally:
        capture.release()
        if writer is not None:
            writer.release()
    return target


# ----------------------------------------------------------------- shared fixtures
@pytest.fixture(scope="session")
def detector(yolox_path: Path) -> Any:
    from storesense.vision.detector import Detector

    return Detector.from_model("yolox-nano")


@pytest.fixture()
def detector_supervisor(detector: Any) -> Iterator[Any]:
    from storesense.api.runtime import WorkerSupervisor, pipeline_factory_for

    made: list[WorkerSupervisor] = []

    def make(
        layout: StoreLayout, store: Store, settings: ServiceSettings = SETTINGS, **kwargs: Any
    ) -> WorkerSupervisor:
        supervisor = WorkerSupervisor(
            layout, store, settings, pipeline_factory=pipeline_factory_for(detector), **kwargs
        )
        made.append(supervisor)
        return supervisor

    yield make
    for supervisor in made:
        supervisor.stop()


@pytest.fixture(scope="session")
def pets_frames(pets09: Path) -> list[np.ndarray]:
    capture = cv2.VideoCapture(str(pets09 / "PETS09-S2L1.avi"))
    frames: list[np.ndarray] = []
    while len(frames) < 8:
        ok, image = capture.read()
        assert ok
        frames.append(image)
    capture.release()
    return frames


CHROMIUM = os.environ.get("STORESENSE_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Real headless Chromium (Debian's), one per test module."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()
