"""Debug snapshots: every person is an irreversible mosaic, everything else is untouched."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt
import pytest
from storesense.vision.privacy import (
    block_size_for,
    encode_snapshot,
    enlarged_regions,
    pixelate_people,
)


@pytest.fixture(scope="module")
def pets_frame(pets09: Path) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.float32]]:
    capture = cv2.VideoCapture(str(pets09 / "PETS09-S2L1.avi"))
    ok, image = capture.read()
    capture.release()
    assert ok
    gt = np.loadtxt(pets09 / "gt" / "gt.txt", delimiter=",")
    rows = gt[gt[:, 0] == 1]
    boxes = np.column_stack(
        [rows[:, 2], rows[:, 3], rows[:, 2] + rows[:, 4], rows[:, 3] + rows[:, 5]]
    ).astype(np.float32)
    return np.asarray(image, np.uint8), boxes


def colour_changes(region: npt.NDArray[np.uint8], axis: int) -> int:
    """Most colour changes along any one row (axis=1) or column (axis=0)."""
    differs = np.any(np.diff(region.astype(np.int16), axis=axis) != 0, axis=2)
    return int(differs.sum(axis=axis).max())


@pytest.mark.parametrize("block", [8, 16, 24])
def test_people_become_coarse_mosaics_and_the_rest_is_untouched(
    pets_frame: tuple[npt.NDArray[np.uint8], npt.NDArray[np.float32]], block: int
) -> None:
    image, boxes = pets_frame
    original = image.copy()
    out = pixelate_people(image, boxes, block=block)
    np.testing.assert_array_equal(image, original)
    regions = enlarged_regions(boxes, image.shape)
    covered = np.zeros(image.shape[:2], bool)
    for x0, y0, x1, y1 in regions:
        covered[y0:y1, x0:x1] = True
    np.testing.assert_array_equal(out[~covered], image[~covered])
    assert len(boxes) >= 3
    for (x0, y0, x1, y1), box in zip(regions, boxes, strict=True):
        assert x0 <= box[0] and y0 <= box[1] and x1 >= box[2] and y1 >= box[3]
        if np.count_nonzero(covered[y0:y1, x0:x1]) != (y1 - y0) * (x1 - x0):
            continue
        overlapped = sum(
            1
            for other in regions
            if not (other[2] <= x0 or other[0] >= x1 or other[3] <= y0 or other[1] >= y1)
        )
        if overlapped > 1:
            continue  # overlapping mosaics are each coarse but the union is not one grid
        cell = block_size_for(int(y1 - y0), block)
        cells_x, cells_y = -(-(x1 - x0) // cell), -(-(y1 - y0) // cell)
        before, after = image[y0:y1, x0:x1], out[y0:y1, x0:x1]
        assert colour_changes(after, axis=1) <= cells_x - 1
        assert colour_changes(after, axis=0) <= cells_y - 1
        assert colour_changes(before, axis=1) > 3 * cells_x
        high_pass = cv2.Laplacian(cv2.cvtColor(after, cv2.COLOR_BGR2GRAY), cv2.CV_64F)
        inside_cells = np.abs(high_pass)[1:-1, 1:-1]
        assert np.median(inside_cells) == 0.0


def test_pixelation_is_irreversible_detail_is_gone(
    pets_frame: tuple[npt.NDArray[np.uint8], npt.NDArray[np.float32]],
) -> None:
    image, boxes = pets_frame
    out = pixelate_people(image, boxes[:1], block=16)
    again = pixelate_people(out, boxes[:1], block=16)
    np.testing.assert_array_equal(again, out)  # nothing left for a second pass to average
    x0, y0, x1, y1 = enlarged_regions(boxes[:1], image.shape)[0]
    gray_before = cv2.cvtColor(image[y0:y1, x0:x1], cv2.COLOR_BGR2GRAY).astype(np.float64)
    gray_after = cv2.cvtColor(out[y0:y1, x0:x1], cv2.COLOR_BGR2GRAY).astype(np.float64)
    cell = block_size_for(int(y1 - y0), 16)
    rows, cols = np.arange(y1 - y0) % cell, np.arange(x1 - x0) % cell
    interior = ((rows > 0) & (rows < cell - 1))[:, None] & ((cols > 0) & (cols < cell - 1))[None]
    interior[-1, :] = interior[:, -1] = False
    detail_after = cv2.Laplacian(gray_after, cv2.CV_64F)[interior]
    detail_before = cv2.Laplacian(gray_before, cv2.CV_64F)[interior]
    assert np.abs(detail_after).max() == 0.0 and np.abs(detail_before).mean() > 3.0


def test_near_people_get_coarser_cells() -> None:
    assert block_size_for(100, 16) == 16
    assert block_size_for(480, 16) == 40


def test_snapshot_jpeg_has_people_pixelated(
    pets_frame: tuple[npt.NDArray[np.uint8], npt.NDArray[np.float32]],
) -> None:
    image, boxes = pets_frame
    jpeg = encode_snapshot(image, boxes, block=16)
    decoded = np.asarray(cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR))
    assert decoded.shape == image.shape
    expected = pixelate_people(image, boxes, block=16)
    assert np.abs(decoded.astype(np.int16) - expected.astype(np.int16)).mean() < 6


@pytest.mark.parametrize(
    "boxes",
    [
        np.zeros((0, 4)),
        np.array([[-50, -50, 20, 30]]),
        np.array([[700, 500, 900, 700]]),
        np.array([[2000, 2000, 2100, 2100]]),
    ],
)
def test_boxes_at_or_beyond_the_border_are_handled(
    pets_frame: tuple[npt.NDArray[np.uint8], npt.NDArray[np.float32]],
    boxes: npt.NDArray[np.float64],
) -> None:
    image, _ = pets_frame
    out = pixelate_people(image, boxes)
    assert out.shape == image.shape and out.dtype == np.uint8


@pytest.mark.parametrize(
    ("image", "kwargs", "message"),
    [
        (np.zeros((10, 10), np.uint8), {}, "HxWx3 uint8"),
        (np.zeros((10, 10, 3), np.float32), {}, "HxWx3 uint8"),
        (np.zeros((10, 10, 3), np.uint8), {"block": 2}, "at least 4"),
        (np.zeros((10, 10, 3), np.uint8), {"margin": -0.1}, "margin"),
    ],
)
def test_bad_arguments_are_clear_errors(
    image: npt.NDArray[np.generic], kwargs: dict[str, float], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        pixelate_people(image, np.array([[1, 1, 5, 5]]), **kwargs)


def test_nan_boxes_are_refused() -> None:
    with pytest.raises(ValueError, match="finite"):
        pixelate_people(np.zeros((10, 10, 3), np.uint8), np.array([[np.nan, 1, 5, 5]]))
