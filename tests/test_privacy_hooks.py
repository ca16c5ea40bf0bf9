"""Hooks see consented members only; the webhook is signed, retried, and never blocks."""

from __future__ import annotations

import json
import sys
import textwrap
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from storesense.api.privacy.consent import Role, TrackKey
from storesense.api.privacy.hooks import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    HookDispatcher,
    HookSettings,
    WebhookHook,
    available_hooks,
    load_hook,
    sign,
    verify_signature,
)
from storesense.vision.detections import Tracks
from storesense.zones.events import Event, EventType

CAMERAS = ("cam1", "cam2")
TRACK_IDS = range(1, 9)
SECRET = "a-webhook-secret-of-some-length"


@dataclass
class RecordingHook:
    """A real hook that keeps everything it is given."""

    wants_crops: bool = True
    events: list[tuple[str, Event]] = field(default_factory=list)
    visit_ends: list[tuple[str, list[Event]]] = field(default_factory=list)
    crops: list[tuple[str, str, npt.NDArray[np.uint8]]] = field(default_factory=list)

    def on_member_event(self, member_token: str, event: Event) -> None:
        self.events.append((member_token, event))

    def on_visit_end(self, member_token: str, events: Sequence[Event]) -> None:
        self.visit_ends.append((member_token, list(events)))

    def on_member_crop(
        self, member_token: str, camera_id: str, crop: npt.NDArray[np.uint8]
    ) -> None:
        self.crops.append((member_token, camera_id, crop))


def box_of(track_id: int) -> tuple[float, float, float, float]:
    return (track_id * 40.0, 10.0, track_id * 40.0 + 30.0, 90.0)


def frame_image(camera_index: int, track_ids: Sequence[int]) -> npt.NDArray[np.uint8]:
    """Each track's box painted with its own code: (camera + 1, track id, 200)."""
    image = np.zeros((100, 400, 3), np.uint8)
    for track_id in track_ids:
        x0, y0, x1, y1 = (int(v) for v in box_of(track_id))
        image[y0:y1, x0:x1] = (camera_index + 1, track_id, 200)
    return image


frame_strategy = st.tuples(
    st.sampled_from(range(len(CAMERAS))),
    st.sets(st.sampled_from(TRACK_IDS), min_size=0, max_size=6),
    st.sets(st.sampled_from(TRACK_IDS), max_size=2),
)
consent_strategy = st.dictionaries(
    st.tuples(st.sampled_from(range(len(CAMERAS))), st.sampled_from(TRACK_IDS)),
    st.sampled_from([Role.MEMBER, Role.MEMBER, Role.STAFF]),
    max_size=6,
)


@settings(
    max_examples=150, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)
@given(consented=consent_strategy, frames=st.lists(frame_strategy, min_size=1, max_size=25))
def test_only_consented_tracks_reach_hooks(
    consented: dict[tuple[int, int], Role], frames: list[tuple[int, set[int], set[int]]]
) -> None:
    hook = RecordingHook()
    dispatcher = HookDispatcher([hook], visit_gap_s=3.0)
    owners: dict[TrackKey, tuple[str, Role]] = {}
    for number, ((camera_index, track_id), role) in enumerate(sorted(consented.items())):
        key = TrackKey(CAMERAS[camera_index], track_id)
        token = f"token-{number}"
        dispatcher.link(key, token, role, timestamp=0.0)
        owners[key] = (token, role)
    live = dict(owners)
    expected_events: list[tuple[str, str]] = []
    for step, (camera_index, present, lost) in enumerate(frames, start=1):
        camera = CAMERAS[camera_index]
        timestamp = float(step)
        events = [
            Event.create(EventType.ZONE_ENTER, "s1", camera, "aisle", t, timestamp)
            for t in sorted(present | lost)
        ]
        tracks = Tracks(
            np.array([box_of(t) for t in sorted(present)], np.float32).reshape(-1, 4),
            np.ones(len(present), np.float32),
            np.array(sorted(present), np.int64),
            np.zeros((len(present), 2), np.float32),
            timestamp=timestamp,
            lost_ids=np.array(sorted(lost), np.int64),
        )
        out = dispatcher.process(camera, events, tracks, frame_image(camera_index, sorted(present)))
        assert [e.event_id for e in out] == [e.event_id for e in events]
        for event in out:
            owner = live.get(TrackKey(camera, event.track_id))
            if owner is not None and owner[1] == Role.MEMBER:
                expected_events.append((owner[0], event.event_id))
                assert event.attributes == {"member": owner[0]}
            else:
                assert "member" not in event.attributes
        for track_id in lost:
            live.pop(TrackKey(camera, track_id), None)

    member_keys = {k: token for k, (token, role) in owners.items() if role == Role.MEMBER}
    assert [(token, e.event_id) for token, e in hook.events] == expected_events
    for token, event in hook.events:
        assert member_keys[TrackKey(event.camera_id, event.track_id)] == token
    for token, camera, crop in hook.crops:
        (key,) = [k for k, t in member_keys.items() if t == token and k.camera_id == camera]
        assert crop.size and (crop == (CAMERAS.index(camera) + 1, key.track_id, 200)).all()
    for token, events in hook.visit_ends:
        assert token in member_keys.values()
        assert all(member_keys[TrackKey(e.camera_id, e.track_id)] == token for e in events)


