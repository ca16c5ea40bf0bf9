"""Visits across processes: camera workers of one store on separate processes share their
live floor tracks through a real ``redis-server`` (``api/store/live_floor.py``).

The two-process test runs the PETS09 split views of ``benchmarks/store_visits.py`` (two
cameras, overlapping x ranges, homographies onto one floor) as two real worker processes
(``tests/live_floor_camera.py``, started by ``benchmarks/store_visits_redis.py``), each
with its own ``StoreVisits``, on one Redis store:
people who walk from one process's camera into the other's keep one visit, and each
process's store-wide count matches the single-process one. The others check the link
itself: one visit for one person seen by two processes, a hung then dead Redis that the
cameras never wait for, a malformed key, and SQLite staying single-process.
"""

from __future__ import annotations

import signal
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fixtures_redis import RedisServer
from service_helpers import wait_for
from storesense.api.store import open_store
from storesense.api.store.live_floor import LiveFloorLink, decode_frame, encode_frame
from storesense.api.store.redis import RedisStore
from storesense.api.store_wide import StoreWideAnalytics
from storesense.vision.detections import Tracks
from storesense.zones.config import StoreLayout
from storesense.zones.store_visits import FloorFrame, StoreVisits

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from store_visits import FLOOR_ZONE, VIEWS, crossings, floor_zone_truth, run_split
from store_visits_redis import figures, run_processes
from test_store_visits import person, two_cameras  # both cameras see one metre at 0.0

pytest_plugins = ["service_helpers"]

SPEED = 2.0
"""The processes play the 7 fps footage twice as fast as real time (about 60 s)."""


def test_two_worker_processes_keep_one_visit_and_count_the_union(
    split_tracks: dict[str, list[Tracks]], pets09: Path, redis_url: str, tmp_path: Path
) -> None:
    out = run_processes(split_tracks, redis_url, tmp_path, SPEED)
    for camera_id, other in (("left", "right"), ("right", "left")):
        # Each process saw the other's camera through Redis, and only that one.
        assert out[camera_id]["remote_cameras"] == [other]
        assert out[camera_id]["received"] > 500
        assert out[camera_id]["failures"] == 0
    found = figures(split_tracks, out, pets09)
    total, kept = found["crossings"], found["kept"]
    shared, person_frames = found["shared"], found["person_frames"]
    one_zones: list[dict[str, int]] = []
    _, _, one_seen, one_counts, truth = run_split(split_tracks, pets09, one_zones)
    one_zone = [frame[FLOOR_ZONE] for frame in one_zones]
    zone_truth = floor_zone_truth(pets09, len(one_zone))
    one_total, one_kept = crossings(one_seen)
    print(
        f"\ntwo processes: {kept} of {total} crossings kept one visit (one process: "
        f"{one_kept} of {one_total}); {shared} of {person_frames} person-frames shared"
    )
    assert total >= 20
    # Measured: 26 of 27 (one process with both cameras: 25 of 27). The issue asks 90 %.
    assert kept / total >= 0.9, f"{kept} of {total} crossings kept their visit"
    assert shared <= 0.01 * person_frames, f"{shared} of {person_frames} person-frames shared"
    one = np.array(one_counts)
    for camera_id in VIEWS:
        counts = found["counts"][camera_id]
        off_one = float(np.mean(np.abs(counts - one)))
        print(
            f"{camera_id}'s process: store-wide {counts.sum()} person-frames, one process "
            f"{one.sum()}, truth {sum(truth)}; mean |difference| to one process {off_one:.2f}"
        )
        # The union of both processes' cameras, each person once: as one process counts
        # (the other camera's view arrives a frame or two late) and within 5 % of the truth.
        assert abs(counts.sum() / one.sum() - 1) <= 0.02
        assert off_one < 0.35
        assert abs(counts.sum() / sum(truth) - 1) <= 0.05
        # The store-wide floor zone across both processes' views: each process counts it
        # on the union of both cameras, as one process does, within 5 % of the truth.
        zone = found["zone_counts"][camera_id]
        assert abs(zone.sum() / sum(one_zone) - 1) <= 0.02
        assert abs(zone.sum() / sum(zone_truth) - 1) <= 0.05


# ---------------------------------------------------------------- the link itself
def _process(url: str, store_id: str, worker: str) -> tuple[RedisStore, StoreVisits, LiveFloorLink]:
    store = RedisStore.from_url(url, store_id)
    visits = StoreVisits(two_cameras(0.0))
    link = store.live_floor(worker)
    link.attach(visits)
    return store, visits, link


