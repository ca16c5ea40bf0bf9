"""Shelf interactions on generated shelves and on real PETS09 frames."""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from storesense.vision.detections import Tracks
from storesense.zones.config import StoreLayout
from storesense.zones.events import Event, EventType
from storesense.zones.shelf import (
    ShelfEngine,
    ShelfMonitor,
    ShelfOptions,
    cell_changes,
    shelf_metrics,
)

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from shelf_scenes import (
    Scene,
    Visit,
    drift_scene,
    lighting_scene,
    occupied_start_frame,
    occupied_start_scene,
    pets_scene,
    pets_untouched_scene,
    rendered_scene,
    score_events,
)

FPS = 5.0  # rendered scenes: enough frames for every rule, half the rendering time


def run(scene: Scene, options: ShelfOptions | None = None) -> list[Event]:
    monitor = ShelfMonitor(scene.zone_id, "cam", scene.polygon, options or scene.options)
    events: list[Event] = []
    timestamp = 0.0
    for image, tracks in scene.frames():
        events.extend(monitor.update(image, tracks))
        timestamp = tracks.timestamp
    events.extend(monitor.finish(timestamp))
    return events


def of_type(events: list[Event], kind: EventType) -> list[Event]:
    return [e for e in events if e.type == kind]


def test_take_reports_track_cell_and_box() -> None:
    scene = rendered_scene("take", 11, [Visit(7, 2.0, "take", (1, 5))], 10.0, fps=FPS)
    events = run(scene)
    (take,) = of_type(events, EventType.ITEM_TAKEN)
    assert take.track_id == 7 and take.target == "shelf"
    assert take.attributes["cell"] == [1, 5]
    x0, y0, x1, y1 = take.attributes["box"]
    assert 5 / 8 - 0.05 <= x0 < x1 <= 6 / 8 + 0.05 and 1 / 3 - 0.05 <= y0 < y1 <= 2 / 3 + 0.05
    (visit,) = of_type(events, EventType.SHELF_INTERACTION)
    assert visit.attributes["outcome"] == "take" and visit.track_id == 7
    assert score_events(scene.truth, events).recall("item_taken") == 1.0


def test_put_back_by_another_person_links_to_the_take() -> None:
    visits = [
        Visit(1, 2.0, "take", (0, 2)),
        Visit(2, 10.0, "browse", (2, 6)),
        Visit(3, 18.0, "return", (0, 2), from_left=False),
    ]
    scene = rendered_scene("put-back", 12, visits, 26.0, fps=FPS)
    events = run(scene)
    (take,) = of_type(events, EventType.ITEM_TAKEN)
    (put_back,) = of_type(events, EventType.ITEM_RETURNED)
    assert take.track_id == 1 and put_back.track_id == 3
    assert put_back.attributes["take_event_id"] == take.event_id
    assert put_back.attributes["take_track_id"] == 1
    outcomes = {
        e.track_id: e.attributes["outcome"] for e in of_type(events, EventType.SHELF_INTERACTION)
    }
    assert outcomes == {1: "take", 2: "browse", 3: "return"}


def test_browse_without_change_is_an_interaction_only() -> None:
    scene = rendered_scene(
        "browse", 13, [Visit(4, 2.0, "browse", (2, 3), linger=3.0)], 10.0, fps=FPS
    )
    events = run(scene)
    assert [(e.type, e.track_id, e.attributes["outcome"]) for e in events] == [
        (EventType.SHELF_INTERACTION, 4, "browse")
    ]
    assert events[0].attributes["reach_seconds"] >= 1.0


def test_lighting_changes_alone_never_make_a_take() -> None:
    events = run(lighting_scene(14, fps=FPS))
    assert events == []


def test_light_switch_during_a_browse_is_not_a_take() -> None:
    visits = [Visit(5, 2.0, "browse", (1, 1), linger=3.0)]
    scene = rendered_scene("switch", 15, visits, 10.0, switches=[(4.0, 0.6)], fps=FPS)
    events = run(scene)
    assert of_type(events, EventType.ITEM_TAKEN) == []
    assert [e.attributes["outcome"] for e in events] == ["browse"]


def test_people_passing_in_front_do_not_interact() -> None:
    visits = [
        Visit(1, 1.0, "pass", (1, 3), walk=1.2),
        Visit(2, 4.0, "pass", (1, 3), walk=1.6, from_left=False),
    ]
    scene = rendered_scene("pass", 16, visits, 8.0, fps=FPS)
    assert run(scene) == []


