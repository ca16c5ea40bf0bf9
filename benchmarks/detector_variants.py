"""Detector input size and int8 quantisation: accuracy against cost on PETS09-S2L1.

Each variant of YOLOX-Nano runs the whole ``storesense count`` path over the 795 frames
(detector, tracker, zone engine with ``examples/pets09_bench.yaml``: 10 zones + 10 lines):

* tracking: HOTA / MOTA / IDF1 (TrackEval metric classes, ``tracking_eval.py``);
* counting: line crossings in / out of the 10 lines against the ground-truth tracks
  through the same lines (``counting.py``'s truth, every annotated person), and zone
  entries;
* cost: detector-only CPU-ms a frame (bare ``session.run``, one intra-op thread, PETS09
  tensors), measured side by side, and its ratio to the 416 float model.

int8: ``onnxruntime.quantization.quantize_static`` (QDQ, per-channel int8 weights,
uint8 activations, MinMax calibration) on the 71 TUD-Campus frames, so that the
PETS09 evaluation never sees a calibration frame. Ship rule: a variant may ship only
if HOTA/MOTA/IDF1 stay within 1 point of 416 float and the line counts within 1 %.

Usage::

    python benchmarks/detector_variants.py                 # 416, 320, 416 int8, 320 int8
    python benchmarks/detector_variants.py --sizes 416,320 --no-int8 --frames 300
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("STORESENSE_SHARED", REPO.parent / "shared"))
os.environ.setdefault("STORESENSE_MODEL_MIRROR", str(SHARED / "models"))
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import numpy.typing as npt  # noqa: E402
from counting import LAYOUT, load_gt_tracks, run_engine, truth_counts  # noqa: E402
from storesense.vision.detector import Detector  # noqa: E402
from storesense.vision.pipeline import CameraPipeline, run_pipeline  # noqa: E402
from storesense.vision.sources import open_source  # noqa: E402
from storesense.zones.config import load_layout  # noqa: E402
from tracking_eval import TrackRow, evaluate, load_ground_truth  # noqa: E402

PETS = SHARED / "data" / "PETS09-S2L1"
TUD = SHARED / "data" / "TUD-Campus" / "TUD-Campus.mp4"
FPS = 7.0


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def frames_of(path: Path, limit: int | None = None) -> list[npt.NDArray[np.uint8]]:
    capture = cv2.VideoCapture(str(path))
    frames: list[npt.NDArray[np.uint8]] = []
    while limit is None or len(frames) < limit:
        ok, image = capture.read()
        if not ok:
            break
        frames.append(np.asarray(image, np.uint8))
    capture.release()
    return frames


def quantised(detector: Detector, folder: Path) -> Path:
    """An int8 copy of ``detector``'s model, calibrated on TUD-Campus frames."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    tensors = [detector.preprocess(image)[0][None] for image in frames_of(TUD)]

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._items = iter([{detector.input_name: t} for t in tensors])

        def get_next(self) -> dict[str, Any] | None:
            return next(self._items, None)

    stem = detector.model_path.stem
    prepared = folder / f"{stem}-pre.onnx"
    target = folder / f"{stem}-int8.onnx"
    import onnx
    from onnx import version_converter

    # Per-channel QDQ needs opset 13 (the shipped YOLOX-Nano is opset 11).
    opset13 = folder / f"{stem}-opset13.onnx"
    onnx.save(version_converter.convert_version(onnx.load(str(detector.model_path)), 13), opset13)
    quant_pre_process(str(opset13), str(prepared), skip_symbolic_shape=True)
    quantize_static(
        str(prepared),
        str(target),
        Reader(),
        quant_format=QuantFormat.QDQ,
        per_channel=True,
        weight_type=QuantType.QInt8,
        activation_type=QuantType.QUInt8,
    )
    return target


