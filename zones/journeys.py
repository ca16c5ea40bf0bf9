"""Customer journeys: visits, paths between zones, transitions and top paths.

Pure functions over :class:`~storesense.zones.events.Event` lists (no I/O), so
``storesense count`` and the service's ``/v1/journeys`` compute the same figures
from the same events. Everything is anonymous: a visit is a track (re-linked across
fragments), never an identity.

Definitions (also in ``docs/guides/journeys.md``):

* **visit**: one person's continuous presence, the events sharing one visit key: the
  ``visit_id`` attribute that :class:`VisitLinker` stamps on each event, else
  ``camera:track``. A zone stay that the zone engine's re-link handed from track M to
  track N (N's ``zone_exit`` is dated from M's ``zone_enter``) joins M's and N's visits.
* **zone stay**: one ``zone_exit`` (entered at ``timestamp - dwell_seconds``); a stay
  belongs to the time range its exit falls in.
* **path**: the zones a visit stayed in for at least ``path_min_seconds``, ordered by
  entry time, consecutive repeats collapsed; time outside every zone is ignored.
  A visit with an empty path is not counted.
* **transition** A→B: a consecutive pair of a path, counted over all visits.
* **top paths**: paths cut to their first ``path_max_length`` zones, most frequent first.

Example:
    >>> from storesense.zones.events import Event, EventType
    >>> def stay(track, zone, start, seconds):
    ...     return [Event.create(EventType.ZONE_ENTER, "s", "c", zone, track, start),
    ...             Event.create(EventType.ZONE_EXIT, "s", "c", zone, track, start + seconds,
    ...                          {"dwell_seconds": seconds})]
    >>> events = stay(1, "door", 0, 3) + stay(1, "aisle", 4, 0.5) + stay(1, "till", 5, 9)
    >>> events += stay(2, "door", 1, 2) + stay(2, "till", 4, 2)
    >>> summary = summarise_journeys(events, path_min_seconds=1.0).to_dict()
    >>> summary["visits"], summary["transitions"]
    (2, {'door': {'till': 2}})
    >>> summary["paths"]
    [{'path': ['door', 'till'], 'visits': 2}]
"""

from __future__ import annotations

import itertools
import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import numpy.typing as npt
from storesense.vision.detections import Tracks
from storesense.zones.events import Event, EventType

FloatArray = npt.NDArray[np.float64]

VISIT_ATTRIBUTE = "visit_id"
"""The event attribute that carries a visit's key (set by :class:`VisitLinker`)."""

JOINS_ATTRIBUTE = "visit_joins"
"""Set on the events of a track whose visit was decided after its first events were
stamped (:class:`VisitLinker`'s overlap hand-over): the key those first events carry."""

JOINED_VISITS_ATTRIBUTE = "joined_visits"
"""On a ``visit_end``: the keys of the visits the ended visit absorbed."""

LINK_ATTRIBUTES = frozenset({VISIT_ATTRIBUTE, JOINS_ATTRIBUTE, JOINED_VISITS_ATTRIBUTE, "group_id"})
"""Event attributes that tie events of one person together: shown to admin keys only."""

_TAKEOVER_TOLERANCE_SECONDS = 0.0015
"""``dwell_seconds`` is rounded to 1 ms: an exit's entry time matches an enter within this."""


def visit_camera(key: str) -> str:
    """The camera that began a visit, from its key ``camera:track`` (``""`` for none).

    >>> visit_camera("cam2:17"), visit_camera("no-camera")
    ('cam2', '')
    """
    return key.rpartition(":")[0]


def visit_key(event: Event) -> str:
    """The visit an event belongs to: its ``visit_id`` attribute, else ``camera:track``.

    >>> visit_key(Event.create(EventType.ZONE_ENTER, "s", "cam1", "z", 7, 0.0))
    'cam1:7'
    """
    given = event.attributes.get(VISIT_ATTRIBUTE)
    return str(given) if given else f"{event.camera_id}:{event.track_id}"


@dataclass(frozen=True, order=True)
class ZoneStay:
    """One visit's time in one zone (from a ``zone_exit`` event)."""

    entered: float
    exited: float
    zone: str

    @property
    def seconds(self) -> float:
        return self.exited - self.entered


class _UnionFind:
    def __init__(self) -> None:
        self.parent: dict[str, str] = {}

    def find(self, key: str) -> str:
        parent = self.parent.setdefault(key, key)
        if parent == key:
            return key
        root = self.find(parent)
        self.parent[key] = root
        return root

    def union(self, a: str, b: str) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            # The earlier-named visit keeps its key, so keys are stable.
            keep, drop = (ra, rb) if ra <= rb else (rb, ra)
            self.parent[drop] = keep


