"""Service configuration for ``storesense serve`` and :func:`storesense.api.app.create_app`.

One root model, :class:`ServiceSettings` (pydantic-settings). :meth:`ServiceSettings.load`
takes each value from the first of: command-line flags, the environment
(``STORESENSE_<FIELD>``, e.g. ``STORESENSE_STORE`` or ``STORESENSE_STORE_URL``,
``STORESENSE_HOST``, ``STORESENSE_PORT``, ``STORESENSE_MQTT_URL``, nested fields with
``__``: ``STORESENSE_BACKOFF__MAX_S``), a settings file (``--config FILE`` or
``STORESENSE_CONFIG``; YAML, JSON or TOML, keys are the field names), the defaults.
The store layout is not a setting: it stays the store's own file (``--layout``).

Example:
    >>> s = ServiceSettings(store_url="sqlite:///tmp.db", k_anonymity=3)
    >>> s.host, s.k_anonymity, s.is_loopback
    ('127.0.0.1', 3, True)
"""

from __future__ import annotations

import ipaddress
import os
import tomllib
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict
from storesense.api.mqtt.config import MqttOptions
from storesense.api.privacy.service import OptInSettings
from storesense.api.store import DEFAULT_STORE_URL
from storesense.api.store.url import parse_store_url
from storesense.zones.config import NESTED_TOO_DEEPLY

ENV_PREFIX = "STORESENSE_"
MQTT_URL_ENV = "STORESENSE_MQTT_URL"
"""Environment variable ``storesense serve`` takes ``--mqtt`` from when it is not given."""
STORE_URL_ENV = "STORESENSE_STORE"
"""Environment variable for the store URL (``STORESENSE_STORE_URL`` works too)."""
CONFIG_ENV = "STORESENSE_CONFIG"
"""Environment variable naming the settings file when ``--config`` is not given."""
PROVIDER_SHORTCUTS: dict[str, list[str]] = {
    "cpu": ["CPUExecutionProvider"],
    "cuda": ["CUDAExecutionProvider", "CPUExecutionProvider"],
}
"""``--provider`` names besides ``auto`` and onnxruntime's own provider names."""
_FILE_VALUES: ContextVar[Mapping[str, Any] | None] = ContextVar(
    "storesense_settings_file", default=None
)
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})


MAX_PERIOD_S = 86_400.0
"""Longest period, wait or cache time a setting may give: a day. Beyond ``threading``'s
``TIMEOUT_MAX`` (about 292 years; ``inf`` included) a wait raises ``OverflowError`` and the
thread that waits (status line, layout poll, camera reports…) dies."""


