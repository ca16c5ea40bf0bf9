"""Visits across processes: the PETS09 split views as two worker processes on one Redis.

The two cameras of ``benchmarks/store_visits.py`` (``left`` x 0-450, ``right`` x
320-768, one floor plan) run in two separate processes (``tests/live_floor_camera.py``),
each with its own ``StoreVisits``, playing the real detector's and tracker's tracks at
``--speed`` times real time on one shared clock. Two runs in the same session:

* baseline: no live floor link (each process alone, as before: no visit continues from
  one process's camera into the other's, each counts its own camera);
* link: both share their live floor tracks through a ``redis-server`` started here
  (``api/store/live_floor.py``).

Reported for each: crossings from one view's own part into the other's that kept one
visit, person-frames sharing a visit with another person, each process's store-wide
count (and its store-wide floor zone's) against the one-process count and the ground
truth, and the camera thread's
cost: the time in ``CameraAnalytics.update`` and the process's CPU time, link over
baseline.

Run: ``python benchmarks/store_visits_redis.py`` (about 2 minutes; needs
``redis-server``). ``tests/test_store_visits_redis.py`` asserts the link's figures.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import redis
from store_visits import (
    FLOOR_ZONE,
    PETS,
    SHARED,
    VIEWS,
    crossings,
    floor_zone_truth,
    run_split,
    seen_by_visits,
    shared_person_frames,
    track_split,
)
from storesense.vision.detections import Tracks

ROOT = Path(__file__).resolve().parents[1]
DRIVER = ROOT / "tests" / "live_floor_camera.py"


def run_processes(
    split_tracks: dict[str, list[Tracks]],
    redis_url: str | None,
    workdir: Path,
    speed: float = 2.0,
    timeout: float = 600.0,
) -> dict[str, dict[str, Any]]:
    """Each camera in a process of its own (``redis_url`` None: no link); every
    process's result (see ``tests/live_floor_camera.py``)."""
    store_id = f"split{os.getpid()}{time.monotonic_ns() % 10**9}"
    start_file = workdir / "start"
    start_file.unlink(missing_ok=True)
    processes = []
    for camera_id in VIEWS:
        frames = workdir / f"{camera_id}.pkl"
        frames.write_bytes(pickle.dumps(split_tracks[camera_id]))
        out = workdir / f"{camera_id}.json"
        out.unlink(missing_ok=True)
        Path(f"{out}.ready").unlink(missing_ok=True)
        args = [redis_url or "none", store_id, camera_id, str(frames), str(start_file)]
        processes.append(
            subprocess.Popen([sys.executable, str(DRIVER), *args, str(speed), str(out)])
        )
    try:
        deadline = time.monotonic() + 120
        while not all((workdir / f"{c}.json.ready").exists() for c in VIEWS):
            if time.monotonic() > deadline or any(p.poll() is not None for p in processes):
                raise RuntimeError("the worker processes did not get ready")
            time.sleep(0.05)
        start_file.write_text(str(time.time() + 0.5))
        for process in processes:
            if process.wait(timeout=timeout) != 0:
                raise RuntimeError(f"a worker process failed ({process.returncode})")
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
    return {c: json.loads((workdir / f"{c}.json").read_text()) for c in VIEWS}


def figures(
    split_tracks: dict[str, list[Tracks]], out: dict[str, dict[str, Any]], pets09: Path
) -> dict[str, Any]:
    """Crossings kept, shared person-frames and each process's count series (store-wide
    and the store-wide floor zone's)."""
    visits = {c: [{int(t): v for t, v in frame.items()} for frame in out[c]["keys"]] for c in VIEWS}
    seen = seen_by_visits(split_tracks, pets09, visits)
    total, kept = crossings(seen)
    shared, person_frames = shared_person_frames(seen)
    return {
        "crossings": total,
        "kept": kept,
        "shared": shared,
        "person_frames": person_frames,
        "counts": {c: np.array(out[c]["counts"]) for c in VIEWS},
        "zone_counts": {c: np.array(out[c]["zone_counts"]) for c in VIEWS},
    }


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def main() -> None:
    from storesense.vision.detector import Detector

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--speed", type=float, default=2.0, help="times real time (7 fps)")
    options = parser.parse_args()
    executable = shutil.which("redis-server")
    if executable is None:
        raise SystemExit("error: redis-server is not installed")
    os.environ.setdefault("STORESENSE_MODEL_MIRROR", str(SHARED / "models"))
    split_tracks = track_split(PETS, Detector.from_model("yolox-nano"))
    one_zones: list[dict[str, int]] = []
    _, _, one_seen, one_counts, truth = run_split(split_tracks, PETS, one_zones)
    one_zone = [frame[FLOOR_ZONE] for frame in one_zones]
    one_total, one_kept = crossings(one_seen)
    one = np.array(one_counts)
    zone_truth = floor_zone_truth(PETS, len(one_zone))
    port = _free_port()
    with tempfile.TemporaryDirectory() as tmp:
        server = subprocess.Popen(
            [
                *(executable, "--port", str(port), "--bind", "127.0.0.1"),
                *("--save", "", "--appendonly", "no", "--dir", tmp),
            ],
            stdout=subprocess.DEVNULL,
        )
        try:
            client = redis.Redis(port=port)
            for _ in range(200):
                try:
                    if client.ping():
                        break
                except redis.exceptions.ConnectionError:
                    time.sleep(0.05)
            client.close()
            runs = {
                "baseline (no link)": run_processes(split_tracks, None, Path(tmp), options.speed),
                "link (Redis)": run_processes(
                    split_tracks, f"redis://127.0.0.1:{port}/0", Path(tmp), options.speed
                ),
            }
        finally:
            server.terminate()
            server.wait()
    print(f"one process, both cameras: {one_kept} of {one_total} crossings kept one visit")
    base = runs["baseline (no link)"]
    for name, out in runs.items():
        f = figures(split_tracks, out, PETS)
        print(
            f"{name}: {f['kept']} of {f['crossings']} crossings kept one visit; "
            f"{f['shared']} of {f['person_frames']} person-frames shared a visit"
        )
        for camera_id in VIEWS:
            counts = f["counts"][camera_id]
            print(
                f"  {camera_id}'s process: store-wide {counts.sum()} person-frames "
                f"(one process {one.sum()}, truth {sum(truth)}, "
                f"{counts.sum() / sum(truth) - 1:+.1%}); mean |difference| to one process "
                f"{np.mean(np.abs(counts - one)):.2f}"
            )
            zone = f["zone_counts"][camera_id]
            zone_bias = zone.sum() / sum(zone_truth) - 1
            print(
                f"    floor zone {FLOOR_ZONE!r}: {zone.sum()} person-frames (one process "
                f"{sum(one_zone)}, truth {sum(zone_truth)}, {zone_bias:+.1%})"
            )
            frames = len(counts)
            update_ms = 1000 * out[camera_id]["update_s"] / frames
            cpu_ms = 1000 * out[camera_id]["cpu_s"] / frames
            print(
                f"    per frame: CameraAnalytics.update {update_ms:.2f} ms "
                f"(x{out[camera_id]['update_s'] / base[camera_id]['update_s']:.2f} of the "
                f"baseline), process CPU {cpu_ms:.2f} ms "
                f"(x{out[camera_id]['cpu_s'] / base[camera_id]['cpu_s']:.2f})"
            )


if __name__ == "__main__":
    main()
