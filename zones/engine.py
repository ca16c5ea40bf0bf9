"""Per-camera zone and line events from confirmed tracks.

:class:`ZoneEngine` turns each frame's :class:`~storesense.vision.detections.Tracks`
into :class:`~storesense.zones.events.Event` objects: ``zone_enter``,
``zone_exit`` (with ``dwell_seconds``, and ``distance_m`` on cameras with a floor
homography), ``line_cross`` (``direction`` in/out) and ``approaching`` (``eta_seconds``).
State lives in per-track-slot numpy arrays, so one frame costs a fixed handful of
vector operations whatever the number of zones and lines; those operations only find
the few (track, zone) and (track, line) cells that changed or wait out a hysteresis,
and only those cells are stepped one by one (Python objects are built only for events).

Example:
    >>> import numpy as np
    >>> from storesense.vision.detections import Tracks
    >>> from storesense.zones.config import StoreLayout
    >>> layout = StoreLayout.model_validate({
    ...     "store": {"id": "s"}, "cameras": [{"id": "c"}],
    ...     "zones": [{"id": "z", "camera": "c", "polygon": [[0, 0], [10, 0], [10, 10], [0, 10]]}],
    ...     "lines": []})
    >>> engine = ZoneEngine(layout, "c")
    >>> def at(x, t):
    ...     return Tracks(np.array([[x - 1, 0, x + 1, 5]]), np.array([0.9]), np.array([1]),
    ...                   np.zeros((1, 2)), timestamp=t)
    >>> [e.type.value for e in engine.update(at(5, 0.0))], engine.occupancy()
    (['zone_enter'], {'z': 1})
    >>> engine.update(at(50, 2.0)), engine.occupancy()  # out at once; the exit event waits
    ([], {'z': 0})
    >>> [(e.type.value, e.attributes) for e in engine.update(at(50, 2.5))]  # 0.5 s outside
    [('zone_exit', {'dwell_seconds': 2.0})]
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
from storesense.vision.detections import Tracks
from storesense.vision.tracking.matching import box_areas, intersection_matrix, mutual_cover
from storesense.zones.amodal import AmodalBoxes
from storesense.zones.config import ANCHOR_ORDER, StoreLayout
from storesense.zones.events import Event, EventType
from storesense.zones.geometry import LineSet, PolygonSet

FloatArray = npt.NDArray[np.float64]

# xyxy @ _ANCHOR_MATRIX → (N, 6): bottom-centre, centre, top-centre (ANCHOR_ORDER).
_ANCHOR_MATRIX = np.array(
    [
        [0.5, 0.0, 0.5, 0.0, 0.5, 0.0],
        [0.0, 0.0, 0.0, 0.5, 0.0, 1.0],
        [0.5, 0.0, 0.5, 0.0, 0.5, 0.0],
        [0.0, 1.0, 0.0, 0.5, 0.0, 0.0],
    ]
)
STALE_CHECK_SECONDS = 0.25
APPROACH_CHECK_SECONDS = 0.5
"""Approach predictions are re-evaluated at most this often (frame clock)."""

MIN_APPROACH_SPEED_PX_S = 10.0
"""Slower floor points (standing, box jitter) never predict an approach."""

OCCLUDED_SHARE = 0.5
"""A hidden track whose last box is at least this much inside a visible track's box is
behind that person (more than half of it would be out of sight). Two boxes each at least
this much inside the other are one person's box reported twice."""

EDGE_MARGIN = 0.25
"""A box within this fraction of its width of the picture's edge may be walking out of it."""


