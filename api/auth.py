"""API keys with scopes, stored hashed.

A key is ``ss_`` + 43 URL-safe characters (256 random bits); only its SHA-256 is
kept (in the store, or in an ``--api-keys`` file). With that much entropy a
plain hash is enough (no password stretching needed), and the stored hash is
compared in constant time.

Scopes: ``ingest`` (cameras push frames), ``display`` (live occupancy and the
event stream), ``analyst`` (everything ``display`` reads plus counts, metrics,
transactions and exports), ``admin`` (everything, including layout, keys and
track ids).

Example:
    >>> key, record = new_key("till", [Scope.ANALYST])
    >>> record.key_hash == hash_key(key), sorted(s.value for s in expand_scopes(record.scopes))
    (True, ['analyst', 'display'])
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import hmac
import json
import logging
import secrets
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import yaml
from fastapi import HTTPException, Request
from starlette.concurrency import run_in_threadpool
from storesense.api.store.base import ApiKeyRecord, Store, StoreUnavailableError
from storesense.zones.config import NESTED_TOO_DEEPLY, syntax_error_message

KEY_PREFIX = "ss_"

logger = logging.getLogger(__name__)


class Scope(StrEnum):
    INGEST = "ingest"
    DISPLAY = "display"
    ANALYST = "analyst"
    ADMIN = "admin"


_IMPLIED: dict[Scope, frozenset[Scope]] = {
    Scope.INGEST: frozenset({Scope.INGEST}),
    Scope.DISPLAY: frozenset({Scope.DISPLAY}),
    Scope.ANALYST: frozenset({Scope.ANALYST, Scope.DISPLAY}),
    Scope.ADMIN: frozenset(Scope),
}


def parse_scopes(scopes: Iterable[str]) -> frozenset[Scope]:
    """Validate scope names; raises ``ValueError`` naming the bad one."""
    parsed = set()
    for name in scopes:
        try:
            parsed.add(Scope(name))
        except ValueError:
            raise ValueError(
                f"unknown scope {name!r}; choose from {', '.join(s.value for s in Scope)}"
            ) from None
    if not parsed:
        raise ValueError("a key needs at least one scope")
    return frozenset(parsed)


def expand_scopes(scopes: Iterable[str]) -> frozenset[Scope]:
    """The scopes a key effectively holds (``admin`` implies all)."""
    granted: set[Scope] = set()
    for scope in parse_scopes(scopes):
        granted |= _IMPLIED[scope]
    return frozenset(granted)


@functools.lru_cache(maxsize=64)
def _expand_scopes_cached(scopes: frozenset[str]) -> frozenset[Scope]:
    return expand_scopes(scopes)


def generate_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def new_key(name: str, scopes: Iterable[str]) -> tuple[str, ApiKeyRecord]:
    """A fresh key (shown once) and the record to store (hash only)."""
    if not name.strip():
        raise ValueError("a key needs a non-empty name")
    key = generate_key()
    record = ApiKeyRecord(
        key_id="k_" + secrets.token_hex(6),
        name=name.strip(),
        key_hash=hash_key(key),
        scopes=frozenset(s.value for s in parse_scopes(scopes)),
        created_at=time.time(),
    )
    return key, record


def load_key_file(path: Path) -> list[ApiKeyRecord]:
    """Read hashed keys from a JSON or YAML list of ``{key_id, name, key_hash, scopes}``.

    A missing file is an empty key list (``storesense keys create --file`` creates it).
    """
    if not path.exists():
        return []
    try:
        text = path.read_text()
    except OSError as exc:
        raise ValueError(f"{path}: cannot read the key file ({exc.strerror or exc})") from None
    try:
        raw = yaml.safe_load(text) or []
    except yaml.YAMLError as exc:
        raise ValueError(f"{path}: {syntax_error_message(exc)}") from None
    except RecursionError:
        raise ValueError(f"{path}: {NESTED_TOO_DEEPLY}") from None
    if not isinstance(raw, list):
        raise ValueError(f"{path}: expected a list of keys, got {type(raw).__name__}")
    records = []
    for i, item in enumerate(raw):
        if not isinstance(item, Mapping):
            raise ValueError(f"{path}: keys[{i}] must be a mapping")
        missing = {"key_id", "key_hash", "scopes"} - set(item)
        if missing:
            raise ValueError(f"{path}: keys[{i}] lacks {', '.join(sorted(missing))}")
        key_hash = str(item["key_hash"])
        if len(key_hash) != 64 or any(c not in "0123456789abcdef" for c in key_hash):
            raise ValueError(f"{path}: keys[{i}].key_hash must be 64 lowercase hex digits")
        try:
            scopes = parse_scopes(item["scopes"])
        except ValueError as exc:
            raise ValueError(f"{path}: keys[{i}].scopes: {exc}") from None
        records.append(
            ApiKeyRecord(
                key_id=str(item["key_id"]),
                name=str(item.get("name", item["key_id"])),
                key_hash=key_hash,
                scopes=frozenset(s.value for s in scopes),
                created_at=float(item.get("created_at", 0.0)),
            )
        )
    return records


def append_key_file(path: Path, record: ApiKeyRecord) -> None:
    """Add one hashed key to a key file (JSON), creating it if needed."""
    records = load_key_file(path)
    records.append(record)
    payload = [
        {
            "key_id": r.key_id,
            "name": r.name,
            "key_hash": r.key_hash,
            "scopes": sorted(r.scopes),
            "created_at": r.created_at,
        }
        for r in records
    ]
    path.write_text(json.dumps(payload, indent=2) + "\n")
    path.chmod(0o600)


@dataclass(frozen=True)
class Principal:
    """Who is calling: ``key_id`` is ``None`` in open (no keys) mode."""

    key_id: str | None
    name: str
    scopes: frozenset[Scope]

    @property
    def is_admin(self) -> bool:
        return Scope.ADMIN in self.scopes


OPEN_PRINCIPAL = Principal(key_id=None, name="local (no keys configured)", scopes=frozenset(Scope))


def presented_key(headers: Mapping[str, str]) -> str | None:
    """The key from ``Authorization: Bearer <key>`` or ``X-API-Key``."""
    authorization = headers.get("authorization")
    if authorization:
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    key = headers.get("x-api-key")
    return key.strip() if key else None


class Authenticator:
    """Checks keys against the key file and the store, caching look-ups briefly.

    Auth is *enabled* as soon as any key exists (file or store); until then every
    caller is the local operator (the service refuses non-loopback hosts then).

    A verified key is trusted for ``cache_s``; an unknown key is remembered as
    unknown for ``miss_cache_s``, and an unreachable store for ``miss_cache_s``
    too (503 at once, no new store call), so a hung store or a flood of bad keys
    cannot pile up store calls. :meth:`authenticate_cached` answers without
    any store call (or says it cannot), for code on the event loop.

    Example:
        >>> from storesense.api.store import open_store
        >>> key, record = new_key("door display", ["display"])
        >>> auth = Authenticator(open_store("sqlite://:memory:", "s1"), [record])
        >>> auth.authenticate({"x-api-key": key}, Scope.DISPLAY).name
        'door display'
        >>> auth.authenticate_cached({"x-api-key": "ss_unknown"}, Scope.DISPLAY) is None
        True
    """

    def __init__(
        self,
        store: Store,
        file_records: Iterable[ApiKeyRecord] = (),
        cache_s: float = 5.0,
        miss_cache_s: float = 1.0,
    ):
        self._store = store
        self._file_records = {r.key_hash: r for r in file_records}
        self._cache_s = cache_s
        self._miss_cache_s = miss_cache_s
        self._cache: dict[str, tuple[ApiKeyRecord | None, float]] = {}
        self._unavailable: tuple[str, float] | None = None
        self._lock = threading.Lock()
        self._enabled = bool(self._file_records)
        self._enabled_checked_at = 0.0
        self.refresh_enabled()

    @property
    def file_records(self) -> list[ApiKeyRecord]:
        """Keys from the ``--api-keys`` file (read-only: edit the file to change them)."""
        return sorted(self._file_records.values(), key=lambda r: (r.created_at, r.key_id))

    def is_file_key(self, key_id: str) -> bool:
        return any(r.key_id == key_id for r in self._file_records.values())

    def _enabled_is_stale(self) -> bool:
        return not self._enabled and time.monotonic() - self._enabled_checked_at > self._cache_s

    @property
    def enabled(self) -> bool:
        """Whether keys are required (may ask the store: call it off the event loop)."""
        if self._enabled_is_stale():
            self.refresh_enabled()
        return self._enabled

    def refresh_enabled(self) -> bool:
        """Re-check whether any key exists (a key created by another process turns auth on)."""
        self._enabled_checked_at = time.monotonic()
        if self._enabled:
            return True
        with contextlib.suppress(StoreUnavailableError):
            if self._store.list_api_keys():
                self._turn_on("a key exists in the store")
        return self._enabled

    def _turn_on(self, why: str) -> None:
        if not self._enabled:
            self._enabled = True
            logger.warning(
                "API authentication is now ON (%s): every request needs a key with its scope",
                why,
            )

    def key_enabled(self) -> None:
        """Call after creating a key in this process: auth is on from now (logged once)."""
        self._turn_on("the first API key was created")

    def forget(self, key_id: str) -> None:
        """Drop a deleted key from the cache so it stops working at once here."""
        with self._lock:
            for key_hash, (record, _) in list(self._cache.items()):
                if record is not None and record.key_id == key_id:
                    del self._cache[key_hash]

    def _cached(self, key_hash: str, now: float) -> tuple[bool, ApiKeyRecord | None]:
        """``(known, record)`` from the file keys and the cache; ``known=False``: ask the store.

        Raises ``HTTPException`` 503 while a recent store look-up found the store unreachable.
        """
        record = self._file_records.get(key_hash)
        if record is not None:
            return True, record
        cached = self._cache.get(key_hash)
        if cached is not None and cached[1] > now:
            return True, cached[0]
        unavailable = self._unavailable
        if unavailable is not None and unavailable[1] > now:
            raise HTTPException(503, f"cannot verify the API key: {unavailable[0]}")
        return False, None

    def _lookup(self, key_hash: str) -> ApiKeyRecord | None:
        now = time.monotonic()
        known, record = self._cached(key_hash, now)
        if known:
            return record
        try:
            record = self._store.find_api_key(key_hash)
        except StoreUnavailableError as exc:
            reason = f"store unavailable ({exc})"
            self._unavailable = (reason, time.monotonic() + self._miss_cache_s)
            raise HTTPException(503, f"cannot verify the API key: {reason}") from exc
        self._unavailable = None
        expires = time.monotonic() + (self._cache_s if record is not None else self._miss_cache_s)
        with self._lock:
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[key_hash] = (record, expires)
        return record

    def authenticate(self, headers: Mapping[str, str], needed: Scope) -> Principal:
        """The caller, or ``HTTPException`` 401 (no/bad key), 403 (scope missing) or 503.

        May call the store: run it off the event loop (sync routes and dependencies are).
        """
        if not self.enabled:
            return OPEN_PRINCIPAL
        key_hash = self._presented_hash(headers)
        return self._principal(self._lookup(key_hash), key_hash, needed)

    def authenticate_cached(self, headers: Mapping[str, str], needed: Scope) -> Principal | None:
        """As :meth:`authenticate` without any store call: ``None`` when one would be needed.

        For code on the event loop (the occupancy fast path): on ``None`` it hands the
        request to a sync route, which runs :meth:`authenticate` on a worker thread.
        """
        if self._enabled_is_stale():
            return None
        if not self._enabled:
            return OPEN_PRINCIPAL
        key_hash = self._presented_hash(headers)
        known, record = self._cached(key_hash, time.monotonic())
        if not known:
            return None
        return self._principal(record, key_hash, needed)

    @staticmethod
    def _presented_hash(headers: Mapping[str, str]) -> str:
        key = presented_key(headers)
        if not key:
            raise HTTPException(
                401,
                "missing API key: send 'Authorization: Bearer <key>' or 'X-API-Key: <key>'",
                headers={"WWW-Authenticate": "Bearer"},
            )
        return hash_key(key)

    @staticmethod
    def _principal(record: ApiKeyRecord | None, key_hash: str, needed: Scope) -> Principal:
        if record is None or not hmac.compare_digest(record.key_hash, key_hash):
            raise HTTPException(401, "unknown API key", headers={"WWW-Authenticate": "Bearer"})
        scopes = _expand_scopes_cached(record.scopes)
        if needed not in scopes:
            raise HTTPException(
                403,
                f"this key has scope(s) {', '.join(sorted(record.scopes))}; "
                f"this endpoint needs '{needed.value}'",
            )
        return Principal(key_id=record.key_id, name=record.name, scopes=scopes)


def require(scope: Scope) -> Callable[[Request], Awaitable[Principal]]:
    """FastAPI dependency: ``principal: Principal = Depends(require(Scope.ANALYST))``.

    A key known without a store call (cached, or from the key file) is checked on the
    event loop; one that needs the store is looked up on a worker thread, so a slow
    or hung store never blocks the loop.
    """

    async def dependency(request: Request) -> Principal:
        authenticator: Authenticator = request.app.state.auth
        principal = authenticator.authenticate_cached(request.headers, scope)
        if principal is not None:
            return principal
        return await run_in_threadpool(authenticator.authenticate, request.headers, scope)

    dependency.__name__ = f"require_{scope.value}"
    return dependency
