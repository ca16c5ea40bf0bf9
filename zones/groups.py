"""Groups (buying units): people who come in together.

:class:`GroupTagger` watches one camera's tracks; when the zone engine reports an ``in``
crossing of an entrance line it stamps ``attributes["group_id"]`` on that event: the
group of an earlier ``in`` crossing of the same line at most ``group_seconds`` before
it, by a person who walked beside this one (feet within ``group_distance`` box
heights, or metres on a camera with a homography) through the last
``group_together_seconds`` (at least half of that time seen together, in 80 % of the
frames both were seen), else a group of its own (the visit's key). The decision uses
only frames up to the crossing event, so it is made when the event is emitted.

:func:`group_footfall` then counts buying units from the events (pure, like the
store metrics): footfall, groups, mean group size, and conversion per group
(transactions / groups) beside conversion per person (transactions / footfall).

Example:
    >>> from storesense.zones.events import Event, EventType
    >>> crossings = [Event.create(EventType.LINE_CROSS, "s", "c", "door", i, 10.0 + i,
    ...                           {"direction": "in", "group_id": g})
    ...              for i, g in ((1, "c:1"), (2, "c:1"), (3, "c:3"))]
    >>> stats = group_footfall(crossings, {"door"}, 0.0, 60.0, transactions=2)
    >>> stats.footfall, stats.groups, stats.mean_group_size, stats.conversion_per_group
    (3, 2, 1.5, 1.0)
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Collection, Iterable
from dataclasses import dataclass, replace

import numpy as np
from storesense.vision.detections import Tracks
from storesense.zones.config import StoreLayout
from storesense.zones.events import Event, EventType
from storesense.zones.journeys import visit_key

GROUP_ATTRIBUTE = "group_id"
"""Listed in :data:`~storesense.zones.journeys.LINK_ATTRIBUTES` (admin-only in the API)."""
TOGETHER_SHARE = 0.8
"""Share of the frames both were seen in which they must have been within the distance."""


@dataclass
class _Crossing:
    line: str
    timestamp: float
    track_id: int
    group: str


class GroupTagger:
    """Stamps entrance ``in`` crossings of one camera with a group id (see the module)."""

    def __init__(self, layout: StoreLayout, camera_id: str) -> None:
        settings = layout.store.journeys
        self.entrance_lines = {ln.id for ln in layout.lines_of(camera_id) if ln.entrance}
        self.group_seconds = settings.group_seconds
        self.group_distance = settings.group_distance
        self.together_seconds = settings.group_together_seconds
        self.homography = layout.camera(camera_id).homography
        self._history: dict[int, deque[tuple[float, float, float, float]]] = {}
        self._crossings: list[_Crossing] = []
        self._now = -math.inf

    def update(self, tracks: Tracks) -> None:
        """One frame's tracks (before tagging that frame's events)."""
        if not self.entrance_lines:
            return
        now = float(tracks.timestamp)
        self._now = now
        xyxy = np.asarray(tracks.xyxy, np.float64).reshape(-1, 4)
        feet = np.column_stack([(xyxy[:, 0] + xyxy[:, 2]) / 2, xyxy[:, 3]])
        scale = np.maximum(xyxy[:, 3] - xyxy[:, 1], 1.0)
        if self.homography is not None:
            feet, _ = self.homography.to_floor_checked(feet)
            scale = np.ones(len(feet))
        keep = self.together_seconds + self.group_seconds + 1.0
        for row, track_id in enumerate(tracks.track_id.tolist()):
            history = self._history.setdefault(int(track_id), deque())
            history.append((now, float(feet[row, 0]), float(feet[row, 1]), float(scale[row])))
            while history and history[0][0] < now - keep:
                history.popleft()
        for track_id in [i for i, h in self._history.items() if h[-1][0] < now - keep]:
            del self._history[track_id]
        self._crossings = [c for c in self._crossings if c.timestamp >= now - keep]

    def together(self, a: int, b: int) -> bool:
        """Whether tracks ``a`` and ``b`` walked together over the last ``together_seconds``."""
        since = self._now - self.together_seconds
        seen_a = {t: (x, y, s) for t, x, y, s in self._history.get(a, ()) if t >= since}
        common = [
            (seen_a[t], (x, y, s))
            for t, x, y, s in self._history.get(b, ())
            if t >= since and t in seen_a
        ]
        if not common:
            return False
        times = sorted(t for t, *_ in self._history.get(b, ()) if t >= since and t in seen_a)
        if self.together_seconds > 0 and times[-1] - times[0] < self.together_seconds / 2:
            return False
        close = [
            math.hypot(pa[0] - pb[0], pa[1] - pb[1]) <= self.group_distance * (pa[2] + pb[2]) / 2
            for pa, pb in common
        ]
        return sum(close) >= TOGETHER_SHARE * len(close)

    def tag(self, events: Iterable[Event]) -> list[Event]:
        """The events, entrance ``in`` crossings with ``attributes["group_id"]``."""
        out = []
        for event in events:
            if (
                event.type != EventType.LINE_CROSS
                or event.target not in self.entrance_lines
                or event.attributes.get("direction") != "in"
            ):
                out.append(event)
                continue
            group = visit_key(event)
            for earlier in sorted(self._crossings, key=lambda c: -c.timestamp):
                if (
                    earlier.line == event.target
                    and earlier.track_id != event.track_id
                    and 0 <= event.timestamp - earlier.timestamp <= self.group_seconds
                    and self.together(earlier.track_id, event.track_id)
                ):
                    group = earlier.group
                    break
            self._crossings.append(_Crossing(event.target, event.timestamp, event.track_id, group))
            out.append(replace(event, attributes={**event.attributes, GROUP_ATTRIBUTE: group}))
        return out


@dataclass(frozen=True)
class GroupFootfall:
    footfall: int
    """People in: ``in`` crossings of entrance lines."""
    groups: int
    """Buying units: distinct groups among them (a person alone is a group of one)."""
    mean_group_size: float | None
    transactions: int | None
    conversion_per_group: float | None
    """transactions / groups."""
    conversion_per_person: float | None
    """transactions / footfall."""


def group_footfall(
    events: Iterable[Event],
    entrance_lines: Collection[str],
    start: float,
    end: float,
    transactions: int | None = None,
) -> GroupFootfall:
    """Footfall and buying units over ``[start, end)`` from entrance ``in`` crossings."""
    if end <= start:
        raise ValueError(f"end ({end}) must be after start ({start})")
    groups: set[str] = set()
    footfall = 0
    for event in events:
        if (
            event.type == EventType.LINE_CROSS
            and event.target in entrance_lines
            and event.attributes.get("direction") == "in"
            and start <= event.timestamp < end
        ):
            footfall += 1
            groups.add(str(event.attributes.get(GROUP_ATTRIBUTE) or visit_key(event)))
    return GroupFootfall(
        footfall=footfall,
        groups=len(groups),
        mean_group_size=round(footfall / len(groups), 3) if groups else None,
        transactions=transactions,
        conversion_per_group=(
            round(transactions / len(groups), 4) if transactions is not None and groups else None
        ),
        conversion_per_person=(
            round(transactions / footfall, 4) if transactions is not None and footfall else None
        ),
    )