def _joined(events: Iterable[Event]) -> tuple[_UnionFind, list[tuple[Event, str, float]]]:
    """The visits joined by hand-overs, and every ``zone_exit`` with its own key and entry."""
    enters: dict[tuple[str, str], list[tuple[float, str]]] = defaultdict(list)
    exits: list[tuple[Event, str, float]] = []
    links = _UnionFind()
    for event in events:
        joins = event.attributes.get(JOINS_ATTRIBUTE)
        if joins:
            links.union(visit_key(event), str(joins))
        if event.type == EventType.ZONE_ENTER:
            enters[(event.camera_id, event.target)].append((event.timestamp, visit_key(event)))
        elif event.type == EventType.ZONE_EXIT:
            dwell = float(event.attributes.get("dwell_seconds", 0.0))
            exits.append((event, visit_key(event), event.timestamp - dwell))
    for event, key, entered in exits:
        candidates = [
            links.find(other)
            for at, other in enters.get((event.camera_id, event.target), ())
            if abs(at - entered) <= _TAKEOVER_TOLERANCE_SECONDS
        ]
        if candidates and links.find(key) not in candidates:
            links.union(key, min(candidates))
    return links, exits


def visit_stays(events: Iterable[Event]) -> dict[str, list[ZoneStay]]:
    """Every visit's zone stays in entry order, keyed by visit (see :func:`visit_key`).

    A ``zone_exit`` whose entry has no ``zone_enter`` of its own visit but matches one of
    another visit in the same zone and camera (the zone engine's re-link handed the stay
    over) joins the two visits, and so does an event's ``visit_joins`` attribute (the
    linker decided a track's visit after its first events).
    """
    links, exits = _joined(events)
    stays: dict[str, list[ZoneStay]] = defaultdict(list)
    for event, key, entered in exits:
        stays[links.find(key)].append(ZoneStay(entered, event.timestamp, event.target))
    for visit in stays.values():
        visit.sort()
    return dict(stays)


def exit_visits(events: Iterable[Event]) -> list[tuple[Event, str]]:
    """Every ``zone_exit`` with the key of the visit :func:`visit_stays` files it under."""
    links, exits = _joined(events)
    return [(event, links.find(key)) for event, key, _ in exits]


def merge_stays(stays: Sequence[ZoneStay], gap_seconds: float = 1.0) -> list[ZoneStay]:
    """Stays in entry order, a zone's stays joined where one begins at most ``gap_seconds``
    after the previous one of that zone ended (a box flickering over the edge, a short
    occlusion): one stay from the first entry to the last exit.

    >>> merge_stays([ZoneStay(0, 0.8, "a"), ZoneStay(1.2, 1.9, "a"), ZoneStay(5, 6, "a")])
    [ZoneStay(entered=0, exited=1.9, zone='a'), ZoneStay(entered=5, exited=6, zone='a')]
    """
    if not (math.isfinite(gap_seconds) and gap_seconds >= 0):
        raise ValueError(f"gap_seconds must be a finite number >= 0, got {gap_seconds}")
    merged: list[ZoneStay] = []
    open_by_zone: dict[str, int] = {}
    for stay in sorted(stays):
        index = open_by_zone.get(stay.zone)
        if index is not None and stay.entered - merged[index].exited <= gap_seconds:
            last = merged[index]
            merged[index] = ZoneStay(last.entered, max(last.exited, stay.exited), stay.zone)
            continue
        open_by_zone[stay.zone] = len(merged)
        merged.append(stay)
    return sorted(merged)


def path_of(
    stays: Sequence[ZoneStay], min_seconds: float = 1.0, gap_seconds: float = 1.0
) -> list[str]:
    """The zones stayed in at least ``min_seconds`` (after :func:`merge_stays`), in entry
    order, consecutive repeats collapsed.

    >>> path_of([ZoneStay(0, 5, "a"), ZoneStay(6, 6.5, "b"), ZoneStay(7, 9, "a"),
    ...          ZoneStay(10, 12, "c")])
    ['a', 'c']
    >>> path_of([ZoneStay(0, 0.6, "a"), ZoneStay(0.9, 1.5, "a"), ZoneStay(3, 5, "b")])
    ['a', 'b']
    """
    if not (math.isfinite(min_seconds) and min_seconds >= 0):
        raise ValueError(f"min_seconds must be a finite number >= 0, got {min_seconds}")
    path: list[str] = []
    for stay in merge_stays(stays, gap_seconds):
        if stay.seconds >= min_seconds and (not path or path[-1] != stay.zone):
            path.append(stay.zone)
    return path


