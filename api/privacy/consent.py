"""Consent, check-ins, track links and the member-data audit log, in SQLite or Redis.

A member gives consent in the store's app or at a kiosk; the store's system
then posts a *check-in* (pseudonymous member token, camera or zone, time,
policy version). Each check-in renews the member's consent record (who, when,
which policy version). A check-in that finds exactly one track in the zone
creates a *link* from that camera-local track to the member for that visit.

Every read or erasure of member data appends an audit entry (who — the API
key id —, what, when). Audit entries name the member only by a keyed hash
(:meth:`ConsentRegistry.subject_of`), so erasing a member removes every copy
of their token while the audit trail of who touched their data survives.

The registry follows the store URL: ``sqlite:///PATH`` uses tables
``optin_*`` in the same file (``secure_delete`` on, WAL truncated after an
erasure); ``redis://…`` uses keys ``ss:{<store_id>}:optin:…``.

Example:
    >>> registry = open_consent_registry("sqlite://:memory:", "s1")
    >>> registry.record_consent(ConsentRecord("m-42", "2024-05", 100.0, "kiosk"))
    >>> [c.policy_version for c in registry.consents("m-42")]
    ['2024-05']
    >>> registry.erase_member("m-42") > 0, registry.consents("m-42")
    (True, [])
    >>> registry.close()
"""

from __future__ import annotations

import abc
import hashlib
import hmac
import json
import secrets
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

from storesense.api.store.redis import map_redis_errors, redis_client

MAX_TOKEN_LENGTH = 128

_R = TypeVar("_R")


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


def validate_token(token: str) -> str:
    """Member tokens are the store system's pseudonyms: 1-128 printable ASCII, no spaces."""
    if not (
        isinstance(token, str)
        and 0 < len(token) <= MAX_TOKEN_LENGTH
        and all(c.isascii() and c.isprintable() and not c.isspace() for c in token)
    ):
        raise ValueError(
            f"member token must be 1-{MAX_TOKEN_LENGTH} printable ASCII characters without spaces"
        )
    return token


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
class MemberAggregates:
    """Member metrics over a period, aggregated: safe for the ``analyst`` scope."""

    member_visits: int
    """Member check-ins in the period."""
    distinct_members: int
    repeat_members: int
    """Members in the period who had checked in before (earlier in it or before it)."""
    repeat_visit_rate: float
    """``repeat_members / distinct_members`` (0 when no member came)."""


class ConsentRegistry(abc.ABC):
    """Persistence of consent, check-ins, links and the audit log of one store."""

    store_id: str

    @abc.abstractmethod
    def _secret(self) -> bytes:
        """The per-store key of :meth:`subject_of` (created on first use)."""

    def subject_of(self, member_token: str) -> str:
        """The audit log's name for a member: HMAC-SHA256 of the token, 16 bytes hex."""
        return hmac.new(self._secret(), member_token.encode(), hashlib.sha256).hexdigest()[:32]

    @abc.abstractmethod
    def record_consent(self, record: ConsentRecord) -> None: ...

    @abc.abstractmethod
    def consents(self, member_token: str) -> list[ConsentRecord]:
        """Consent history of a member, oldest first."""

    @abc.abstractmethod
    def add_checkin(self, checkin: CheckIn) -> None: ...

    @abc.abstractmethod
    def checkins(
        self, start: float | None = None, end: float | None = None, member_token: str | None = None
    ) -> list[CheckIn]:
        """Check-ins with ``start <= timestamp < end``, oldest first."""

    @abc.abstractmethod
    def add_link(self, link: TrackLink) -> None: ...

    @abc.abstractmethod
    def links(
        self, start: float | None = None, end: float | None = None, member_token: str | None = None
    ) -> list[TrackLink]:
        """Links made with ``start <= linked_at < end``, oldest first."""

    @abc.abstractmethod
    def erase_member(self, member_token: str) -> int:
        """Delete the member's consents, check-ins and links; returns how many records went."""

    @abc.abstractmethod
    def append_audit(self, entry: AuditEntry) -> None: ...

    @abc.abstractmethod
    def audit_log(self, start: float | None = None, subject: str | None = None) -> list[AuditEntry]:
        """Audit entries from ``start`` on, oldest first."""

    @abc.abstractmethod
    def purge_before(self, timestamp: float) -> int:
        """Retention: drop check-ins and links older than ``timestamp``."""

    @abc.abstractmethod
    def purge_consents_before(self, timestamp: float) -> int:
        """Retention: drop consent records given before ``timestamp`` (check-ins renew them)."""

    @abc.abstractmethod
    def purge_audit_before(self, timestamp: float) -> int: ...

    @abc.abstractmethod
    def close(self) -> None: ...

    # derived ------------------------------------------------------------------
    def audit(self, actor: str | None, action: str, member_token: str, detail: str = "") -> None:
        """Record an access to a member's data (``actor`` ``None`` means open mode)."""
        self.append_audit(
            AuditEntry(time.time(), actor or "open", action, self.subject_of(member_token), detail)
        )

    def staff_track_keys(
        self, start: float | None = None, end: float | None = None
    ) -> set[TrackKey]:
        """Tracks linked to a staff badge check-in in the period (for ``zones.metrics``)."""
        return {link.track for link in self.links(start, end) if link.role == Role.STAFF}

    def member_aggregates(self, start: float, end: float) -> MemberAggregates:
        """Member visits and repeat-visit rate in ``[start, end)`` from check-ins only."""
        if end < start:
            raise ValueError(f"end ({end}) is before start ({start})")
        first_seen: dict[str, float] = {}
        visits = 0
        in_period: set[str] = set()
        repeat: set[str] = set()
        for checkin in self.checkins(None, end):
            if checkin.role != Role.MEMBER:
                continue
            token = checkin.member_token
            if checkin.timestamp >= start:
                visits += 1
                in_period.add(token)
                if token in first_seen and first_seen[token] < checkin.timestamp:
                    repeat.add(token)
            first_seen.setdefault(token, checkin.timestamp)
        rate = len(repeat) / len(in_period) if in_period else 0.0
        return MemberAggregates(visits, len(in_period), len(repeat), rate)


