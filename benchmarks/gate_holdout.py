"""The held-out counting checks with the motion gate (and region detection) on and off.

``python benchmarks/counting.py --holdout`` runs our tracker on cached detections, so it
never sees the gate. This runs the real pipeline (YOLOX-Nano on every PETS09-S2L1 frame,
then the gate's choices) twice, gate off and gate on (the layout defaults), and reports
for each held-out layout (``examples/pets09_holdout*.yaml``, not used to choose any
default) what ``--holdout`` reports against the ground truth: line counts per direction
summed over every line, and each zone's mean occupancy and dwell, with their errors.

Run: ``python benchmarks/gate_holdout.py [--frames N] [--regions 256,320]`` (the second
also turns region detection on with the gate).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("STORESENSE_SHARED", REPO.parent / "shared"))
os.environ.setdefault("STORESENSE_MODEL_MIRROR", str(SHARED / "models"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from counting import (  # noqa: E402
    CAMERA,
    FPS,
    HOLDOUT_LAYOUTS,
    PETS,
    border_band,
    load_gt_tracks,
    run_engine,
    truth_counts,
)
from storesense.vision.detections import Tracks  # noqa: E402
from storesense.zones.config import load_layout  # noqa: E402


def pipeline_tracks(
    gate: bool, frames: int | None, layout_path: Path, regions: tuple[int, ...] = ()
) -> tuple[list[Tracks], Any]:
    from storesense.vision.detector import Detector
    from storesense.vision.pipeline import CameraPipeline, run_pipeline
    from storesense.vision.sources import open_source

    camera = load_layout(layout_path).camera(CAMERA)
    update: dict[str, Any] = {"enabled": gate}
    if regions:
        update["region_input_sizes"] = regions
    motion = camera.motion.model_copy(update=update)
    pipeline = CameraPipeline(Detector.from_model("yolox-nano"), camera.tracker, motion=motion)
    out: list[Tracks] = []
    with open_source(PETS / "PETS09-S2L1.avi", camera_id=CAMERA, fps=FPS) as source:
        for _frame, tracks in run_pipeline(source, pipeline):
            out.append(tracks)
            if frames is not None and len(out) >= frames:
                break
    return out, pipeline


def _relative(value: float, truth: float) -> str:
    return f"{value / truth - 1:+6.1%}" if truth else "   n/a"


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--frames", type=int, default=None, help="first N frames only")
    parser.add_argument(
        "--regions", default="", help="region detection sizes with the gate on, e.g. 256,320"
    )
    args = parser.parse_args()
    regions = tuple(int(size) for size in args.regions.split(",") if size)
    gt_path = PETS / "gt" / "gt.txt"
    truth_tracks = load_gt_tracks(gt_path, FPS, args.frames, with_dont_care=True)
    band, _ = border_band(gt_path)
    for path in HOLDOUT_LAYOUTS:
        layout = load_layout(path)
        truth = truth_counts(layout, truth_tracks)
        zone_ids = [zone.id for zone in layout.zones_of(CAMERA)]
        t_in = sum(c["in"] for c in truth["lines"].values())
        t_out = sum(c["out"] for c in truth["lines"].values())
        print(f"\n== {path.relative_to(REPO)}: lines in / out, then per zone occupancy, dwell s")
        line = f"{'truth':<10} {t_in:>14} {t_out:>14}"
        for z, zone_id in enumerate(zone_ids):
            line += (
                f" | {zone_id} {truth['occupancy'][:, z].mean():.3f} {float(truth['dwell'][z]):.1f}"
            )
        print(line)
        for gate in (False, True):
            tracks, pipeline = pipeline_tracks(gate, args.frames, path, regions if gate else ())
            result = run_engine(layout, tracks, band)
            r_in = sum(c["in"] for c in result["lines"].values())
            r_out = sum(c["out"] for c in result["lines"].values())
            line = (
                f"{'gate ' + ('on' if gate else 'off'):<10} {r_in:>5} ({_relative(r_in, t_in)})"
                f" {r_out:>5} ({_relative(r_out, t_out)})"
            )
            for z, zone_id in enumerate(zone_ids):
                occ, t_occ = result["occupancy"][:, z].mean(), truth["occupancy"][:, z].mean()
                dwell, t_dwell = float(result["dwell"][z]), float(truth["dwell"][z])
                line += (
                    f" | {zone_id} {occ:.3f} ({_relative(occ, t_occ)}) "
                    f"{dwell:.1f} ({_relative(dwell, t_dwell)})"
                )
            print(line)
            print(
                f"{'':<10} detector on {pipeline.detector_runs} of {pipeline.stats.frames} "
                f"frames, {pipeline.region_runs} of them on a crop"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
