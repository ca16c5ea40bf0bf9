"""One camera runtime: ``storesense count`` and a ``serve`` camera worker run the same
per-frame loop (:class:`~storesense.api.runtime.runner.CameraRunner`), so on the same
video and layout they give the same events, event by event."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml
from service_helpers import cut_clip, wait_for
from storesense.api.cli import main
from storesense.api.runtime import CameraState, WorkerSupervisor, pipeline_factory_for
from storesense.api.settings import ServiceSettings
from storesense.api.store import open_store
from storesense.api.store.base import EventQuery
from storesense.zones.config import parse_layout
from storesense.zones.events import EventType
from storesense.zones.store_visits import STORE_CAMERA

pytest_plugins = ["service_helpers"]

EXAMPLE = Path(__file__).parent.parent / "examples" / "pets09.yaml"
FRAMES = 150
START = "2024-05-01T10:00:00Z"


def pets_layout(clip: Path, store_id: str) -> dict[str, Any]:
    """The PETS09 example (image and floor zones and lines, a homography) on ``clip``,
    dated from ``START``: both runs put frame 0 at the same Unix time."""
    data = yaml.safe_load(EXAMPLE.read_text())
    data["store"]["id"] = store_id
    camera = data["cameras"][0]
    camera.update(source=str(clip), start_time=START)
    return dict(data)


def event_key(kind: str, target: str, track_id: int, timestamp: float) -> tuple[Any, ...]:
    return (round(timestamp, 6), kind, target, track_id)


def test_count_and_a_serve_worker_give_the_same_events(
    tmp_path: Path,
    pets09: Path,
    detector: Any,
    yolox_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    clip = cut_clip(pets09 / "PETS09-S2L1.avi", tmp_path / "clip.avi", FRAMES)
    store_id = f"rt{uuid.uuid4().hex[:8]}"
    data = pets_layout(clip, store_id)
    layout_path = tmp_path / "layout.yaml"
    layout_path.write_text(yaml.safe_dump(data))

    # storesense count (the CLI function): the runner with the in-memory count sink.
    events_path = tmp_path / "count.jsonl"
    code = main(
        [
            "count",
            "--layout",
            str(layout_path),
            "--events",
            str(events_path),
            "--model",
            str(yolox_path),
        ]
    )
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    counted = [json.loads(line) for line in events_path.read_text().splitlines()]

    # A serve camera worker (supervisor, SQLite store): the runner with the store sink.
    store = open_store(f"sqlite:///{tmp_path / 'serve.db'}", store_id)
    settings = ServiceSettings(store_url="sqlite:///unused.db", realtime=False)
    supervisor = WorkerSupervisor(
        parse_layout(data), store, settings, pipeline_factory=pipeline_factory_for(detector)
    )
    try:
        supervisor.start(watch_layout=False)
        status = wait_for(
            lambda: (s := supervisor.statuses()["cam1"]).state == CameraState.FINISHED and s,
            timeout=300,
            what="the worker to finish the clip",
        )
        supervisor.stop()
        stored = store.query_events(EventQuery())
    finally:
        supervisor.stop()
        store.close()

    assert summary["frames"] == status.frames_processed == FRAMES
    from_count = sorted(
        event_key(e["type"], e["target"], e["track_id"], e["timestamp"]) for e in counted
    )
    # The camera's own events; the worker's shared StoreVisits adds the store-wide ones
    # (camera @store: here each visit's visit_end), which `storesense count` has not.
    from_serve = sorted(
        event_key(e.type.value, e.target, e.track_id, e.timestamp)
        for e in stored
        if e.camera_id != STORE_CAMERA
    )
    assert {e.type for e in stored if e.camera_id == STORE_CAMERA} == {EventType.VISIT_END}
    assert from_count == from_serve
    # A comparison that could fail: the clip gives entries, exits and crossings.
    kinds = {key[1] for key in from_count}
    assert {"zone_enter", "zone_exit", "line_cross"} <= kinds, kinds
    # Line directions agree too (the summary counts them from the same events).
    directions = sorted(
        (e["target"], e["track_id"], e["attributes"]["direction"])
        for e in counted
        if e["type"] == "line_cross"
    )
    stored_directions = sorted(
        (e.target, e.track_id, e.attributes["direction"])
        for e in stored
        if e.type.value == "line_cross"
    )
    assert directions == stored_directions
    lines = summary["lines"]
    assert sum(counts["in"] + counts["out"] for counts in lines.values()) == len(directions)