def test_two_people_at_one_shelf_take_goes_to_the_one_who_reached_there() -> None:
    visits = [
        Visit(21, 2.0, "take", (2, 0), linger=3.0),
        Visit(22, 2.3, "browse", (2, 7), linger=3.0, from_left=False),
    ]
    scene = rendered_scene("two", 17, visits, 11.0, fps=FPS)
    events = run(scene)
    (take,) = of_type(events, EventType.ITEM_TAKEN)
    assert take.track_id == 21 and take.attributes["cell"] == [2, 0]
    outcomes = {
        e.track_id: e.attributes["outcome"] for e in of_type(events, EventType.SHELF_INTERACTION)
    }
    assert outcomes == {21: "take", 22: "browse"}


@pytest.mark.parametrize(("noise_sigma", "jpeg_quality"), [(2.0, 80), (7.0, 55)])
def test_take_and_put_back_survive_noise_and_jpeg(noise_sigma: float, jpeg_quality: int) -> None:
    visits = [Visit(1, 2.0, "take", (1, 4)), Visit(2, 10.0, "return", (1, 4))]
    scene = rendered_scene(
        "noisy", 18, visits, 18.0, noise_sigma=noise_sigma, jpeg_quality=jpeg_quality, fps=FPS
    )
    score = score_events(scene.truth, run(scene))
    for kind in ("item_taken", "item_returned", "shelf_interaction"):
        assert (score.precision(kind), score.recall(kind)) == (1.0, 1.0), (kind, score.counts)


def test_real_pets09_frames_take_and_put_back_under_real_people() -> None:
    scene = pets_scene(1, 400, region=(360, 180, 480, 240))
    kinds = [t.kind for t in scene.truth]
    assert kinds.count("item_taken") >= 2 and kinds.count("item_returned") >= 1
    events = run(scene)
    score = score_events(scene.truth, events)
    for kind in ("item_taken", "item_returned", "shelf_interaction"):
        assert (score.precision(kind), score.recall(kind)) == (1.0, 1.0), (kind, score.counts)


def test_finish_reports_a_visit_still_in_progress() -> None:
    monitor = ShelfMonitor(
        "s",
        "cam",
        [(10, 10), (90, 10), (90, 50), (10, 50)],
        ShelfOptions(grid=(1, 2), reach_band_px=0.0),
    )
    image = np.full((100, 100, 3), 90, np.uint8)
    box = np.array([[20, 0, 60, 99]], np.float32)
    assert monitor.update(image, Tracks.empty(timestamp=0.0)) == []
    for step in range(1, 20):
        tracks = Tracks(box, np.ones(1), np.array([3]), np.zeros((1, 2)), timestamp=step * 0.1)
        assert monitor.update(image, tracks) == []
    (event,) = monitor.finish(2.0)
    assert event.type == EventType.SHELF_INTERACTION and event.track_id == 3
    assert event.attributes["outcome"] == "unverified"
    assert monitor.finish(2.0) == []


