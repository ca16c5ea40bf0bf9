"""Service configuration for ``storesense serve`` and :func:`storesense.api.app.create_app`.

Example:
    >>> s = ServiceSettings(store_url="sqlite:///tmp.db", k_anonymity=3)
    >>> s.host, s.k_anonymity, s.is_loopback
    ('127.0.0.1', 3, True)
"""

from __future__ import annotations

import ipaddress
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from storesense.api.mqtt.config import MqttOptions
from storesense.api.privacy.service import OptInSettings
from storesense.api.store import DEFAULT_STORE_URL

_STORE_SCHEMES = (
    "sqlite://",
    "redis://",
    "rediss://",
    "unix://",
    "redis+cluster://",
    "rediss+cluster://",
)
"""What :func:`~storesense.api.store.open_store` opens (it checks the rest of the URL)."""
MQTT_URL_ENV = "STORESENSE_MQTT_URL"
"""Environment variable ``storesense serve`` takes ``--mqtt`` from when it is not given."""
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})


class BackoffSettings(BaseModel):
    """Exponential back-off of a failing camera worker: ``initial * factor**n`` capped."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    initial_s: float = Field(1.0, gt=0, description="first wait after a failure")
    factor: float = Field(2.0, ge=1.0, description="multiplier per consecutive failure")
    max_s: float = Field(60.0, gt=0, description="longest wait between restarts")
    max_restarts: int | None = Field(
        None, ge=0, description="give up (state 'failed') after this many; None = never"
    )
    healthy_after_s: float = Field(
        30.0, ge=0, description="a run this long resets the back-off to ``initial_s``"
    )

    @model_validator(mode="after")
    def _cap_not_below_initial(self) -> BackoffSettings:
        if self.max_s < self.initial_s:
            raise ValueError(f"max_s ({self.max_s}) must be >= initial_s ({self.initial_s})")
        return self

    def delay(self, consecutive_failures: int) -> float:
        """Seconds to wait before restart number ``consecutive_failures`` (1-based).

        >>> BackoffSettings(initial_s=1, factor=2, max_s=5).delay(3)
        4.0
        """
        if consecutive_failures < 1:
            raise ValueError(f"consecutive_failures must be >= 1, got {consecutive_failures}")
        exponent = min(consecutive_failures - 1, 64)
        return float(min(self.max_s, self.initial_s * self.factor**exponent))


class ServiceSettings(BaseModel):
    """Everything the API and the camera workers of one process need."""

    # Errors never echo the input: URLs may hold passwords (Redis, MQTT).
    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)

    store_url: str = Field(DEFAULT_STORE_URL, description="sqlite:///PATH or redis://…")
    spool_path: Path | None = Field(
        None, description="Redis only: local file where events wait while Redis is unreachable"
    )
    store_id: str | None = Field(
        None, min_length=1, description="store name inside the back-end; default: layout store.id"
    )
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    api_keys_file: Path | None = Field(None, description="JSON/YAML list of hashed keys")
    run_api: bool = True
    run_workers: bool = True
    k_anonymity: int = Field(
        0, ge=0, description="suppress exported buckets counting fewer than k people; 0 = off"
    )
    occupancy_refresh_s: float = Field(
        0.05, gt=0, le=5, description="how often live occupancy is re-read from the store"
    )
    layout_poll_s: float = Field(
        2.0, gt=0, description="how often workers look for a layout changed by another replica"
    )
    camera_report_s: float = Field(
        5.0,
        gt=0,
        description="how often workers publish their cameras' states to the store "
        "(replicas show a camera as stale after three missed reports)",
    )
    heatmap_publish_s: float = Field(
        15.0,
        gt=0,
        description="how often workers add their floor heatmap sums to the store "
        "(cameras with a homography; also at stop and on a layout change)",
    )
    sse_queue_size: int = Field(256, ge=1, description="events buffered per SSE client")
    sse_keepalive_s: float = Field(15.0, gt=0)
    sse_retry_ms: int = Field(
        3000, ge=100, le=600_000, description="reconnect delay suggested to SSE clients (retry:)"
    )
    sse_resume_max: int = Field(
        10_000,
        ge=1,
        description="most missed events replayed to a client reconnecting with Last-Event-ID",
    )
    ingest_queue_size: int = Field(8, ge=1, description="pushed frames buffered per camera")
    max_frame_bytes: int = Field(
        20_000_000, gt=0, description="largest request body (a pushed frame); 413 beyond"
    )
    max_frame_side: int = Field(
        4096,
        ge=16,
        le=65_535,
        description="largest width or height a pushed frame may declare (read from the "
        "image header before decoding); 413 beyond",
    )
    status_print_s: float = Field(
        5.0, ge=0, description="seconds between live-count lines in the terminal; 0 = quiet"
    )
    realtime: bool = Field(True, description="pace file sources at their frame rate")
    source_max_lag_s: float | None = Field(
        0.5,
        ge=0,
        description="with realtime pacing, drop frames (as a live camera does) when the "
        "worker falls this many seconds behind; None = never drop",
    )
    decode_prefetch: int = Field(
        2, ge=0, le=64, description="frames a pulled source decodes ahead on its own thread"
    )
    debug_snapshot_max_ttl_s: float = Field(
        3600.0, gt=0, le=86_400, description="longest an admin may turn debug snapshots on for"
    )
    loop_sources: bool = Field(False, description="replay file sources forever")
    key_cache_s: float = Field(5.0, ge=0, description="how long a verified key is trusted")
    outage_buffer_events: int = Field(
        10_000,
        ge=1,
        description="events a camera keeps in memory while the store is unreachable and "
        "there is no spool (oldest dropped beyond, counted in storesense_events_dropped_total)",
    )
    backoff: BackoffSettings = Field(default_factory=BackoffSettings)
    optin: OptInSettings | None = Field(
        None, description="privacy: retention, opt-in hooks (None = defaults: 30 days, no hooks)"
    )
    mqtt_url: str | None = Field(
        None,
        repr=False,  # it may hold the broker password
        description="publish live data to this broker: `mqtt[s]://[user:pass@]host[:port][/prefix]`",
    )
    mqtt_discovery: bool = Field(False, description="announce sensors to Home Assistant")
    mqtt_ca_file: Path | None = Field(None, description="mqtts: CA bundle (default: system CAs)")
    mqtt_cert_file: Path | None = Field(None, description="mqtts: client certificate (PEM)")
    mqtt_key_file: Path | None = Field(None, description="mqtts: client key (PEM)")
    mqtt_tls_insecure: bool = Field(False, description="mqtts: skip the host name check")
    mqtt_occupancy_max_rate: float = Field(
        5.0, gt=0, le=1000, description="most occupancy messages per second per zone"
    )
    mqtt_queue_size: int = Field(
        1000, ge=10, description="events waiting for a slow or absent broker (then dropped)"
    )

    @field_validator("store_url")
    @classmethod
    def _known_scheme(cls, value: str) -> str:
        if not value.startswith(_STORE_SCHEMES):
            raise ValueError(
                f"store_url {value!r} must start with sqlite:/// or redis:// (e.g. "
                "sqlite:///storesense.db, redis://localhost:6379/0)"
            )
        return value

    @model_validator(mode="after")
    def _something_to_run(self) -> ServiceSettings:
        if not (self.run_api or self.run_workers):
            raise ValueError("--no-api and --no-workers together leave nothing to run")
        return self

    @model_validator(mode="after")
    def _mqtt_options_valid(self) -> ServiceSettings:
        self.mqtt_options()
        return self

    def mqtt_options(self) -> MqttOptions | None:
        """The broker connection, or ``None`` without ``mqtt_url``; ``ValueError`` if bad."""
        if self.mqtt_url is None:
            return None
        return MqttOptions.from_url(
            self.mqtt_url,
            discovery=self.mqtt_discovery,
            ca_file=self.mqtt_ca_file,
            cert_file=self.mqtt_cert_file,
            key_file=self.mqtt_key_file,
            tls_insecure=self.mqtt_tls_insecure,
            occupancy_max_rate=self.mqtt_occupancy_max_rate,
            queue_size=self.mqtt_queue_size,
        )

    @property
    def is_loopback(self) -> bool:
        return is_loopback_host(self.host)


def is_loopback_host(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and ``localhost``.

    >>> is_loopback_host("127.0.0.2"), is_loopback_host("0.0.0.0")
    (True, False)
    """
    if host in LOOPBACK_HOSTS:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
