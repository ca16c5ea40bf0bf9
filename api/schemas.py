"""Request and response bodies of the HTTP API (pydantic models, no logic).

Example:
    >>> TransactionsIn.model_validate({"buckets": [{"start": "2024-05-01T10:00:00Z", "count": 4}]}
    ...                               ).buckets[0].start
    1714557600.0
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from storesense.api.auth import parse_scopes


def parse_time(value: object) -> float:
    """Unix seconds from a number, a numeric string or ISO 8601 (naive = UTC).

    >>> parse_time("1714557600"), parse_time("2024-05-01T10:00:00+00:00")
    (1714557600.0, 1714557600.0)
    """
    if isinstance(value, bool):
        raise ValueError("expected Unix seconds or ISO 8601, got a boolean")
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, str):
        text = value.strip()
        try:
            return float(text)
        except ValueError:
            pass
        try:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(
                f"{value!r} is neither Unix seconds nor ISO 8601 (e.g. 2024-05-01T10:00:00Z)"
            ) from None
    else:
        raise ValueError(f"expected Unix seconds or ISO 8601, got {type(value).__name__}")
    if moment.tzinfo is None:
        from datetime import UTC

        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


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
    camera: str
    count: int = Field(ge=0)
    updated_at: float | None = Field(
        description="Unix seconds of the frame that produced the count; null before the first"
    )
    version: str = Field(description="occupancy version (also the ETag)")


class OccupancyOut(_Out):
    version: str = Field(description="changes whenever any count changes (also the ETag)")
    zones: dict[str, ZoneOccupancyOut]


class EventOut(_Out):
    """An event as the API shows it; ``track_id`` only for admin keys."""

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

    start: float = Field(description="bucket start: Unix seconds or ISO 8601")
    count: int = Field(ge=0)

    @field_validator("start", mode="before")
    @classmethod
    def _time(cls, value: object) -> float:
        return parse_time(value)


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


class LayoutProblem(_Out):
    path: str
    message: str


class LayoutErrorOut(_Out):
    detail: list[LayoutProblem]


class CameraDebugIn(BaseModel):
    """``PUT /v1/cameras/{id}/debug``: turn pixelated debug snapshots on or off."""

    model_config = ConfigDict(extra="forbid")

    snapshots: bool = Field(description="true: keep the latest frame for /snapshot; false: off")
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
