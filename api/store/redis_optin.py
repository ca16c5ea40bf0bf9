"""The opt-in keys of :class:`~.redis.RedisStore`: consent, check-ins, links, audit.

Keys (``S`` = store id; same names as before the opt-in registry joined the store):

======================================  ======  ========================================
key                                     type    content
======================================  ======  ========================================
``ss:{S}:optin:subject_key``            string  secret of the audit log's member hashes
``ss:{S}:optin:consents:<token>``       list    consent records (JSON), oldest first
``ss:{S}:optin:consent_index``          zset    member tokens with a consent record
``ss:{S}:optin:checkin:<id>``           string  check-in JSON
``ss:{S}:optin:checkins``               zset    check-in ids scored by time
``ss:{S}:optin:link:<id>``              string  track link JSON
``ss:{S}:optin:links``                  zset    link ids scored by time
``ss:{S}:optin:member:<token>:<kind>``  set     a member's check-in / link ids (erasure)
``ss:{S}:optin:audit``                  zset    audit entries (JSON) scored by time
======================================  ======  ========================================
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable, Iterable
from dataclasses import asdict
from typing import Any, TypeVar

from storesense.api.store.base import (
    AuditEntry,
    CheckIn,
    ConsentRecord,
    TrackLink,
    validate_token,
)
from storesense.api.store.redis_errors import map_redis_errors

_R = TypeVar("_R")


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
class RedisOptInKeys:
    """Mixin of :class:`~.redis.RedisStore`: the opt-in methods of the store interface."""

    store_id: str
    _client: Any
    _cached_subject_key: bytes | None = None

    def _optin_key(self, *parts: str) -> str:
        return f"ss:{{{self.store_id}}}:optin:" + ":".join(parts)

    def optin_subject_key(self) -> bytes:
        if self._cached_subject_key is None:
            key = self._optin_key("subject_key")
            self._client.set(key, secrets.token_hex(32), nx=True)
            self._cached_subject_key = bytes.fromhex(self._client.get(key))
        return self._cached_subject_key

    def record_consent(self, record: ConsentRecord) -> None:
        token = validate_token(record.member_token)
        pipe = self._client.pipeline()
        pipe.rpush(self._optin_key("consents", token), json.dumps(asdict(record)))
        pipe.zadd(self._optin_key("consent_index"), {token: record.given_at})
        pipe.execute()

    def consents(self, member_token: str) -> list[ConsentRecord]:
        items = self._client.lrange(self._optin_key("consents", member_token), 0, -1)
        records = [ConsentRecord(**json.loads(item)) for item in items]
        return sorted(records, key=lambda r: r.given_at)

    def _add_record(self, kind: str, record_id: str, token: str, score: float, text: str) -> None:
        pipe = self._client.pipeline()
        pipe.set(self._optin_key(kind, record_id), text)
        pipe.zadd(self._optin_key(kind + "s"), {record_id: score})
        pipe.sadd(self._optin_key("member", token, kind + "s"), record_id)
        pipe.execute()

    def _records(
        self, kind: str, start: float | None, end: float | None, member_token: str | None
    ) -> list[str]:
        if member_token is not None:
            ids = list(self._client.smembers(self._optin_key("member", member_token, kind + "s")))
        else:
            ids = self._client.zrangebyscore(
                self._optin_key(kind + "s"),
                "-inf" if start is None else start,
                "+inf" if end is None else f"({end}",
            )
        if not ids:
            return []
        texts = self._client.mget([self._optin_key(kind, i) for i in ids])
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
        key = self._optin_key
        checkin_ids = list(self._client.smembers(key("member", member_token, "checkins")))
        link_ids = list(self._client.smembers(key("member", member_token, "links")))
        consents = int(self._client.llen(key("consents", member_token)))
        pipe = self._client.pipeline()
        for kind, ids in (("checkin", checkin_ids), ("link", link_ids)):
            for record_id in ids:  # one key per DELETE: a cluster pipeline allows no more
                pipe.delete(key(kind, record_id))
            if ids:
                pipe.zrem(key(kind + "s"), *ids)
            pipe.delete(key("member", member_token, kind + "s"))
        pipe.delete(key("consents", member_token))
        pipe.zrem(key("consent_index"), member_token)
        pipe.execute()
        return consents + len(checkin_ids) + len(link_ids)

    def append_audit(self, entry: AuditEntry) -> None:
        self._client.zadd(self._optin_key("audit"), {json.dumps(asdict(entry)): entry.timestamp})

    def audit_log(self, start: float | None = None, subject: str | None = None) -> list[AuditEntry]:
        items = self._client.zrangebyscore(
            self._optin_key("audit"), "-inf" if start is None else start, "+inf"
        )
        entries = [AuditEntry(**json.loads(item)) for item in items]
        return [e for e in entries if subject is None or e.subject == subject]

    def _purge_kind(self, kind: str, timestamp: float) -> int:
        ids = self._client.zrangebyscore(self._optin_key(kind + "s"), "-inf", f"({timestamp}")
        if not ids:
            return 0
        texts = self._client.mget([self._optin_key(kind, i) for i in ids])
        pipe = self._client.pipeline()
        for record_id, text in zip(ids, texts, strict=True):
            if text is not None:
                token = json.loads(text)["member_token"]
                pipe.srem(self._optin_key("member", token, kind + "s"), record_id)
            pipe.delete(self._optin_key(kind, record_id))
        pipe.zrem(self._optin_key(kind + "s"), *ids)
        pipe.execute()
        return len(ids)

    def delete_checkins_before(self, timestamp: float) -> int:
        return self._purge_kind("checkin", timestamp) + self._purge_kind("link", timestamp)

    def delete_consents_before(self, timestamp: float) -> int:
        removed = 0
        index = self._optin_key("consent_index")
        for token in self._client.zrangebyscore(index, "-inf", "+inf"):
            key = self._optin_key("consents", token)
            kept = [
                item
                for item in self._client.lrange(key, 0, -1)
                if json.loads(item)["given_at"] >= timestamp
            ]
            old = int(self._client.llen(key)) - len(kept)
            if old == 0:
                continue
            removed += old
            pipe = self._client.pipeline()
            pipe.delete(key)
            if kept:
                pipe.rpush(key, *kept)
            else:
                pipe.zrem(index, token)
            pipe.execute()
        return removed

    def delete_audit_before(self, timestamp: float) -> int:
        return int(self._client.zremrangebyscore(self._optin_key("audit"), "-inf", f"({timestamp}"))
