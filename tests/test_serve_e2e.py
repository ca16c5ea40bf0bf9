"""End to end: ``storesense serve`` on 150 real PETS09 frames; ``/v1/counts`` must equal
what ``storesense count`` reports for the same layout and input."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import yaml
from fixtures_redis import free_port
from service_helpers import cut_clip, layout_dict

FRAMES = 150
# Recent (retention keeps only the last days), on a whole hour: the clip fits one 1h bucket.
_HOUR = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=2)
START = _HOUR.isoformat()
END = (_HOUR + timedelta(hours=1)).isoformat()
CLI_MAIN = "import sys; from storesense.api.cli import main; sys.exit(main())"

pytest_plugins = ["service_helpers"]


@pytest.fixture(scope="module")
def plaza_layout(tmp_path_factory: pytest.TempPathFactory, pets09: Path) -> Path:
    folder = tmp_path_factory.mktemp("e2e")
    cut_clip(pets09 / "PETS09-S2L1.avi", folder / "plaza.avi", FRAMES)
    layout = {
        "store": {"id": "plaza", "timezone": "Europe/London"},
        "cameras": [{"id": "cam1", "source": "plaza.avi", "fps": 7, "start_time": START}],
        "zones": [
            {"id": "west", "camera": "cam1",
             "polygon": [[0, 200], [384, 200], [384, 576], [0, 576]]},
            {"id": "east", "camera": "cam1",
             "polygon": [[384, 200], [768, 200], [768, 576], [384, 576]]},
        ],
        "lines": [
            {"id": "middle", "camera": "cam1", "points": [[384, 0], [384, 576]],
             "inside": [600, 300], "entrance": True},
            {"id": "north", "camera": "cam1", "points": [[0, 330], [768, 330]],
             "inside": [300, 500]},
        ],
    }  # fmt: skip
    path = folder / "layout.yaml"
    path.write_text(yaml.safe_dump(layout))
    return path


def test_serve_counts_equal_storesense_count(plaza_layout: Path, tmp_path: Path) -> None:
    cli = [
        sys.executable,
        "-c",
        "import sys; from storesense.api.cli import main; sys.exit(main())",
    ]
    counted = subprocess.run(
        [*cli, "count", "--layout", str(plaza_layout)],
        capture_output=True, text=True, timeout=300, env=os.environ.copy(),
    )  # fmt: skip
    assert counted.returncode == 0, counted.stderr[-2000:]
    expected = json.loads(counted.stdout)
    assert expected["frames"] == FRAMES

    port = free_port()
    serve = subprocess.Popen(
        [*cli, "serve", "--layout", str(plaza_layout), "--store", f"sqlite:///{tmp_path / 's.db'}",
         "--port", str(port), "--no-realtime", "--status-every", "1"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=os.environ.copy(),
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 240
        camera: dict[str, object] = {}
        with httpx.Client(base_url=base, timeout=5) as client:
            while time.monotonic() < deadline:
                assert serve.poll() is None, serve.communicate()[1][-3000:]
                try:
                    cameras = client.get("/readyz").json()["cameras"]
                except httpx.TransportError:
                    time.sleep(0.2)
                    continue
                camera = cameras[0]
                if camera["state"] == "finished":
                    break
                time.sleep(0.2)
            assert camera.get("state") == "finished", camera
            assert camera["frames_processed"] == FRAMES
            rows = client.get(
                "/v1/counts", params={"from": START, "to": END, "bucket": "1h"}
            ).json()["rows"]
            csv_text = client.get(
                "/v1/counts",
                params={"from": START, "to": END, "bucket": "1d"},
                headers={"Accept": "text/csv"},
            ).text
            # The API re-reads live occupancy every 50 ms; give it a moment to see the zeros
            # the worker published when it closed the visits at the end of the video.
            settle = time.monotonic() + 5
            occupancy = client.get("/v1/occupancy").json()
            while time.monotonic() < settle and any(
                z["count"] for z in occupancy["zones"].values()
            ):
                time.sleep(0.1)
                occupancy = client.get("/v1/occupancy").json()
    finally:
        serve.terminate()
        stdout, stderr = serve.communicate(timeout=30)
    served: dict[str, dict[str, int]] = {}
    for row in rows:
        served.setdefault(row["target"], {})
        served[row["target"]][row["measure"]] = served[row["target"]].get(row["measure"], 0) + (
            row["count"] or 0
        )
    want = {z: {"entries": v["entries"], "exits": v["exits"]} for z, v in expected["zones"].items()}
    want.update(expected["lines"])
    assert served == want
    assert sum(want["west"].values()) + sum(want["east"].values()) > 0  # people were counted
    assert csv_text.splitlines()[0].startswith("bucket_start,")
    assert all(z["count"] == 0 for z in occupancy["zones"].values())  # visits closed at the end
    assert "WARNING: NO API KEYS CONFIGURED" in stderr
    assert "cam1: " in stdout  # the live count lines in the terminal


def test_serve_stops_on_sigterm_with_an_event_stream_open(tmp_path: Path) -> None:
    """An open SSE stream ends when the server shuts down: SIGTERM is not held up by it."""
    layout = tmp_path / "layout.yaml"
    layout.write_text(yaml.safe_dump(layout_dict("sigterm")))
    port = free_port()
    serve = subprocess.Popen(
        [sys.executable, "-c", CLI_MAIN, "serve", "--layout", str(layout),
         "--store", f"sqlite:///{tmp_path / 's.db'}", "--port", str(port), "--no-workers"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=os.environ.copy(),
    )  # fmt: skip
    lines: list[str] = []
    try:
        url = f"http://127.0.0.1:{port}/v1/events/stream"
        deadline = time.monotonic() + 60
        while True:
            assert serve.poll() is None, serve.communicate()[1][-3000:]
            try:
                with httpx.stream("GET", url, timeout=5) as response:
                    assert response.status_code == 200
                    for line in response.iter_lines():
                        lines.append(line)
                        if line == ": connected":
                            stopped_at = time.monotonic()
                            serve.send_signal(signal.SIGTERM)
                break
            except httpx.RemoteProtocolError:  # the server went away mid-stream
                break
            except httpx.ReadTimeout:  # still open 5 s after SIGTERM (no keep-alive due yet)
                raise AssertionError("the open stream held the shutdown up") from None
            except httpx.ConnectError:
                assert time.monotonic() < deadline, "serve did not start"
                time.sleep(0.2)
        # uvicorn shuts down, then re-raises the signal it caught.
        assert serve.wait(timeout=20) in (0, -signal.SIGTERM)
        assert time.monotonic() - stopped_at < 10, "the open stream held the shutdown up"
    finally:
        if serve.poll() is None:
            serve.kill()
        serve.communicate(timeout=30)
    assert lines[0] == ": connected"