def visit_paths(
    events: Iterable[Event], min_seconds: float = 1.0, gap_seconds: float = 1.0
) -> dict[str, list[str]]:
    """Every visit's non-empty path (see :func:`path_of`), keyed by visit."""
    paths = {
        key: path_of(stays, min_seconds, gap_seconds) for key, stays in visit_stays(events).items()
    }
    return {key: path for key, path in paths.items() if path}


def count_transitions(paths: Iterable[Sequence[str]]) -> dict[str, dict[str, int]]:
    """``{a: {b: n}}``: how often b directly follows a over all paths.

    >>> count_transitions([["a", "b", "c"], ["a", "b"]])
    {'a': {'b': 2}, 'b': {'c': 1}}
    """
    counts: dict[str, dict[str, int]] = {}
    for path in paths:
        for a, b in itertools.pairwise(path):
            row = counts.setdefault(a, {})
            row[b] = row.get(b, 0) + 1
    return counts


def top_paths(
    paths: Iterable[Sequence[str]], max_length: int = 6, limit: int | None = None
) -> list[tuple[tuple[str, ...], int]]:
    """Path prefixes of at most ``max_length`` zones with their visit counts, most first
    (ties in path order).

    >>> top_paths([["a", "b", "c"], ["a", "b", "d"], ["c"]], max_length=2)
    [(('a', 'b'), 2), (('c',), 1)]
    """
    if max_length < 1:
        raise ValueError(f"max_length must be >= 1, got {max_length}")
    counts = Counter(tuple(path[:max_length]) for path in paths if path)
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return ranked if limit is None else ranked[:limit]


def transition_error(
    ours: Mapping[str, Mapping[str, int]], truth: Mapping[str, Mapping[str, int]]
) -> float:
    """Sum of |ours - truth| over every pair, divided by the truth's total (0 when both
    are empty, inf when only the truth is).

    >>> transition_error({"a": {"b": 9, "c": 1}}, {"a": {"b": 10}})
    0.2
    """
    pairs = {(a, b) for table in (ours, truth) for a, row in table.items() for b in row}
    total = sum(n for row in truth.values() for n in row.values())
    wrong = sum(
        abs(ours.get(a, {}).get(b, 0) - truth.get(a, {}).get(b, 0)) for a, b in sorted(pairs)
    )
    if total == 0:
        return 0.0 if wrong == 0 else math.inf
    return wrong / total


def path_agreement(
    ours: Iterable[tuple[Sequence[str], int]], truth: Iterable[tuple[Sequence[str], int]]
) -> float:
    """Share of visits whose whole path both agree on: sum over paths of
    min(ours, truth) / max(our visits, true visits) (1 = identical path counts).

    >>> path_agreement([(("a", "b"), 3), (("a",), 1)], [(("a", "b"), 4)])
    0.75
    """
    mine = Counter({tuple(p): n for p, n in ours})
    real = Counter({tuple(p): n for p, n in truth})
    scale = max(sum(mine.values()), sum(real.values()))
    return 1.0 if scale == 0 else sum((mine & real).values()) / scale


@dataclass
class JourneySummary:
    """Visits, transitions and top paths of a set of events."""

    visits: int
    transitions: dict[str, dict[str, int]]
    paths: list[tuple[tuple[str, ...], int]]
    k_anonymity: int = 0
    other_visits: int = 0
    """Visits whose path prefix was seen fewer than ``k_anonymity`` times."""

    def to_dict(self) -> dict[str, Any]:
        """``{"visits", "transitions", "paths": [{"path", "visits"}]}`` (``storesense count``)."""
        return {
            "visits": self.visits,
            "transitions": {a: dict(row) for a, row in self.transitions.items()},
            "paths": [{"path": list(path), "visits": n} for path, n in self.paths],
        }


