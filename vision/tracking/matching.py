"""Box overlap and gated one-to-one assignment.

Example:
    >>> import numpy as np
    >>> tracks = np.array([[0, 0, 10, 10], [20, 0, 30, 10]], np.float64)
    >>> boxes = np.array([[21, 0, 31, 10], [1, 0, 11, 10]], np.float64)
    >>> rows, cols = match(iou_matrix(tracks, boxes), min_iou=0.3)
    >>> rows.tolist(), cols.tolist()
    ([0, 1], [1, 0])
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from scipy.optimize import linear_sum_assignment

IntArray = npt.NDArray[np.int64]
Array = npt.NDArray[np.float64]

_EMPTY = np.zeros(0, np.int64)


def box_areas(boxes: npt.NDArray[np.floating]) -> Array:
    """Area of each ``xyxy`` box, ``(N,)``."""
    return (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])


def intersection_matrix(
    boxes_a: npt.NDArray[np.floating], boxes_b: npt.NDArray[np.floating]
) -> Array:
    """Intersection area of every ``xyxy`` box in ``a`` with every one in ``b``: ``(A, B)``."""
    wh = np.minimum(boxes_a[:, None, 2:], boxes_b[:, 2:])
    wh -= np.maximum(boxes_a[:, None, :2], boxes_b[:, :2])
    np.maximum(wh, 0.0, out=wh)
    result: Array = wh[:, :, 0] * wh[:, :, 1]
    return result


def mutual_cover(boxes_a: npt.NDArray[np.floating], boxes_b: npt.NDArray[np.floating]) -> Array:
    """``(A, B)``: the smaller of the share of box ``a`` inside box ``b`` and of ``b`` inside
    ``a``; two boxes each at least half inside the other have a mutual cover of 0.5 or more.

    >>> import numpy as np
    >>> mutual_cover(np.array([[0.0, 0, 10, 10]]), np.array([[0.0, 0, 10, 20], [5, 0, 15, 10]]))
    array([[0.5, 0.5]])
    """
    intersection = intersection_matrix(boxes_a, boxes_b)
    area_a = np.maximum(box_areas(boxes_a), 1e-9)[:, None]
    area_b = np.maximum(box_areas(boxes_b), 1e-9)[None, :]
    result: Array = np.minimum(intersection / area_a, intersection / area_b)
    return result


def iou_matrix(
    boxes_a: npt.NDArray[np.floating],
    boxes_b: npt.NDArray[np.floating],
    area_a: Array | None = None,
    area_b: Array | None = None,
) -> Array:
    """Intersection over union of every ``xyxy`` box in ``a`` with every one in ``b``: ``(A, B)``.

    Pass ``area_a``/``area_b`` (from :func:`box_areas`) when they are already known.
    """
    intersection = intersection_matrix(boxes_a, boxes_b)
    if area_a is None:
        area_a = box_areas(boxes_a)
    if area_b is None:
        area_b = box_areas(boxes_b)
    union = area_a[:, None] + area_b
    union -= intersection
    np.maximum(union, 1e-9, out=union)
    intersection /= union
    return intersection


def match(
    similarity: Array, min_iou: float, gate: Array | None = None
) -> tuple[IntArray, IntArray]:
    """Rows and columns paired to maximise total ``similarity``, keeping pairs ``>= min_iou``.

    ``gate`` (same shape, default ``similarity``) is what ``min_iou`` applies to, so a
    bonus added to the IoU (direction consistency) never opens the gate by itself.
    Pairs below the gate are treated as impossible before solving, so a weak pair
    never displaces a strong one.
    """
    if similarity.size == 0:
        return _EMPTY, _EMPTY
    allowed = (similarity if gate is None else gate) >= min_iou
    gated = np.where(allowed, np.maximum(similarity, 1e-6), 0.0)
    rows, cols = linear_sum_assignment(gated, maximize=True)
    keep = gated[rows, cols] > 0.0
    return rows[keep], cols[keep]


def direction_consistency(
    track_velocity: Array, track_centre: Array, det_centre: Array, min_speed: Array
) -> Array:
    """OC-SORT's velocity-direction term: cosine between each track's velocity and the
    direction from its last observed centre to each detection, ``(T, D)`` in ``[-1, 1]``;
    0 for tracks slower than ``min_speed`` (standing people have no direction).
    """
    speed = np.sqrt((track_velocity**2).sum(axis=1))
    moving = speed > min_speed
    unit = np.zeros_like(track_velocity)
    unit[moving] = track_velocity[moving] / speed[moving, None]
    step = det_centre[None, :, :] - track_centre[:, None, :]
    length = np.sqrt((step**2).sum(axis=2))
    np.maximum(length, 1e-9, out=length)
    cosine = (step * unit[:, None, :]).sum(axis=2) / length
    return cosine
