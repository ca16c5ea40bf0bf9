"""Layout validation: every error names the item and field; homography; example files."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from storesense.zones.config import LayoutError, StoreLayout, load_layout, parse_layout

REPO = Path(__file__).resolve().parents[1]

BASE: dict[str, Any] = {
    "store": {"id": "demo", "timezone": "Europe/London"},
    "cameras": [{"id": "cam1", "fps": 7}, {"id": "cam2"}],
    "zones": [
        {
            "id": "right",
            "camera": "cam1",
            "polygon": [[384, 150], [768, 150], [768, 600], [384, 600]],
        },
        {"id": "till", "camera": "cam2", "kind": "queue", "polygon": [[0, 0], [50, 0], [50, 50]]},
        {
            "id": "shelf-a",
            "camera": "cam2",
            "kind": "shelf",
            "polygon": [[100, 0], [200, 0], [200, 80], [100, 80]],
        },
    ],
    "lines": [
        {
            "id": "door",
            "camera": "cam1",
            "points": [[384, 150], [384, 600]],
            "inside": [600, 400],
            "entrance": True,
        }
    ],
}


def _with(path: str, value: Any) -> dict[str, Any]:
    data = copy.deepcopy(BASE)
    target: Any = data
    parts = path.split(".")
    for part in parts[:-1]:
        target = target[int(part)] if part.isdigit() else target[part]
    last = parts[-1]
    if last.isdigit():
        target[int(last)] = value
    else:
        target[last] = value
    return data


def test_valid_multi_camera_layout() -> None:
    layout = StoreLayout.model_validate(BASE)
    assert [c.id for c in layout.cameras] == ["cam1", "cam2"]
    assert [z.id for z in layout.zones_of("cam2")] == ["till", "shelf-a"]
    assert layout.zone("shelf-a").shelf is not None
    assert layout.zone("shelf-a").shelf.grid == (3, 6)
    assert layout.zone("shelf-a").shelf.max_reach_speed == 0.6
    assert layout.line("door").inside_sign in (1, -1)


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (
            "zones.0.polygon",
            [[0, 0], [10, 10], [10, 0], [0, 10]],
            "zones[0].polygon: self-intersecting",
        ),
        ("zones.1.polygon", [[0, 0], [5, 5], [10, 10]], "zones[1].polygon: degenerate"),
        ("zones.1.camera", "cam9", "zones[1].camera: unknown camera 'cam9'"),
        ("zones.2.id", "right", "zones[2].id: duplicate id 'right'"),
        ("zones.0.kind", "lobby", "zones[0].kind: Input should be"),
        ("lines.0.points", [[5, 5], [5, 5]], "lines[0].points: the two points are identical"),
        ("lines.0.inside", [384, 300], "lines[0].inside: the point lies on the line"),
        ("store.timezone", "Europe/Londres", "store.timezone: unknown timezone 'Europe/Londres'"),
        ("cameras.1.id", "cam1", "cameras[1].id: duplicate id 'cam1'"),
        ("cameras.0.fps", -3, "cameras[0].fps: fps -3 is outside 0.01 to 1000 frames per second"),
        ("cameras.0.masks", [[[0, 0], [1, 1]]], "cameras[0].masks[0]: needs at least 3 points"),
        (
            "cameras.0.occluders",
            [[[0, 0], [1, 1]]],
            "cameras[0].occluders[0]: needs at least 3 points",
        ),
        (
            "cameras.1.occluders",
            [[[0, 0], [9, 0], [9, 9]], [[0, 0], [float("nan"), 0], [9, 9]]],
            "cameras[1].occluders[1]: points must be finite",
        ),
        (
            "cameras.0.occluders",
            [[[0, 0], [10, 10], [10, 0], [0, 10]]],
            "cameras[0].occluders[0]: self-intersecting",
        ),
        (
            "cameras.0.occluders",
            [[[0, 0], [5, 5], [10, 10]]],
            "cameras[0].occluders[0]: degenerate",
        ),
        ("zones.0.min_inside_seconds", -1, "zones[0].min_inside_seconds: Input should be greater"),
        (
            "zones.2.shelf",
            {"max_reach_speed": -1},
            "zones[2].shelf.max_reach_speed: Input should be greater than 0",
        ),
        (
            "zones.2.shelf",
            {"max_reach_speed": float("inf")},
            "zones[2].shelf.max_reach_speed: must be a finite number, got inf",
        ),
        ("zones.2.shelf", {"grid": [0, 4]}, "zones[2].shelf.grid: rows and cols must be ≥ 1"),
    ],
)
def test_errors_name_item_and_field(path: str, value: Any, message: str) -> None:
    with pytest.raises(LayoutError) as raised:
        parse_layout(_with(path, value))
    assert message in str(raised.value)


def test_occluders_are_camera_polygons() -> None:
    sign = [[413, 203], [444, 203], [444, 244], [413, 244]]
    layout = parse_layout(_with("cameras.0.occluders", [sign]))
    assert layout.camera("cam1").occluders == [[tuple(map(float, p)) for p in sign]]
    assert layout.camera("cam2").occluders == []


def test_every_problem_is_listed() -> None:
    data = _with("zones.1.camera", "nope")
    data["lines"].append(dict(data["lines"][0]))
    with pytest.raises(LayoutError) as raised:
        parse_layout(data)
    lines = str(raised.value).splitlines()
    assert "zones[1].camera: unknown camera 'nope' (known: cam1, cam2)" in lines
    assert "lines[1].id: duplicate id 'door'" in lines


def test_floor_polygon_needs_homography() -> None:
    data = _with(
        "zones.0", {"id": "f", "camera": "cam2", "floor_polygon": [[0, 0], [2, 0], [2, 2]]}
    )
    with pytest.raises(
        LayoutError, match=r"zones\[0\].floor_polygon: camera 'cam2' has no homography"
    ):
        parse_layout(data)


def test_homography_maps_known_points_and_floor_zones() -> None:
    # Image pixels of a 4 m x 3 m floor rectangle seen in perspective.
    image = [[100, 400], [540, 400], [470, 200], [170, 200]]
    floor = [[0, 0], [4, 0], [4, 3], [0, 3]]
    data = copy.deepcopy(BASE)
    data["cameras"][1]["homography"] = {"image_points": image, "floor_points": floor}
    data["zones"].append(
        {"id": "floor-zone", "camera": "cam2", "floor_polygon": [[0, 0], [4, 0], [4, 3], [0, 3]]}
    )
    layout = parse_layout(data)
    homography = layout.camera("cam2").homography
    assert homography is not None
    np.testing.assert_allclose(homography.to_floor(image), floor, atol=1e-6)
    # The centre of the floor rectangle is where the image diagonals cross.
    centre = homography.to_image([[2, 1.5]])[0]
    assert 300 < centre[0] < 340 and 200 < centre[1] < 400
    np.testing.assert_allclose(homography.to_floor([centre]), [[2, 1.5]], atol=1e-6)
    np.testing.assert_allclose(layout.image_polygon(layout.zone("floor-zone")), image, atol=1e-6)


def test_homography_needs_four_pairs() -> None:
    data = copy.deepcopy(BASE)
    data["cameras"][0]["homography"] = {
        "image_points": [[0, 0], [1, 0], [1, 1]],
        "floor_points": [[0, 0], [1, 0], [1, 1]],
    }
    with pytest.raises(LayoutError, match=r"cameras\[0\].homography: needs at least 4 point pairs"):
        parse_layout(data)


@pytest.mark.parametrize("name", ["pets09.yaml", "pets09_bench.yaml"])
def test_example_layouts_load_with_sources_resolved(name: str, pets09: Path) -> None:
    layout = load_layout(REPO / "examples" / name)
    source = layout.cameras[0].source
    assert source is not None and Path(source) == (pets09 / "PETS09-S2L1.avi").resolve()
    assert layout.cameras[0].fps == 7


def test_unreadable_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(LayoutError, match="cannot read layout"):
        load_layout(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("store: [unclosed\n")
    with pytest.raises(LayoutError, match="not valid YAML") as yaml_error:
        load_layout(bad)
    assert "\n" not in str(yaml_error.value) and "line 2, column 1" in str(yaml_error.value)
    broken_json = tmp_path / "bad.json"
    broken_json.write_text('{"store": {"id": 1,}}')
    with pytest.raises(LayoutError, match=r"not valid JSON at line 1, column 20: Expecting"):
        load_layout(broken_json)
    scalar = tmp_path / "scalar.json"
    scalar.write_text("3")
    with pytest.raises(LayoutError, match="must be a mapping"):
        load_layout(scalar)


PETS09_HOMOGRAPHY = {
    "image_points": [[50, 550], [718, 550], [524, 150], [244, 150]],
    "floor_points": [[0, 0], [10, 0], [10, 15], [0, 15]],
}


def _floor_layout(zone: dict[str, Any] | None = None, line: dict[str, Any] | None = None) -> Any:
    data = copy.deepcopy(BASE)
    data["cameras"][0]["homography"] = copy.deepcopy(PETS09_HOMOGRAPHY)
    if zone is not None:
        data["zones"].append({"id": "floor-zone", "camera": "cam1", **zone})
    if line is not None:
        data["lines"].append({"id": "floor-line", "camera": "cam1", "coordinates": "floor", **line})
    return data


@pytest.mark.parametrize(
    ("homography", "message"),
    [
        (
            {
                "image_points": [[0, 0], [10, 10], [20, 20], [30, 30]],
                "floor_points": [[0, 0], [1, 0], [1, 1], [0, 1]],
            },
            r"cameras\[0\].homography: points are degenerate",
        ),
        (
            {**PETS09_HOMOGRAPHY, "floor_points": [[0, 0], [10, 0], [0, 15], [10, 15]]},
            r"cameras\[0\].homography: image_points and floor_points are not in a consistent order",
        ),
        (
            {**PETS09_HOMOGRAPHY, "floor_points": [[0, 0], [10, 0], [10, 15]]},
            r"cameras\[0\].homography: image_points \(4\) and floor_points \(3\) differ",
        ),
    ],
)
def test_bad_homographies(homography: dict[str, Any], message: str) -> None:
    data = copy.deepcopy(BASE)
    data["cameras"][0]["homography"] = homography
    with pytest.raises(LayoutError, match=message):
        parse_layout(data)


@pytest.mark.parametrize(
    ("zone", "line", "message"),
    [
        # The camera stands about 10.8 m before floor y = 0: y < -10.8 m is behind it.
        (
            {"floor_polygon": [[0, -20], [5, -20], [5, -12]]},
            None,
            r"zones\[3\].floor_polygon\[0\] \[0.0, -20.0\] m is behind the camera",
        ),
        (
            {"floor_polygon": [[0, -10.8], [5, -10.8], [5, 5]]},
            None,
            r"zones\[3\].floor_polygon\[0\] \[0.0, -10.8\] m maps to image pixel .* too close",
        ),
        (
            None,
            {"points": [[0, 5], [10, 5]], "inside": [5, -30]},
            r"lines\[1\].inside \[5.0, -30.0\] m is behind the camera",
        ),
        (
            None,
            {"points": [[0, -11], [10, 5]], "inside": [5, 12]},
            r"lines\[1\].points\[0\] \[0.0, -11.0\] m is behind the camera",
        ),
    ],
)
def test_floor_shapes_must_be_in_front_of_the_camera(
    zone: dict[str, Any] | None, line: dict[str, Any] | None, message: str
) -> None:
    with pytest.raises(LayoutError, match=message):
        parse_layout(_floor_layout(zone, line))


def test_floor_line_needs_homography_and_maps_to_pixels() -> None:
    data = _floor_layout(line={"points": [[0, 9], [10, 9]], "inside": [5, 12]})
    layout = parse_layout(data)
    homography = layout.camera("cam1").homography
    assert homography is not None
    points, inside = layout.image_line(layout.line("floor-line"))
    np.testing.assert_allclose(homography.to_floor(points), [[0, 9], [10, 9]], atol=1e-6)
    np.testing.assert_allclose(homography.to_floor([inside]), [[5, 12]], atol=1e-6)
    data["lines"][1]["camera"] = "cam2"
    with pytest.raises(
        LayoutError, match=r"lines\[1\].coordinates: floor, but camera 'cam2' has no homography"
    ):
        parse_layout(data)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"relink_seconds": 3.0}, r"cameras\[0\].relink_seconds: 3.0 exceeds lost_after_seconds"),
        ({"relink_seconds": -1}, r"cameras\[0\].relink_seconds: Input should be greater than or"),
        ({"relink_distance": "far"}, r"cameras\[0\].relink_distance: Input should be a valid"),
        ({"occupancy_hold_seconds": float("inf")}, r"occupancy_hold_seconds: must be a finite"),
        ({"lost_after_seconds": 0}, r"cameras\[0\].lost_after_seconds: Input should be greater"),
    ],
)
def test_engine_settings_in_the_camera_block_are_validated(
    settings: dict[str, Any], message: str
) -> None:
    data = copy.deepcopy(BASE)
    data["cameras"][0].update(settings)
    with pytest.raises(LayoutError, match=message):
        parse_layout(data)


def test_engine_settings_in_the_camera_block() -> None:
    data = copy.deepcopy(BASE)
    data["cameras"][0].update(
        relink_seconds=2.5, relink_distance=0.8, lost_after_seconds=3, occupancy_hold_seconds=0
    )
    camera = parse_layout(data).camera("cam1")
    assert (camera.relink_seconds, camera.relink_distance) == (2.5, 0.8)
    assert (camera.lost_after_seconds, camera.occupancy_hold_seconds) == (3.0, 0.0)
    defaults = parse_layout(BASE).camera("cam1")
    assert (defaults.relink_seconds, defaults.relink_distance) == (1.0, 0.5)


def test_default_relink_is_shortened_to_a_short_lost_after() -> None:
    data = copy.deepcopy(BASE)
    data["cameras"][0]["lost_after_seconds"] = 0.4
    assert parse_layout(data).camera("cam1").relink_seconds == 0.4


@pytest.mark.parametrize(
    ("tracker", "message"),
    [
        ({"high_score": 2}, r"cameras\[0\]\.tracker\.high_score: Input should be less than"),
        ({"lost_buffer_seconds": -1}, r"cameras\[0\]\.tracker\.lost_buffer_seconds"),
        ({"min_hit": 3}, r"cameras\[0\]\.tracker\.min_hit: Extra inputs are not permitted"),
    ],
)
def test_camera_tracker_settings_are_validated(tracker: dict[str, Any], message: str) -> None:
    data = copy.deepcopy(BASE)
    data["cameras"][0]["tracker"] = tracker
    with pytest.raises(LayoutError, match=message):
        parse_layout(data)


def test_camera_tracker_settings_reach_the_camera_pipeline(yolox_path: Path) -> None:
    from storesense.api.runtime import pipeline_factory_for
    from storesense.vision.detector import Detector
    from storesense.vision.tracking import TrackerConfig

    data = copy.deepcopy(BASE)
    data["cameras"][0]["tracker"] = {"high_score": 0.55, "min_hits": 4}
    layout = parse_layout(data)
    make_pipeline = pipeline_factory_for(Detector(yolox_path))
    tracker = make_pipeline(layout.camera("cam1")).tracker
    assert (tracker.config.high_score, tracker.config.min_hits) == (0.55, 4)
    others = [c for c in layout.cameras if c.id != "cam1"]
    assert all(make_pipeline(c).tracker.config == TrackerConfig() for c in others)
