"""Floor plan in metres: homography round trip, floor zones and lines, distance, heatmaps,
store-wide occupancy over overlapping cameras."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import shapely
from storesense.api.runtime import summarise_tracks
from storesense.vision.detections import Tracks
from storesense.zones.config import StoreLayout, load_layout
from storesense.zones.engine import ZoneEngine
from storesense.zones.events import Event, EventType
from storesense.zones.floorplan import (
    Heatmap,
    StoreOccupancy,
    floor_positions,
    floor_speeds,
    heatmap_for_camera,
)
from storesense.zones.geometry import PolygonSet

REPO = Path(__file__).resolve().parents[1]
PETS09_LAYOUT = load_layout(REPO / "examples" / "pets09.yaml")
HOMOGRAPHY = PETS09_LAYOUT.cameras[0].homography
assert HOMOGRAPHY is not None
HOMOGRAPHY_BLOCK = HOMOGRAPHY.model_dump()
FLOOR_ROOM = [[2.0, 6.0], [8.0, 6.0], [8.0, 12.0], [2.0, 12.0]]


def layout(zones: list[dict[str, Any]], lines: list[dict[str, Any]] | None = None) -> StoreLayout:
    return StoreLayout.model_validate(
        {
            "store": {"id": "s"},
            "cameras": [{"id": "c", "homography": HOMOGRAPHY_BLOCK}],
            "zones": [{"camera": "c", "approach_seconds": 0, **zone} for zone in zones],
            "lines": [{"camera": "c", "min_side_seconds": 0, **line} for line in lines or []],
        }
    )


def on_floor(floor_points: list[list[float]], t: float, ids: list[int]) -> Tracks:
    """Tracks whose feet stand at these floor points (metres), boxes 60 px tall."""
    feet = HOMOGRAPHY.to_image(floor_points)
    xyxy = np.column_stack([feet[:, 0] - 10, feet[:, 1] - 60, feet[:, 0] + 10, feet[:, 1]])
    n = len(ids)
    return Tracks(xyxy, np.ones(n), np.array(ids), np.zeros((n, 2)), timestamp=t)


def run(engine: ZoneEngine, frames: list[Tracks], end: float) -> list[Event]:
    events: list[Event] = []
    for frame in frames:
        events += engine.update(frame)
    return events + engine.finish(end)


def test_pets09_homography_round_trip_and_horizon() -> None:
    np.testing.assert_allclose(
        HOMOGRAPHY.to_floor(HOMOGRAPHY.image_points), HOMOGRAPHY.floor_points, atol=1e-6
    )
    grid = np.stack(np.meshgrid(np.linspace(-5, 15, 9), np.linspace(-5, 60, 9)), -1).reshape(-1, 2)
    np.testing.assert_allclose(HOMOGRAPHY.to_floor(HOMOGRAPHY.to_image(grid)), grid, atol=1e-6)
    pixels = np.stack(np.meshgrid(np.arange(0, 768, 64), np.arange(0, 576, 48)), -1)
    floor, ok = HOMOGRAPHY.to_floor_checked(pixels.reshape(-1, 2))
    assert ok.all()
    np.testing.assert_allclose(HOMOGRAPHY.to_image(floor), pixels.reshape(-1, 2), atol=1e-6)
    # Far from the camera the floor shrinks towards the horizon (image y ≈ -139 here).
    far = HOMOGRAPHY.to_image([[5, 20], [5, 100], [5, 1000]])[:, 1]
    assert far[0] > far[1] > far[2] > -140
    _, above = HOMOGRAPHY.to_floor_checked([[384, -200], [384, -139], [384, 100]])
    assert above.tolist() == [False, False, True]
    _, behind = HOMOGRAPHY.to_image_checked([[5, -20], [5, 5]])
    assert behind.tolist() == [False, True]


def test_floor_membership_equals_image_membership() -> None:
    """Why floor zones are drawn in pixels once: a homography keeps straight edges straight."""
    test_layout = layout([{"id": "room", "floor_polygon": FLOOR_ROOM}])
    image_room = test_layout.image_polygon(test_layout.zone("room"))
    rng = np.random.default_rng(3)
    pixels = rng.uniform([0, 0], [768, 576], size=(5000, 2))
    in_image = PolygonSet([image_room]).contains(pixels)[:, 0]
    in_floor = shapely.contains_xy(shapely.Polygon(FLOOR_ROOM), *HOMOGRAPHY.to_floor(pixels).T)
    assert in_image.sum() > 200 and (in_image == in_floor).all()


WALK = [[x, 9.0 + 0.3 * np.sin(x)] for x in np.arange(0.0, 10.01, 0.25)]


def test_floor_zone_and_line_give_the_events_of_their_pixel_equivalents() -> None:
    floor_layout = layout(
        [{"id": "room", "floor_polygon": FLOOR_ROOM}],
        [{"id": "door", "coordinates": "floor", "points": [[5, 0], [5, 20]], "inside": [9, 9]}],
    )
    room = floor_layout.image_polygon(floor_layout.zone("room")).tolist()
    door, inside = floor_layout.image_line(floor_layout.line("door"))
    pixel_layout = layout(
        [{"id": "room", "polygon": room}],
        [{"id": "door", "points": door.tolist(), "inside": inside.tolist()}],
    )
    walk = WALK + WALK[::-1]
    frames = [on_floor([p], i / 7, [1]) for i, p in enumerate(walk)]

    def outcome(events: list[Event]) -> list[tuple[str, str, float, object]]:
        return [
            (e.type.value, e.target, e.timestamp, e.attributes.get("direction")) for e in events
        ]

    floor_events = run(ZoneEngine(floor_layout, "c"), frames, len(walk) / 7)
    pixel_events = run(ZoneEngine(pixel_layout, "c"), frames, len(walk) / 7)
    assert outcome(floor_events) == outcome(pixel_events)
    kinds = [(e.type.value, e.attributes.get("direction")) for e in floor_events]
    assert kinds == [
        ("zone_enter", None),
        ("line_cross", "in"),
        ("zone_exit", None),
        ("zone_enter", None),
        ("line_cross", "out"),
        ("zone_exit", None),
    ]


@pytest.mark.parametrize("speed", [0.8, 1.4])
@pytest.mark.parametrize("ends", ["walks_out", "lost_inside"])
def test_distance_m_on_a_straight_walk(speed: float, ends: str) -> None:
    fps = 7.0
    # Along y = 9 m from x = 0 to 10 m (through the room, x 2-8 m) or to 5 m and lost.
    steps = int((10.0 if ends == "walks_out" else 5.0) / speed * fps)
    frames = [on_floor([[speed * i / fps, 9.0]], i / fps, [4]) for i in range(steps)]
    if ends == "lost_inside":
        gone = np.zeros((0, 2))
        frames.append(Tracks(gone, [], [], gone, timestamp=steps / fps, lost_ids=[4]))
    engine = ZoneEngine(layout([{"id": "room", "floor_polygon": FLOOR_ROOM}]), "c")
    events = run(engine, frames, 20.0)
    (exit_event,) = [e for e in events if e.type == EventType.ZONE_EXIT]
    dwell = float(exit_event.attributes["dwell_seconds"])
    distance = float(exit_event.attributes["distance_m"])
    if ends == "walks_out":
        # Entered at the first frame past x = 2 m, left at the first frame past 8 m.
        assert distance == pytest.approx(speed * dwell, abs=2e-3)
        assert abs(distance - 6.0) <= speed / fps + 1e-3
    else:
        # The exit is dated at the first frame without the person; the walk ends where seen.
        assert distance == pytest.approx(speed * (dwell - 1 / fps), abs=2e-3)
    pixel_engine = ZoneEngine(
        StoreLayout.model_validate(
            {
                "store": {"id": "s"},
                "cameras": [{"id": "c"}],
                "zones": [{"id": "z", "camera": "c", "polygon": [[0, 0], [800, 0], [800, 600]]}],
            }
        ),
        "c",
    )
    pixel_exits = [e for e in run(pixel_engine, frames, 20.0) if e.type == EventType.ZONE_EXIT]
    assert pixel_exits and all("distance_m" not in e.attributes for e in pixel_exits)


def test_floor_speeds_and_positions() -> None:
    floor = np.array([[3.0, 5.0], [7.0, 14.0]])
    feet = HOMOGRAPHY.to_image(floor)
    velocity_floor = np.array([[1.2, 0.0], [0.0, -0.9]])  # m/s
    dt = 0.01
    velocity_px = (HOMOGRAPHY.to_image(floor + velocity_floor * dt) - feet) / dt
    xyxy = np.column_stack([feet[:, 0] - 8, feet[:, 1] - 50, feet[:, 0] + 8, feet[:, 1]])
    tracks = Tracks(xyxy, np.ones(2), np.array([1, 2]), velocity_px, timestamp=0.0)
    positions, ok = floor_positions(tracks, HOMOGRAPHY)
    assert ok.all()
    np.testing.assert_allclose(positions, floor, atol=1e-4)
    np.testing.assert_allclose(floor_speeds(tracks, HOMOGRAPHY), [1.2, 0.9], rtol=0.02)


def busy_scene(rng: np.random.Generator) -> list[Tracks]:
    """Five people wandering on the floor, coming and going, at an uneven frame rate."""
    frames = []
    t = 0.0
    start = rng.uniform([0, 0], [10, 15], size=(5, 2))
    for index in range(120):
        t += float(rng.choice([1 / 7, 2 / 7, 0.1]))
        present = [p for p in range(5) if (index + 17 * p) % 90 < 70]
        points = [start[p] + [np.sin(index / 10 + p), 0.05 * index] for p in present]
        frames.append(on_floor(points, t, [p + 1 for p in present]) if points else None)
    return [f if f is not None else Tracks.empty(t) for f in frames]


def test_heatmap_total_equals_dwell_over_a_zone_covering_the_floor() -> None:
    whole_floor = [[-5.0, -5.0], [30.0, -5.0], [30.0, 60.0], [-5.0, 60.0]]
    test_layout = StoreLayout.model_validate(
        {
            "store": {"id": "s"},
            # Re-link off: it would carry a visit across a gap nobody was seen in.
            "cameras": [
                {
                    "id": "c",
                    "homography": HOMOGRAPHY_BLOCK,
                    "relink_seconds": 0,
                    "occlusion_aware": False,  # heatmap = seen positions only
                }
            ],
            "zones": [
                {
                    "id": "floor",
                    "camera": "c",
                    "floor_polygon": whole_floor,
                    "min_inside_seconds": 0,  # every seen position, as the heatmap
                    "min_outside_seconds": 0,
                }
            ],
        }
    )
    frames = busy_scene(np.random.default_rng(5))
    summary = summarise_tracks(test_layout, "c", frames).to_dict()
    heatmap = summary["heatmap"]
    assert heatmap["cell_m"] == 0.5 and heatmap["outside_person_seconds"] == 0
    dwell = summary["zones"]["floor"]["dwell_seconds_total"]
    assert summary["zones"]["floor"]["exits"] > 5
    assert heatmap["person_seconds"] == pytest.approx(dwell, abs=1e-3)


def test_image_heatmap_for_a_camera_without_homography() -> None:
    test_layout = StoreLayout.model_validate(
        {
            "store": {"id": "s"},
            "cameras": [{"id": "c", "relink_seconds": 0, "occlusion_aware": False}],
            "zones": [
                {
                    "id": "all",
                    "camera": "c",
                    "polygon": [[-1e4, -1e4], [1e4, -1e4], [0, 1e4]],
                    "min_inside_seconds": 0,  # every seen position, as the heatmap
                    "min_outside_seconds": 0,
                }
            ],
        }
    )
    heatmap = heatmap_for_camera(test_layout, "c", cell=32)
    summary = summarise_tracks(
        test_layout, "c", busy_scene(np.random.default_rng(8)), heatmap=heatmap
    ).to_dict()
    assert summary["heatmap"]["cell_px"] == 32
    assert summary["heatmap"]["person_seconds"] == pytest.approx(
        summary["zones"]["all"]["dwell_seconds_total"], abs=1e-3
    )


def test_heatmap_cells_bounds_growth_and_files(tmp_path: Path) -> None:
    fixed = Heatmap(cell=1.0, bounds=(0, 0, 4, 2))
    fixed.add([[0.5, 0.5], [3.9, 1.9], [5.0, 1.0], [np.nan, np.nan]], seconds=0.5)
    assert fixed.grid.tolist() == [[0.5, 0, 0, 0], [0, 0, 0, 0.5]]
    assert fixed.outside_person_seconds == 1.0 and fixed.person_seconds == 2.0

    growing = Heatmap(cell=0.5)
    rng = np.random.default_rng(2)
    total = 0.0
    for _ in range(50):
        points = rng.normal([3, -2], 4, size=(rng.integers(0, 6), 2))
        growing.add(points, 0.2)
        total += 0.2 * len(points)
    assert growing.outside_person_seconds == 0
    assert growing.person_seconds == pytest.approx(total)
    # Each cell holds exactly the points that fall in it.
    xx, yy = growing.cell_centres()
    assert growing.grid.shape == xx.shape
    probe = np.array([[1.1, -3.7]])
    growing.add(probe, 10.0)
    row, col = np.unravel_index(np.argmin((xx - 1.25) ** 2 + (yy + 3.75) ** 2), xx.shape)
    assert growing.grid[row, col] >= 10.0

    csv = growing.write(tmp_path / "heat.csv")
    table = np.loadtxt(csv, delimiter=",", skiprows=1)
    assert csv.read_text().splitlines()[0] == "x_m,y_m,person_seconds"
    assert table[:, 2].sum() == pytest.approx(growing.person_seconds)
    np.testing.assert_array_equal(np.load(growing.write(tmp_path / "heat.npy")), growing.grid)
    png = cv2.imread(str(growing.write(tmp_path / "heat.png")))
    assert png is not None and min(png.shape[:2]) >= 256 and png.max() > 0
    with pytest.raises(ValueError, match=r"\.csv, \.npy or \.png"):
        growing.write(tmp_path / "heat.txt")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"cell": 0}, "cell must be"),
        ({"cell": 1, "bounds": (0, 0, 0, 5)}, "bounds must be"),
        ({"cell": 0.001, "bounds": (0, 0, 100, 100)}, "max_cells"),
    ],
)
def test_heatmap_bad_parameters(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Heatmap(**kwargs)


def two_cameras(**extra: Any) -> StoreLayout:
    """Camera a sees floor x 0-10 m, camera b (same view geometry) x 6-16 m: overlap 6-10 m."""
    shifted = copy.deepcopy(HOMOGRAPHY_BLOCK)
    shifted["floor_points"] = [[x + 6.0, y] for x, y in HOMOGRAPHY_BLOCK["floor_points"]]
    return StoreLayout.model_validate(
        {
            "store": {"id": "s"},
            "cameras": [
                {"id": "a", "homography": HOMOGRAPHY_BLOCK},
                {"id": "b", "homography": shifted},
                {"id": "nohomography"},
            ],
            **extra,
        }
    )


def seen_by(camera_offset: float, floor_points: list[list[float]], t: float) -> Tracks:
    local = [[x - camera_offset, y] for x, y in floor_points]
    return on_floor(local, t, list(range(1, len(local) + 1)))


@pytest.mark.parametrize(
    ("people_a", "people_b", "b_time", "expected"),
    [
        ([[8.0, 5.0]], [[8.2, 5.1]], 0.0, 1),  # one person in the overlap, seen twice
        ([[8.0, 5.0]], [[8.2, 5.1]], 1.0, 2),  # frames too far apart to be the same instant
        ([[2.0, 5.0], [8.0, 5.0]], [[8.3, 4.9], [14.0, 3.0]], 0.2, 3),
        ([[8.0, 5.0], [8.5, 5.0]], [[8.25, 5.0]], 0.0, 2),  # two close people of one camera
        ([[3.0, 5.0]], [[12.0, 5.0]], 0.0, 2),
        ([], [[9.0, 9.0]], 0.0, 1),
    ],
)
def test_store_occupancy_counts_overlapping_cameras_once(
    people_a: list[list[float]], people_b: list[list[float]], b_time: float, expected: int
) -> None:
    occupancy = StoreOccupancy(two_cameras(), merge_distance_m=1.0, time_tolerance_seconds=0.5)
    occupancy.update("a", seen_by(0.0, people_a, 0.0) if people_a else Tracks.empty(0.0))
    occupancy.update("b", seen_by(6.0, people_b, b_time))
    assert occupancy.count() == expected


def test_store_occupancy_adds_cameras_without_homography_and_drops_stale_ones() -> None:
    occupancy = StoreOccupancy(two_cameras(), max_age_seconds=2.0)
    occupancy.update("a", seen_by(0.0, [[8.0, 5.0]], 0.0))
    occupancy.update("b", seen_by(6.0, [[8.1, 5.0]], 0.1))
    occupancy.update("nohomography", seen_by(0.0, [[1.0, 1.0], [2.0, 2.0]], 0.1))
    assert occupancy.count() == 1 + 2
    occupancy.update("b", seen_by(6.0, [[8.1, 5.0]], 5.0))
    assert occupancy.count() == 1  # a and nohomography are 5 s old: offline
    with pytest.raises(ValueError, match="merge_distance_m"):
        StoreOccupancy(two_cameras(), merge_distance_m=-1)