def test_a_failing_hook_does_not_stop_the_others() -> None:
    class Broken:
        def on_member_event(self, member_token: str, event: Event) -> None:
            raise RuntimeError("bug in someone's hook")

        def on_visit_end(self, member_token: str, events: Sequence[Event]) -> None:
            raise RuntimeError("bug in someone's hook")

    good = RecordingHook()
    dispatcher = HookDispatcher([Broken(), good], visit_gap_s=0)
    dispatcher.link(TrackKey("cam1", 1), "m-1", Role.MEMBER, timestamp=0.0)
    event = Event.create(EventType.ZONE_ENTER, "s1", "cam1", "aisle", 1, 1.0)
    out = dispatcher.process("cam1", [event], now=1.0)
    assert out[0].attributes == {"member": "m-1"} and len(good.events) == 1


def test_visit_ends_after_the_gap_with_the_members_events() -> None:
    hook = RecordingHook()
    dispatcher = HookDispatcher([hook], visit_gap_s=10)
    dispatcher.link(TrackKey("cam1", 3), "m-3", Role.MEMBER, timestamp=0.0)
    event = Event.create(EventType.ZONE_ENTER, "s1", "cam1", "aisle", 3, 1.0)
    gone = Tracks.empty(timestamp=2.0)
    gone = Tracks(
        gone.xyxy,
        gone.confidence,
        gone.track_id,
        gone.velocity,
        timestamp=2.0,
        lost_ids=np.array([3]),
    )
    dispatcher.process("cam1", [event], gone)
    assert hook.visit_ends == []
    dispatcher.process("cam1", [], Tracks.empty(timestamp=11.0))
    assert hook.visit_ends == []
    dispatcher.process("cam1", [], Tracks.empty(timestamp=12.5))
    assert [(t, [e.event_id for e in es]) for t, es in hook.visit_ends] == [
        ("m-3", [event.event_id])
    ]
    assert dispatcher.active_visits() == []


def test_a_track_cannot_be_linked_to_two_members() -> None:
    dispatcher = HookDispatcher()
    dispatcher.link(TrackKey("cam1", 1), "m-1", Role.MEMBER, timestamp=0.0)
    with pytest.raises(ValueError, match="already linked"):
        dispatcher.link(TrackKey("cam1", 1), "m-2", Role.MEMBER, timestamp=0.0)


def test_objects_that_are_not_hooks_are_refused() -> None:
    with pytest.raises(ValueError, match="not a recognition hook"):
        HookDispatcher([object()])


# discovery ---------------------------------------------------------------------------
def test_hooks_are_found_through_the_entry_point_group(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "crm_hooks.py").write_text(
        textwrap.dedent("""
        class CrmHook:
            def __init__(self, campaign):
                self.campaign = campaign
            def on_member_event(self, member_token, event):
                pass
            def on_visit_end(self, member_token, events):
                pass
    """)
    )
    dist = tmp_path / "crm_hooks-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: crm-hooks\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[storesense.recognition]\ncrm = crm_hooks:CrmHook\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert available_hooks()["crm"] == "crm_hooks:CrmHook"
    hook = load_hook(HookSettings(name="crm", options={"campaign": "spring"}))
    assert type(hook).__name__ == "CrmHook" and hook.campaign == "spring"
    by_path = load_hook(HookSettings(name="crm_hooks:CrmHook", options={"campaign": "x"}))
    assert type(by_path).__name__ == "CrmHook"
    sys.modules.pop("crm_hooks", None)


