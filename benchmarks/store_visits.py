"""Visits across cameras on real footage: PETS09-S2L1 split into two overlapping cameras.

The 768 px wide frames become two cameras, ``left`` (x 0-450) and ``right`` (x 320-768),
each with its own YOLOX-Nano detector pass and tracker; both homographies map onto the
floor plan of ``examples/pets09.yaml``. Both run through
:class:`~storesense.zones.camera.CameraAnalytics` sharing one
:class:`~storesense.zones.store_visits.StoreVisits`. Reported:

* crossings: people seen in one view's own part (x < 320 or x > 450) and next in the
  other's, matched (IoU >= 0.5) to a track at least every 3 s on the way, and how many
  kept one visit; beside the same count for one camera over the whole frame (its
  tracker and :class:`~storesense.zones.journeys.VisitLinker`), the best a hand-over
  can do with these tracks;
* person-frames whose visit another person holds at the same time (over-merging);
* store-wide occupancy against the ground truth's people (feet below y = 150) in the
  union of the views;
* the store-wide floor zone ``plaza`` (no camera: floor x 2-8 m, y 1-13 m, across both
  views and their overlap) against the ground truth's people whose feet (through the
  full frame's homography) are in it, beside the sum of each camera's own people in it
  (what per-camera zones give: people in the overlap twice).

Run: ``python benchmarks/store_visits.py`` (about 2 minutes: two detector passes).
``tests/test_store_visits.py`` asserts the same figures.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt
import shapely
from scipy.optimize import linear_sum_assignment
from storesense.vision.detections import Tracks
from storesense.vision.tracking import Tracker
from storesense.zones.camera import CameraAnalytics
from storesense.zones.config import Homography, StoreLayout
from storesense.zones.events import Event, EventType
from storesense.zones.floorplan import floor_positions
from storesense.zones.journeys import VisitLinker
from storesense.zones.metrics import compute_metrics
from storesense.zones.store_visits import StoreVisits

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("STORESENSE_SHARED", ROOT.parent / "shared"))
PETS = SHARED / "data" / "PETS09-S2L1"
FPS = 7.0
VIEWS = {"left": (0, 450), "right": (320, 768)}
IMAGE_POINTS = [[50, 550], [718, 550], [524, 150], [244, 150]]
FLOOR_POINTS = [[0, 0], [10, 0], [10, 15], [0, 15]]
FLOOR_TOP_PX = 150
"""The ground truth annotates people whose feet are below this image row."""
LINK_GAP_FRAMES = 21
"""A crossing is scored when the person was matched at least every 3 s through it."""
FLOOR_ZONES = {
    "plaza": [[2.0, 1.0], [8.0, 1.0], [8.0, 13.0], [2.0, 13.0]],
    "overlap": [[4.0, 1.0], [6.0, 1.0], [6.0, 14.0], [4.0, 14.0]],
}
"""Store-wide floor zones (metres): ``plaza`` across both views and their overlap (the
tests assert it), ``overlap`` the strip both cameras see (printed as a second check)."""
FLOOR_ZONE = "plaza"


def split_layout() -> StoreLayout:
    def camera(camera_id: str, x0: int) -> dict[str, Any]:
        return {
            "id": camera_id,
            "homography": {
                "image_points": [[x - x0, y] for x, y in IMAGE_POINTS],
                "floor_points": FLOOR_POINTS,
            },
        }

    return StoreLayout.model_validate(
        {
            "store": {"id": "split"},
            "cameras": [camera(c, x0) for c, (x0, _) in VIEWS.items()],
            "zones": [
                # One floor zone per camera on each side of the overlap.
                {
                    "id": "west",
                    "camera": "left",
                    "floor_polygon": [[0, 0], [3, 0], [3, 12], [0, 12]],
                },
                {
                    "id": "east",
                    "camera": "right",
                    "floor_polygon": [[7, 0], [10, 0], [10, 12], [7, 12]],
                },
                # Store-wide floor zones (no camera) across both views.
                *({"id": z, "floor_polygon": p} for z, p in FLOOR_ZONES.items()),
            ],
        }
    )


def track_split(pets09: Path, detector: Any) -> dict[str, list[Tracks]]:
    """Each view's tracks, frame by frame (the detector runs on each crop)."""
    trackers = {camera_id: Tracker() for camera_id in VIEWS}
    out: dict[str, list[Tracks]] = {camera_id: [] for camera_id in VIEWS}
    capture = cv2.VideoCapture(str(pets09 / "PETS09-S2L1.avi"))
    index = 0
    while True:
        ok, image = capture.read()
        if not ok:
            break
        for camera_id, (x0, x1) in VIEWS.items():
            crop = np.ascontiguousarray(image[:, x0:x1])
            out[camera_id].append(
                trackers[camera_id].update(
                    detector.detect(crop), timestamp=index / FPS, frame_index=index + 1
                )
            )
        index += 1
    capture.release()
    return out


