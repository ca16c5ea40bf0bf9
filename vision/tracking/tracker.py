"""ByteTrack-family multi-object tracker (optional OC-SORT observation-centric re-update).

Each :meth:`Tracker.update` runs, over all tracks at once:

1. Kalman prediction to the new timestamp (any time step);
2. association of confirmed tracks (tracked and lost) with high-score detections;
3. association of still-unmatched, just-tracked tracks with low-score detections;
4. association of tentative tracks with the remaining high-score detections;
5. Kalman update of every matched track (with ``observation_recovery``, a track
   that was lost first re-runs the filter along a straight virtual path);
6. birth of tentative tracks, confirmation after ``min_hits`` matched updates,
   and removal of tracks unmatched for more than ``lost_buffer_seconds`` (with
   ``glimpse_hold``, unless weak leftover boxes still show the person where it vanished).

Example:
    >>> import numpy as np
    >>> from storesense.vision.detections import Detections
    >>> tracker = Tracker(TrackerConfig(min_hits=2))
    >>> for k in range(10):
    ...     box = np.array([[100.0 + 10 * k, 50.0, 140.0 + 10 * k, 150.0]])
    ...     tracks = tracker.update(Detections(box, np.array([0.9]), np.array([0])),
    ...                             timestamp=k * 0.1, frame_index=k + 1)
    >>> tracks.track_id.tolist(), [round(float(v), -1) for v in tracks.velocity[0]]
    ([1], [100.0, 0.0])
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt
from storesense.vision.detections import Detections, Tracks
from storesense.vision.tracking.config import TrackerConfig
from storesense.vision.tracking.kalman import cxcywh_to_xyxy, xyxy_to_cxcywh
from storesense.vision.tracking.matching import (
    box_areas,
    direction_consistency,
    intersection_matrix,
    iou_matrix,
    match,
)
from storesense.vision.tracking.track import TrackTable

IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

_MAX_RECOVERY_STEPS = 30
_MIN_DIRECTION_SPEED = 0.3
"""Tracks slower than this many box heights per second carry no direction."""
_GLIMPSE_COVER = 0.5
"""A glimpse covers at least this share of the smaller of the track's last box and itself;
a leftover box that much inside or around a matched box is (part of) that person."""
_EMPTY_IDS = np.zeros(0, np.int64)


class Tracker:
    """Follows people across the frames of ONE camera; ids are integers from 1.

    Call :meth:`update` once per frame with that frame's detections and capture
    time in seconds (timestamps must not go backwards). Only confirmed tracks matched
    at this update (or, with ``coast_seconds``, recently) are returned;
    ``Tracks.lost_ids`` lists ids dropped for good, ``Tracks.held_ids`` unreported ids whose
    person was glimpsed at this update.
    """

    def __init__(self, config: TrackerConfig | None = None) -> None:
        if config is not None and not isinstance(config, TrackerConfig):
            raise ValueError(f"config must be a TrackerConfig, got {type(config).__name__}")
        self.config = config or TrackerConfig()
        self._kalman = self.config.kalman()
        self.reset()

    def reset(self, first_id: int = 1) -> None:
        """Forget every track and the clock; the next confirmed track gets id ``first_id``
        (ids then count up from it: a camera whose runs must never repeat an id starts
        each run past the last one's, e.g. at :func:`run_first_track_id`).

        >>> tracker = Tracker()
        >>> tracker.reset(first_id=0)
        Traceback (most recent call last):
        ...
        ValueError: first_id must be an integer >= 1, got 0
        """
        if isinstance(first_id, bool) or not isinstance(first_id, int) or first_id < 1:
            raise ValueError(f"first_id must be an integer >= 1, got {first_id!r}")
        self._tracks = TrackTable()
        self._time: float | None = None
        self._next_id = first_id

    @property
    def active_count(self) -> int:
        """Tracks held (tentative, tracked and lost)."""
        return len(self._tracks)

    def held_boxes(self, timestamp: float) -> npt.NDArray[np.float32]:
        """xyxy boxes (N, 4) covering every held track (tentative, tracked and lost) both
        where it was last estimated and where it is predicted at ``timestamp``: the part
        of the frame where the tracker expects people. Changes nothing."""
        tracks = self._tracks
        if not len(tracks):
            return np.zeros((0, 4), np.float32)
        dt = 0.0 if self._time is None else max(0.0, float(timestamp) - self._time)
        now = cxcywh_to_xyxy(tracks.mean[:, :4])
        ahead = cxcywh_to_xyxy(tracks.mean[:, :4] + dt * tracks.mean[:, 4:8])
        return np.concatenate(
            [np.minimum(now[:, :2], ahead[:, :2]), np.maximum(now[:, 2:], ahead[:, 2:])], axis=1
        ).astype(np.float32)

    def update(self, detections: Detections, timestamp: float, frame_index: int = 0) -> Tracks:
        """Advance to ``timestamp`` (seconds) with this frame's ``detections``."""
        t = float(timestamp)
        if not math.isfinite(t):
            raise ValueError(f"timestamp must be a finite number of seconds, got {timestamp}")
        if self._time is not None and t < self._time:
            raise ValueError(
                f"timestamp went backwards ({t} s after {self._time} s); "
                "call reset() when a stream restarts"
            )
        dt = 0.0 if self._time is None else t - self._time
        self._time = t
        tracks = self._tracks
        if len(tracks):
            self._kalman.predict(tracks.mean, tracks.covariance, dt)

        det_xyxy, det_score = _usable(detections, self.config.low_score)
        matched_tracks, matched_dets, det_free = self._associate(det_xyxy, det_score)
        det_boxes = xyxy_to_cxcywh(det_xyxy)
        if len(tracks):
            self._update_matched(
                matched_tracks, det_boxes[matched_dets], det_score[matched_dets], t
            )
        lost_ids = self._remove_stale(t)
        if self.config.glimpse_hold:
            lost_ids = np.concatenate([lost_ids, self._reappeared(det_xyxy, det_score, det_free)])
        self._birth(det_boxes, det_score, det_free, t)
        return self._report(t, frame_index, lost_ids)

    def _associate(
        self, det_xyxy: npt.NDArray[np.float32], det_score: npt.NDArray[np.float32]
    ) -> tuple[IntArray, IntArray, BoolArray]:
        """Matched (track row, detection row) pairs of the three stages and the free detections."""
        cfg = self.config
        tracks = self._tracks
        det_free = np.ones(len(det_score), np.bool_)
        if len(tracks) == 0 or len(det_score) == 0:
            return _EMPTY_IDS, _EMPTY_IDS, det_free
        mean = tracks.mean
        predicted = cxcywh_to_xyxy(mean)
        predicted_area = mean[:, 2] * mean[:, 3]
        det_area = box_areas(det_xyxy)
        high = det_score >= cfg.high_score
        confirmed = tracks.confirmed & ~tracks.held
        track_free = np.ones(len(tracks), np.bool_)
        pairs_t: list[IntArray] = []
        pairs_d: list[IntArray] = []

        def stage(
            track_mask: BoolArray, det_mask: BoolArray, min_iou: float, fuse: bool, direction: bool
        ) -> None:
            track_rows = track_mask.nonzero()[0]
            det_rows = det_mask.nonzero()[0]
            if len(track_rows) == 0 or len(det_rows) == 0:
                return
            iou = iou_matrix(
                predicted[track_rows],
                det_xyxy[det_rows],
                predicted_area[track_rows],
                det_area[det_rows],
            )
            similarity = iou * det_score[det_rows] if fuse else iou
            if direction:
                det_centre = 0.5 * (det_xyxy[det_rows, :2] + det_xyxy[det_rows, 2:])
                similarity = similarity + cfg.direction_weight * direction_consistency(
                    mean[track_rows, 4:6],
                    tracks.last_box[track_rows, :2],
                    det_centre.astype(np.float64),
                    _MIN_DIRECTION_SPEED * mean[track_rows, 3],
                )
            rows, cols = match(similarity, min_iou, iou)
            if len(rows):
                matched_tracks, matched_dets = track_rows[rows], det_rows[cols]
                pairs_t.append(matched_tracks)
                pairs_d.append(matched_dets)
                track_free[matched_tracks] = False
                det_free[matched_dets] = False

        stage(confirmed, high, cfg.match_iou, cfg.fuse_score, cfg.direction_weight > 0)
        stage(confirmed & track_free & (tracks.missed == 0), ~high, cfg.low_match_iou, False, False)
        stage(~tracks.confirmed, high & det_free, cfg.tentative_match_iou, False, False)
        if cfg.glimpse_hold:
            self._glimpses(det_xyxy, det_score, det_area, track_free, det_free)
        if not pairs_t:
            return _EMPTY_IDS, _EMPTY_IDS, det_free
        if len(pairs_t) == 1:
            return pairs_t[0], pairs_d[0], det_free
        return np.concatenate(pairs_t), np.concatenate(pairs_d), det_free

    def _glimpses(
        self,
        det_xyxy: npt.NDArray[np.float32],
        det_score: npt.NDArray[np.float32],
        det_area: npt.NDArray[np.float64],
        track_free: BoolArray,
        det_free: BoolArray,
    ) -> None:
        """Stamp ``last_glimpse`` on unmatched confirmed tracks that a leftover weak box
        still shows where they were last seen (one box per track); those boxes are used up."""
        tracks = self._tracks
        track_rows = (track_free & tracks.confirmed).nonzero()[0]
        det_rows = (det_free & (det_score < self.config.new_track_score)).nonzero()[0]
        if len(track_rows) == 0 or len(det_rows) == 0:
            return
        last = tracks.last_box[track_rows]
        overlap = intersection_matrix(cxcywh_to_xyxy(last), det_xyxy[det_rows])
        cover = overlap / np.minimum((last[:, 2] * last[:, 3])[:, None], det_area[det_rows])
        near: BoolArray = np.asarray((cover >= _GLIMPSE_COVER).any(axis=0))
        used = (~det_free).nonzero()[0]
        if len(used) and near.any():
            near[near] = ~_same_person(det_xyxy[det_rows[near]], det_xyxy[used]).any(axis=1)
        if not near.any():
            return
        det_rows, cover = det_rows[near], cover[:, near]
        rows, cols = match(cover, _GLIMPSE_COVER, cover)
        if len(rows):
            tracks.last_glimpse[track_rows[rows]] = self._time
            det_free[det_rows[cols]] = False

    def _reappeared(
        self,
        det_xyxy: npt.NDArray[np.float32],
        det_score: npt.NDArray[np.float32],
        det_free: BoolArray,
    ) -> IntArray:
        """Drop held tracks where a new track starts now (the person is back, under a new
        id: ``glimpse_hold`` never re-matches a held track); their ids."""
        tracks = self._tracks
        births = (det_free & (det_score >= self.config.new_track_score)).nonzero()[0]
        if not tracks.held.any() or len(births) == 0:
            return _EMPTY_IDS
        rows = tracks.held.nonzero()[0]
        last = tracks.last_box[rows]
        overlap = intersection_matrix(cxcywh_to_xyxy(last), det_xyxy[births]).max(axis=1)
        gone = np.zeros(len(tracks), np.bool_)
        gone[rows[overlap >= _GLIMPSE_COVER * last[:, 2] * last[:, 3]]] = True
        if not gone.any():
            return _EMPTY_IDS
        ids = tracks.track_id[gone]
        tracks.keep(~gone)
        return ids

    def _update_matched(
        self,
        rows: IntArray,
        boxes: npt.NDArray[np.float64],
        scores: npt.NDArray[np.float32],
        t: float,
    ) -> None:
        """Kalman update of matched rows; hit/miss counters of every row."""
        tracks = self._tracks
        tracks.missed += 1
        matched = np.zeros(len(tracks), np.bool_)
        matched[rows] = True
        tracks.hits = (tracks.hits + 1) * matched
        if len(rows):
            if self.config.observation_recovery:
                for k in (tracks.missed[rows] > 1).nonzero()[0]:
                    self._recover(int(rows[k]), boxes[k], t)
            mean, covariance = self._kalman.update(
                tracks.mean[rows], tracks.covariance[rows], boxes
            )
            tracks.mean[rows] = mean
            tracks.covariance[rows] = covariance
            if self.config.observation_recovery:
                tracks.saved_mean[rows] = mean
                tracks.saved_covariance[rows] = covariance
            tracks.last_box[rows] = boxes
            tracks.last_score[rows] = scores
            tracks.last_seen[rows] = t
            tracks.last_glimpse[rows] = t
            tracks.missed[rows] = 0
        # A person who just vanished is more likely hidden than shrinking: freeze the size.
        tracks.mean[tracks.missed == 1, 6:] = 0.0

    def _recover(self, row: int, box: npt.NDArray[np.float64], t: float) -> None:
        """Re-run the filter from the last match along a straight path to ``box``.

        ``missed`` already counts this update, so the gap had ``missed - 1`` frames.
        """
        tracks = self._tracks
        gap = t - float(tracks.last_seen[row])
        steps = min(int(tracks.missed[row]) - 1, _MAX_RECOVERY_STEPS)
        if gap <= 0.0 or steps < 1:
            return
        step_dt = gap / (steps + 1)
        start = tracks.last_box[row]
        mean = tracks.saved_mean[row : row + 1].copy()
        covariance = tracks.saved_covariance[row : row + 1].copy()
        for i in range(1, steps + 1):
            virtual = (start + (box - start) * (i / (steps + 1)))[None, :]
            self._kalman.predict(mean, covariance, step_dt)
            mean, covariance = self._kalman.update(mean, covariance, virtual)
        self._kalman.predict(mean, covariance, step_dt)
        tracks.mean[row] = mean[0]
        tracks.covariance[row] = covariance[0]

    def _remove_stale(self, t: float) -> IntArray:
        """Drop unmatched tentative tracks and lost tracks past the buffer; their ids."""
        tracks = self._tracks
        if len(tracks) == 0:
            return _EMPTY_IDS
        buffer = self.config.lost_buffer_seconds
        stale = (tracks.missed > 0) & (~tracks.confirmed | (t - tracks.last_seen > buffer))
        if self.config.glimpse_hold:
            glimpsed = tracks.confirmed & (t - tracks.last_glimpse <= buffer)
            new = stale & glimpsed & ~tracks.held
            stale &= ~glimpsed
            if new.any():
                stale |= self._superseded(new)
                tracks.held |= new
        if not stale.any():
            return _EMPTY_IDS
        lost_ids = tracks.track_id[stale]
        tracks.keep(~stale)
        return lost_ids[lost_ids > 0]

    def _superseded(self, new: BoolArray) -> BoolArray:
        """Held tracks whose spot a track held from now (seen there later) takes over: one
        person hidden there, not one per id it had."""
        tracks = self._tracks
        old = tracks.held.nonzero()[0]
        result = np.zeros(len(tracks), np.bool_)
        if len(old) == 0:
            return result
        old_box, new_box = tracks.last_box[old], tracks.last_box[new]
        overlap = intersection_matrix(cxcywh_to_xyxy(old_box), cxcywh_to_xyxy(new_box))
        smaller = np.minimum(
            (old_box[:, 2] * old_box[:, 3])[:, None], new_box[:, 2] * new_box[:, 3]
        )
        result[old[(overlap >= _GLIMPSE_COVER * smaller).any(axis=1)]] = True
        return result

    def _birth(
        self,
        boxes: npt.NDArray[np.float64],
        scores: npt.NDArray[np.float32],
        det_free: BoolArray,
        t: float,
    ) -> None:
        """Confirm tentative tracks with enough hits; start tracks from free high detections."""
        cfg = self.config
        tracks = self._tracks
        if len(tracks):
            confirm = ~tracks.confirmed & (tracks.hits >= cfg.min_hits)
            if confirm.any():
                tracks.track_id[confirm] = self._new_ids(int(confirm.sum()))
        candidates = (det_free & (scores >= cfg.new_track_score)).nonzero()[0]
        if len(candidates) == 0:
            return
        new_boxes = boxes[candidates]
        mean, covariance = self._kalman.initiate(new_boxes)
        n = len(candidates)
        if cfg.min_hits <= 1:
            ids = self._new_ids(n)
        else:
            ids = np.zeros(n, np.int64)
            sure = scores[candidates] >= cfg.confirm_score
            if sure.any():
                ids[sure] = self._new_ids(int(sure.sum()))
        tracks.append(
            TrackTable(
                mean=mean,
                covariance=covariance,
                track_id=ids,
                hits=np.ones(n, np.int64),
                missed=np.zeros(n, np.int64),
                last_seen=np.full(n, t),
                last_glimpse=np.full(n, t),
                held=np.zeros(n, np.bool_),
                last_box=new_boxes,
                last_score=scores[candidates].astype(np.float64),
                saved_mean=mean.copy(),
                saved_covariance=covariance.copy(),
            )
        )

    def _new_ids(self, count: int) -> IntArray:
        ids = np.arange(self._next_id, self._next_id + count, dtype=np.int64)
        self._next_id += count
        return ids

    def _report(self, t: float, frame_index: int, lost_ids: IntArray) -> Tracks:
        tracks = self._tracks
        coast = self.config.coast_seconds
        if coast > 0.0:
            recent = (t - tracks.last_seen) <= coast
            shown = (tracks.confirmed & ~tracks.held & recent).nonzero()[0]
        else:
            shown = (tracks.confirmed & (tracks.missed == 0)).nonzero()[0]
        mean = tracks.mean[shown]
        if self.config.output_box == "detection":
            fresh = (tracks.missed[shown] == 0)[:, None]
            source = np.where(fresh, tracks.last_box[shown], mean[:, :4])
        else:
            source = mean
        velocity = mean[:, 4:6]
        velocity[:, 1] += 0.5 * mean[:, 7]
        return Tracks(
            cxcywh_to_xyxy(source).astype(np.float32),
            tracks.last_score[shown].astype(np.float32),
            tracks.track_id[shown],
            velocity.astype(np.float32),
            timestamp=t,
            frame_index=frame_index,
            lost_ids=lost_ids,
            held_ids=tracks.track_id[tracks.held & (tracks.last_glimpse == t)],
        )


def _same_person(a: npt.NDArray[Any], b: npt.NDArray[Any]) -> npt.NDArray[np.bool_]:
    """(len(a), len(b)): box a is (part of) the person of box b: it shares at least
    :data:`_GLIMPSE_COVER` of the narrower width and the two stack into at most twice the
    taller one (a head and shoulders above a sign, legs below it)."""
    width_a, width_b = a[:, 2] - a[:, 0], b[:, 2] - b[:, 0]
    shared = np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0])
    column = shared >= _GLIMPSE_COVER * np.minimum(width_a[:, None], width_b[None, :])
    height_a, height_b = a[:, 3] - a[:, 1], b[:, 3] - b[:, 1]
    span = np.maximum(a[:, None, 3], b[None, :, 3]) - np.minimum(a[:, None, 1], b[None, :, 1])
    result: npt.NDArray[np.bool_] = column & (
        span <= 2.0 * np.maximum(height_a[:, None], height_b[None, :])
    )
    return result


def _usable(
    detections: Detections, low_score: float
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """Boxes and scores worth tracking: finite, positive size, score at least ``low_score``."""
    if not isinstance(detections, Detections):
        raise ValueError(f"detections must be a Detections, got {type(detections).__name__}")
    xyxy = detections.xyxy
    score = detections.confidence
    size = xyxy[:, 2:] - xyxy[:, :2]
    # NaN fails both comparisons; an infinite corner makes the size infinite or NaN.
    keep = ((size > 0.0) & (size < np.inf)).all(axis=1) & (score >= low_score)
    if keep.all():
        return xyxy, score
    return xyxy[keep], score[keep]


def run_first_track_id(started_at: float) -> int:
    """The first track id of a camera run started at ``started_at`` (Unix seconds): one
    past the start in milliseconds, so the ids of a live camera's runs (reconnects, restarts of the
    service) never repeat, as long as it confirms fewer than 1,000 tracks a second.

    >>> run_first_track_id(1_795_000_000.25)
    1795000000251
    """
    if not (math.isfinite(started_at) and started_at >= 0):
        raise ValueError(f"started_at must be a finite number of seconds >= 0, got {started_at}")
    return int(started_at * 1000) + 1