def test_cell_changes_ignore_global_gain_and_find_the_emptied_cell() -> None:
    rng = np.random.default_rng(0)
    before = rng.uniform(40, 200, (48, 96, 3)).astype(np.float32)
    after = before * np.float32(0.7)
    after[0:24, 24:48] = 120
    options = ShelfOptions(grid=(2, 4), cell_px=24)
    for method in ("gain_diff", "zncc"):
        changed = cell_changes(
            before, after, np.ones((48, 96), bool), replace(options, method=method)
        )
        assert np.argwhere(changed).tolist() == [[0, 1]], method


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"grid": (0, 3)}, "grid"),
        ({"grid": (3,)}, "grid must be"),
        ({"grid": (1, 2, 3)}, "grid must be"),
        ({"confirm_frames": 0}, "confirm_frames"),
        ({"method": "magic"}, "method"),
        ({"max_reach_speed": -1.0}, "max_reach_speed"),
        ({"cell_change_fraction": 1.5}, "cell_change_fraction"),
    ],
)
def test_bad_options_raise_clear_errors(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ShelfOptions(**kwargs)


def test_bad_frames_and_polygons_raise_value_errors() -> None:
    with pytest.raises(ValueError, match="polygon"):
        ShelfMonitor("s", "cam", [(0, 0), (1, 1)])
    monitor = ShelfMonitor("s", "cam", [(0, 0), (40, 0), (40, 20), (0, 20)])
    with pytest.raises(ValueError, match="uint8"):
        monitor.update(np.zeros((60, 60), np.uint8), Tracks.empty())
    monitor.update(np.zeros((60, 60, 3), np.uint8), Tracks.empty())
    with pytest.raises(ValueError, match="frame size changed"):
        monitor.update(np.zeros((30, 60, 3), np.uint8), Tracks.empty())


def test_two_takes_by_one_person_in_one_visit_get_distinct_ids() -> None:
    first = Event.create(EventType.ITEM_TAKEN, "s", "c", "shelf", 1, 5.0, {"cell": [0, 1]})
    second = Event.create(EventType.ITEM_TAKEN, "s", "c", "shelf", 1, 5.0, {"cell": [2, 3]})
    assert first.event_id != second.event_id


def test_shelf_metrics_per_zone_and_bucket() -> None:
    def event(kind: EventType, zone: str, track: int, t: float, cell: int = 0) -> Event:
        return Event.create(kind, "s", "c", zone, track, t, {"cell": [0, cell]})

    events = [
        event(EventType.SHELF_INTERACTION, "a", 1, 10),
        event(EventType.ITEM_TAKEN, "a", 1, 10),
        event(EventType.ITEM_TAKEN, "a", 1, 10, 1),
        event(EventType.SHELF_INTERACTION, "a", 2, 50),
        event(EventType.ITEM_RETURNED, "a", 2, 50),
        event(EventType.SHELF_INTERACTION, "a", 3, 70),
        event(EventType.SHELF_INTERACTION, "b", 4, 20),
        event(EventType.ZONE_ENTER, "a", 5, 20),
    ]
    rows = [m.to_dict() for m in shelf_metrics(events, 60.0)]
    assert rows == [
        {
            "zone_id": "a",
            "bucket_start": 0.0,
            "interactions": 2,
            "takes": 2,
            "put_backs": 1,
            "take_rate": 1.0,
            "put_back_rate": 0.5,
        },
        {
            "zone_id": "a",
            "bucket_start": 60.0,
            "interactions": 1,
            "takes": 0,
            "put_backs": 0,
            "take_rate": 0.0,
            "put_back_rate": None,
        },
        {
            "zone_id": "b",
            "bucket_start": 0.0,
            "interactions": 1,
            "takes": 0,
            "put_backs": 0,
            "take_rate": 0.0,
            "put_back_rate": None,
        },
    ]
    assert [m.zone_id for m in shelf_metrics(events, 60.0, zone_ids=["b"])] == ["b"]
    with pytest.raises(ValueError, match="bucket_seconds"):
        shelf_metrics(events, 0.0)


def test_engine_from_layout_builds_one_monitor_per_shelf_zone() -> None:
    layout = StoreLayout.model_validate(
        {
            "store": {"id": "shop"},
            "cameras": [{"id": "cam1"}, {"id": "cam2"}],
            "zones": [
                {
                    "id": "cereal",
                    "camera": "cam1",
                    "kind": "shelf",
                    "polygon": [[10, 10], [200, 12], [198, 90], [12, 88]],
                    "shelf": {"reach_band_px": 15, "grid": [2, 5]},
                },
                {"id": "floor", "camera": "cam1", "polygon": [[0, 0], [50, 0], [50, 50]]},
                {
                    "id": "drinks",
                    "camera": "cam2",
                    "kind": "shelf",
                    "polygon": [[0, 0], [80, 0], [80, 40], [0, 40]],
                },
            ],
        }
    )
    engine = ShelfEngine.from_layout(layout, "cam1", run_id="r1")
    (monitor,) = engine.monitors
    assert (monitor.zone_id, monitor.store_id, monitor.run_id) == ("cereal", "shop", "r1")
    assert monitor.options.grid == (2, 5) and monitor.options.reach_band_px == 15
    assert engine.update(np.zeros((120, 240, 3), np.uint8), Tracks.empty()) == []
    with pytest.raises(ValueError, match="belongs to camera"):
        ShelfEngine("cam2", engine.monitors)


def test_small_grid_take_is_not_mistaken_for_a_global_change() -> None:
    rng = np.random.default_rng(3)
    shelf = rng.integers(40, 200, (40, 80, 3), dtype=np.uint8)
    image = np.full((100, 100, 3), 128, np.uint8)
    image[10:50, 10:90] = shelf
    monitor = ShelfMonitor(
        "s",
        "cam",
        [(10, 10), (90, 10), (90, 50), (10, 50)],
        ShelfOptions(grid=(1, 1), reach_band_px=5.0, cell_px=32),
    )
    person = Tracks(np.array([[50, 5, 95, 99]]), np.ones(1), np.array([9]), np.zeros((1, 2)), 0.0)
    events: list[Event] = []
    for step in range(50):
        t = step * 0.1
        inside = 12 <= step < 32  # clear for 1.2 s first: the shelf arms (arm_seconds 1.0)
        if step == 22:
            image[15:45, 55:85] = (30, 200, 30)  # the right-hand product is gone
        tracks = replace(person, timestamp=t) if inside else Tracks.empty(timestamp=t)
        events.extend(monitor.update(image.copy(), tracks))
    (take,) = of_type(events, EventType.ITEM_TAKEN)
    assert take.track_id == 9 and take.attributes["cell"] == [0, 0]


# ---------------------------------------------------------------- arming and light drift


@pytest.mark.parametrize("seed", [1, 2])
def test_camera_starting_with_a_shopper_at_the_shelf_waits_for_a_clear_view(seed: int) -> None:
    scene = occupied_start_scene(seed, fps=FPS)
    events = run(scene)
    score = score_events(scene.truth, events)
    for kind in ("item_taken", "item_returned"):
        assert score.counts[kind][1:] == [0, 0], (kind, score.counts)
    first = [e for e in of_type(events, EventType.SHELF_INTERACTION) if e.track_id == 1]
    assert [e.attributes["outcome"] for e in first] == ["unverified"]


@pytest.mark.parametrize("arm_seconds", [0.5, 1.5])
def test_shelf_arms_only_on_a_still_clear_view(arm_seconds: float) -> None:
    rng = np.random.default_rng(4)
    shelf = rng.integers(40, 200, (40, 80, 3), dtype=np.uint8)
    monitor = ShelfMonitor(
        "s",
        "cam",
        [(10, 10), (90, 10), (90, 50), (10, 50)],
        ShelfOptions(grid=(1, 4), reach_band_px=5.0, cell_px=16, arm_seconds=arm_seconds),
    )
    t = 0.0
    # Someone the tracker does not report moves in front of the shelf for 2 s: no arming.
    for step in range(20):
        image = np.full((100, 100, 3), 128, np.uint8)
        image[10:50, 10:90] = shelf
        x = 10 + 3 * step
        image[5:60, x : x + 20] = (20, 20, 220)
        monitor.update(image, Tracks.empty(timestamp=t))
        assert not monitor.armed
        t += 0.1
    image = np.full((100, 100, 3), 128, np.uint8)
    image[10:50, 10:90] = shelf
    still_from = t
    while not monitor.armed:
        monitor.update(image, Tracks.empty(timestamp=t))
        t += 0.1
        assert t < 10
    assert t - 0.1 - still_from == pytest.approx(arm_seconds, abs=0.11)


@pytest.mark.parametrize("seed", [1, 2])
def test_slow_uneven_light_drift_over_long_visits_is_never_a_take(seed: int) -> None:
    scene = drift_scene(seed, fps=FPS)
    assert scene.no_change
    events = run(scene)
    assert not of_type(events, EventType.ITEM_TAKEN) and not of_type(
        events, EventType.ITEM_RETURNED
    )
    outcomes = [e.attributes["outcome"] for e in of_type(events, EventType.SHELF_INTERACTION)]
    assert outcomes == ["browse"] * 5


@pytest.mark.parametrize(
    ("region", "products"),
    [((480, 180, 600, 240), True), ((240, 220, 360, 280), False), ((520, 260, 640, 320), True)],
)
def test_real_footage_started_with_people_in_reach_reports_no_take(
    region: tuple[int, int, int, int], products: bool
) -> None:
    # Real PETS09 frames, our tracker on real detections from a camera started while
    # people are in reach; nothing on the "shelf" ever changes.
    scene = pets_untouched_scene(region, occupied_start_frame(region), 200, products=products)
    events = run(scene)
    assert of_type(events, EventType.SHELF_INTERACTION)  # people did reach
    assert not of_type(events, EventType.ITEM_TAKEN) and not of_type(
        events, EventType.ITEM_RETURNED
    )


@pytest.mark.parametrize("arm_seconds", [0.0, 2.5])
def test_arm_seconds_comes_from_the_layout(arm_seconds: float) -> None:
    layout = StoreLayout.model_validate(
        {
            "store": {"id": "shop"},
            "cameras": [{"id": "cam1"}],
            "zones": [
                {
                    "id": "cereal",
                    "camera": "cam1",
                    "kind": "shelf",
                    "polygon": [[20, 20], [120, 20], [120, 80], [20, 80]],
                    "shelf": {"arm_seconds": arm_seconds},
                }
            ],
        }
    )
    (monitor,) = ShelfEngine.from_layout(layout, "cam1").monitors
    assert monitor.options.arm_seconds == arm_seconds
    image = np.full((120, 240, 3), 90, np.uint8)
    monitor.update(image, Tracks.empty(timestamp=0.0))
    monitor.update(image, Tracks.empty(timestamp=0.1))
    assert monitor.armed is (arm_seconds == 0.0)
    with pytest.raises(ValueError, match="arm_seconds"):
        StoreLayout.model_validate(
            {
                **layout.model_dump(mode="json"),
                "zones": [
                    {**layout.model_dump(mode="json")["zones"][0], "shelf": {"arm_seconds": -1}}
                ],
            }
        )
