"""Request and response bodies of the HTTP API (pydantic models, no logic).

Example:
    >>> TransactionsIn.model_validate({"buckets": [{"start": "2024-05-01T10:00:00Z", "count": 4}]}
    ...                               ).buckets[0].start
    1714557600.0
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, field_validator
from storesense.api.auth import parse_scopes
from storesense.zones.timemodel import check_count, parse_timestamp, to_unix

parse_time = to_unix
"""Kept for imports: :func:`storesense.zones.timemodel.to_unix` (finite Unix seconds from a
number or ISO 8601); bounded times use :func:`~storesense.zones.timemodel.parse_timestamp`."""


def unix_text(seconds: float) -> str:
    """Unix seconds as text without losing precision: ``1714557600`` or ``1714557600.25``.

    >>> unix_text(1714557600.0), unix_text(1714557600.25)
    ('1714557600', '1714557600.25')
    """
    return str(int(seconds)) if float(seconds).is_integer() else repr(float(seconds))


class _Out(BaseModel):
    model_config = ConfigDict(frozen=True)


class ZoneOccupancyOut(_Out):
    zone: str
    camera: str | None = Field(
        description="the camera the zone is drawn in; null for a store-wide floor zone "
        "(counted over every camera with a homography, each person once)"
    )
    count: int = Field(ge=0)
    approaching: int = Field(
        0, ge=0, description="people predicted to enter the zone within its approach_seconds"
    )
    updated_at: float | None = Field(
        description="Unix seconds of the frame that produced the count; null before the first"
    )
    version: str = Field(description="occupancy version (also the ETag)")


class StoreOccupancyOut(_Out):
    count: int = Field(
        ge=0,
        description="people in the store now over every camera: one per person where cameras "
        "with homographies overlap on the floor plan, the people of cameras without one added "
        "as they are",
    )
    updated_at: float | None = Field(
        description="Unix seconds of the frame that produced the count; null before the first"
    )


class OccupancyOut(_Out):
    version: str = Field(description="changes whenever any count changes (also the ETag)")
    zones: dict[str, ZoneOccupancyOut]
    store: StoreOccupancyOut = Field(
        default_factory=lambda: StoreOccupancyOut(count=0, updated_at=None),
        description="store-wide people now (published by the camera workers)",
    )


class EventOut(_Out):
    """An event as the API shows it, built by
    :func:`storesense.api.privacy.redaction.event_for_scope`: ``track_id`` and per-person
    attributes (``member``…) only for admin keys."""

    event_id: str
    type: str
    camera_id: str
    target: str
    timestamp: float
    attributes: dict[str, Any] = Field(default_factory=dict)
    track_id: int | None = None


class CountRow(_Out):
    bucket_start: float
    bucket_start_iso: str
    target: str
    kind: str = Field(description="'zone' or 'line'")
    measure: str = Field(description="zone: 'entries'/'exits'; line: 'in'/'out'")
    count: int | None = Field(description="null when suppressed by k-anonymity")


class CountsOut(_Out):
    start: float
    end: float
    bucket: str
    timezone: str
    k_anonymity: int
    rows: list[CountRow]


class TransactionBucketIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    start: float = Field(
        description="bucket start: Unix seconds or ISO 8601, from 2000-01-01 to now + 1 day"
    )
    count: int = Field(ge=0, le=1_000_000_000)

    @field_validator("start", mode="before")
    @classmethod
    def _time(cls, value: object) -> float:
        return parse_timestamp(value, what="start")

    @field_validator("count", mode="before")
    @classmethod
    def _count(cls, value: object) -> int:
        return check_count(value)


class TransactionsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    buckets: list[TransactionBucketIn] = Field(min_length=1, max_length=100_000)


class TransactionsOut(_Out):
    buckets: dict[str, int] = Field(description="bucket start (Unix seconds) → transactions")


class KeyCreateIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    scopes: list[str] = Field(min_length=1)

    @field_validator("scopes")
    @classmethod
    def _known(cls, scopes: list[str]) -> list[str]:
        return sorted(s.value for s in parse_scopes(scopes))


class KeyOut(_Out):
    key_id: str
    name: str
    scopes: list[str]
    created_at: float
    source: Literal["store", "file"] = Field(
        "store",
        description="'store': created through the API or the CLI (DELETE revokes it); "
        "'file': from the --api-keys file, read-only (edit the file and restart)",
    )


class KeyCreatedOut(KeyOut):
    key: str = Field(description="the secret; shown only this once")


class CameraStatusOut(_Out):
    camera_id: str
    state: str = Field(
        description="starting, running, restarting, failed, finished, stopped; "
        "'unassigned' when no worker has reported this camera, "
        "'unknown' when its report is unreadable"
    )
    mode: str = Field(description="'pull' (reads its source) or 'push' (frames are POSTed)")
    frames_processed: int = 0
    restarts: int = 0
    last_frame_time: float | None = None
    last_frame_at: float | None = None
    last_error: str | None = None
    next_restart_at: float | None = None
    fps: float | None = Field(
        None, description="frames processed per second over the last 10 s (0 when idle)"
    )
    frames_dropped: dict[str, int] = Field(
        default_factory=dict,
        description="frames not processed since its process started, per reason: late, "
        "out_of_order, ingest_queue_full, undecodable (as storesense_frames_dropped_total)",
    )
    worker: str | None = Field(None, description="host:pid of the process running it")
    reported_at: float | None = Field(None, description="Unix time of the worker's last report")
    stale: bool = Field(
        False, description="the worker has missed three reports: it may be down or cut off"
    )


class ReadyOut(_Out):
    ready: bool
    store: str = Field(description="'ok' or why the store is unreachable")
    workers: bool = Field(description="whether this process runs camera workers")
    cameras: list[CameraStatusOut]
    reasons: list[str] = Field(
        default_factory=list,
        description="why not ready: the store, or each camera not running (with its error)",
    )


class FrameAcceptedOut(_Out):
    camera_id: str
    capture_time: float
    width: int
    height: int
    dropped_older: bool = Field(description="an older queued frame was dropped to make room")


class Problem(_Out):
    """One thing wrong with a request: where (``body.zones[2].polygon``, ``query.from``;
    empty when it is about the request as a whole) and why."""

    path: str = Field(description="dotted path of the offending field; '' for the request")
    message: str


class ErrorOut(_Out):
    """The body of every 4xx and 5xx answer (docs/reference/errors.md)."""

    detail: str = Field(description="what went wrong and how to fix it, in one sentence")
    errors: list[Problem] = Field(
        default_factory=list,
        description="each problem with its field path (validation errors); may be empty",
    )


LayoutProblem = Problem
"""A problem in a layout (same shape as every other :class:`Problem`)."""
LayoutErrorOut = ErrorOut
"""Kept for imports: layout errors use the one :class:`ErrorOut` shape."""


class CameraDebugIn(BaseModel):
    """``PUT /v1/cameras/{id}/debug``: turn pixelated debug snapshots on or off."""

    model_config = ConfigDict(extra="forbid")

    snapshots: StrictBool = Field(
        description="true: keep the latest frame for /snapshot; false: off"
    )
    ttl_seconds: float = Field(
        600.0, description="snapshots turn off by themselves after this many seconds"
    )

    @field_validator("ttl_seconds")
    @classmethod
    def _positive(cls, value: float) -> float:
        if not value > 0:
            raise ValueError(f"ttl_seconds must be > 0 (snapshots always expire), got {value}")
        return value


class CameraDebugOut(_Out):
    camera_id: str
    snapshots: bool
    expires_at: float | None = Field(description="Unix seconds when snapshots turn off")


# ----------------------------------------------------------------- journeys and funnels
class JourneyPathOut(_Out):
    path: list[str] = Field(description="zone ids in the order visited (a prefix, see docs)")
    visits: int = Field(ge=0)


class JourneysOut(_Out):
    """``GET /v1/journeys``: paths between zones (see docs/guides/journeys.md)."""

    start: float
    end: float
    visits: int = Field(ge=0, description="visits with at least one zone on their path")
    transitions: dict[str, dict[str, int]] = Field(
        description="from zone → to zone → visits that went directly from one to the other; "
        "pairs seen fewer than k times are left out"
    )
    paths: list[JourneyPathOut] = Field(description="most frequent path prefixes first")
    k_anonymity: int = Field(ge=0)
    other_visits: int = Field(
        ge=0, description="visits whose path was seen fewer than k times (folded here)"
    )


class FunnelStageOut(_Out):
    stage: str = Field(description="passersby, entered, engaged, interacted, purchased")
    count: int = Field(ge=0)
    rate: float | None = Field(
        description="count / the previous stage's count; null for the first or after a 0"
    )


class FunnelBucketOut(_Out):
    bucket_start: float
    stages: list[FunnelStageOut]


class FunnelOut(_Out):
    """``GET /v1/funnel``: the store funnel (``purchased`` only when transactions exist)."""

    start: float
    end: float
    timezone: str
    stages: list[FunnelStageOut]
    bounce_rate: float | None = Field(description="1 - engaged / entered; null without footfall")
    buckets: list[FunnelBucketOut]


class FunnelStepOut(_Out):
    step: str = Field(description="a zone id or kind:KIND")
    count: int = Field(ge=0, description="visits that reached this step in order, in time")
    rate: float | None


class CustomFunnelOut(_Out):
    """``GET /v1/funnels/{id}`` and ``GET /v1/funnels?steps=…``."""

    id: str | None = Field(description="the layout's funnel id; null for an ad-hoc one")
    start: float
    end: float
    within_seconds: float
    steps: list[FunnelStepOut]


class DisplayOut(_Out):
    display: str
    exposures: int = Field(ge=0)
    mean_dwell_seconds: float | None
    exposed_reached: int = Field(ge=0)
    exposed_rate: float | None
    unexposed_visits: int = Field(ge=0)
    unexposed_reached: int = Field(ge=0)
    unexposed_rate: float | None
    uplift: float | None = Field(description="exposed_rate - unexposed_rate (not causal)")


class DisplaysOut(_Out):
    """``GET /v1/displays``: exposure and attribution per ``display`` zone."""

    start: float
    end: float
    target: str
    exposure_seconds: float
    attribution_seconds: float
    displays: list[DisplayOut]
    note: str = Field(
        "observational, not causal: exposed visitors may differ from the others",
        description="how to read uplift",
    )


class GroupsOut(_Out):
    """``GET /v1/groups``: footfall as people and as buying units (groups)."""

    start: float
    end: float
    footfall: int = Field(ge=0, description="people in: in-crossings of entrance lines")
    groups: int = Field(ge=0, description="buying units: people who came in together count once")
    mean_group_size: float | None
    transactions: int | None = Field(description="null when none were posted for the range")
    conversion_per_group: float | None = Field(description="transactions / groups")
    conversion_per_person: float | None = Field(description="transactions / footfall")


class HeatmapOut(_Out):
    """``GET /v1/heatmap``: person-seconds per floor cell (metres), summed over the hours
    of the range and the cameras with a homography. Anonymous sums only."""

    start: float
    end: float
    hours_start: float = Field(
        description="start of the first hour bucket summed (hours are the stored resolution)"
    )
    cameras: list[str] = Field(description="cameras summed (those with a homography)")
    cell_m: float = Field(gt=0, description="side of a square cell, metres")
    origin_m: list[float] = Field(
        description="[x, y] of the lower corner of the grid's cell [0, 0] (smallest x and y)"
    )
    shape: list[int] = Field(description="[rows along y, columns along x] of the grid")
    person_seconds: float = Field(ge=0, description="sum of every cell")
    cells: list[list[float]] = Field(
        description="[x_m, y_m, person_seconds] of every non-empty cell (x_m, y_m: its centre)"
    )
