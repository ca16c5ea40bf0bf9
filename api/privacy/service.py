"""The opt-in service: check-ins, erasure, member records, aggregates — one object per store.

It ties the :class:`Store` (consent, check-ins, links, the audit log and
member-attributed events), the :class:`ConsentRegistry` (audit names, staff tracks,
member metrics), the :class:`RecentTrackIndex` (which track was where) and the
:class:`HookDispatcher` (visits and hooks) together. The API
router and the camera workers both hold the same instance.

Camera worker, once per frame, after the zone engine and before writing events::

    events = optin.on_frame(frame.camera_id, tracks, events, image=frame.image, now=unix_ts)

Example:
    >>> from storesense.api.store.sqlite import SQLiteStore
    >>> store = SQLiteStore(":memory:", "s1")
    >>> optin = OptInService(store)
    >>> optin.check_in(CheckInRequest(member_token="m-42", camera_id="cam1",
    ...                                timestamp=1714557600.0),
    ...                actor="k_1").outcome
    <LinkOutcome.NO_TRACK: 'no_track'>
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import numpy.typing as npt
import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from storesense.api.privacy.consent import (
    CheckIn,
    ConsentRecord,
    ConsentRegistry,
    LinkOutcome,
    MemberAggregates,
    Role,
    TrackKey,
    TrackLink,
    validate_token,
)
from storesense.api.privacy.hooks import (
    MEMBER_ATTRIBUTE,
    HookDispatcher,
    HookSettings,
    Reidentifier,
    load_hooks,
)
from storesense.api.privacy.linker import RecentTrackIndex, zone_polygons
from storesense.api.privacy.retention import DAY_SECONDS, RetentionLoop, RetentionPolicy
from storesense.api.store.base import Store
from storesense.vision.detections import Tracks
from storesense.zones.config import NESTED_TOO_DEEPLY, syntax_error_message
from storesense.zones.events import Event
from storesense.zones.timemodel import parse_timestamp

__all__ = [
    "CheckInRequest",
    "CheckInResult",
    "ErasureReport",
    "OptInService",
]

logger = logging.getLogger(__name__)

STAFF_LOOKBACK_S = 12 * 3600.0


class OptInSettings(BaseModel):
    """Privacy and opt-in configuration of a server (``ServiceSettings.optin``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    retention: RetentionPolicy = Field(
        default_factory=RetentionPolicy,
        description="how long events, check-ins, consents and audit entries are kept",
    )
    visit_gap_s: float = Field(
        default=120.0,
        ge=0,
        le=DAY_SECONDS,
        description="a member's visit ends when none of their tracks was seen this long",
    )
    checkin_tolerance_s: float = Field(
        default=2.0,
        ge=0,
        le=60,
        description="a check-in matches the frame at most this far from it",
    )
    track_history_s: float = Field(
        default=30.0, gt=0, le=600, description="seconds of track/zone history kept for check-ins"
    )
    hooks: list[HookSettings] = Field(
        default_factory=list, description="recognition hooks: webhook, reid, entry points"
    )

    @classmethod
    def load(cls, path: str | Path) -> OptInSettings:
        """Read a YAML/JSON file of these fields; ``ValueError`` names every problem.

        >>> import tempfile, pathlib
        >>> file = pathlib.Path(tempfile.mkdtemp()) / "privacy.yaml"
        >>> _ = file.write_text("{retention: {days: 14}, hooks: [{name: reid}]}")
        >>> settings = OptInSettings.load(file)
        >>> settings.retention.days, settings.hooks[0].name
        (14.0, 'reid')
        """
        try:
            raw = yaml.safe_load(Path(path).read_text()) or {}
        except OSError as exc:
            raise ValueError(f"{path}: cannot read privacy settings ({exc.strerror})") from None
        except yaml.YAMLError as exc:
            raise ValueError(f"{path}: {syntax_error_message(exc)}") from None
        except RecursionError:
            raise ValueError(f"{path}: {NESTED_TOO_DEEPLY}") from None
        try:
            return cls.model_validate(raw)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'settings'}: {e['msg']}"
                for e in exc.errors()
            )
            raise ValueError(f"{path}: {problems}") from None

    @model_validator(mode="after")
    def _history_covers_tolerance(self) -> OptInSettings:
        if self.track_history_s < self.checkin_tolerance_s:
            raise ValueError(
                f"track_history_s ({self.track_history_s}) must be >= checkin_tolerance_s "
                f"({self.checkin_tolerance_s})"
            )
        return self