@pytest.mark.parametrize(
    ("settings_", "message"),
    [
        (HookSettings(name="no-such-hook"), "unknown recognition hook"),
        (HookSettings(name="json:nothing_here"), "cannot load"),
        (HookSettings(name="webhook", options={"url": "ftp://x", "secret": SECRET}), "http"),
        (HookSettings(name="webhook", options={"nope": 1}), "bad options"),
        (HookSettings(name="builtins:dict"), "did not build a recognition hook"),
    ],
)
def test_bad_hook_settings_are_clear_errors(settings_: HookSettings, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        load_hook(settings_)


# webhook -------------------------------------------------------------------------------
@dataclass
class Receiver:
    """A CRM endpoint on 127.0.0.1 that checks signatures and fails the first requests."""

    fail_first: int = 0
    status_when_failing: int = 503
    accepted: list[dict[str, Any]] = field(default_factory=list)
    attempts: list[float] = field(default_factory=list)
    rejected_signatures: int = 0
    url: str = ""


@pytest.fixture()
def receiver() -> Iterator[Receiver]:
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            state.attempts.append(time.monotonic())
            if not verify_signature(
                SECRET, body, self.headers.get(TIMESTAMP_HEADER), self.headers.get(SIGNATURE_HEADER)
            ):
                state.rejected_signatures += 1
                self.send_response(401)
            elif len(state.attempts) <= state.fail_first:
                self.send_response(state.status_when_failing)
            else:
                state.accepted.append(json.loads(body))
                self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}/crm"
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()


def member_event(track_id: int, timestamp: float) -> Event:
    return Event.create(EventType.ZONE_ENTER, "s1", "cam1", "bakery", track_id, timestamp)


def test_webhook_retries_with_exponential_backoff_and_keeps_order(receiver: Receiver) -> None:
    receiver.fail_first = 3
    hook = WebhookHook(receiver.url, SECRET, backoff_initial_s=0.05, backoff_max_s=1.0)
    hook.on_member_event("m-1", member_event(1, 1.0))
    hook.on_member_event("m-1", member_event(1, 2.0))
    hook.on_visit_end("m-1", [member_event(1, 1.0), member_event(1, 2.0)])
    assert hook.flush(10)
    hook.close()
    assert [p["kind"] for p in receiver.accepted] == ["member_event", "member_event", "visit_end"]
    assert [p["event"]["timestamp"] for p in receiver.accepted[:2]] == [1.0, 2.0]
    assert receiver.rejected_signatures == 0
    assert len(receiver.attempts) == 6 and hook.stats.retries == 3
    gaps = np.diff(receiver.attempts[:4])
    assert gaps[0] >= 0.05 and gaps[1] >= 0.1 and gaps[2] >= 0.2
    assert gaps[2] > gaps[0]
    assert (hook.stats.delivered, hook.stats.dropped) == (3, 0)


def test_webhook_gives_up_on_a_client_error(receiver: Receiver) -> None:
    receiver.fail_first, receiver.status_when_failing = 1, 400
    hook = WebhookHook(receiver.url, SECRET, backoff_initial_s=0.05)
    hook.on_member_event("m-1", member_event(1, 1.0))
    hook.on_member_event("m-1", member_event(1, 2.0))
    assert hook.flush(10)
    hook.close()
    assert len(receiver.attempts) == 2 and hook.stats.dropped == 1 and hook.stats.retries == 0


def test_webhook_gives_up_after_max_attempts_with_capped_backoff(receiver: Receiver) -> None:
    receiver.fail_first = 100
    hook = WebhookHook(
        receiver.url, SECRET, backoff_initial_s=0.05, backoff_max_s=0.1, max_attempts=4
    )
    hook.on_member_event("m-1", member_event(1, 1.0))
    assert hook.flush(10)
    hook.close()
    assert len(receiver.attempts) == 4 and hook.stats.retries == 3
    assert (hook.stats.delivered, hook.stats.dropped) == (0, 1)
    gaps = np.diff(receiver.attempts)
    assert gaps[0] >= 0.05 and gaps[1] >= 0.1 and gaps[2] >= 0.1
    assert gaps[2] < 0.2 + 0.5 * gaps[1]  # capped at 0.1 s, not 0.2 s (+ scheduling slack)


def test_closing_ends_a_backoff_wait_without_another_try(receiver: Receiver) -> None:
    receiver.fail_first = 100
    hook = WebhookHook(receiver.url, SECRET, backoff_initial_s=30.0, max_attempts=5)
    hook.on_member_event("m-1", member_event(1, 1.0))
    deadline = time.monotonic() + 5
    while not receiver.attempts and time.monotonic() < deadline:
        time.sleep(0.01)
    start = time.monotonic()
    hook.close(timeout_s=0.1)
    assert not hook._thread.is_alive() and time.monotonic() - start < 2.0
    assert len(receiver.attempts) == 1
    assert (hook.stats.delivered, hook.stats.dropped, hook.stats.retries) == (0, 1, 1)