# SQLite ------------------------------------------------------------------------
_SQLITE_SCHEMA = """
CREATE TABLE IF NOT EXISTS optin_meta (
    store_id TEXT NOT NULL, name TEXT NOT NULL, value TEXT NOT NULL,
    PRIMARY KEY (store_id, name)
);
CREATE TABLE IF NOT EXISTS optin_consents (
    store_id TEXT NOT NULL, member_token TEXT NOT NULL, policy_version TEXT NOT NULL,
    given_at REAL NOT NULL, source TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS optin_consents_by_member ON optin_consents (store_id, member_token);
CREATE TABLE IF NOT EXISTS optin_checkins (
    store_id TEXT NOT NULL, checkin_id TEXT NOT NULL, member_token TEXT NOT NULL,
    timestamp REAL NOT NULL, record TEXT NOT NULL,          -- JSON CheckIn
    PRIMARY KEY (store_id, checkin_id)
);
CREATE INDEX IF NOT EXISTS optin_checkins_by_time ON optin_checkins (store_id, timestamp);
CREATE TABLE IF NOT EXISTS optin_links (
    store_id TEXT NOT NULL, link_id TEXT NOT NULL, member_token TEXT NOT NULL,
    linked_at REAL NOT NULL, record TEXT NOT NULL,          -- JSON TrackLink
    PRIMARY KEY (store_id, link_id)
);
CREATE INDEX IF NOT EXISTS optin_links_by_time ON optin_links (store_id, linked_at);
CREATE TABLE IF NOT EXISTS optin_audit (
    store_id TEXT NOT NULL, entry_id TEXT NOT NULL, timestamp REAL NOT NULL,
    actor TEXT NOT NULL, action TEXT NOT NULL, subject TEXT NOT NULL, detail TEXT NOT NULL,
    PRIMARY KEY (store_id, entry_id)
);
CREATE INDEX IF NOT EXISTS optin_audit_by_time ON optin_audit (store_id, timestamp);
"""


def _range_sql(column: str, start: float | None, end: float | None) -> tuple[str, list[Any]]:
    clauses, params = [], []
    if start is not None:
        clauses.append(f"{column} >= ?")
        params.append(start)
    if end is not None:
        clauses.append(f"{column} < ?")
        params.append(end)
    return "".join(f" AND {c}" for c in clauses), params