def summarise_journeys(
    events: Iterable[Event],
    *,
    path_min_seconds: float = 1.0,
    path_gap_seconds: float = 1.0,
    path_max_length: int = 6,
    k_anonymity: int = 0,
) -> JourneySummary:
    """Visits, transitions and top paths; with ``k_anonymity`` = k > 1, path prefixes
    seen fewer than k times are folded into ``other_visits`` and transitions counted
    fewer than k times are left out (neither is published on its own)."""
    if k_anonymity < 0:
        raise ValueError(f"k_anonymity must be >= 0, got {k_anonymity}")
    paths = list(visit_paths(events, path_min_seconds, path_gap_seconds).values())
    transitions = count_transitions(paths)
    ranked = top_paths(paths, path_max_length)
    other = 0
    if k_anonymity > 1:
        other = sum(n for _, n in ranked if n < k_anonymity)
        ranked = [(p, n) for p, n in ranked if n >= k_anonymity]
        transitions = {
            a: kept
            for a, row in transitions.items()
            if (kept := {b: n for b, n in row.items() if n >= k_anonymity})
        }
    return JourneySummary(len(paths), transitions, ranked, k_anonymity, other)


# ------------------------------------------------------------------ linking
MIN_SPEED_HEIGHTS_PER_SECOND = 0.25
"""Slower than this (box heights per second) a track's direction is box jitter."""

MAX_SPEED_HEIGHTS_PER_SECOND = 2.0
"""The linker carries a lost track on at most this fast (box heights per second: a person
running, about 3.5 m/s); a faster box moved by jumping onto someone else, not by walking."""


@dataclass
class _TrackEnd:
    visit: str
    last_seen: float
    feet: FloatArray
    velocity: FloatArray
    height: float
    continued: bool = False
    at_border: bool = False
    history: list[tuple[float, float, float]] = field(default_factory=list)
    first_seen: float = math.nan
    joins: str = ""
    """The key this track's first events carried when its visit was decided later."""
    settled: bool = False
    """Missing for ``overlap_seconds``: the overlap hand-over was tried."""


def _opposed(a: _TrackEnd, b: _TrackEnd) -> bool:
    """Both walking (faster than box jitter) in directions more than 90 degrees apart."""
    floor = MIN_SPEED_HEIGHTS_PER_SECOND
    if np.hypot(*a.velocity) < floor * a.height or np.hypot(*b.velocity) < floor * b.height:
        return False
    return float(np.dot(a.velocity, b.velocity)) < 0


