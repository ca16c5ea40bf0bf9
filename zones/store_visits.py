"""Visits across cameras on one floor plan: one visit id while a person walks between views.

Cameras whose homographies map onto the same floor plan put their people in the same
metres. :class:`StoreVisits` takes every camera's tracks as they come (one shared clock:
frame time plus each camera's ``start_time``) and gives each (camera, track) a
store-wide visit key:

* **overlap hand-over**: a track seen for the first time continues the visit of a
  person another camera sees at the same moment (within ``time_tolerance_seconds``)
  within ``merge_distance_m`` of its feet (nearest first; a visit holds one track per
  camera);
* **gap hand-over**: else it continues a visit unseen (by every camera) for at most
  ``link_seconds`` whose feet where it was last seen, or carried on from there at its
  last floor velocity (at most walking speed, 1.5 m/s), lie within ``link_distance_m``
  + 1.5 m per second of gap of the new feet (overlap hand-overs first, then nearest);
* **overlap association**: two cameras that see one person at once (the same two
  tracks paired within ``merge_distance_m`` in consecutive updates; pairs beyond that
  gate never steer the pairing) join their visits; the visit that began first (then the
  smaller key) keeps its key. A track that holds one of the two visits in the pair's
  camera but is not the paired track (a hand-over to the wrong track) lets go of it
  first, unless it is older than the pair's track that holds that visit (then the pair
  is the newcomer);
* else it starts a visit ``camera:track``;
* **separation**: a visit never holds two tracks one camera sees at once, and a track
  whose visit another camera sees now more than twice ``merge_distance_m`` away (a
  tracker swapped two people) splits from it. Of the two, the one whose floor velocity
  turned less over the last two ``velocity_window_seconds`` keeps the visit (a swap turns
  a track onto another person's course; while either is too young to tell, the older
  one). Two visits are never joined while one camera sees both, nor when one camera saw
  a track of each at once within the last ``link_seconds``.

**Across processes** (camera workers of one store on several boxes): each local camera's
floor frame goes to ``on_frame`` (:class:`FloorFrame`: floor positions, track ids,
visits; no image), and :meth:`StoreVisits.update_remote` takes the other processes'
frames: their tracks keep the visits their own process gave them (only that process
splits or releases them), and take part here in hand-overs, association and the count
(``storesense.api.store.live_floor`` carries them through Redis).

``count()`` is the store-wide occupancy: the people visible now in every camera updated
within ``max_age_seconds``, one per visit, people of different cameras within
``merge_distance_m`` of each other counted once. Cameras without a homography cannot
be placed: their tracks keep ``camera:track`` and count as they are. ``counts()`` adds the
people in each store-wide floor zone of the layout (a zone without a camera): those of
the same de-duplicated people whose floor position (the mean of their feet over the
cameras that see them) lies in the zone.

Example:
    >>> import numpy as np
    >>> from storesense.vision.detections import Tracks
    >>> from storesense.zones.config import StoreLayout
    >>> square = [[0, 0], [100, 0], [100, 100], [0, 100]]
    >>> layout = StoreLayout.model_validate({"store": {"id": "s"}, "cameras": [
    ...     {"id": c, "homography": {"image_points": square,
    ...                              "floor_points": [[x, 0], [x + 1, 0], [x + 1, 1], [x, 1]]}}
    ...     for c, x in (("a", 0.0), ("b", 0.5))]})
    >>> visits = StoreVisits(layout)
    >>> def person_at(track, x, t):   # feet at image x (0-100), y = 100
    ...     return Tracks(np.array([[x - 5, 50, x + 5, 100]]), np.ones(1), np.array([track]),
    ...                   np.zeros((1, 2)), timestamp=t)
    >>> visits.update("a", person_at(7, 80, 0.0))   # floor x = 0.8 m
    >>> visits.update("b", person_at(3, 30, 0.0))   # the same person, seen by b
    >>> visits.visit_of("b", 3), visits.count()
    ('a:7', 1)
"""

from __future__ import annotations

