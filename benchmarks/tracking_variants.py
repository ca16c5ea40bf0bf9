"""What a new store changes, applied to the shared sequences: frame rate, resolution, crop, light.

A :class:`Variant` turns a sequence into another one a store could have sent:

* ``fps``: frames subsampled by time to this rate (PETS09 is 7 fps, TUD-Campus 25 fps);
  trackers get the real capture times of the kept frames (peers: the new frame rate);
* ``scale``: frames resized before detection (0.5x, 0.75x), ground truth scaled alike;
* ``crop``: a window of the frame (fractions ``x0, y0, x1, y1``); ground truth shifted,
  boxes less than half inside become don't-care;
* ``gain``: pixel values multiplied (0.5: a dim store, 1.6: over-exposed), clipped.

Variants that change pixels are re-detected with the same YOLOX-Nano model and threshold
and cached beside the plain detections (``benchmarks/results/detections_<seq>_<variant>_*.npz``;
about 20 s a sequence the first time).

Run ``python benchmarks/tracking_variants.py`` to build every cache and print box counts.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

sys.path.insert(0, str(Path(__file__).resolve().parent))

from storesense.vision.detections import Detections
from tracking_detections import (
    DETECTION_SCORE_THRESHOLD,
    RESULTS,
    SEQUENCES,
    SHARED,
    _load,
    _save,
    load_sequence,
)
from tracking_eval import Boxes, TrackRow, load_ground_truth


@dataclass(frozen=True)
class Variant:
    """One change a new camera brings; the default is the sequence as it is."""

    name: str = "as is"
    fps: float | None = None
    scale: float = 1.0
    crop: tuple[float, float, float, float] | None = None
    gain: float = 1.0

    @property
    def redetect(self) -> bool:
        return self.scale != 1.0 or self.crop is not None or self.gain != 1.0

    @property
    def key(self) -> str:
        parts = []
        if self.scale != 1.0:
            parts.append(f"s{self.scale:g}")
        if self.crop is not None:
            parts.append("c" + "-".join(f"{v:g}" for v in self.crop))
        if self.gain != 1.0:
            parts.append(f"g{self.gain:g}")
        return "_".join(parts)

    def transform(self, image: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
        if self.crop is not None:
            h, w = image.shape[:2]
            x0, y0, x1, y1 = self.crop
            image = image[round(y0 * h) : round(y1 * h), round(x0 * w) : round(x1 * w)]
        if self.scale != 1.0:
            h, w = image.shape[:2]
            size = (round(w * self.scale), round(h * self.scale))
            image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        if self.gain != 1.0:
            image = cv2.convertScaleAbs(image, alpha=self.gain)
        return np.ascontiguousarray(image)


VARIANTS: list[Variant] = [
    Variant(),
    Variant("5 fps", fps=5.0),
    Variant("10 fps", fps=10.0),
    Variant("0.5x size", scale=0.5),
    Variant("0.75x size", scale=0.75),
    Variant("crop centre", crop=(0.15, 0.1, 0.85, 0.9)),
    Variant("dim x0.5", gain=0.5),
    Variant("bright x1.6", gain=1.6),
]


@dataclass
class VariantSequence:
    """Detections, capture times and ground truth of one sequence under one variant."""

    name: str
    variant: Variant
    fps: float
    frames: list[Detections]
    times: list[float]
    ground_truth: list[TrackRow]
    ignored: list[Boxes]
    frame_size: tuple[int, int] = field(default=(0, 0))

    def timestamp(self, frame_index: int) -> float:
        """Seconds of 1-based ``frame_index`` (kept frames are renumbered from 1)."""
        return self.times[frame_index - 1]


def _frame_size(video: Path) -> tuple[int, int]:
    capture = cv2.VideoCapture(str(video))
    size = (int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)))
    capture.release()
    return size


def _detect_variant(video: Path, variant: Variant) -> list[Detections]:
    import os

    from storesense.vision.detector import Detector

    os.environ.setdefault("STORESENSE_MODEL_MIRROR", str(SHARED / "models"))
    detector = Detector.from_model("yolox-nano", score_threshold=DETECTION_SCORE_THRESHOLD)
    capture = cv2.VideoCapture(str(video))
    frames: list[Detections] = []
    while True:
        ok, image = capture.read()
        if not ok:
            break
        frames.append(detector.detect(variant.transform(image)))
    capture.release()
    return frames


def _kept_frames(count: int, fps: float, target: float | None) -> list[int]:
    """0-based frame indices nearest to a ``target`` fps clock (all when None or faster)."""
    if target is None or target >= fps:
        return list(range(count))
    duration = (count - 1) / fps
    wanted = np.arange(0.0, duration + 1e-9, 1.0 / target)
    kept = np.unique(np.clip(np.round(wanted * fps).astype(int), 0, count - 1))
    return kept.tolist()


def _transform_truth(
    rows: list[TrackRow], ignored: list[Boxes], variant: Variant, size: tuple[int, int]
) -> tuple[list[TrackRow], list[Boxes]]:
    if variant.crop is None and variant.scale == 1.0:
        return rows, ignored
    w, h = size
    if variant.crop is not None:
        x0, y0, x1, y1 = variant.crop
        origin = np.array([round(x0 * w), round(y0 * h)] * 2, np.float64)
        limit = np.array([round(x1 * w) - origin[0], round(y1 * h) - origin[1]])
    else:
        origin = np.zeros(4)
        limit = np.array([w, h], np.float64)
    out_rows: list[TrackRow] = []
    out_ignored: list[Boxes] = []
    for row, dont_care in zip(rows, ignored, strict=True):
        boxes = row.xyxy - origin
        clipped = boxes.copy()
        clipped[:, 0::2] = np.clip(clipped[:, 0::2], 0, limit[0])
        clipped[:, 1::2] = np.clip(clipped[:, 1::2], 0, limit[1])
        area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
        inside = (clipped[:, 2] - clipped[:, 0]) * (clipped[:, 3] - clipped[:, 1])
        visible = inside >= 0.5 * np.maximum(area, 1e-9)
        extra = dont_care - origin
        extra[:, 0::2] = np.clip(extra[:, 0::2], 0, limit[0])
        extra[:, 1::2] = np.clip(extra[:, 1::2], 0, limit[1])
        partly = clipped[~visible & (inside > 0)]
        out_rows.append(TrackRow(row.ids[visible], clipped[visible] * variant.scale))
        out_ignored.append(np.concatenate([extra, partly]) * variant.scale)
    return out_rows, out_ignored


def load_variant(name: str, variant: Variant) -> VariantSequence:
    """Sequence ``name`` as ``variant`` would show it (detections cached on first use)."""
    base = load_sequence(name)
    video = base.folder / SEQUENCES[name]
    size = _frame_size(video)
    frames = base.frames
    if variant.redetect:
        cache = RESULTS / (
            f"detections_{name}_{variant.key}_yolox-nano_{DETECTION_SCORE_THRESHOLD:g}.npz"
        )
        if cache.exists():
            frames = _load(cache)
        else:
            frames = _detect_variant(video, variant)
            _save(cache, frames)
    rows, ignored = load_ground_truth(base.folder / "gt" / "gt.txt", len(frames))
    rows, ignored = _transform_truth(rows, ignored, variant, size)
    kept = _kept_frames(len(frames), base.fps, variant.fps)
    fps = base.fps if variant.fps is None or variant.fps >= base.fps else variant.fps
    return VariantSequence(
        name=name,
        variant=variant,
        fps=fps,
        frames=[frames[i] for i in kept],
        times=[i / base.fps for i in kept],
        ground_truth=[rows[i] for i in kept],
        ignored=[ignored[i] for i in kept],
        frame_size=size,
    )


if __name__ == "__main__":
    for sequence_name in SEQUENCES:
        for v in VARIANTS:
            seq = load_variant(sequence_name, v)
            boxes = sum(len(d) for d in seq.frames)
            gt_boxes = sum(len(r.ids) for r in seq.ground_truth)
            print(
                f"{sequence_name:<12} {v.name:<12} {len(seq.frames):4d} frames at "
                f"{seq.fps:g} fps, {boxes:6d} boxes, {gt_boxes:5d} gt boxes",
                flush=True,
            )