class ZoneEngine:
    """Zone and line events for one camera of a store layout.

    ``time_origin`` (Unix seconds) is added to the frame clock; by default the
    camera's ``start_time`` or 0. ``run_id`` goes into every event id so two
    runs whose track ids restart do not collide; a replay with the same
    ``run_id`` reproduces the same ids.

    **Re-link** (track fragmentation): when the tracker loses a person for a
    moment and then reports them under a new id, the new track takes over the
    old one's zone and line state instead of exiting and re-entering. A new id
    re-links to a track unseen for at most ``relink_seconds`` whose last floor
    point lies within ``relink_distance`` × the new box's height of the new
    floor point (the nearest such track). The visit keeps its entry time and its
    events carry the new id from then on; a line crossed during the gap counts
    once. ``relink_seconds=0`` turns it off. Both default to the camera's
    ``relink_seconds`` and ``relink_distance`` in the layout.

    **Occlusion** (``occlusion_aware``, the camera's setting, on by default): a track the
    tracker no longer sees (hidden behind someone) is not taken out of its zones: for up
    to ``lost_after_seconds`` it is placed where its last floor point and velocity say it
    is now, and it keeps counting in :meth:`occupancy` while that point is inside; one whose
    last box is mostly inside the box of a person in view (hidden behind them) also counts
    while the point where it vanished is inside (it may have stopped behind them: its own
    velocity from before the occlusion is a guess, the occluder is evidence). A track the
    tracker lists in ``Tracks.held_ids`` (its person still glimpsed where they vanished, see
    ``TrackerConfig.glimpse_hold``: behind a sign or a shelf end) counts the same way, and its
    ``lost_after_seconds`` run from the last glimpse instead of the last sighting. When
    it never comes back, its visit ends when that predicted point left the zone (or when
    the track is closed). Only a track once seen apart from every other is held: one whose
    box, in every frame it was seen, and another track's box each lay at least
    :data:`OCCLUDED_SHARE` inside the other was never more than a second box on that person
    (a fragment of its track), not a second person hidden behind them. A re-link looks for
    the old track where it should be by now (last point + velocity x gap), and a crossing is
    decided by the straight path from the last sighting to the new one: the motion across
    the gap.

    **Line hysteresis** (each line's ``depth``, a fraction of the person's box height,
    default :data:`~storesense.zones.config.LINE_DEPTH`, the detector's anchor noise): a
    crossing is confirmed only once the anchor has also been at least that far beyond the
    line, so a person walking along a line, whose feet wander a few pixels either side of
    it for longer than ``min_side_seconds``, crosses nothing; the band scales with the
    person (near or far, any resolution). A box shorter than it was when last seen deep
    on its side (legs hidden behind someone: its bottom edge rises though the person does
    not move) widens the band by the difference, so an occlusion is not a crossing either.
    The crossing keeps the time of the first side change; a track that vanishes on the new
    side still counts (as with ``min_side_seconds``). It only ever removes in/out pairs
    (net flow is unchanged).
    ``line_depth`` overrides every line's ``depth`` (0: every side change counts).

    **Metres**: when the camera has a ``homography``, each track's feet are mapped to
    the floor every frame and ``zone_exit`` events carry ``distance_m``, the floor
    distance walked during the visit (over the same interval as ``dwell_seconds``).
    """

    # Per-track-slot state, grown by _grow.
    _track_of: npt.NDArray[np.int64]
    _last_seen: FloatArray
    _missed_at: FloatArray
    _glimpsed_at: FloatArray
    _prev: FloatArray
    _inside: npt.NDArray[np.bool_]
    _reported: npt.NDArray[np.bool_]
    _zone_pending: FloatArray
    _entered_at: FloatArray
    _approach_sent: npt.NDArray[np.bool_]
    _line_state: FloatArray
    _side: FloatArray
    _line_pending: FloatArray
    _line_pending_at: FloatArray
    _line_watch: FloatArray
    _floor_prev: FloatArray
    _velocity: FloatArray
    _box: FloatArray
    _hidden_in: npt.NDArray[np.bool_]
    _hidden_out_at: FloatArray
    _seen_apart: npt.NDArray[np.bool_]
    _odometer: FloatArray
    _pending_odometer: FloatArray
    _entered_odometer: FloatArray

    def __init__(
        self,
        layout: StoreLayout,
        camera_id: str,
        *,
        run_id: str = "",
        time_origin: float | None = None,
        relink_seconds: float | None = None,
        relink_distance: float | None = None,
        occlusion_aware: bool | None = None,
        frame_size: tuple[int, int] | None = None,
        line_depth: float | None = None,
    ) -> None:
        camera = layout.camera(camera_id)
        if occlusion_aware is None:
            occlusion_aware = camera.occlusion_aware
        if relink_seconds is None:
            relink_seconds = camera.relink_seconds
        if relink_distance is None:
            relink_distance = camera.relink_distance
        if not (math.isfinite(relink_seconds) and relink_seconds >= 0):
            raise ValueError(f"relink_seconds must be a finite number >= 0, got {relink_seconds}")
        if not (math.isfinite(relink_distance) and relink_distance >= 0):
            raise ValueError(f"relink_distance must be a finite number >= 0, got {relink_distance}")
        if line_depth is not None and not (math.isfinite(line_depth) and line_depth >= 0):
            raise ValueError(f"line_depth must be a finite number >= 0, got {line_depth}")
        self.line_depth = line_depth
        """Overrides every line's ``depth`` when set (see class doc)."""
        self.occlusion_aware = bool(occlusion_aware)
        """Hidden tracks stay in their zones where their motion says they are (see class doc)."""
        self.amodal: AmodalBoxes | None = AmodalBoxes(occluders=camera.occluders)
        """Feet of people whose legs are hidden (behind someone closer, or behind one of the
        camera's ``occluders``), from head and height (None: the boxes as given)."""
        self.frame_size: tuple[int, int] | None = frame_size
        """Picture width and height in pixels, when known (:class:`CameraAnalytics` sets it
        from the first image): a track last seen at the edge walked out, it is not hidden."""
        self.relink_seconds = float(relink_seconds)
        self.relink_distance = float(relink_distance)
        self.layout = layout
        self.camera_id = camera_id
        self.store_id = layout.store.id
        self.run_id = run_id
        if time_origin is None:
            time_origin = camera.start_time.timestamp() if camera.start_time else 0.0
        self.time_origin = float(time_origin)
        self.lost_after_seconds = camera.lost_after_seconds
        self.homography = camera.homography
        """Image→floor mapping; with it, ``zone_exit`` events carry ``distance_m``."""
        self.occupancy_hold_seconds = camera.occupancy_hold_seconds

        self.zones = layout.zones_of(camera_id)
        self.lines = layout.lines_of(camera_id)
        self.zone_ids = [zone.id for zone in self.zones]
        self.line_ids = [line.id for line in self.lines]
        corners = [np.asarray(layout.image_polygon(zone), np.float64) for zone in self.zones]
        self._polygons = PolygonSet(corners)
        anchor_index = {anchor: i for i, anchor in enumerate(ANCHOR_ORDER)}
        self._zone_anchor = np.array([anchor_index[z.anchor] for z in self.zones], np.int64)
        self._edge_anchor = np.repeat(self._zone_anchor, [len(c) for c in corners])
        self._min_inside = np.array([z.min_inside_seconds for z in self.zones], np.float64)
        self._min_outside = np.array([z.min_outside_seconds for z in self.zones], np.float64)
        self._min_dwell = np.array([z.min_dwell_seconds for z in self.zones], np.float64)
        self._approach = np.array([z.approach_seconds for z in self.zones], np.float64)
        self._approach_horizon = float(self._approach.max()) if len(self.zones) else 0.0
        low = np.array([c.min(axis=0) for c in corners]).reshape(-1, 2)
        high = np.array([c.max(axis=0) for c in corners]).reshape(-1, 2)
        # Zone bounding boxes as centre and half-size (P, 2), a hair larger than exact so
        # rounding never rules out a path that touches a zone's edge.
        self._zone_centre = (low + high) / 2
        self._zone_half = (high - low) / 2 + 1e-6

        self._lineset = LineSet(
            [(ends[0], ends[1]) for ends in (layout.image_line(ln)[0] for ln in self.lines)],
            [layout.image_inside_sign(line) for line in self.lines],
        )
        self._line_anchor = np.array([anchor_index[ln.anchor] for ln in self.lines], np.int64)
        # Per line, as Python floats for the one-cell segment test: first end, direction,
        # 1 / length², "in" sign, anchor kind.
        self._segments = [
            (*segment, kind)
            for segment, kind in zip(
                self._lineset.segments(), self._line_anchor.tolist(), strict=True
            )
        ]
        weights, self._line_offset = self._lineset.linear_form()
        # xyxy @ _line_weights + offset = signed distance of each line's own anchor.
        self._line_weights = np.zeros((4, len(self.lines)))
        for col, kind in enumerate(self._line_anchor.tolist()):
            self._line_weights[:, col] = (
                _ANCHOR_MATRIX[:, 2 * kind : 2 * kind + 2] @ weights[:, col]
            )
        self._min_side = np.array([ln.min_side_seconds for ln in self.lines], np.float64)
        self._inv_length = np.sqrt(np.array([seg[4] for seg in self._segments], np.float64))
        self._depth = [ln.depth if line_depth is None else float(line_depth) for ln in self.lines]
        """Per line: depth beyond it, a fraction of the box height, that confirms a crossing."""
        # Per line: depth x line length, so that (signed value >= this x box height) is
        # "deep" without normalising the value every frame.
        self._depth_scale = np.array(self._depth, np.float64) / self._inv_length
        self._any_depth = any(d > 0 for d in self._depth)
        self._fresh_line_state = np.zeros((5, len(self.lines)))
        self._fresh_line_state[2] = np.nan
        self._fresh_line_state[4] = np.nan

        # The one anchor every zone uses (0 with no zones), or -1: each zone its own.
        kinds = set(self._zone_anchor.tolist())
        self._zone_point = kinds.pop() if len(kinds) == 1 else (0 if not kinds else -1)
        # Cells awaiting hysteresis or a minimum dwell; zero means the fast path applies.
        self._zone_waiting = 0
        self._next_stale_check = -math.inf
        self._next_approach_check = -math.inf
        self._slot_of: dict[int, int] = {}
        self._last_ids: list[int] | None = None
        self._last_slots = np.zeros(0, np.int64)
        self._apart_slots: npt.NDArray[np.int64] | None = None
        self._free: list[int] = []
        self._capacity = 0
        self._grow(64)
        self._last_time = -math.inf

    # ----------------------------------------------------------------- state
    def _grow(self, capacity: int) -> None:
        zones, lines, old = len(self.zones), len(self.lines), self._capacity

        def extend(
            name: str, shape: tuple[int, ...], fill: float | bool | int, dtype: npt.DTypeLike
        ) -> None:
            fresh = np.full(shape, fill, dtype)
            if old:
                fresh[:old] = getattr(self, name)
            setattr(self, name, fresh)

        extend("_track_of", (capacity,), -1, np.int64)
        extend("_last_seen", (capacity,), np.nan, np.float64)
        extend("_missed_at", (capacity,), np.nan, np.float64)
        extend("_glimpsed_at", (capacity,), np.nan, np.float64)
        extend("_prev", (capacity, 3, 2), np.nan, np.float64)
        extend("_floor_prev", (capacity, 2), np.nan, np.float64)
        extend("_velocity", (capacity, 2), 0.0, np.float64)
        extend("_box", (capacity, 4), np.nan, np.float64)
        extend("_hidden_in", (capacity, zones), False, np.bool_)
        extend("_hidden_out_at", (capacity, zones), np.nan, np.float64)
        extend("_seen_apart", (capacity,), False, np.bool_)
        extend("_odometer", (capacity,), 0.0, np.float64)
        extend("_pending_odometer", (capacity, zones), np.nan, np.float64)
        extend("_entered_odometer", (capacity, zones), np.nan, np.float64)
        extend("_inside", (capacity, zones), False, np.bool_)
        extend("_reported", (capacity, zones), False, np.bool_)
        extend("_zone_pending", (capacity, zones), np.nan, np.float64)
        extend("_entered_at", (capacity, zones), np.nan, np.float64)
        extend("_approach_sent", (capacity, zones), False, np.bool_)
        # Line state per slot and line: [:, 0] confirmed side (+1 in, -1 out, 0 unknown),
        # [:, 1] side of a crossing waiting out min_side_seconds (0: none), [:, 2] when it
        # crossed, [:, 3] the side to watch: the confirmed side while no crossing waits, else
        # 0. A cell needs a look only where (signed distance × watched side) <= 0.
        # [:, 4] the box height when last seen deep on its confirmed side (NaN: never).
        line_state = np.zeros((capacity, 5, lines), np.float64)
        line_state[:, 2] = np.nan
        line_state[:, 4] = np.nan
        if old:
            line_state[:old] = self._line_state
        self._line_state = line_state
        self._side = line_state[:, 0]
        self._line_pending = line_state[:, 1]
        self._line_pending_at = line_state[:, 2]
        self._line_watch = line_state[:, 3]
        self._line_height = line_state[:, 4]
        self._free.extend(range(capacity - 1, old - 1, -1))
        self._capacity = capacity

    def _slots(self, track_ids: list[int]) -> tuple[npt.NDArray[np.int64], list[int]]:
        """Each track's state slot (new ids get a fresh one) and the rows of new ids."""
        if track_ids == self._last_ids:
            return self._last_slots, []
        slot_of = self._slot_of
        slots = []
        new_rows = []
        for row, track_id in enumerate(track_ids):
            slot = slot_of.get(track_id)
            if slot is None:
                new_rows.append(row)
                if not self._free:
                    self._grow(self._capacity * 2)
                slot = self._free.pop()
                slot_of[track_id] = slot
                self._track_of[slot] = track_id
            slots.append(slot)
        # The same ids as last frame (the usual case) reuse these slots until one is freed.
        self._last_ids, self._last_slots = track_ids, np.asarray(slots, np.int64)
        return self._last_slots, new_rows

    def _relink(
        self,
        slots: npt.NDArray[np.int64],
        new_rows: list[int],
        xyxy: npt.NDArray[np.float32],
        anchors: FloatArray,
        now: float,
    ) -> None:
        """Hand the state of recently unseen tracks over to new tracks that continue them."""
        unseen = np.flatnonzero(
            (self._track_of >= 0)
            & (self._last_seen < now)
            & (now - self._last_sign() <= self.relink_seconds)
        )
        if len(unseen) == 0:
            return
        unseen = np.setdiff1d(unseen, slots)
        if len(unseen) == 0:
            return
        rows = np.asarray(new_rows, np.int64)
        heights = (xyxy[rows, 3] - xyxy[rows, 1]).astype(np.float64)
        last = self._prev[unseen, 0]
        expected = last
        if self.occlusion_aware:
            elapsed = (now - self._last_seen[unseen])[:, None]
            # Glimpsed since: still where it vanished.
            elapsed[self._glimpsed_at[unseen] > self._last_seen[unseen]] = 0.0
            expected = expected + self._velocity[unseen] * elapsed
        gaps = anchors[rows, 0][:, None, :] - expected[None, :, :]
        distance = np.sqrt((gaps**2).sum(axis=2))
        if self.occlusion_aware:
            # It may have stopped or turned while out of sight: where it vanished counts too.
            stayed = anchors[rows, 0][:, None, :] - last[None, :, :]
            distance = np.minimum(distance, np.sqrt((stayed**2).sum(axis=2)))
        distance[~(distance <= (self.relink_distance * heights)[:, None])] = np.inf
        # Nearest pairs first; each old track continues at most one new track.
        for flat in np.argsort(distance, axis=None).tolist():
            r, u = divmod(flat, len(unseen))
            if not math.isfinite(distance[r, u]):
                break
            distance[r, :] = np.inf
            distance[:, u] = np.inf
            self._take_over(int(unseen[u]), int(slots[rows[r]]))

    def _take_over(self, old: int, new: int) -> None:
        for name in (
            "_inside",
            "_reported",
            "_zone_pending",
            "_entered_at",
            "_approach_sent",
            "_line_state",
            "_prev",
            "_floor_prev",
            "_velocity",
            "_box",
            "_odometer",
            "_pending_odometer",
            "_entered_odometer",
        ):
            state = getattr(self, name)
            state[new] = state[old]
        self._seen_apart[new] |= self._seen_apart[old]
        self._release(old)

    def _release(self, slot: int) -> None:
        self._last_ids = None
        del self._slot_of[int(self._track_of[slot])]
        self._track_of[slot] = -1
        self._last_seen[slot] = np.nan
        self._missed_at[slot] = np.nan
        self._glimpsed_at[slot] = np.nan
        self._inside[slot] = False
        self._reported[slot] = False
        self._zone_pending[slot] = np.nan
        self._entered_at[slot] = np.nan
        self._approach_sent[slot] = False
        self._line_state[slot] = self._fresh_line_state
        self._prev[slot] = np.nan
        self._floor_prev[slot] = np.nan
        self._velocity[slot] = 0.0
        self._box[slot] = np.nan
        self._hidden_in[slot] = False
        self._hidden_out_at[slot] = np.nan
        self._seen_apart[slot] = False
        self._odometer[slot] = 0.0
        self._pending_odometer[slot] = np.nan
        self._entered_odometer[slot] = np.nan
        self._free.append(slot)

    def _event(
        self,
        kind: EventType,
        target: str,
        track_id: int,
        frame_time: float,
        attributes: dict[str, object] | None = None,
    ) -> Event:
        return Event.create(
            kind,
            self.store_id,
            self.camera_id,
            target,
            track_id,
            self.time_origin + frame_time,
            dict(attributes or {}),
            run_id=self.run_id,
        )

    # ------------------------------------------------------------ public API
    @property
    def active_track_ids(self) -> list[int]:
        return sorted(self._slot_of)

    def occupancy(self) -> dict[str, int]:
        """People inside each zone of this camera now.

        Counts visits whose entry was reported and that have no exit yet, for
        tracks seen within the camera's ``occupancy_hold_seconds``: a track the
        tracker still holds but no longer sees (it may have left the picture)
        stops counting after that; its visit closes at the first frame it was missing from.
        """
        counts = self._counted().sum(axis=0)
        return dict(zip(self.zone_ids, counts.tolist(), strict=True))

    def occupants(self) -> dict[str, list[int]]:
        """The track ids each zone's :meth:`occupancy` counts now (the same rule), sorted.

        Example:
            >>> import numpy as np
            >>> from storesense.vision.detections import Tracks
            >>> from storesense.zones.config import StoreLayout
            >>> layout = StoreLayout.model_validate({
            ...     "store": {"id": "s"}, "cameras": [{"id": "c"}],
            ...     "zones": [{"id": "z", "camera": "c",
            ...                "polygon": [[0, 0], [10, 0], [10, 10], [0, 10]]}], "lines": []})
            >>> engine = ZoneEngine(layout, "c")
            >>> _ = engine.update(Tracks(np.array([[4, 0, 6, 5], [40, 0, 42, 5]]),
            ...     np.array([0.9, 0.9]), np.array([7, 8]), np.zeros((2, 2)), timestamp=0.0))
            >>> engine.occupants()
            {'z': [7]}
        """
        counted = self._counted()
        return {
            zone_id: sorted(self._track_of[counted[:, col]].tolist())
            for col, zone_id in enumerate(self.zone_ids)
        }

    def _counted(self) -> npt.NDArray[np.bool_]:
        """(slots, zones): the cells :meth:`occupancy` counts."""
        recent = (self._last_time - self._last_seen <= self.occupancy_hold_seconds)[:, None]
        if self.occlusion_aware:
            recent = recent | self._hidden_in
        # A person seen stepping out counts as out at once; the exit EVENT waits out
        # min_outside_seconds (a step back in within it is not a new visit).
        leaving = ~np.isnan(self._zone_pending)
        return self._inside & self._reported & recent & ~leaving

    def update(self, tracks: Tracks) -> list[Event]:
        """Advance to this frame's tracks; return the events it completes."""
        now = float(tracks.timestamp)
        if not math.isfinite(now):
            raise ValueError(f"tracks.timestamp must be finite, got {now}")
        if now < self._last_time:
            raise ValueError(f"tracks.timestamp went backwards: {now} after {self._last_time}")
        previous_time, self._last_time = self._last_time, now
        if self.amodal is not None:
            tracks = self.amodal.update(tracks)
        events: list[Event] = []
        ids = tracks.track_id.tolist()
        if now > previous_time:
            # Provisionally missing from this frame; cleared below for the tracks seen in it.
            self._missed_at[self._last_seen == previous_time] = now
        if len(tracks.lost_ids):
            gone = [i for i in tracks.lost_ids.tolist() if i in self._slot_of and i not in ids]
            if gone:
                events += self._close([self._slot_of[i] for i in gone], None)
        if ids:
            slots, new_rows = self._slots(ids)
            anchors = (tracks.xyxy @ _ANCHOR_MATRIX).reshape(-1, 3, 2)
            if new_rows and self.relink_seconds > 0:
                self._relink(slots, new_rows, tracks.xyxy, anchors, now)
            if self.homography is not None and self.zones:
                self._walk(slots, anchors[:, 0])
            if self.lines:
                events += self._update_lines(slots, ids, tracks.xyxy, anchors, now)
            if self.zones:
                events += self._update_zones(slots, ids, anchors, tracks.velocity, now)
            self._last_seen[slots] = now
            self._missed_at[slots] = np.nan
            self._prev[slots] = anchors
            self._velocity[slots] = tracks.velocity
            self._box[slots] = tracks.xyxy
            if self.occlusion_aware and self.zones:
                self._hidden_in[slots] = False
                self._hidden_out_at[slots] = np.nan
                self._see_apart(slots, tracks.xyxy)
        if self.occlusion_aware and len(tracks.held_ids):
            held = [self._slot_of[i] for i in tracks.held_ids.tolist() if i in self._slot_of]
            self._glimpsed_at[held] = now
        if self.occlusion_aware and self.zones and len(self._slot_of) > len(ids):
            self._follow_hidden(now)  # only when some held track is not in this frame
        if now >= self._next_stale_check:
            self._next_stale_check = now + STALE_CHECK_SECONDS
            # Free slots have no last sighting (NaN), so they never compare as stale.
            stale = np.flatnonzero(now - self._last_sign() > self.lost_after_seconds)
            if len(stale):
                events += self._close(stale.tolist(), None)
        return events

    def finish(self, timestamp: float) -> list[Event]:
        """End of stream: close every open visit and forget every track.

        Tracks seen on the last frame exit at ``timestamp`` (seconds on the
        frame clock, e.g. the end of the last frame); others at the first frame they
        were missing from.
        """
        slots = np.flatnonzero(self._track_of >= 0).tolist()
        return self._close(slots, float(timestamp))

    # -------------------------------------------------------------- updates
    def _follow_hidden(self, now: float) -> None:
        """Keep hidden tracks in a zone while their motion puts them inside it (unless
        they were last seen at the edge of the picture: they walked out of it)."""
        elapsed = now - self._last_seen
        hidden = np.flatnonzero(
            (elapsed > 0)
            & (now - self._last_sign() <= self.lost_after_seconds)
            & self._inside.any(axis=1)
            & self._seen_apart
        )
        if len(hidden) == 0:
            return
        shift = self._velocity[hidden] * elapsed[hidden, None]
        predicted = self._prev[hidden] + shift[:, None, :]
        member = self._members(predicted)
        covered = self._behind_someone(hidden, now)
        covered |= self._glimpsed_at[hidden] > self._last_seen[hidden]
        if covered.any():
            # Hidden behind a person in view: it may be standing where it vanished as well as
            # where its own (pre-occlusion) velocity would carry it.
            member[covered] |= self._members(self._prev[hidden[covered]])
        in_picture = np.ones(len(hidden), np.bool_)
        if self.frame_size is not None:
            # Last seen at the picture's edge: it walked out, it is not hidden.
            width, height = self.frame_size
            box = self._box[hidden]
            margin = EDGE_MARGIN * (box[:, 2] - box[:, 0])
            in_picture = (
                (box[:, 0] > margin) & (box[:, 2] < width - margin) & (box[:, 3] < height - margin)
            )
        inside = self._inside[hidden]
        out_at = self._hidden_out_at[hidden]
        holding = inside & member & in_picture[:, None] & np.isnan(out_at)
        ends = inside & ~holding & np.isnan(out_at)
        if ends.any():
            # Held until now, or never held: gone when it vanished (dated like before).
            was_held = self._hidden_in[hidden]
            vanished = np.broadcast_to(self._missed_at[hidden, None], out_at.shape)
            out_at[ends] = np.where(was_held, now, vanished)[ends]
            self._hidden_out_at[hidden] = out_at
        self._hidden_in[hidden] = holding

    def _see_apart(self, slots: npt.NDArray[np.int64], xyxy: npt.NDArray[np.float32]) -> None:
        """Mark the tracks of this frame whose box is not one person's box twice with
        another's (each at least :data:`OCCLUDED_SHARE` inside the other)."""
        if slots is self._apart_slots:
            return  # the same tracks as last frame, all seen apart by then
        rows = np.flatnonzero(~self._seen_apart[slots])
        if len(rows) == 0:
            self._apart_slots = slots
            return
        boxes = xyxy.astype(np.float64)
        cover = mutual_cover(boxes[rows], boxes)
        cover[np.arange(len(rows)), rows] = 0.0  # not with itself
        self._seen_apart[slots[rows[~(cover >= OCCLUDED_SHARE).any(axis=1)]]] = True

    def _members(self, anchors: FloatArray) -> npt.NDArray[np.bool_]:
        """(N, 3, 2) anchor points per track → (N, Z) membership, each zone by its anchor."""
        if self._zone_point >= 0:
            return self._polygons.contains(anchors[:, self._zone_point])
        return self._polygons.contains_per_edge(
            anchors[:, self._edge_anchor, 0], anchors[:, self._edge_anchor, 1]
        )

    def _behind_someone(self, hidden: npt.NDArray[np.int64], now: float) -> npt.NDArray[np.bool_]:
        """Which hidden tracks have their last box at least :data:`OCCLUDED_SHARE` inside the
        box of a track seen now: someone in view stands where they vanished."""
        seen = np.flatnonzero(self._last_seen == now)
        if len(seen) == 0:
            return np.zeros(len(hidden), np.bool_)
        box = self._box[hidden]
        overlap = intersection_matrix(box, self._box[seen]).max(axis=1)
        result: npt.NDArray[np.bool_] = overlap >= OCCLUDED_SHARE * box_areas(box)
        return result

    def _last_sign(self) -> FloatArray:
        """Per slot: when the person was last seen or glimpsed (NaN: free slot)."""
        result: FloatArray = np.fmax(self._last_seen, self._glimpsed_at)
        return result

    def _walk(self, slots: npt.NDArray[np.int64], feet: FloatArray) -> None:
        """Add each track's floor step since its last sighting to its odometer (metres)."""
        assert self.homography is not None
        floor, on_floor = self.homography.to_floor_checked(feet)
        step = np.sqrt(((floor - self._floor_prev[slots]) ** 2).sum(axis=1))
        self._odometer[slots] += np.where(np.isfinite(step), step, 0.0)
        # A point off the floor (above the horizon) leaves the last floor position.
        self._floor_prev[slots[on_floor]] = floor[on_floor]

    def _update_zones(
        self,
        slots: npt.NDArray[np.int64],
        ids: list[int],
        anchors: FloatArray,
        velocity: npt.NDArray[np.float32],
        now: float,
    ) -> list[Event]:
        raw = self._members(anchors)
        points = anchors[:, max(self._zone_point, 0)]
        inside = self._inside[slots]
        differs = raw != inside
        events: list[Event] = []
        if self._zone_waiting:
            # Also the cells waiting out a hysteresis or a minimum dwell.
            look = (
                differs | ~np.isnan(self._zone_pending[slots]) | (inside & ~self._reported[slots])
            )
        else:
            look = differs
        cells = np.flatnonzero(look)
        if len(cells):
            events += self._zone_transitions(slots, ids, cells, differs, now)
            inside = self._inside[slots]
        if self._approach_horizon > 0 and now >= self._next_approach_check:
            self._next_approach_check = now + APPROACH_CHECK_SECONDS
            events += self._approaching(slots, ids, points, velocity, inside | raw, now)
        return events

    def _zone_transitions(
        self,
        slots: npt.NDArray[np.int64],
        ids: list[int],
        cells: npt.NDArray[np.int64],
        differs: npt.NDArray[np.bool_],
        now: float,
    ) -> list[Event]:
        """Step the (track, zone) cells that changed or wait: exits first, then entries."""
        zone_count = len(self.zones)
        inside, reported = self._inside, self._reported
        pending, pending_odometer = self._zone_pending, self._pending_odometer
        entered_at, entered_odometer = self._entered_at, self._entered_odometer
        events: list[Event] = []
        stepped = []
        for cell in cells.tolist():
            row, col = divmod(cell, zone_count)
            slot = int(slots[row])
            stepped.append((row, col, slot))
            since = pending.item(slot, col)
            if not differs.item(row, col):
                if since == since:  # not NaN: back where it was before the hysteresis ran out
                    pending[slot, col] = np.nan
                    pending_odometer[slot, col] = np.nan
                continue
            if since != since:
                since = now
                walked = self._odometer.item(slot)
                pending[slot, col] = now
                pending_odometer[slot, col] = walked
            else:
                walked = pending_odometer.item(slot, col)
            was_inside = inside.item(slot, col)
            threshold = self._min_outside.item(col) if was_inside else self._min_inside.item(col)
            if not now - since >= threshold:
                continue
            if was_inside:
                events += self._exit_events(
                    ids[row],
                    col,
                    entered_at.item(slot, col),
                    since,
                    reported.item(slot, col),
                    walked - entered_odometer.item(slot, col),
                )
                inside[slot, col] = False
                reported[slot, col] = False
                entered_at[slot, col] = np.nan
                entered_odometer[slot, col] = np.nan
                self._approach_sent[slot, col] = False
            else:
                inside[slot, col] = True
                entered_at[slot, col] = since
                entered_odometer[slot, col] = walked
            pending[slot, col] = np.nan
            pending_odometer[slot, col] = np.nan
        for row, col, slot in stepped:
            if (
                inside.item(slot, col)
                and not reported.item(slot, col)
                and now - entered_at.item(slot, col) >= self._min_dwell.item(col)
            ):
                at = entered_at.item(slot, col)
                events.append(self._event(EventType.ZONE_ENTER, self.zone_ids[col], ids[row], at))
                reported[slot, col] = True
        self._zone_waiting = int(np.count_nonzero(~np.isnan(pending))) + int(
            np.count_nonzero(inside & ~reported)
        )
        return events

    def _exit_events(
        self,
        track_id: int,
        col: int,
        entered_at: float,
        at: float,
        reported: bool,
        distance_m: float,
    ) -> list[Event]:
        zone_id = self.zone_ids[col]
        dwell = at - entered_at
        attributes: dict[str, object] = {"dwell_seconds": round(dwell, 3)}
        if self.homography is not None:
            attributes["distance_m"] = round(distance_m, 3) if math.isfinite(distance_m) else 0.0
        events = []
        if not reported:
            if dwell < self._min_dwell[col]:
                return []
            events.append(self._event(EventType.ZONE_ENTER, zone_id, track_id, entered_at))
        events.append(self._event(EventType.ZONE_EXIT, zone_id, track_id, at, attributes))
        return events

    def _approaching(
        self,
        slots: npt.NDArray[np.int64],
        ids: list[int],
        points: FloatArray,
        velocity: npt.NDArray[np.float32],
        in_or_entering: npt.NDArray[np.bool_],
        now: float,
    ) -> list[Event]:
        velocity64 = velocity.astype(np.float64)
        moving = (velocity64**2).sum(axis=1) >= MIN_APPROACH_SPEED_PX_S**2
        horizon = self._approach_horizon
        step = velocity64 * horizon
        # Zones whose bounding box the path within the horizon touches (box overlap:
        # centre distance within the half-sizes), not yet entered or announced.
        gap = np.abs((points + step * 0.5)[:, None, :] - self._zone_centre)
        candidates = (gap <= (np.abs(step) * 0.5)[:, None, :] + self._zone_half).all(axis=2)
        candidates &= moving[:, None] & ~(in_or_entering | self._approach_sent[slots])
        reaching = candidates.any(axis=1)
        if not reaching.any():
            return []
        rows = np.flatnonzero(reaching)
        eta = self._polygons.ray_entry_fraction(points[rows], step[rows]) * horizon
        hits = (eta <= self._approach) & candidates[rows]
        if not hits.any():
            return []
        events = []
        for r, col in zip(*np.nonzero(hits), strict=True):
            row = int(rows[r])
            self._approach_sent[slots[row], col] = True
            events.append(
                self._event(
                    EventType.APPROACHING,
                    self.zone_ids[col],
                    ids[row],
                    now,
                    {"eta_seconds": round(float(eta[r, col]), 2)},
                )
            )
        return events

    def _update_lines(
        self,
        slots: npt.NDArray[np.int64],
        ids: list[int],
        xyxy: npt.NDArray[np.float32],
        anchors: FloatArray,
        now: float,
    ) -> list[Event]:
        """Line sides and crossings. Three vector operations find the (track, line) cells
        that need a look (a new side, or a crossing waiting out ``min_side_seconds``):
        usually none or a couple; only those are stepped, one by one."""
        value = xyxy @ self._line_weights + self._line_offset
        beyond = value * self._line_watch[slots]
        if self._any_depth:
            # Remember each track's box height while it is deep on its confirmed side.
            heights = (xyxy[:, 3:] - xyxy[:, 1:2]).astype(np.float64)
            deep = beyond >= self._depth_scale * heights
            self._line_height[slots] = np.where(deep, heights, self._line_height[slots])
        cells = np.flatnonzero(beyond <= 0)
        if len(cells) == 0:
            return []
        side, pending, pending_at, watch, tall = (
            self._side,
            self._line_pending,
            self._line_pending_at,
            self._line_watch,
            self._line_height,
        )
        line_count = len(self.lines)
        min_side = self._min_side
        segments = self._segments
        depth = self._depth
        events: list[Event] = []
        for cell in cells.tolist():
            row, col = divmod(cell, line_count)
            slot = int(slots[row])
            v = value.item(row, col)
            if v == 0.0:
                continue  # exactly on the line: nothing changes
            now_side = 1.0 if v > 0 else -1.0
            confirmed_side = side.item(slot, col)
            waiting = pending.item(slot, col)
            if confirmed_side == 0.0:
                # A new track takes its first side without crossing.
                side[slot, col] = watch[slot, col] = now_side
                continue
            if waiting != 0.0:
                if now_side == confirmed_side:
                    # Back on the confirmed side before the minimum time: it did not hold.
                    pending[slot, col] = 0.0
                    watch[slot, col] = confirmed_side
                    continue
                crossed_at = pending_at.item(slot, col)
            else:
                if not self._through_segment(slot, col, anchors[row], v):
                    # Walked round the end of the segment: take the new side silently.
                    side[slot, col] = watch[slot, col] = now_side
                    continue
                waiting, crossed_at = now_side, now
                pending[slot, col] = now_side
                pending_at[slot, col] = now
                watch[slot, col] = 0.0
            if abs(waiting) == 1.0:
                # Not yet deep enough beyond the line (|pending| becomes 2 once it is).
                # A box shorter than when last seen deep on its side has its feet hidden
                # (legs behind someone): its bottom edge is uncertain by the difference.
                height = xyxy.item(row, 3) - xyxy.item(row, 1)
                hidden = tall.item(slot, col) - height
                band = depth[col] * height + (hidden if hidden > 0 and depth[col] > 0 else 0.0)
                if abs(v) * math.sqrt(segments[col][4]) >= band:
                    waiting = 2.0 * now_side
                    pending[slot, col] = waiting
            if abs(waiting) == 2.0 and now - crossed_at >= min_side.item(col):
                events.append(self._cross_event(ids[row], col, int(waiting), crossed_at))
                side[slot, col] = watch[slot, col] = now_side
                pending[slot, col] = 0.0
        return events

    def _through_segment(self, slot: int, col: int, anchors: FloatArray, value: float) -> bool:
        """Did this track's move since its last frame cross line ``col`` between its ends?

        The crossing point on the infinite line is projected onto the segment; it
        must fall between the two end points (walking round a line's end does not count).
        Scalar arithmetic: only the one (track, line) cell is tested.
        """
        ax, ay, dx, dy, inv_length_sq, sign, kind = self._segments[col]
        x1, y1 = anchors.item(kind, 0), anchors.item(kind, 1)
        x0, y0 = self._prev.item(slot, kind, 0), self._prev.item(slot, kind, 1)
        value0 = (dx * (y0 - ay) - dy * (x0 - ax)) * sign
        t = value0 / (value0 - value) if value0 != value else 0.0
        cx = x0 + t * (x1 - x0) - ax
        cy = y0 + t * (y1 - y0) - ay
        u = (cx * dx + cy * dy) * inv_length_sq
        return 0.0 <= u <= 1.0

    def _cross_event(self, track_id: int, col: int, direction: int, at: float) -> Event:
        return self._event(
            EventType.LINE_CROSS,
            self.line_ids[col],
            track_id,
            at,
            {"direction": "in" if direction > 0 else "out"},
        )

    def _close(self, slots: list[int], end_time: float | None) -> list[Event]:
        """Exit every open visit of these slots and free them."""
        events: list[Event] = []
        for slot in sorted(slots, key=lambda s: int(self._track_of[s])):
            track_id = int(self._track_of[slot])
            last_seen = float(self._last_seen[slot])
            missed_at = float(self._missed_at[slot])
            seen_last_frame = end_time is not None and last_seen == self._last_time
            for col in np.flatnonzero(self._inside[slot]).tolist():
                pending = float(self._zone_pending[slot, col])
                odometer = float(self._odometer[slot])
                if not math.isnan(pending):
                    at = pending
                    odometer = float(self._pending_odometer[slot, col])
                elif seen_last_frame and end_time is not None:
                    at = max(end_time, last_seen)
                elif not math.isnan(float(self._hidden_out_at[slot, col])):
                    at = float(self._hidden_out_at[slot, col])
                elif self._hidden_in[slot, col] and not math.isnan(missed_at):
                    # Still hidden in the zone: counted until now (at most the lost buffer).
                    sign = float(np.fmax(last_seen, self._glimpsed_at[slot]))
                    at = max(missed_at, min(self._last_time, sign + self.lost_after_seconds))
                elif not math.isnan(missed_at):
                    # Like an exit seen happen: dated at the first frame without the person.
                    at = missed_at
                else:
                    at = last_seen
                events += self._exit_events(
                    track_id,
                    col,
                    float(self._entered_at[slot, col]),
                    at,
                    bool(self._reported[slot, col]),
                    odometer - float(self._entered_odometer[slot, col]),
                )
            for col in np.flatnonzero(self._line_pending[slot]).tolist():
                # Last seen on the new side, deep enough: the crossing stands.
                events.append(
                    self._cross_event(
                        track_id,
                        col,
                        int(self._line_pending[slot, col]),
                        float(self._line_pending_at[slot, col]),
                    )
                )
            self._release(slot)
        return events
