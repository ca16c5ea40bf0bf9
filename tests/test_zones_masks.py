"""Masks drop detections (on a real frame with the real detector); static-detection finder."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from storesense.vision.detections import Detections
from storesense.zones.masks import MaskSet, StaticDetectionFinder, apply_masks


@pytest.fixture(scope="module")
def pets_frame_detections(pets09: Path, yolox_path: Path) -> Detections:
    from storesense.vision.detector import Detector

    capture = cv2.VideoCapture(str(pets09 / "PETS09-S2L1.avi"))
    ok, image = capture.read()
    capture.release()
    assert ok
    return Detector(yolox_path).detect(image)


def test_mask_drops_only_detections_whose_feet_are_inside(
    pets_frame_detections: Detections,
) -> None:
    detections = pets_frame_detections[pets_frame_detections.confidence >= 0.3]
    assert len(detections) >= 4
    feet = detections.anchors()
    x, y = (float(v) for v in feet[0])
    mask = [[x - 3, y - 3], [x + 3, y - 3], [x + 3, y + 3], [x - 3, y + 3]]
    kept = apply_masks(detections, [mask])
    assert len(kept) == len(detections) - int(
        ((np.abs(feet[:, 0] - x) < 3) & (np.abs(feet[:, 1] - y) < 3)).sum()
    )
    assert not any(np.allclose(box, detections.xyxy[0]) for box in kept.xyxy)
    # A mask over the whole frame drops everything; no masks keep everything.
    assert len(apply_masks(detections, [[[0, 0], [800, 0], [800, 600], [0, 600]]])) == 0
    assert apply_masks(detections, MaskSet([])) is detections


def test_static_finder_reports_a_mannequin_not_walkers() -> None:
    finder = StaticDetectionFinder(min_seconds=5.0)
    rng = np.random.default_rng(3)
    for k in range(80):
        t = k * 0.1
        mannequin = np.array([20, 100, 50, 180]) + rng.normal(0, 0.5, 4)
        walker = np.array([100 + 10 * k, 100, 130 + 10 * k, 180])
        boxes = [walker] if k % 10 == 0 else [mannequin, walker]  # missed now and then
        finder.update(Detections(np.array(boxes), np.ones(len(boxes)), np.zeros(len(boxes))), t)
    candidates = finder.candidates()
    assert len(candidates) == 1
    found = candidates[0]
    np.testing.assert_allclose(found.box, [20, 100, 50, 180], atol=0.5)
    assert found.seconds == pytest.approx(7.9, abs=0.11)
    assert 0.85 < found.seen_fraction < 0.95
    polygon = found.polygon(margin_px=4)
    assert polygon[0] == pytest.approx([16, 96], abs=0.6)


@pytest.mark.parametrize("kwargs", [{"min_iou": 0}, {"min_seconds": 0}, {"min_seen_fraction": 2}])
def test_static_finder_rejects_bad_parameters(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        StaticDetectionFinder(**kwargs)
