"""End-to-end cost of serving one camera: frames/s per CPU core, with and without pollers.

One process runs what ``storesense serve`` runs (a camera worker over a looped
PETS09 clip, not realtime-paced, and the API in uvicorn); ``wrk`` polls
``/v1/occupancy`` (with ``If-None-Match``) from a separate process. The same
run is measured without pollers beside it, and the ratio reported.
``frames per core-second`` = frames processed / CPU seconds of the server process.

Run: ``python benchmarks/serve_cost.py [--seconds 10] [--pollers 16]``
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import uvicorn

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("STORESENSE_SHARED", REPO.parent / "shared"))
LUA = """
local etag = nil
request = function()
  if etag then return wrk.format("GET", nil, {["If-None-Match"] = etag}) end
  return wrk.format("GET", nil, {})
end
response = function(status, headers, body)
  local tag = headers["etag"] or headers["ETag"]
  if tag then etag = tag end
end
"""


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cut_clip(source: Path, target: Path, frames: int) -> None:
    import cv2

    capture = cv2.VideoCapture(str(source))
    writer = None
    for _ in range(frames):
        ok, image = capture.read()
        if not ok:
            break
        if writer is None:
            fourcc = cv2.VideoWriter_fourcc(*"MJPG")  # type: ignore[attr-defined]
            writer = cv2.VideoWriter(str(target), fourcc, 7.0, image.shape[1::-1])
        writer.write(image)
    capture.release()
    if writer is not None:
        writer.release()


def measure(folder: Path, seconds: float, pollers: int) -> dict[str, float]:
    from storesense.api.app import create_app
    from storesense.api.runtime import WorkerSupervisor, pipeline_factory_for
    from storesense.api.settings import ServiceSettings
    from storesense.api.store import open_store
    from storesense.vision.detector import Detector
    from storesense.zones.config import StoreLayout

    store_id = f"cost{pollers}"
    layout = StoreLayout.model_validate(
        {
            "store": {"id": store_id},
            "cameras": [{"id": "cam1", "source": str(folder / "clip.avi"), "fps": 7}],
            "zones": [
                {"id": "west", "camera": "cam1",
                 "polygon": [[0, 0], [384, 0], [384, 576], [0, 576]]},
                {"id": "east", "camera": "cam1",
                 "polygon": [[384, 0], [768, 0], [768, 576], [384, 576]]},
            ],
            "lines": [{"id": "mid", "camera": "cam1", "points": [[384, 0], [384, 576]],
                       "inside": [600, 300], "entrance": True}],
        }
    )  # fmt: skip
    settings = ServiceSettings(realtime=False, loop_sources=True, status_print_s=0)
    store = open_store(f"sqlite:///{folder / (store_id + '.db')}", store_id)
    detector = Detector.from_model("yolox-nano")
    supervisor = WorkerSupervisor(
        layout, store, settings, pipeline_factory=pipeline_factory_for(detector)
    )
    port = free_port()
    app = create_app(settings, store, layout, supervisor=supervisor)
    server = uvicorn.Server(uvicorn.Config(app, port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    time.sleep(3.0)  # warm-up: model loaded, tracker running
    wrk = None
    if pollers:
        script = folder / "poll.lua"
        script.write_text(LUA)
        wrk = subprocess.Popen(
            ["wrk", "-t1", f"-c{pollers}", f"-d{round(seconds) + 2}s", "-s", str(script),
             f"http://127.0.0.1:{port}/v1/occupancy"],
            stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        time.sleep(1.0)
    frames0 = supervisor.statuses()["cam1"].frames_processed
    cpu0, wall0 = time.process_time(), time.perf_counter()
    time.sleep(seconds)
    frames = supervisor.statuses()["cam1"].frames_processed - frames0
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    requests = 0.0
    if wrk is not None:
        out, _ = wrk.communicate()
        for line in out.splitlines():
            if line.startswith("Requests/sec:"):
                requests = float(line.split()[1])
    server.should_exit = True
    thread.join(10)
    store.close()
    return {
        "fps": frames / wall,
        "cpu_per_frame_ms": 1000 * cpu / max(frames, 1),
        "frames_per_core_s": frames / cpu if cpu else 0.0,
        "cores_busy": cpu / wall,
        "poll_rps": requests,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--pollers", type=int, default=16)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is missing: apt-get install -y wrk")
    video = SHARED / "data" / "PETS09-S2L1" / "PETS09-S2L1.avi"
    if not video.exists():
        sys.exit(f"{video} is missing (set STORESENSE_SHARED)")
    os.environ.setdefault("STORESENSE_MODEL_MIRROR", str(SHARED / "models"))
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        os.environ.setdefault("STORESENSE_CACHE", str(folder / "cache"))
        cut_clip(video, folder / "clip.avi", 120)
        quiet = measure(folder, args.seconds, 0)
        polled = measure(folder, args.seconds, args.pollers)
        rows = [
            ("camera worker + API, no pollers", quiet),
            (f"camera worker + API, {args.pollers} pollers", polled),
        ]
    base = rows[0][1]["frames_per_core_s"]
    print(f"\none camera (PETS09 768x576, YOLOX-Nano, not realtime-paced), {args.seconds:g} s "
          f"each; {os.cpu_count()} CPU cores, load average {os.getloadavg()[0]:.1f}")  # fmt: skip
    header = f"{'run':40} {'frames/s':>8} {'CPU ms/frame':>12} {'frames/core-s':>13} {'x':>5} "
    print(header + f"{'cores':>5} {'poll req/s':>10}")
    for label, row in rows:
        print(
            f"{label:40} {row['fps']:8.1f} {row['cpu_per_frame_ms']:12.1f} "
            f"{row['frames_per_core_s']:13.1f} {row['frames_per_core_s'] / base:5.2f} "
            f"{row['cores_busy']:5.2f} {row['poll_rps']:10.0f}"
        )


if __name__ == "__main__":
    main()
