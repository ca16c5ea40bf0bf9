"""Detection masks: drop detections on mannequins or posters, and find candidates.

Masks are image polygons of a camera (``cameras[].masks`` in the layout). A
detection whose anchor (bottom-centre by default) lies in a mask is removed
before tracking, as Frigate's object masks do. :class:`StaticDetectionFinder`
reports person detections that stayed put for a long time: candidate masks.

Example:
    >>> import numpy as np
    >>> from storesense.vision.detections import Detections
    >>> found = Detections(np.array([[0, 0, 10, 20], [50, 0, 60, 20]]),
    ...                    np.array([0.9, 0.8]), np.array([0, 0]))
    >>> kept = apply_masks(found, [[[0, 10], [30, 10], [30, 30], [0, 30]]])
    >>> kept.xyxy.tolist()
    [[50.0, 0.0, 60.0, 20.0]]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from storesense.vision.detections import Detections
from storesense.zones.config import Anchor
from storesense.zones.geometry import PolygonSet, anchor_points

FloatArray = npt.NDArray[np.float64]


class MaskSet:
    """Precomputed masks of one camera; :meth:`apply` filters a frame's detections."""

    def __init__(self, masks: Sequence[npt.ArrayLike], anchor: Anchor = Anchor.BOTTOM_CENTER):
        self._polygons = PolygonSet(masks)
        self.anchor = anchor

    def __len__(self) -> int:
        return self._polygons.count

    def apply(self, detections: Detections) -> Detections:
        if self._polygons.count == 0 or len(detections) == 0:
            return detections
        masked: npt.NDArray[np.bool_] = np.asarray(
            self._polygons.contains(anchor_points(detections.xyxy, self.anchor)).any(axis=1)
        )
        return detections[~masked] if masked.any() else detections


def apply_masks(detections: Detections, masks: Sequence[npt.ArrayLike] | MaskSet) -> Detections:
    """Detections whose bottom-centre is outside every mask polygon."""
    mask_set = masks if isinstance(masks, MaskSet) else MaskSet(masks)
    return mask_set.apply(detections)


@dataclass(frozen=True)
class StaticCandidate:
    """A detection that barely moved: a candidate mask."""

    box: tuple[float, float, float, float]
    first_seen: float
    last_seen: float
    frames: int
    seen_fraction: float
    """Share of the frames between first and last sighting in which it was detected."""

    @property
    def seconds(self) -> float:
        return self.last_seen - self.first_seen

    def polygon(self, margin_px: float = 4.0) -> list[list[float]]:
        """The box grown by ``margin_px``, as a layout ``masks`` polygon."""
        x1, y1, x2, y2 = self.box
        x1, y1, x2, y2 = x1 - margin_px, y1 - margin_px, x2 + margin_px, y2 + margin_px
        return [
            [round(x1, 1), round(y1, 1)],
            [round(x2, 1), round(y1, 1)],
            [round(x2, 1), round(y2, 1)],
            [round(x1, 1), round(y2, 1)],
        ]


def _iou(boxes: FloatArray, others: FloatArray) -> FloatArray:
    top_left = np.maximum(boxes[:, None, :2], others[None, :, :2])
    bottom_right = np.minimum(boxes[:, None, 2:], others[None, :, 2:])
    overlap = np.clip(bottom_right - top_left, 0, None).prod(axis=2)
    area_a = (boxes[:, 2:] - boxes[:, :2]).prod(axis=1)
    area_b = (others[:, 2:] - others[:, :2]).prod(axis=1)
    union = area_a[:, None] + area_b[None, :] - overlap
    return np.where(union > 0, overlap / np.where(union > 0, union, 1), 0.0)


class StaticDetectionFinder:
    """Accumulates detections; reports those that stayed in place a long time.

    A detection joins a candidate when its box overlaps the candidate's with
    IoU ≥ ``min_iou``; the candidate's box is the running mean of its members.
    """

    def __init__(
        self, *, min_iou: float = 0.8, min_seconds: float = 60.0, min_seen_fraction: float = 0.8
    ) -> None:
        if not 0 < min_iou <= 1:
            raise ValueError(f"min_iou must be in (0, 1], got {min_iou}")
        if min_seconds <= 0:
            raise ValueError(f"min_seconds must be > 0, got {min_seconds}")
        if not 0 < min_seen_fraction <= 1:
            raise ValueError(f"min_seen_fraction must be in (0, 1], got {min_seen_fraction}")
        self.min_iou = min_iou
        self.min_seconds = min_seconds
        self.min_seen_fraction = min_seen_fraction
        self._boxes = np.zeros((0, 4), np.float64)
        self._first = np.zeros(0, np.float64)
        self._last = np.zeros(0, np.float64)
        self._hits = np.zeros(0, np.int64)
        self._frame_times: list[float] = []

    def update(self, detections: Detections, timestamp: float) -> None:
        self._frame_times.append(float(timestamp))
        boxes = detections.xyxy.astype(np.float64)
        if len(boxes) == 0:
            return
        unmatched = np.ones(len(boxes), np.bool_)
        if len(self._boxes):
            iou = _iou(boxes, self._boxes)
            best = iou.argmax(axis=1)
            matched = iou[np.arange(len(boxes)), best] >= self.min_iou
            for row in np.flatnonzero(matched).tolist():
                col = int(best[row])
                if self._last[col] == timestamp:
                    continue
                hits = self._hits[col]
                self._boxes[col] = (self._boxes[col] * hits + boxes[row]) / (hits + 1)
                self._hits[col] = hits + 1
                self._last[col] = timestamp
                unmatched[row] = False
        fresh = boxes[unmatched]
        self._boxes = np.concatenate([self._boxes, fresh])
        self._first = np.concatenate([self._first, np.full(len(fresh), timestamp)])
        self._last = np.concatenate([self._last, np.full(len(fresh), timestamp)])
        self._hits = np.concatenate([self._hits, np.ones(len(fresh), np.int64)])

    def candidates(self) -> list[StaticCandidate]:
        """Candidates seen for at least ``min_seconds`` in most frames of that span."""
        times = np.asarray(self._frame_times)
        found = []
        for i in np.flatnonzero(self._last - self._first >= self.min_seconds).tolist():
            span_frames = int(((times >= self._first[i]) & (times <= self._last[i])).sum())
            fraction = float(self._hits[i]) / max(span_frames, 1)
            if fraction >= self.min_seen_fraction:
                x1, y1, x2, y2 = (float(v) for v in self._boxes[i])
                found.append(
                    StaticCandidate(
                        (x1, y1, x2, y2),
                        float(self._first[i]),
                        float(self._last[i]),
                        int(self._hits[i]),
                        fraction,
                    )
                )
        return sorted(found, key=lambda c: -c.seconds)
