"""Consent, check-in linking, erasure without trace, audit and retention — SQLite and Redis."""

from __future__ import annotations

import sqlite3
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest
import redis
import shapely
from storesense.api.privacy.consent import LinkOutcome, Role, TrackKey
from storesense.api.privacy.hooks import HookDispatcher
from storesense.api.privacy.linker import RecentTrackIndex
from storesense.api.privacy.retention import RetentionLoop, RetentionPolicy, purge_once
from storesense.api.privacy.service import CheckInRequest, OptInService, OptInSettings
from storesense.api.store.base import EventQuery, Store
from storesense.api.store.redis import RedisStore
from storesense.api.store.sqlite import SQLiteStore
from storesense.vision.detections import Tracks
from storesense.zones.events import Event, EventType

if TYPE_CHECKING:
    from fixtures_redis import RedisServer


T0 = 1_700_000_000.0
KIOSK = shapely.Polygon([(0, 300), (200, 300), (200, 480), (0, 480)])


@dataclass
class Backend:
    name: str
    store: Store
    url: str
    store_id: str
    traces_of: Callable[[str], list[str]]
    """Every place (table row / key) where a string still appears."""


def _sqlite_traces(path: Path) -> Callable[[str], list[str]]:
    def traces(text: str) -> list[str]:
        found = []
        with sqlite3.connect(path) as conn:
            tables = [
                r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")
            ]
            for table in tables:
                for row in conn.execute(f"SELECT * FROM {table}"):
                    if any(text in str(value) for value in row):
                        found.append(f"{table}: {row}")
        for file in path.parent.glob(path.name + "*"):
            if text.encode() in file.read_bytes():
                found.append(f"raw bytes of {file.name}")
        return found

    return traces


def _redis_traces(url: str) -> Callable[[str], list[str]]:
    def traces(text: str) -> list[str]:
        client = redis.Redis.from_url(url, decode_responses=True)
        found = []
        for key in client.scan_iter("*", count=1000):
            kind = client.type(key)
            if kind == "string":
                values: object = client.get(key)
            elif kind == "hash":
                values = client.hgetall(key)
            elif kind == "list":
                values = client.lrange(key, 0, -1)
            elif kind == "set":
                values = client.smembers(key)
            elif kind == "zset":
                values = client.zrange(key, 0, -1, withscores=True)
            elif kind == "stream":
                values = client.xrange(key)
            else:
                values = kind
            if text in key or text in str(values):
                found.append(f"{key} ({kind})")
        client.close()
        return found

    return traces


