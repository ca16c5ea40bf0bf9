"""Cached YOLOX-Nano detections of the MOT15 sequences, shared by the tracking benchmark.

The detector runs once per sequence with a low score threshold (so a tracker's
low-score stage has input) and the result is stored as ``.npz`` under
``benchmarks/results/``; later runs load it.

Run ``python benchmarks/tracking_detections.py`` to build the caches.
"""

from __future__ import annotations

import configparser
import itertools
import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt
from storesense.vision.detections import Detections

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("STORESENSE_SHARED", REPO_ROOT.parent / "shared")).resolve()
RESULTS = REPO_ROOT / "benchmarks" / "results"
DETECTION_SCORE_THRESHOLD = 0.05
SEQUENCES: dict[str, str] = {
    "PETS09-S2L1": "PETS09-S2L1.avi",
    "TUD-Campus": "TUD-Campus.mp4",
}


@dataclass(frozen=True)
class SequenceDetections:
    """Per-frame detections of one sequence plus the real frame rate and its folder."""

    name: str
    folder: Path
    fps: float
    frames: list[Detections]

    def timestamp(self, frame_index: int) -> float:
        """Seconds of 1-based ``frame_index`` on the sequence clock."""
        return (frame_index - 1) / self.fps


def read_fps(folder: Path) -> float:
    parser = configparser.ConfigParser()
    parser.read(folder / "seqinfo.ini")
    return float(parser["Sequence"]["frameRate"])


def _detect_video(video: Path) -> list[Detections]:
    from storesense.vision.detector import Detector

    os.environ.setdefault("STORESENSE_MODEL_MIRROR", str(SHARED / "models"))
    detector = Detector.from_model("yolox-nano", score_threshold=DETECTION_SCORE_THRESHOLD)
    capture = cv2.VideoCapture(str(video))
    if not capture.isOpened():
        raise ValueError(f"cannot open video {video}")
    frames: list[Detections] = []
    while True:
        ok, image = capture.read()
        if not ok:
            break
        frames.append(detector.detect(image))
    capture.release()
    return frames


def _save(path: Path, frames: list[Detections]) -> None:
    counts = np.array([len(d) for d in frames], np.int64)
    xyxy = np.concatenate([d.xyxy for d in frames]) if frames else np.zeros((0, 4), np.float32)
    conf = np.concatenate([d.confidence for d in frames]) if frames else np.zeros(0, np.float32)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, counts=counts, xyxy=xyxy, confidence=conf)


def _load(path: Path) -> list[Detections]:
    data = np.load(path)
    counts: npt.NDArray[np.int64] = data["counts"]
    bounds = np.concatenate([[0], np.cumsum(counts)])
    xyxy, conf = data["xyxy"], data["confidence"]
    return [
        Detections(xyxy[a:b], conf[a:b], np.zeros(b - a, np.int64))
        for a, b in itertools.pairwise(bounds)
    ]


def load_sequence(name: str, shared: Path = SHARED, results: Path = RESULTS) -> SequenceDetections:
    """Detections of ``name`` (a key of :data:`SEQUENCES`), from the cache or a fresh run."""
    if name not in SEQUENCES:
        raise ValueError(f"unknown sequence {name!r}; known: {sorted(SEQUENCES)}")
    folder = shared / "data" / name
    cache = results / f"detections_{name}_yolox-nano_{DETECTION_SCORE_THRESHOLD:g}.npz"
    if cache.exists():
        frames = _load(cache)
    else:
        frames = _detect_video(folder / SEQUENCES[name])
        _save(cache, frames)
    return SequenceDetections(name, folder, read_fps(folder), frames)


if __name__ == "__main__":
    for sequence_name in SEQUENCES:
        seq = load_sequence(sequence_name)
        boxes = sum(len(d) for d in seq.frames)
        print(f"{seq.name}: {len(seq.frames)} frames, {boxes} boxes, fps {seq.fps:g}")