class VisitLinker:
    """Visit ids for one camera's tracks, re-linking fragments.

    Feed every frame's tracks (``update``) *before* stamping that frame's events
    (``stamp``). Three hand-overs, each one-to-one (a visit continues at most once, nearest
    pairs first), never from a track last seen within ``border_px`` of the image border
    (``frame_size``) or heading out of the picture (it left), and only between boxes of
    similar height (ratio 0.5 to 2):

    * **gap**: a track id seen for the first time continues the visit of a track that
      disappeared at most ``link_seconds`` earlier whose feet, carried on at its last
      walking velocity, lie within ``link_distance`` box heights of the new feet;
    * **hidden** (``hidden_seconds``, 0: off): a person hidden for longer (standing
      behind someone) comes back near where they were. A new id born away from the
      border continues a track that disappeared away from the border up to
      ``hidden_seconds`` earlier when its feet lie within ``link_distance`` x
      sqrt(gap / ``link_seconds``) box heights of where that track was last seen or was
      heading (the uncertainty grows with the gap), and only when nothing competes: no
      other ended track could be continued by that id, and no other new id could continue
      that track;
    * **overlap** (``overlap_seconds``, 0: off): the tracker sometimes starts a new id on
      a person a moment *before* it drops their old one (the old box drifted onto a
      neighbour). Once a track has been missing for ``overlap_seconds``, an id born at
      most ``overlap_seconds`` before its last sighting, still seen, not continuing
      anything itself, whose first feet after that sighting lie within ``link_distance``
      box heights of where the old track was heading, and not walking the opposite way
      (both faster than a quarter box height per second, more than 90 degrees apart: two
      people passing each other), continues its visit; its events
      from then on also carry ``visit_joins`` (its own first key), which
      :func:`visit_stays` uses to join its earlier events.

    Anything else starts a new visit, keyed ``camera:first track id``. This usually
    covers the zone engine's own re-link (1 s, half a box height); :func:`visit_stays`
    also joins any stay the engine hands over.
    """

    def __init__(
        self,
        camera_id: str,
        *,
        link_seconds: float = 4.0,
        link_distance: float = 1.0,
        frame_size: tuple[int, int] | None = None,
        border_px: float = 16.0,
        velocity_window_seconds: float = 1.0,
        hidden_seconds: float = 15.0,
        overlap_seconds: float = 1.0,
    ) -> None:
        for name, value in (
            ("link_seconds", link_seconds),
            ("link_distance", link_distance),
            ("border_px", border_px),
            ("velocity_window_seconds", velocity_window_seconds),
            ("hidden_seconds", hidden_seconds),
            ("overlap_seconds", overlap_seconds),
        ):
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be a finite number >= 0, got {value}")
        self.camera_id = camera_id
        self.link_seconds = float(link_seconds)
        self.link_distance = float(link_distance)
        self.frame_size = frame_size
        self.border_px = float(border_px)
        self.velocity_window_seconds = float(velocity_window_seconds)
        self.hidden_seconds = float(hidden_seconds) if link_seconds > 0 else 0.0
        self.overlap_seconds = float(overlap_seconds) if link_seconds > 0 else 0.0
        self._tracks: dict[int, _TrackEnd] = {}
        self.links = 0
        """How many track ids continued an earlier visit."""

    def visit_of(self, track_id: int) -> str:
        """The visit key of a track id seen by :meth:`update` (``camera:track`` otherwise)."""
        known = self._tracks.get(int(track_id))
        return known.visit if known is not None else f"{self.camera_id}:{int(track_id)}"

    def stamp(self, events: Iterable[Event]) -> list[Event]:
        """The events with their visit's key in ``attributes["visit_id"]`` (and
        ``visit_joins`` for a track whose visit was decided after its first events)."""
        stamped = []
        for e in events:
            extra = {VISIT_ATTRIBUTE: self.visit_of(e.track_id)}
            known = self._tracks.get(int(e.track_id))
            if known is not None and known.joins:
                extra[JOINS_ATTRIBUTE] = known.joins
            stamped.append(replace(e, attributes={**e.attributes, **extra}))
        return stamped

    def update(self, tracks: Tracks) -> None:
        """One frame's tracks: new ids are linked or start visits; feet, box height and
        walking velocity (over ``velocity_window_seconds``) are remembered."""
        now = float(tracks.timestamp)
        ids = [int(i) for i in tracks.track_id.tolist()]
        xyxy = np.asarray(tracks.xyxy, np.float64).reshape(-1, 4)
        feet = np.column_stack([(xyxy[:, 0] + xyxy[:, 2]) / 2, xyxy[:, 3]])
        heights = np.maximum(xyxy[:, 3] - xyxy[:, 1], 1.0)
        borders = [self._at_border(box) for box in xyxy]
        new_rows = [row for row, i in enumerate(ids) if i not in self._tracks]
        if new_rows and self.link_seconds > 0:
            self._link(new_rows, ids, feet, heights, borders, now)
        for row, track_id in enumerate(ids):
            track = self._tracks.get(track_id)
            if track is None:
                track = _TrackEnd(
                    f"{self.camera_id}:{track_id}", now, feet[row], np.zeros(2), heights[row]
                )
                self._tracks[track_id] = track
            if track.first_seen != track.first_seen:
                track.first_seen = now
            track.history.append((now, float(feet[row, 0]), float(feet[row, 1])))
            while track.history and track.history[0][0] < now - self.velocity_window_seconds:
                track.history.pop(0)
            t0, x0, y0 = track.history[0]
            if now > t0:
                velocity = np.array([(feet[row, 0] - x0), (feet[row, 1] - y0)]) / (now - t0)
                # Faster than a person runs: the box jumped (onto someone else), not walked.
                limit = MAX_SPEED_HEIGHTS_PER_SECOND * float(heights[row])
                speed = float(np.hypot(*velocity))
                track.velocity = velocity * (limit / speed) if speed > limit else velocity
            track.last_seen, track.feet, track.height = now, feet[row], float(heights[row])
            track.at_border = borders[row]
            track.settled = False
        if self.overlap_seconds > 0:
            self._take_over(now)
        horizon = now - max(self.link_seconds, self.hidden_seconds) - 60.0
        for track_id in [i for i, t in self._tracks.items() if t.last_seen < horizon]:
            del self._tracks[track_id]

    def _at_border(self, box: FloatArray) -> bool:
        if self.frame_size is None:
            return False
        width, height = self.frame_size
        return bool(
            box[0] <= self.border_px
            or box[2] >= width - self.border_px
            or box[3] >= height - self.border_px
        )

    def _walked_out(self, point: FloatArray) -> bool:
        return self.frame_size is not None and not (
            0 <= point[0] <= self.frame_size[0] and point[1] <= self.frame_size[1]
        )

    def _continue(self, old: _TrackEnd, new: _TrackEnd, joins: str = "") -> None:
        old.continued = True
        new.visit, new.joins = old.visit, joins
        self.links += 1

    def _link(
        self,
        new_rows: list[int],
        ids: list[int],
        feet: FloatArray,
        heights: FloatArray,
        borders: list[bool],
        now: float,
    ) -> None:
        longest = max(self.link_seconds, self.hidden_seconds)
        ended = [
            (track_id, track)
            for track_id, track in self._tracks.items()
            if track_id not in ids
            and not track.continued
            and 0 < now - track.last_seen <= longest
            and not track.at_border
        ]
        if not ended:
            return
        cost = np.full((len(new_rows), len(ended)), np.inf)
        hidden = np.zeros_like(cost, dtype=bool)
        for c, (_, track) in enumerate(ended):
            gap = now - track.last_seen
            heading = track.feet + track.velocity * min(gap, self.link_seconds)
            if self._walked_out(heading):
                continue  # it walked out of the picture
            for r, row in enumerate(new_rows):
                if not 0.5 <= heights[row] / track.height <= 2.0:
                    continue
                scale = max(heights[row], track.height)
                if gap <= self.link_seconds:
                    distance = float(np.hypot(*(feet[row] - heading))) / scale
                    if distance <= self.link_distance:
                        cost[r, c] = distance
                elif not borders[row]:
                    # Hidden for longer: where it was, or where it was heading.
                    distance = (
                        min(
                            float(np.hypot(*(feet[row] - track.feet))),
                            float(np.hypot(*(feet[row] - heading))),
                        )
                        / scale
                    )
                    if distance <= self.link_distance * math.sqrt(gap / self.link_seconds):
                        cost[r, c] = distance
                        hidden[r, c] = True
        finite = np.isfinite(cost)
        # A hidden hand-over only where nothing competes for either side.
        alone = (finite.sum(axis=1, keepdims=True) == 1) & (finite.sum(axis=0, keepdims=True) == 1)
        cost[hidden & ~alone] = np.inf
        for flat in np.argsort(cost, axis=None).tolist():
            r, c = divmod(flat, len(ended))
            if not math.isfinite(cost[r, c]):
                break
            cost[r, :] = np.inf
            cost[:, c] = np.inf
            row, old = new_rows[r], ended[c][1]
            new = _TrackEnd(old.visit, now, feet[row], old.velocity.copy(), float(heights[row]))
            self._tracks[ids[row]] = new
            self._continue(old, new)

    def _take_over(self, now: float) -> None:
        """Overlap hand-over: once a track has been missing for ``overlap_seconds``, a young
        id born at most ``overlap_seconds`` before it vanished continues its visit."""
        ended = [
            track
            for track in self._tracks.values()
            if not track.settled and now - track.last_seen >= self.overlap_seconds
        ]
        if not ended:
            return
        for track in ended:
            track.settled = True
        old = [track for track in ended if not track.continued and not track.at_border]
        young = [
            (track_id, track)
            for track_id, track in self._tracks.items()
            if now - track.last_seen < self.overlap_seconds
            and track.visit == f"{self.camera_id}:{track_id}"
            and not track.continued
        ]
        if not old or not young:
            return
        cost = np.full((len(young), len(old)), np.inf)
        for c, track in enumerate(old):
            for r, (_, candidate) in enumerate(young):
                born = candidate.first_seen
                if not (track.first_seen < born <= track.last_seen + 1e-9):
                    continue
                if born < track.last_seen - self.overlap_seconds:
                    continue
                if not 0.5 <= candidate.height / track.height <= 2.0:
                    continue
                if _opposed(track, candidate):
                    continue  # two people walking past each other
                # The young track's first sighting after the old one's last.
                at, x, y = next(
                    (h for h in candidate.history if h[0] > track.last_seen),
                    candidate.history[-1],
                )
                heading = track.feet + track.velocity * (at - track.last_seen)
                if self._walked_out(heading):
                    continue
                scale = max(candidate.height, track.height)
                distance = float(np.hypot(x - heading[0], y - heading[1])) / scale
                if distance <= self.link_distance:
                    cost[r, c] = distance
        for flat in np.argsort(cost, axis=None).tolist():
            r, c = divmod(flat, len(old))
            if not math.isfinite(cost[r, c]):
                break
            cost[r, :] = np.inf
            cost[:, c] = np.inf
            track_id, track = young[r]
            self._continue(old[c], track, joins=f"{self.camera_id}:{track_id}")
