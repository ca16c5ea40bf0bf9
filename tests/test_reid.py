"""Re-id embedder on real PETS09-S2L1 ground-truth crops: same person beats different people."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt
import pytest
from scipy.stats import mannwhitneyu
from storesense.vision.reid import ReidEmbedder, crop_boxes

FRAME_STRIDE = 25
LAST_FRAME = 400
MIN_FRAME_GAP = 50
MIN_BOX_HEIGHT = 60.0


@pytest.fixture(scope="module")
def embedder(reid_path: Path) -> ReidEmbedder:
    return ReidEmbedder(reid_path, intra_op_threads=1)


@pytest.fixture(scope="module")
def pets_crops(
    pets09: Path, embedder: ReidEmbedder
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Embeddings, identities and frame numbers of sampled ground-truth boxes."""
    gt = np.loadtxt(pets09 / "gt" / "gt.txt", delimiter=",")
    gt = gt[(gt[:, 6] == 1) & (gt[:, 5] >= MIN_BOX_HEIGHT)]
    wanted = set(range(1, LAST_FRAME + 1, FRAME_STRIDE))
    capture = cv2.VideoCapture(str(pets09 / "PETS09-S2L1.avi"))
    embeddings, ids, frames = [], [], []
    frame_number = 0
    while frame_number < LAST_FRAME:
        ok, image = capture.read()
        if not ok:
            break
        frame_number += 1
        if frame_number not in wanted:
            continue
        rows = gt[gt[:, 0] == frame_number]
        boxes = np.column_stack(
            [rows[:, 2], rows[:, 3], rows[:, 2] + rows[:, 4], rows[:, 3] + rows[:, 5]]
        )
        embeddings.append(embedder.embed(image, boxes))
        ids.extend(rows[:, 1].astype(np.int64))
        frames.extend([frame_number] * len(rows))
    capture.release()
    return np.concatenate(embeddings), np.asarray(ids), np.asarray(frames)


def test_embeddings_are_unit_length_and_shaped(
    pets_crops: tuple[npt.NDArray[np.float32], ...],
) -> None:
    embeddings, ids, _ = pets_crops
    assert embeddings.dtype == np.float32
    assert embeddings.shape == (len(ids), 256)
    np.testing.assert_allclose(np.linalg.norm(embeddings, axis=1), 1.0, atol=1e-5)
    assert len(ids) >= 80


def test_same_person_across_time_beats_different_people(
    pets_crops: tuple[npt.NDArray[np.float32], ...],
) -> None:
    embeddings, ids, frames = pets_crops
    similarity = embeddings @ embeddings.T
    upper = np.triu(np.ones_like(similarity, dtype=bool), k=1)
    far_apart = np.abs(frames[:, None] - frames[None, :]) >= MIN_FRAME_GAP
    same = similarity[upper & far_apart & (ids[:, None] == ids[None, :])]
    different = similarity[upper & (ids[:, None] != ids[None, :])]
    assert len(same) >= 30 and len(different) >= 300
    auc = mannwhitneyu(same, different).statistic / (len(same) * len(different))
    assert same.mean() > different.mean() + 0.1
    assert auc > 0.8, f"same-vs-different ROC AUC {auc:.3f}"


def test_embedding_is_deterministic_and_crop_based(reid_path: Path, pets09: Path) -> None:
    embedder = ReidEmbedder(reid_path, intra_op_threads=1)
    capture = cv2.VideoCapture(str(pets09 / "PETS09-S2L1.avi"))
    ok, image = capture.read()
    capture.release()
    assert ok
    boxes = np.array([[499, 158, 530, 233], [258, 219, 291, 308]], np.float32)
    together = embedder.embed(image, boxes)
    alone = embedder.embed_crops([crop_boxes(image, boxes[1:])[0].copy()])
    np.testing.assert_allclose(together[1], alone[0], atol=1e-5)
    assert float(together[0] @ together[1]) < 0.99


@pytest.mark.parametrize(
    "boxes",
    [np.array([[800, 600, 900, 700]]), np.array([[10, 10, 10, 50]]), np.array([[0, 0, np.nan, 5]])],
)
def test_boxes_without_pixels_are_rejected(
    embedder: ReidEmbedder, boxes: npt.NDArray[np.float64]
) -> None:
    image = np.zeros((576, 768, 3), np.uint8)
    with pytest.raises(ValueError):
        embedder.embed(image, boxes)


def test_no_boxes_give_an_empty_matrix(embedder: ReidEmbedder) -> None:
    assert embedder.embed(np.zeros((10, 10, 3), np.uint8), np.zeros((0, 4))).shape == (0, 256)