def test_a_person_seen_by_two_processes_is_one_visit_and_redis_never_stalls_a_camera(
    new_redis_server: Callable[..., RedisServer],
) -> None:
    server = new_redis_server()
    store_id = f"kill{uuid.uuid4().hex[:8]}"
    store_a, visits_a, link_a = _process(server.url, store_id, "box-a")
    store_b, visits_b, link_b = _process(server.url, store_id, "box-b")
    try:
        for i in range(4):
            visits_a.update("a", person(1, 50, 0.1 * i))
            visits_b.update("b", person(9, 52, 0.1 * i))
            assert link_a.exchange() and link_b.exchange()
        # Box b's camera sees box a's person: one visit (a's began first), counted once
        # by either process; without the link each would count only its own camera.
        assert visits_b.visit_of("b", 9) == visits_a.visit_of("a", 1) == "a:1"
        assert visits_a.count() == visits_b.count() == 1
        assert visits_a.remote_cameras == {"b"} and visits_b.remote_cameras == {"a"}

        # Redis hangs (SIGSTOP): the links' threads wait for a reply, the cameras do not.
        link_a.start()
        link_b.start()
        assert server.process is not None
        server.process.send_signal(signal.SIGSTOP)
        time.sleep(0.2)
        for i in range(4, 40):
            visits_a.update("a", person(1, 50 + i, 0.1 * i))
            visits_b.update("b", person(9, 52 + i, 0.1 * i))
        # Frames were replaced while the link waited (dropped): the camera went on.
        assert link_a.dropped > 0 and link_b.dropped > 0
        assert visits_a.visit_of("a", 1) == "a:1" and visits_a.count() >= 1
        wait_for(lambda: link_a.failures > 0, timeout=10, what="the hung Redis reported")

        # Redis dies: still the cameras go on, on their own view.
        server.process.send_signal(signal.SIGCONT)
        server.kill()
        for i in range(40, 60):
            visits_a.update("a", person(1, 50, 0.1 * i))
            visits_b.update("b", Tracks.empty(0.1 * i))
        assert visits_a.visit_of("a", 1) == "a:1"

        # Redis is back (empty): the links share again, without anyone restarting them.
        server.start()
        received = link_b.received
        t = 6.0

        def shared_again() -> bool:
            nonlocal t
            t += 0.1
            visits_a.update("a", person(1, 50, t))
            visits_b.update("b", Tracks.empty(t))
            time.sleep(0.05)
            return link_b.received > received

        wait_for(shared_again, timeout=20, what="live floor tracks shared again")
        assert visits_b.count() == 1  # a's person, seen through Redis
    finally:
        link_a.stop()
        link_b.stop()
        store_a.close()
        store_b.close()


def test_a_malformed_or_foreign_frame_is_ignored(redis_url: str) -> None:
    store_id = f"bad{uuid.uuid4().hex[:8]}"
    store, visits, link = _process(redis_url, store_id, "box-a")
    try:
        visits.update("a", person(1, 50, 0.0))
        store.client.set(link.key("b"), "{not json", px=5000)
        assert link.exchange()
        assert visits.remote_cameras == set() and visits.count() == 1
        # A camera the layout does not know is ignored too; b's frame counts.
        frame = FloorFrame("zz", 0.0, [3], np.array([[0.2, 0.2]]), ["zz:3"], [0.0])
        store.client.set(link.key("b"), encode_frame(frame, "box-b"), px=5000)
        assert link.exchange() and visits.remote_cameras == set()
        far = FloorFrame("b", 0.1, [3], np.array([[3.0, 3.0]]), ["b:3"], [0.1])
        store.client.set(link.key("b"), encode_frame(far, "box-b"), px=5000)
        assert link.exchange() and visits.remote_cameras == {"b"} and visits.count() == 2
        with pytest.raises(ValueError, match="malformed"):
            decode_frame('{"w": "x", "c": "b", "t": 0, "ids": [1], "xy": [], "v": [], "f": []}')
    finally:
        link.stop()
        store.close()


def test_sqlite_stays_one_process(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 's.db'}", "s")
    try:
        assert store.live_floor("box") is None
        engines = StoreWideAnalytics(store.live_floor("box"))
        engine = engines(two_cameras(0.0), "a", "run", 0.0)
        assert engine.store_visits is not None and engine.store_visits.on_frame is None
        engines.close()
    finally:
        store.close()