class SQLiteConsentRegistry(ConsentRegistry):
    """Registry tables ``optin_*`` in an SQLite file (the store's file by default)."""

    def __init__(self, path: str | Path, store_id: str) -> None:
        from storesense.api.store.base import validate_store_id

        self.store_id = validate_store_id(store_id)
        self.path = str(path)
        if self.path != ":memory:" and not Path(self.path).expanduser().parent.is_dir():
            raise ValueError(f"directory of the SQLite database does not exist: {self.path}")
        self._lock = threading.RLock()
        from storesense.api.store.sqlite_connection import connect_sqlite

        self._conn = connect_sqlite(self.path)
        with self._lock:
            self._conn.executescript(_SQLITE_SCHEMA)
        self._cached_secret: bytes | None = None

    def _execute(self, sql: str, params: Iterable[Any] = ()) -> sqlite3.Cursor:
        with self._lock:
            return self._conn.execute(sql, tuple(params))

    def _secret(self) -> bytes:
        if self._cached_secret is None:
            with self._lock:
                self._execute(
                    "INSERT OR IGNORE INTO optin_meta VALUES (?, 'subject_key', ?)",
                    (self.store_id, secrets.token_hex(32)),
                )
                (value,) = self._execute(
                    "SELECT value FROM optin_meta WHERE store_id = ? AND name = 'subject_key'",
                    (self.store_id,),
                ).fetchone()
            self._cached_secret = bytes.fromhex(value)
        return self._cached_secret

    def record_consent(self, record: ConsentRecord) -> None:
        self._execute(
            "INSERT INTO optin_consents VALUES (?, ?, ?, ?, ?)",
            (
                self.store_id,
                validate_token(record.member_token),
                record.policy_version,
                record.given_at,
                record.source,
            ),
        )

    def consents(self, member_token: str) -> list[ConsentRecord]:
        rows = self._execute(
            "SELECT member_token, policy_version, given_at, source FROM optin_consents "
            "WHERE store_id = ? AND member_token = ? ORDER BY given_at",
            (self.store_id, member_token),
        ).fetchall()
        return [ConsentRecord(*row) for row in rows]

    def add_checkin(self, checkin: CheckIn) -> None:
        self._put(
            "optin_checkins",
            checkin.checkin_id,
            checkin.member_token,
            checkin.timestamp,
            checkin.to_json(),
        )

    def checkins(
        self, start: float | None = None, end: float | None = None, member_token: str | None = None
    ) -> list[CheckIn]:
        records = self._records("optin_checkins", "timestamp", start, end, member_token)
        return [CheckIn.from_json(record) for record in records]

    def add_link(self, link: TrackLink) -> None:
        self._put("optin_links", link.link_id, link.member_token, link.linked_at, link.to_json())

    def _put(self, table: str, record_id: str, member_token: str, when: float, record: str) -> None:
        """Insert or replace one record of one of this store's member tables."""
        self._execute(
            f"INSERT OR REPLACE INTO {table} VALUES (?, ?, ?, ?, ?)",
            (self.store_id, record_id, validate_token(member_token), when, record),
        )

    def links(
        self, start: float | None = None, end: float | None = None, member_token: str | None = None
    ) -> list[TrackLink]:
        records = self._records("optin_links", "linked_at", start, end, member_token)
        return [TrackLink.from_json(record) for record in records]

    def _records(
        self,
        table: str,
        time_column: str,
        start: float | None,
        end: float | None,
        member_token: str | None,
    ) -> list[str]:
        """JSON records of one of this store's member tables, oldest first."""
        where, params = _range_sql(time_column, start, end)
        if member_token is not None:
            where += " AND member_token = ?"
            params.append(member_token)
        rows = self._execute(
            f"SELECT record FROM {table} WHERE store_id = ?{where} ORDER BY {time_column}",
            [self.store_id, *params],
        ).fetchall()
        return [row[0] for row in rows]

    def erase_member(self, member_token: str) -> int:
        removed = 0
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                for table in ("optin_consents", "optin_checkins", "optin_links"):
                    removed += self._conn.execute(
                        f"DELETE FROM {table} WHERE store_id = ? AND member_token = ?",
                        (self.store_id, member_token),
                    ).rowcount
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            if self.path != ":memory:":
                self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return removed

    def append_audit(self, entry: AuditEntry) -> None:
        self._execute(
            "INSERT INTO optin_audit VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                self.store_id,
                entry.entry_id,
                entry.timestamp,
                entry.actor,
                entry.action,
                entry.subject,
                entry.detail,
            ),
        )

    def audit_log(self, start: float | None = None, subject: str | None = None) -> list[AuditEntry]:
        where, params = _range_sql("timestamp", start, None)
        if subject is not None:
            where += " AND subject = ?"
            params.append(subject)
        rows = self._execute(
            "SELECT timestamp, actor, action, subject, detail, entry_id FROM optin_audit "
            f"WHERE store_id = ?{where} ORDER BY timestamp",
            [self.store_id, *params],
        ).fetchall()
        return [AuditEntry(*row) for row in rows]

    def _delete_before(self, table: str, column: str, timestamp: float) -> int:
        return self._execute(
            f"DELETE FROM {table} WHERE store_id = ? AND {column} < ?", (self.store_id, timestamp)
        ).rowcount

    def purge_before(self, timestamp: float) -> int:
        with self._lock:
            return self._delete_before("optin_checkins", "timestamp", timestamp) + (
                self._delete_before("optin_links", "linked_at", timestamp)
            )

    def purge_consents_before(self, timestamp: float) -> int:
        return self._delete_before("optin_consents", "given_at", timestamp)

    def purge_audit_before(self, timestamp: float) -> int:
        return self._delete_before("optin_audit", "timestamp", timestamp)

    def close(self) -> None:
        with self._lock:
            self._conn.close()


