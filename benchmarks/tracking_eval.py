"""MOT evaluation of tracker output with TrackEval's metric classes (HOTA, CLEAR, Identity).

TrackEval's ``MotChallenge2DBox`` loader filters ground truth the MOT17 way (class
column must be 1); MOT15 files put world coordinates in that column, so that loader
would silently drop almost everything. Here the sequence is prepared directly, the
MOT15 way: ground-truth rows with ``conf == 0`` are "don't care" regions — a tracker
box matched to one (IoU >= 0.5, Hungarian) is removed, neither a hit nor a false
positive, and the region itself is not counted as a miss.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
from scipy.optimize import linear_sum_assignment

Boxes = npt.NDArray[np.float64]


@dataclass(frozen=True)
class TrackRow:
    """All boxes of one frame: ``ids`` (N,), ``xyxy`` (N, 4)."""

    ids: npt.NDArray[np.int64]
    xyxy: Boxes


@dataclass(frozen=True)
class Scores:
    hota: float
    mota: float
    idf1: float
    idsw: int

    def as_dict(self) -> dict[str, float | int]:
        return {"HOTA": self.hota, "MOTA": self.mota, "IDF1": self.idf1, "IDSW": self.idsw}


def load_ground_truth(
    gt_file: Path, num_frames: int | None = None
) -> tuple[list[TrackRow], list[Boxes]]:
    """Per-frame evaluated boxes and per-frame don't-care boxes of a MOT15 ``gt.txt``."""
    data = np.loadtxt(gt_file, delimiter=",", ndmin=2)
    frames = int(data[:, 0].max()) if num_frames is None else num_frames
    rows: list[TrackRow] = []
    ignored: list[Boxes] = []
    for frame in range(1, frames + 1):
        part = data[data[:, 0] == frame]
        xyxy = part[:, 2:6].copy()
        xyxy[:, 2:] += xyxy[:, :2]
        care = part[:, 6] != 0
        rows.append(TrackRow(part[care, 1].astype(np.int64), xyxy[care]))
        ignored.append(xyxy[~care])
    return rows, ignored


def _iou(a: Boxes, b: Boxes) -> Boxes:
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)))
    tl = np.maximum(a[:, None, :2], b[None, :, :2])
    br = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(br - tl, 0, None).prod(axis=2)
    area_a = (a[:, 2:] - a[:, :2]).prod(axis=1)
    area_b = (b[:, 2:] - b[:, :2]).prod(axis=1)
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-9)


def _drop_ignored(tracker: TrackRow, ignored: Boxes) -> TrackRow:
    if len(ignored) == 0 or len(tracker.ids) == 0:
        return tracker
    overlap = _iou(ignored, tracker.xyxy)
    overlap[overlap < 0.5] = 0.0
    rows, cols = linear_sum_assignment(-overlap)
    hit = cols[overlap[rows, cols] > 0]
    keep = np.ones(len(tracker.ids), bool)
    keep[hit] = False
    return TrackRow(tracker.ids[keep], tracker.xyxy[keep])


def evaluate(
    ground_truth: list[TrackRow], ignored: list[Boxes], tracker_frames: list[TrackRow]
) -> Scores:
    """HOTA, MOTA, IDF1 (percent) and IDSW of ``tracker_frames`` (one row per gt frame)."""
    from trackeval.metrics import CLEAR, HOTA, Identity

    if len(tracker_frames) != len(ground_truth):
        raise ValueError(
            f"tracker output has {len(tracker_frames)} frames, ground truth {len(ground_truth)}"
        )
    tracker_frames = [_drop_ignored(t, i) for t, i in zip(tracker_frames, ignored, strict=True)]
    gt_map = {v: i for i, v in enumerate(np.unique(np.concatenate([g.ids for g in ground_truth])))}
    all_tracker_ids = [t.ids for t in tracker_frames if len(t.ids)]
    tr_ids = np.unique(np.concatenate(all_tracker_ids)) if all_tracker_ids else np.zeros(0)
    tr_map = {v: i for i, v in enumerate(tr_ids)}
    data = {
        "num_timesteps": len(ground_truth),
        "num_gt_ids": len(gt_map),
        "num_tracker_ids": len(tr_map),
        "num_gt_dets": sum(len(g.ids) for g in ground_truth),
        "num_tracker_dets": sum(len(t.ids) for t in tracker_frames),
        "gt_ids": [np.array([gt_map[v] for v in g.ids], int) for g in ground_truth],
        "tracker_ids": [np.array([tr_map[v] for v in t.ids], int) for t in tracker_frames],
        "similarity_scores": [
            _iou(g.xyxy, t.xyxy) for g, t in zip(ground_truth, tracker_frames, strict=True)
        ],
    }
    hota = HOTA().eval_sequence(data)
    clear = CLEAR({"PRINT_CONFIG": False}).eval_sequence(data)
    identity = Identity({"PRINT_CONFIG": False}).eval_sequence(data)
    return Scores(
        hota=100.0 * float(np.mean(hota["HOTA"])),
        mota=100.0 * float(clear["MOTA"]),
        idf1=100.0 * float(identity["IDF1"]),
        idsw=int(clear["IDSW"]),
    )
