"""Occlusion-aware feet (:class:`~storesense.zones.amodal.AmodalBoxes`): does it put the
feet where the annotated ones are, and where does it belong?

On the cached YOLOX-Nano detections of PETS09-S2L1 and TUD-Campus, through our tracker
with its defaults, in one run:

1. **feet error** against the ground truth (full-extent boxes), in person heights, on
   the frames where the correction acts (each track given to the annotated person it
   followed most), and how many of the frames where a box ends a sixth of a person or
   more above the annotated feet (legs hidden) it puts back within a tenth; also on the
   peers' tracks (``benchmarks/tracking.py``'s), boxes the rules were not studied on;
2. **per-frame zone occupancy error** of the zone engine on the held-out counting
   layouts (``examples/pets09_holdout*.yaml``): the sum over frames of |our people in the
   zone - annotated people in it|, with and without the correction (the signed totals
   that ``counting.py`` prints let a wrong frame in one place cancel another elsewhere);
3. **zone engine cost** per frame with and without it, as a ratio (same run);
4. **as the tracker's output**: HOTA / MOTA / IDF1 (``tracking_eval``) when the
   corrected boxes are the tracker's output boxes (the ground truth labels full extent).

Run: ``python benchmarks/amodal.py`` (~15 s). ``--scene-occluders``: with each scene's
static occluders (``counting.SCENE_OCCLUDERS``: the PETS09 sign) drawn on its camera, as a
user would configure ``cameras[].occluders``; the headline figures are without.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from counting import SCENE_OCCLUDERS, load_gt_tracks, with_scene_occluders
from journeys import FRAME_SIZE, our_tracks, rows_to_tracks, track_people
from storesense.vision.detections import Detections, Tracks
from storesense.vision.tracking import Tracker
from storesense.zones.amodal import AmodalBoxes
from storesense.zones.config import load_layout
from storesense.zones.engine import ZoneEngine
from tracking import PEERS, run_tracker, score
from tracking_detections import load_sequence
from tracking_eval import TrackRow

ROOT = Path(__file__).resolve().parents[1]
HOLDOUT = sorted((ROOT / "examples").glob("pets09_holdout*.yaml"))
CUT = 1 / 6
"""A box whose bottom is this many person heights above the annotated feet: legs hidden."""


OCCLUDERS: dict[str, list[list[list[float]]]] = {}
"""Occluders per scene in this run: none, or ``SCENE_OCCLUDERS`` (``--scene-occluders``)."""


def feet_error(name: str, tracker: str = "storesense") -> None:
    sequence = load_sequence(name)
    gt = load_gt_tracks(
        sequence.folder / "gt" / "gt.txt", sequence.fps, len(sequence.frames), with_dont_care=True
    )
    if tracker == "storesense":
        ours = our_tracks(sequence.frames, sequence.fps)
    else:
        ours = rows_to_tracks(run_tracker(PEERS[tracker], sequence)[0], sequence.fps)
    person_of = {t: c.most_common(1)[0][0] for t, c in track_people(ours, gt).items()}
    amodal = AmodalBoxes(occluders=OCCLUDERS.get(name, []))
    acted: list[tuple[float, float]] = []
    hidden: list[tuple[float, float]] = []
    for tracks, truth in zip(ours, gt, strict=True):
        out = amodal.update(tracks)
        annotated = {int(i): truth.xyxy[k] for k, i in enumerate(truth.track_id.tolist())}
        for row, track_id in enumerate(tracks.track_id.tolist()):
            box = annotated.get(person_of.get(track_id, -1))
            if box is None:
                continue
            height = float(box[3] - box[1])
            before = float(box[3] - tracks.xyxy[row, 3]) / height
            after = float(box[3] - out.xyxy[row, 3]) / height
            if out.xyxy[row, 3] != tracks.xyxy[row, 3]:
                acted.append((abs(before), abs(after)))
            if before >= CUT:
                hidden.append((before, after))
    print(f"\n{name}, {tracker} tracks: feet error in person heights (annotated boxes)")
    if acted:
        errors = np.array(acted)
        better = int((errors[:, 1] < errors[:, 0] - 0.02).sum())
        worse = int((errors[:, 1] > errors[:, 0] + 0.02).sum())
        print(
            f"  frames corrected: {len(acted)}; mean error {errors[:, 0].mean():.3f} as detected"
            f" -> {errors[:, 1].mean():.3f} corrected ({better} better, {worse} worse by > 0.02)"
        )
    else:
        print("  frames corrected: 0")
    fixed = sum(1 for _, after in hidden if abs(after) < 0.1)
    print(f"  boxes ending >= 1/6 of a person above the feet: {len(hidden)}, put back: {fixed}")


def occupancy_error() -> None:
    sequence = load_sequence("PETS09-S2L1")
    gt = load_gt_tracks(
        sequence.folder / "gt" / "gt.txt", sequence.fps, len(sequence.frames), with_dont_care=True
    )
    ours = our_tracks(sequence.frames, sequence.fps)

    def per_frame(layout_path: Path, tracks: list[Tracks], amodal: bool) -> list[dict[str, int]]:
        layout = load_layout(layout_path)
        if OCCLUDERS:
            layout = with_scene_occluders(layout)
        engine = ZoneEngine(layout, "cam1", frame_size=FRAME_SIZE)
        if not amodal:
            engine.amodal = None
        out = []
        for frame in tracks:
            engine.update(frame)
            out.append(engine.occupancy())
        return out

    print("\nper-frame zone occupancy error (person-frames off / annotated person-frames):")
    for path in HOLDOUT:
        truth = per_frame(path, gt, amodal=False)
        if truth != per_frame(path, gt, amodal=True):
            raise SystemExit("the correction changed the annotated (full-extent) boxes")
        cells = {}
        for amodal in (False, True):
            counts = per_frame(path, ours, amodal)
            cells[amodal] = {
                zone: sum(abs(o[zone] - t[zone]) for o, t in zip(counts, truth, strict=True))
                for zone in truth[0]
            }
        for zone in truth[0]:
            total = sum(t[zone] for t in truth)
            before, after = cells[False][zone], cells[True][zone]
            print(
                f"  {path.stem:<20} {zone:<16} as detected {before:4d} ({before / total:5.1%})"
                f"   corrected {after:4d} ({after / total:5.1%})"
            )


def engine_cost(repeats: int = 7) -> None:
    sequence = load_sequence("PETS09-S2L1")
    ours = our_tracks(sequence.frames, sequence.fps)
    layout = load_layout(HOLDOUT[-1])
    if OCCLUDERS:
        layout = with_scene_occluders(layout)
    best = {False: np.inf, True: np.inf}
    for _ in range(repeats):
        for amodal in (False, True):
            engine = ZoneEngine(layout, "cam1", frame_size=FRAME_SIZE)
            if not amodal:
                engine.amodal = None
            start = time.perf_counter()
            for frame in ours:
                engine.update(frame)
            best[amodal] = min(best[amodal], (time.perf_counter() - start) / len(ours))
    print(
        f"\nzone engine per frame ({HOLDOUT[-1].stem}, best of {repeats}): "
        f"{best[False] * 1e6:.1f} us as detected, {best[True] * 1e6:.1f} us corrected, "
        f"ratio {best[True] / best[False]:.2f}"
    )


def as_tracker_output() -> None:
    def corrected(fps: float) -> tuple[object, object]:
        tracker = Tracker()
        amodal = AmodalBoxes(occluders=OCCLUDERS.get(name, []))

        def step(detections: object, timestamp: float, index: int) -> TrackRow:
            assert isinstance(detections, Detections)
            tracks = amodal.update(tracker.update(detections, timestamp, index))
            return TrackRow(tracks.track_id, tracks.xyxy.astype(np.float64))

        return step, lambda d: d

    def plain(fps: float) -> tuple[object, object]:
        tracker = Tracker()

        def step(detections: object, timestamp: float, index: int) -> TrackRow:
            assert isinstance(detections, Detections)
            tracks = tracker.update(detections, timestamp, index)
            return TrackRow(tracks.track_id, tracks.xyxy.astype(np.float64))

        return step, lambda d: d

    print("\nas the tracker's output boxes (HOTA / MOTA / IDF1):")
    for name in ("PETS09-S2L1", "TUD-Campus"):
        sequence = load_sequence(name)
        cells = []
        for build in (plain, corrected):
            s = score(sequence, run_tracker(build, sequence)[0])  # type: ignore[arg-type]
            cells.append(f"{s.hota:.2f} / {s.mota:.2f} / {s.idf1:.2f}")
        print(f"  {name:<12} as tracked {cells[0]}   corrected {cells[1]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--scene-occluders",
        action="store_true",
        help="each scene's static occluders (the PETS09 sign) drawn on its camera",
    )
    if parser.parse_args().scene_occluders:
        OCCLUDERS.update(SCENE_OCCLUDERS)
        print(f"scene configured: camera occluders {SCENE_OCCLUDERS}")
    for name in ("PETS09-S2L1", "TUD-Campus"):
        feet_error(name)
    for peer in PEERS:  # boxes of other trackers: not what the rules were studied on
        feet_error("PETS09-S2L1", peer)
    occupancy_error()
    engine_cost()
    as_tracker_output()


if __name__ == "__main__":
    main()
