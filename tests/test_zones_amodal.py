"""Occlusion-aware feet (:class:`~storesense.zones.amodal.AmodalBoxes`): constructed
tracks whose legs are hidden, boxes that shrink for other reasons, the zone engine's
use of it, and real PETS09-S2L1 frames where a person walks behind another."""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from storesense.vision.detections import Tracks
from storesense.vision.tracking import Tracker
from storesense.zones.amodal import AmodalBoxes
from storesense.zones.config import StoreLayout
from storesense.zones.engine import ZoneEngine
from storesense.zones.events import EventType

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from counting import load_gt_tracks

FPS = 7.0


def walker(t: float, *, hidden: float = 0.0, x0: float = 100.0) -> np.ndarray:
    """A 100 px person walking right at 35 px/s and down at 7 px/s (towards the
    camera); ``hidden`` of their height cut off at the bottom."""
    top = 100.0 + 7.0 * t
    return np.array([x0 + 35.0 * t, top, x0 + 40.0 + 35.0 * t, top + 100.0 * (1.0 - hidden)])


def frame(t: float, *boxes: np.ndarray, ids: tuple[int, ...] = (1,)) -> Tracks:
    xyxy = np.array(boxes, np.float64).reshape(-1, 4)
    return Tracks(xyxy, np.ones(len(xyxy)), np.array(ids), np.zeros((len(xyxy), 2)), timestamp=t)


def test_hidden_legs_keep_the_feet() -> None:
    """Walking, then legs hidden for 1 s (a third of the body): the feet stay on the
    walker's true path; then the legs are back and the box is passed through."""
    amodal = AmodalBoxes()
    for k in range(14):
        t = k / FPS
        assert amodal.update(frame(t, walker(t))).xyxy[0, 3] == pytest.approx(walker(t)[3])
    for k in range(14, 21):
        t = k / FPS
        out = amodal.update(frame(t, walker(t, hidden=0.35)))
        assert abs(float(out.xyxy[0, 3]) - walker(t)[3]) < 5.0, (k, out.xyxy[0])
        # Only the bottom moves: top and sides are the detector's.
        assert out.xyxy[0, :3].tolist() == pytest.approx(walker(t)[:3].tolist())
    for k in range(21, 25):
        t = k / FPS
        assert amodal.update(frame(t, walker(t))).xyxy[0, 3] == pytest.approx(walker(t)[3])


def test_behind_a_closer_person_even_with_a_jumpy_top() -> None:
    """The top moves more than the track's motion says (a detector wobble), but the feet
    point lies inside a closer person's box: still a hidden-legs case."""
    amodal = AmodalBoxes()
    for k in range(10):
        t = k / FPS
        amodal.update(frame(t, walker(t)))
    t = 10 / FPS
    cut = walker(t, hidden=0.3)
    cut[1] -= 12.0  # the top jumps 12 px up
    closer = np.array([cut[0] - 10, cut[3] - 30, cut[2] + 10, cut[3] + 150])
    out = amodal.update(frame(t, cut, closer, ids=(1, 2)))
    assert abs(float(out.xyxy[0, 3]) - (cut[1] + 100.0)) < 5.0  # top + full height
    assert float(out.xyxy[1, 3]) == pytest.approx(closer[3])  # the closer person untouched
    alone = AmodalBoxes()
    for k in range(10):
        alone.update(frame(k / FPS, walker(k / FPS)))
    # Without the closer person, a top that jumped is no hidden-legs case.
    assert float(alone.update(frame(t, cut)).xyxy[0, 3]) == pytest.approx(cut[3])


def test_legs_covered_gradually_by_a_closer_person() -> None:
    """A closer person walks across the legs: the box loses 4 % of the height a frame (no
    single frame is a sudden cut) while its feet point lies inside that person's box and
    its top and width follow the walker. Once a ninth of the legs is gone the feet are put
    back on the walker's path; without the closer box the same boxes are believed."""
    covered = {}
    for with_closer in (True, False):
        amodal = AmodalBoxes()
        for k in range(14):
            t = k / FPS
            amodal.update(frame(t, walker(t)))
        feet = []
        for k in range(14, 21):
            t = k / FPS
            cut = walker(t, hidden=0.04 * (k - 13))
            closer = np.array([cut[0] - 20.0, cut[3] - 20.0, cut[2] + 20.0, cut[3] + 80.0])
            boxes = (cut, closer) if with_closer else (cut,)
            ids = (1, 2) if with_closer else (1,)
            out = amodal.update(frame(t, *boxes, ids=ids))
            feet.append(abs(float(out.xyxy[0, 3]) - walker(t)[3]))
        covered[with_closer] = feet
    # 12 % and more hidden (frames 16-20): on the path, within 3 px.
    assert max(covered[True][2:]) < 3.0, covered[True]
    assert min(covered[False][2:]) > 11.0, covered[False]


