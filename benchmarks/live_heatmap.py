"""What the camera worker's floor heatmap costs per frame, against one YOLOX-nano detection
on a PETS09 frame measured in the same run (the per-frame work it sits beside).

``LiveHeatmap.add`` with 10 people a frame (feet through the homography of
examples/pets09.yaml, credited into 0.5 m cells), then ``take()`` of the sums.

Run: ``python benchmarks/live_heatmap.py [--frames 2000] [--people 10]``
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import cv2
import numpy as np
from storesense.api.live_heatmap import LiveHeatmap
from storesense.vision.detections import Tracks
from storesense.vision.detector import Detector
from storesense.zones.config import Homography

PETS09 = Path(__file__).resolve().parent.parent.parent / "shared/data/PETS09-S2L1/PETS09-S2L1.avi"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, default=2000)
    parser.add_argument("--people", type=int, default=10)
    args = parser.parse_args()
    homography = Homography(
        image_points=[[50, 550], [718, 550], [524, 150], [244, 150]],
        floor_points=[[0, 0], [10, 0], [10, 15], [0, 15]],
    )
    live = LiveHeatmap("cam1", homography, time_origin=1.7e9)
    rng = np.random.default_rng(1)
    frames = []
    for i in range(args.frames):
        x, y = rng.uniform(50, 700, args.people), rng.uniform(200, 560, args.people)
        boxes = np.stack([x - 15, y - 80, x + 15, y], axis=1)
        people = np.arange(args.people)
        frames.append(
            Tracks(boxes, np.ones(args.people), people, np.zeros((args.people, 2)), timestamp=i / 7)
        )
    began = time.perf_counter()
    for i, tracks in enumerate(frames):
        live.add(tracks, i / 7)
    add_s = (time.perf_counter() - began) / len(frames)
    began = time.perf_counter()
    cells = live.take()
    take_s = time.perf_counter() - began

    capture = cv2.VideoCapture(str(PETS09))
    ok, image = capture.read()
    capture.release()
    if not ok:
        raise SystemExit(f"cannot read {PETS09}")
    detector = Detector.from_model("yolox-nano")
    detector.detect(image)
    began = time.perf_counter()
    for _ in range(30):
        detector.detect(image)
    detect_s = (time.perf_counter() - began) / 30
    print(
        f"heatmap add: {add_s * 1e6:.0f} us/frame ({args.people} people); take(): {len(cells)} "
        f"cells in {take_s * 1e3:.1f} ms; detection: {detect_s * 1e3:.1f} ms/frame; "
        f"heatmap = {add_s / detect_s * 100:.2f} % of detection"
    )


if __name__ == "__main__":
    main()