def detector_ms(
    detectors: dict[str, Detector], images: list[Any], rounds: int = 3
) -> dict[str, float]:
    """Bare ``session.run`` CPU-ms a frame of each detector, interleaved in rounds."""
    tensors = {name: [d.preprocess(i)[0][None] for i in images] for name, d in detectors.items()}
    spent = dict.fromkeys(detectors, 0.0)
    for _ in range(rounds):
        for name, detector in detectors.items():
            start = cpu_seconds()
            for tensor in tensors[name]:
                detector.run(tensor)
            spent[name] += cpu_seconds() - start
    return {name: 1000 * s / (rounds * len(images)) for name, s in spent.items()}


def run_variant(detector: Detector, frames: int | None) -> list[Any]:
    pipeline = CameraPipeline(detector)
    tracks = []
    with open_source(PETS / "PETS09-S2L1.avi", camera_id="cam1", fps=FPS) as source:
        for _frame, frame_tracks in run_pipeline(source, pipeline):
            tracks.append(frame_tracks)
            if frames is not None and len(tracks) >= frames:
                break
    return tracks


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--sizes", default="416,320", help="square input sizes")
    parser.add_argument("--no-int8", dest="int8", action="store_false", help="float only")
    parser.add_argument("--frames", type=int, default=None, help="first N frames only")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    layout = load_layout(LAYOUT)
    gt_rows, ignored = load_ground_truth(PETS / "gt" / "gt.txt", args.frames)
    truth = truth_counts(
        layout, load_gt_tracks(PETS / "gt" / "gt.txt", FPS, args.frames, with_dont_care=True)
    )
    truth_in = sum(c["in"] for c in truth["lines"].values())
    truth_out = sum(c["out"] for c in truth["lines"].values())
    base = Detector.from_model("yolox-nano", intra_op_threads=1)
    variants: dict[str, Detector] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for size in sizes:
            variant = base.variant(input_size=size)
            variants[f"{size} float"] = variant
            if args.int8:
                variants[f"{size} int8"] = Detector(
                    quantised(variant, Path(tmp)), intra_op_threads=1
                )
        cost = detector_ms(variants, frames_of(PETS / "PETS09-S2L1.avi", 40))
        reference = f"{sizes[0]} float"
        print(
            f"PETS09-S2L1, {len(gt_rows)} frames; truth {truth_in} in / {truth_out} out over "
            f"10 lines; load average {os.getloadavg()[0]:.1f}"
        )
        print(
            f"{'variant':<10} {'HOTA':>6} {'MOTA':>6} {'IDF1':>6} {'in':>5} {'out':>5} "
            f"{'in err':>7} {'out err':>7} {'entries':>7} {'det CPU-ms':>10} {'x':>5} {'ships':>5}"
        )
        results: dict[str, dict[str, float]] = {}
        for name, detector in variants.items():
            tracks = run_variant(detector, args.frames)
            rows = [TrackRow(t.track_id, t.xyxy.astype(np.float64)) for t in tracks]
            scores = evaluate(gt_rows, ignored, rows)
            counted = run_engine(layout, tracks)
            lines_in = sum(c["in"] for c in counted["lines"].values())
            lines_out = sum(c["out"] for c in counted["lines"].values())
            results[name] = {
                "hota": scores.hota, "mota": scores.mota, "idf1": scores.idf1,
                "in": lines_in, "out": lines_out,
            }  # fmt: skip
            ref = results.get(reference, results[name])
            ships = (
                all(ref[k] - results[name][k] <= 1.0 for k in ("hota", "mota", "idf1"))
                and abs(lines_in - ref["in"]) <= 0.01 * max(ref["in"], 1)
                and abs(lines_out - ref["out"]) <= 0.01 * max(ref["out"], 1)
            )
            print(
                f"{name:<10} {scores.hota:>6.1f} {scores.mota:>6.1f} {scores.idf1:>6.1f} "
                f"{lines_in:>5} {lines_out:>5} {(lines_in - truth_in) / truth_in:>+7.1%} "
                f"{(lines_out - truth_out) / truth_out:>+7.1%} {int(counted['entries'].sum()):>7} "
                f"{cost[name]:>10.1f} {cost[name] / cost[reference]:>5.2f} "
                f"{'yes' if ships else 'no':>5}",
                flush=True,
            )
    print(
        f"ships: within 1 point of {reference} on HOTA, MOTA and IDF1 and within 1 % on the "
        "line counts in and out"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
