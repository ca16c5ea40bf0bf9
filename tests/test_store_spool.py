"""Fault tolerance: a Redis crash mid-stream loses and duplicates nothing."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from storesense.api.store.base import EventQuery, StoreUnavailableError
from storesense.api.store.redis import RedisStore
from storesense.api.store.spool import SpoolingStore
from storesense.api.store.sqlite import SQLiteStore
from storesense.zones.events import Event, EventType
from test_store_contract import T0, make_events

if TYPE_CHECKING:
    from fixtures_redis import RedisServer


def redis_store(server: RedisServer, store_id: str = "s1") -> RedisStore:
    return RedisStore.from_url(server.url, store_id, socket_timeout=1.0, connect_timeout=0.3)


def wait_until_flushed(store: SpoolingStore, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not store.flush():
        assert time.monotonic() < deadline, f"{store.spooled_count()} events still spooled"
        time.sleep(0.05)


def test_redis_crash_mid_stream_loses_and_duplicates_nothing(
    persistent_redis_server: RedisServer, tmp_path: Path
) -> None:
    server = persistent_redis_server
    primary = redis_store(server)
    store = SpoolingStore(primary, tmp_path / "spool.db", flush_interval=0.1)
    events = make_events("s1", 300, step=0.2)
    batches = [events[i : i + 5] for i in range(0, len(events), 5)]  # one batch a frame

    spooled_during_outage = 0
    for number, batch in enumerate(batches):
        if number == 20:
            server.kill()  # SIGKILL: Redis crashes with AOF (appendfsync always) on disk
        if number == 40:
            server.start()  # same port, same directory: the AOF is replayed
        if number in range(21, 40):
            store.set_occupancy("cam1", {"aisle": number}, batch[0].timestamp)
        assert store.write_events(batch) == len(batch)
        if number in range(20, 40):
            spooled_during_outage = max(spooled_during_outage, store.spooled_count())
    assert spooled_during_outage >= 5 * 19

    wait_until_flushed(store)
    client = primary.client
    stream_ids = [fields["id"] for _, fields in client.xrange(primary.key("stream"))]
    assert stream_ids == [e.event_id for e in events]  # each exactly once, in write order
    assert store.query_events(EventQuery()) == events
    _, zones = store.get_occupancy()
    assert zones["aisle"].count == 39  # the latest value written during the outage
    assert store.write_events(events) == 0
    store.close()


def test_writer_threads_through_an_outage_keep_their_order(
    persistent_redis_server: RedisServer, tmp_path: Path
) -> None:
    server = persistent_redis_server
    primary = redis_store(server)
    store = SpoolingStore(primary, tmp_path / "spool.db", flush_interval=0.05, batch_size=20)
    per_camera = {
        camera: [
            Event.create(EventType.ZONE_ENTER, "s1", camera, "aisle", i, T0 + i * 0.1)
            for i in range(150)
        ]
        for camera in ("cam1", "cam2", "cam3")
    }
    outage = threading.Event()
    restarted = threading.Event()

    def camera_worker(events: list[Event]) -> None:
        for i in range(0, len(events), 3):
            if i == 60:
                outage.wait(5)
            if i == 120:
                restarted.wait(10)
            store.write_events(events[i : i + 3])
            time.sleep(0.002)

    workers = [threading.Thread(target=camera_worker, args=(e,)) for e in per_camera.values()]
    for worker in workers:
        worker.start()
    time.sleep(0.1)
    server.kill()
    outage.set()
    deadline = time.monotonic() + 10
    while store.spooled_count() < 3 * 60:  # events 60-119 of every camera wait in the spool
        assert time.monotonic() < deadline, store.spooled_count()
        time.sleep(0.02)
    server.start()
    restarted.set()
    for worker in workers:
        worker.join()
    wait_until_flushed(store)

    stored_ids = [fields["id"] for _, fields in primary.client.xrange(primary.key("stream"))]
    assert len(stored_ids) == len(set(stored_ids)) == 450
    for events in per_camera.values():
        expected = [e.event_id for e in events]
        assert [i for i in stored_ids if i in set(expected)] == expected
    store.close()


def test_spooled_events_survive_a_restart_of_the_service(
    persistent_redis_server: RedisServer, tmp_path: Path
) -> None:
    server = persistent_redis_server
    events = make_events("s1", 20)
    server.kill()
    first = SpoolingStore(redis_store(server), tmp_path / "spool.db", flush_interval=0.1)
    assert first.write_events(events) == 20  # acknowledged by the spool
    with pytest.raises(StoreUnavailableError):
        first.query_events(EventQuery())
    first.close()  # the service stops while Redis is still down

    server.start()
    second = SpoolingStore(redis_store(server), tmp_path / "spool.db", flush_interval=0.1)
    wait_until_flushed(second)
    assert second.query_events(EventQuery()) == events
    second.close()


def test_erasure_also_removes_spooled_events(
    persistent_redis_server: RedisServer, tmp_path: Path
) -> None:
    server = persistent_redis_server
    store = SpoolingStore(redis_store(server), tmp_path / "spool.db", flush_interval=0.1)
    member_event = Event.create(
        EventType.ZONE_ENTER, "s1", "cam1", "aisle", 7, T0, {"member": "token-123"}
    )
    server.kill()
    store.write_events([member_event, *make_events("s1", 3, start=T0 + 1)])
    with pytest.raises(StoreUnavailableError):
        store.delete_events_with_attribute("member", "token-123")
    assert store.spooled_count() == 3  # the member's event is gone from the spool already
    assert b"token-123" not in b"".join(p.read_bytes() for p in tmp_path.glob("spool.db*"))
    server.start()
    wait_until_flushed(store)
    assert store.query_events(EventQuery()) == make_events("s1", 3, start=T0 + 1)
    store.close()


def test_rejected_events_go_to_dead_letters_instead_of_blocking(tmp_path: Path) -> None:
    primary = SQLiteStore(tmp_path / "main.db", "s1")
    store = SpoolingStore(primary, tmp_path / "spool.db")
    events = make_events("s1", 3)
    primary.close()  # a closed store reports itself unavailable: writes spool
    assert store.write_events(events[:2]) == 2
    with pytest.raises(ValueError, match="non-finite timestamp"):  # refused, not spooled
        store.write_events([Event.create(EventType.ZONE_ENTER, "s1", "c", "a", 9, float("nan"))])
    # Rows no primary accepts (from an older version, or damaged), between good ones.
    spool = sqlite3.connect(tmp_path / "spool.db")
    nan_event = {**events[0].to_dict(), "event_id": "nan-event", "timestamp": float("nan")}
    spool.executemany(
        "INSERT INTO spool (event_id, event) VALUES (?, ?)",
        [("nan-event", json.dumps(nan_event)), ("garbage", "{not json")],
    )
    spool.commit()
    spool.close()
    assert store.write_events(events[2:]) == 1
    assert store.flush() is False
    assert store.spooled_count() == 4  # the unreadable row is set aside at once
    assert [event for event, _ in store.dead_letters()] == ["{not json"]

    store.primary = SQLiteStore(tmp_path / "main.db", "s1")
    assert store.flush() is True
    assert store.query_events(EventQuery()) == events
    rejected = store.dead_letters()
    assert len(rejected) == 2
    assert rejected[0][0] == "{not json" and "non-finite timestamp" in rejected[1][1]
    store.close()


def test_consumer_group_reads_and_acks_each_event_once(
    persistent_redis_server: RedisServer,
) -> None:
    store = redis_store(persistent_redis_server)
    events = make_events("s1", 5)
    store.write_events(events[:3])
    assert store.create_consumer_group("exporter") is True
    assert store.create_consumer_group("exporter") is False
    store.write_events(events[3:])
    store.delete_events_with_attribute("direction", "in")  # erases events[2]
    batch = store.read_group("exporter", "worker-1", count=10)
    assert [e for _, e in batch] == [events[0], events[1], events[3], events[4]]
    assert store.read_group("exporter", "worker-2", count=10) == []
    assert store.ack("exporter", [entry_id for entry_id, _ in batch]) == 4
    store.close()


def test_erasure_rewrites_the_append_only_file(persistent_redis_server: RedisServer) -> None:
    store = redis_store(persistent_redis_server)
    token = "member-aof-0042"
    store.write_events(
        [Event.create(EventType.ZONE_ENTER, "s1", "cam1", "aisle", 1, T0, {"member": token})]
    )
    files = list(persistent_redis_server.directory.rglob("*.aof"))
    assert any(token.encode() in f.read_bytes() for f in files)
    assert store.delete_events_with_attribute("member", token) == 1
    deadline = time.monotonic() + 10
    while store.client.info("persistence")["aof_rewrite_in_progress"] or any(
        token.encode() in f.read_bytes() for f in persistent_redis_server.directory.rglob("*.aof")
    ):
        assert time.monotonic() < deadline, "the AOF still holds the erased token"
        time.sleep(0.05)
    store.close()
