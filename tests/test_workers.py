"""Camera workers with the real detector, real video and a real store."""

from __future__ import annotations

import logging
import re
import shutil
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from fastapi.testclient import TestClient
from service_helpers import T0, cut_clip, jpeg_of, layout_dict, wait_for
from storesense.api.app import create_app
from storesense.api.runtime import CameraState, WorkerSupervisor, pipeline_factory_for
from storesense.api.settings import BackoffSettings, ServiceSettings
from storesense.api.store import open_store
from storesense.api.store.base import EventQuery, Store
from storesense.vision.frames import Frame
from storesense.zones.config import CameraConfig, StoreLayout
from storesense.zones.events import EventType

FAST = ServiceSettings(
    store_url="sqlite:///unused.db",
    occupancy_refresh_s=0.02,
    realtime=False,
    backoff=BackoffSettings(initial_s=0.2, factor=2.0, max_s=1.0),
)

pytest_plugins = ["service_helpers"]


@pytest.fixture()
def store(tmp_path: Path) -> Any:
    opened = open_store(f"sqlite:///{tmp_path / 'w.db'}", f"w{uuid.uuid4().hex[:8]}")
    yield opened
    opened.close()


def test_backoff_delays_grow_and_cap() -> None:
    backoff = BackoffSettings(initial_s=0.5, factor=3, max_s=4)
    assert [backoff.delay(n) for n in (1, 2, 3, 4)] == [0.5, 1.5, 4.0, 4.0]
    with pytest.raises(ValueError, match="max_s"):
        BackoffSettings(initial_s=5, max_s=1)


def planned_delays(caplog: pytest.LogCaptureFixture) -> list[float]:
    found = (re.search(r"restarting in ([\d.]+) s", r.getMessage()) for r in caplog.records)
    return [float(m.group(1)) for m in found if m]


def test_worker_restarts_with_backoff_until_the_source_works(
    tmp_path: Path, pets09: Path, store: Store, detector: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="storesense.api.runtime")
    clip = tmp_path / "late.avi"
    layout = StoreLayout.model_validate(
        layout_dict(store.store_id, cameras=[{"id": "cam1", "source": str(clip), "fps": 7}])
    )
    supervisor = WorkerSupervisor(
        layout, store, FAST, pipeline_factory=pipeline_factory_for(detector)
    )
    with TestClient(create_app(FAST, store, layout, supervisor=supervisor)) as client:
        failing = wait_for(
            lambda: (c := client.get("/readyz").json()["cameras"][0])["restarts"] >= 2 and c,
            what="two restarts",
        )
        assert failing["state"] in ("restarting", "starting")
        assert "not found" in failing["last_error"]
        # A camera that cannot open its source is not ready, and /readyz says why.
        not_ready = client.get("/readyz")
        assert not_ready.status_code == 503 and not_ready.json()["store"] == "ok"
        assert any("camera cam1" in r and "not found" in r for r in not_ready.json()["reasons"]), (
            not_ready.json()["reasons"]
        )
        wait_for(lambda: len(planned_delays(caplog)) >= 4, what="four back-off waits")
        assert planned_delays(caplog)[:4] == [0.2, 0.4, 0.8, 1.0]  # doubling, capped at max_s
        partial = tmp_path / "partial.avi"
        cut_clip(pets09 / "PETS09-S2L1.avi", partial, 12)
        shutil.move(partial, clip)
        done = wait_for(
            lambda: (c := client.get("/readyz").json()["cameras"][0])["state"] == "finished" and c,
            timeout=30,
            what="the clip processed",
        )
        assert done["frames_processed"] == 12 and done["restarts"] >= 2
        ready = client.get("/readyz")
        assert ready.status_code == 200 and ready.json()["reasons"] == []
        assert done["last_frame_time"] is not None
        assert 'storesense_worker_restarts_total{camera="cam1"}' in client.get("/metrics").text


def test_worker_that_gives_up_makes_readyz_503(store: Store, detector: Any) -> None:
    settings = FAST.model_copy(
        update={"backoff": BackoffSettings(initial_s=0.05, max_s=0.05, max_restarts=1)}
    )
    layout = StoreLayout.model_validate(
        layout_dict(store.store_id, cameras=[{"id": "cam1", "source": "/no/such/file.avi"}])
    )
    supervisor = WorkerSupervisor(
        layout, store, settings, pipeline_factory=pipeline_factory_for(detector)
    )
    with TestClient(create_app(settings, store, layout, supervisor=supervisor)) as client:
        wait_for(lambda: supervisor.statuses()["cam1"].state == CameraState.FAILED, what="failed")
        ready = client.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["cameras"][0]["state"] == "failed"
        assert client.get("/v1/occupancy").status_code == 200  # the API stays up


def push(client: TestClient, camera: str, image: np.ndarray, at: float) -> None:
    response = client.post(
        f"/v1/cameras/{camera}/frames",
        content=jpeg_of(image),
        headers={"Content-Type": "image/jpeg", "X-Capture-Time": str(at)},
    )
    assert response.status_code == 202, response.text


