"""Re-id on PETS09-S2L1 ground truth: same person across time vs different people.

Embeds ground-truth crops (every ``--stride``-th frame, boxes at least
``--min-height`` px) with the re-id model and, side by side, with a peer
baseline (an HSV colour histogram, the classic hand-made appearance cue).
Pairs of the same identity at least ``--gap`` frames apart are positives,
pairs of different identities negatives. Prints ROC AUC, the thresholds at
1% false-match rate and at maximum Youden J, and the cost per crop.

    python benchmarks/reid.py [--stride 5] [--gap 35] [--min-height 60]
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt
from scipy.stats import mannwhitneyu
from storesense.api.privacy.reid_hook import DEFAULT_MATCH_THRESHOLD
from storesense.models.fetch import MIRROR_ENV, fetch
from storesense.vision.reid import ReidEmbedder, crop_boxes, l2_normalise

SHARED = Path(os.environ.get("STORESENSE_SHARED", Path(__file__).resolve().parents[2] / "shared"))
FloatArray = npt.NDArray[np.float32]


def load_crops(
    sequence: Path, stride: int, min_height: float
) -> tuple[list[npt.NDArray[np.uint8]], npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    gt = np.loadtxt(sequence / "gt" / "gt.txt", delimiter=",")
    gt = gt[(gt[:, 6] == 1) & (gt[:, 5] >= min_height)]
    capture = cv2.VideoCapture(str(sequence / "PETS09-S2L1.avi"))
    crops: list[npt.NDArray[np.uint8]] = []
    ids: list[int] = []
    frames: list[int] = []
    frame_number = 0
    while True:
        ok, image = capture.read()
        if not ok:
            break
        frame_number += 1
        if (frame_number - 1) % stride:
            continue
        rows = gt[gt[:, 0] == frame_number]
        if not len(rows):
            continue
        boxes = np.column_stack(
            [rows[:, 2], rows[:, 3], rows[:, 2] + rows[:, 4], rows[:, 3] + rows[:, 5]]
        )
        crops.extend(crop.copy() for crop in crop_boxes(image, boxes))
        ids.extend(rows[:, 1].astype(np.int64))
        frames.extend([frame_number] * len(rows))
    capture.release()
    return crops, np.asarray(ids), np.asarray(frames)


def hsv_histogram(crops: list[npt.NDArray[np.uint8]]) -> FloatArray:
    """Peer baseline: 8x8x4 HSV histogram of each crop, L2-normalised."""
    rows = []
    for crop in crops:
        hsv = cv2.cvtColor(crop, cv2.COLOR_BGR2HSV)
        hist = cv2.calcHist([hsv], [0, 1, 2], None, [8, 8, 4], [0, 180, 0, 256, 0, 256])
        rows.append(np.sqrt(hist.reshape(-1)))
    return l2_normalise(np.asarray(rows, np.float32))


def pair_scores(
    embeddings: FloatArray, ids: npt.NDArray[np.int64], frames: npt.NDArray[np.int64], gap: int
) -> tuple[FloatArray, FloatArray]:
    similarity = embeddings @ embeddings.T
    upper = np.triu(np.ones_like(similarity, dtype=bool), k=1)
    same_id = ids[:, None] == ids[None, :]
    far = np.abs(frames[:, None] - frames[None, :]) >= gap
    return similarity[upper & same_id & far], similarity[upper & ~same_id]


def summarise(same: FloatArray, different: FloatArray) -> dict[str, float]:
    auc = float(mannwhitneyu(same, different).statistic) / (len(same) * len(different))
    at_fpr1 = float(np.quantile(different, 0.99))
    thresholds = np.unique(np.concatenate([same, different]))[::50]
    tpr = (same[None, :] >= thresholds[:, None]).mean(axis=1)
    fpr = (different[None, :] >= thresholds[:, None]).mean(axis=1)
    best = int(np.argmax(tpr - fpr))
    return {
        "auc": auc,
        "thr_fpr1": at_fpr1,
        "tpr_at_fpr1": float((same >= at_fpr1).mean()),
        "thr_youden": float(thresholds[best]),
        "tpr_youden": float(tpr[best]),
        "fpr_youden": float(fpr[best]),
        "mean_same": float(same.mean()),
        "mean_diff": float(different.mean()),
    }


def template_scores(
    embeddings: FloatArray,
    ids: npt.NDArray[np.int64],
    frames: npt.NDArray[np.int64],
    gap: int,
    size: int = 8,
) -> tuple[FloatArray, FloatArray]:
    """As the re-id hook works: a template (mean of a person's first ``size`` crops) against
    later crops of the same person (>= ``gap`` frames after) and crops of everyone else."""
    same: list[float] = []
    different: list[float] = []
    for identity, template, later in member_templates(embeddings, ids, frames, gap, size):
        same.extend((embeddings[later] @ template).tolist())
        different.extend((embeddings[ids != identity] @ template).tolist())
    return np.asarray(same, np.float32), np.asarray(different, np.float32)


def member_templates(
    embeddings: FloatArray,
    ids: npt.NDArray[np.int64],
    frames: npt.NDArray[np.int64],
    gap: int,
    size: int,
) -> Iterator[tuple[int, FloatArray, npt.NDArray[np.int64]]]:
    """Per person with more than ``size`` crops: (id, template of the first ``size`` crops,
    rows of their crops at least ``gap`` frames after the template), in time order."""
    for identity in np.unique(ids):
        rows = in_time_order(np.flatnonzero(ids == identity), frames)
        if len(rows) <= size:
            continue
        template = l2_normalise(embeddings[rows[:size]].mean(axis=0, keepdims=True))[0]
        yield int(identity), template, rows[frames[rows] >= frames[rows[size - 1]] + gap]


def in_time_order(
    rows: npt.NDArray[np.int64], frames: npt.NDArray[np.int64]
) -> npt.NDArray[np.int64]:
    return rows[np.argsort(frames[rows])]


def link_rates(
    embeddings: FloatArray,
    ids: npt.NDArray[np.int64],
    frames: npt.NDArray[np.int64],
    gap: int,
    threshold: float,
    checks: int = 3,
    votes: int = 1,
    size: int = 8,
) -> tuple[float, float, int, int]:
    """As the dispatcher links: a track is checked ``checks`` times (consecutive crops, one
    re-id stride apart) and linked when ``votes`` checks reach ``threshold``. Returns the
    share of the member's own later windows that link, the share of other people's windows
    that wrongly link, and how many windows of each were tried."""
    own: list[bool] = []
    stranger: list[bool] = []
    for identity, template, later in member_templates(embeddings, ids, frames, gap, size):
        for other in np.unique(ids):
            rows = np.flatnonzero(ids == other)
            others = later if other == identity else in_time_order(rows, frames)
            hits = embeddings[others] @ template >= threshold
            windows = [hits[i : i + checks] for i in range(0, len(hits) - checks + 1, checks)]
            linked = [int(w.sum()) >= votes for w in windows]
            (own if other == identity else stranger).extend(linked)
    return float(np.mean(own)), float(np.mean(stranger)), len(own), len(stranger)


def timed(function: Callable[[], FloatArray]) -> tuple[FloatArray, float]:
    start = time.perf_counter()
    result = function()
    return result, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stride", type=int, default=5, help="use every n-th frame")
    parser.add_argument("--gap", type=int, default=35, help="min frames between same-id pairs")
    parser.add_argument("--min-height", type=float, default=60.0)
    parser.add_argument("--threads", type=int, default=2, help="onnxruntime intra-op threads")
    parser.add_argument("--threshold", type=float, default=DEFAULT_MATCH_THRESHOLD)
    args = parser.parse_args()
    os.environ.setdefault(MIRROR_ENV, str(SHARED / "models"))
    crops, ids, frames = load_crops(SHARED / "data" / "PETS09-S2L1", args.stride, args.min_height)
    embedder = ReidEmbedder(fetch("person-reid-0248"), intra_op_threads=args.threads)
    embedder.embed_crops(crops[:5])  # warm-up
    reid, reid_s = timed(lambda: embedder.embed_crops(crops))
    hist, hist_s = timed(lambda: hsv_histogram(crops))
    print(
        f"PETS09-S2L1: {len(crops)} crops, {len(np.unique(ids))} identities, every "
        f"{args.stride}th frame, same-id pairs >= {args.gap} frames apart "
        f"({args.gap / 7:.1f} s at 7 fps); batchable={embedder.batchable}, "
        f"threads={args.threads}"
    )
    header = (
        f"{'method':<22}{'AUC':>7}{'thr@FPR1%':>11}{'TPR@FPR1%':>11}{'thr@J':>8}"
        f"{'TPR@J':>7}{'FPR@J':>7}{'same':>7}{'diff':>7}{'ms/crop':>9}"
    )
    print(header)
    print("-" * len(header))
    rows = []
    for name, vectors, seconds in (
        ("person-reid-0248", reid, reid_s),
        ("HSV histogram (peer)", hist, hist_s),
    ):
        same, different = pair_scores(vectors, ids, frames, args.gap)
        stats = summarise(same, different)
        ms = 1000 * seconds / len(crops)
        rows.append((stats, ms))
        print(
            f"{name:<22}{stats['auc']:>7.3f}{stats['thr_fpr1']:>11.3f}"
            f"{stats['tpr_at_fpr1']:>11.3f}{stats['thr_youden']:>8.3f}"
            f"{stats['tpr_youden']:>7.3f}{stats['fpr_youden']:>7.3f}"
            f"{stats['mean_same']:>7.3f}{stats['mean_diff']:>7.3f}{ms:>9.2f}"
        )
    print(f"crop pairs: {len(same)} same-person, {len(different)} different-person")
    same, different = template_scores(reid, ids, frames, args.gap)
    stats = summarise(same, different)
    print(
        f"{'reid 8-crop template':<22}{stats['auc']:>7.3f}{stats['thr_fpr1']:>11.3f}"
        f"{stats['tpr_at_fpr1']:>11.3f}{stats['thr_youden']:>8.3f}"
        f"{stats['tpr_youden']:>7.3f}{stats['fpr_youden']:>7.3f}"
        f"{stats['mean_same']:>7.3f}{stats['mean_diff']:>7.3f}{'':>9}"
    )
    hits, false_hits = (same >= args.threshold).mean(), (different >= args.threshold).mean()
    print(
        f"template at the hook's threshold {args.threshold}: true matches {hits:.3f}, "
        f"false matches {false_hits:.4f} ({len(same)} same, {len(different)} different)"
    )
    for votes in (1, 2):
        refound, mislinked, n_own, n_stranger = link_rates(
            reid, ids, frames, args.gap, args.threshold, votes=votes
        )
        print(
            f"dispatcher, 3 checks a track, link on {votes} vote(s): member re-found in "
            f"{refound:.3f} of {n_own} windows, stranger mislinked in {mislinked:.4f} "
            f"of {n_stranger}"
        )
    (model, model_ms), (peer, peer_ms) = rows
    print(
        f"ratios model/peer: AUC x{model['auc'] / peer['auc']:.2f}, "
        f"TPR@FPR1% x{model['tpr_at_fpr1'] / max(peer['tpr_at_fpr1'], 1e-9):.2f}, "
        f"cost per crop x{model_ms / peer_ms:.1f}"
    )


if __name__ == "__main__":
    main()
