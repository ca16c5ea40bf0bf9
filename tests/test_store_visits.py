"""Visits across cameras: real PETS09 frames split into two overlapping views.

The 768 px wide PETS09-S2L1 frames become two cameras, ``left`` (x 0-450) and ``right``
(x 320-768), each with its own YOLOX-Nano detector pass and tracker; both homographies
map onto the one floor plan of ``examples/pets09.yaml`` (``benchmarks/store_visits.py``
builds them and prints the figures). People who walk from one view's own part through the
overlap into the other's must keep one visit, and the store-wide occupancy must match the
ground truth's people in the union of the views.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from storesense.vision.detections import Tracks
from storesense.zones.config import StoreLayout
from storesense.zones.events import EventType
from storesense.zones.journeys import visit_paths
from storesense.zones.store_visits import STORE_CAMERA, StoreVisits

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from store_visits import (
    FLOOR_ZONE,
    VIEWS,
    crossings,
    floor_zone_truth,
    per_camera_zone_sum,
    run_split,
    shared_person_frames,
    split_layout,
    visit_durations_ours,
    visit_durations_truth,
)


def test_people_keep_one_visit_across_two_cameras(
    split_tracks: dict[str, list[Tracks]], pets09: Path
) -> None:
    _, events, seen, ours, truth = run_split(split_tracks, pets09)
    total, kept = crossings(seen)
    assert total >= 20  # PETS09 people cross the middle of the plaza often
    # Measured: 25 of 27 (92.6 %), as many as one camera over the whole frame keeps of the
    # same 27 (the others are tracker swaps of people crossing each other). The issue asks
    # 90 %.
    assert kept / total >= 0.92, f"{kept} of {total} crossings kept their visit"
    shared, person_frames = shared_person_frames(seen)
    assert shared <= 0.01 * person_frames, f"{shared} of {person_frames} person-frames shared"
    # Store-wide occupancy over the union of the views: within 5 % of the truth overall,
    # and off by well under one person per frame.
    assert abs(sum(ours) / sum(truth) - 1) <= 0.05
    assert np.mean(np.abs(np.array(ours) - np.array(truth))) < 0.5
    # The events carry the store-wide visits: some visit's path spans both cameras (and
    # the store-wide floor zones between them, camera @store).
    cameras_of: dict[str, set[str]] = {}
    for event in events:
        if event.type == EventType.ZONE_EXIT and event.camera_id != STORE_CAMERA:
            cameras_of.setdefault(event.attributes["visit_id"], set()).add(event.camera_id)
    spanning = [v for v, cams in cameras_of.items() if cams == set(VIEWS)]
    assert spanning
    paths = visit_paths(events)
    assert any({"west", "east"} <= set(paths.get(v, [])) for v in spanning)


def test_visit_duration_across_two_cameras_is_each_visits_time_in_the_store(
    split_tracks: dict[str, list[Tracks]], pets09: Path
) -> None:
    """Every visit ends with a ``visit_end`` (first to last sighting by either camera), so
    the mean visit duration is the visits' time in the store, not the span of their zone
    events. Measured 30.6 s over 20 visits against the truth's 34.8 s over 19 (24.6 s over
    23 while a second box on a person made a visit of its own); from the zone events alone
    much less (a visit's time outside every zone is not in them)."""
    _, events, *_ = run_split(split_tracks, pets09)
    ends = [e for e in events if e.type == EventType.VISIT_END]
    keys = [e.attributes["visit_id"] for e in ends]
    assert len(keys) == len(set(keys)) >= 19
    mean, method = visit_durations_ours(events)
    truth = visit_durations_truth(pets09)
    assert method == "store_visits" and len(truth) == 19
    assert mean is not None and 0.8 <= mean / np.mean(truth) <= 1.05, (mean, np.mean(truth))
    without_ends = [e for e in events if e.type != EventType.VISIT_END]
    from_events, _ = visit_durations_ours(without_ends)
    assert from_events is not None and from_events < mean - 3.0


def test_a_store_wide_floor_zone_across_both_views_counts_the_people_in_it(
    split_tracks: dict[str, list[Tracks]], pets09: Path
) -> None:
    """The layout's store-wide floor zone (no camera, floor x 2-8 m across both views and
    their overlap) against the ground truth's people whose feet are in it."""
    zone_counts: list[dict[str, int]] = []
    run_split(split_tracks, pets09, zone_counts)
    ours = [frame[FLOOR_ZONE] for frame in zone_counts]
    truth = floor_zone_truth(pets09, len(ours))
    assert sum(truth) > 1000  # the plaza's middle is busy
    # Measured -5.2 %, mean error 0.20 people a frame. Before second boxes stopped making
    # visits of their own: -4.3 %, 0.22 (a second box's visit was held as a hidden person
    # for 2 s after it ended, over-counting frames that masked misses elsewhere).
    assert abs(sum(ours) / sum(truth) - 1) <= 0.06, (sum(ours), sum(truth))
    assert np.mean(np.abs(np.array(ours) - np.array(truth))) < 0.21
    # Each camera's people in it added up count the overlap's people twice.
    summed = per_camera_zone_sum(split_tracks)
    assert sum(summed) / sum(truth) - 1 > 0.15, (sum(summed), sum(truth))


def test_store_visits_rejects_bad_settings() -> None:
    with pytest.raises(ValueError, match="merge_distance_m"):
        StoreVisits(split_layout(), merge_distance_m=-1)


def two_cameras(offset_b: float) -> StoreLayout:
    square = [[0, 0], [100, 0], [100, 100], [0, 100]]
    return StoreLayout.model_validate(
        {
            "store": {"id": "s"},
            "cameras": [
                {
                    "id": camera_id,
                    "homography": {
                        "image_points": square,
                        "floor_points": [[x, 0], [x + 1, 0], [x + 1, 1], [x, 1]],
                    },
                }
                for camera_id, x in (("a", 0.0), ("b", offset_b))
            ],
        }
    )


def person(track_id: int, x: float, t: float) -> Tracks:
    """Feet at image x (100 px = 1 m), y = 50."""
    return Tracks(
        np.array([[x - 5, 0, x + 5, 50]]),
        np.ones(1),
        np.array([track_id]),
        np.zeros((1, 2)),
        timestamp=t,
    )


def test_gap_hand_over_between_cameras_that_do_not_overlap() -> None:
    # Camera b starts 0.5 m past camera a's right edge: a person walking at 1 m/s leaves
    # a at t = 1 s and appears in b 0.5 s later.
    visits = StoreVisits(two_cameras(1.5))
    for i in range(6):
        visits.update("a", person(1, 50 + 10 * i, 0.5 + 0.1 * i))
        visits.update("b", Tracks.empty(0.5 + 0.1 * i))
    for i in range(5):
        visits.update("a", Tracks.empty(1.6 + 0.1 * i))
        visits.update("b", person(7, 10 + 10 * i, 1.6 + 0.1 * i))
    assert visits.visit_of("b", 7) == visits.visit_of("a", 1) == "a:1"
    # Someone appearing far from every ended visit starts a new one.
    visits.update("a", person(2, 5, 2.2))
    assert visits.visit_of("a", 2) == "a:2"


def test_a_track_that_swapped_onto_someone_else_leaves_the_visit() -> None:
    visits = StoreVisits(two_cameras(0.0))  # both cameras see the same metre of floor
    for i in range(3):
        visits.update("a", person(1, 50, 0.1 * i))
        visits.update("b", person(9, 52, 0.1 * i))
    assert visits.visit_of("b", 9) == "a:1"
    assert visits.count() == 1
    # b's tracker swaps its track onto another person 3 m away (beyond twice
    # merge_distance_m from where a sees the visit): the track leaves the visit.
    visits.update("a", person(1, 50, 0.3))
    visits.update(
        "b",
        Tracks(
            np.array([[345, 0, 355, 50]]),
            np.ones(1),
            np.array([9]),
            np.zeros((1, 2)),
            timestamp=0.3,
        ),
    )
    assert visits.visit_of("b", 9) == "b:9"
    assert visits.visit_of("a", 1) == "a:1"


def people(boxes: dict[int, list[float]], t: float) -> Tracks:
    """One camera's tracks at ``t``: each track id's ``xyxy`` box (100 px = 1 m)."""
    return Tracks(
        np.array(list(boxes.values()), np.float64).reshape(-1, 4),
        np.ones(len(boxes)),
        np.array(list(boxes), np.int64),
        np.zeros((len(boxes), 2)),
        timestamp=t,
    )


def visit_ends(visits: StoreVisits, t: float) -> dict[str, float]:
    """Finish both cameras: each ended visit's ``dwell_seconds``."""
    events = visits.finish("a", t) + visits.finish("b", t)
    return {
        e.attributes["visit_id"]: e.attributes["dwell_seconds"]
        for e in events
        if e.type == EventType.VISIT_END
    }


def test_a_second_box_on_a_person_starts_no_visit_of_its_own() -> None:
    # Both cameras see one person standing at x 0.5 m for 2 s; for 0.3 s camera a's
    # tracker also holds a second, wider box on them (each box at least half inside the
    # other), then drops it.
    visits = StoreVisits(two_cameras(0.0))
    for i in range(20):
        t = 0.1 * i
        boxes = {1: [45.0, 0.0, 55.0, 50.0]}
        if 5 <= i < 8:
            boxes[2] = [43.0, -2.0, 58.0, 50.0]
        visits.update("a", people(boxes, t))
        visits.update("b", person(9, 50, t))
        if i == 6:
            assert visits.visit_of("a", 2) == visits.visit_of("a", 1) == "a:1"
    assert visit_ends(visits, 2.0) == {"a:1": 1.9}


def test_a_person_behind_another_starts_a_visit_once_seen_apart() -> None:
    # Camera a first sees someone behind a standing person (boxes each at least half
    # inside the other); from t = 0.5 s they walk away from them at 1 m/s.
    visits = StoreVisits(two_cameras(2.0))  # camera b far away: a alone sees them
    for i in range(15):
        t = 0.1 * i
        boxes = {1: [45.0, 0.0, 55.0, 50.0]}
        if i >= 2:
            x = 48 + 10 * max(0, i - 5)
            boxes[2] = [x - 5, 0.0, x + 5, 50.0]
        visits.update("a", people(boxes, t))
        visits.update("b", Tracks.empty(t))
        if i == 4:
            assert visits.visit_of("a", 2) == "a:1"
    assert visits.visit_of("a", 2) == "a:2"
    assert visits.visit_of("a", 1) == "a:1"
    ends = visit_ends(visits, 1.5)
    assert set(ends) == {"a:1", "a:2"}
    assert ends["a:1"] == 1.4


def test_a_track_born_on_someone_where_a_lost_person_was_continues_their_visit() -> None:
    # Two people stand side by side in camera a; the tracker loses the right one (track 2)
    # for 0.5 s and finds them again as track 3, whose first box is half inside the
    # left one's: that may be the lost person back, so the hand-over decides.
    visits = StoreVisits(two_cameras(2.0))
    for i in range(20):
        t = 0.1 * i
        boxes = {1: [40.0, 0.0, 52.0, 50.0]}
        if i < 5:
            boxes[2] = [44.0, 0.0, 56.0, 50.0]
        elif i >= 10:
            boxes[3] = [44.0, 0.0, 56.0, 50.0]
        visits.update("a", people(boxes, t))
        visits.update("b", Tracks.empty(t))
    assert visits.visit_of("a", 3) == "a:2"
    assert visits.visit_of("a", 1) == "a:1"
