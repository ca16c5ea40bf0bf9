"""Consent rules over the store's opt-in records: audit names, staff tracks, member metrics.

A member gives consent in the store's app or at a kiosk; the store's system
then posts a *check-in* (pseudonymous member token, camera or zone, time,
policy version). Each check-in renews the member's consent record (who, when,
which policy version). A check-in that finds exactly one track in the zone
creates a *link* from that camera-local track to the member for that visit.

The records are kept by the store (:class:`~storesense.api.store.base.Store`:
``record_consent``, ``add_checkin``, ``add_link``, ``erase_member``, ``audit_log``…,
in the same SQLite file or Redis namespace as the events). This module holds what
the privacy layer decides about them: every read or erasure of member data appends
an audit entry (who — the API key id —, what, when) that names the member only by
a keyed hash (:meth:`ConsentRegistry.subject_of`), so erasing a member removes every
copy of their token while the audit trail of who touched their data survives.

Example:
    >>> from storesense.api.store import open_store
    >>> registry = ConsentRegistry(open_store("sqlite://:memory:", "s1"))
    >>> registry.store.record_consent(ConsentRecord("m-42", "2024-05", 100.0, "kiosk"))
    >>> [c.policy_version for c in registry.store.consents("m-42")]
    ['2024-05']
    >>> registry.audit("k_1", "read", "m-42")
    >>> [e.action for e in registry.store.audit_log(subject=registry.subject_of("m-42"))]
    ['read']
    >>> registry.store.erase_member("m-42"), registry.store.consents("m-42")
    (1, [])
    >>> registry.store.close()
"""

from __future__ import annotations

import hashlib
import hmac
import time
from dataclasses import dataclass

from storesense.api.store.base import (
    MAX_TOKEN_LENGTH,
    AuditEntry,
    CheckIn,
    ConsentRecord,
    LinkOutcome,
    Role,
    Store,
    TrackKey,
    TrackLink,
    validate_token,
)

__all__ = [
    "MAX_TOKEN_LENGTH",
    "AuditEntry",
    "CheckIn",
    "ConsentRecord",
    "ConsentRegistry",
    "LinkOutcome",
    "MemberAggregates",
    "Role",
    "TrackKey",
    "TrackLink",
    "validate_token",
]


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


class ConsentRegistry:
    """The privacy rules over one store's opt-in records (the records are the store's)."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def subject_of(self, member_token: str) -> str:
        """The audit log's name for a member: HMAC-SHA256 of the token, 16 bytes hex."""
        key = self.store.optin_subject_key()
        return hmac.new(key, member_token.encode(), hashlib.sha256).hexdigest()[:32]

    def audit(self, actor: str | None, action: str, member_token: str, detail: str = "") -> None:
        """Record an access to a member's data (``actor`` ``None`` means open mode)."""
        self.store.append_audit(
            AuditEntry(time.time(), actor or "open", action, self.subject_of(member_token), detail)
        )

    def staff_track_keys(
        self, start: float | None = None, end: float | None = None
    ) -> set[TrackKey]:
        """Tracks linked to a staff badge check-in in the period (for ``zones.metrics``)."""
        return {link.track for link in self.store.links(start, end) if link.role == Role.STAFF}

    def member_aggregates(self, start: float, end: float) -> MemberAggregates:
        """Member visits and repeat-visit rate in ``[start, end)`` from check-ins only."""
        if end < start:
            raise ValueError(f"end ({end}) is before start ({start})")
        first_seen: dict[str, float] = {}
        visits = 0
        in_period: set[str] = set()
        repeat: set[str] = set()
        for checkin in self.store.checkins(None, end):
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