def test_walking_away_behind_a_closer_person_is_believed() -> None:
    """A person walking away shrinks while a closer person's box covers their feet point:
    their feet rise as fast as they did before, so the box is not cut."""
    amodal = AmodalBoxes()
    for k in range(40):
        t = k / FPS
        top = 300.0 - 20.0 * t
        box = np.array([100.0, top, 140.0, top + 150.0 - 25.0 * t])
        boxes = [box]
        if k >= 10:
            boxes.append(np.array([80.0, box[3] - 30.0, 160.0, box[3] + 200.0]))
        out = amodal.update(frame(t, *boxes, ids=(1, 2)[: len(boxes)]))
        assert float(out.xyxy[0, 3]) == pytest.approx(box[3]), k


COUNTER = [[150.0, 250.0], [600.0, 250.0], [600.0, 400.0], [150.0, 400.0]]
"""A counter in front of the floor: its top edge at y 250 hides whatever is below it."""


def behind_counter(t: float) -> tuple[np.ndarray, float]:
    """A 100 px person walking right at 35 px/s and down at 20 px/s behind ``COUNTER``:
    the detector's box ends at the counter's top edge once the feet pass it (the legs
    disappear 20 px/s, never suddenly). Returns the box and the true feet row."""
    top = 100.0 + 20.0 * t
    box = np.array([100.0 + 35.0 * t, top, 140.0 + 35.0 * t, min(top + 100.0, 250.0)])
    return box, top + 100.0


def test_legs_hidden_behind_an_occluder_keep_the_feet() -> None:
    """No closer person: the counter, drawn as an occluder, hides the legs over a second.
    Once more than an eighth of the height is gone the feet are put back on the walker's
    path below the counter (top and sides as detected); without the occluder the same
    boxes are believed (the feet stay on the counter's edge)."""
    feet_off = {}
    for occluders in ([COUNTER], []):
        amodal = AmodalBoxes(occluders=occluders)
        off = []
        for k in range(31):
            t = k / FPS
            box, feet = behind_counter(t)
            out = amodal.update(frame(t, box))
            assert out.xyxy[0, :3].tolist() == pytest.approx(box[:3].tolist())
            off.append(abs(float(out.xyxy[0, 3]) - feet))
        feet_off[bool(occluders)] = off
    # Frames 0-17 (feet above the counter, then up to 0.07 of the legs hidden): as detected.
    assert max(feet_off[True][:18]) < 1e-3 and max(feet_off[False][:18]) < 1e-3
    # 12 % and more hidden (frames 22-30, 1.3 s): on the path, within 3 px.
    assert max(feet_off[True][22:]) < 3.0, feet_off[True]
    assert min(feet_off[False][22:]) > 11.0, feet_off[False]


def test_walking_away_past_an_occluder_is_believed() -> None:
    """A person walking away, their feet point crossing a sign's polygon, shrinks as the
    perspective says and their feet rise at their own speed: left as detected."""
    sign = [[60.0, 200.0], [180.0, 200.0], [180.0, 330.0], [60.0, 330.0]]
    amodal = AmodalBoxes(occluders=[sign])
    for k in range(40):
        t = k / FPS
        top = 300.0 - 20.0 * t
        box = np.array([100.0, top, 140.0, top + 150.0 - 25.0 * t])
        out = amodal.update(frame(t, box))
        assert float(out.xyxy[0, 3]) == pytest.approx(box[3]), k


