"""The counts of one camera run, summarised from its events and per-frame occupancy.

This is what ``storesense count`` prints; the service builds ``/v1/counts``
from the same events, so both agree. The per-frame loop that feeds it is the camera
runtime's (:mod:`storesense.api.runtime.count`); this module only sums.

Example:
    >>> from storesense.zones.events import Event, EventType as T
    >>> summary = CountSummary(["z"], ["door"])
    >>> summary.add_event(Event.create(T.ZONE_ENTER, "s", "c", "z", 1, 0.0))
    >>> summary.add_frame({"z": 1}); summary.add_frame({"z": 1})
    >>> summary.add_event(Event.create(T.ZONE_EXIT, "s", "c", "z", 1, 2.0, {"dwell_seconds": 2.0}))
    >>> zone = summary.to_dict()["zones"]["z"]
    >>> zone["entries"], zone["exits"], zone["mean_occupancy"], zone["dwell_seconds_total"]
    (1, 1, 1.0, 2.0)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from storesense.zones.config import JourneySettings
from storesense.zones.events import Event, EventType
from storesense.zones.floorplan import Heatmap
from storesense.zones.journeys import JourneySummary, summarise_journeys


@dataclass
class ZoneTotals:
    entries: int = 0
    exits: int = 0
    occupancy_sum: int = 0
    peak_occupancy: int = 0
    dwell_seconds_total: float = 0.0


_SHELF_COUNTERS = {
    EventType.SHELF_INTERACTION: "interactions",
    EventType.ITEM_TAKEN: "takes",
    EventType.ITEM_RETURNED: "put_backs",
}


@dataclass
class CountSummary:
    """Counts per line, zone and shelf, plus per-frame occupancy accumulated over the run."""

    zone_ids: list[str]
    line_ids: list[str]
    shelf_ids: list[str] = field(default_factory=list)
    frames: int = 0
    zones: dict[str, ZoneTotals] = field(default_factory=dict)
    lines: dict[str, dict[str, int]] = field(default_factory=dict)
    shelves: dict[str, dict[str, int]] = field(default_factory=dict)
    """Per shelf zone: ``interactions``, ``takes``, ``put_backs``."""
    approaching: int = 0
    heatmap: Heatmap | None = None
    """Person-seconds per floor cell (metres) or image cell (pixels)."""
    journey_settings: JourneySettings = field(default_factory=JourneySettings)
    zone_events: list[Event] = field(default_factory=list)
    """Zone enter/exit events, for the journeys (paths and transitions)."""

    def __post_init__(self) -> None:
        for zone_id in self.zone_ids:
            self.zones.setdefault(zone_id, ZoneTotals())
        for line_id in self.line_ids:
            self.lines.setdefault(line_id, {"in": 0, "out": 0})
        for shelf_id in self.shelf_ids:
            self.shelves.setdefault(shelf_id, dict.fromkeys(_SHELF_COUNTERS.values(), 0))

    def add_frame(self, occupancy: dict[str, int]) -> None:
        """One processed frame's occupancy (``ZoneEngine.occupancy()`` after its update)."""
        self.frames += 1
        for zone_id, count in occupancy.items():
            totals = self.zones[zone_id]
            totals.occupancy_sum += count
            totals.peak_occupancy = max(totals.peak_occupancy, count)

    def add_event(self, event: Event) -> None:
        if event.type == EventType.LINE_CROSS and event.target in self.lines:
            self.lines[event.target][str(event.attributes["direction"])] += 1
        elif event.type == EventType.ZONE_ENTER and event.target in self.zones:
            self.zones[event.target].entries += 1
            self.zone_events.append(event)
        elif event.type == EventType.ZONE_EXIT and event.target in self.zones:
            self.zone_events.append(event)
            totals = self.zones[event.target]
            totals.exits += 1
            totals.dwell_seconds_total += float(event.attributes["dwell_seconds"])
        elif event.type == EventType.APPROACHING:
            self.approaching += 1
        elif event.type in _SHELF_COUNTERS and event.target in self.shelves:
            self.shelves[event.target][_SHELF_COUNTERS[event.type]] += 1

    def to_dict(self) -> dict[str, Any]:
        frames = max(self.frames, 1)
        result: dict[str, Any] = {
            "frames": self.frames,
            "lines": {line_id: dict(counts) for line_id, counts in self.lines.items()},
            "zones": {
                zone_id: {
                    "entries": t.entries,
                    "exits": t.exits,
                    "mean_occupancy": round(t.occupancy_sum / frames, 3),
                    "peak_occupancy": t.peak_occupancy,
                    "dwell_seconds_total": round(t.dwell_seconds_total, 3),
                }
                for zone_id, t in self.zones.items()
            },
            "shelves": {shelf_id: dict(counts) for shelf_id, counts in self.shelves.items()},
        }
        if self.heatmap is not None:
            result["heatmap"] = self.heatmap.to_dict()
        result["journeys"] = self.journeys().to_dict()
        return result

    def journeys(self) -> JourneySummary:
        """Visits, transitions and top paths of the run (no k-anonymity: a local report)."""
        settings = self.journey_settings
        return summarise_journeys(
            self.zone_events,
            path_min_seconds=settings.path_min_seconds,
            path_gap_seconds=settings.path_gap_seconds,
            path_max_length=settings.path_max_length,
        )
