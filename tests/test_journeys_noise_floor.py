"""The journey benchmark's noise floor moves every box by the stated noise and nothing else,
and puts a tracker's boxes into the truth only where they follow an annotated box."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from storesense.vision.detections import Tracks

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from journeys import drifted, feet_error, jittered, with_boxes_of


def _frames(count: int, people: int) -> list[Tracks]:
    boxes = np.array([[100.0 + 50 * i, 200.0, 140.0 + 50 * i, 320.0] for i in range(people)])
    return [
        Tracks(
            boxes + np.array([3.0 * t, 0, 3.0 * t, 0]),
            np.ones(people),
            np.arange(1, people + 1),
            np.zeros((people, 2)),
            timestamp=t / 7,
            lost_ids=np.array([99]) if t == 5 else np.zeros(0, np.int64),
        )
        for t in range(count)
    ]


def test_jitter_moves_whole_boxes_by_the_stated_noise() -> None:
    clean = _frames(400, 5)
    noisy = jittered(clean, 4.0, seed=0)
    shift = np.concatenate([n.xyxy - c.xyxy for n, c in zip(noisy, clean, strict=True)])
    # Whole boxes move (float32 boxes): the size is kept, both edges shift together.
    np.testing.assert_allclose(shift[:, 0], shift[:, 2], atol=1e-3)
    np.testing.assert_allclose(shift[:, 1], shift[:, 3], atol=1e-3)
    assert abs(float(shift[:, [0, 1]].std()) - 4.0) < 0.2
    assert abs(float(shift[:, [0, 1]].mean())) < 0.2
    # Independent in x and y.
    assert abs(float(np.corrcoef(shift[:, 0], shift[:, 1])[0, 1])) < 0.1
    for n, c in zip(noisy, clean, strict=True):
        assert n.timestamp == c.timestamp
        np.testing.assert_array_equal(n.track_id, c.track_id)
        np.testing.assert_array_equal(n.lost_ids, c.lost_ids)
    # The same seed gives the same noise; another seed other noise.
    again = jittered(clean, 4.0, seed=0)
    other = jittered(clean, 4.0, seed=1)
    assert all(np.array_equal(a.xyxy, b.xyxy) for a, b in zip(noisy, again, strict=True))
    assert not np.allclose(noisy[10].xyxy, other[10].xyxy)
    # The input is left as it was.
    np.testing.assert_array_equal(clean[3].xyxy[0], [109.0, 200.0, 149.0, 320.0])


def test_drift_moves_whole_boxes_by_a_lasting_offset_that_feet_error_measures() -> None:
    clean = _frames(700, 8)
    drifting = drifted(clean, 3.0, 1.0, seed=0)
    shift = np.stack([d.xyxy - c.xyxy for d, c in zip(drifting, clean, strict=True)])
    np.testing.assert_allclose(shift[..., 0], shift[..., 2], atol=1e-3)
    np.testing.assert_allclose(shift[..., 1], shift[..., 3], atol=1e-3)
    assert abs(float(shift[..., [0, 1]].std()) - 3.0) < 0.4
    # One frame (1/7 s) apart the offset is nearly the same; 1 s apart, 1/e of it is left.
    x = shift[..., 0]
    near = np.corrcoef(x[:-1].ravel(), x[1:].ravel())[0, 1]
    far = np.corrcoef(x[:-7].ravel(), x[7:].ravel())[0, 1]
    assert near > 0.8
    assert abs(far - np.exp(-1)) < 0.12
    # Each person drifts on their own.
    assert abs(float(np.corrcoef(x[:, 0], x[:, 1])[0, 1])) < 0.3
    assert all(
        np.array_equal(a.xyxy, b.xyxy)
        for a, b in zip(drifting, drifted(clean, 3.0, 1.0, seed=0), strict=True)
    )
    np.testing.assert_array_equal(clean[3].xyxy[0], [109.0, 200.0, 149.0, 320.0])
    # feet_error reads the size and the duration of the offset back, against the clean boxes.
    sigma, tau = feet_error(drifting, clean)
    assert abs(sigma - 3.0) < 0.4
    assert 0.75 < tau < 1.3
    assert feet_error(clean, clean)[0] == 0.0


def test_our_boxes_replace_only_the_annotated_boxes_they_follow() -> None:
    truth = _frames(3, 3)
    ours = [
        Tracks(
            np.array(
                [
                    frame.xyxy[0] + [4.0, 2.0, 4.0, 2.0],  # follows person 1 (IoU ~0.8)
                    frame.xyxy[1] + [30.0, 0.0, 30.0, 0.0],  # half a box off person 2 (IoU < 0.5)
                    frame.xyxy[0] + [2.0, 0.0, 2.0, 0.0],  # a second box on person 1
                ]
            ),
            np.ones(3),
            np.array([70, 71, 72]),
            np.zeros((3, 2)),
            timestamp=frame.timestamp,
        )
        for frame in truth
    ]
    placed = with_boxes_of(truth, ours)
    for before, after, mine in zip(truth, placed, ours, strict=True):
        # One to one, the most overlap in all: person 1 takes the closer second box.
        np.testing.assert_allclose(after.xyxy[0], mine.xyxy[2])
        np.testing.assert_allclose(after.xyxy[1:], before.xyxy[1:])
        np.testing.assert_array_equal(after.track_id, before.track_id)
        assert after.timestamp == before.timestamp
    nobody = [
        Tracks(
            np.zeros((0, 4)),
            np.zeros(0),
            np.zeros(0, np.int64),
            np.zeros((0, 2)),
            timestamp=t.timestamp,
        )
        for t in truth
    ]
    assert all(
        np.array_equal(a.xyxy, b.xyxy)
        for a, b in zip(with_boxes_of(truth, nobody), truth, strict=True)
    )