# ----------------------------------------------------------------- in the service
PETS_IMAGE_POINTS = [[50, 550], [718, 550], [524, 150], [244, 150]]
PETS_FLOOR_POINTS = [[0, 0], [10, 0], [10, 15], [0, 15]]


def test_worker_supervisors_of_two_boxes_share_visits_through_redis(
    tmp_path: Path, pets09: Path, detector: Any, redis_url: str
) -> None:
    """Two worker supervisors (as on two boxes: ``serve --camera cam1`` and ``--camera
    cam2``, each its own ``StoreWideAnalytics``) on one Redis store, both cameras showing
    the same PETS09 clip on one floor plan: one visit id for one person in both
    supervisors' events, and the store count publishes each person once."""
    from service_helpers import cut_clip
    from storesense.api.runtime import CameraState, WorkerSupervisor, pipeline_factory_for
    from storesense.api.settings import ServiceSettings
    from storesense.api.store.base import EventQuery
    from storesense.api.store_wide import STORE_OCCUPANCY_KEY

    clip = cut_clip(pets09 / "PETS09-S2L1.avi", tmp_path / "clip.avi", 20)
    store_id = f"boxes{uuid.uuid4().hex[:8]}"
    homography = {"image_points": PETS_IMAGE_POINTS, "floor_points": PETS_FLOOR_POINTS}
    whole = [[0, 0], [768, 0], [768, 576], [0, 576]]
    layout = StoreLayout.model_validate(
        {
            "store": {"id": store_id, "timezone": "UTC"},
            "cameras": [
                {"id": c, "source": str(clip), "fps": 7, "homography": homography}
                for c in ("cam1", "cam2")
            ],
            "zones": [
                *({"id": f"floor-{c}", "camera": c, "polygon": whole} for c in ("cam1", "cam2")),
                # A store-wide floor zone over the whole plaza both boxes' cameras see.
                {"id": "plaza", "floor_polygon": PETS_FLOOR_POINTS},
            ],
        }
    )
    settings = ServiceSettings(store_url=redis_url, realtime=True)
    stores = [RedisStore.from_url(redis_url, store_id) for _ in range(2)]
    supervisors = [
        WorkerSupervisor(
            layout,
            box_store,
            settings,
            pipeline_factory=pipeline_factory_for(detector),
            cameras=[camera_id],
        )
        for box_store, camera_id in zip(stores, ("cam1", "cam2"), strict=True)
    ]
    try:
        for supervisor in supervisors:
            supervisor.start(watch_layout=False)
        wait_for(
            lambda: all(
                status.state == CameraState.FINISHED
                for supervisor in supervisors
                for status in supervisor.statuses().values()
            ),
            timeout=120,
            what="both boxes' clips processed",
        )
        for supervisor in supervisors:
            supervisor.stop()
        events = stores[0].query_events(EventQuery(limit=10_000))
        published = stores[0].get_occupancy()[1].get(STORE_OCCUPANCY_KEY)
    finally:
        for supervisor in supervisors:
            supervisor.stop()
        for box_store in stores:
            box_store.close()
    cameras_of: dict[str, set[str]] = {}
    for event in events:
        cameras_of.setdefault(event.attributes["visit_id"], set()).add(event.camera_id)
    # Visits that both boxes' cameras carry: the person of one box is the other's.
    assert any(cams >= {"cam1", "cam2"} for cams in cameras_of.values()), cameras_of
    # The store-wide zone's events come from the box that owns each visit only: one
    # enter and one exit per visit store-wide, though both boxes see everyone.
    plaza: dict[str, list[str]] = {}
    for event in sorted(events, key=lambda e: (e.timestamp, e.type.value != "zone_enter")):
        if event.camera_id == STORE_OCCUPANCY_KEY and event.type.value in (
            "zone_enter",
            "zone_exit",
        ):
            plaza.setdefault(event.attributes["visit_id"], []).append(event.type.value)
    assert plaza and all(types == ["zone_enter", "zone_exit"] for types in plaza.values()), plaza
    # And one ``visit_end`` per visit, from the box that began it.
    ended = [e.attributes["visit_id"] for e in events if e.type.value == "visit_end"]
    assert ended and len(ended) == len(set(ended)), ended
    people = {e.track_id for e in events if e.camera_id == "cam1"}
    assert published is not None
    # Each person once although both boxes see everyone.
    assert published.count <= len(people)
