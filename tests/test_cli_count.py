"""`storesense count` on a real short clip: JSONL events and a consistent summary."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from storesense.api.cli import main

FPS = 25.0


def write_layout(folder: Path, tud_campus: Path, **extra: object) -> Path:
    layout = {
        "store": {"id": "campus", "timezone": "Europe/Berlin"},
        "cameras": [{"id": "cam1", "source": str(tud_campus / "TUD-Campus.mp4"), "fps": FPS}],
        "zones": [
            {
                "id": "middle",
                "camera": "cam1",
                "approach_seconds": 1.0,
                "polygon": [[200, 0], [440, 0], [440, 480], [200, 480]],
                # Raw membership: occupancy x time and dwell then count the same frames.
                "min_inside_seconds": 0,
                "min_outside_seconds": 0,
            }
        ],
        "lines": [
            {
                "id": "mid-line",
                "camera": "cam1",
                "points": [[320, 0], [320, 480]],
                "inside": [500, 240],
                "entrance": True,
            },
            {
                "id": "left-line",
                "camera": "cam1",
                "points": [[200, 0], [200, 480]],
                "inside": [500, 240],
            },
        ],
        **extra,
    }
    path = folder / "layout.yaml"
    path.write_text(yaml.safe_dump(layout))
    return path


def test_count_writes_events_consistent_with_the_summary(
    tmp_path: Path, tud_campus: Path, capsys: pytest.CaptureFixture[str], yolox_path: Path
) -> None:
    layout = write_layout(tmp_path, tud_campus)
    events_path = tmp_path / "out" / "events.jsonl"
    code = main(
        [
            "count",
            "--layout",
            str(layout),
            "--events",
            str(events_path),
            "--model",
            str(yolox_path),
            "--run-id",
            "test",
            "--heatmap",
            str(tmp_path / "out" / "heat.csv"),
        ]
    )
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    # No homography: the heatmap is in image pixels; its cells hold every person-second.
    heatmap = summary["heatmap"]
    assert heatmap["cell_px"] == 16 and heatmap["person_seconds"] > 0
    rows = (tmp_path / "out" / "heat.csv").read_text().splitlines()
    assert rows[0] == "x_px,y_px,person_seconds"
    cells = [[float(v) for v in row.split(",")] for row in rows[1:]]
    assert all(0 <= x <= 640 and 0 <= y <= 480 + 16 for x, y, _ in cells)
    assert sum(c[2] for c in cells) == pytest.approx(
        heatmap["person_seconds"] - heatmap["outside_person_seconds"], abs=0.01
    )
    events = [json.loads(line) for line in events_path.read_text().splitlines()]
    assert summary["frames"] == 71 and summary["camera"] == "cam1"
    assert summary["shelves"] == {}  # no shelf zone in this layout
    assert len({e["event_id"] for e in events}) == len(events) > 0
    assert all(0 <= e["timestamp"] <= 71 / FPS for e in events)

    def count(kind: str, target: str, **attrs: str) -> int:
        return sum(
            e["type"] == kind
            and e["target"] == target
            and all(e["attributes"].get(k) == v for k, v in attrs.items())
            for e in events
        )

    zone = summary["zones"]["middle"]
    assert zone["entries"] == count("zone_enter", "middle") > 0
    assert zone["exits"] == count("zone_exit", "middle") == zone["entries"]
    for line_id, counts in summary["lines"].items():
        assert counts == {
            "in": count("line_cross", line_id, direction="in"),
            "out": count("line_cross", line_id, direction="out"),
        }
    assert sum(summary["lines"]["mid-line"].values()) > 0
    dwell = sum(e["attributes"]["dwell_seconds"] for e in events if e["type"] == "zone_exit")
    assert zone["dwell_seconds_total"] == pytest.approx(dwell, abs=1e-3)
    # Occupancy integrated over frames agrees with the dwell to within one frame per visit.
    occupancy_seconds = zone["mean_occupancy"] * summary["frames"] / FPS
    assert abs(occupancy_seconds - dwell) <= zone["entries"] / FPS + 0.01
    assert 1 <= zone["peak_occupancy"] <= 10
    # Every exit's dwell is its time since the same track's entry.
    entered = {e["track_id"]: e["timestamp"] for e in events if e["type"] == "zone_enter"}
    for e in events:
        if e["type"] == "zone_exit":
            assert e["attributes"]["dwell_seconds"] == pytest.approx(
                e["timestamp"] - entered[e["track_id"]], abs=1e-3
            )


def test_count_reports_shelf_events_in_the_summary_and_the_events_file(
    tmp_path: Path, tud_campus: Path, capsys: pytest.CaptureFixture[str], yolox_path: Path
) -> None:
    """People reaching into a shelf zone drawn where they walk: the real detector and
    frames through the same analytics as the service."""
    shelf = {
        "id": "kiosk",
        "camera": "cam1",
        "kind": "shelf",
        "polygon": [[260, 180], [380, 180], [380, 300], [260, 300]],
        # everyone who stays in the band counts as reaching (walking speed too)
        "shelf": {"reach_band_px": 10, "min_interaction_seconds": 0.2, "max_reach_speed": None},
    }
    layout = write_layout(tmp_path, tud_campus)
    data = yaml.safe_load(layout.read_text())
    data["zones"].append(shelf)
    data["cameras"][0]["start_time"] = "2024-05-01T10:00:00Z"
    layout.write_text(yaml.safe_dump(data))
    events_path = tmp_path / "events.jsonl"
    args = ["count", "--layout", str(layout), "--events", str(events_path)]
    assert main([*args, "--model", str(yolox_path)]) == 0
    summary = json.loads(capsys.readouterr().out)
    events = [json.loads(line) for line in events_path.read_text().splitlines()]
    shelf_events = [e for e in events if e["target"] == "kiosk" and "zone_" not in e["type"]]
    kinds = {
        "interactions": "shelf_interaction",
        "takes": "item_taken",
        "put_backs": "item_returned",
    }
    assert summary["shelves"]["kiosk"] == {
        name: sum(e["type"] == kind for e in shelf_events) for name, kind in kinds.items()
    }
    assert summary["shelves"]["kiosk"]["interactions"] > 0
    start = 1_714_557_600.0
    for event in shelf_events:
        assert event["track_id"] >= 0 and event["camera_id"] == "cam1"
        assert start <= event["timestamp"] <= start + 71 / FPS + 0.5
    outcomes = {
        e["attributes"]["outcome"] for e in shelf_events if e["type"] == "shelf_interaction"
    }
    assert outcomes <= {
        "browse",
        "take",
        "return",
        "take_and_return",
        "global_change",
        "unverified",
    }


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--camera", "cam9"], "unknown camera 'cam9'"),
        (["--sample-fps", "0"], "--sample-fps must be > 0"),
        (["/no/such/video.mp4"], "not found"),
        (["--heatmap", "heat.txt"], "--heatmap must end in .csv, .npy or .png"),
        (["--heatmap", "heat.png", "--heatmap-cell", "-1"], "--heatmap-cell must be > 0"),
    ],
)
def test_count_user_errors(
    tmp_path: Path,
    tud_campus: Path,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    message: str,
) -> None:
    layout = write_layout(tmp_path, tud_campus)
    assert main(["count", "--layout", str(layout), *args]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_count_rejects_a_bad_layout(
    tmp_path: Path, tud_campus: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    layout = write_layout(tmp_path, tud_campus)
    data = yaml.safe_load(layout.read_text())
    data["zones"][0]["polygon"] = [[0, 0], [10, 10], [10, 0], [0, 10]]
    data["lines"][1]["camera"] = "cam2"
    layout.write_text(yaml.safe_dump(data))
    assert main(["count", "--layout", str(layout)]) == 2
    err = capsys.readouterr().err
    assert "zones[0].polygon: self-intersecting" in err
