"""The journey benchmark's noise floor moves every box by the stated noise and nothing else."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from storesense.vision.detections import Tracks

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from journeys import jittered


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
