"""The opt-in tables of :class:`~.sqlite.SQLiteStore`: consent, check-ins, links, audit.

Tables ``optin_*`` sit in the store's file beside the events; erasing a member
checkpoints and truncates the WAL (``secure_delete`` is on), so the token does not
linger in the file.
"""

from __future__ import annotations

import secrets
import sqlite3
from collections.abc import Iterator
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

from storesense.api.store.base import (
    AuditEntry,
    CheckIn,
    ConsentRecord,
    TrackLink,
    validate_token,
)

OPTIN_SCHEMA = """
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
"""Created by :class:`~.sqlite.SQLiteStore` with its own tables (same names as before the
opt-in registry joined the store, so existing files keep their records)."""

_MEMBER_TABLES = ("optin_consents", "optin_checkins", "optin_links")


def _range_sql(column: str, start: float | None, end: float | None) -> tuple[str, list[Any]]:
    clauses, params = [], []
    if start is not None:
        clauses.append(f"{column} >= ?")
        params.append(start)
    if end is not None:
        clauses.append(f"{column} < ?")
        params.append(end)
    return "".join(f" AND {c}" for c in clauses), params


class SQLiteOptInTables:
    """Mixin of :class:`~.sqlite.SQLiteStore`: the opt-in methods of the store interface."""

    store_id: str
    path: str
    _in_memory: bool
    _cached_subject_key: bytes | None = None

    if TYPE_CHECKING:  # SQLiteStore's

        def _transaction(self) -> AbstractContextManager[sqlite3.Connection]: ...

        def _reading(self) -> AbstractContextManager[sqlite3.Connection]: ...

    def optin_subject_key(self) -> bytes:
        if self._cached_subject_key is None:
            with self._transaction() as conn:
                conn.execute(
                    "INSERT OR IGNORE INTO optin_meta VALUES (?, 'subject_key', ?)",
                    (self.store_id, secrets.token_hex(32)),
                )
                (value,) = conn.execute(
                    "SELECT value FROM optin_meta WHERE store_id = ? AND name = 'subject_key'",
                    (self.store_id,),
                ).fetchone()
            self._cached_subject_key = bytes.fromhex(value)
        return self._cached_subject_key

    def record_consent(self, record: ConsentRecord) -> None:
        token = validate_token(record.member_token)
        with self._transaction() as conn:
            conn.execute(
                "INSERT INTO optin_consents VALUES (?, ?, ?, ?, ?)",
                (self.store_id, token, record.policy_version, record.given_at, record.source),
            )

    def consents(self, member_token: str) -> list[ConsentRecord]:
        with self._reading() as conn:
            rows = conn.execute(
                "SELECT member_token, policy_version, given_at, source FROM optin_consents "
                "WHERE store_id = ? AND member_token = ? ORDER BY given_at",
                (self.store_id, member_token),
            ).fetchall()
        return [ConsentRecord(*row) for row in rows]

    def _put(self, table: str, record_id: str, member_token: str, when: float, record: str) -> None:
        """Insert or replace one record of one of this store's member tables."""
        token = validate_token(member_token)
        with self._transaction() as conn:
            conn.execute(
                f"INSERT OR REPLACE INTO {table} VALUES (?, ?, ?, ?, ?)",
                (self.store_id, record_id, token, when, record),
            )

    def _records(
        self,
        table: str,
        time_column: str,
        start: float | None,
        end: float | None,
        member_token: str | None,
    ) -> Iterator[str]:
        """JSON records of one of this store's member tables, oldest first."""
        where, params = _range_sql(time_column, start, end)
        if member_token is not None:
            where += " AND member_token = ?"
            params.append(member_token)
        with self._reading() as conn:
            rows = conn.execute(
                f"SELECT record FROM {table} WHERE store_id = ?{where} ORDER BY {time_column}",
                [self.store_id, *params],
            ).fetchall()
        return (row[0] for row in rows)

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

    def links(
        self, start: float | None = None, end: float | None = None, member_token: str | None = None
    ) -> list[TrackLink]:
        records = self._records("optin_links", "linked_at", start, end, member_token)
        return [TrackLink.from_json(record) for record in records]

    def erase_member(self, member_token: str) -> int:
        removed = 0
        with self._transaction() as conn:
            for table in _MEMBER_TABLES:
                removed += conn.execute(
                    f"DELETE FROM {table} WHERE store_id = ? AND member_token = ?",
                    (self.store_id, member_token),
                ).rowcount
        if not self._in_memory:
            with self._reading() as conn:
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return removed

    def append_audit(self, entry: AuditEntry) -> None:
        with self._transaction() as conn:
            conn.execute(
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
        with self._reading() as conn:
            rows = conn.execute(
                "SELECT timestamp, actor, action, subject, detail, entry_id FROM optin_audit "
                f"WHERE store_id = ?{where} ORDER BY timestamp",
                [self.store_id, *params],
            ).fetchall()
        return [AuditEntry(*row) for row in rows]

    def _delete_before(self, *table_columns: tuple[str, str], timestamp: float) -> int:
        deleted = 0
        with self._transaction() as conn:
            for table, column in table_columns:
                deleted += conn.execute(
                    f"DELETE FROM {table} WHERE store_id = ? AND {column} < ?",
                    (self.store_id, timestamp),
                ).rowcount
        return deleted

    def delete_checkins_before(self, timestamp: float) -> int:
        return self._delete_before(
            ("optin_checkins", "timestamp"), ("optin_links", "linked_at"), timestamp=timestamp
        )

    def delete_consents_before(self, timestamp: float) -> int:
        return self._delete_before(("optin_consents", "given_at"), timestamp=timestamp)

    def delete_audit_before(self, timestamp: float) -> int:
        return self._delete_before(("optin_audit", "timestamp"), timestamp=timestamp)
