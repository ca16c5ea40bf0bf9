"""One contract, every back-end: SQLite (tmp file) and a real redis-server."""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from storesense.api.store import open_store
from storesense.api.store.base import (
    ApiKeyRecord,
    AuditEntry,
    CameraReport,
    CheckIn,
    ConsentRecord,
    EventQuery,
    HeatmapCell,
    LinkOutcome,
    Role,
    Store,
    StoreUnavailableError,
    TrackKey,
    TrackLink,
)
from storesense.api.store.redis import RedisStore
from storesense.api.store.spool import SpoolingStore
from storesense.api.store.sqlite import SQLiteStore
from storesense.zones.events import Event, EventType

if TYPE_CHECKING:
    from collections.abc import Callable

    from fixtures_redis import RedisServer


T0 = 1_700_000_040.0  # a whole minute


def make_events(store_id: str, count: int, start: float = T0, step: float = 1.0) -> list[Event]:
    kinds = [EventType.ZONE_ENTER, EventType.ZONE_EXIT, EventType.LINE_CROSS]
    return [
        Event.create(
            kinds[i % 3],
            store_id,
            f"cam{i % 2}",
            ["aisle", "door", "till"][i % 3],
            track_id=i,
            timestamp=start + i * step,
            attributes={"direction": "in"} if kinds[i % 3] == EventType.LINE_CROSS else {},
        )
        for i in range(count)
    ]


