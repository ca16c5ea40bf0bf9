"""Shelf events through the product: one CameraAnalytics per camera, on the zones' clock,
in ``storesense count``'s summary and events file, and in the service's worker factory."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from storesense.api.runtime import build_camera_analytics, summarise_frames
from storesense.vision.detections import Tracks
from storesense.zones.camera import CameraAnalytics
from storesense.zones.config import StoreLayout
from storesense.zones.events import Event, EventType
from storesense.zones.shelf import ShelfEngine

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from shelf_scenes import Scene, Visit, rendered_scene

FPS = 5.0
START = 1_714_557_600.0  # 2024-05-01T10:00:00Z


def shelf_layout(scene: Scene, **shelf: Any) -> StoreLayout:
    options = scene.options
    return StoreLayout.model_validate(
        {
            "store": {"id": "shop"},
            "cameras": [{"id": "cam1", "start_time": "2024-05-01T10:00:00Z"}],
            "zones": [
                {
                    "id": "aisle",
                    "camera": "cam1",
                    "polygon": [[0, 0], [640, 0], [640, 600], [0, 600]],
                    "approach_seconds": 0,
                },
                {
                    "id": scene.zone_id,
                    "camera": "cam1",
                    "kind": "shelf",
                    "polygon": [list(p) for p in scene.polygon],
                    "shelf": {
                        "reach_band_px": options.reach_band_px,
                        "grid": list(options.grid),
                        "min_interaction_seconds": options.min_interaction_seconds,
                        **shelf,
                    },
                },
            ],
        }
    )


@pytest.fixture(scope="module")
def take_then_return() -> Scene:
    visits = [Visit(7, 1.0, "take", (1, 5)), Visit(9, 7.5, "return", (1, 5))]
    return rendered_scene("take-return", 11, visits, 14.0, fps=FPS)


def test_camera_analytics_gives_zone_and_shelf_events_on_one_clock(
    take_then_return: Scene,
) -> None:
    layout = shelf_layout(take_then_return)
    analytics = CameraAnalytics(layout, "cam1", run_id="r1")
    assert analytics.time_origin == START and analytics.shelf_zone_ids == ["shelf"]
    events: list[Event] = []
    last = 0.0
    for image, tracks in take_then_return.frames():
        events += analytics.update(image, tracks)
        last = tracks.timestamp
    events += analytics.finish(last + 1 / FPS)
    kinds = [(e.type, e.track_id) for e in events]
    assert (EventType.ITEM_TAKEN, 7) in kinds and (EventType.ITEM_RETURNED, 9) in kinds
    (taken,) = [e for e in events if e.type == EventType.ITEM_TAKEN]
    (returned,) = [e for e in events if e.type == EventType.ITEM_RETURNED]
    assert returned.attributes["take_event_id"] == taken.event_id
    enters = {e.track_id: e for e in events if e.type == EventType.ZONE_ENTER}
    exits = {e.track_id: e for e in events if e.type == EventType.ZONE_EXIT}
    # The take is dated when the visit ended: after the person entered the aisle, on
    # the same Unix clock, and the visit's start is on that clock too.
    truth_end = next(t.time for t in take_then_return.truth if t.kind == "item_taken")
    assert taken.timestamp == pytest.approx(START + truth_end, abs=1.5)
    assert enters[7].timestamp < taken.timestamp
    assert START <= taken.attributes["started_at"] < taken.timestamp
    assert exits[7].timestamp <= taken.timestamp + 1.0
    assert all(START <= e.timestamp < START + 20 for e in events)
    assert all(e.store_id == "shop" and e.camera_id == "cam1" for e in events)


def test_count_summary_and_events_file_carry_shelf_events(
    take_then_return: Scene, tmp_path: Path
) -> None:
    layout = shelf_layout(take_then_return)
    analytics = CameraAnalytics(layout, "cam1", run_id="r1")
    events_path = tmp_path / "events.jsonl"
    with events_path.open("w", encoding="utf-8") as out:
        summary = summarise_frames(
            layout,
            "cam1",
            take_then_return.frames(),
            analytics,
            sink=lambda event: out.write(event.to_json() + "\n"),
        ).to_dict()
    assert summary["shelves"] == {"shelf": {"interactions": 2, "takes": 1, "put_backs": 1}}
    assert summary["zones"]["aisle"]["entries"] == 2
    rows = [json.loads(line) for line in events_path.read_text().splitlines()]
    taken = [r for r in rows if r["type"] == "item_taken"]
    assert len(taken) == 1
    assert taken[0]["track_id"] == 7 and taken[0]["target"] == "shelf"
    assert taken[0]["timestamp"] > START and taken[0]["attributes"]["cell"] == [1, 5]
    assert sum(r["type"] == "shelf_interaction" for r in rows) == 2


def test_tracks_without_images_are_refused_when_the_camera_has_shelves(
    take_then_return: Scene,
) -> None:
    layout = shelf_layout(take_then_return)
    analytics = CameraAnalytics(layout, "cam1")
    with pytest.raises(ValueError, match="has shelf zones: update\\(\\) needs the frame image"):
        analytics.update(None, Tracks.empty(timestamp=0.0))
    tracks_only = CameraAnalytics(layout, "cam1", shelves=False)
    assert (
        tracks_only.shelf_zone_ids == []
        and tracks_only.update(None, Tracks.empty(timestamp=0.0)) == []
    )


@pytest.mark.parametrize(
    ("shelf", "expected_grid", "expected_speed"),
    [({}, (3, 6), 0.6), ({"grid": [2, 4], "max_reach_speed": 1.5}, (2, 4), 1.5)],
)
def test_worker_factory_builds_shelf_monitors_from_the_layout(
    take_then_return: Scene,
    shelf: dict[str, Any],
    expected_grid: tuple[int, int],
    expected_speed: float,
) -> None:
    layout = shelf_layout(take_then_return, **shelf)
    if not shelf:
        # layout defaults, not the scene's: drop the scene's grid
        data = layout.model_dump(mode="json")
        data["zones"][1]["shelf"] = {}
        layout = StoreLayout.model_validate(data)
    analytics = build_camera_analytics(layout, "cam1", "run-1", 100.0)
    assert isinstance(analytics, CameraAnalytics)
    shelves = analytics.shelf_engine
    assert isinstance(shelves, ShelfEngine)
    (monitor,) = shelves.monitors
    assert monitor.options.grid == expected_grid
    assert monitor.options.max_reach_speed == expected_speed
    assert monitor.time_origin == 100.0 and analytics.zone_engine.time_origin == 100.0


def test_camera_without_shelf_zones_runs_no_shelf_engine() -> None:
    layout = StoreLayout.model_validate(
        {
            "store": {"id": "s"},
            "cameras": [{"id": "c"}],
            "zones": [{"id": "z", "camera": "c", "polygon": [[0, 0], [10, 0], [10, 10], [0, 10]]}],
        }
    )
    analytics = CameraAnalytics(layout, "c")
    assert analytics.shelf_engine is None and not analytics.needs_images
    box = Tracks(np.array([[4, 0, 6, 5]]), np.ones(1), np.array([1]), np.zeros((1, 2)), timestamp=0)
    assert [e.type for e in analytics.update(None, box)] == [EventType.ZONE_ENTER]
