"""Issue 9 item 4: a pushed frame can neither crash nor blind a camera.

Real uvicorn, the real detector and real PETS09 frames pushed over HTTP: capture
times that cannot be one (nan, inf, -1e300, year 2100) are 422 and never reach the
worker; a frame stamped a little ahead (accepted) followed by frames on the right
clock makes the worker restart its tracker instead of dropping every later frame.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from service_helpers import SETTINGS, LiveServer, jpeg_of, layout_dict, wait_for
from storesense.api.app import create_app
from storesense.api.settings import BackoffSettings
from storesense.api.store import open_store
from storesense.zones.config import StoreLayout

pytest_plugins = ["service_helpers"]


def _push(url: str, image: np.ndarray, capture_time: str) -> httpx.Response:
    return httpx.post(
        f"{url}/v1/cameras/cam1/frames",
        content=jpeg_of(image),
        headers={"Content-Type": "image/jpeg", "X-Capture-Time": capture_time},
        timeout=30,
    )


def _camera(url: str) -> dict[str, Any]:
    cameras: list[dict[str, Any]] = httpx.get(f"{url}/v1/cameras", timeout=10).json()
    return cameras[0]


def test_bad_capture_times_are_422_and_a_future_frame_does_not_blind_the_camera(
    tmp_path: Path, detector_supervisor: Any, pets_frames: list[np.ndarray]
) -> None:
    store_id = f"t{uuid.uuid4().hex[:8]}"
    store = open_store(f"sqlite:///{tmp_path / 'store.db'}", store_id)
    layout = StoreLayout.model_validate(layout_dict(store_id))
    settings = SETTINGS.model_copy(
        update={"backoff": BackoffSettings(initial_s=0.2, max_s=0.5, healthy_after_s=1.0)}
    )
    supervisor = detector_supervisor(layout, store, settings)
    app = create_app(settings, store, layout, supervisor=supervisor)
    with LiveServer(app) as server:
        start = time.time() - 30
        for i in range(3):
            assert _push(server.url, pets_frames[i], str(start + i / 7)).status_code == 202
        wait_for(lambda: _camera(server.url)["frames_processed"] >= 3, 60, "first frames")

        for bad in ("nan", "inf", "-inf", "-1e300", "4102444800", "2100-01-01T00:00:00Z"):
            response = _push(server.url, pets_frames[3], bad)
            assert response.status_code == 422, (bad, response.text)
            assert "X-Capture-Time" in response.json()["detail"]

        # Accepted (within the 60 s tolerance) but 50 s ahead of the frames that follow.
        assert _push(server.url, pets_frames[3], str(time.time() + 50)).status_code == 202
        wait_for(lambda: _camera(server.url)["frames_processed"] >= 4, 60, "the early frame")
        ahead = _camera(server.url)["last_frame_time"]

        def back_on_the_right_clock() -> bool:
            _push(server.url, pets_frames[4], str(time.time()))
            camera = _camera(server.url)
            return camera["state"] == "running" and camera["last_frame_time"] < ahead - 30

        wait_for(back_on_the_right_clock, 60, "frames after the early one processed")
        camera = _camera(server.url)
        assert camera["restarts"] >= 1
        assert camera["frames_processed"] >= 5
    store.close()


@pytest.mark.parametrize("jump_s", [0.5, 3.0])
def test_a_slightly_late_frame_is_dropped_not_a_restart(
    tmp_path: Path, detector_supervisor: Any, pets_frames: list[np.ndarray], jump_s: float
) -> None:
    store_id = f"t{uuid.uuid4().hex[:8]}"
    store = open_store(f"sqlite:///{tmp_path / 'store.db'}", store_id)
    layout = StoreLayout.model_validate(layout_dict(store_id))
    supervisor = detector_supervisor(layout, store)
    with LiveServer(create_app(SETTINGS, store, layout, supervisor=supervisor)) as server:
        now = time.time() - 20
        assert _push(server.url, pets_frames[0], str(now)).status_code == 202
        wait_for(lambda: _camera(server.url)["frames_processed"] >= 1, 60, "first frame")
        assert _push(server.url, pets_frames[1], str(now - jump_s)).status_code == 202
        assert _push(server.url, pets_frames[2], str(now + 1)).status_code == 202
        wait_for(lambda: _camera(server.url)["frames_processed"] >= 2, 60, "third frame")
        camera = _camera(server.url)
        assert camera["restarts"] == 0 and camera["frames_processed"] == 2
        assert camera["last_frame_time"] == pytest.approx(now + 1)
    store.close()