import hashlib
import math
import threading
from collections import deque
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
from scipy.optimize import linear_sum_assignment
from storesense.vision.detections import Tracks
from storesense.vision.tracking.matching import mutual_cover
from storesense.zones.config import StoreLayout, ZoneConfig
from storesense.zones.engine import APPROACH_CHECK_SECONDS, OCCLUDED_SHARE
from storesense.zones.events import Event, EventType
from storesense.zones.floorplan import StoreOccupancy, floor_positions
from storesense.zones.geometry import PolygonSet
from storesense.zones.journeys import (
    JOINED_VISITS_ATTRIBUTE,
    JOINS_ATTRIBUTE,
    VISIT_ATTRIBUTE,
    visit_camera,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

FloatArray = npt.NDArray[np.float64]

FORGET_EVERY_SECONDS = 10.0
WALKING_SPEED_M_S = 1.5
"""A gap hand-over allows for walking this fast in any direction (and caps the carried-on
velocity: faster floor speeds are box jitter, magnified far from the camera)."""
MIN_APPROACH_SPEED_M_S = 0.2
"""Slower floor velocities (standing, feet jitter) never predict a store-wide approach."""
STORE_CAMERA = "@store"
"""The ``camera_id`` of the store-wide floor zones' events (and of their occupancy rows)."""


@dataclass
class _Sighting:
    timestamp: float
    floor: FloatArray
    track_id: int


@dataclass
class _Visit:
    key: str
    last_seen: float
    floor: FloatArray
    first_seen: float = 0.0
    velocity: FloatArray = field(default_factory=lambda: np.zeros(2))
    by_camera: dict[str, _Sighting] = field(default_factory=dict)
    history: deque[tuple[float, float, float]] = field(default_factory=deque)
    joined: list[str] = field(default_factory=list)
    """The keys of the visits joined into this one (their first events carry them)."""


@dataclass
class _FloorStay:
    """One visit in one store-wide floor zone, stepped like a camera zone's (track, zone)."""

    inside: bool = False
    reported: bool = False
    entered_at: float = math.nan
    pending: float = math.nan
    """When the visit was first seen on the other side (the hysteresis runs from it)."""
    approach_sent: bool = False
    approach_until: float = -math.inf
    visit: str = ""
    """The visit key its entry was reported under (a visit it was joined into goes on
    with it: the exit keeps that key and names the survivor in ``visit_joins``)."""


@dataclass
class _CameraFrame:
    timestamp: float
    visits: list[str]
    track_ids: list[int]
    floor: FloatArray
    unplaced: int


@dataclass(frozen=True)
class StoreWideCounts:
    """People in the store now (``count``), in each store-wide floor zone (``zones``) and
    predicted to enter each of them within its ``approach_seconds`` (``approaching``)."""

    count: int
    zones: dict[str, int]
    approaching: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class FloorFrame:
    """One camera's people on the floor plan at one moment, as camera workers of one store
    on different processes share them (no image, no appearance): ``timestamp`` on the
    shared clock (Unix seconds), each track's id, feet (metres), visit key and the time
    that visit began; ``unplaced`` people of the camera not on the floor (all of them for
    a camera without a homography, ``placed=False``)."""

    camera_id: str
    timestamp: float
    track_ids: list[int]
    floor: FloatArray
    visits: list[str]
    first_seen: list[float]
    unplaced: int = 0
    placed: bool = True


class StoreVisits:
    """Store-wide visit keys and occupancy over cameras that share a floor plan."""

    def __init__(
        self,
        layout: StoreLayout,
        *,
        merge_distance_m: float = 1.0,
        time_tolerance_seconds: float = 0.5,
        link_seconds: float = 3.0,
        link_distance_m: float = 1.0,
        max_age_seconds: float = 2.0,
        velocity_window_seconds: float = 1.0,
    ) -> None:
        for name, value in (
            ("merge_distance_m", merge_distance_m),
            ("time_tolerance_seconds", time_tolerance_seconds),
            ("link_seconds", link_seconds),
            ("link_distance_m", link_distance_m),
            ("max_age_seconds", max_age_seconds),
            ("velocity_window_seconds", velocity_window_seconds),
        ):
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be a finite number >= 0, got {value}")
        self.layout = layout
        self.merge_distance_m = float(merge_distance_m)
        self.time_tolerance_seconds = float(time_tolerance_seconds)
        self.link_seconds = float(link_seconds)
        self.link_distance_m = float(link_distance_m)
        self.max_age_seconds = float(max_age_seconds)
        self.velocity_window_seconds = float(velocity_window_seconds)
        self._visit_of: dict[tuple[str, int], str] = {}
        self._visits: dict[str, _Visit] = {}
        self._frames: dict[str, _CameraFrame] = {}
        self._streaks: dict[tuple[tuple[str, int], tuple[str, int]], int] = {}
        self._spans: dict[tuple[str, int], tuple[float, float]] = {}
        """(first, last) time each camera's track was seen."""
        self._paths: dict[tuple[str, int], deque[tuple[float, float, float]]] = {}
        """Each camera's track's recent floor points (two velocity windows)."""
        self._boxes: dict[tuple[str, int], tuple[float, FloatArray]] = {}
        """Each local camera's track's last sighting time and image box (``xyxy``)."""
        self._second_box_of: dict[tuple[str, int], int] = {}
        """Tracks never seen apart from another track of their camera (see
        :meth:`_second_boxes`): that track's id."""
        self._occupancy = StoreOccupancy(
            layout,
            merge_distance_m=merge_distance_m,
            time_tolerance_seconds=time_tolerance_seconds,
            max_age_seconds=max_age_seconds,
        )
        self._zones: list[ZoneConfig] = list(layout.store_zones)
        self._zone_by_id = {zone.id: zone for zone in self._zones}
        self._zone_polygons = PolygonSet([zone.floor_polygon or [] for zone in self._zones])
        self._stays: dict[str, dict[str, _FloorStay]] = {}
        """Each visit's stays in the store-wide floor zones (open, or waiting a hysteresis)."""
        self._zone_events: list[Event] = []
        self._zones_clock = -math.inf
        self._next_approach_check = -math.inf
        self._approaching = {zone.id: 0 for zone in self._zones}
        self._local: set[str] = set()
        self._finished: set[str] = set()
        self._zones_scope = hashlib.blake2b(
            "\n".join(zone.model_dump_json() for zone in self._zones).encode(), digest_size=8
        ).hexdigest()
        """In the store-wide events' ids: the same zones give the same ids in any process."""
        self._next_forget = -math.inf
        self._lock = threading.RLock()
        """Camera workers of one process update one instance from their own threads."""
        self.on_frame: Callable[[FloorFrame], None] | None = None
        """Called (under the lock, so it must not block) with each local camera's floor
        frame after its update: how another process learns of this one's people."""
        self.remote_cameras: set[str] = set()
        """Cameras whose frames came from another process (:meth:`update_remote`)."""
        self.handovers = 0
        """How many tracks continued a visit begun by another track (any camera)."""

    def visit_of(self, camera_id: str, track_id: int) -> str:
        """The store-wide visit key of a camera's track (``camera:track`` if unknown)."""
        with self._lock:
            track_id = self._second_box_of.get((camera_id, int(track_id)), int(track_id))
            return self._visit_of.get((camera_id, track_id), f"{camera_id}:{track_id}")

    def stamp(self, camera_id: str, events: Iterable[Event]) -> list[Event]:
        """One camera's events with their store-wide visit key in ``visit_id``."""
        with self._lock:
            return self._stamped(camera_id, events)

    def _stamped(self, camera_id: str, events: Iterable[Event]) -> list[Event]:
        return [
            replace(
                e,
                attributes={**e.attributes, VISIT_ATTRIBUTE: self.visit_of(camera_id, e.track_id)},
            )
            for e in events
        ]

    def update(self, camera_id: str, tracks: Tracks, time_origin: float | None = None) -> None:
        """This camera's latest tracks (replaces its previous view). ``time_origin``: Unix
        time of the camera's frame clock 0 (default its ``start_time``, else 0), so that
        cameras started at different moments share one clock."""
        if time_origin is not None:
            start = self.layout.camera(camera_id).start_time
            shift = time_origin - (start.timestamp() if start else 0.0)
            if shift:
                tracks = replace(tracks, timestamp=float(tracks.timestamp) + shift)
        with self._lock:
            self._update(camera_id, tracks)
            self._local.add(camera_id)
            self._finished.discard(camera_id)
            if self._zones:
                self._step_floor_zones(self._frames[camera_id].timestamp)

    def _update(self, camera_id: str, tracks: Tracks) -> None:
        self._occupancy.update(camera_id, tracks)
        camera = self.layout.camera(camera_id)
        now = float(tracks.timestamp) + (
            camera.start_time.timestamp() if camera.start_time else 0.0
        )
        ids = [int(i) for i in tracks.track_id.tolist()]
        if camera.homography is None:
            self._frames[camera_id] = _CameraFrame(now, [], [], np.zeros((0, 2)), len(ids))
            self._publish(camera_id, placed=False)
            return
        floor, on_floor = floor_positions(tracks, camera.homography)
        people = self._second_boxes(camera_id, now, ids, tracks.xyxy, floor, on_floor)
        rows = [r for r in range(len(ids)) if on_floor[r] and people[r] is not None]
        unplaced = sum(not on_floor[r] and people[r] is not None for r in range(len(ids)))
        self._update_floor(
            camera_id,
            now,
            [person for r in rows if (person := people[r]) is not None],
            floor[rows].reshape(-1, 2),
            unplaced,
        )
        self._publish(camera_id, placed=True)

    def _update_floor(
        self,
        camera_id: str,
        now: float,
        ids: list[int],
        floor: FloatArray,
        unplaced: int,
        owner_keys: dict[int, tuple[str, float]] | None = None,
    ) -> None:
        """One camera's people on the floor at ``now``. ``owner_keys``: the visit of each
        track and when that visit began, as decided by the process that runs the camera (a
        remote camera): kept as they are, never handed over here."""
        for r, track_id in enumerate(ids):
            first, _ = self._spans.get((camera_id, track_id), (now, now))
            self._spans[(camera_id, track_id)] = (first, now)
            path = self._paths.setdefault((camera_id, track_id), deque())
            path.append((now, float(floor[r, 0]), float(floor[r, 1])))
            while path[0][0] < now - 2 * self.velocity_window_seconds:
                path.popleft()
        if owner_keys is not None:
            for r, track_id in enumerate(ids):
                key, began = owner_keys.get(track_id, (f"{camera_id}:{track_id}", now))
                self._visit_of[(camera_id, track_id)] = key
                visit = self._visits.get(key)
                if visit is None:
                    self._visits[key] = _Visit(key, began, floor[r].copy(), began)
                elif began < visit.first_seen:
                    visit.first_seen = began
        new_rows = [r for r in range(len(ids)) if (camera_id, ids[r]) not in self._visit_of]
        if new_rows:
            self._hand_over(camera_id, new_rows, ids, floor, now)
        self._detach_duplicates(camera_id, ids)
        self._detach_diverged(camera_id, ids, floor)
        keys = []
        for r, track_id in enumerate(ids):
            key = self._visit_of.setdefault((camera_id, track_id), f"{camera_id}:{track_id}")
            visit = self._visits.get(key)
            if visit is None:
                visit = self._visits[key] = _Visit(key, now, floor[r].copy(), now)
            visit.by_camera[camera_id] = _Sighting(now, floor[r].copy(), track_id)
            if now >= visit.last_seen:
                visit.history.append((now, float(floor[r, 0]), float(floor[r, 1])))
                while visit.history and visit.history[0][0] < now - self.velocity_window_seconds:
                    visit.history.popleft()
                t0, x0, y0 = visit.history[0]
                if now > t0:
                    visit.velocity = (floor[r] - np.array([x0, y0])) / (now - t0)
                visit.last_seen, visit.floor = now, floor[r].copy()
            keys.append(key)
        self._frames[camera_id] = _CameraFrame(now, keys, list(ids), floor, unplaced)
        self._associate(camera_id, ids, floor, now)
        self._forget(now)

    # ---------------------------------------------------------------- across processes
    def _publish(self, camera_id: str, *, placed: bool) -> None:
        """Hand this camera's latest floor frame to ``on_frame`` (a local camera)."""
        if self.on_frame is None:
            return
        frame = self._frames[camera_id]
        visits = [self._visit_of.get((camera_id, t), f"{camera_id}:{t}") for t in frame.track_ids]
        self.on_frame(
            FloorFrame(
                camera_id,
                frame.timestamp,
                list(frame.track_ids),
                frame.floor.copy(),
                visits,
                [
                    self._visits[k].first_seen if k in self._visits else frame.timestamp
                    for k in visits
                ],
                frame.unplaced,
                placed=placed,
            )
        )

    def update_remote(self, frame: FloorFrame) -> None:
        """Another process's camera's latest floor frame (see :class:`FloorFrame`): its
        tracks keep the visits their process gave them, take part in hand-overs and
        overlap association here, and count in :meth:`count`. A frame no newer than the
        camera's latest is ignored."""
        with self._lock:
            if frame.camera_id not in {c.id for c in self.layout.cameras}:
                return
            latest = self._frames.get(frame.camera_id)
            if latest is not None and frame.timestamp <= latest.timestamp:
                return
            self.remote_cameras.add(frame.camera_id)
            floor = np.asarray(frame.floor, np.float64).reshape(-1, 2)
            self._occupancy.update_floor(
                frame.camera_id,
                frame.timestamp,
                floor if frame.placed else None,
                len(frame.track_ids) + frame.unplaced,
            )
            if not frame.placed:
                self._frames[frame.camera_id] = _CameraFrame(
                    frame.timestamp, [], [], np.zeros((0, 2)), frame.unplaced
                )
                return
            self._update_floor(
                frame.camera_id,
                frame.timestamp,
                [int(t) for t in frame.track_ids],
                floor,
                frame.unplaced,
                {
                    int(t): (key, began)
                    for t, key, began in zip(
                        frame.track_ids, frame.visits, frame.first_seen, strict=True
                    )
                },
            )

    def _second_boxes(
        self,
        camera_id: str,
        now: float,
        track_ids: list[int],
        xyxy: npt.NDArray[np.floating],
        floor: FloatArray,
        on_floor: npt.NDArray[np.bool_],
    ) -> list[int | None]:
        """Per track of a local camera's frame, the track whose person it is: ``None`` for a
        second box on a person another track of the camera holds now. A track first seen
        with its box and an older track's each at least :data:`OCCLUDED_SHARE` inside the
        other is that track's second box for as long as it is never seen apart from it: in
        a frame without the older track, a box so placed on the older track's last box is
        that person, missed by the older track (the older track's id stands for it). A
        second box never starts a visit of its own; its events carry its person's visit."""
        boxes = np.asarray(xyxy, np.float64).reshape(-1, 4)
        row_of = {track_id: r for r, track_id in enumerate(track_ids)}
        people: list[int | None] = list(track_ids)
        for r, track_id in enumerate(track_ids):
            track = (camera_id, track_id)
            main = self._second_box_of.get(track)
            if main is None:
                if track in self._boxes:
                    continue
                known = [
                    c
                    for c, other in enumerate(track_ids)
                    if c != r
                    and (camera_id, other) in self._boxes
                    and (camera_id, other) not in self._second_box_of
                ]
                share = mutual_cover(boxes[[r]], boxes[known])[0]
                if (
                    len(known)
                    and share.max() >= OCCLUDED_SHARE
                    # Not where it may continue a visit: someone back from behind another.
                    and not (
                        on_floor[r]
                        and self._hand_over_candidates(camera_id, [r], track_ids, floor, now)
                    )
                ):
                    self._second_box_of[track] = track_ids[known[int(share.argmax())]]
                    people[r] = None
                continue
            if (
                main in row_of
                and mutual_cover(boxes[[r]], boxes[[row_of[main]]])[0, 0] >= OCCLUDED_SHARE
            ):
                people[r] = None
                continue
            del self._second_box_of[track]  # seen apart: a person of its own from now on
        for r, person in enumerate(people):
            if person is not None:
                self._boxes[(camera_id, person)] = (now, boxes[r])
        return people

    def _detach_duplicates(self, camera_id: str, track_ids: list[int]) -> None:
        """One camera sees two tracks of one visit at once: they are two people. The one
        that walks on most steadily keeps it (see :meth:`_keeps_visit`); the others
        start visits of their own."""
        if camera_id in self.remote_cameras:
            return  # the camera's own process decides its tracks' visits
        by_key: dict[str, list[int]] = {}
        for track_id in track_ids:
            key = self._visit_of.get((camera_id, track_id))
            if key is not None:
                by_key.setdefault(key, []).append(track_id)
        for tracks in by_key.values():
            if len(tracks) < 2:
                continue
            keep = tracks[0]
            for track_id in tracks[1:]:
                if not self._keeps_visit((camera_id, keep), (camera_id, track_id)):
                    keep = track_id
            for track_id in tracks:
                if track_id != keep:
                    self._visit_of[(camera_id, track_id)] = f"{camera_id}:{track_id}"

    def _keeps_visit(self, end: tuple[str, int], rival: tuple[str, int]) -> bool:
        """Of two tracks that cannot both be one visit's person, does ``end`` keep it? The
        one whose velocity turned less (a swap turns a track onto another person's
        course); while either is too young to tell, the older one."""
        turns = self._turn(*end), self._turn(*rival)
        if turns[0] is None or turns[1] is None:
            return self._spans.get(end, (0.0,))[0] <= self._spans.get(rival, (0.0,))[0]
        return turns[0] <= turns[1]

    def _detach_diverged(self, camera_id: str, track_ids: list[int], floor: FloatArray) -> None:
        """A track whose visit another camera sees now more than twice
        ``merge_distance_m`` away: one of the two follows someone else (a tracker swapped
        people). The other one of :meth:`_keeps_visit` leaves the visit for its own (a
        track that began the visit keeps it)."""
        for track_id, point in zip(track_ids, floor, strict=True):
            key = self._visit_of.get((camera_id, track_id))
            visit = self._visits.get(key) if key is not None else None
            if visit is None:
                continue
            for other_id, sighting in list(visit.by_camera.items()):
                frame = self._frames.get(other_id)
                if (
                    other_id != camera_id
                    and frame is not None
                    and sighting.timestamp == frame.timestamp
                    and sighting.track_id in frame.track_ids
                    and float(np.hypot(*(point - sighting.floor))) > 2 * self.merge_distance_m
                ):
                    this_end, other_end = (camera_id, track_id), (other_id, sighting.track_id)
                    keeps = self._keeps_visit(this_end, other_end)
                    leaver = other_end if keeps else this_end
                    stayer = other_end if leaver == this_end else this_end
                    if leaver[0] in self.remote_cameras:
                        # Its own process splits it off, unless it began the visit.
                        if f"{leaver[0]}:{leaver[1]}" == visit.key:
                            self._split_off(*stayer, visit)
                    elif not self._split_off(*leaver, visit):
                        self._split_off(*stayer, visit)
                    break

    def _turn(self, camera_id: str, track_id: int) -> float | None:
        """How much a track's floor velocity changed (m/s): the last
        ``velocity_window_seconds`` against the window before (None without that history)."""
        path = self._paths.get((camera_id, track_id))
        if not path or path[-1][0] - path[0][0] < 1.5 * self.velocity_window_seconds:
            return None
        now = path[-1][0]
        middle = min(path, key=lambda p: abs(p[0] - (now - self.velocity_window_seconds)))
        first, last = path[0], path[-1]
        if not (first[0] < middle[0] < last[0]):
            return None
        before = (np.array(middle[1:]) - np.array(first[1:])) / (middle[0] - first[0])
        recent = (np.array(last[1:]) - np.array(middle[1:])) / (last[0] - middle[0])
        return float(np.hypot(*(recent - before)))

    def _split_off(self, camera_id: str, track_id: int, visit: _Visit) -> bool:
        """The camera's track leaves ``visit`` for a visit of its own (False when it began
        ``visit`` or does not hold it)."""
        own = f"{camera_id}:{track_id}"
        if own == visit.key or own in self._visits or camera_id in self.remote_cameras:
            return False
        if self._visit_of.get((camera_id, track_id)) != visit.key:
            return False
        self._visit_of[(camera_id, track_id)] = own
        mine = visit.by_camera.pop(camera_id, None)
        if mine is not None and mine.track_id != track_id:
            visit.by_camera[camera_id] = mine
            mine = None
        if mine is not None:
            split = _Visit(own, mine.timestamp, mine.floor.copy(), mine.timestamp)
            split.by_camera[camera_id] = mine
            self._visits[own] = split
        frame = self._frames.get(camera_id)
        if frame is not None:
            frame.visits = [
                own if t == track_id else k
                for t, k in zip(frame.track_ids, frame.visits, strict=True)
            ]
        return True

    def _associate(self, camera_id: str, ids: list[int], floor: FloatArray, now: float) -> None:
        """Join the visits of one person seen by two cameras at once: the same pair of
        tracks nearest each other (within ``merge_distance_m``) in two updates running."""
        streaks: dict[tuple[tuple[str, int], tuple[str, int]], int] = {}
        for other_id, other in self._frames.items():
            if other_id == camera_id or abs(now - other.timestamp) > self.time_tolerance_seconds:
                continue
            if not len(ids) or not len(other.visits):
                continue
            gaps = np.sqrt(((floor[:, None] - other.floor[None]) ** 2).sum(axis=2))
            # Pairs beyond the gate all cost the same, so a far pair cannot pull a near one.
            gated = np.where(gaps <= self.merge_distance_m, gaps, 1e6)
            rows, cols = linear_sum_assignment(gated)
            other_tracks = other.track_ids
            for r, c in zip(rows.tolist(), cols.tolist(), strict=True):
                if gaps[r, c] > self.merge_distance_m:
                    continue
                ends = sorted([(camera_id, ids[r]), (other_id, other_tracks[c])])
                pair = (ends[0], ends[1])
                streaks[pair] = self._streaks.get(pair, 0) + 1
                if streaks[pair] >= 2:
                    mine, theirs = self.visit_of(camera_id, ids[r]), other.visits[c]
                    if mine != theirs:
                        # The pair agrees better than a track that holds the other's visit
                        # in its camera now (a hand-over to the wrong track): it lets go.
                        self._release(camera_id, theirs, ids[r], (other_id, other_tracks[c]))
                        self._release(other_id, mine, other_tracks[c], (camera_id, ids[r]))
                        self._join(mine, theirs, now)
        # Pairs of this camera with others that did not match now start again.
        self._streaks = {
            k: v for k, v in self._streaks.items() if k[0][0] != camera_id and k[1][0] != camera_id
        }
        self._streaks.update(streaks)

    def _release(self, camera_id: str, key: str, paired: int, partner: tuple[str, int]) -> None:
        """Visit ``key`` is held in ``camera_id`` by a track other than ``paired`` that
        it sees now and that did not begin it: that track leaves it for a visit of its own,
        unless it is older than ``partner`` (the other camera's track of the pair, which
        holds ``key``): then the pair is the newcomer."""
        if camera_id in self.remote_cameras:
            return  # the camera's own process decides its tracks' visits
        visit = self._visits.get(key)
        frame = self._frames.get(camera_id)
        holder = visit.by_camera.get(camera_id) if visit is not None else None
        if visit is None or frame is None or holder is None or holder.track_id == paired:
            return
        own = f"{camera_id}:{holder.track_id}"
        if holder.track_id not in frame.track_ids or own == key or own in self._visits:
            return
        if self._visit_of.get((camera_id, holder.track_id)) != key:
            return
        held_since = self._spans.get((camera_id, holder.track_id), (math.inf,))[0]
        if held_since < self._spans.get(partner, (math.inf,))[0]:
            return
        self._visit_of[(camera_id, holder.track_id)] = own
        self._visits[own] = _Visit(own, holder.timestamp, holder.floor.copy(), holder.timestamp)
        self._visits[own].by_camera[camera_id] = holder
        del visit.by_camera[camera_id]
        frame.visits = [
            own if t == holder.track_id else k
            for t, k in zip(frame.track_ids, frame.visits, strict=True)
        ]

    def _join(self, a: str, b: str, now: float) -> None:
        """One visit from two: the one that began first (then the smaller key: processes
        that share cameras decide alike) keeps its key."""
        if a == b or a not in self._visits or b not in self._visits:
            return
        if any(a in frame.visits and b in frame.visits for frame in self._frames.values()):
            return  # one camera sees both now: two people
        if self._seen_together(a, b, now):
            return
        first, second = sorted(
            (self._visits[a], self._visits[b]), key=lambda v: (v.first_seen, v.key)
        )
        for camera_id, sighting in second.by_camera.items():
            if camera_id not in first.by_camera or (
                sighting.timestamp > first.by_camera[camera_id].timestamp
            ):
                first.by_camera[camera_id] = sighting
        for track_key, key in list(self._visit_of.items()):
            if key == second.key:
                self._visit_of[track_key] = first.key
        for frame in self._frames.values():
            frame.visits = [first.key if k == second.key else k for k in frame.visits]
        if second.last_seen > first.last_seen:
            first.last_seen, first.floor = second.last_seen, second.floor
            first.velocity, first.history = second.velocity, second.history
        first.first_seen = min(first.first_seen, second.first_seen)
        first.joined += [second.key, *second.joined]
        self._merge_stays(first.key, second.key, now)
        del self._visits[second.key]
        self.handovers += 1

    def _seen_together(self, a: str, b: str, now: float) -> bool:
        """One camera saw a track of visit ``a`` and another of visit ``b`` at once within
        the last ``link_seconds`` (their lifetimes overlap then): two people, whatever two
        other cameras make of them now. Older sightings may be of a track since swapped."""
        tracks_a = [t for t, key in self._visit_of.items() if key == a]
        tracks_b = [t for t, key in self._visit_of.items() if key == b]
        for camera_a, track_a in tracks_a:
            first_a, last_a = self._spans.get((camera_a, track_a), (math.inf, -math.inf))
            for camera_b, track_b in tracks_b:
                if camera_a != camera_b or track_a == track_b:
                    continue
                first_b, last_b = self._spans.get((camera_b, track_b), (math.inf, -math.inf))
                recent = min(last_a, last_b) >= now - self.link_seconds
                if recent and first_a <= last_b and first_b <= last_a:
                    return True
        return False

    def _hand_over(
        self,
        camera_id: str,
        new_rows: list[int],
        ids: list[int],
        floor: FloatArray,
        now: float,
    ) -> None:
        candidates = self._hand_over_candidates(camera_id, new_rows, ids, floor, now)
        taken_rows: set[int] = set()
        taken_visits: set[str] = set()
        for _, r, key in sorted(candidates):
            if r in taken_rows or key in taken_visits:
                continue
            taken_rows.add(r)
            taken_visits.add(key)
            self._visit_of[(camera_id, ids[r])] = key
            self.handovers += 1

    def _hand_over_candidates(
        self,
        camera_id: str,
        new_rows: list[int],
        ids: list[int],
        floor: FloatArray,
        now: float,
    ) -> list[tuple[float, int, str]]:
        """(rank, row, visit) of each visit a new track of ``new_rows`` may continue."""
        here = set(ids)
        candidates: list[tuple[float, int, str]] = []
        for key, visit in self._visits.items():
            mine = visit.by_camera.get(camera_id)
            if mine is not None and mine.track_id in here:
                continue  # this camera sees this visit now, as another track
            # Seen by another camera in its latest frame, at about this moment.
            others = [
                s
                for cam, s in visit.by_camera.items()
                if cam != camera_id
                and cam in self._frames
                and s.timestamp == self._frames[cam].timestamp
                and abs(now - s.timestamp) <= self.time_tolerance_seconds
            ]
            for r in new_rows:
                if others:
                    gap = min(float(np.hypot(*(floor[r] - s.floor))) for s in others)
                    if gap <= self.merge_distance_m:
                        candidates.append((gap, r, key))
                    continue
                unseen = now - visit.last_seen
                if 0 < unseen <= self.link_seconds:
                    velocity = visit.velocity
                    speed = float(np.hypot(*velocity))
                    if speed > WALKING_SPEED_M_S:
                        velocity = velocity * (WALKING_SPEED_M_S / speed)
                    predicted = visit.floor + velocity * unseen
                    # Where it was, or where it was heading (a velocity may be jitter).
                    gap = min(
                        float(np.hypot(*(floor[r] - predicted))),
                        float(np.hypot(*(floor[r] - visit.floor))),
                    )
                    if gap <= self.link_distance_m + WALKING_SPEED_M_S * unseen:
                        # Gap hand-overs rank after every overlap hand-over.
                        candidates.append((self.merge_distance_m + gap, r, key))
        return candidates

    def _forget(self, now: float) -> None:
        """Drop visits unseen for a minute past any hand-over (every 10 s of clock)."""
        if now < self._next_forget:
            return
        self._next_forget = now + FORGET_EVERY_SECONDS
        horizon = now - self.link_seconds - self.max_age_seconds - 60.0
        for key in [k for k, v in self._visits.items() if v.last_seen < horizon]:
            self._close_stays(key, self._visits[key].last_seen)
            self._end_visit(self._visits.pop(key))
        for key in [k for k in self._stays if k not in self._visits]:
            self._close_stays(key, now)
        self._visit_of = {
            track: key for track, key in self._visit_of.items() if key in self._visits
        }
        live = {(c, s.track_id) for v in self._visits.values() for c, s in v.by_camera.items()}
        self._spans = {k: span for k, span in self._spans.items() if k in self._visit_of}
        self._paths = {k: path for k, path in self._paths.items() if k in self._visit_of}
        self._boxes = {k: seen for k, seen in self._boxes.items() if seen[0] >= horizon}
        self._second_box_of = {
            k: main for k, main in self._second_box_of.items() if (k[0], main) in self._boxes
        }
        self._streaks = {k: n for k, n in self._streaks.items() if k[0] in live and k[1] in live}

    def count(self, now: float | None = None) -> int:
        """People in the store now over every fresh camera, a person seen by two cameras
        once (:class:`~storesense.zones.floorplan.StoreOccupancy` over the same updates)."""
        with self._lock:
            return self._occupancy.count(now)

    def counts(self, now: float | None = None) -> StoreWideCounts:
        """:meth:`count` and the people in each store-wide floor zone, from one merge of
        the cameras' people (each person once, placed at the mean of their feet). A zone
        also keeps a person every camera lost (hidden behind someone) where their last
        floor velocity carries them, as a camera's zones do: for the ``lost_after_seconds``
        of the camera that saw them last (its ``occupancy_hold_seconds`` when it is not
        ``occlusion_aware``)."""
        with self._lock:
            unplaced, floor = self._occupancy.people(now)
            placed = np.vstack([floor, self._hidden(now)]) if self._zones else floor
            approaching = dict(self._approaching)
        inside = self._zone_polygons.contains(np.asarray(placed, np.float64).reshape(-1, 2))
        zones = {zone.id: int(n) for zone, n in zip(self._zones, inside.sum(axis=0), strict=True)}
        return StoreWideCounts(unplaced + len(floor), zones, approaching)

    def _hidden(self, now: float | None) -> FloatArray:
        """Where the visits no fresh camera sees now but one saw lately are (N, 2 metres)."""
        return np.array(list(self._hidden_visits(now).values())).reshape(-1, 2)

    def _hidden_visits(self, now: float | None) -> dict[str, FloatArray]:
        """:meth:`_hidden` by visit key."""
        if not self._frames:
            return {}
        if now is None:
            now = max(frame.timestamp for frame in self._frames.values())
        seen = {
            key
            for frame in self._frames.values()
            if now - frame.timestamp <= self.max_age_seconds
            for key in frame.visits
        }
        points: dict[str, FloatArray] = {}
        for key, visit in self._visits.items():
            unseen = now - visit.last_seen
            if key in seen or unseen <= 0 or not visit.by_camera:
                continue
            last = max(visit.by_camera, key=lambda c: visit.by_camera[c].timestamp)
            camera = self.layout.camera(last)
            hold = camera.lost_after_seconds if camera.occlusion_aware else 0.0
            if unseen > max(hold, camera.occupancy_hold_seconds):
                continue
            velocity = visit.velocity
            speed = float(np.hypot(*velocity))
            if speed > WALKING_SPEED_M_S:
                velocity = velocity * (WALKING_SPEED_M_S / speed)
            points[key] = visit.floor + velocity * unseen
        return points

    # ------------------------------------------------------------ store-wide floor zones
    def take_events(self) -> list[Event]:
        """The store-wide floor zones' events since the last call (a local camera's
        analytics take them after each update and pass them on with its own)."""
        with self._lock:
            events, self._zone_events = self._zone_events, []
        return events

    def finish(self, camera_id: str, timestamp: float) -> list[Event]:
        """A local camera's stream ended at ``timestamp`` (the shared clock): its people
        leave the floor, and once every local camera has ended, every store-wide stay
        closes (at ``timestamp`` for a visit still in the zone). Returns
        :meth:`take_events`."""
        with self._lock:
            self._finished.add(camera_id)
            self._frames.pop(camera_id, None)
            if self._zones:
                self._step_floor_zones(timestamp)
                if self._local <= self._finished:
                    for key in list(self._stays):
                        self._close_stays(key, timestamp)
                    self._approaching = dict.fromkeys(self._approaching, 0)
            if self._local <= self._finished:
                for key in [k for k, v in self._visits.items() if not self._began_elsewhere(k)]:
                    self._end_visit(self._visits.pop(key))
        return self.take_events()

    def _began_elsewhere(self, key: str) -> bool:
        """Another process runs the camera that began visit ``key`` (the key names it)."""
        return visit_camera(key) in self.remote_cameras

    def _end_visit(self, visit: _Visit) -> None:
        """A ``visit_end`` event for a visit no camera will continue: its time in the store
        (``dwell_seconds``, from its first sighting by any camera to its last) and the keys
        of the visits joined into it (``joined_visits``), by the process that began it."""
        if visit.last_seen > visit.first_seen:
            attributes: dict[str, object] = {
                "dwell_seconds": round(visit.last_seen - visit.first_seen, 3)
            }
            if visit.joined:
                attributes[JOINED_VISITS_ATTRIBUTE] = list(visit.joined)
            self._emit(EventType.VISIT_END, STORE_CAMERA, visit.key, visit.last_seen, attributes)

    def _placed(self, now: float) -> tuple[dict[str, FloatArray], set[str]]:
        """Where each visit on the floor is now: the mean of its feet over the fresh
        cameras that see it, else where a hidden one is carried (:meth:`_hidden_visits`);
        and the keys of the visits seen."""
        sums: dict[str, tuple[FloatArray, int]] = {}
        for frame in self._frames.values():
            if now - frame.timestamp > self.max_age_seconds:
                continue
            for key, point in zip(frame.visits, frame.floor, strict=True):
                total, n = sums.get(key, (np.zeros(2), 0))
                sums[key] = (total + point, n + 1)
        placed = {key: total / n for key, (total, n) in sums.items()}
        seen = set(placed)
        for key, point in self._hidden_visits(now).items():
            placed.setdefault(key, point)
        return placed, seen

    def _step_floor_zones(self, now: float) -> None:
        """Step every visit's stays in the store-wide floor zones to ``now`` (a camera's
        update): entries and exits with each zone's hysteresis, and the approaches."""
        if now < self._zones_clock:
            return  # a camera a little behind another: the zones moved on already
        self._zones_clock = now
        placed, seen = self._placed(now)
        # Every placed camera's view of a moment is in (a remote one comes a little later).
        views_in = min(
            (
                self._frames[c.id].timestamp if c.id in self._frames else -math.inf
                for c in self.layout.cameras
                if c.homography is not None and c.id not in self._finished
            ),
            default=now,
        )
        keys = list(placed)
        points = np.array([placed[k] for k in keys]).reshape(-1, 2)
        member = self._zone_polygons.contains(points)
        row_of = {key: row for row, key in enumerate(keys)}
        stepping = [k for k in keys if member[row_of[k]].any()]
        stepping += [k for k in self._stays if k not in row_of or not member[row_of[k]].any()]
        for key in stepping:
            row = row_of.get(key)
            for col, zone in enumerate(self._zones):
                stays = self._stays.setdefault(key, {})
                stay = stays.get(zone.id)
                # Carried on while hidden, a visit stays in a zone but never enters one.
                inside = (
                    row is not None
                    and bool(member[row, col])
                    and (key in seen or (stay is not None and stay.inside))
                )
                if stay is None:
                    if not inside:
                        continue
                    stay = stays[zone.id] = _FloorStay()
                self._step_stay(key, zone, stay, inside, row is not None, views_in, now)
                if not (stay.inside or stay.approach_sent) and math.isnan(stay.pending):
                    del stays[zone.id]
            if not self._stays.get(key):
                self._stays.pop(key, None)
        if now >= self._next_approach_check:
            self._next_approach_check = now + APPROACH_CHECK_SECONDS
            self._announce_approaches(keys, points, member, seen, now)
        approaching = dict.fromkeys(self._approaching, 0)
        for key, stays in self._stays.items():
            if key not in seen:
                continue  # an approach ends when every camera loses the visit
            for zone_id, stay in stays.items():
                if stay.approach_until >= now and not stay.inside and math.isnan(stay.pending):
                    approaching[zone_id] += 1
        self._approaching = approaching

    def _step_stay(
        self,
        key: str,
        zone: ZoneConfig,
        stay: _FloorStay,
        inside: bool,
        placed: bool,
        views_in: float,
        now: float,
    ) -> None:
        """One (visit, zone) step with the zone's ``min_inside_seconds`` /
        ``min_outside_seconds`` / ``min_dwell_seconds``, as a camera zone steps a track.
        The entry is reported (dated when the visit stepped in) once every placed camera's
        view of that moment is in (``views_in``, at most ``max_age_seconds`` later): a
        person two processes' cameras first see as two visits, joined as soon as both
        views are in, enters once."""
        if inside == stay.inside:
            stay.pending = math.nan
        else:
            if math.isnan(stay.pending):
                stay.pending = now
            threshold = zone.min_outside_seconds if stay.inside else zone.min_inside_seconds
            visit = self._visits.get(key)
            # Off the floor but within a hand-over: it may walk on in another camera's view.
            decided = placed or visit is None or now - visit.last_seen > self.link_seconds
            if now - stay.pending >= threshold and decided:
                if stay.inside:
                    self._exit_stay(key, zone.id, stay, stay.pending)
                else:
                    stay.inside, stay.entered_at = True, stay.pending
                stay.pending = math.nan
        if not stay.inside or stay.reported:
            return
        if now - stay.entered_at < zone.min_dwell_seconds:
            return
        if views_in >= stay.entered_at or now - stay.entered_at > self.max_age_seconds:
            self._emit(EventType.ZONE_ENTER, zone.id, key, stay.entered_at)
            stay.reported, stay.visit = True, key

    def _exit_stay(
        self, key: str, zone_id: str, stay: _FloorStay, at: float, closed_by: str = ""
    ) -> None:
        """Visit ``key``'s stay ends at ``at``: its exit (with the entry first if the
        stay was not reported yet but lasted ``min_dwell_seconds``), under the key its
        entry carries."""
        dwell = at - stay.entered_at
        if stay.reported or dwell >= self._zone_by_id[zone_id].min_dwell_seconds:
            if not stay.reported:
                self._emit(EventType.ZONE_ENTER, zone_id, key, stay.entered_at)
                stay.visit = key
            attributes: dict[str, object] = {"dwell_seconds": round(dwell, 3)}
            if closed_by:
                attributes["closed_by"] = closed_by
            elif stay.visit != key:
                attributes[JOINS_ATTRIBUTE] = key
            self._emit(EventType.ZONE_EXIT, zone_id, stay.visit, at, attributes)
        stay.inside, stay.reported, stay.entered_at = False, False, math.nan
        stay.approach_sent, stay.approach_until = False, -math.inf

    def _close_stays(self, key: str, at: float) -> None:
        """The visit ended: exit every zone it is in (:meth:`_close_stay`)."""
        for zone_id, stay in self._stays.pop(key, {}).items():
            self._close_stay(key, zone_id, stay, at)

    def _close_stay(
        self, key: str, zone_id: str, stay: _FloorStay, at: float, closed_by: str = ""
    ) -> None:
        """Exit a stay that is inside when it first stepped out, if it was waiting out a
        hysteresis; else at ``at``."""
        if stay.inside:
            out = at if math.isnan(stay.pending) else stay.pending
            self._exit_stay(key, zone_id, stay, max(out, stay.entered_at), closed_by)

    def _merge_stays(self, keep: str, drop: str, now: float) -> None:
        """Visit ``drop`` joined ``keep`` at ``now``. Per zone, a stay ``drop`` reported
        goes on as ``keep``'s (no exit, no second entry) unless ``keep`` reported one
        there too: then it exits now (``closed_by: joined``), so every entry gets one
        exit. A stay not reported yet goes on where ``keep`` is not in the zone yet (or
        entered later without reporting it); else it ends unreported."""
        dropped = self._stays.pop(drop, None)
        if not dropped:
            return
        kept = self._stays.setdefault(keep, {})
        for zone_id, stay in dropped.items():
            mine = kept.get(zone_id)
            if stay.inside and stay.reported:
                if mine is not None and mine.inside and mine.reported:
                    self._close_stay(keep, zone_id, stay, now, "joined")
                else:
                    kept[zone_id] = stay
            elif mine is None or (
                stay.inside
                and not mine.reported
                and (not mine.inside or stay.entered_at < mine.entered_at)
            ):
                kept[zone_id] = stay

    def _announce_approaches(
        self,
        keys: list[str],
        points: FloatArray,
        member: npt.NDArray[np.bool_],
        seen: set[str],
        now: float,
    ) -> None:
        """Visits seen walking (at least :data:`MIN_APPROACH_SPEED_M_S`) whose floor
        velocity reaches a zone within its ``approach_seconds``: approaching from now until
        they enter, every camera loses them, or the predicted entry time has passed
        (plus one re-evaluation interval), as a camera zone's ``approaching``."""
        limits = np.array([zone.approach_seconds for zone in self._zones], np.float64)
        horizon = float(limits.max()) if len(limits) else 0.0
        if horizon <= 0:
            return
        rows = []
        for row, key in enumerate(keys):
            visit = self._visits.get(key)
            if key not in seen or visit is None:
                continue
            speed = float(np.hypot(*visit.velocity))
            if speed >= MIN_APPROACH_SPEED_M_S:
                rows.append(row)
        if not rows:
            return
        velocity = np.array([self._visits[keys[r]].velocity for r in rows]).reshape(-1, 2)
        speed = np.hypot(velocity[:, 0], velocity[:, 1])[:, None]
        velocity = velocity * np.minimum(1.0, WALKING_SPEED_M_S / speed)
        eta = self._zone_polygons.ray_entry_fraction(points[rows], velocity * horizon) * horizon
        for i, row in enumerate(rows):
            key = keys[row]
            for col in np.flatnonzero((eta[i] <= limits) & ~member[row]).tolist():
                zone_id = self._zones[col].id
                stay = self._stays.setdefault(key, {}).setdefault(zone_id, _FloorStay())
                if stay.inside or stay.approach_sent or not math.isnan(stay.pending):
                    continue
                stay.approach_sent = True
                stay.approach_until = now + float(eta[i, col]) + APPROACH_CHECK_SECONDS
                eta_seconds = round(float(eta[i, col]), 2)
                self._emit(EventType.APPROACHING, zone_id, key, now, {"eta_seconds": eta_seconds})

    def _emit(
        self,
        type: EventType,
        zone_id: str,
        key: str,
        at: float,
        attributes: dict[str, object] | None = None,
    ) -> None:
        """A store-wide event of visit ``key``, by the process that runs the camera in the
        key (the one that began the visit): one person, one event across processes. Its id
        hashes the visit key, the zones' configuration and ``at`` (deterministic)."""
        if self._began_elsewhere(key):
            return
        camera_id, _, track = key.rpartition(":")
        self._zone_events.append(
            Event.create(
                type,
                self.layout.store.id,
                STORE_CAMERA,
                zone_id,
                int(track) if track.lstrip("-").isdigit() else 0,
                at,
                {**(attributes or {}), VISIT_ATTRIBUTE: key},
                run_id=f"{camera_id}@{self._zones_scope}",
            )
        )
