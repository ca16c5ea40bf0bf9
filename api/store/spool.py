"""Offline spool: camera events are never lost while the primary store is down.

:class:`SpoolingStore` wraps a primary store (usually Redis). When the primary
raises :class:`StoreUnavailableError`, ``write_events`` appends the events to a
local SQLite file (WAL, ``synchronous=FULL``) and returns: the events are
acknowledged locally. While anything is spooled, later events queue behind it
(write order is kept). A background thread pings the primary every
``flush_interval`` seconds and, once it answers, replays the spool in write
order, batch by batch, deleting a spooled event only after the primary
acknowledged it; writers never wait for a long replay. A crash between the two makes the
next replay send it again, which the primary ignores (events are keyed by their
deterministic ``event_id``): nothing is lost and nothing is duplicated.

Occupancy and transaction writes during an outage keep only the latest value per
camera / bucket and are applied after the spooled events. Reads, erasure,
layout and key writes, and every opt-in record (consent, check-ins, links, audit)
go to the primary and raise ``StoreUnavailableError`` during an outage (the API
answers 503); during a replay, reads see the primary as it is. Erasure and
retention are also applied to the spool, so erased data is never replayed. Use one
spool file per process.

Example:
    >>> import tempfile, pathlib
    >>> from storesense.api.store.sqlite import SQLiteStore
    >>> from storesense.zones.events import Event, EventType
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> store = SpoolingStore(SQLiteStore(folder / "main.db", "s1"), folder / "spool.db")
    >>> store.write_events([Event.create(EventType.ZONE_ENTER, "s1", "cam1", "a", 1, 5.0)])
    1
    >>> store.spooled_count()
    0
    >>> store.close()
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from storesense.api.store.base import (
    ApiKeyRecord,
    AuditEntry,
    CameraReport,
    CheckIn,
    ConsentRecord,
    EventFact,
    EventQuery,
    HeatmapCell,
    Store,
    StoreUnavailableError,
    TrackLink,
    ZoneOccupancy,
    check_occupancy_counts,
    validate_events,
)
from storesense.api.store.sqlite_connection import connect_sqlite
from storesense.zones.events import Event, EventType

if TYPE_CHECKING:
    from storesense.api.store.live_floor import LiveFloorLink

logger = logging.getLogger(__name__)

_SPOOL_SCHEMA = """
CREATE TABLE IF NOT EXISTS spool (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT NOT NULL UNIQUE,
    event TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS pending_occupancy (
    camera_id TEXT PRIMARY KEY,
    counts TEXT NOT NULL,
    timestamp REAL NOT NULL,
    approaching TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE IF NOT EXISTS pending_transactions (
    bucket_start REAL PRIMARY KEY,
    count INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS dead_letter (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    event TEXT NOT NULL,
    error TEXT NOT NULL
);
"""


def _check_counts(counts: Mapping[str, int] | Mapping[float, int], what: str) -> None:
    for key, count in counts.items():
        if int(count) < 0:
            raise ValueError(f"{what} {key!r} must not be negative: {count}")


class SpoolingStore(Store):
    """``primary`` with a local spool file at ``spool_path`` for outages.

    ``flush_interval`` is how often (seconds) the background thread retries the
    primary while the spool holds something; ``batch_size`` events are replayed
    per primary write.
    """

    def __init__(
        self,
        primary: Store,
        spool_path: str | Path,
        flush_interval: float = 1.0,
        batch_size: int = 500,
    ) -> None:
        if flush_interval <= 0 or batch_size <= 0:
            raise ValueError(
                f"flush_interval and batch_size must be positive; got {flush_interval}, "
                f"{batch_size}"
            )
        self.primary = primary
        self.store_id = primary.store_id
        self.spool_path = Path(spool_path).expanduser()
        if not self.spool_path.parent.is_dir():
            raise ValueError(
                f"directory of the spool file does not exist: {self.spool_path.parent}"
            )
        self._batch_size = batch_size
        self._flush_interval = flush_interval
        # One lock orders direct writes after the spool replay, across threads.
        self._lock = threading.RLock()
        try:
            self._spool = connect_sqlite(self.spool_path)  # WAL, synchronous=FULL
            self._spool.executescript(_SPOOL_SCHEMA)
            table = self._spool.execute("PRAGMA table_info(pending_occupancy)")
            if "approaching" not in {row[1] for row in table}:  # a spool file from before it
                self._spool.execute(
                    "ALTER TABLE pending_occupancy "
                    "ADD COLUMN approaching TEXT NOT NULL DEFAULT '{}'"
                )
            self._pending = self._count_pending() > 0
        except sqlite3.Error as exc:
            raise ValueError(f"cannot use {self.spool_path} as a spool file: {exc}") from exc
        # After a failed attempt, writers spool at once until then; the flusher keeps trying.
        self._primary_down_until = 0.0
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._flusher = threading.Thread(
            target=self._flush_loop, name=f"spool-flusher-{self.store_id}", daemon=True
        )
        self._flusher.start()
        if self._pending:
            self._wake.set()

    # spool bookkeeping -------------------------------------------------------------
    def _count_pending(self) -> int:
        return sum(
            int(self._spool.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])
            for table in ("spool", "pending_occupancy", "pending_transactions")
        )

    def spooled_count(self) -> int:
        """Events waiting in the spool for the primary."""
        with self._lock:
            return int(self._spool.execute("SELECT COUNT(*) FROM spool").fetchone()[0])

    def _append(self, events: Sequence[Event]) -> int:
        validate_events(events)
        rows = [(e.event_id, e.to_json()) for e in events]
        try:
            self._spool.execute("BEGIN IMMEDIATE")
            before = self._spool.total_changes
            self._spool.executemany(
                "INSERT OR IGNORE INTO spool (event_id, event) VALUES (?, ?)", rows
            )
            self._spool.execute("COMMIT")
        except sqlite3.Error as exc:
            if self._spool.in_transaction:
                self._spool.execute("ROLLBACK")
            raise StoreUnavailableError(
                f"primary store unavailable and the spool {self.spool_path} cannot be "
                f"written ({exc}): {len(events)} events NOT acknowledged"
            ) from exc
        self._pending = True
        self._wake.set()
        return self._spool.total_changes - before

    def flush(self) -> bool:
        """Replay everything spooled into the primary; ``True`` when the spool is empty.

        Returns ``False`` (and keeps the rest) when the primary is still unavailable.
        The lock is taken per batch, so writers keep spooling during a long replay.
        """
        try:
            while True:
                with self._lock:
                    if not self._pending:
                        return True
                    if self._flush_event_batch():
                        continue
                    self._flush_occupancy()
                    self._pending = self._count_pending() > 0
                    return not self._pending
        except StoreUnavailableError as exc:
            logger.debug("primary store still unavailable: %s", exc)
            self._primary_down_until = time.monotonic() + self._flush_interval
            return False

    def _flush_event_batch(self) -> bool:
        """Replay the oldest batch; ``False`` when no event is spooled."""
        rows = self._spool.execute(
            "SELECT seq, event FROM spool ORDER BY seq LIMIT ?", (self._batch_size,)
        ).fetchall()
        if not rows:
            return False
        parsed: list[tuple[int, Event]] = []
        for seq, payload in rows:
            try:
                parsed.append((seq, Event.from_dict(json.loads(payload))))
            except (ValueError, KeyError, TypeError) as exc:
                self._dead_letter(seq, payload, exc)
        try:
            self.primary.write_events([event for _, event in parsed])
        except StoreUnavailableError:
            raise
        except Exception:
            self._write_one_by_one(parsed)
        else:
            self._spool.execute("DELETE FROM spool WHERE seq <= ?", (rows[-1][0],))
        logger.info("replayed %d spooled events into the primary store", len(parsed))
        return True

    def _dead_letter(self, seq: int, payload: str, error: Exception) -> None:
        logger.error("spooled event moved to dead letters: %s", error)
        self._spool.execute("BEGIN IMMEDIATE")
        self._spool.execute(
            "INSERT INTO dead_letter (event, error) VALUES (?, ?)", (payload, repr(error))
        )
        self._spool.execute("DELETE FROM spool WHERE seq = ?", (seq,))
        self._spool.execute("COMMIT")

    def _write_one_by_one(self, parsed: list[tuple[int, Event]]) -> None:
        """Isolate events the primary rejects (bad data) so they cannot block the spool."""
        for seq, event in parsed:
            try:
                self.primary.write_events([event])
            except StoreUnavailableError:
                raise
            except Exception as exc:
                self._dead_letter(seq, event.to_json(), exc)
            else:
                self._spool.execute("DELETE FROM spool WHERE seq = ?", (seq,))

    def dead_letters(self) -> list[tuple[str, str]]:
        """Spooled entries the primary could not take, as ``(event JSON, error)``.

        They are kept (never silently dropped) for an operator to inspect.
        """
        with self._lock:
            rows = self._spool.execute("SELECT event, error FROM dead_letter ORDER BY seq")
            return [(str(event), str(error)) for event, error in rows]

    def _flush_occupancy(self) -> None:
        rows = self._spool.execute(
            "SELECT camera_id, counts, timestamp, approaching FROM pending_occupancy"
        ).fetchall()
        for camera_id, counts, timestamp, approaching in rows:
            try:
                self.primary.set_occupancy(
                    camera_id, json.loads(counts), float(timestamp), json.loads(approaching)
                )
            except StoreUnavailableError:
                raise
            except Exception as exc:  # a stale live count is dropped, not retried forever
                logger.error("primary store rejected occupancy of %s: %s", camera_id, exc)
            self._spool.execute("DELETE FROM pending_occupancy WHERE camera_id = ?", (camera_id,))
        buckets = dict(
            self._spool.execute("SELECT bucket_start, count FROM pending_transactions").fetchall()
        )
        if buckets:
            self.primary.add_transactions(buckets)
            self._spool.execute("DELETE FROM pending_transactions")

    def _flush_loop(self) -> None:
        while not self._stopping.is_set():
            self._wake.wait(self._flush_interval)
            if self._stopping.is_set():
                return
            try:
                # Probe without the lock, so writers never wait on an unreachable primary.
                if self._pending and self.primary.ping() and self.flush():
                    self._wake.clear()
            except Exception:
                logger.exception("spool replay failed; retrying in %.1f s", self._flush_interval)

    def _flush_before_read(self) -> None:
        """During an outage reads fail fast; during a replay they see the primary as it is."""
        if self._pending and time.monotonic() < self._primary_down_until:
            raise StoreUnavailableError("primary store unavailable (events are spooled)")

    # events ---------------------------------------------------------------------------
    def write_events(self, events: Sequence[Event]) -> int:
        """Returns the new events in the primary, or the events newly spooled."""
        if not events:
            return 0
        with self._lock:
            # While anything is spooled, new events queue behind it: order is kept.
            if self._pending:
                return self._append(events)
            try:
                return self.primary.write_events(events)
            except StoreUnavailableError as exc:
                self._primary_down_until = time.monotonic() + self._flush_interval
                logger.warning("primary unavailable, spooling %d events: %s", len(events), exc)
                return self._append(events)

    def query_events(self, query: EventQuery) -> list[Event]:
        self._flush_before_read()
        return self.primary.query_events(query)

    def delete_events_before(self, timestamp: float) -> int:
        with self._lock:
            self._spool.execute("BEGIN IMMEDIATE")
            rows = self._spool.execute("SELECT seq, event FROM spool").fetchall()
            old = [seq for seq, e in rows if json.loads(e)["timestamp"] < timestamp]
            self._spool.executemany("DELETE FROM spool WHERE seq = ?", [(s,) for s in old])
            self._spool.execute("COMMIT")
        return len(old) + self.primary.delete_events_before(timestamp)

    def delete_events_with_attribute(self, key: str, value: str) -> int:
        with self._lock:
            self._spool.execute("BEGIN IMMEDIATE")
            rows = self._spool.execute("SELECT seq, event FROM spool").fetchall()
            erased = [
                seq for seq, e in rows if (json.loads(e).get("attributes") or {}).get(key) == value
            ]
            self._spool.executemany("DELETE FROM spool WHERE seq = ?", [(s,) for s in erased])
            self._spool.execute("COMMIT")
            if erased:
                self._spool.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return len(erased) + self.primary.delete_events_with_attribute(key, value)

    def tail_events(
        self, last_id: str | None, block_ms: int = 0, limit: int = 100
    ) -> tuple[str, list[Event]]:
        self._flush_before_read()
        return self.primary.tail_events(last_id, block_ms, limit)

    def count_events(
        self, start: float, end: float, bucket_seconds: int = 60
    ) -> dict[tuple[float, str, str], int]:
        self._flush_before_read()
        return self.primary.count_events(start, end, bucket_seconds)

    def event_facts(self, start: float, end: float, types: frozenset[EventType]) -> list[EventFact]:
        self._flush_before_read()
        return self.primary.event_facts(start, end, types)

    def events_version(self) -> str | None:
        self._flush_before_read()
        return self.primary.events_version()

    # occupancy and transactions ---------------------------------------------------------
    def set_occupancy(
        self,
        camera_id: str,
        counts: Mapping[str, int],
        timestamp: float,
        approaching: Mapping[str, int] | None = None,
    ) -> None:
        checked = check_occupancy_counts(counts, approaching)
        with self._lock:
            if not self._pending:
                try:
                    self.primary.set_occupancy(camera_id, counts, timestamp, approaching)
                    return
                except StoreUnavailableError:
                    self._primary_down_until = time.monotonic() + self._flush_interval
            self._spool.execute(
                "INSERT INTO pending_occupancy (camera_id, counts, timestamp, approaching) "
                "VALUES (?, ?, ?, ?) ON CONFLICT (camera_id) DO UPDATE SET "
                "counts = excluded.counts, timestamp = excluded.timestamp, "
                "approaching = excluded.approaching",
                (
                    camera_id,
                    json.dumps({z: count for z, (count, _) in checked.items()}),
                    float(timestamp),
                    json.dumps({z: soon for z, (_, soon) in checked.items()}),
                ),
            )
            self._pending = True
            self._wake.set()

    def get_occupancy(self) -> tuple[str, dict[str, ZoneOccupancy]]:
        self._flush_before_read()
        return self.primary.get_occupancy()

    def add_transactions(self, buckets: Mapping[float, int]) -> None:
        _check_counts(buckets, "transaction count of bucket")
        with self._lock:
            if not self._pending:
                try:
                    self.primary.add_transactions(buckets)
                    return
                except StoreUnavailableError:
                    self._primary_down_until = time.monotonic() + self._flush_interval
            self._spool.executemany(
                "INSERT INTO pending_transactions (bucket_start, count) VALUES (?, ?) "
                "ON CONFLICT (bucket_start) DO UPDATE SET count = excluded.count",
                [(float(s), int(c)) for s, c in buckets.items()],
            )
            self._pending = True
            self._wake.set()

    def get_transactions(self, start: float, end: float) -> dict[float, int]:
        self._flush_before_read()
        return self.primary.get_transactions(start, end)

    # camera states: live only, never spooled (a report older than the outage means nothing) ----
    def add_heatmap(self, cells: Sequence[HeatmapCell]) -> None:
        """Straight to the primary: on an outage the camera worker keeps the sums and retries."""
        self.primary.add_heatmap(cells)

    def get_heatmap(
        self, start: float, end: float, camera_id: str | None = None
    ) -> list[HeatmapCell]:
        return self.primary.get_heatmap(start, end, camera_id)

    def delete_heatmap_before(self, timestamp: float) -> int:
        return self.primary.delete_heatmap_before(timestamp)

    def put_camera_report(self, report: CameraReport) -> None:
        self.primary.put_camera_report(report)

    def get_camera_reports(self) -> dict[str, CameraReport]:
        return self.primary.get_camera_reports()

    # opt-in: never spooled (a check-in or an erasure is answered now, or 503) --------------
    def optin_subject_key(self) -> bytes:
        return self.primary.optin_subject_key()

    def record_consent(self, record: ConsentRecord) -> None:
        self.primary.record_consent(record)

    def consents(self, member_token: str) -> list[ConsentRecord]:
        return self.primary.consents(member_token)

    def add_checkin(self, checkin: CheckIn) -> None:
        self.primary.add_checkin(checkin)

    def checkins(
        self, start: float | None = None, end: float | None = None, member_token: str | None = None
    ) -> list[CheckIn]:
        return self.primary.checkins(start, end, member_token)

    def add_link(self, link: TrackLink) -> None:
        self.primary.add_link(link)

    def links(
        self, start: float | None = None, end: float | None = None, member_token: str | None = None
    ) -> list[TrackLink]:
        return self.primary.links(start, end, member_token)

    def erase_member(self, member_token: str) -> int:
        return self.primary.erase_member(member_token)

    def append_audit(self, entry: AuditEntry) -> None:
        self.primary.append_audit(entry)

    def audit_log(self, start: float | None = None, subject: str | None = None) -> list[AuditEntry]:
        return self.primary.audit_log(start, subject)

    def delete_checkins_before(self, timestamp: float) -> int:
        return self.primary.delete_checkins_before(timestamp)

    def delete_consents_before(self, timestamp: float) -> int:
        return self.primary.delete_consents_before(timestamp)

    def delete_audit_before(self, timestamp: float) -> int:
        return self.primary.delete_audit_before(timestamp)

    # layout, keys, health ------------------------------------------------------------------
    def get_layout(self) -> str | None:
        return self.primary.get_layout()

    def put_layout(self, layout_json: str) -> None:
        self.primary.put_layout(layout_json)

    def put_api_key(self, record: ApiKeyRecord) -> None:
        self.primary.put_api_key(record)

    def find_api_key(self, key_hash: str) -> ApiKeyRecord | None:
        return self.primary.find_api_key(key_hash)

    def list_api_keys(self) -> list[ApiKeyRecord]:
        return self.primary.list_api_keys()

    def delete_api_key(self, key_id: str) -> bool:
        return self.primary.delete_api_key(key_id)

    def live_floor(self, worker: str) -> LiveFloorLink | None:
        """The primary's (live floor tracks are ephemeral: never spooled)."""
        return self.primary.live_floor(worker)

    def ping(self) -> bool:
        return self.primary.ping()

    def close(self) -> None:
        """Stop the flusher, try a last replay, close both stores (the spool file stays)."""
        self._stopping.set()
        self._wake.set()
        self._flusher.join(timeout=10)
        self.flush()
        with self._lock:
            self._spool.close()
        self.primary.close()
