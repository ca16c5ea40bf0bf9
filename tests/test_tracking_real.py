"""The tracker on real video: YOLOX-Nano on PETS09-S2L1 frames, scored with TrackEval.

Needs ../shared (the model and the video) and the ``bench`` extra (trackeval).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt
import pytest
from storesense.vision.tracking import Tracker
from storesense.vision.tracking.matching import iou_matrix

pytestmark = pytest.mark.trackeval


def _ground_truth(gt_file: Path, frames: int) -> npt.NDArray[np.float64]:
    gt = np.loadtxt(gt_file, delimiter=",")
    return gt[(gt[:, 0] <= frames) & (gt[:, 6] != 0)]


def test_real_pets09_frames_tracked_with_high_mota_and_idf1(pets09: Path, yolox_path: Path) -> None:
    from storesense.vision.detector import Detector
    from trackeval.metrics import CLEAR, Identity

    frames = 60
    fps = 7.0
    detector = Detector(yolox_path, score_threshold=0.05)
    capture = cv2.VideoCapture(str(pets09 / "PETS09-S2L1.avi"))
    tracker = Tracker()
    outputs = []
    for index in range(1, frames + 1):
        ok, image = capture.read()
        assert ok, f"could not read frame {index}"
        outputs.append(tracker.update(detector.detect(image), (index - 1) / fps, index))
    capture.release()

    gt = _ground_truth(pets09 / "gt" / "gt.txt", frames)
    gt_ids = {v: i for i, v in enumerate(np.unique(gt[:, 1]))}
    tr_ids = {v: i for i, v in enumerate(np.unique(np.concatenate([t.track_id for t in outputs])))}
    data: dict[str, object] = {"num_timesteps": frames, "gt_ids": [], "tracker_ids": []}
    similarity = []
    for index, tracks in enumerate(outputs, start=1):
        rows = gt[gt[:, 0] == index]
        gt_boxes = rows[:, 2:6].copy()
        gt_boxes[:, 2:] += gt_boxes[:, :2]
        data["gt_ids"].append(np.array([gt_ids[v] for v in rows[:, 1]], int))  # type: ignore[attr-defined]
        data["tracker_ids"].append(np.array([tr_ids[v] for v in tracks.track_id], int))  # type: ignore[attr-defined]
        similarity.append(iou_matrix(gt_boxes, tracks.xyxy.astype(np.float64)))
    data.update(
        similarity_scores=similarity,
        num_gt_ids=len(gt_ids),
        num_tracker_ids=len(tr_ids),
        num_gt_dets=len(gt),
        num_tracker_dets=sum(len(t) for t in outputs),
    )
    clear = CLEAR({"PRINT_CONFIG": False}).eval_sequence(data)
    identity = Identity({"PRINT_CONFIG": False}).eval_sequence(data)
    # Peers on the same detections over the whole sequence reach MOTA ~0.65, IDF1 ~0.6.
    # The first 60 frames are the crowded start: direction consistency trades a couple of
    # brief switches there for +5 IDF1 over the sequence (benchmarks/tracking.py --folds).
    assert clear["MOTA"] > 0.67, clear["MOTA"]
    assert identity["IDF1"] > 0.7, identity["IDF1"]
    assert clear["IDSW"] <= 6
    all_ids = np.concatenate([t.track_id for t in outputs])
    assert all_ids.min() == 1 and len(np.unique(all_ids)) <= len(gt_ids) + 3