def test_put_layout_is_applied_to_the_running_worker(
    store: Store,
    detector: Any,
    pets_frames: list[np.ndarray],
) -> None:
    layout = StoreLayout.model_validate(layout_dict(store.store_id))
    supervisor = WorkerSupervisor(
        layout, store, FAST, pipeline_factory=pipeline_factory_for(detector)
    )
    with TestClient(create_app(FAST, store, layout, supervisor=supervisor)) as client:
        for i in range(4):
            push(client, "cam1", pets_frames[i], T0 + i / 7)
        wait_for(lambda: supervisor.statuses()["cam1"].frames_processed >= 4, what="4 frames")
        thread_before = supervisor._workers["cam1"]

        new_layout = layout_dict(store.store_id, cameras=[{"id": "cam1"}, {"id": "cam2"}])
        new_layout["zones"] = [
            {"id": "plaza", "camera": "cam1", "polygon": [[0, 0], [768, 0], [768, 576], [0, 576]]}
        ]
        new_layout["lines"] = []
        assert client.put("/v1/layout", json=new_layout).status_code == 200
        for i in range(4, 8):
            push(client, "cam1", pets_frames[i], T0 + i / 7)
        plaza = wait_for(
            lambda: client.get("/v1/occupancy").json()["zones"].get("plaza", {}).get("count"),
            what="people in the new zone",
        )
        assert plaza >= 3
        assert supervisor._workers["cam1"] is thread_before  # same worker, new zone engine
        cameras = {c["camera_id"]: c for c in client.get("/readyz").json()["cameras"]}
        assert set(cameras) == {"cam1", "cam2"} and cameras["cam2"]["mode"] == "push"
        events = store.query_events(EventQuery(start=T0, end=T0 + 10))
        targets = {e.target for e in events}
        assert "plaza" in targets and "left" in targets  # old visits closed, new ones opened
        new_layout["cameras"] = [{"id": "cam1"}]
        assert client.put("/v1/layout", json=new_layout).status_code == 200
        assert [c["camera_id"] for c in client.get("/readyz").json()["cameras"]] == ["cam1"]


def test_paced_source_drops_late_frames_and_metrics_have_pipeline_stages(
    tmp_path: Path, pets09: Path, store: Store, detector: Any
) -> None:
    """A realtime source far faster than the detector drops frames like a live camera."""
    clip = cut_clip(pets09 / "PETS09-S2L1.avi", tmp_path / "fast.avi", 40)
    settings = FAST.model_copy(update={"realtime": True, "source_max_lag_s": 0.05})
    layout = StoreLayout.model_validate(
        layout_dict(store.store_id, cameras=[{"id": "cam1", "source": str(clip), "fps": 400}])
    )
    supervisor = WorkerSupervisor(
        layout, store, settings, pipeline_factory=pipeline_factory_for(detector)
    )
    with TestClient(create_app(settings, store, layout, supervisor=supervisor)) as client:
        done = wait_for(
            lambda: (s := supervisor.statuses()["cam1"]).state == CameraState.FINISHED and s,
            timeout=30,
            what="the clip processed",
        )
        metrics = client.get("/metrics").text
    late = re.search(
        r'storesense_frames_dropped_total\{camera="cam1",reason="late"\} (\S+)', metrics
    )
    assert late is not None and float(late.group(1)) > 0
    assert done.frames_processed + float(late.group(1)) == 40  # every frame: processed or dropped
    for stage in ("decode", "preprocess", "inference", "postprocess", "tracker", "zones"):
        assert f'storesense_stage_seconds_count{{camera="cam1",stage="{stage}"}}' in metrics


def test_old_replay_is_warned_about_before_retention_deletes_it(
    tmp_path: Path, store: Store, detector: Any, caplog: pytest.LogCaptureFixture
) -> None:
    from storesense.api.privacy.service import OptInService
    from storesense.api.runtime import old_replay_warnings

    old = {"id": "cam1", "source": "/no/such.avi", "start_time": "2009-10-01T09:00:00Z"}
    layout = StoreLayout.model_validate(layout_dict(store.store_id, cameras=[old]))
    assert old_replay_warnings(layout, 30, T0)
    assert not old_replay_warnings(layout, 10_000, T0)  # retention long enough: kept
    caplog.set_level(logging.WARNING, logger="storesense.api.runtime")
    optin = OptInService.for_store(store, layout)
    supervisor = WorkerSupervisor(
        layout, store, FAST, pipeline_factory=pipeline_factory_for(detector), optin=optin
    )
    supervisor.start(watch_layout=False)
    supervisor.stop()
    optin.close()
    warned = [r.getMessage() for r in caplog.records if "retention" in r.getMessage()]
    assert warned and "cam1" in warned[0] and "DELETED" in warned[0]


