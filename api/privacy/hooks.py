"""Opt-in recognition hooks: only consented members' data ever leaves the pipeline.

A :class:`RecognitionHook` is any object with ``on_member_event`` and
``on_visit_end`` (and, if it sets ``wants_crops = True``, ``on_member_crop``;
optionally ``on_member_erased``). Hooks are found by name: built-ins
(``webhook``, ``reid``), installed packages that declare an entry point in the
group ``storesense.recognition``, or a ``module:attribute`` path.

The camera worker hands *every* track's events to the :class:`HookDispatcher`;
the dispatcher tags the events of tracks linked to a member
(``attributes["member"] = token``, so erasure can find them) and forwards only
those, plus crops of those tracks to hooks that want them. Staff links are
never forwarded: they only exclude staff from customer metrics.

Example:
    >>> from storesense.zones.events import Event, EventType
    >>> class Printer:
    ...     def on_member_event(self, token, event): print(token, event.target)
    ...     def on_visit_end(self, token, events): print(token, "left after", len(events))
    >>> dispatcher = HookDispatcher([Printer()], visit_gap_s=0)
    >>> _ = dispatcher.link(TrackKey("cam1", 4), "m-42", Role.MEMBER, timestamp=10.0)
    >>> enter = EventType.ZONE_ENTER
    >>> events = [Event.create(enter, "s1", "cam1", "bakery", t, 11.0) for t in (4, 5)]
    >>> [e.attributes for e in dispatcher.process("cam1", events, now=11.0)]
    m-42 bakery
    [{'member': 'm-42'}, {}]
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import importlib
import json
import logging
import queue
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from importlib.metadata import entry_points
from typing import Any, Protocol, runtime_checkable

import httpx
import numpy as np
import numpy.typing as npt
import tenacity
from pydantic import BaseModel, ConfigDict, Field, field_validator
from storesense.api.privacy.consent import Role, TrackKey, TrackLink, validate_token
from storesense.vision.detections import Tracks
from storesense.zones.events import Event

logger = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "storesense.recognition"
MEMBER_ATTRIBUTE = "member"
SIGNATURE_HEADER = "X-StoreSense-Signature"
TIMESTAMP_HEADER = "X-StoreSense-Timestamp"
DELIVERY_HEADER = "X-StoreSense-Delivery"

Image = npt.NDArray[np.uint8]


@runtime_checkable
class RecognitionHook(Protocol):
    """What a recognition hook implements. It only ever sees consented members' data."""

    def on_member_event(self, member_token: str, event: Event) -> None:
        """A zone/line event of a consented member's track, as it happens."""

    def on_visit_end(self, member_token: str, events: Sequence[Event]) -> None:
        """The member's visit ended (all their tracks gone for ``visit_gap_s``): its events."""


class CropHook(RecognitionHook, Protocol):
    """A hook with ``wants_crops = True`` also receives crops of the member's tracks."""

    wants_crops: bool

    def on_member_crop(self, member_token: str, camera_id: str, crop: Image) -> None: ...


class Reidentifier(Protocol):
    """The built-in re-id search (trusted core code, see ``reid_hook``), not a third-party hook."""

    def can_search(self, member_token: str) -> bool:
        """True when a template exists for this member."""

    def search(
        self,
        image: Image,
        candidates: Mapping[TrackKey, npt.NDArray[np.float32]],
        member_tokens: Sequence[str],
    ) -> dict[str, TrackKey]:
        """Which candidate box (xyxy) is which searched member; embeddings discarded on return."""


def _call_hook(hook: object, method: str, *args: Any) -> None:
    """Hooks are other people's code: one that fails is logged, never stops the pipeline."""
    function = getattr(hook, method, None)
    if function is None:
        return
    try:
        function(*args)
    except Exception:
        logger.exception("recognition hook %s.%s failed", type(hook).__name__, method)


@dataclass
class Visit:
    """One member's visit: the tracks linked to them and their events so far."""

    visit_id: str
    member_token: str
    role: Role
    started_at: float
    live_tracks: set[TrackKey] = field(default_factory=set)
    events: list[Event] = field(default_factory=list)
    lost_since: float | None = None


