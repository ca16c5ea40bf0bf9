"""Where and how to publish: the broker URL and the MQTT options of ``storesense serve``.

Example:
    >>> options = MqttOptions.from_url("mqtts://shop:s3cret@broker.local/signage?keepalive=20")
    >>> options.host, options.port, options.tls, options.prefix, options.keepalive_s
    ('broker.local', 8883, True, 'signage', 20)
    >>> options.safe_url
    'mqtts://shop:***@broker.local:8883/signage'
    >>> MqttOptions.from_url("http://broker")
    Traceback (most recent call last):
    ValueError: MQTT URL 'http://broker' must start with mqtt:// or mqtts:// (e.g. mqtt://localhost:1883)
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

DEFAULT_PREFIX = "storesense"
DEFAULT_PORTS = {"mqtt": 1883, "mqtts": 8883}
_URL_OPTIONS = ("keepalive", "client_id")
_WILDCARDS = ("+", "#", "\x00")


def check_topic_prefix(prefix: str) -> str:
    """A topic prefix: one or more non-empty levels, no wildcards.

    >>> check_topic_prefix("acme/storesense")
    'acme/storesense'
    >>> check_topic_prefix("a/#")
    Traceback (most recent call last):
    ValueError: topic prefix 'a/#' must not contain '+', '#' or NUL
    """
    if any(char in prefix for char in _WILDCARDS):
        raise ValueError(f"topic prefix {prefix!r} must not contain '+', '#' or NUL")
    if not prefix or any(level == "" for level in prefix.split("/")):
        raise ValueError(f"topic prefix {prefix!r} must not be empty or have empty levels")
    return prefix


class MqttOptions(BaseModel):
    """One broker connection (built from ``--mqtt URL`` and the ``--mqtt-*`` options)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    host: str = Field(min_length=1)
    port: int = Field(1883, ge=1, le=65535)
    tls: bool = Field(False, description="mqtts://: TLS to the broker")
    username: str | None = None
    password: str | None = Field(None, repr=False)
    prefix: str = Field(DEFAULT_PREFIX, description="first topic level(s)")
    client_id: str = Field("", description="empty: one made up per process by the client")
    keepalive_s: int = Field(30, ge=5, le=3600, description="MQTT keep-alive interval")
    ca_file: Path | None = Field(None, description="mqtts: CA bundle (default: system CAs)")
    cert_file: Path | None = Field(None, description="mqtts: client certificate (PEM)")
    key_file: Path | None = Field(None, description="mqtts: client certificate's key (PEM)")
    tls_insecure: bool = Field(
        False, description="mqtts: do not check the broker's host name (self-signed tests only)"
    )
    discovery: bool = Field(False, description="announce sensors to Home Assistant")
    discovery_prefix: str = Field("homeassistant", description="Home Assistant's topic prefix")
    occupancy_max_rate: float = Field(
        5.0, gt=0, le=1000, description="most occupancy messages per second per zone"
    )
    queue_size: int = Field(
        1000, ge=10, le=1_000_000, description="events waiting for the broker (then dropped)"
    )

    @field_validator("prefix", "discovery_prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        return check_topic_prefix(value)

    @field_validator("ca_file", "cert_file", "key_file")
    @classmethod
    def _readable(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_file():
            raise ValueError(f"no such file: {value}")
        return value

    @model_validator(mode="after")
    def _tls_options_need_tls(self) -> MqttOptions:
        tls_only = {
            "ca_file": self.ca_file,
            "cert_file": self.cert_file,
            "key_file": self.key_file,
            "tls_insecure": self.tls_insecure or None,
        }
        given = [name for name, value in tls_only.items() if value is not None]
        if given and not self.tls:
            raise ValueError(f"{', '.join(given)} need an mqtts:// URL")
        if self.key_file is not None and self.cert_file is None:
            raise ValueError("key_file needs cert_file (the client certificate)")
        if self.password is not None and self.username is None:
            raise ValueError("a password needs a user name (mqtt://user:password@host)")
        return self

    @classmethod
    def from_url(cls, url: str, **options: object) -> MqttOptions:
        """``mqtt[s]://[user[:password]@]host[:port][/prefix][?keepalive=S&client_id=ID]``.

        ``options`` set the other fields (TLS files, discovery, rate, queue size).
        Raises ``ValueError`` with a one-line reason.
        """
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as exc:
            raise ValueError(f"MQTT URL {_mask(url)!r}: {exc}") from None
        if parts.scheme not in DEFAULT_PORTS:
            raise ValueError(
                f"MQTT URL {_mask(url)!r} must start with mqtt:// or mqtts:// "
                "(e.g. mqtt://localhost:1883)"
            )
        if not parts.hostname:
            raise ValueError(f"MQTT URL {_mask(url)!r} has no host (e.g. mqtt://localhost:1883)")
        if parts.fragment:
            raise ValueError(f"MQTT URL {_mask(url)!r}: remove the '#' part")
        query = parse_qs(parts.query, keep_blank_values=True, strict_parsing=False)
        unknown = sorted(set(query) - set(_URL_OPTIONS))
        if unknown:
            known = ", ".join(_URL_OPTIONS)
            raise ValueError(f"MQTT URL option(s) {', '.join(unknown)} unknown (known: {known})")
        fields: dict[str, object] = {
            "host": parts.hostname,
            "port": DEFAULT_PORTS[parts.scheme] if port is None else port,
            "tls": parts.scheme == "mqtts",
            "username": unquote(parts.username) if parts.username else None,
            "password": unquote(parts.password) if parts.password is not None else None,
        }
        path = unquote(parts.path).strip("/")
        if path:
            fields["prefix"] = path
        if "keepalive" in query:
            fields["keepalive_s"] = query["keepalive"][-1]
        if "client_id" in query:
            fields["client_id"] = query["client_id"][-1]
        try:
            return cls.model_validate({**fields, **options})
        except ValidationError as exc:  # one line, without the input (it holds the password)
            raise ValueError(
                "; ".join(
                    f"{'.'.join(str(p) for p in e['loc']) or 'mqtt'}: "
                    f"{str(e['msg']).removeprefix('Value error, ')}"
                    for e in exc.errors()
                )
            ) from None

    @property
    def safe_url(self) -> str:
        """The URL with the password masked (for logs and messages)."""
        user = ""
        if self.username is not None:
            user = self.username + (":***" if self.password is not None else "") + "@"
        scheme = "mqtts" if self.tls else "mqtt"
        return f"{scheme}://{user}{self.host}:{self.port}/{self.prefix}"


def _mask(url: str) -> str:
    """``url`` with any password replaced by ``***``."""
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
        return url.replace(f":{parts.password}@", ":***@", 1)
    except ValueError:
        return url.split("@")[-1]
