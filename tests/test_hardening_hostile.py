"""Hostile input found by an audit of every route and command: each case below was a 500,
a traceback, a dead background thread or a layout silently accepted with values no
camera can use. Now: a 4xx with the field and the reason, or one ``storesense: error:``
line and exit code 2.
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import yaml
from fastapi.testclient import TestClient
from fixtures_mqtt import MosquittoBroker, Recorder
from pydantic import ValidationError
from service_helpers import SETTINGS, T0, layout_dict, wait_for
from storesense.api.app import create_app
from storesense.api.cli import main
from storesense.api.mqtt.config import MqttOptions
from storesense.api.mqtt.publisher import MqttPublisher
from storesense.api.privacy.service import OptInSettings
from storesense.api.settings import BackoffSettings, ServiceSettings
from storesense.api.store import open_store
from storesense.api.store.base import Store
from storesense.zones.config import StoreLayout

pytest_plugins = ["service_helpers", "fixtures_mqtt"]

NAN, INF = float("nan"), float("inf")


@pytest.fixture()
def sqlite_store(tmp_path: Path) -> Iterator[Store]:
    opened = open_store(f"sqlite:///{tmp_path / 'store.db'}", "shop")
    yield opened
    opened.close()


@pytest.fixture()
def client(sqlite_store: Store) -> Iterator[TestClient]:
    layout = StoreLayout.model_validate(layout_dict("shop"))
    with TestClient(create_app(SETTINGS, sqlite_store, layout)) as test_client:
        yield test_client


# ------------------------------------------------------------------ PUT /v1/layout
NESTED_BODIES = {
    "json-lists": ("application/json", b"[" * 50_000 + b"]" * 50_000),
    "yaml-lists": ("application/yaml", b"zones: " + b"[" * 5_000 + b"]" * 5_000),
    "yaml-maps": ("application/yaml", b"zones: " + b"{a: " * 5_000 + b"1" + b"}" * 5_000),
}


@pytest.mark.parametrize("case", NESTED_BODIES)
def test_a_deeply_nested_layout_body_is_422_not_500(client: TestClient, case: str) -> None:
    content_type, body = NESTED_BODIES[case]
    before = client.get("/v1/layout").json()
    response = client.put("/v1/layout", content=body, headers={"Content-Type": content_type})
    assert response.status_code == 422, response.text
    assert "nested too deeply" in response.json()["detail"]
    assert client.get("/v1/layout").json() == before


def _set(path: str, value: Any) -> dict[str, Any]:
    """``layout_dict("shop")`` with the value at a dotted ``path`` (``lines.0.inside``)."""
    data = copy.deepcopy(layout_dict("shop"))
    *parents, last = path.split(".")
    target: Any = data
    for part in parents:
        target = target[int(part)] if part.isdigit() else target[part]
    target[int(last) if last.isdigit() else last] = value
    return data


BAD_LAYOUTS = {
    # A tz database folder, or a name too long for a file name: OSError, a 500.
    "timezone-folder": (_set("store.timezone", "Europe"), "store.timezone", "unknown timezone"),
    "timezone-too-long": (_set("store.timezone", "A" * 100_000), "store.timezone", "unknown"),
    # Accepted before: a line nobody can cross, served back as null by GET /v1/layout.
    "line-point-nan": (_set("lines.0.points", [[NAN, 0], [384, 576]]), "lines[0].points[0][0]", ""),
    "line-point-inf": (
        _set("lines.0.points", [[384, 0], [384, -INF]]),
        "lines[0].points[1][1]",
        "",
    ),
    "line-inside-nan": (_set("lines.0.inside", [NAN, 300]), "lines[0].inside[0]", "finite"),
    "line-min-side-inf": (_set("lines.0.min_side_seconds", INF), "lines[0].min_side_seconds", ""),
    "zone-dwell-inf": (_set("zones.0.min_dwell_seconds", INF), "zones[0].min_dwell_seconds", ""),
    "zone-approach-inf": (_set("zones.1.approach_seconds", INF), "zones[1].approach_seconds", ""),
    # An id becomes an MQTT topic level: over 65,535 bytes it stopped every MQTT message.
    "zone-id-100k": (_set("zones.0.id", "z" * 100_000), "zones[0].id", "at most 200"),
    "line-id-201": (_set("lines.0.id", "l" * 201), "lines[0].id", "at most 200"),
}


@pytest.mark.parametrize("case", BAD_LAYOUTS)
def test_a_layout_with_unusable_values_is_422_and_not_applied(
    client: TestClient, case: str
) -> None:
    data, path, message = BAD_LAYOUTS[case]
    before = client.get("/v1/layout").json()
    body = json.dumps(data, allow_nan=True)  # NaN/Infinity: what Python's json.loads reads
    response = client.put("/v1/layout", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 422, response.text
    errors = response.json()["errors"]
    assert any(e["path"] == path and message in e["message"] for e in errors), errors
    assert client.get("/v1/layout").json() == before


# ------------------------------------------------------------------- GET /v1/counts
def test_counts_refuse_an_answer_of_more_rows_than_the_limit(client: TestClient) -> None:
    # 26 h of 1 s buckets: 93,600 buckets (under the bucket limit) x 2 zones and a line x 2.
    hostile = {"from": "2024-05-01T00:00:00+14:00", "to": "2024-05-01T00:00:00-12:00"}
    started = time.monotonic()
    response = client.get("/v1/counts", params={**hostile, "bucket": "1s"})
    assert response.status_code == 422, response.text[:200]
    assert "561600 rows" in response.json()["detail"]
    assert "250000" in response.json()["detail"]
    assert time.monotonic() - started < 2
    # The same range in minutes for one zone is an ordinary answer.
    one_zone = client.get("/v1/counts", params={**hostile, "bucket": "1m", "zone": "left"})
    assert one_zone.status_code == 200
    assert len(one_zone.json()["rows"]) == 1_560 * 2


# ------------------------------------------------------------------------- MQTT
def test_an_unpublishable_topic_is_dropped_and_later_messages_still_go_out(
    mosquitto: MosquittoBroker,
) -> None:
    recorder = Recorder(mosquitto.port, "hostile/#")
    publisher = MqttPublisher(
        MqttOptions.from_url(f"{mosquitto.url}/hostile"),
        StoreLayout.model_validate(layout_dict("shop")),
    )
    publisher.start()
    try:
        # A zone id of 70,000 characters: over MQTT's 65,535-byte topic limit.
        publisher.occupancy("cam1", {"z" * 70_000: 1}, None, T0)
        publisher.occupancy("cam1", {"left": 3}, None, T0 + 1)

        def left_published() -> bool:
            return any(
                m.json()["count"] == 3 for m in recorder.on("hostile/shop/zones/left/occupancy")
            )

        wait_for(left_published, 10, "the next zone's count after the unpublishable one")
    finally:
        publisher.stop(timeout=1.0)
        recorder.close()


# ---------------------------------------------------------------- settings bounds
PERIODS = [
    "layout_poll_s",
    "camera_report_s",
    "heatmap_publish_s",
    "sse_keepalive_s",
    "status_print_s",
    "source_max_lag_s",
    "key_cache_s",
]


@pytest.mark.parametrize("value", [INF, 1e308], ids=["inf", "1e308"])
@pytest.mark.parametrize("field", PERIODS)
def test_periods_a_thread_waits_on_are_bounded(field: str, value: float) -> None:
    # threading waits raise OverflowError beyond ~292 years: `--status-every inf` killed
    # the status thread with a traceback while the service ran on.
    with pytest.raises(ValidationError, match=field):
        ServiceSettings(**{field: value})


@pytest.mark.parametrize(
    "options",
    [{"max_s": INF}, {"healthy_after_s": INF}, {"factor": 1e6}],
    ids=["max_s-inf", "healthy_after_s-inf", "factor-1e6"],  # factor**64 overflowed
)
def test_restart_backoff_is_bounded(options: dict[str, float]) -> None:
    with pytest.raises(ValidationError):
        BackoffSettings(**options)


@pytest.mark.parametrize(
    "data",
    [{"retention": {"interval_s": INF}}, {"retention": {"days": 1e308}}, {"visit_gap_s": INF}],
    ids=["interval-inf", "days-1e308", "visit-gap-inf"],
)
def test_privacy_periods_are_bounded(data: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        OptInSettings.model_validate(data)


# --------------------------------------------------------------------------- CLI
HOSTILE_FILES = {
    "not-utf8": b"\xff\xfe\x00\x01",
    "nested-yaml": b"zones: " + b"[" * 5_000 + b"]" * 5_000,
    "nested-json": b"[" * 100_000 + b"]" * 100_000,
}


def _one_error_line(capsys: pytest.CaptureFixture[str], *needles: str) -> str:
    err = capsys.readouterr().err
    assert err.startswith("storesense: error: ") and err.count("\n") == 1, err[-2000:]
    assert "Traceback" not in err
    assert all(needle in err for needle in needles), err
    return err


@pytest.mark.parametrize("case", HOSTILE_FILES)
def test_a_hostile_layout_file_is_one_error_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str
) -> None:
    path = tmp_path / ("layout.json" if case == "nested-json" else "layout.yaml")
    path.write_bytes(HOSTILE_FILES[case])
    store = f"sqlite:///{tmp_path / 's.db'}"
    assert main(["keys", "list", "--layout", str(path), "--store", store]) == 2
    _one_error_line(capsys, str(path))


def test_a_layout_file_naming_a_timezone_folder_is_one_error_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "layout.yaml"
    path.write_text(yaml.safe_dump(_set("store.timezone", "Europe")))
    assert main(["count", "video.mp4", "--layout", str(path)]) == 2
    _one_error_line(capsys, "store.timezone: unknown timezone 'Europe'")


@pytest.mark.parametrize("flag", ["--config", "--api-keys", "--privacy"])
def test_a_deeply_nested_settings_file_is_one_error_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], flag: str
) -> None:
    layout = tmp_path / "layout.yaml"
    layout.write_text(yaml.safe_dump(layout_dict("shop")))
    nested = tmp_path / "nested.yaml"
    nested.write_bytes(HOSTILE_FILES["nested-yaml"])
    store = f"sqlite:///{tmp_path / 's.db'}"
    command = ["serve", "--layout", str(layout), "--store", store, "--no-workers", flag]
    assert main([*command, str(nested)]) == 2
    _one_error_line(capsys, "nested too deeply")


@pytest.fixture(scope="module")
def tiny_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("video") / "tiny.avi"
    fourcc = cv2.VideoWriter_fourcc(*"MJPG")  # type: ignore[attr-defined]
    writer = cv2.VideoWriter(str(path), fourcc, 7.0, (64, 48))
    for value in (0, 80, 160):
        writer.write(np.full((48, 64, 3), value, np.uint8))
    writer.release()
    return path


@pytest.mark.parametrize("rate", ["1e-300", "1e308"])
@pytest.mark.parametrize("flag", ["--fps", "--sample-fps"])
def test_absurd_frame_rates_are_one_error_line(
    tiny_video: Path,
    tmp_path: Path,
    yolox_path: Path,
    capsys: pytest.CaptureFixture[str],
    flag: str,
    rate: str,
) -> None:
    # --fps 1e-300 made each frame 1e300 s long: the tracker's Kalman step overflowed.
    out = tmp_path / "tracks.txt"
    assert main(["track", str(tiny_video), "--out", str(out), "--no-progress", flag, rate]) == 2
    _one_error_line(capsys, "frames per second (0.01 to 1000)")