# Redis -------------------------------------------------------------------------
def _in_period(
    records: Iterable[_R], when: Callable[[_R], float], start: float | None, end: float | None
) -> list[_R]:
    """The records with ``start <= when(record) < end`` (``None``: open), oldest first."""
    return sorted(
        (
            r
            for r in records
            if (start is None or when(r) >= start) and (end is None or when(r) < end)
        ),
        key=when,
    )


@map_redis_errors
class RedisConsentRegistry(ConsentRegistry):
    """Registry under keys ``ss:{<store_id>}:optin:…`` (one hash slot per store)."""

    def __init__(self, client: Any, store_id: str) -> None:
        from storesense.api.store.base import validate_store_id

        self.store_id = validate_store_id(store_id)
        self._redis = client
        self._prefix = f"ss:{{{self.store_id}}}:optin:"
        self._cached_secret: bytes | None = None

    @classmethod
    def from_url(cls, url: str, store_id: str) -> RedisConsentRegistry:
        return cls(redis_client(url), store_id)

    def _key(self, *parts: str) -> str:
        return self._prefix + ":".join(parts)

    def _secret(self) -> bytes:
        if self._cached_secret is None:
            key = self._key("subject_key")
            self._redis.set(key, secrets.token_hex(32), nx=True)
            self._cached_secret = bytes.fromhex(self._redis.get(key))
        return self._cached_secret

    def record_consent(self, record: ConsentRecord) -> None:
        token = validate_token(record.member_token)
        pipe = self._redis.pipeline()
        pipe.rpush(self._key("consents", token), json.dumps(asdict(record)))
        pipe.zadd(self._key("consent_index"), {token: record.given_at})
        pipe.execute()

    def consents(self, member_token: str) -> list[ConsentRecord]:
        items = self._redis.lrange(self._key("consents", member_token), 0, -1)
        records = [ConsentRecord(**json.loads(item)) for item in items]
        return sorted(records, key=lambda r: r.given_at)

    def _add_record(self, kind: str, record_id: str, token: str, score: float, text: str) -> None:
        pipe = self._redis.pipeline()
        pipe.set(self._key(kind, record_id), text)
        pipe.zadd(self._key(kind + "s"), {record_id: score})
        pipe.sadd(self._key("member", token, kind + "s"), record_id)
        pipe.execute()

    def _records(
        self, kind: str, start: float | None, end: float | None, member_token: str | None
    ) -> list[str]:
        if member_token is not None:
            ids = list(self._redis.smembers(self._key("member", member_token, kind + "s")))
        else:
            ids = self._redis.zrangebyscore(
                self._key(kind + "s"),
                "-inf" if start is None else start,
                "+inf" if end is None else f"({end}",
            )
        if not ids:
            return []
        texts = self._redis.mget([self._key(kind, i) for i in ids])
        return [t for t in texts if t is not None]

    def add_checkin(self, checkin: CheckIn) -> None:
        self._add_record(
            "checkin",
            checkin.checkin_id,
            validate_token(checkin.member_token),
            checkin.timestamp,
            checkin.to_json(),
        )

    def checkins(
        self, start: float | None = None, end: float | None = None, member_token: str | None = None
    ) -> list[CheckIn]:
        found = map(CheckIn.from_json, self._records("checkin", start, end, member_token))
        return _in_period(found, lambda c: c.timestamp, start, end)

    def add_link(self, link: TrackLink) -> None:
        self._add_record(
            "link", link.link_id, validate_token(link.member_token), link.linked_at, link.to_json()
        )

    def links(
        self, start: float | None = None, end: float | None = None, member_token: str | None = None
    ) -> list[TrackLink]:
        found = map(TrackLink.from_json, self._records("link", start, end, member_token))
        return _in_period(found, lambda x: x.linked_at, start, end)

    def erase_member(self, member_token: str) -> int:
        checkin_ids = list(self._redis.smembers(self._key("member", member_token, "checkins")))
        link_ids = list(self._redis.smembers(self._key("member", member_token, "links")))
        consents = int(self._redis.llen(self._key("consents", member_token)))
        pipe = self._redis.pipeline()
        for kind, ids in (("checkin", checkin_ids), ("link", link_ids)):
            if ids:
                pipe.delete(*[self._key(kind, i) for i in ids])
                pipe.zrem(self._key(kind + "s"), *ids)
            pipe.delete(self._key("member", member_token, kind + "s"))
        pipe.delete(self._key("consents", member_token))
        pipe.zrem(self._key("consent_index"), member_token)
        pipe.execute()
        return consents + len(checkin_ids) + len(link_ids)

    def append_audit(self, entry: AuditEntry) -> None:
        self._redis.zadd(self._key("audit"), {json.dumps(asdict(entry)): entry.timestamp})

    def audit_log(self, start: float | None = None, subject: str | None = None) -> list[AuditEntry]:
        items = self._redis.zrangebyscore(
            self._key("audit"), "-inf" if start is None else start, "+inf"
        )
        entries = [AuditEntry(**json.loads(item)) for item in items]
        return [e for e in entries if subject is None or e.subject == subject]

    def _purge_kind(self, kind: str, timestamp: float) -> int:
        ids = self._redis.zrangebyscore(self._key(kind + "s"), "-inf", f"({timestamp}")
        if not ids:
            return 0
        texts = self._redis.mget([self._key(kind, i) for i in ids])
        pipe = self._redis.pipeline()
        for record_id, text in zip(ids, texts, strict=True):
            if text is not None:
                token = json.loads(text)["member_token"]
                pipe.srem(self._key("member", token, kind + "s"), record_id)
            pipe.delete(self._key(kind, record_id))
        pipe.zrem(self._key(kind + "s"), *ids)
        pipe.execute()
        return len(ids)

    def purge_before(self, timestamp: float) -> int:
        return self._purge_kind("checkin", timestamp) + self._purge_kind("link", timestamp)

    def purge_consents_before(self, timestamp: float) -> int:
        removed = 0
        for token in self._redis.zrangebyscore(self._key("consent_index"), "-inf", "+inf"):
            key = self._key("consents", token)
            kept = [
                item
                for item in self._redis.lrange(key, 0, -1)
                if json.loads(item)["given_at"] >= timestamp
            ]
            old = int(self._redis.llen(key)) - len(kept)
            if old == 0:
                continue
            removed += old
            pipe = self._redis.pipeline()
            pipe.delete(key)
            if kept:
                pipe.rpush(key, *kept)
            else:
                pipe.zrem(self._key("consent_index"), token)
            pipe.execute()
        return removed

    def purge_audit_before(self, timestamp: float) -> int:
        return int(self._redis.zremrangebyscore(self._key("audit"), "-inf", f"({timestamp}"))

    def close(self) -> None:
        self._redis.close()


def open_consent_registry(url: str, store_id: str) -> ConsentRegistry:
    """The registry beside the store at ``url``, parsed as ``storesense.api.store.open_store`` does.

    ``sqlite:///relative.db``, ``sqlite:////absolute.db``, ``sqlite://:memory:``,
    ``redis://…``, ``rediss://…``, ``unix://…``, ``redis+cluster://…``.
    """
    from storesense.api.store.url import parse_store_url

    parsed = parse_store_url(url)
    if parsed.backend == "sqlite":
        assert parsed.path is not None
        return SQLiteConsentRegistry(parsed.path, store_id)
    return RedisConsentRegistry.from_url(url, store_id)