def test_webhook_never_blocks_the_pipeline_when_the_crm_is_down() -> None:
    hook = WebhookHook(
        "http://127.0.0.1:9/unreachable", SECRET, backoff_initial_s=5.0, max_attempts=3
    )
    start = time.perf_counter()
    for step in range(200):
        hook.on_member_event("m-1", member_event(1, float(step)))
    assert time.perf_counter() - start < 0.5
    assert not hook.flush(0.2)
    hook.close(timeout_s=0.1)


def test_erased_members_queued_payloads_are_not_sent(receiver: Receiver) -> None:
    receiver.fail_first = 1
    hook = WebhookHook(receiver.url, SECRET, backoff_initial_s=0.2)
    hook.on_member_event("m-keep", member_event(1, 1.0))
    hook.on_member_event("m-gone", member_event(2, 1.0))
    hook.on_member_erased("m-gone")
    assert hook.flush(10)
    hook.close()
    assert [p["member"] for p in receiver.accepted] == ["m-keep"]


def test_signature_verifies_and_tampering_or_replay_fails(receiver: Receiver) -> None:
    body = json.dumps({"kind": "member_event", "member": "m-1"}).encode()
    now = int(time.time())
    headers = {TIMESTAMP_HEADER: str(now), SIGNATURE_HEADER: sign(SECRET, body, now)}
    assert verify_signature(SECRET, body, str(now), sign(SECRET, body, now))
    tampered = body.replace(b"m-1", b"m-2")
    assert not verify_signature(SECRET, tampered, str(now), sign(SECRET, body, now))
    assert not verify_signature("another-secret-entirely", body, str(now), sign(SECRET, body, now))
    assert not verify_signature(SECRET, body, str(now - 3600), sign(SECRET, body, now - 3600))
    assert not verify_signature(SECRET, body, str(now + 1), sign(SECRET, body, now))
    assert sign(SECRET, body, now).startswith("sha256=") and len(sign(SECRET, body, now)) == 71
    with httpx.Client() as client:
        assert client.post(receiver.url, content=body, headers=headers).status_code == 204
        assert client.post(receiver.url, content=tampered, headers=headers).status_code == 401
    assert receiver.rejected_signatures == 1


@pytest.mark.parametrize(
    "kwargs",
    [
        {"url": "localhost:80", "secret": SECRET},
        {"url": "http://x", "secret": "short"},
        {"url": "http://x", "secret": SECRET, "max_attempts": 0},
    ],
)
def test_webhook_rejects_bad_parameters(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        WebhookHook(**kwargs)


@dataclass
class ScriptedReidentifier:
    """Answers each search from a script: which checks see the member in track 7."""

    matches_on_checks: set[int]
    checks: int = 0

    def can_search(self, member_token: str) -> bool:
        return True

    def search(
        self,
        image: npt.NDArray[np.uint8],
        candidates: Any,
        member_tokens: Sequence[str],
    ) -> dict[str, TrackKey]:
        self.checks += 1
        key = TrackKey("cam2", 7)
        return {"m-1": key} if self.checks in self.matches_on_checks and key in candidates else {}


@pytest.mark.parametrize(
    ("matches_on_checks", "linked"),
    [({1}, False), ({3}, False), ({1, 3}, True), ({1, 2, 3}, True)],
    ids=["one-lucky-frame", "last-check-only", "two-of-three", "every-check"],
)
def test_reid_links_a_stranger_only_after_several_agreeing_checks(
    matches_on_checks: set[int], linked: bool
) -> None:
    reid = ScriptedReidentifier(matches_on_checks)
    dispatcher = HookDispatcher([RecordingHook()], reidentifier=reid, reid_votes=2)
    dispatcher.link(TrackKey("cam1", 1), "m-1", Role.MEMBER, timestamp=0.0)
    image = frame_image(1, [7])
    for frame in range(3 * dispatcher.reid_stride):
        tracks = Tracks(
            np.array([box_of(7)]), np.ones(1), np.array([7]), np.zeros((1, 2)), float(frame)
        )
        dispatcher.process("cam2", [], tracks, image, now=float(frame))
    # a linked track is no longer a candidate; an unlinked one is checked every time
    assert reid.checks == (max(sorted(matches_on_checks)[:2]) if linked else 3)
    expected = ("m-1", Role.MEMBER) if linked else None
    assert dispatcher.member_of(TrackKey("cam2", 7)) == expected