@pytest.fixture(params=["sqlite", "redis"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    store_id = "s-" + uuid.uuid4().hex[:8]
    if request.param == "sqlite":
        path = tmp_path / "store.db"
        url = f"sqlite:///{path}"
        store: Store = SQLiteStore(path, store_id)
        traces = _sqlite_traces(path)
    else:
        server: RedisServer = request.getfixturevalue("redis_server")
        url = server.url
        store = RedisStore.from_url(url, store_id)
        traces = _redis_traces(url)
    yield Backend(request.param, store, url, store_id, traces)
    store.close()


@pytest.fixture()
def service(backend: Backend) -> Iterator[OptInService]:
    linker = RecentTrackIndex({"cam1": {"kiosk": KIOSK}}, tolerance_s=1.0)
    optin = OptInService(backend.store, linker, HookDispatcher(visit_gap_s=60))
    yield optin
    optin.close()


def tracks_at(
    timestamp: float,
    boxes: dict[int, tuple[float, float, float, float]],
    lost: tuple[int, ...] = (),
) -> Tracks:
    ids = list(boxes)
    return Tracks(
        np.array([boxes[i] for i in ids], np.float32).reshape(-1, 4),
        np.full(len(ids), 0.9, np.float32),
        np.array(ids, np.int64),
        np.zeros((len(ids), 2), np.float32),
        timestamp=timestamp,
        lost_ids=np.array(lost, np.int64),
    )


IN_KIOSK = (50.0, 250.0, 100.0, 400.0)  # floor point (75, 400) inside the kiosk
ALSO_IN_KIOSK = (120.0, 260.0, 170.0, 420.0)
ELSEWHERE = (400.0, 100.0, 450.0, 250.0)


def zone_events(backend: Backend, timestamp: float, track_ids: list[int]) -> list[Event]:
    return [
        Event.create(EventType.ZONE_ENTER, backend.store_id, "cam1", "bakery", t, timestamp)
        for t in track_ids
    ]


def test_member_is_linked_tagged_and_erased_without_trace(
    backend: Backend, service: OptInService
) -> None:
    token = "member-" + uuid.uuid4().hex
    service.on_frame("cam1", tracks_at(T0, {4: IN_KIOSK, 5: ELSEWHERE}), [])
    result = service.check_in(
        CheckInRequest(
            member_token=token, zone_id="kiosk", timestamp=T0 + 0.5, policy_version="2024-05"
        ),
        actor="k_kiosk",
    )
    assert result.outcome == LinkOutcome.LINKED
    assert result.linked_track == TrackKey("cam1", 4)
    events = service.on_frame(
        "cam1", tracks_at(T0 + 1, {4: IN_KIOSK, 5: ELSEWHERE}), zone_events(backend, T0 + 1, [4, 5])
    )
    assert [e.attributes.get("member") for e in events] == [token, None]
    backend.store.write_events(events)
    record = service.member_record(token, actor="k_admin")
    assert [c["policy_version"] for c in record["consents"]] == ["2024-05"]
    assert record["links"][0]["track_id"] == 4
    assert backend.traces_of(token), "the member's data should be stored before erasure"

    report = service.erase_member(token, actor="k_admin")

    assert report.events == 1 and report.registry_records >= 3 and report.active_visit
    assert backend.traces_of(token) == []
    remaining = backend.store.query_events(EventQuery())
    assert [e.track_id for e in remaining] == [5]
    assert service.dispatcher.member_of(TrackKey("cam1", 4)) is None
    later = service.on_frame(
        "cam1", tracks_at(T0 + 2, {4: IN_KIOSK}), zone_events(backend, T0 + 2, [4])
    )
    assert later[0].attributes == {}


def test_every_access_to_member_data_is_audited(backend: Backend, service: OptInService) -> None:
    token = "member-" + uuid.uuid4().hex
    start = time.time()
    service.check_in(
        CheckInRequest(member_token=token, camera_id="cam1", timestamp=T0), actor="k_till"
    )
    service.member_record(token, actor="k_admin")
    service.erase_member(token, actor="k_dpo")
    subject = service.registry.subject_of(token)
    entries = service.store.audit_log(start=start - 1, subject=subject)
    assert [(e.actor, e.action) for e in entries] == [
        ("k_till", "checkin"),
        ("k_admin", "read"),
        ("k_dpo", "erase"),
    ]
    assert all(start - 1 <= e.timestamp <= time.time() for e in entries)
    assert token not in subject and backend.traces_of(token) == []


@pytest.mark.parametrize(
    ("boxes", "outcome", "candidates"),
    [
        ({4: IN_KIOSK, 5: ALSO_IN_KIOSK}, LinkOutcome.AMBIGUOUS, 2),
        ({4: IN_KIOSK, 5: ELSEWHERE}, LinkOutcome.LINKED, 1),
        ({5: ELSEWHERE}, LinkOutcome.NO_TRACK, 0),
    ],
)
def test_checkin_links_only_an_unambiguous_track(
    backend: Backend,
    service: OptInService,
    boxes: dict[int, tuple[float, float, float, float]],
    outcome: LinkOutcome,
    candidates: int,
) -> None:
    token = "member-" + uuid.uuid4().hex
    service.on_frame("cam1", tracks_at(T0, boxes), [])
    result = service.check_in(
        CheckInRequest(member_token=token, zone_id="kiosk", timestamp=T0), actor=None
    )
    assert (result.outcome, result.candidates) == (outcome, candidates)
    events = service.on_frame(
        "cam1", tracks_at(T0 + 1, boxes), zone_events(backend, T0 + 1, list(boxes))
    )
    tagged = [e.track_id for e in events if e.attributes.get("member") == token]
    assert tagged == ([4] if outcome == LinkOutcome.LINKED else [])
    if outcome == LinkOutcome.AMBIGUOUS:
        assert "linked none" in result.message and result.linked_track is None
    stored = service.store.checkins(member_token=token)
    assert [c.outcome for c in stored] == [outcome]


def test_checkin_long_after_the_frame_links_none(service: OptInService) -> None:
    service.on_frame("cam1", tracks_at(T0, {4: IN_KIOSK}), [])
    result = service.check_in(
        CheckInRequest(member_token="m-late", zone_id="kiosk", timestamp=T0 + 5), actor=None
    )
    assert result.outcome == LinkOutcome.NO_TRACK


def test_unknown_zone_is_a_clear_error(service: OptInService) -> None:
    with pytest.raises(ValueError, match="unknown zone 'nowhere'"):
        service.check_in(
            CheckInRequest(member_token="m-1", zone_id="nowhere", timestamp=T0), actor=None
        )


@pytest.mark.parametrize("token", ["", "has space", "x" * 129, "naïve"])
def test_bad_tokens_are_refused(token: str) -> None:
    with pytest.raises(ValueError, match="member token"):
        CheckInRequest(member_token=token, zone_id="kiosk")


def test_staff_badge_marks_tracks_and_is_never_tagged(
    backend: Backend, service: OptInService
) -> None:
    service.on_frame("cam1", tracks_at(T0, {7: IN_KIOSK, 8: ELSEWHERE}), [])
    service.check_in(
        CheckInRequest(
            member_token="badge-" + uuid.uuid4().hex, zone_id="kiosk", timestamp=T0, role=Role.STAFF
        ),
        actor="k_badge",
    )
    events = service.on_frame(
        "cam1", tracks_at(T0 + 1, {7: IN_KIOSK, 8: ELSEWHERE}), zone_events(backend, T0 + 1, [7, 8])
    )
    assert all("member" not in e.attributes for e in events)
    assert service.staff_track_keys(T0 - 10, T0 + 10) == {("cam1", 7)}
    assert service.staff_track_keys(T0 + 5, T0 + 10, lookback_s=0) == set()
    assert service.staff_track_keys(T0 + 5, T0 + 10) == {("cam1", 7)}


def test_repeat_visits_are_aggregated_from_checkins(service: OptInService) -> None:
    day = 86_400.0
    for token, when in [
        ("a", T0 - day),
        ("a", T0 + 10),
        ("b", T0 + 20),
        ("c", T0 + 30),
        ("c", T0 + 3_600),
        ("d", T0 - day),
    ]:
        service.check_in(
            CheckInRequest(member_token=token, camera_id="cam1", timestamp=when), actor=None
        )
    service.check_in(
        CheckInRequest(member_token="staff-1", camera_id="cam1", timestamp=T0 + 5, role=Role.STAFF),
        actor=None,
    )
    aggregates = service.aggregates(T0, T0 + day)
    assert aggregates.member_visits == 4
    assert aggregates.distinct_members == 3
    assert aggregates.repeat_members == 2  # a (came yesterday), c (came twice today)
    assert aggregates.repeat_visit_rate == pytest.approx(2 / 3)
    assert service.aggregates(T0 + 2 * day, T0 + 3 * day).repeat_visit_rate == 0.0


def test_retention_purges_old_events_checkins_consents_and_audit(
    backend: Backend, service: OptInService
) -> None:
    now = T0 + 40 * 86_400
    old, recent = T0, now - 86_400
    backend.store.write_events(zone_events(backend, old, [1]) + zone_events(backend, recent, [2]))
    for token, when in (("old-member", old), ("new-member", recent)):
        service.check_in(
            CheckInRequest(member_token=token, camera_id="cam1", timestamp=when), actor=None
        )
    policy = RetentionPolicy(30, consent_days=35, audit_days=3650)
    report = purge_once(policy, backend.store, now=now)
    assert report.events == 1 and report.checkins_and_links == 1 and report.consents == 1
    assert [e.track_id for e in backend.store.query_events(EventQuery())] == [2]
    assert [c.member_token for c in service.store.checkins()] == ["new-member"]
    assert service.store.consents("old-member") == []
    assert len(service.store.consents("new-member")) == 1
    assert len(service.store.audit_log()) == 2
    assert (
        purge_once(
            RetentionPolicy(30, audit_days=1),
            backend.store,
            now=time.time() + 2 * 86_400,
        ).audit_entries
        == 2
    )


def test_retention_loop_purges_in_the_background(backend: Backend) -> None:
    backend.store.write_events(zone_events(backend, time.time() - 10 * 86_400, [1]))
    loop = RetentionLoop(RetentionPolicy(1, interval_s=0.05), backend.store)
    loop.start()
    deadline = time.monotonic() + 5
    while backend.store.query_events(EventQuery()) and time.monotonic() < deadline:
        time.sleep(0.02)
    loop.stop()
    assert backend.store.query_events(EventQuery()) == []
    assert loop.last_report is not None


@pytest.mark.parametrize("bad", [{"days": 0}, {"days": -1}, {"days": 1, "audit_days": 0}])
def test_retention_policy_rejects_non_positive_days(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="greater than 0"):
        RetentionPolicy(**bad)


def test_a_camera_restart_forgets_its_track_ids(backend: Backend, service: OptInService) -> None:
    service.on_frame("cam1", tracks_at(T0, {4: IN_KIOSK}), [])
    service.check_in(
        CheckInRequest(member_token="m-restart", zone_id="kiosk", timestamp=T0), actor=None
    )
    service.camera_restarted("cam1", T0 + 1)
    events = service.on_frame(
        "cam1", tracks_at(T0 + 2, {4: IN_KIOSK}), zone_events(backend, T0 + 2, [4])
    )
    assert events[0].attributes == {}
    again = service.check_in(
        CheckInRequest(member_token="m-other", zone_id="kiosk", timestamp=T0), actor=None
    )
    assert again.outcome == LinkOutcome.NO_TRACK


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("retention: {days: -3}", "retention.days"),
        ("hooks: [{nme: webhook}]", "hooks.0.name"),
        ("visit_gap: 5", "visit_gap"),
        ("retention: [", "not valid YAML/JSON at line 1"),
    ],
)
def test_privacy_settings_file_errors_name_the_field(
    tmp_path: Path, text: str, fragment: str
) -> None:
    path = tmp_path / "privacy.yaml"
    path.write_text(text)
    with pytest.raises(ValueError, match=fragment):
        OptInSettings.load(path)


def test_privacy_settings_file_is_read(tmp_path: Path) -> None:
    path = tmp_path / "privacy.yaml"
    path.write_text(
        "retention: {days: 7, audit_days: 90}\nvisit_gap_s: 30\n"
        "hooks: [{name: webhook, options: {url: 'http://127.0.0.1:1/x',"
        " secret: 0123456789abcdef}}]\n"
    )
    settings = OptInSettings.load(path)
    assert (settings.retention.days, settings.retention.audit_days) == (7, 90)
    assert settings.visit_gap_s == 30 and settings.hooks[0].options["url"].endswith("/x")