def _iou(a: npt.NDArray[np.float64], b: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return np.asarray(inter / (area_a[:, None] + area_b[None] - inter), np.float64)


def _match_people(
    seen: dict[int, list[tuple[int, float, str]]],
    frame: int,
    rows: npt.NDArray[np.float64],
    boxes: npt.NDArray[np.float64],
    split_tracks: dict[str, list[Tracks]],
    visit_of: Callable[[str, int, int], str],
) -> None:
    """Adds, per ground-truth person of ``frame``, ``(frame, feet x, visit)`` of the track
    matched to them (IoU >= 0.5) in each view to ``seen``; ``visit_of(camera, frame, track)``."""
    for camera_id, (x0, _) in VIEWS.items():
        tracks = split_tracks[camera_id][frame]
        if not len(tracks) or not len(boxes):
            continue
        overlap = _iou(boxes, tracks.xyxy.astype(np.float64) + np.array([x0, 0, x0, 0]))
        for i, j in zip(*linear_sum_assignment(-overlap), strict=True):
            if overlap[i, j] >= 0.5:
                feet_x = float(boxes[i, 0] + boxes[i, 2]) / 2
                visit = visit_of(camera_id, frame, int(tracks.track_id[j]))
                seen.setdefault(int(rows[i, 1]), []).append((frame, feet_x, visit))


def run_split(
    split_tracks: dict[str, list[Tracks]],
    pets09: Path,
    zone_counts: list[dict[str, int]] | None = None,
) -> tuple[StoreVisits, list[Event], dict[int, list[tuple[int, float, str]]], list[int], list[int]]:
    """Both cameras through CameraAnalytics sharing one StoreVisits; per ground-truth
    person, the visit of the track matched to them (IoU >= 0.5) in each frame. Each
    frame's counts of the store-wide floor zones go to ``zone_counts``."""
    layout = split_layout()
    store_visits = StoreVisits(layout)
    analytics = {
        camera_id: CameraAnalytics(layout, camera_id, shelves=False, store_visits=store_visits)
        for camera_id in VIEWS
    }
    gt = np.loadtxt(pets09 / "gt" / "gt.txt", delimiter=",")
    events: list[Event] = []
    seen: dict[int, list[tuple[int, float, str]]] = {}
    ours, truth = [], []
    frames = len(split_tracks["left"])
    for f in range(frames):
        for camera_id in VIEWS:
            events += analytics[camera_id].update(None, split_tracks[camera_id][f])
        rows = gt[gt[:, 0] == f + 1]
        boxes = np.column_stack(
            [rows[:, 2], rows[:, 3], rows[:, 2] + rows[:, 4], rows[:, 3] + rows[:, 5]]
        )
        truth.append(int((boxes[:, 3] >= FLOOR_TOP_PX).sum()))
        now = store_visits.counts()
        ours.append(now.count)
        if zone_counts is not None:
            zone_counts.append(now.zones)
        _match_people(
            seen,
            f,
            rows,
            boxes,
            split_tracks,
            lambda camera, _, track: store_visits.visit_of(camera, track),
        )
    end = frames / FPS
    for camera_id in VIEWS:
        events += analytics[camera_id].finish(end)
    return store_visits, events, seen, ours, truth


def seen_by_visits(
    split_tracks: dict[str, list[Tracks]],
    pets09: Path,
    visits: dict[str, list[dict[int, str]]],
) -> dict[int, list[tuple[int, float, str]]]:
    """Per ground-truth person, the visit of the track matched to them (IoU >= 0.5) in each
    frame, from each camera's visit of each track per frame (``visits[camera][frame]``), as
    :func:`run_split` records them (e.g. from camera workers of separate processes)."""
    gt = np.loadtxt(pets09 / "gt" / "gt.txt", delimiter=",")
    seen: dict[int, list[tuple[int, float, str]]] = {}
    for f in range(len(split_tracks["left"])):
        rows = gt[gt[:, 0] == f + 1]
        boxes = np.column_stack(
            [rows[:, 2], rows[:, 3], rows[:, 2] + rows[:, 4], rows[:, 3] + rows[:, 5]]
        )
        _match_people(
            seen,
            f,
            rows,
            boxes,
            split_tracks,
            lambda camera, frame, track: visits[camera][frame][track],
        )
    return seen


def floor_zone_truth(pets09: Path, frames: int, zone_id: str = FLOOR_ZONE) -> list[int]:
    """Per frame, the ground truth's people whose feet (bottom-centre of the annotated box,
    below y = 150, through the full frame's homography) are in the floor zone."""
    homography = Homography(image_points=IMAGE_POINTS, floor_points=FLOOR_POINTS)
    zone = shapely.Polygon(FLOOR_ZONES[zone_id])
    gt = np.loadtxt(pets09 / "gt" / "gt.txt", delimiter=",")
    truth = []
    for f in range(frames):
        rows = gt[gt[:, 0] == f + 1]
        rows = rows[rows[:, 3] + rows[:, 5] >= FLOOR_TOP_PX]
        feet = np.column_stack([rows[:, 2] + rows[:, 4] / 2, rows[:, 3] + rows[:, 5]])
        floor = homography.to_floor(feet)
        truth.append(int(np.count_nonzero(shapely.contains_xy(zone, floor[:, 0], floor[:, 1]))))
    return truth


def visit_durations_truth(pets09: Path) -> list[float]:
    """Each annotated person's visits in seconds: their frames with feet below y = 150,
    a new visit after a gap of more than 3 s (``StoreVisits``' ``link_seconds``)."""
    gt = np.loadtxt(pets09 / "gt" / "gt.txt", delimiter=",")
    gt = gt[gt[:, 3] + gt[:, 5] >= FLOOR_TOP_PX]
    durations = []
    for person in np.unique(gt[:, 1]):
        frames = np.sort(gt[gt[:, 1] == person, 0])
        breaks = np.flatnonzero(np.diff(frames) > LINK_GAP_FRAMES)
        for first, last in zip(np.r_[0, breaks + 1], np.r_[breaks, len(frames) - 1], strict=True):
            durations.append(float(frames[last] - frames[first]) / FPS)
    return durations


def visit_durations_ours(events: list[Event]) -> tuple[float | None, str | None]:
    """The mean visit duration ``compute_metrics`` reports from the split's events (frame
    clock from Unix 0) and how it was computed."""
    end = max(e.timestamp for e in events) + 1.0
    metrics = compute_metrics(
        events,
        split_layout(),
        start=datetime.fromtimestamp(0, UTC),
        end=datetime.fromtimestamp(end, UTC),
    )
    return metrics.visit_duration_seconds, metrics.visit_duration_method


def per_camera_zone_sum(
    split_tracks: dict[str, list[Tracks]], zone_id: str = FLOOR_ZONE
) -> list[int]:
    """Per frame, each camera's own people in the floor zone added up: what zones of one
    camera each give (a person in the overlap counts twice)."""
    layout = split_layout()
    zone = shapely.Polygon(FLOOR_ZONES[zone_id])
    sums = []
    for f in range(len(split_tracks["left"])):
        total = 0
        for camera_id in VIEWS:
            homography = layout.camera(camera_id).homography
            assert homography is not None
            floor, on_floor = floor_positions(split_tracks[camera_id][f], homography)
            floor = floor[on_floor]
            total += int(np.count_nonzero(shapely.contains_xy(zone, floor[:, 0], floor[:, 1])))
        sums.append(total)
    return sums


def crossings(seen: dict[int, list[tuple[int, float, str]]]) -> tuple[int, int]:
    """(crossings, crossings that kept one visit): a person seen in one view's own part
    and next in the other's, matched at least every ``LINK_GAP_FRAMES`` on the way."""
    left_end, right_start = VIEWS["right"][0], VIEWS["left"][1]
    total = kept = 0
    for sightings in seen.values():
        side: str | None = None
        visit: str | None = None
        previous_frame: int | None = None
        continuous = True
        for frame, feet_x, frame_visit in sorted(sightings):
            if previous_frame is not None and frame - previous_frame > LINK_GAP_FRAMES:
                continuous = False
            previous_frame = frame
            here = "L" if feet_x < left_end else ("R" if feet_x > right_start else None)
            if here is None:
                continue
            if side is not None and here != side and continuous:
                total += 1
                kept += frame_visit == visit
            side, visit, continuous = here, frame_visit, True
    return total, kept


def shared_person_frames(seen: dict[int, list[tuple[int, float, str]]]) -> tuple[int, int]:
    """(person-frames whose visit another person holds in the same frame, person-frames):
    merging everyone into one visit would keep every crossing, and fail this."""
    by_frame: dict[int, dict[int, str]] = {}
    for person, sightings in seen.items():
        for frame, _, visit in sightings:
            by_frame.setdefault(frame, {})[person] = visit
    shared = total = 0
    for visits in by_frame.values():
        values = list(visits.values())
        total += len(values)
        shared += sum(values.count(v) > 1 for v in values)
    return shared, total


def one_camera_crossings(pets09: Path, detector: Any) -> tuple[int, int]:
    """The same crossings for one camera over the whole frame (no hand-over needed)."""
    tracker = Tracker()
    linker = VisitLinker("full", frame_size=(768, 576))
    gt = np.loadtxt(pets09 / "gt" / "gt.txt", delimiter=",")
    seen: dict[int, list[tuple[int, float, str]]] = {}
    capture = cv2.VideoCapture(str(pets09 / "PETS09-S2L1.avi"))
    f = 0
    while True:
        ok, image = capture.read()
        if not ok:
            break
        tracks = tracker.update(detector.detect(image), timestamp=f / FPS, frame_index=f + 1)
        linker.update(tracks)
        rows = gt[gt[:, 0] == f + 1]
        boxes = np.column_stack(
            [rows[:, 2], rows[:, 3], rows[:, 2] + rows[:, 4], rows[:, 3] + rows[:, 5]]
        )
        if len(tracks) and len(boxes):
            overlap = _iou(boxes, tracks.xyxy.astype(np.float64))
            for i, j in zip(*linear_sum_assignment(-overlap), strict=True):
                if overlap[i, j] >= 0.5:
                    feet_x = float(boxes[i, 0] + boxes[i, 2]) / 2
                    visit = linker.visit_of(int(tracks.track_id[j]))
                    seen.setdefault(int(rows[i, 1]), []).append((f, feet_x, visit))
        f += 1
    capture.release()
    return crossings(seen)


def main() -> None:
    from storesense.vision.detector import Detector

    os.environ.setdefault("STORESENSE_MODEL_MIRROR", str(SHARED / "models"))
    detector = Detector.from_model("yolox-nano")
    split_tracks = track_split(PETS, detector)
    zone_ours: list[dict[str, int]] = []
    _, events, seen, ours, truth = run_split(split_tracks, PETS, zone_ours)
    total, kept = crossings(seen)
    shared, person_frames = shared_person_frames(seen)
    one_total, one_kept = one_camera_crossings(PETS, detector)
    print(f"crossings that kept one visit (two cameras): {kept} of {total} ({kept / total:.1%})")
    print(f"the same, one camera over the whole frame:  {one_kept} of {one_total}")
    print(
        f"person-frames sharing a visit with another person: {shared} of {person_frames} "
        f"({shared / person_frames:.1%})"
    )
    bias = sum(ours) / sum(truth) - 1
    error = float(np.mean(np.abs(np.array(ours) - np.array(truth))))
    print(
        f"store-wide occupancy: {sum(ours)} vs truth {sum(truth)} person-frames ({bias:+.1%}), "
        f"mean error {error:.2f} people a frame"
    )
    truth_visits = visit_durations_truth(PETS)
    mean_visit, method = visit_durations_ours(events)
    ended = sum(e.type == EventType.VISIT_END for e in events)
    print(
        f"visit duration ({method}, {ended} visit_end events): mean {mean_visit:.1f} s vs "
        f"truth {np.mean(truth_visits):.1f} s over {len(truth_visits)} visits "
        f"({mean_visit / np.mean(truth_visits) - 1:+.1%})"
    )
    for zone_id in FLOOR_ZONES:
        zone_truth = floor_zone_truth(PETS, len(zone_ours), zone_id)
        store_wide = [frame[zone_id] for frame in zone_ours]
        summed = per_camera_zone_sum(split_tracks, zone_id)
        for name, series in (("store-wide zone", store_wide), ("per-camera sum ", summed)):
            bias = sum(series) / sum(zone_truth) - 1
            error = float(np.mean(np.abs(np.array(series) - np.array(zone_truth))))
            print(
                f"floor zone {zone_id!r}, {name}: {sum(series)} vs truth {sum(zone_truth)} "
                f"person-frames ({bias:+.1%}), mean error {error:.2f} people a frame"
            )
    # The cost a camera worker pays each frame: count() (before) against counts() (the count
    # and every floor zone, one merge), both timed at every frame of a replay.
    visits = StoreVisits(split_layout())
    cost = {"count()": 0.0, "counts()": 0.0}
    calls = {"count()": visits.count, "counts()": visits.counts}
    for f in range(len(split_tracks["left"])):
        for camera_id in VIEWS:
            visits.update(camera_id, split_tracks[camera_id][f])
        for name in sorted(calls, reverse=f % 2 == 1):
            start = time.perf_counter()
            calls[name]()
            cost[name] += time.perf_counter() - start
    frames = len(split_tracks["left"])
    print(
        f"per frame: count() {cost['count()'] / frames * 1e6:.0f} us, counts() with "
        f"{len(FLOOR_ZONES)} floor zones {cost['counts()'] / frames * 1e6:.0f} us "
        f"(x{cost['counts()'] / cost['count()']:.2f})"
    )


if __name__ == "__main__":
    main()