class HookDispatcher:
    """Forwards consented members' events and crops to hooks; everyone else's stay put.

    ``visit_gap_s``: a visit ends once none of its tracks has been seen for
    this long (the re-id hook may re-find the member meanwhile).
    ``on_link`` is called with each new :class:`TrackLink` (to persist it).
    ``reidentifier`` (the built-in re-id hook) is asked to re-find members
    whose tracks are lost or who may appear on another camera; each new
    unlinked track is checked at most ``reid_checks`` times, ``reid_stride``
    frames apart, and linked only once ``reid_votes`` of those checks matched
    the same member: one lucky look-alike frame must not hand a stranger's
    data to a member's hooks.
    """

    def __init__(
        self,
        hooks: Sequence[object] = (),
        *,
        visit_gap_s: float = 120.0,
        reidentifier: Reidentifier | None = None,
        on_link: Callable[[TrackLink], None] | None = None,
        reid_checks: int = 3,
        reid_stride: int = 5,
        reid_votes: int = 2,
    ) -> None:
        if visit_gap_s < 0:
            raise ValueError(f"visit_gap_s must be >= 0, got {visit_gap_s}")
        if reid_checks < 1 or reid_stride < 1:
            raise ValueError("reid_checks and reid_stride must be >= 1")
        if not 1 <= reid_votes <= reid_checks:
            raise ValueError(f"reid_votes must be in [1, reid_checks], got {reid_votes}")
        for hook in hooks:
            if not isinstance(hook, RecognitionHook):
                raise ValueError(
                    f"{type(hook).__name__} is not a recognition hook: it needs "
                    "on_member_event(member_token, event) and on_visit_end(member_token, events)"
                )
        self.hooks = list(hooks)
        self.visit_gap_s = visit_gap_s
        self.reidentifier = reidentifier
        self.on_link = on_link
        self.reid_checks = reid_checks
        self.reid_stride = reid_stride
        self.reid_votes = reid_votes
        self._votes: dict[tuple[TrackKey, str], int] = {}
        self._visits: dict[str, Visit] = {}
        self._track_owner: dict[TrackKey, str] = {}
        self._frames_seen: dict[TrackKey, int] = {}
        self._lock = threading.RLock()

    # links -------------------------------------------------------------------------
    def link(
        self,
        track: TrackKey,
        member_token: str,
        role: Role,
        *,
        timestamp: float,
        how: str = "checkin",
    ) -> TrackLink:
        """Link a live track to a member for the rest of their visit (starting one if needed).

        Raises ``ValueError`` when the track already belongs to someone else.
        """
        validate_token(member_token)
        track = TrackKey(str(track[0]), int(track[1]))
        with self._lock:
            owner = self._track_owner.get(track)
            if owner is not None and owner != member_token:
                raise ValueError(f"track {track.track_id} of {track.camera_id} is already linked")
            visit = self._visits.get(member_token)
            if visit is None:
                visit = Visit(uuid.uuid4().hex, member_token, Role(role), timestamp)
                self._visits[member_token] = visit
            visit.live_tracks.add(track)
            visit.lost_since = None
            self._track_owner[track] = member_token
            link = TrackLink(member_token, visit.role, track, visit.visit_id, timestamp, how)
        if self.on_link is not None:
            self.on_link(link)
        return link

    def member_of(self, track: TrackKey) -> tuple[str, Role] | None:
        with self._lock:
            token = self._track_owner.get(TrackKey(*track))
            return None if token is None else (token, self._visits[token].role)

    def active_visits(self) -> list[Visit]:
        with self._lock:
            return list(self._visits.values())

    def forget_member(self, member_token: str) -> bool:
        """Erasure: drop visit and links (no ``on_visit_end``); hooks get ``on_member_erased``."""
        with self._lock:
            visit = self._visits.pop(member_token, None)
            for track in [t for t, owner in self._track_owner.items() if owner == member_token]:
                del self._track_owner[track]
        for hook in self.hooks:
            _call_hook(hook, "on_member_erased", member_token)
        if self.reidentifier is not None and self.reidentifier not in self.hooks:
            _call_hook(self.reidentifier, "on_member_erased", member_token)
        return visit is not None

    # per frame ----------------------------------------------------------------------
    def process(
        self,
        camera_id: str,
        events: Sequence[Event],
        tracks: Tracks | None = None,
        image: Image | None = None,
        *,
        now: float | None = None,
    ) -> list[Event]:
        """The worker's per-frame call: returns ``events`` with members' events tagged.

        Forwards member events (and crops of member tracks when ``image`` and
        ``tracks`` are given) to the hooks, lets the re-id hook re-find lost
        members, and ends visits idle for ``visit_gap_s``. ``now`` (Unix
        seconds) defaults to the tracks' or the latest event's timestamp.
        """
        if now is None:
            now = (
                tracks.timestamp
                if tracks is not None
                else max((e.timestamp for e in events), default=time.time())
            )
        if tracks is not None and image is not None:
            self._search_and_crop(camera_id, tracks, image, now)
        tagged: list[Event] = []
        forwards: list[tuple[str, Event]] = []
        with self._lock:
            for event in events:
                token = self._track_owner.get(TrackKey(event.camera_id, event.track_id))
                visit = self._visits.get(token) if token is not None else None
                if visit is None or visit.role != Role.MEMBER:
                    tagged.append(event)
                    continue
                member_event = replace(
                    event, attributes={**event.attributes, MEMBER_ATTRIBUTE: visit.member_token}
                )
                visit.events.append(member_event)
                tagged.append(member_event)
                forwards.append((visit.member_token, member_event))
        for token, member_event in forwards:
            for hook in self.hooks:
                _call_hook(hook, "on_member_event", token, member_event)
        if tracks is not None:
            self._track_losses(camera_id, tracks, now)
        self.end_idle_visits(now)
        return tagged

    def _track_losses(self, camera_id: str, tracks: Tracks, now: float) -> None:
        with self._lock:
            for track_id in tracks.lost_ids:
                key = TrackKey(camera_id, int(track_id))
                self._frames_seen.pop(key, None)
                self._forget_votes(key.__eq__)
                token = self._track_owner.pop(key, None)
                visit = self._visits.get(token) if token is not None else None
                if visit is not None:
                    visit.live_tracks.discard(key)
                    if not visit.live_tracks:
                        visit.lost_since = now

    def drop_camera(self, camera_id: str, now: float) -> None:
        """Treat every linked track of a camera as lost (its tracker restarted)."""
        with self._lock:
            for key in [k for k in self._track_owner if k.camera_id == camera_id]:
                token = self._track_owner.pop(key)
                visit = self._visits.get(token)
                if visit is not None:
                    visit.live_tracks.discard(key)
                    if not visit.live_tracks:
                        visit.lost_since = now
            for key in [k for k in self._frames_seen if k.camera_id == camera_id]:
                del self._frames_seen[key]
            self._forget_votes(lambda k: k.camera_id == camera_id)

    def _forget_votes(self, drop: Callable[[TrackKey], bool]) -> None:
        for vote in [v for v in self._votes if drop(v[0])]:
            del self._votes[vote]

    def end_idle_visits(self, now: float) -> list[str]:
        """End visits whose tracks have all been gone ``visit_gap_s``; returns their tokens."""
        with self._lock:
            ended = [
                v
                for v in self._visits.values()
                if v.lost_since is not None and now - v.lost_since >= self.visit_gap_s
            ]
            for visit in ended:
                del self._visits[visit.member_token]
        for visit in ended:
            if visit.role != Role.MEMBER:
                continue
            for hook in self.hooks:
                _call_hook(hook, "on_visit_end", visit.member_token, list(visit.events))
            if self.reidentifier is not None and self.reidentifier not in self.hooks:
                _call_hook(self.reidentifier, "on_visit_end", visit.member_token, [])
        return [v.member_token for v in ended]

    def _search_and_crop(self, camera_id: str, tracks: Tracks, image: Image, now: float) -> None:
        reid = self.reidentifier
        with self._lock:
            if not self._visits:
                self._frames_seen.clear()
                self._votes.clear()
                return
            searched = [
                v.member_token
                for v in self._visits.values()
                if v.role == Role.MEMBER
                and not any(t.camera_id == camera_id for t in v.live_tracks)
                and reid is not None
                and reid.can_search(v.member_token)
            ]
        height, width = image.shape[:2]
        boxes: dict[TrackKey, npt.NDArray[np.float32]] = {}
        for box, track_id in zip(tracks.xyxy, tracks.track_id, strict=True):
            x0, y0 = max(0, int(box[0])), max(0, int(box[1]))
            x1, y1 = min(width, int(np.ceil(box[2]))), min(height, int(np.ceil(box[3])))
            if x1 > x0 and y1 > y0:
                boxes[TrackKey(camera_id, int(track_id))] = box
        candidates: dict[TrackKey, npt.NDArray[np.float32]] = {}
        with self._lock:
            owned = {
                key: token
                for key in boxes
                if (token := self._track_owner.get(key)) is not None
                and self._visits[token].role == Role.MEMBER
            }
            for key, box in boxes.items():
                if key in self._track_owner or not searched:
                    continue
                seen = self._frames_seen.get(key, 0)
                self._frames_seen[key] = seen + 1
                if seen % self.reid_stride == 0 and seen // self.reid_stride < self.reid_checks:
                    candidates[key] = box
        crop_hooks = [h for h in self.hooks if getattr(h, "wants_crops", False)]
        for key, token in owned.items() if crop_hooks else ():
            x0, y0, x1, y1 = boxes[key]
            crop = image[
                max(0, int(y0)) : int(np.ceil(y1)), max(0, int(x0)) : int(np.ceil(x1))
            ].copy()
            for hook in crop_hooks:
                _call_hook(hook, "on_member_crop", token, camera_id, crop)
        if reid is None or not candidates:
            return
        try:
            found = reid.search(image, candidates, searched)
        except Exception:
            logger.exception("re-id search failed")
            return
        for token, key in found.items():
            if token not in searched or key not in candidates:
                continue
            with self._lock:
                votes = self._votes.get((key, token), 0) + 1
                self._votes[(key, token)] = votes
            if votes >= self.reid_votes:
                with self._lock:
                    self._votes.pop((key, token), None)
                try:
                    self.link(key, token, Role.MEMBER, timestamp=now, how="reid")
                except ValueError:
                    logger.debug("re-id match %s already linked", key)