@pytest.mark.parametrize(
    ("occluders", "message"),
    [
        ([[[0.0, 0.0], [10.0, 0.0]]], r"occluders\[0\]: needs at least 3"),
        (
            [[[0.0, 0.0], [10.0, 0.0], [5.0, 5.0]], [[0.0, 0.0], [1.0, 1.0], [2.0, 3.0, 4.0]]],
            r"occluders\[1\]",
        ),
        ([[[0.0, 0.0], [float("inf"), 0.0], [5.0, 5.0]]], r"occluders\[0\]: points must be finite"),
    ],
)
def test_bad_occluders_raise(occluders: list[list[list[float]]], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        AmodalBoxes(occluders=occluders)


@pytest.mark.parametrize(
    "shrunk",
    [
        # crouching: the top comes down, the feet stay
        lambda b: np.array([b[0], b[1] + 40.0, b[2], b[3]]),
        # the head hidden: same shape of change
        lambda b: np.array([b[0], b[1] + 25.0, b[2], b[3]]),
        # slightly shorter (detector noise): under the threshold
        lambda b: np.array([b[0], b[1] + 5.0, b[2], b[3] - 5.0]),
    ],
)
def test_other_shrinks_are_left_alone(shrunk: object) -> None:
    amodal = AmodalBoxes()
    for k in range(10):
        amodal.update(frame(k / FPS, walker(k / FPS)))
    t = 10 / FPS
    box = shrunk(walker(t))  # type: ignore[operator]
    assert float(amodal.update(frame(t, box)).xyxy[0, 3]) == pytest.approx(box[3])


def test_a_box_that_is_no_single_person_is_never_corrected() -> None:
    """With the camera's perspective learnt from people at many rows (height = 0.25 x
    feet row + 10), a track whose box is 1.6 x a person's height there (two people in one
    box) that then shrinks to one person is not "corrected"; a normal one is."""
    amodal = AmodalBoxes()

    def person(x: float, feet: float, scale: float = 1.0, hidden: float = 0.0) -> np.ndarray:
        height = scale * (0.25 * feet + 10.0)
        return np.array([x, feet - height, x + 0.4 * height, feet - hidden * height])

    rows = (200.0, 260.0, 320.0, 380.0, 440.0)
    for k in range(14):
        t = k / FPS
        boxes = [person(100.0 * i, feet + 3.0 * k) for i, feet in enumerate(rows)]
        boxes += [person(700.0, 300.0, scale=1.6), person(900.0, 300.0)]
        amodal.update(frame(t, *boxes, ids=tuple(range(1, 8))))
    t = 14 / FPS
    boxes = [person(100.0 * i, feet + 42.0) for i, feet in enumerate(rows)]
    double = person(700.0, 300.0, scale=1.6)
    single = person(900.0, 300.0)
    # Both tops stay; both boxes end well above their old bottoms.
    boxes += [np.array([*double[:3], double[1] + 60.0]), np.array([*single[:3], single[1] + 50.0])]
    out = amodal.update(frame(t, *boxes, ids=tuple(range(1, 8))))
    assert float(out.xyxy[5, 3]) == pytest.approx(double[1] + 60.0)
    assert float(out.xyxy[6, 3]) == pytest.approx(single[3], abs=3.0)


def test_gradual_shrink_is_believed() -> None:
    """A person walking away gets shorter over seconds, not at once: no correction."""
    amodal = AmodalBoxes()
    for k in range(40):
        t = k / FPS
        top = 300.0 - 20.0 * t
        height = 150.0 - 25.0 * t  # loses 60 % of its height in 3.6 s
        out = amodal.update(frame(t, np.array([100.0, top, 140.0, top + height])))
        assert float(out.xyxy[0, 3]) == pytest.approx(top + height)


def test_a_lasting_cut_is_believed_after_max_seconds() -> None:
    """Someone who sits down behind a counter stays shorter: corrected for at most
    ``max_seconds``, then the box is the truth again."""
    amodal = AmodalBoxes(max_seconds=1.0)
    for k in range(10):
        amodal.update(frame(k / FPS, walker(0.0)))
    standing = walker(0.0)
    sitting = np.array([standing[0], standing[1], standing[2], standing[3] - 45.0])
    corrected = [
        float(amodal.update(frame(k / FPS, sitting)).xyxy[0, 3]) != sitting[3]
        for k in range(10, 30)
    ]
    assert corrected[0] and corrected[6]  # the first second
    assert not any(corrected[9:])  # then believed


def test_state_is_bounded() -> None:
    amodal = AmodalBoxes(forget_seconds=2.0)
    for k in range(50):
        amodal.update(frame(float(k), walker(0.0), ids=(k + 1,)))
    assert len(amodal._tracks) <= 3
    gone = Tracks(
        np.zeros((0, 4)),
        np.zeros(0),
        np.zeros(0, np.int64),
        np.zeros((0, 2)),
        timestamp=50.0,
        lost_ids=np.array([50]),
    )
    amodal.update(gone)
    assert 50 not in amodal._tracks


@pytest.mark.parametrize("field", ["min_shrink", "smooth_seconds", "max_seconds"])
@pytest.mark.parametrize("value", [0.0, -1.0, float("nan"), float("inf")])
def test_bad_settings_raise(field: str, value: float) -> None:
    with pytest.raises(ValueError, match=field):
        AmodalBoxes(**{field: value})


def test_zone_engine_keeps_a_person_whose_legs_are_hidden_in_the_zone() -> None:
    """A zone whose top edge lies between the visible knees and the feet: with the
    hidden-legs correction the walker stays in it (one visit), without it they step out
    and back in."""
    layout = StoreLayout.model_validate(
        {
            "store": {"id": "s"},
            "cameras": [{"id": "c"}],
            "zones": [
                {
                    "id": "z",
                    "camera": "c",
                    "polygon": [[0, 180], [800, 180], [800, 400], [0, 400]],
                    "min_outside_seconds": 0.0,
                }
            ],
        }
    )
    entries = {}
    for amodal in (True, False):
        engine = ZoneEngine(layout, "c")
        if not amodal:
            engine.amodal = None
        events = []
        for k in range(30):
            t = k / FPS
            events += engine.update(frame(t, walker(t, hidden=0.35 if 14 <= k < 20 else 0.0)))
        entries[amodal] = sum(e.type == EventType.ZONE_ENTER for e in events)
    assert entries == {True: 1, False: 2}


def test_zone_engine_uses_the_cameras_occluders() -> None:
    """A zone whose top edge (y 262) lies below the counter's: the walker behind the counter
    stays in it while their legs are hidden when the camera has the counter as an
    occluder (one visit, still inside at the end); without it the feet stay on the
    counter's edge and they leave the zone."""
    zone = {
        "id": "z",
        "camera": "c",
        "polygon": [[0, 262], [800, 262], [800, 500], [0, 500]],
        "min_outside_seconds": 0.0,
    }
    inside = {}
    for occluders in ([COUNTER], []):
        layout = StoreLayout.model_validate(
            {
                "store": {"id": "s"},
                "cameras": [{"id": "c", "occluders": occluders}],
                "zones": [zone],
            }
        )
        engine = ZoneEngine(layout, "c")
        occupancy = []
        for k in range(31):
            t = k / FPS
            engine.update(frame(t, behind_counter(t)[0]))
            occupancy.append(engine.occupancy()["z"])
        inside[bool(occluders)] = occupancy
    # True feet pass y 262 at frame 25 (t 3.6 s).
    assert inside[True][26:] == [1] * 5, inside[True]
    assert inside[False][26:] == [0] * 5, inside[False]


# Real footage: PETS09-S2L1, annotated person 2 walks behind person 1 at about 71 s
# (frames 499-503, 0-based): the detector's box ends at their knees.
FIRST, LAST = 400, 512
HIDDEN = range(499, 504)


@pytest.fixture(scope="module")
def pets09_tracks(pets09: Path, yolox_path: Path) -> list[Tracks]:
    from storesense.vision.detector import Detector

    detector = Detector.from_model("yolox-nano")
    tracker = Tracker()
    capture = cv2.VideoCapture(str(pets09 / "PETS09-S2L1.avi"))
    out = []
    for index in range(LAST):
        ok, image = capture.read()
        assert ok
        if index >= FIRST:
            detections = detector.detect(image)
            out.append(tracker.update(detections, timestamp=index / FPS, frame_index=index + 1))
    capture.release()
    return out


def test_pets09_hidden_legs(pets09: Path, pets09_tracks: list[Tracks]) -> None:
    """On the frames where person 2's legs are hidden, the corrected feet are within a
    tenth of their height of the annotated ones (the detector's are a fifth or more
    off); on every other frame of the clip no one's feet get further from the truth."""
    truth = load_gt_tracks(pets09 / "gt" / "gt.txt", FPS, LAST, with_dont_care=True)
    amodal = AmodalBoxes()
    raw_off, fixed_off, harm = [], [], []
    for index, tracks in zip(range(FIRST, LAST), pets09_tracks, strict=True):
        out = amodal.update(tracks)
        annotated = truth[index]
        for row in range(len(tracks.track_id)):
            box = tracks.xyxy[row]
            centre = 0.5 * (box[0] + box[2])
            # The annotated person whose head and centre this box shares.
            match = [
                g
                for g in annotated.xyxy
                if abs(box[1] - g[1]) < 0.1 * (g[3] - g[1])
                and abs(centre - 0.5 * (g[0] + g[2])) < 0.25 * (g[2] - g[0])
            ]
            if not match:
                continue
            g = match[0]
            height = g[3] - g[1]
            raw = abs(float(box[3]) - g[3]) / height
            fixed = abs(float(out.xyxy[row, 3]) - g[3]) / height
            if index in HIDDEN and raw > 0.15:
                raw_off.append(raw)
                fixed_off.append(fixed)
            elif fixed > raw + 0.02:
                harm.append((index, int(tracks.track_id[row]), raw, fixed))
    assert len(raw_off) >= 4, raw_off
    assert min(raw_off) > 0.15 and max(fixed_off) < 0.1, (raw_off, fixed_off)
    assert not harm, harm