def _detector_frames(metrics: str, camera: str) -> dict[str, float]:
    pattern = rf'storesense_detector_frames_total\{{camera="{camera}",kind="(\w+)"\}} (\S+)'
    return {kind: float(value) for kind, value in re.findall(pattern, metrics)}


def _processed(metrics: str, camera: str) -> float:
    found = re.search(rf'storesense_frames_processed_total\{{camera="{camera}"\}} (\S+)', metrics)
    return 0.0 if found is None else float(found.group(1))


def test_metrics_count_the_motion_gates_full_and_skipped_frames(
    tmp_path: Path, pets09: Path, store: Store, detector: Any
) -> None:
    """A still scene on a live (paced, looped) camera with the gate on: /metrics shows the
    detector's full runs and the skipped frames growing, one kind per processed frame."""
    import cv2

    capture = cv2.VideoCapture(str(pets09 / "PETS09-S2L1.avi"))
    ok, first = capture.read()
    capture.release()
    assert ok
    clip = tmp_path / "still.avi"
    writer = cv2.VideoWriter(
        str(clip),
        cv2.VideoWriter_fourcc(*"MJPG"),  # type: ignore[attr-defined]
        7.0,
        (first.shape[1], first.shape[0]),
    )
    for _ in range(21):
        writer.write(first)
    writer.release()
    settings = FAST.model_copy(update={"realtime": True, "loop_sources": True})
    camera = {"id": "cam1", "source": str(clip), "fps": 7, "motion": {"enabled": True}}
    layout = StoreLayout.model_validate(layout_dict(store.store_id, cameras=[camera]))
    supervisor = WorkerSupervisor(
        layout, store, settings, pipeline_factory=pipeline_factory_for(detector)
    )
    with TestClient(create_app(settings, store, layout, supervisor=supervisor)) as client:
        before = wait_for(
            lambda: (
                (f := _detector_frames(client.get("/metrics").text, "cam1")).get("skipped") and f
            ),
            timeout=30,
            what="a frame the gate skipped",
        )
        after = wait_for(
            lambda: (
                (f := _detector_frames(client.get("/metrics").text, "cam1"))["skipped"]
                > before["skipped"] + 7
                and f
            ),
            timeout=30,
            what="more skipped frames",
        )
        metrics = client.get("/metrics").text
    assert set(after) == {"full", "region", "skipped"}
    assert after["full"] >= 1 and after["region"] == 0  # no region sizes: whole frames only
    # Still frames, once tracks are confirmed: the gate skips most (re-detects about once a
    # second).
    assert after["skipped"] - before["skipped"] > 2 * (after["full"] - before["full"])
    counted, processed = (
        sum(_detector_frames(metrics, "cam1").values()),
        _processed(metrics, "cam1"),
    )
    # Each processed frame is one kind (the frames in flight between the two reads aside).
    assert processed > 0 and processed <= counted <= processed + 2


def test_a_live_cameras_runs_never_repeat_a_track_id(
    pets09: Path, store: Store, detector: Any
) -> None:
    """A live camera whose stream drops reconnects as a new run with a fresh tracker. Its
    ids follow on from no earlier run's (they start at the run's start in milliseconds),
    so two runs' people are never one track in the store: not one visit in journeys, not
    one staff member, not one passer-by. Both runs here see the same 15 PETS09 frames."""
    capture = cv2.VideoCapture(str(pets09 / "PETS09-S2L1.avi"))
    images = [capture.read()[1] for _ in range(15)]
    capture.release()
    run_starts: list[float] = []

    def reconnecting(camera: CameraConfig, _settings: ServiceSettings) -> Iterator[Frame]:
        run_starts.append(time.time())
        for index, image in enumerate(images, start=1):
            yield Frame(image, index, (index - 1) / 7, camera.id)
        if len(run_starts) == 1:
            raise ConnectionError("stream dropped")

    layout = StoreLayout.model_validate(
        layout_dict(store.store_id, cameras=[{"id": "cam1", "source": "rtsp://cam/1", "fps": 7}])
    )
    supervisor = WorkerSupervisor(
        layout,
        store,
        FAST,
        pipeline_factory=pipeline_factory_for(detector),
        source_opener=reconnecting,
    )

    def entries() -> list[Any]:
        return [
            e
            for e in store.query_events(
                EventQuery(types=frozenset({EventType.ZONE_ENTER}), camera_id="cam1")
            )
        ]

    with TestClient(create_app(FAST, store, layout, supervisor=supervisor)):
        wait_for(
            lambda: (
                len(run_starts) == 2 and supervisor.statuses()["cam1"].state == CameraState.FINISHED
            ),
            timeout=60,
            what="a second run to the end of its stream",
        )
    first = {e.track_id for e in entries() if e.timestamp < run_starts[1]}
    second = {e.track_id for e in entries() if e.timestamp >= run_starts[1]}
    assert len(first) >= 3 and len(second) >= 3, (first, second)
    assert min(second) > max(first), (first, second)
