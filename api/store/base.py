"""The one store interface every back-end (SQLite, Redis) implements.

The API, the camera workers and the privacy layer only talk to this interface;
``open_store(url)`` picks the back-end from the URL.
"""

from __future__ import annotations

import abc
import json
import math
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, NamedTuple

from storesense.zones.events import Event, EventType

MAX_TOKEN_LENGTH = 128

if TYPE_CHECKING:
    from storesense.api.store.live_floor import LiveFloorLink


class StoreUnavailableError(RuntimeError):
    """The back-end cannot be reached (e.g. Redis is down)."""


@dataclass(frozen=True)
class ZoneOccupancy:
    zone_id: str
    camera_id: str
    count: int
    updated_at: float
    """Unix seconds of the frame that produced this count."""
    approaching: int = 0
    """Confirmed tracks predicted to enter the zone within its ``approach_seconds``."""


@dataclass(frozen=True)
class CameraReport:
    """The last status a camera worker published, from whichever process runs it."""

    camera_id: str
    status_json: str
    """JSON object: state, frames, errors, the worker's ``host:pid`` (no images)."""
    reported_at: float
    """Unix seconds when the worker published it."""


HEATMAP_CELL_M = 0.5
"""Side of a floor heatmap cell in metres: cell ``(x, y)`` spans ``[x, x + 1) * 0.5`` m."""
HEATMAP_BUCKET_S = 3600
"""Floor heatmap time bucket: person-seconds are summed per hour (Unix hours, UTC)."""


@dataclass(frozen=True)
class HeatmapCell:
    """Person-seconds one camera saw in one floor cell during one hour: an anonymous sum
    (no track, no position of anyone at any moment)."""

    camera_id: str
    hour: float
    """Start of the hour bucket, Unix seconds (a multiple of :data:`HEATMAP_BUCKET_S`)."""
    x: int
    """Cell column: floor x from ``x * HEATMAP_CELL_M`` metres."""
    y: int
    """Cell row: floor y from ``y * HEATMAP_CELL_M`` metres."""
    person_seconds: float


@dataclass(frozen=True)
class ApiKeyRecord:
    key_id: str
    name: str
    key_hash: str
    scopes: frozenset[str]
    created_at: float


@dataclass(frozen=True, slots=True)
class EventFact:
    """What counting needs of an event (no id, track or other attributes): cheap to read.

    Duck-types :class:`~storesense.zones.events.Event` for ``zones.metrics.bucket_counts``.
    """

    timestamp: float
    type: str
    target: str
    attributes: Mapping[str, str]
    """Only ``direction`` (line crossings), when the event has one."""


# opt-in records (api.privacy decides what is recorded and who may read it) ------------
class Role(StrEnum):
    MEMBER = "member"
    """A customer who opted in (loyalty member)."""
    STAFF = "staff"
    """An employee who badged in: left out of customer metrics, never sent to hooks."""


class LinkOutcome(StrEnum):
    LINKED = "linked"
    AMBIGUOUS = "ambiguous"
    """Several tracks were in the zone: none was linked."""
    NO_TRACK = "no_track"
    """Nobody was seen in the zone at that time."""


class TrackKey(NamedTuple):
    """A track is only unique within its camera (and short-lived)."""

    camera_id: str
    track_id: int


@dataclass(frozen=True)
class ConsentRecord:
    member_token: str
    policy_version: str
    given_at: float
    """Unix seconds."""
    source: str = "checkin"
    """Where it was given or renewed: ``app``, ``kiosk``, ``checkin``…"""