@pytest.fixture(params=["sqlite", "redis", "redis-cluster", "spool+redis"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    store_id = f"s-{uuid.uuid4().hex[:8]}"
    if request.param == "sqlite":
        opened = open_store(f"sqlite:///{tmp_path / 'store.db'}", store_id)
    elif request.param == "redis":
        opened = open_store(request.getfixturevalue("redis_url"), store_id)
    elif request.param == "redis-cluster":
        opened = open_store(request.getfixturevalue("redis_cluster_url"), store_id)
    else:
        opened = open_store(
            request.getfixturevalue("redis_url"), store_id, spool_path=tmp_path / "spool.db"
        )
        assert isinstance(opened, SpoolingStore)
    yield opened
    opened.close()


def test_writing_the_same_events_twice_stores_them_once(store: Store) -> None:
    events = make_events(store.store_id, 10)
    assert store.write_events(events) == 10
    assert store.write_events(events) == 0
    assert store.write_events(events[:3] + make_events(store.store_id, 12)[10:]) == 2
    stored = store.query_events(EventQuery())
    assert [e.event_id for e in stored] == [e.event_id for e in make_events(store.store_id, 12)]
    assert stored[2] == events[2]  # attributes and types round-trip exactly


@pytest.mark.parametrize(
    ("query", "expected_indexes"),
    [
        (EventQuery(start=T0 + 3, end=T0 + 7), [3, 4, 5, 6]),
        (EventQuery(types=frozenset({EventType.LINE_CROSS})), [2, 5, 8, 11]),
        (EventQuery(targets=frozenset({"aisle", "door"}), end=T0 + 5), [0, 1, 3, 4]),
        (EventQuery(camera_id="cam1", start=T0 + 6), [7, 9, 11]),
        (EventQuery(start=T0 + 2, limit=3), [2, 3, 4]),
        (EventQuery(start=T0 + 100), []),
    ],
)
def test_query_filters_by_time_type_target_and_camera(
    store: Store, query: EventQuery, expected_indexes: list[int]
) -> None:
    events = make_events(store.store_id, 12)
    store.write_events(events[::-1])  # write order must not matter
    assert store.query_events(query) == [events[i] for i in expected_indexes]


def test_occupancy_replaces_a_cameras_zones_and_versions_changes(store: Store) -> None:
    empty_version, zones = store.get_occupancy()
    assert zones == {}
    store.set_occupancy("cam1", {"aisle": 2, "till": 1}, T0)
    store.set_occupancy("cam2", {"door": 4}, T0 + 1)
    v1, zones = store.get_occupancy()
    assert v1 != empty_version
    assert {z: o.count for z, o in zones.items()} == {"aisle": 2, "till": 1, "door": 4}
    assert zones["door"].camera_id == "cam2" and zones["door"].updated_at == T0 + 1

    store.set_occupancy("cam1", {"aisle": 2, "till": 1}, T0 + 2)  # same counts
    v2, zones = store.get_occupancy()
    assert v2 == v1 and zones["aisle"].updated_at == T0 + 2

    store.set_occupancy("cam1", {"aisle": 3}, T0 + 3)  # till left cam1's view
    v3, zones = store.get_occupancy()
    assert v3 != v1
    assert {z: o.count for z, o in zones.items()} == {"aisle": 3, "door": 4}
    with pytest.raises(ValueError, match="negative"):
        store.set_occupancy("cam1", {"aisle": -1}, T0)


def test_transactions_layout_and_api_keys_round_trip(store: Store) -> None:
    store.add_transactions({T0: 3, T0 + 900: 5, T0 + 1800: 0})
    store.add_transactions({T0 + 900: 6})
    assert store.get_transactions(T0, T0 + 1800) == {T0: 3, T0 + 900: 6}

    assert store.get_layout() is None
    store.put_layout('{"zones": [{"id": "aisle"}]}')
    assert store.get_layout() == '{"zones": [{"id": "aisle"}]}'

    admin = ApiKeyRecord("k1", "admin", "hash-a", frozenset({"admin", "read"}), T0)
    reader = ApiKeyRecord("k2", "dashboard", "hash-b", frozenset({"read"}), T0 + 1)
    store.put_api_key(admin)
    store.put_api_key(reader)
    assert store.find_api_key("hash-b") == reader
    assert store.find_api_key("no-such-hash") is None
    assert store.list_api_keys() == [admin, reader]
    rotated = ApiKeyRecord("k1", "admin", "hash-c", frozenset({"admin"}), T0 + 2)
    store.put_api_key(rotated)
    assert store.find_api_key("hash-a") is None and store.find_api_key("hash-c") == rotated
    assert store.delete_api_key("k2") is True
    assert store.delete_api_key("k2") is False
    assert store.list_api_keys() == [rotated]


def test_heatmap_cells_add_up_per_camera_hour_and_cell(store: Store) -> None:
    hour = 1_700_002_800.0  # a whole hour
    store.add_heatmap(
        [
            HeatmapCell("cam1", hour, 3, -2, 1.25),
            HeatmapCell("cam1", hour, 4, 0, 0.5),
            HeatmapCell("cam2", hour, 3, -2, 2.0),
            HeatmapCell("cam1", hour + 3600, 3, -2, 7.0),
        ]
    )
    store.add_heatmap([HeatmapCell("cam1", hour, 3, -2, 0.75)])  # sums, never replaces
    store.add_heatmap([])
    assert store.get_heatmap(hour, hour + 3600) == [
        HeatmapCell("cam1", hour, 3, -2, 2.0),
        HeatmapCell("cam1", hour, 4, 0, 0.5),
        HeatmapCell("cam2", hour, 3, -2, 2.0),
    ]
    assert store.get_heatmap(hour, hour + 7200, "cam1") == [
        HeatmapCell("cam1", hour, 3, -2, 2.0),
        HeatmapCell("cam1", hour, 4, 0, 0.5),
        HeatmapCell("cam1", hour + 3600, 3, -2, 7.0),
    ]
    assert store.get_heatmap(hour + 1, hour + 7200, "cam2") == []
    assert store.get_heatmap(hour, hour + 7200, "nobody") == []
    # Retention: an hour goes once it has ended before the cutoff.
    assert store.delete_heatmap_before(hour + 3599) == 0
    assert store.delete_heatmap_before(hour + 3600) == 3
    assert store.get_heatmap(0, hour + 7200) == [HeatmapCell("cam1", hour + 3600, 3, -2, 7.0)]


@pytest.mark.parametrize(
    ("cell", "message"),
    [
        (HeatmapCell("cam1", 3600.0, 0, 0, -1.0), "must be finite and >= 0"),
        (HeatmapCell("cam1", 3600.0, 0, 0, float("nan")), "must be finite and >= 0"),
        (HeatmapCell("cam1", 3601.0, 0, 0, 1.0), "not a multiple of 3600"),
        (HeatmapCell("", 3600.0, 0, 0, 1.0), "without a camera id"),
    ],
)
def test_bad_heatmap_cells_are_refused_and_nothing_is_stored(
    store: Store, cell: HeatmapCell, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        store.add_heatmap([HeatmapCell("cam1", 3600.0, 1, 1, 1.0), cell])
    assert store.get_heatmap(0, 7200) == []


def test_camera_reports_are_replaced_per_camera_and_kept_per_store(
    store: Store, tmp_path: Path
) -> None:
    assert store.get_camera_reports() == {}
    store.put_camera_report(CameraReport("door", '{"state": "starting"}', T0))
    store.put_camera_report(CameraReport("till", '{"state": "running"}', T0 + 1))
    store.put_camera_report(CameraReport("door", '{"state": "running"}', T0 + 5))
    assert store.get_camera_reports() == {
        "door": CameraReport("door", '{"state": "running"}', T0 + 5),
        "till": CameraReport("till", '{"state": "running"}', T0 + 1),
    }
    backend = store.primary if isinstance(store, SpoolingStore) else store
    if isinstance(backend, SQLiteStore):
        with contextlib.closing(SQLiteStore(backend.path, "another-store")) as other:
            assert other.get_camera_reports() == {}
    else:
        assert isinstance(backend, RedisStore)
        assert RedisStore(backend.client, "another-" + store.store_id).get_camera_reports() == {}


def test_retention_purge_deletes_old_events_and_blocks_their_replay(store: Store) -> None:
    events = make_events(store.store_id, 10)
    store.write_events(events)
    assert store.delete_events_before(T0 + 4) == 4
    assert store.query_events(EventQuery()) == events[4:]
    assert store.write_events(events) == 0  # a late replay cannot bring purged events back
    assert sum(store.count_events(T0 - 60, T0 + 120).values()) == 6


def test_count_events_buckets_per_minute(store: Store) -> None:
    store.write_events(make_events(store.store_id, 90))  # 90 s from T0, one event a second
    counts = store.count_events(T0, T0 + 120)
    assert counts[(T0, "zone_enter", "aisle")] == 20
    assert counts[(T0 + 60, "line_cross", "till")] == 10
    assert sum(counts.values()) == 90
    assert sum(store.count_events(T0, T0 + 60, bucket_seconds=30).values()) == 60
    per_event = Store.count_events(store, T0 - 7.5, T0 + 77.5, bucket_seconds=45)
    assert store.count_events(T0 - 7.5, T0 + 77.5, bucket_seconds=45) == per_event
    assert sum(per_event.values()) == 78


def _raw_contains(store: Store, token: str) -> bool:
    """Whether ``token`` is anywhere in the store's raw data (all keys / the file)."""
    if isinstance(store, SpoolingStore):
        spool_files = store.spool_path.parent.glob(store.spool_path.name + "*")
        in_spool = any(token.encode() in p.read_bytes() for p in spool_files)
        return in_spool or _raw_contains(store.primary, token)
    if isinstance(store, RedisStore):
        client = store.client
        readers = {
            "string": client.get,
            "hash": client.hgetall,
            "zset": lambda key: client.zrange(key, 0, -1),
            "stream": lambda key: client.xrange(key),
            "set": client.smembers,
            "list": lambda key: client.lrange(key, 0, -1),
        }
        return any(
            token in repr(readers[client.type(key)](key)) or token in key
            for key in client.scan_iter(match="*")
        )
    assert isinstance(store, SQLiteStore)
    data = b"".join(
        p.read_bytes() for p in Path(store.path).parent.glob(Path(store.path).name + "*")
    )
    return token.encode() in data


def test_erasure_by_attribute_leaves_no_trace(store: Store) -> None:
    token = f"member-{uuid.uuid4().hex}"
    member = [
        Event.create(EventType.ZONE_ENTER, store.store_id, "cam1", "aisle", 100 + i, T0 + i,
                     {"member": token})
        for i in range(5)
    ]  # fmt: skip
    others = make_events(store.store_id, 5, start=T0 + 0.5)
    store.write_events(member + others)
    cursor = store.tail_events("0")[0]
    assert _raw_contains(store, token)

    assert store.delete_events_with_attribute("member", token) == 5
    assert store.query_events(EventQuery()) == others
    assert not _raw_contains(store, token)
    assert sum(store.count_events(T0 - 60, T0 + 60).values()) == 5
    assert store.delete_events_with_attribute("member", token) == 0
    assert store.tail_events("0", limit=100)[1] == others
    assert store.tail_events(cursor)[1] == []


def _member_records(store: Store, token: str, start: float) -> None:
    """Two consents, two check-ins and one link of ``token`` from ``start`` on."""
    store.record_consent(ConsentRecord(token, "2024-06", start + 5, "kiosk"))
    store.record_consent(ConsentRecord(token, "2024-05", start, "app"))
    for i in range(2):
        store.add_checkin(
            CheckIn(token, Role.MEMBER, start + 10 * i, "2024-05", "cam1", "kiosk",
                    LinkOutcome.LINKED, TrackKey("cam1", 7 + i), 1)
        )  # fmt: skip
    store.add_link(TrackLink(token, Role.MEMBER, TrackKey("cam1", 7), "visit-1", start + 1))


def test_optin_records_round_trip_in_time_order(store: Store) -> None:
    _member_records(store, "m-1", T0)
    _member_records(store, "m-2", T0 + 100)
    assert [c.policy_version for c in store.consents("m-1")] == ["2024-05", "2024-06"]
    assert store.consents("m-3") == []
    checkins = store.checkins()
    assert [(c.member_token, c.timestamp) for c in checkins] == [
        ("m-1", T0), ("m-1", T0 + 10), ("m-2", T0 + 100), ("m-2", T0 + 110),
    ]  # fmt: skip
    assert checkins[1].linked_track == TrackKey("cam1", 8) and checkins[1].zone_id == "kiosk"
    assert [c.timestamp for c in store.checkins(T0 + 10, T0 + 110)] == [T0 + 10, T0 + 100]
    assert [c.timestamp for c in store.checkins(member_token="m-2", end=T0 + 105)] == [T0 + 100]
    links = store.links(start=T0 + 50)
    assert [(x.member_token, x.track, x.visit_id) for x in links] == [
        ("m-2", TrackKey("cam1", 7), "visit-1")
    ]
    store.add_link(links[0])  # the same link again replaces it
    assert len(store.links(member_token="m-2")) == 1


def test_optin_audit_log_is_filtered_by_time_and_subject(store: Store) -> None:
    key = store.optin_subject_key()
    assert len(key) == 32 and store.optin_subject_key() == key
    for i, subject in enumerate(["a", "b", "a"]):
        store.append_audit(AuditEntry(T0 + i, "k_1", "read", subject, f"n={i}"))
    assert [e.detail for e in store.audit_log()] == ["n=0", "n=1", "n=2"]
    assert [e.detail for e in store.audit_log(start=T0 + 1)] == ["n=1", "n=2"]
    assert [e.detail for e in store.audit_log(subject="a")] == ["n=0", "n=2"]


def test_erasing_a_member_leaves_no_trace_of_their_token(store: Store) -> None:
    token, other = f"member-{uuid.uuid4().hex}", f"member-{uuid.uuid4().hex}"
    _member_records(store, token, T0)
    _member_records(store, other, T0)
    store.append_audit(AuditEntry(T0, "k_1", "read", "subject-hash"))
    assert _raw_contains(store, token)
    assert store.erase_member(token) == 5
    assert not _raw_contains(store, token)
    assert store.consents(token) == [] and store.checkins(member_token=token) == []
    assert {c.member_token for c in store.checkins()} == {other}
    assert len(store.links()) == 1 and len(store.consents(other)) == 2
    assert len(store.audit_log()) == 1  # who touched member data stays
    assert store.erase_member(token) == 0


def test_optin_retention_deletes_only_old_records(store: Store) -> None:
    _member_records(store, "m-old", T0)
    _member_records(store, "m-new", T0 + 1000)
    store.append_audit(AuditEntry(T0, "k_1", "read", "s"))
    store.append_audit(AuditEntry(T0 + 1000, "k_1", "read", "s"))
    assert store.delete_checkins_before(T0 + 500) == 3  # two check-ins, one link
    assert {c.member_token for c in store.checkins()} == {"m-new"}
    assert [x.member_token for x in store.links()] == ["m-new"]
    assert store.delete_consents_before(T0 + 3) == 1  # the older of m-old's two
    assert [c.given_at for c in store.consents("m-old")] == [T0 + 5]
    assert store.delete_audit_before(T0 + 500) == 1
    assert [e.timestamp for e in store.audit_log()] == [T0 + 1000]
    assert store.erase_member("m-old") == 1  # its one consent left


@pytest.mark.parametrize("token", ["", "has space", "x" * 129, "naïve"])
def test_malformed_member_tokens_are_refused_and_nothing_is_stored(
    store: Store, token: str
) -> None:
    with pytest.raises(ValueError, match="member token"):
        store.record_consent(ConsentRecord(token, "v1", T0))
    with pytest.raises(ValueError, match="member token"):
        store.add_checkin(CheckIn(token, Role.STAFF, T0, "v1"))
    with pytest.raises(ValueError, match="member token"):
        store.add_link(TrackLink(token, Role.MEMBER, TrackKey("cam1", 1), "v", T0))
    assert store.checkins() == [] and store.links() == [] and store.consents(token) == []


def test_tail_events_follows_new_writes(store: Store) -> None:
    events = make_events(store.store_id, 6)
    store.write_events(events[:2])
    cursor, seen = store.tail_events(None)
    assert seen == []  # "from now"
    store.write_events(events[:4])  # two old (duplicates) and two new
    cursor, seen = store.tail_events(cursor)
    assert seen == events[2:4]
    assert store.tail_events("0", limit=3)[1] == events[:3]

    writer = threading.Timer(0.2, store.write_events, args=(events[4:],))
    started = time.monotonic()
    writer.start()
    cursor, seen = store.tail_events(cursor, block_ms=3000)
    writer.join()
    assert seen == events[4:]
    assert 0.15 < time.monotonic() - started < 2.5

    started = time.monotonic()
    assert store.tail_events(cursor, block_ms=200) == (cursor, [])
    assert time.monotonic() - started >= 0.19
    with pytest.raises(ValueError, match="cursor"):
        store.tail_events("not-a-cursor")


def test_events_without_a_finite_timestamp_are_rejected(store: Store) -> None:
    broken = Event.create(EventType.ZONE_ENTER, store.store_id, "cam1", "aisle", 1, float("inf"))
    with pytest.raises(ValueError, match="non-finite timestamp"):
        store.write_events([*make_events(store.store_id, 2), broken])
    assert store.query_events(EventQuery()) == []  # the batch is all or nothing


def test_events_of_different_stores_are_separate(store: Store, tmp_path: Path) -> None:
    if isinstance(store, SpoolingStore):
        store = store.primary
    url = store.path if isinstance(store, SQLiteStore) else None
    other: Store = (
        SQLiteStore(url, "other-store")
        if url is not None
        else RedisStore(store.client, "other-store-" + store.store_id)
    )
    store.write_events(make_events(store.store_id, 3))
    other.write_events(make_events(other.store_id, 2))
    assert len(store.query_events(EventQuery())) == 3
    assert len(other.query_events(EventQuery())) == 2
    assert len(other.tail_events("0")[1]) == 2


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("postgres://db/x", "unknown store URL scheme"),
        ("storesense.db", "no scheme"),
        ("sqlite://", "names no database file"),
        ("sqlite:///no/such/dir/x.db", "directory of the SQLite database does not exist"),
        ("sqlite:///x.db?synchronous=sometimes", "synchronous must be one of"),
        ("sqlite:///x.db?journal=off", "unknown SQLite store option"),
        ("redis://", "names no Redis host"),
    ],
)
def test_open_store_rejects_bad_urls_clearly(url: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        open_store(url, "s1")


@pytest.mark.parametrize("store_id", ["", "a{b}", "x" * 65, "line\nbreak"])
def test_store_ids_that_would_break_key_names_are_rejected(store_id: str) -> None:
    with pytest.raises(ValueError, match="store_id"):
        open_store("sqlite://:memory:", store_id)


def test_sqlite_store_is_safe_across_threads(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "threads.db", "s1", synchronous="normal")
    batches = [make_events("s1", 50, start=T0 + 1000 * k) for k in range(4)]
    threads = [threading.Thread(target=store.write_events, args=(b,)) for b in batches * 2]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(store.query_events(EventQuery())) == 200
    store.close()
    reopened = SQLiteStore(tmp_path / "threads.db", "s1")  # survives a restart
    assert len(reopened.query_events(EventQuery())) == 200
    reopened.close()


def test_lost_redis_connection_raises_store_unavailable(
    new_redis_server: Callable[..., RedisServer],
) -> None:
    server = new_redis_server()
    store = RedisStore.from_url(server.url, "s1", socket_timeout=1.0, connect_timeout=0.3)
    store.write_events(make_events("s1", 2))
    server.kill()
    assert store.ping() is False
    for call in (
        lambda: store.write_events(make_events("s1", 3)),
        lambda: store.query_events(EventQuery()),
        lambda: store.get_occupancy(),
        lambda: store.tail_events("0"),
    ):
        with pytest.raises(StoreUnavailableError, match="Redis unavailable"):
            call()
    store.close()


# Public RedisStore members that never talk to Redis, or answer an outage themselves.
# live_floor only builds the link; the link itself drops frames while Redis is away
# (tests/test_store_visits_redis.py freezes and kills Redis under it).
_NO_REDIS_CALL = {"from_url", "client", "key", "close", "live_floor"}


def _every_redis_call(store: RedisStore) -> dict[str, Callable[[], object]]:
    """One call of every public store method that talks to Redis, with valid arguments."""
    consent = ConsentRecord("m-1", "2024-05", T0)
    checkin = CheckIn("m-1", Role.MEMBER, T0, "2024-05", "cam1", "kiosk")
    link = TrackLink("m-1", Role.MEMBER, TrackKey("cam1", 7), "visit-1", T0)
    cell = HeatmapCell("cam1", 1_699_999_200.0, 1, 2, 3.5)
    key = ApiKeyRecord("k1", "till", "ab" * 32, frozenset({"read"}), T0)
    return {
        "write_events": lambda: store.write_events(make_events("s1", 3)),
        "query_events": lambda: store.query_events(EventQuery()),
        "delete_events_before": lambda: store.delete_events_before(T0),
        "delete_events_with_attribute": lambda: store.delete_events_with_attribute("k", "v"),
        "tail_events": lambda: store.tail_events("0"),
        "count_events": lambda: store.count_events(T0, T0 + 60),
        "event_facts": lambda: store.event_facts(T0, T0 + 60, frozenset(EventType)),
        "events_version": store.events_version,
        "create_consumer_group": lambda: store.create_consumer_group("g"),
        "read_group": lambda: store.read_group("g", "c1"),
        "ack": lambda: store.ack("g", ["1-0"]),
        "set_occupancy": lambda: store.set_occupancy("cam1", {"aisle": 2}, T0),
        "get_occupancy": store.get_occupancy,
        "add_transactions": lambda: store.add_transactions({T0: 2}),
        "get_transactions": lambda: store.get_transactions(T0, T0 + 60),
        "add_heatmap": lambda: store.add_heatmap([cell]),
        "get_heatmap": lambda: store.get_heatmap(T0 - 3600, T0),
        "delete_heatmap_before": lambda: store.delete_heatmap_before(T0),
        "put_camera_report": lambda: store.put_camera_report(CameraReport("cam1", "{}", T0)),
        "get_camera_reports": store.get_camera_reports,
        "get_layout": store.get_layout,
        "put_layout": lambda: store.put_layout('{"store_id": "s1"}'),
        "put_api_key": lambda: store.put_api_key(key),
        "find_api_key": lambda: store.find_api_key("ab" * 32),
        "list_api_keys": store.list_api_keys,
        "delete_api_key": lambda: store.delete_api_key("k1"),
        "optin_subject_key": store.optin_subject_key,
        "record_consent": lambda: store.record_consent(consent),
        "consents": lambda: store.consents("m-1"),
        "add_checkin": lambda: store.add_checkin(checkin),
        "checkins": store.checkins,
        "add_link": lambda: store.add_link(link),
        "links": store.links,
        "erase_member": lambda: store.erase_member("m-1"),
        "append_audit": lambda: store.append_audit(AuditEntry(T0, "system", "read", "s")),
        "audit_log": store.audit_log,
        "delete_checkins_before": lambda: store.delete_checkins_before(T0),
        "delete_consents_before": lambda: store.delete_consents_before(T0),
        "delete_audit_before": lambda: store.delete_audit_before(T0),
    }


def test_every_store_method_on_a_stopped_redis_raises_store_unavailable(
    new_redis_server: Callable[..., RedisServer],
) -> None:
    """A Redis outage is a 503 (``StoreUnavailableError``) everywhere, never a raw
    redis exception (a 500)."""
    server = new_redis_server()
    store = RedisStore.from_url(server.url, "s1", socket_timeout=1.0, connect_timeout=0.3)
    calls = _every_redis_call(store)
    public = {
        name
        for cls in (Store, RedisStore, *RedisStore.__mro__)
        for name in vars(cls)
        if not name.startswith("_") and callable(getattr(RedisStore, name, None))
    } - {"ping"}
    assert sorted(public - _NO_REDIS_CALL - calls.keys()) == []  # a new method needs a call here
    for call in calls.values():  # all of them work on a running Redis
        call()
    subject_key = store.optin_subject_key()
    server.stop()
    assert store.ping() is False
    assert store.optin_subject_key() == subject_key  # read once, then kept
    cold = RedisStore.from_url(server.url, "s1", socket_timeout=1.0, connect_timeout=0.3)
    mapped: dict[str, object] = {}
    for name, call in _every_redis_call(cold).items():
        try:
            call()
        except StoreUnavailableError as exc:
            mapped[name] = "Redis unavailable" in str(exc)
        except Exception as exc:
            mapped[name] = f"{type(exc).__module__}.{type(exc).__name__}: {exc}"
        else:
            mapped[name] = "no error"
    assert {name: result for name, result in mapped.items() if result is not True} == {}
    store.close()
    cold.close()