class BackoffSettings(BaseModel):
    """Exponential back-off of a failing camera worker: ``initial * factor**n`` capped."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    initial_s: float = Field(1.0, gt=0, le=MAX_PERIOD_S, description="first wait after a failure")
    factor: float = Field(2.0, ge=1.0, le=10.0, description="multiplier per consecutive failure")
    max_s: float = Field(60.0, gt=0, le=MAX_PERIOD_S, description="longest wait between restarts")
    max_restarts: int | None = Field(
        None, ge=0, description="give up (state 'failed') after this many; None = never"
    )
    healthy_after_s: float = Field(
        30.0,
        ge=0,
        le=MAX_PERIOD_S,
        description="a run this long resets the back-off to ``initial_s``",
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


def read_settings_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The mapping in a YAML/JSON (``.yaml``, ``.yml``, ``.json``) or TOML settings file.

    ``ValueError`` (one line) for a file that cannot be read or is not a mapping;
    ``store`` is accepted for ``store_url``.
    """
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ValueError(f"settings file {file}: cannot read it ({exc.strerror})") from None
    try:
        if file.suffix.lower() == ".toml":
            data: Any = tomllib.loads(text)
        else:
            data = yaml.safe_load(text)
    except (tomllib.TOMLDecodeError, yaml.YAMLError) as exc:
        reason = (str(exc).strip().splitlines() or ["syntax error"])[0]
        raise ValueError(f"settings file {file}: {reason}") from None
    except RecursionError:
        raise ValueError(f"settings file {file}: {NESTED_TOO_DEEPLY}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ValueError(f"settings file {file}: must be a mapping of setting: value")
    if "store" in data:
        data.setdefault("store_url", data.pop("store"))
    return data


class _SettingsFileSource(PydanticBaseSettingsSource):
    """The values of the settings file given to :meth:`ServiceSettings.load`."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return (_FILE_VALUES.get() or {}).get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(_FILE_VALUES.get() or {})


class _StoreEnvSource(PydanticBaseSettingsSource):
    """``STORESENSE_STORE``, the short name of ``STORESENSE_STORE_URL``."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return os.environ.get(STORE_URL_ENV), field_name, False

    def __call__(self) -> dict[str, Any]:
        value = os.environ.get(STORE_URL_ENV)
        return {} if value is None else {"store_url": value}


@contextmanager
def _file_values(values: Mapping[str, Any]) -> Iterator[None]:
    token = _FILE_VALUES.set(values)
    try:
        yield
    finally:
        _FILE_VALUES.reset(token)


class ServiceSettings(BaseSettings):
    """Everything the API and the camera workers of one process need.

    Built directly, it takes keyword arguments first, then ``STORESENSE_…`` environment
    variables, then the defaults; :meth:`load` adds the settings file.
    """

    # Errors never echo the input: URLs may hold passwords (Redis, MQTT).
    model_config = SettingsConfigDict(
        frozen=True,
        extra="forbid",
        hide_input_in_errors=True,
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
    )

    store_url: str = Field(DEFAULT_STORE_URL, description="sqlite:///PATH or redis://…")
    spool_path: Path | None = Field(
        None, description="Redis only: local file where events wait while Redis is unreachable"
    )
    store_id: str | None = Field(
        None, min_length=1, description="store name inside the back-end; default: layout store.id"
    )
    host: str = Field(
        "127.0.0.1",
        description="address the HTTP API listens on; off loopback it refuses to start "
        "without API keys",
    )
    port: int = Field(
        8000, ge=0, le=65535, description="TCP port of the HTTP API (0: any free one)"
    )
    api_keys_file: Path | None = Field(None, description="JSON/YAML list of hashed keys")
    run_api: bool = Field(True, description="serve the HTTP API (false: `--no-api`, workers only)")
    run_workers: bool = Field(
        True,
        description="run the camera workers (false: `--no-workers`, an API replica); "
        "at least one of run_api and run_workers",
    )
    k_anonymity: int = Field(
        0, ge=0, description="suppress exported buckets counting fewer than k people; 0 = off"
    )
    occupancy_refresh_s: float = Field(
        0.05, gt=0, le=5, description="how often live occupancy is re-read from the store"
    )
    layout_poll_s: float = Field(
        2.0,
        gt=0,
        le=MAX_PERIOD_S,
        description="how often workers look for a layout changed by another replica",
    )
    camera_report_s: float = Field(
        5.0,
        gt=0,
        le=MAX_PERIOD_S,
        description="how often workers publish their cameras' states to the store "
        "(replicas show a camera as stale after three missed reports)",
    )
    heatmap_publish_s: float = Field(
        15.0,
        gt=0,
        le=MAX_PERIOD_S,
        description="how often workers add their floor heatmap sums to the store "
        "(cameras with a homography; also at stop and on a layout change)",
    )
    sse_queue_size: int = Field(256, ge=1, description="events buffered per SSE client")
    sse_keepalive_s: float = Field(
        15.0,
        gt=0,
        le=MAX_PERIOD_S,
        description="seconds of silence after which an SSE stream sends a keep-alive comment "
        "(so proxies and browsers keep the connection open)",
    )
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
        5.0,
        ge=0,
        le=MAX_PERIOD_S,
        description="seconds between live-count lines in the terminal; 0 = quiet",
    )
    realtime: bool = Field(True, description="pace file sources at their frame rate")
    source_max_lag_s: float | None = Field(
        0.5,
        ge=0,
        le=MAX_PERIOD_S,
        description="with realtime pacing, drop frames (as a live camera does) when the "
        "worker falls this many seconds behind; None = never drop",
    )
    decode_prefetch: int = Field(
        2, ge=0, le=64, description="frames a pulled source decodes ahead on its own thread"
    )
    store_write_s: float = Field(
        0.25,
        ge=0,
        le=5,
        description="a camera writes its events and zone counts to the store at most this "
        "often (one write of each per period, the latest counts; 0: every frame); the live "
        "sink (MQTT) still gets every change at once",
    )
    opencv_threads: int | None = Field(
        1,
        ge=0,
        le=256,
        description="cv2.setNumThreads when the camera workers start (decode, resize): 1 "
        "keeps OpenCV's thread pool from competing with the detector; None leaves "
        "OpenCV's default (one thread a core), 0 runs OpenCV on the calling thread",
    )
    debug_snapshot_max_ttl_s: float = Field(
        3600.0, gt=0, le=86_400, description="longest an admin may turn debug snapshots on for"
    )
    loop_sources: bool = Field(False, description="replay file sources forever")
    key_cache_s: float = Field(
        5.0, ge=0, le=MAX_PERIOD_S, description="how long a verified key is trusted"
    )
    outage_buffer_events: int = Field(
        10_000,
        ge=1,
        description="events a camera keeps in memory while the store is unreachable and "
        "there is no spool (oldest dropped beyond, counted in storesense_events_dropped_total)",
    )
    model: str = Field(
        "yolox-nano",
        description="serve: the person detector, a registered model name or an ONNX file",
    )
    input_size: int | None = Field(
        None,
        ge=32,
        le=4096,
        description="serve: the detector's square input side in pixels; None = the model's "
        "own (a model with a fixed input accepts only that)",
    )
    provider: str = Field(
        "cpu",
        description="serve: onnxruntime execution provider: cpu, cuda (then CPU), auto (the "
        "best available) or an onnxruntime provider name (e.g. OpenVINOExecutionProvider)",
    )
    backoff: BackoffSettings = Field(
        default_factory=BackoffSettings, description="restart delays of a failing camera worker"
    )
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
        parse_store_url(value)  # one parser for every store URL (ValueError if bad)
        return value

    @field_validator("model")
    @classmethod
    def _known_model(cls, value: str) -> str:
        from storesense.models.registry import REGISTRY, ModelFormat

        detectors = sorted(
            name
            for name, spec in REGISTRY.items()
            if spec.format in (ModelFormat.YOLOX, ModelFormat.YOLOV8)
        )
        if value in REGISTRY and value not in detectors:
            raise ValueError(f"{value!r} is not a detector (detectors: {', '.join(detectors)})")
        if value not in REGISTRY and not Path(value).is_file():
            raise ValueError(
                f"{value!r} is neither a registered detector ({', '.join(detectors)}) "
                "nor an existing ONNX file"
            )
        return value

    @field_validator("provider")
    @classmethod
    def _known_provider(cls, value: str) -> str:
        import onnxruntime as ort

        if value in PROVIDER_SHORTCUTS or value == "auto" or value in ort.get_all_providers():
            return value
        raise ValueError(
            f"unknown execution provider {value!r}: use cpu, cuda, auto or an onnxruntime "
            "provider name such as CUDAExecutionProvider"
        )

    def execution_providers(self) -> list[str] | str:
        """What :class:`~storesense.vision.detector.Detector` takes for ``provider``.

        >>> ServiceSettings(provider="cuda").execution_providers()
        ['CUDAExecutionProvider', 'CPUExecutionProvider']
        """
        if self.provider == "auto":
            return "auto"
        return list(PROVIDER_SHORTCUTS.get(self.provider, [self.provider]))

    @classmethod
    def load(
        cls,
        flags: Mapping[str, Any] | None = None,
        config_file: str | os.PathLike[str] | None = None,
    ) -> ServiceSettings:
        """Settings from ``flags`` > environment > settings file > defaults.

        ``config_file`` defaults to ``$STORESENSE_CONFIG``; ``ValueError`` for a file
        that cannot be read, ``pydantic.ValidationError`` for bad values.

        >>> ServiceSettings.load({"port": 9000}).port
        9000
        """
        path = config_file if config_file is not None else os.environ.get(CONFIG_ENV) or None
        values = read_settings_file(path) if path is not None else {}
        with _file_values(values):
            return cls(**dict(flags or {}))

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (
            init_settings,
            env_settings,
            _StoreEnvSource(settings_cls),
            _SettingsFileSource(settings_cls),
        )

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
