"""The journey benchmark's border view: people in the edge band are in no zone, for the
truth and every tracker alike; everything else about the run is unchanged."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from storesense.vision.detections import Tracks
from storesense.zones.config import StoreLayout
from storesense.zones.events import EventType

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from journeys import CAMERA, journey_events

LAYOUT = StoreLayout.model_validate(
    {
        "store": {"id": "s"},
        "cameras": [{"id": CAMERA}],
        "zones": [
            {"id": "left", "camera": CAMERA, "polygon": [[0, 0], [200, 0], [200, 576], [0, 576]]}
        ],
        "lines": [],
    }
)


def walking_in(frames: int = 14) -> list[Tracks]:
    """One person walking in from the left edge, 10 px a frame, at 7 fps."""
    return [
        Tracks(
            np.array([[10.0 * t, 200.0, 10.0 * t + 30, 300.0]]),
            np.ones(1),
            np.array([1]),
            np.array([[70.0, 0.0]]),
            timestamp=t / 7,
        )
        for t in range(frames)
    ]


def test_the_border_band_delays_an_entry_from_the_edge_and_changes_nothing_else() -> None:
    plain = journey_events(LAYOUT, walking_in(), link=False, relink=False)
    banded = journey_events(LAYOUT, walking_in(), link=False, relink=False, border=25.0)
    enter = [e for e in plain if e.type == EventType.ZONE_ENTER]
    later = [e for e in banded if e.type == EventType.ZONE_ENTER]
    assert [e.timestamp for e in enter] == [0.0]
    # x1 = 0, 10, 20 lie within 25 px of the edge: the stay begins with the box at 30.
    assert [e.timestamp for e in later] == [3 / 7]
    exits = [e for e in banded if e.type == EventType.ZONE_EXIT]
    assert [e.attributes["dwell_seconds"] for e in exits] == [round(11 / 7, 3)]
    # Far from the edge, the band changes nothing.
    away = [
        Tracks(
            t.xyxy + np.array([60.0, 0, 60.0, 0]),
            t.confidence,
            t.track_id,
            t.velocity,
            timestamp=t.timestamp,
        )
        for t in walking_in(8)
    ]
    assert [(e.type, e.timestamp) for e in journey_events(LAYOUT, away, link=False)] == [
        (e.type, e.timestamp) for e in journey_events(LAYOUT, away, link=False, border=25.0)
    ]
