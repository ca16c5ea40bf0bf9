"""Issue 9: dependencies that hang rather than die, restarts, readiness, keys.

Real parts only: a redis-server started here (SIGSTOP / SIGCONT / SIGKILL), real
uvicorn (``LiveServer``), real PETS09 frames through the real detector, and
``storesense serve`` as a real subprocess. Every stopped server is resumed or
killed in ``finally``; every wait is bounded.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
import yaml
from fastapi.testclient import TestClient
from fixtures_redis import RedisServer
from service_helpers import T0, LiveServer, cut_clip, layout_dict, wait_for
from storesense.api.app import create_app
from storesense.api.auth import new_key
from storesense.api.cli import main
from storesense.api.runtime import WorkerSupervisor, pipeline_factory_for
from storesense.api.runtime.outage import OutageBuffer
from storesense.api.runtime.visits import CLOSED_BY_RESTART
from storesense.api.settings import BackoffSettings, ServiceSettings
from storesense.api.store import open_store
from storesense.api.store.base import EventQuery, Store
from storesense.api.store.redis import RedisStore
from storesense.api.store.spool import SpoolingStore
from storesense.zones.config import StoreLayout
from storesense.zones.events import Event, EventType
from storesense.zones.store_visits import STORE_CAMERA

pytest_plugins = ["service_helpers"]

FAST = ServiceSettings(
    store_url="sqlite:///unused.db",
    occupancy_refresh_s=0.02,
    realtime=False,
    key_cache_s=0.2,
    backoff=BackoffSettings(initial_s=0.2, factor=2.0, max_s=1.0),
)
CLI = [sys.executable, "-c", "import sys; from storesense.api.cli import main; sys.exit(main())"]


@contextmanager
def stopped(server: RedisServer) -> Iterator[None]:
    """SIGSTOP the server (hung, not dead); always SIGCONT it afterwards."""
    assert server.process is not None
    server.process.send_signal(signal.SIGSTOP)
    try:
        yield
    finally:
        server.process.send_signal(signal.SIGCONT)


def timed(call: Callable[[], Any]) -> tuple[Any, float]:
    started = time.monotonic()
    value = call()
    return value, time.monotonic() - started


def store_id() -> str:
    return f"r{uuid.uuid4().hex[:10]}"


# ------------------------------------------------------------- item 6: hung Redis, API
@pytest.mark.parametrize("keys", ["store key", "no keys"])
def test_hung_redis_never_freezes_the_api(
    new_redis_server: Callable[..., RedisServer], keys: str
) -> None:
    server = new_redis_server()
    store = open_store(server.url, store_id())
    if keys == "store key":
        _, record = new_key("display", ["display"])
        store.put_api_key(record)
    layout = StoreLayout.model_validate(layout_dict(store.store_id))
    app = create_app(FAST, store, layout)
    try:
        with LiveServer(app) as live, ThreadPoolExecutor(8) as pool, httpx.Client() as probe:
            assert probe.get(f"{live.url}/readyz", timeout=5).status_code == 200
            with stopped(server):
                time.sleep(0.3)  # past key_cache_s: the next request must ask the store
                # Requests that need the store (an unknown key, auth state to refresh) ...
                slow = [
                    pool.submit(
                        httpx.get,
                        f"{live.url}/v1/occupancy",
                        headers={"X-API-Key": f"ss_unknown{i}"},
                        timeout=10,
                    )
                    for i in range(4)
                ]
                time.sleep(0.1)
                # ... never hold the event loop: liveness answers at once, readiness in 1 s.
                health, health_s = timed(lambda: probe.get(f"{live.url}/healthz", timeout=5))
                ready, ready_s = timed(lambda: probe.get(f"{live.url}/readyz", timeout=5))
                assert health.status_code == 200 and health_s < 0.5, health_s
                assert ready.status_code == 503 and ready_s < 1.0, ready_s
                assert "did not answer within" in ready.json()["store"]
                expected = {401, 503} if keys == "store key" else {200, 503}
                for future in slow:
                    assert future.result().status_code in expected
            wait_for(
                lambda: probe.get(f"{live.url}/readyz", timeout=5).status_code == 200,
                what="ready again after SIGCONT",
            )
    finally:
        store.close()


def test_unknown_and_unreachable_key_lookups_are_cached_briefly(
    new_redis_server: Callable[..., RedisServer],
) -> None:
    """A flood of bad keys costs one store look-up each per second at most."""
    server = new_redis_server()
    store = open_store(server.url, store_id())
    _, record = new_key("admin", ["admin"])
    store.put_api_key(record)
    layout = StoreLayout.model_validate(layout_dict(store.store_id))
    client = redis.Redis(port=server.port)
    quiet = FAST.model_copy(update={"occupancy_refresh_s": 5.0})  # no other HGET meanwhile
    try:
        with TestClient(create_app(quiet, store, layout)) as api:
            calls_before = int(client.info("commandstats").get("cmdstat_hget", {}).get("calls", 0))
            started = time.monotonic()
            for _ in range(30):
                assert api.get("/v1/occupancy", headers={"X-API-Key": "ss_bad"}).status_code == 401
            elapsed = time.monotonic() - started
            calls = int(client.info("commandstats")["cmdstat_hget"]["calls"]) - calls_before
            assert calls <= 1 + elapsed / 1.0, (calls, elapsed)  # once per miss_cache_s
    finally:
        client.close()
        store.close()


def test_layout_change_with_a_stuck_stream_never_stalls_health(
    tmp_path: Path, detector: Any
) -> None:
    """A camera stuck opening its stream (a server that accepts and never answers) is
    stopped by PUT /v1/layout; meanwhile /readyz and /healthz answer at once."""
    mute = socket.socket()
    mute.bind(("127.0.0.1", 0))
    mute.listen(8)
    url = f"http://127.0.0.1:{mute.getsockname()[1]}/stream.mjpg"
    store = open_store(f"sqlite:///{tmp_path / 's.db'}", store_id())
    cameras = [{"id": "cam1", "source": url}]
    layout = StoreLayout.model_validate(layout_dict(store.store_id, cameras=cameras))
    supervisor = WorkerSupervisor(
        layout, store, FAST, pipeline_factory=pipeline_factory_for(detector)
    )
    app = create_app(FAST, store, layout, supervisor=supervisor)
    try:
        with LiveServer(app) as live, ThreadPoolExecutor(2) as pool, httpx.Client() as probe:
            time.sleep(0.5)  # the worker is now blocked inside the stream's open
            moved = layout_dict(store.store_id, cameras=[{"id": "cam1"}])  # now a push camera
            put = pool.submit(httpx.put, f"{live.url}/v1/layout", json=moved, timeout=30)
            time.sleep(0.5)
            for path in ("/healthz", "/readyz"):
                response, seconds = timed(lambda p=path: probe.get(live.url + p, timeout=10))
                assert response.status_code in (200, 503) and seconds < 1.0, (path, seconds)
            assert put.result().status_code == 200
    finally:
        mute.close()
        store.close()


# ------------------------------------------------------- item 7: detect a hang quickly
def test_hung_redis_is_detected_within_a_second_and_events_spool(
    new_redis_server: Callable[..., RedisServer], tmp_path: Path
) -> None:
    server = new_redis_server()
    sid = store_id()
    store = SpoolingStore(open_store(server.url, sid), tmp_path / "spool.db", flush_interval=0.2)
    events = [Event.create(EventType.ZONE_ENTER, sid, "cam1", "left", i, T0 + i) for i in range(5)]
    try:
        with stopped(server):
            written, first_s = timed(lambda: store.write_events(events[:3]))
            assert written == 3 and store.spooled_count() == 3
            assert first_s < 2.0, f"hang detected after {first_s:.1f} s"
            _, next_s = timed(lambda: store.write_events(events[3:]))
            assert next_s < 0.5 and store.spooled_count() == 5  # queued behind, no wait
        wait_for(lambda: store.spooled_count() == 0, timeout=15, what="spool replayed")
        assert len(store.query_events(EventQuery(camera_id="cam1"))) == 5
    finally:
        store.close()


# --------------------------------------------- item 8: workers start while Redis is down
def test_serve_no_api_starts_while_redis_is_down_spools_and_replays(
    tmp_path: Path, pets09: Path, yolox_path: Path
) -> None:
    clip = cut_clip(pets09 / "PETS09-S2L1.avi", tmp_path / "clip.avi", 60)
    redis_server = RedisServer(tmp_path / "redis")  # its port is chosen; nothing listens yet
    sid = store_id()
    layout = layout_dict(sid, cameras=[{"id": "cam1", "source": str(clip), "fps": 7}])
    layout_file = tmp_path / "layout.yaml"
    layout_file.write_text(yaml.safe_dump(layout))
    spool = tmp_path / "spool.db"
    command = [
        *CLI, "serve", "--no-api", "--layout", str(layout_file), "--store", redis_server.url,
        "--spool", str(spool), "--no-realtime", "--status-every", "0",
    ]  # fmt: skip
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, env=os.environ.copy())
    try:

        def spooled() -> int:
            if process.poll() is not None:
                raise AssertionError(f"serve exited {process.returncode}: {process.stderr.read()}")  # type: ignore[union-attr]
            if not spool.exists():
                return 0
            with sqlite3.connect(spool, timeout=5) as db:
                try:
                    return int(db.execute("SELECT COUNT(*) FROM spool").fetchone()[0])
                except sqlite3.OperationalError:
                    return 0

        waiting = wait_for(spooled, timeout=120, what="events spooled while Redis is down")
        assert waiting > 0
        redis_server.start()
        store = RedisStore.from_url(redis_server.url, sid)
        try:
            wait_for(
                lambda: store.query_events(EventQuery()) and spooled() == 0,
                timeout=60,
                what="the spool replayed into Redis",
            )
            assert len(store.query_events(EventQuery())) >= waiting
            wait_for(lambda: store.get_layout() is not None, timeout=20, what="layout stored")
        finally:
            store.close()
    finally:
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
        redis_server.stop()


# ------------------------------------------------------------ item 9: outage buffer
def test_outage_buffer_is_bounded_backs_off_and_drops_a_poison_event(
    new_redis_server: Callable[..., RedisServer], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="storesense.api.runtime")
    server = new_redis_server()
    sid = store_id()
    store = open_store(server.url, sid)  # no spool: the in-memory buffer is all there is
    buffer = OutageBuffer(store, "cam1", max_events=10)  # a camera worker's outage buffer
    try:
        server.kill()
        for i in range(50):  # one event per frame
            buffer.add([Event.create(EventType.ZONE_ENTER, sid, "cam1", "left", i, T0 + i)])
        tries = [r for r in caplog.records if "kept in memory" in r.getMessage()]
        assert len(tries) <= 3, len(tries)  # back-off: not one store call per frame
        assert len(buffer.pending) == 10  # bounded: the 10 newest kept
        assert any("DROPPED" in r.getMessage() for r in caplog.records)
        server.start()
        poison = Event.create(EventType.ZONE_ENTER, sid, "cam1", "left", 99, float("nan"))
        buffer.retry_at = 0.0  # the back-off has passed
        buffer.add([poison])
        buffer.add([Event.create(EventType.ZONE_EXIT, sid, "cam1", "left", 98, T0 + 99)])
        stored = store.query_events(EventQuery())
        # 40 made room for the poison event; the poison is dropped, the rest is written.
        assert sorted(e.track_id for e in stored) == [*range(41, 50), 98]
        assert not buffer.pending  # the rejected event did not wedge the camera
    finally:
        store.close()


# -------------------------------------------------------- item 10: event identity
def run_file_camera(
    supervisor_factory: Callable[..., WorkerSupervisor], layout: StoreLayout, store: Store
) -> None:
    supervisor = supervisor_factory(layout, store, FAST)
    supervisor.start(watch_layout=False)
    wait_for(
        lambda: supervisor.statuses()["cam1"].state.value == "finished",
        timeout=120,
        what="clip processed",
    )
    supervisor.stop()


@pytest.mark.parametrize("backend", ["sqlite", "redis"])
def test_rerunning_a_file_camera_never_duplicates_events(
    tmp_path: Path, pets09: Path, detector_supervisor: Any, backend: str, request: Any
) -> None:
    clip = cut_clip(pets09 / "PETS09-S2L1.avi", tmp_path / "clip.avi", 40)
    sid = store_id()
    url = (
        f"sqlite:///{tmp_path / 's.db'}"
        if backend == "sqlite"
        else request.getfixturevalue("redis_url")
    )
    store = open_store(url, sid)
    cameras = [{"id": "cam1", "source": str(clip), "fps": 7}]
    layout = StoreLayout.model_validate(layout_dict(sid, cameras=cameras))
    try:
        run_file_camera(detector_supervisor, layout, store)
        first = {e.event_id for e in store.query_events(EventQuery())}
        assert first, "the clip gave no events"
        # A restart (a new supervisor, as a new process would be) replays the same frames.
        run_file_camera(detector_supervisor, layout, store)
        assert {e.event_id for e in store.query_events(EventQuery())} == first
    finally:
        store.close()


def test_sigkilled_file_camera_restarts_without_duplicates(
    tmp_path: Path, pets09: Path, redis_url: str, yolox_path: Path
) -> None:
    """``serve --no-api`` SIGKILLed mid-clip then restarted stores what one clean run stores."""
    clip = cut_clip(pets09 / "PETS09-S2L1.avi", tmp_path / "clip.avi", 80)

    def serve(sid: str) -> subprocess.Popen[str]:
        layout = layout_dict(sid, cameras=[{"id": "cam1", "source": str(clip), "fps": 7}])
        # A fixed, recent start: both runs stamp the same times (and retention keeps them).
        layout["cameras"][0]["start_time"] = started_at
        path = tmp_path / f"{sid}.yaml"
        path.write_text(yaml.safe_dump(layout))
        command = [
            *CLI, "serve", "--no-api", "--layout", str(path), "--store", redis_url,
            "--spool", str(tmp_path / f"{sid}.spool"), "--no-realtime", "--status-every", "0",
        ]  # fmt: skip
        return subprocess.Popen(command, stderr=subprocess.DEVNULL, text=True)

    def finished(store: Store) -> bool:
        report = store.get_camera_reports().get("cam1")
        return report is not None and json.loads(report.status_json)["state"] == "finished"

    started_at = datetime.fromtimestamp(time.time() - 3600, UTC).isoformat()
    clean_id, killed_id = store_id(), store_id()
    clean, killed = (
        RedisStore.from_url(redis_url, clean_id),
        RedisStore.from_url(redis_url, killed_id),
    )
    processes: list[subprocess.Popen[str]] = []
    try:
        processes.append(serve(clean_id))
        wait_for(lambda: finished(clean), timeout=180, what="the clean run")
        processes.append(serve(killed_id))
        wait_for(lambda: len(killed.query_events(EventQuery())) >= 5, timeout=120, what="events")
        processes[1].send_signal(signal.SIGKILL)
        processes[1].wait(10)
        processes.append(serve(killed_id))
        wait_for(lambda: finished(killed), timeout=180, what="the restarted run")

        def identities(store: Store) -> list[tuple[Any, ...]]:
            return sorted(
                (str(e.type), e.target, e.track_id, e.timestamp)
                for e in store.query_events(EventQuery())
            )

        assert identities(killed) == identities(clean)
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait(10)
        clean.close()
        killed.close()


def test_restarted_push_camera_closes_visits_its_killed_run_left_open(
    tmp_path: Path, detector_supervisor: Any
) -> None:
    store = open_store(f"sqlite:///{tmp_path / 's.db'}", store_id())
    sid = store.store_id
    now = time.time()
    # What a SIGKILLed run leaves: two entries, one exit (visit of track 2 closed); and in a
    # store-wide floor zone, one open stay of a visit cam1 began (its process wrote it), one
    # closed, and one open stay of a visit another camera began (not cam1's to close).
    store.write_events(
        [
            Event.create(EventType.ZONE_ENTER, sid, "cam1", "left", 1, now - 60),
            Event.create(EventType.ZONE_ENTER, sid, "cam1", "right", 2, now - 50),
            Event.create(
                EventType.ZONE_EXIT, sid, "cam1", "right", 2, now - 40, {"dwell_seconds": 10.0}
            ),
            Event.create(
                EventType.ZONE_ENTER,
                sid,
                STORE_CAMERA,
                "plaza",
                1,
                now - 58,
                {"visit_id": "cam1:1"},
            ),
            Event.create(
                EventType.ZONE_ENTER,
                sid,
                STORE_CAMERA,
                "plaza",
                2,
                now - 49,
                {"visit_id": "cam1:2"},
            ),
            Event.create(
                EventType.ZONE_EXIT,
                sid,
                STORE_CAMERA,
                "plaza",
                2,
                now - 41,
                {"visit_id": "cam1:2", "dwell_seconds": 8.0},
            ),
            Event.create(
                EventType.ZONE_ENTER,
                sid,
                STORE_CAMERA,
                "plaza",
                1,
                now - 55,
                {"visit_id": "cam2:1"},
            ),
        ]
    )
    layout = StoreLayout.model_validate(layout_dict(sid))  # cam1 is a push camera
    try:
        for _ in range(2):  # a second restart (or a second worker) adds nothing
            supervisor = detector_supervisor(layout, store, FAST)
            supervisor.start(watch_layout=False)
            exits = wait_for(
                lambda: [
                    e
                    for e in store.query_events(EventQuery(types=frozenset({EventType.ZONE_EXIT})))
                    if e.attributes.get("closed_by") == CLOSED_BY_RESTART
                ],
                what="the open visit closed",
            )
            supervisor.stop()
            assert sorted((e.camera_id, e.target, e.track_id) for e in exits) == [
                (STORE_CAMERA, "plaza", 1),
                ("cam1", "left", 1),
            ]
            by_camera = {e.camera_id: e for e in exits}
            assert by_camera["cam1"].attributes["dwell_seconds"] == pytest.approx(20.0, abs=0.01)
            store_exit = by_camera[STORE_CAMERA]
            assert store_exit.attributes["visit_id"] == "cam1:1"
            assert store_exit.attributes["dwell_seconds"] == pytest.approx(18.0, abs=0.01)
    finally:
        store.close()


# ------------------------------------------------------------ item 13: cheap reads
@pytest.mark.parametrize("path", ["/v1/counts", "/v1/metrics"])
def test_concurrent_analytics_reads_share_one_store_read_per_version(
    new_redis_server: Callable[..., RedisServer], path: str
) -> None:
    server = new_redis_server()
    store = open_store(server.url, store_id())
    sid = store.store_id
    store.write_events(
        [Event.create(EventType.ZONE_ENTER, sid, "cam1", "left", i, T0 + i) for i in range(50)]
    )
    layout = StoreLayout.model_validate(layout_dict(sid))
    client = redis.Redis(port=server.port)
    url_path = f"{path}?from={T0 - 60:.0f}&to={T0 + 3540:.0f}"

    def range_reads() -> int:
        stats = client.info("commandstats").get("cmdstat_zrangebyscore", {})
        return int(stats.get("calls", 0))

    try:
        with LiveServer(create_app(FAST, store, layout)) as live, ThreadPoolExecutor(16) as pool:
            before = range_reads()
            answers = list(
                pool.map(lambda _: httpx.get(live.url + url_path, timeout=30), range(32))
            )
            assert {a.status_code for a in answers} == {200}
            assert len({a.text for a in answers}) == 1
            assert range_reads() - before <= 4  # not one day-scan per request
            store.write_events([Event.create(EventType.ZONE_ENTER, sid, "cam1", "left", 99, T0)])
            # The new event shows (after at most a few compute times, by design).
            wait_for(
                lambda: httpx.get(live.url + url_path, timeout=30).text != answers[0].text,
                timeout=15,
                what="the new event in the answer",
            )
    finally:
        client.close()
        store.close()


# ------------------------------------------------------------------------ item 14: keys
def test_keys_create_without_layout_names_the_store_and_refuses_one_without_layout(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    assert main(["keys", "create", "--scope", "admin", "--store", url]) == 2
    err = capsys.readouterr().err
    assert "store id 'default'" in err and "no layout" in err and "--force" in err
    assert err.count("\n") == 1
    assert main(["keys", "create", "--scope", "admin", "--store", url, "--force"]) == 0
    captured = capsys.readouterr()
    assert "store id 'default'" in captured.err and captured.out.startswith("ss_")
    store = open_store(url, "shop-1")
    store.put_layout(json.dumps(layout_dict("shop-1")))
    store.close()
    args = ["keys", "create", "--scope", "display", "--store", url, "--store-id", "shop-1"]
    assert main(args) == 0
    assert "store id 'shop-1'" in capsys.readouterr().err


def test_file_keys_are_listed_read_only_and_first_key_logs_auth_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="storesense.api.auth")
    store = open_store(f"sqlite:///{tmp_path / 's.db'}", store_id())
    layout = StoreLayout.model_validate(layout_dict(store.store_id))
    try:
        with TestClient(create_app(FAST, store, layout)) as open_api:
            created = open_api.post("/v1/keys", json={"name": "boss", "scopes": ["admin"]})
            assert created.status_code == 201
            assert any("authentication is now ON" in r.getMessage() for r in caplog.records)
            assert open_api.get("/v1/keys").status_code == 401  # auth is on at once
        admin_key = created.json()["key"]
        file_key, file_record = new_key("door display", ["display"])
        app = create_app(FAST, store, layout, file_keys=[file_record])
        with TestClient(app, headers={"X-API-Key": admin_key}) as api:
            listed = {k["key_id"]: k for k in api.get("/v1/keys").json()}
            assert listed[file_record.key_id]["source"] == "file"
            assert listed[created.json()["key_id"]]["source"] == "store"
            refused = api.delete(f"/v1/keys/{file_record.key_id}")
            assert refused.status_code == 409 and "--api-keys file" in refused.json()["detail"]
            assert api.get("/v1/occupancy", headers={"X-API-Key": file_key}).status_code == 200
    finally:
        store.close()


def test_event_facts_match_the_stored_events(store: Store) -> None:
    """The cheap read behind /v1/counts gives what the whole events give (both back-ends)."""
    sid = store.store_id
    store.write_events(
        [
            Event.create(EventType.ZONE_ENTER, sid, "cam1", "left", 1, T0 + 1),
            Event.create(EventType.LINE_CROSS, sid, "cam1", "door", 1, T0 + 2, {"direction": "in"}),
            Event.create(EventType.ZONE_EXIT, sid, "cam1", "left", 1, T0 + 3, {"dwell_seconds": 2}),
            Event.create(EventType.APPROACHING, sid, "cam1", "left", 2, T0 + 4),
            Event.create(EventType.ZONE_ENTER, sid, "cam1", "right", 3, T0 + 99),
        ]
    )
    kinds = frozenset({EventType.ZONE_ENTER, EventType.ZONE_EXIT, EventType.LINE_CROSS})
    facts = store.event_facts(T0, T0 + 60, kinds)
    assert [(f.timestamp, f.type, f.target, dict(f.attributes)) for f in facts] == [
        (T0 + 1, "zone_enter", "left", {}),
        (T0 + 2, "line_cross", "door", {"direction": "in"}),
        (T0 + 3, "zone_exit", "left", {}),
    ]
    version = store.events_version()
    new = Event.create(EventType.ZONE_ENTER, sid, "cam1", "left", 9, T0 + 5)
    store.write_events([new])
    after_write = store.events_version()
    assert after_write != version
    store.write_events([new])  # a duplicate changes nothing
    assert store.events_version() == after_write
    store.delete_events_before(T0 + 2)
    assert store.events_version() != after_write
