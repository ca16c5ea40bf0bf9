"""Camera worker throughput: decode on a background thread (``decode_prefetch``) vs inline.

Runs the real worker (YOLOX-Nano, tracker, zone engine, SQLite store) over the first
FRAMES frames of PETS09-S2L1, not realtime-paced, alternating the two settings.

    python benchmarks/worker_prefetch.py [--frames 120] [--rounds 2]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import uuid
from pathlib import Path

import cv2
from storesense.api.runtime import CameraState, WorkerSupervisor, pipeline_factory_for
from storesense.api.settings import ServiceSettings
from storesense.api.store import open_store
from storesense.vision.detector import Detector
from storesense.zones.config import StoreLayout

SHARED = Path(__file__).resolve().parents[1].parent / "shared"


def cut(source: Path, target: Path, frames: int) -> None:
    capture = cv2.VideoCapture(str(source))
    ok, image = capture.read()
    height, width = image.shape[:2]
    fourcc = cv2.VideoWriter_fourcc(*"MJPG")  # type: ignore[attr-defined]
    writer = cv2.VideoWriter(str(target), fourcc, 7.0, (width, height))
    for _ in range(frames):
        if not ok:
            break
        writer.write(image)
        ok, image = capture.read()
    writer.release()
    capture.release()


def run(clip: Path, folder: Path, detector: Detector, prefetch: int) -> float:
    store_id = f"b{uuid.uuid4().hex[:8]}"
    store = open_store(f"sqlite:///{folder / (store_id + '.db')}", store_id)
    layout = StoreLayout.model_validate(
        {
            "store": {"id": store_id},
            "cameras": [{"id": "cam1", "source": str(clip), "fps": 7}],
            "zones": [{"id": "all", "camera": "cam1",
                       "polygon": [[0, 0], [768, 0], [768, 576], [0, 576]]}],
        }
    )  # fmt: skip
    settings = ServiceSettings(realtime=False, decode_prefetch=prefetch)
    supervisor = WorkerSupervisor(
        layout, store, settings, pipeline_factory=pipeline_factory_for(detector)
    )
    started = time.perf_counter()
    supervisor.start(watch_layout=False)
    while supervisor.statuses()["cam1"].state not in (CameraState.FINISHED, CameraState.FAILED):
        time.sleep(0.01)
    elapsed = time.perf_counter() - started
    frames = supervisor.statuses()["cam1"].frames_processed
    supervisor.stop()
    store.close()
    return frames / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--frames", type=int, default=120)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    detector = Detector.from_model("yolox-nano")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        clip = folder / "clip.avi"
        cut(SHARED / "data/PETS09-S2L1/PETS09-S2L1.avi", clip, args.frames)
        results: dict[int, list[float]] = {0: [], 2: []}
        run(clip, folder, detector, 0)  # warm-up
        for _ in range(args.rounds):
            for prefetch in (0, 2):
                results[prefetch].append(run(clip, folder, detector, prefetch))
    inline, ahead = statistics.median(results[0]), statistics.median(results[2])
    print(f"{'decode':<28}{'frames/s (median)':>18}{'ratio':>8}")
    print(f"{'inline (decode_prefetch=0)':<28}{inline:>18.1f}{1.0:>8.2f}")
    print(f"{'thread (decode_prefetch=2)':<28}{ahead:>18.1f}{ahead / inline:>8.2f}")


if __name__ == "__main__":
    main()