class CheckInRequest(BaseModel):
    """What the store's system posts when a member (or staff badge) checks in."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    member_token: str = Field(description="pseudonymous member id from the store's own system")
    camera_id: str | None = Field(None, min_length=1, description="entrance scanner camera")
    zone_id: str | None = Field(None, min_length=1, description="kiosk zone the member stands in")
    timestamp: float | None = Field(
        None, description="Unix seconds or ISO 8601, 2000-01-01 to now + 1 day; default: now"
    )
    role: Role = Role.MEMBER
    policy_version: str = Field(
        "1", min_length=1, max_length=64, description="version of the privacy policy consented to"
    )
    source: str = Field(
        "checkin",
        min_length=1,
        max_length=32,
        description="where consent was given: app, kiosk, badge…",
    )

    @field_validator("member_token")
    @classmethod
    def _valid_token(cls, value: str) -> str:
        return validate_token(value)

    @field_validator("timestamp", mode="before")
    @classmethod
    def _time(cls, value: object) -> float | None:
        return None if value is None else parse_timestamp(value, what="timestamp")

    @model_validator(mode="after")
    def _where(self) -> CheckInRequest:
        if self.camera_id is None and self.zone_id is None:
            raise ValueError("give camera_id or zone_id: where did the check-in happen?")
        return self


@dataclass(frozen=True)
class CheckInResult:
    checkin_id: str
    outcome: LinkOutcome
    candidates: int
    linked_track: TrackKey | None
    message: str

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["outcome"] = self.outcome.value
        data["linked_track"] = (
            {"camera_id": self.linked_track.camera_id, "track_id": self.linked_track.track_id}
            if self.linked_track
            else None
        )
        return data


@dataclass(frozen=True)
class ErasureReport:
    registry_records: int
    events: int
    active_visit: bool


class OptInService:
    """Check-ins, erasure and member data of one store (see module docstring)."""

    def __init__(
        self,
        store: Store,
        linker: RecentTrackIndex | None = None,
        dispatcher: HookDispatcher | None = None,
    ) -> None:
        self.store = store
        self.registry = ConsentRegistry(store)
        self.linker = linker or RecentTrackIndex()
        self.dispatcher = dispatcher or HookDispatcher()
        previous = self.dispatcher.on_link
        self.dispatcher.on_link = self._persist_link if previous is None else previous

        self.retention: RetentionLoop | None = None

    @classmethod
    def for_store(
        cls, store: Store, layout: object, settings: OptInSettings | None = None
    ) -> OptInService:
        """The service of a server: records in the store, hooks loaded, zones from layout."""
        settings = settings or OptInSettings()
        hooks = load_hooks(settings.hooks)
        reidentifier = cast(
            Reidentifier | None,
            next((h for h in hooks if hasattr(h, "search") and hasattr(h, "can_search")), None),
        )
        service = cls(
            store,
            RecentTrackIndex.from_layout(
                layout,
                horizon_s=settings.track_history_s,
                tolerance_s=settings.checkin_tolerance_s,
            ),
            HookDispatcher(hooks, visit_gap_s=settings.visit_gap_s, reidentifier=reidentifier),
        )
        service.retention = RetentionLoop(settings.retention, store)
        return service

    def start(self) -> None:
        """Start the retention purge loop (if configured)."""
        if self.retention is not None:
            self.retention.start()

    def close(self) -> None:
        """Stop purging, let hooks deliver what they queued (the store stays open)."""
        if self.retention is not None:
            self.retention.stop()
        for hook in self.dispatcher.hooks:
            close = getattr(hook, "close", None)
            if callable(close):
                try:
                    close()
                except Exception:
                    logger.exception("closing hook %s failed", type(hook).__name__)

    def set_layout(self, layout: object) -> None:
        """Zones changed: re-read the polygons the check-ins are matched against."""
        fresh = zone_polygons(layout)
        for camera_id in self.linker.camera_ids() | set(fresh):
            self.linker.set_zones(camera_id, fresh.get(camera_id, {}))

    def camera_restarted(self, camera_id: str, now: float) -> None:
        """A camera's tracker started over: its old track ids mean nothing any more."""
        self.linker.forget_camera(camera_id)
        self.dispatcher.drop_camera(camera_id, now)

    def _persist_link(self, link: TrackLink) -> None:
        try:
            self.store.add_link(link)
        except Exception:
            logger.exception("could not persist the link of a track to a member")

    # worker --------------------------------------------------------------------------
    def on_frame(
        self,
        camera_id: str,
        tracks: Tracks,
        events: Sequence[Event],
        *,
        image: npt.NDArray[np.uint8] | None = None,
        now: float | None = None,
    ) -> list[Event]:
        """Per frame: index the tracks' zones, tag and forward member events, end idle visits.

        ``now`` is the frame's Unix time (check-ins use Unix time), default
        ``tracks.timestamp``. Returns the events to write (members' tagged).
        """
        timestamp = tracks.timestamp if now is None else now
        self.linker.observe(camera_id, tracks, timestamp)
        return self.dispatcher.process(camera_id, events, tracks, image, now=timestamp)

    # API -----------------------------------------------------------------------------
    def check_in(self, request: CheckInRequest, actor: str | None) -> CheckInResult:
        """Record consent and the check-in; link the one track in the zone, if exactly one."""
        timestamp = request.timestamp if request.timestamp is not None else time.time()
        candidates = self.linker.tracks_at(
            timestamp, zone_id=request.zone_id, camera_id=request.camera_id
        )
        linked: TrackKey | None = None
        if len(candidates) == 1:
            try:
                self.dispatcher.link(
                    candidates[0], request.member_token, request.role, timestamp=timestamp
                )
                linked = candidates[0]
                outcome, message = LinkOutcome.LINKED, "linked to the one track in place"
            except ValueError:
                outcome = LinkOutcome.AMBIGUOUS
                message = "the track in place is already linked to someone else: linked none"
        elif candidates:
            outcome = LinkOutcome.AMBIGUOUS
            message = f"{len(candidates)} tracks were in place at that time: linked none"
        else:
            outcome, message = LinkOutcome.NO_TRACK, "nobody was seen there at that time"
        checkin = CheckIn(
            request.member_token,
            request.role,
            timestamp,
            request.policy_version,
            request.camera_id,
            request.zone_id,
            outcome,
            linked,
            len(candidates),
        )
        self.store.record_consent(
            ConsentRecord(request.member_token, request.policy_version, timestamp, request.source)
        )
        self.store.add_checkin(checkin)
        self.registry.audit(actor, "checkin", request.member_token, outcome.value)
        return CheckInResult(checkin.checkin_id, outcome, len(candidates), linked, message)

    def member_record(self, member_token: str, actor: str | None) -> dict[str, Any]:
        """Everything kept about a member (admin only); the access is audited."""
        validate_token(member_token)
        self.registry.audit(actor, "read", member_token)
        return {
            "member_token": member_token,
            "consents": [asdict(c) for c in self.store.consents(member_token)],
            "checkins": [
                CheckInResult(c.checkin_id, c.outcome, c.candidates, c.linked_track, "").to_dict()
                | {
                    "timestamp": c.timestamp,
                    "role": c.role.value,
                    "zone_id": c.zone_id,
                    "camera_id": c.camera_id,
                }
                for c in self.store.checkins(member_token=member_token)
            ],
            "links": [
                {
                    "camera_id": x.track.camera_id,
                    "track_id": x.track.track_id,
                    "linked_at": x.linked_at,
                    "how": x.how,
                    "visit_id": x.visit_id,
                }
                for x in self.store.links(member_token=member_token)
            ],
        }

    def erase_member(self, member_token: str, actor: str | None) -> ErasureReport:
        """Forget the member: live links and templates, stored records, attributed events."""
        validate_token(member_token)
        active = self.dispatcher.forget_member(member_token)
        records = self.store.erase_member(member_token)
        events = self.store.delete_events_with_attribute(MEMBER_ATTRIBUTE, member_token)
        self.registry.audit(actor, "erase", member_token, f"records={records} events={events}")
        return ErasureReport(records, events, active)

    def aggregates(self, start: float, end: float) -> MemberAggregates:
        return self.registry.member_aggregates(start, end)

    def staff_track_keys(
        self,
        start: float | None = None,
        end: float | None = None,
        *,
        lookback_s: float = STAFF_LOOKBACK_S,
    ) -> set[tuple[str, int]]:
        """(camera_id, track_id) of staff-badge tracks for ``zones.metrics`` over ``[start, end)``.

        Badges linked up to ``lookback_s`` before ``start`` count too (a shift
        started earlier; its track may still be walking the floor).
        """
        since = None if start is None else start - lookback_s
        return {(k.camera_id, k.track_id) for k in self.registry.staff_track_keys(since, end)}