@dataclass(frozen=True)
class CheckIn:
    member_token: str
    role: Role
    timestamp: float
    policy_version: str
    camera_id: str | None = None
    zone_id: str | None = None
    outcome: LinkOutcome = LinkOutcome.NO_TRACK
    linked_track: TrackKey | None = None
    candidates: int = 0
    """How many tracks were in the zone at that time."""
    checkin_id: str = field(default_factory=lambda: uuid.uuid4().hex)

    def to_json(self) -> str:
        data = asdict(self)
        data["linked_track"] = list(self.linked_track) if self.linked_track else None
        return json.dumps(data, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> CheckIn:
        data = json.loads(text)
        linked = data.pop("linked_track")
        return cls(
            **{**data, "role": Role(data["role"]), "outcome": LinkOutcome(data["outcome"])},
            linked_track=TrackKey(linked[0], int(linked[1])) if linked else None,
        )


@dataclass(frozen=True)
class TrackLink:
    member_token: str
    role: Role
    track: TrackKey
    visit_id: str
    linked_at: float
    how: str = "checkin"
    """``checkin`` or ``reid`` (re-found by the opt-in re-id hook)."""
    link_id: str = field(default_factory=lambda: uuid.uuid4().hex)

    def to_json(self) -> str:
        data = asdict(self)
        data["track"] = list(self.track)
        return json.dumps(data, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> TrackLink:
        data = json.loads(text)
        track = data.pop("track")
        return cls(**{**data, "role": Role(data["role"])}, track=TrackKey(track[0], int(track[1])))


@dataclass(frozen=True)
class AuditEntry:
    timestamp: float
    actor: str
    """API key id, ``open`` (no keys configured) or ``system``."""
    action: str
    """``checkin``, ``read``, ``erase``, ``hook``…"""
    subject: str
    """Keyed hash of the member token (never the token itself)."""
    detail: str = ""
    entry_id: str = field(default_factory=lambda: uuid.uuid4().hex)


@dataclass(frozen=True)
class EventQuery:
    start: float | None = None
    end: float | None = None
    types: frozenset[EventType] | None = None
    targets: frozenset[str] | None = None
    camera_id: str | None = None
    limit: int | None = None


class Store(abc.ABC):
    """State shared by workers and API replicas of one store (``store_id``)."""

    store_id: str

    # events -------------------------------------------------------------
    @abc.abstractmethod
    def write_events(self, events: Sequence[Event]) -> int:
        """Persist events idempotently (keyed by ``event_id``); returns how many were new.

        Returning means the events are durable (acknowledged).
        """

    @abc.abstractmethod
    def query_events(self, query: EventQuery) -> list[Event]:
        """Events in timestamp order."""

    @abc.abstractmethod
    def delete_events_before(self, timestamp: float) -> int:
        """Retention purge; returns how many were deleted."""

    @abc.abstractmethod
    def delete_events_with_attribute(self, key: str, value: str) -> int:
        """Erase events whose ``attributes[key] == value`` (e.g. a member token)."""

    @abc.abstractmethod
    def tail_events(
        self, last_id: str | None, block_ms: int = 0, limit: int = 100
    ) -> tuple[str, list[Event]]:
        """New events written after the cursor ``last_id``, for live feeds (SSE).

        Returns ``(cursor, events)`` in write order; pass ``cursor`` back on the
        next call. ``last_id=None`` means "from now": only events written after
        this call are returned. ``"0"`` means from the oldest stored event.
        Waits up to ``block_ms`` milliseconds when nothing new is there yet
        (``0`` = do not wait) and then returns ``(last cursor, [])``. Cursors are
        opaque strings; a malformed one raises ``ValueError``. An event written
        twice appears once; erased events are skipped.

        Example (SSE loop)::

            cursor, _ = store.tail_events(None)
            while True:
                cursor, events = store.tail_events(cursor, block_ms=1000)
                for event in events:
                    send(event.to_json())
        """

    def count_events(
        self, start: float, end: float, bucket_seconds: int = 60
    ) -> dict[tuple[float, str, str], int]:
        """Event counts per ``(bucket_start, type, target)`` in ``[start, end)``.

        Buckets are aligned to multiples of ``bucket_seconds`` since the Unix epoch.
        Back-ends may answer from pre-aggregated counters (Redis keeps per-minute
        counters); this default counts stored events.
        """
        check_bucket_seconds(bucket_seconds)
        counts: dict[tuple[float, str, str], int] = {}
        for event in self.query_events(EventQuery(start=start, end=end)):
            bucket = float(int(event.timestamp // bucket_seconds) * bucket_seconds)
            key = (bucket, str(event.type), event.target)
            counts[key] = counts.get(key, 0) + 1
        return counts

    def event_facts(self, start: float, end: float, types: frozenset[EventType]) -> list[EventFact]:
        """Timestamp, type, target and direction of the events of ``types`` in ``[start, end)``.

        For aggregates (``/v1/counts``) over many events; back-ends may read these
        columns without building whole events (SQLite does). This default does.
        """
        facts = []
        for e in self.query_events(EventQuery(start=start, end=end, types=types)):
            direction = e.attributes.get("direction")
            attributes = {} if direction is None else {"direction": str(direction)}
            facts.append(EventFact(e.timestamp, str(e.type), e.target, attributes))
        return facts

    def events_version(self) -> str | None:
        """A token that changes whenever stored events change (write, erasure, purge).

        Readers cache aggregates per version (:class:`~.read_cache.ReadCache`);
        ``None`` means this back-end cannot tell (callers then cache by age only).
        """
        return None

    # live occupancy -------------------------------------------------------
    @abc.abstractmethod
    def set_occupancy(
        self,
        camera_id: str,
        counts: Mapping[str, int],
        timestamp: float,
        approaching: Mapping[str, int] | None = None,
    ) -> None:
        """Replace the live counts of the zones of one camera.

        ``approaching``: people predicted to enter each zone soon (a zone left out: 0).
        The version changes when a count or an approaching count changes.
        """

    @abc.abstractmethod
    def get_occupancy(self) -> tuple[str, dict[str, ZoneOccupancy]]:
        """(version, counts per zone). The version changes whenever any count changes."""

    # transactions (till) ---------------------------------------------------
    @abc.abstractmethod
    def add_transactions(self, buckets: Mapping[float, int]) -> None:
        """Set the transaction count of each bucket start (Unix seconds)."""

    @abc.abstractmethod
    def get_transactions(self, start: float, end: float) -> dict[float, int]: ...

    # floor heatmap -------------------------------------------------------------
    @abc.abstractmethod
    def add_heatmap(self, cells: Sequence[HeatmapCell]) -> None:
        """Add each cell's person-seconds to what is stored for its (camera, hour, x, y).

        Sums, never replaces: workers publish what they accumulated since their last
        publish. ``ValueError`` (nothing stored) for a negative or non-finite value or an
        hour that is not a multiple of :data:`HEATMAP_BUCKET_S`.
        """

    @abc.abstractmethod
    def get_heatmap(
        self, start: float, end: float, camera_id: str | None = None
    ) -> list[HeatmapCell]:
        """The stored cells of the hours starting in ``[start, end)`` (one camera, or all),
        sorted by camera, hour, y, x."""

    @abc.abstractmethod
    def delete_heatmap_before(self, timestamp: float) -> int:
        """Retention purge: delete the hours that ended by ``timestamp``; returns how many
        cells were deleted."""

    # camera worker states ----------------------------------------------------
    @abc.abstractmethod
    def put_camera_report(self, report: CameraReport) -> None:
        """Replace one camera's published status (workers call this every few seconds)."""

    @abc.abstractmethod
    def get_camera_reports(self) -> dict[str, CameraReport]:
        """The latest report of every camera of the store, whichever process sent it."""

    # layout and keys ---------------------------------------------------------
    @abc.abstractmethod
    def get_layout(self) -> str | None:
        """The layout JSON shared by every replica, if one was stored."""

    @abc.abstractmethod
    def put_layout(self, layout_json: str) -> None: ...

    @abc.abstractmethod
    def put_api_key(self, record: ApiKeyRecord) -> None: ...

    @abc.abstractmethod
    def find_api_key(self, key_hash: str) -> ApiKeyRecord | None: ...

    @abc.abstractmethod
    def list_api_keys(self) -> list[ApiKeyRecord]: ...

    @abc.abstractmethod
    def delete_api_key(self, key_id: str) -> bool: ...

    # opt-in: consent, check-ins, track links, audit log -------------------------
    @abc.abstractmethod
    def optin_subject_key(self) -> bytes:
        """The store's secret key that names members in the audit log (made on first use,
        then the same for every process of the store)."""

    @abc.abstractmethod
    def record_consent(self, record: ConsentRecord) -> None:
        """Append a consent given or renewed (``ValueError`` for a malformed token)."""

    @abc.abstractmethod
    def consents(self, member_token: str) -> list[ConsentRecord]:
        """Consent history of a member, oldest first."""

    @abc.abstractmethod
    def add_checkin(self, checkin: CheckIn) -> None:
        """Store a check-in (replaces one with the same ``checkin_id``)."""

    @abc.abstractmethod
    def checkins(
        self, start: float | None = None, end: float | None = None, member_token: str | None = None
    ) -> list[CheckIn]:
        """Check-ins with ``start <= timestamp < end`` (``None``: open), oldest first."""

    @abc.abstractmethod
    def add_link(self, link: TrackLink) -> None:
        """Store a track link (replaces one with the same ``link_id``)."""

    @abc.abstractmethod
    def links(
        self, start: float | None = None, end: float | None = None, member_token: str | None = None
    ) -> list[TrackLink]:
        """Links made with ``start <= linked_at < end`` (``None``: open), oldest first."""

    @abc.abstractmethod
    def erase_member(self, member_token: str) -> int:
        """Delete the member's consents, check-ins and links without a trace in the stored
        data; returns how many records went. Audit entries (keyed hashes) stay."""

    @abc.abstractmethod
    def append_audit(self, entry: AuditEntry) -> None: ...

    @abc.abstractmethod
    def audit_log(self, start: float | None = None, subject: str | None = None) -> list[AuditEntry]:
        """Audit entries from ``start`` on (of one ``subject``, or all), oldest first."""

    @abc.abstractmethod
    def delete_checkins_before(self, timestamp: float) -> int:
        """Retention: drop check-ins and links older than ``timestamp``; returns how many."""

    @abc.abstractmethod
    def delete_consents_before(self, timestamp: float) -> int:
        """Retention: drop consent records given before ``timestamp``; returns how many."""

    @abc.abstractmethod
    def delete_audit_before(self, timestamp: float) -> int:
        """Retention: drop audit entries older than ``timestamp``; returns how many."""

    # live floor tracks across processes (jredis) -----------------------------
    def live_floor(self, worker: str) -> LiveFloorLink | None:
        """A link that shares this process's cameras' live floor tracks with the other
        worker processes of the store (see :mod:`storesense.api.store.live_floor`), signed
        ``worker``; None for a store of one process (SQLite)."""
        return None

    # health -----------------------------------------------------------------
    @abc.abstractmethod
    def ping(self) -> bool: ...

    @abc.abstractmethod
    def close(self) -> None: ...


def check_occupancy_counts(
    counts: Mapping[str, int], approaching: Mapping[str, int] | None
) -> dict[str, tuple[int, int]]:
    """``{zone: (count, approaching)}`` for :meth:`Store.set_occupancy`, or ``ValueError``.

    >>> check_occupancy_counts({"door": 2}, {"door": 1, "elsewhere": 3})
    {'door': (2, 1)}
    """
    approaching = approaching or {}
    checked = {}
    for zone_id, count in counts.items():
        soon = int(approaching.get(zone_id, 0))
        if int(count) < 0 or soon < 0:
            raise ValueError(f"occupancy of zone {zone_id!r} must not be negative: {count}, {soon}")
        checked[zone_id] = (int(count), soon)
    return checked


def check_heatmap_cells(cells: Sequence[HeatmapCell]) -> None:
    """``ValueError`` unless every cell is well formed (:meth:`Store.add_heatmap`).

    >>> check_heatmap_cells([HeatmapCell("cam1", 7200.0, 3, -1, 1.5)])
    >>> check_heatmap_cells([HeatmapCell("cam1", 7201.0, 3, -1, 1.5)])
    Traceback (most recent call last):
    ValueError: heatmap hour 7201.0 is not a multiple of 3600 s
    """
    for cell in cells:
        if not (math.isfinite(cell.person_seconds) and cell.person_seconds >= 0):
            raise ValueError(
                f"heatmap person_seconds must be finite and >= 0, got {cell.person_seconds}"
            )
        if not math.isfinite(cell.hour) or cell.hour % HEATMAP_BUCKET_S:
            raise ValueError(f"heatmap hour {cell.hour} is not a multiple of {HEATMAP_BUCKET_S} s")
        if not cell.camera_id:
            raise ValueError("heatmap cell without a camera id")


def check_tail_args(block_ms: int, limit: int) -> None:
    """``ValueError`` unless ``block_ms >= 0`` and ``limit > 0`` (:meth:`Store.tail_events`)."""
    if block_ms < 0 or limit <= 0:
        raise ValueError(f"block_ms must be >= 0 and limit > 0; got {block_ms}, {limit}")


def check_bucket_seconds(bucket_seconds: int) -> None:
    """``ValueError`` unless ``bucket_seconds > 0`` (:meth:`Store.count_events`)."""
    if bucket_seconds <= 0:
        raise ValueError(f"bucket_seconds must be positive, got {bucket_seconds}")


def validate_store_id(store_id: str) -> str:
    """Store ids name Redis keys (``ss:{id}:…``): 1-64 characters, no braces or controls."""
    if not (
        isinstance(store_id, str)
        and 0 < len(store_id) <= 64
        and store_id.isprintable()
        and not set(store_id) & set("{}")
    ):
        raise ValueError(
            f"store_id must be 1-64 printable characters without '{{' or '}}'; got {store_id!r}"
        )
    return store_id


def validate_token(token: str) -> str:
    """Member tokens are the store system's pseudonyms: 1-128 printable ASCII, no spaces.

    >>> validate_token("m-42")
    'm-42'
    """
    if not (
        isinstance(token, str)
        and 0 < len(token) <= MAX_TOKEN_LENGTH
        and all(c.isascii() and c.isprintable() and not c.isspace() for c in token)
    ):
        raise ValueError(
            f"member token must be 1-{MAX_TOKEN_LENGTH} printable ASCII characters without spaces"
        )
    return token


def validate_events(events: Sequence[Event]) -> None:
    """Reject events no store can index: a timestamp that is not a finite number."""
    for event in events:
        if not math.isfinite(event.timestamp):
            raise ValueError(
                f"event {event.event_id} has a non-finite timestamp {event.timestamp!r}"
            )


def events_matching(events: Iterable[Event], query: EventQuery) -> list[Event]:
    """Apply an :class:`EventQuery` in memory (shared by back-ends that filter late)."""
    selected = [
        e
        for e in events
        if (query.start is None or e.timestamp >= query.start)
        and (query.end is None or e.timestamp < query.end)
        and (query.types is None or e.type in query.types)
        and (query.targets is None or e.target in query.targets)
        and (query.camera_id is None or e.camera_id == query.camera_id)
    ]
    selected.sort(key=lambda e: (e.timestamp, e.event_id))
    return selected[: query.limit] if query.limit is not None else selected