# hook discovery ---------------------------------------------------------------------
class HookSettings(BaseModel):
    """One hook in the layout/settings: ``{"name": "webhook", "options": {"url": …}}``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1, description="built-in, entry-point name or module:attr")
    options: dict[str, Any] = Field(
        default_factory=dict, description="keyword arguments passed to the hook's factory"
    )

    @field_validator("name")
    @classmethod
    def _no_spaces(cls, value: str) -> str:
        if value.strip() != value or " " in value:
            raise ValueError(f"hook name {value!r} must not contain spaces")
        return value


BUILTIN_HOOKS = {
    "webhook": "storesense.api.privacy.hooks:WebhookHook",
    "reid": "storesense.api.privacy.reid_hook:ReidHook",
}


def available_hooks() -> dict[str, str]:
    """Hook names → ``module:attr``: built-ins, then ``storesense.recognition`` entry points."""
    names = dict(BUILTIN_HOOKS)
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        names[entry.name] = entry.value
    return names


def _import_target(spec: str) -> Any:
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise ValueError(f"hook {spec!r} must be a known name or 'module:attribute'")
    try:
        target: Any = importlib.import_module(module_name)
        for part in attribute.split("."):
            target = getattr(target, part)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"cannot load recognition hook {spec!r}: {exc}") from None
    return target


def load_hook(settings: HookSettings) -> object:
    """Instantiate one hook: its factory (class or function) is called with ``options``."""
    known = available_hooks()
    spec = known.get(settings.name, settings.name)
    if ":" not in spec:
        raise ValueError(
            f"unknown recognition hook {settings.name!r} (known: {', '.join(sorted(known))}; "
            "or give module:attribute)"
        )
    factory = _import_target(spec)
    try:
        hook = factory(**settings.options)
    except TypeError as exc:
        raise ValueError(f"recognition hook {settings.name!r}: bad options: {exc}") from None
    if not isinstance(hook, RecognitionHook):
        raise ValueError(
            f"{spec} did not build a recognition hook (needs on_member_event, on_visit_end)"
        )
    return hook


def load_hooks(settings: Sequence[HookSettings | Mapping[str, Any]]) -> list[object]:
    return [
        load_hook(s if isinstance(s, HookSettings) else HookSettings.model_validate(s))
        for s in settings
    ]


# webhook -------------------------------------------------------------------------------
def sign(secret: str, body: bytes, timestamp: int) -> str:
    """``sha256=<hex>`` HMAC-SHA256 of ``"<timestamp>." + body`` with the shared secret."""
    message = str(timestamp).encode() + b"." + body
    return "sha256=" + hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def verify_signature(
    secret: str,
    body: bytes,
    timestamp: str | None,
    signature: str | None,
    *,
    tolerance_s: float = 300.0,
    now: float | None = None,
) -> bool:
    """What a receiver checks: the signature matches and the timestamp is recent (no replays).

    >>> body = b'{"member": "m-42"}'
    >>> verify_signature("s3cret", body, "1700000000", sign("s3cret", body, 1700000000),
    ...                  now=1700000010)
    True
    >>> verify_signature("s3cret", body + b" ", "1700000000", sign("s3cret", body, 1700000000),
    ...                  now=1700000010)
    False
    """
    if not timestamp or not signature:
        return False
    try:
        sent_at = int(timestamp)
    except ValueError:
        return False
    current = time.time() if now is None else now
    if abs(current - sent_at) > tolerance_s:
        return False
    return hmac.compare_digest(sign(secret, body, sent_at), signature)


class _Stopped(Exception):
    """The hook is closing: a back-off wait was cut short, no further try."""


def _worth_retrying(status: int | None) -> bool:
    """A network error (``None``), 3xx, 408, 429 and 5xx are retried; 2xx and other 4xx are
    final."""
    if status is None:
        return True
    return not (status < 300 or (400 <= status < 500 and status not in (408, 429)))


@dataclass
class WebhookStats:
    delivered: int = 0
    retries: int = 0
    dropped: int = 0


class WebhookHook:
    """Posts member events and visit summaries to ``url``, signed, from a background thread.

    Each POST carries ``X-StoreSense-Timestamp`` (Unix seconds),
    ``X-StoreSense-Signature: sha256=<hex>`` (HMAC-SHA256 with ``secret`` over
    ``"<timestamp>." + raw body``) and ``X-StoreSense-Delivery`` (a unique id for
    de-duplication). Network errors, 408, 429 and 5xx are retried after
    ``backoff_initial_s * 2**n`` seconds (capped at ``backoff_max_s``) up to
    ``max_attempts`` tries; other 4xx are dropped. Calls never block the
    pipeline: payloads wait in a queue of ``queue_size`` (when full, the new
    payload is dropped and counted).
    """

    wants_crops = False

    def __init__(
        self,
        url: str,
        secret: str,
        *,
        timeout_s: float = 5.0,
        max_attempts: int = 8,
        backoff_initial_s: float = 0.5,
        backoff_max_s: float = 60.0,
        queue_size: int = 10_000,
    ) -> None:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"webhook url must start with http:// or https://, got {url!r}")
        if len(secret) < 16:
            raise ValueError("webhook secret must be at least 16 characters")
        if max_attempts < 1 or backoff_initial_s <= 0 or backoff_max_s < backoff_initial_s:
            raise ValueError("need max_attempts >= 1 and 0 < backoff_initial_s <= backoff_max_s")
        if timeout_s <= 0 or queue_size < 1:
            raise ValueError("timeout_s must be > 0 and queue_size >= 1")
        self.url = url
        self._secret = secret
        self.max_attempts = max_attempts
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self.stats = WebhookStats()
        self._queue: queue.Queue[tuple[str, bytes] | None] = queue.Queue(queue_size)
        self._erased: set[str] = set()
        self._stop = threading.Event()
        self._client = httpx.Client(timeout=timeout_s)
        self._thread = threading.Thread(target=self._deliver_forever, name="webhook", daemon=True)
        self._thread.start()

    def _wait(self, seconds: float) -> None:
        """The back-off sleep, cut short by :meth:`close`."""
        if self._stop.wait(seconds):
            raise _Stopped

    def _count_retry(self, state: tenacity.RetryCallState) -> None:
        self.stats.retries += 1

    def _enqueue(self, member_token: str, payload: dict[str, Any]) -> None:
        body = json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()
        try:
            self._queue.put_nowait((member_token, body))
        except queue.Full:
            self.stats.dropped += 1
            logger.error(
                "webhook queue full (%d): dropped a payload for %s", self._queue.maxsize, self.url
            )

    def on_member_event(self, member_token: str, event: Event) -> None:
        self._enqueue(
            member_token, {"kind": "member_event", "member": member_token, "event": event.to_dict()}
        )

    def on_visit_end(self, member_token: str, events: Sequence[Event]) -> None:
        self._enqueue(
            member_token,
            {"kind": "visit_end", "member": member_token, "events": [e.to_dict() for e in events]},
        )

    def on_member_erased(self, member_token: str) -> None:
        """Erasure: payloads of this member still queued are not sent."""
        self._erased.add(member_token)

    def _deliver_forever(self) -> None:
        try:
            while True:
                try:
                    item = self._queue.get(timeout=0.1)
                except queue.Empty:
                    if self._stop.is_set():
                        return
                    continue
                try:
                    if item is None:
                        return
                    token, body = item
                    if self._stop.is_set():
                        self.stats.dropped += 1
                    elif token not in self._erased:
                        self._deliver(body)
                finally:
                    self._queue.task_done()
        finally:
            self._client.close()

    def _post(self, body: bytes, delivery: str) -> int | None:
        """One signed try: the HTTP status, or ``None`` for a network error."""
        sent_at = int(time.time())
        headers = {
            "Content-Type": "application/json",
            TIMESTAMP_HEADER: str(sent_at),
            SIGNATURE_HEADER: sign(self._secret, body, sent_at),
            DELIVERY_HEADER: delivery,
        }
        try:
            return self._client.post(self.url, content=body, headers=headers).status_code
        except httpx.HTTPError as exc:
            logger.warning("webhook %s: %s", self.url, exc)
            return None

    def _deliver(self, body: bytes) -> None:
        """Try up to ``max_attempts`` times, ``backoff_initial_s * 2**n`` apart (at most
        ``backoff_max_s``); :meth:`close` ends the waiting."""
        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_result(_worth_retrying),
            stop=tenacity.stop_after_attempt(self.max_attempts)
            | tenacity.stop_when_event_set(self._stop),
            wait=tenacity.wait_exponential(
                multiplier=self.backoff_initial_s, max=self.backoff_max_s
            ),
            sleep=self._wait,
            before_sleep=self._count_retry,
            retry_error_callback=lambda state: None,  # gave up: no final status
        )
        try:
            status = retrying(self._post, body, uuid.uuid4().hex)
        except _Stopped:
            status = None
        if status is not None and status < 300:
            self.stats.delivered += 1
            return
        self.stats.dropped += 1
        if status is not None:
            logger.error("webhook %s refused a payload with HTTP %d", self.url, status)
        else:
            tries = retrying.statistics.get("attempt_number", 0)
            logger.error("webhook %s: gave up on a payload after %d tries", self.url, tries)

    def flush(self, timeout_s: float = 10.0) -> bool:
        """Wait until every queued payload was delivered or given up; False on timeout."""
        deadline = time.monotonic() + timeout_s
        while self._queue.unfinished_tasks:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.01)
        return True

    def close(self, timeout_s: float = 5.0) -> None:
        """Deliver what is queued (up to ``timeout_s``), then stop; what is left is dropped."""
        if not self.flush(timeout_s):
            logger.error(
                "webhook %s: closing with %d payloads undelivered",
                self.url,
                self._queue.unfinished_tasks,
            )
        self._stop.set()
        with contextlib.suppress(queue.Full):
            self._queue.put_nowait(None)
        self._thread.join(timeout_s)
