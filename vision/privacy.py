"""Irreversible pixelation of people in a frame, for the only images that ever leave memory.

StoreSense never stores or serves camera frames. The one exception is a debug
snapshot an admin turns on explicitly, and every such snapshot goes through
:func:`pixelate_people` first: each person box, enlarged by ``margin``, is
replaced by a coarse mosaic of block averages. The mosaic keeps one colour per
block, so faces and clothing detail cannot be recovered from it.

Example:
    >>> import numpy as np
    >>> image = np.random.default_rng(0).integers(0, 256, (120, 160, 3), dtype=np.uint8)
    >>> out = pixelate_people(image, np.array([[40, 20, 80, 100]]), block=8)
    >>> colours = np.unique(out[30:90, 50:70].reshape(-1, 3), axis=0)
    >>> bool((out[:10] == image[:10]).all()), len(colours) < 40
    (True, True)
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import numpy.typing as npt

Image = npt.NDArray[np.uint8]

MAX_BLOCKS_ALONG_HEIGHT = 12
"""A tall (near) person still gets at most this many blocks from head to feet."""


def enlarged_regions(
    boxes: npt.ArrayLike, image_shape: tuple[int, ...], margin: float = 0.1
) -> npt.NDArray[np.int64]:
    """Integer ``x0, y0, x1, y1`` of each box grown by ``margin`` of its size per side, clipped.

    Boxes that fall entirely outside the image give an empty region (``x0 == x1``).
    """
    if margin < 0:
        raise ValueError(f"margin must be >= 0, got {margin}")
    xyxy = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    if not np.isfinite(xyxy).all():
        raise ValueError("boxes must be finite numbers")
    height, width = image_shape[:2]
    grow_x = (xyxy[:, 2] - xyxy[:, 0]) * margin
    grow_y = (xyxy[:, 3] - xyxy[:, 1]) * margin
    grown = np.stack(
        [
            np.floor(xyxy[:, 0] - grow_x),
            np.floor(xyxy[:, 1] - grow_y),
            np.ceil(xyxy[:, 2] + grow_x),
            np.ceil(xyxy[:, 3] + grow_y),
        ],
        axis=1,
    )
    grown[:, [0, 2]] = np.clip(grown[:, [0, 2]], 0, width)
    grown[:, [1, 3]] = np.clip(grown[:, [1, 3]], 0, height)
    grown[:, 2] = np.maximum(grown[:, 2], grown[:, 0])
    grown[:, 3] = np.maximum(grown[:, 3], grown[:, 1])
    return grown.astype(np.int64)


def block_size_for(region_height: int, block: int) -> int:
    """The mosaic block used for a region: ``block`` pixels, coarser for tall (near) people."""
    return max(block, math.ceil(region_height / MAX_BLOCKS_ALONG_HEIGHT))


def pixelate_people(
    image: Image, boxes: npt.ArrayLike, *, block: int = 16, margin: float = 0.1
) -> Image:
    """A copy of ``image`` with every person box (grown by ``margin``) replaced by a mosaic.

    ``block`` is the mosaic cell size in pixels (at least 4); a region taller
    than ``12 * block`` uses proportionally larger cells so nobody is ever
    rendered with more than 12 cells head to foot. Each cell holds the mean
    colour of the pixels it covers: the original detail is gone, not hidden.
    Overlapping boxes are each pixelated; pixels outside every region are
    returned unchanged. The input is never modified.
    """
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected an HxWx3 uint8 image, got {image.shape} {image.dtype}")
    if block < 4:
        raise ValueError(f"block must be at least 4 pixels, got {block}")
    out = image.copy()
    for x0, y0, x1, y1 in enlarged_regions(boxes, image.shape, margin):
        width, height = int(x1 - x0), int(y1 - y0)
        if width == 0 or height == 0:
            continue
        out[y0:y1, x0:x1] = _mosaic(out[y0:y1, x0:x1], block_size_for(height, block))
    return out


def _mosaic(region: Image, cell: int) -> Image:
    """Each ``cell``x``cell`` square (from the region's top-left; edges partial) → its mean."""
    height, width = region.shape[:2]
    row_starts, col_starts = np.arange(0, height, cell), np.arange(0, width, cell)
    sums = np.add.reduceat(
        np.add.reduceat(region.astype(np.float32), row_starts, axis=0), col_starts, axis=1
    )
    cell_heights = np.diff(np.append(row_starts, height))
    cell_widths = np.diff(np.append(col_starts, width))
    means = sums / (cell_heights[:, None, None] * cell_widths[None, :, None])
    coarse = np.clip(np.rint(means), 0, 255).astype(np.uint8)
    return np.repeat(np.repeat(coarse, cell_heights, axis=0), cell_widths, axis=1)


def encode_snapshot(
    image: Image, boxes: npt.ArrayLike, *, block: int = 16, quality: int = 80
) -> bytes:
    """JPEG bytes of a debug snapshot with every person pixelated (the only way to export one)."""
    if not 1 <= quality <= 100:
        raise ValueError(f"quality must be in [1, 100], got {quality}")
    ok, encoded = cv2.imencode(
        ".jpg", pixelate_people(image, boxes, block=block), [cv2.IMWRITE_JPEG_QUALITY, quality]
    )
    if not ok:
        raise ValueError("could not encode the snapshot as JPEG")
    return bytes(encoded.tobytes())
