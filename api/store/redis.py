"""Redis store: one Redis (or Redis Cluster) serves every store of a chain.

Every key of a store is ``ss:{<store_id>}:<name>``; the ``{…}`` hash tag puts
all keys of one store in one cluster slot, so the Lua scripts below run
atomically on them even on a cluster.

Key layout (``S`` = store id):

====================  ========  ===================================================
key                   type      content
====================  ========  ===================================================
``ss:{S}:ev``         hash      event_id → event JSON (also the idempotency set)
``ss:{S}:ev:ts``      zset      event_id scored by timestamp (range queries)
``ss:{S}:ev:sid``     hash      event_id → entry id in the stream (for erasure)
``ss:{S}:stream``     stream    one entry ``id=<event_id>`` per new event (live feed,
                                consumer groups); holds no event content
``ss:{S}:cnt:<min>``  hash      ``<type>|<target>`` → count, per minute (Unix min)
``ss:{S}:occ``        hash      zone_id → ``{"camera_id", "count", "updated_at"}``
``ss:{S}:occ:ver``    string    occupancy version counter (``INCR``)
``ss:{S}:meta``       hash      ``epoch`` (random, set once), ``purged_before``,
                                ``events_version`` (``HINCRBY`` on each event change)
``ss:{S}:tx``         hash      bucket start → transaction count
``ss:{S}:heat:<hour>``hash      ``<x>|<y>|<camera_id>`` → person-seconds (floor heatmap),
                                per hour bucket start (Unix seconds)
``ss:{S}:heat:hours`` zset      hour bucket starts that have a heatmap hash
``ss:{S}:layout``     string    layout JSON
``ss:{S}:keys``       hash      key hash → API key record JSON (hashes only)
``ss:{S}:optin:…``    various   consent, check-ins, links, audit (:mod:`.redis_optin`)
``ss:{S}:floor:<cam>``string    a camera's live floor tracks (JSON, ``PX`` a few
                                seconds; :mod:`~storesense.api.store.live_floor`)
====================  ========  ===================================================

A write is one Lua script (``HSETNX`` on the event hash decides whether the event
is new, then ``ZADD``, ``XADD``, ``HINCRBY`` of the minute counter), so a retry
after a lost reply never duplicates anything. Erasure and retention delete the
event from every key and decrement its minute counter in one script; the stream
entry holds only the event id, so nothing of the event stays in the stream's
memory after ``XDEL``.

Durability: a write is acknowledged once Redis applied it. Whether it survives a
Redis restart is the operator's choice of persistence: ``appendonly yes`` with
``appendfsync always`` (no acknowledged event lost) or ``everysec`` (up to one
second lost on a crash of the Redis host). After an erasure the AOF still holds
the old commands until Redis rewrites it (``BGREWRITEAOF``, which the store
requests after an erasure when AOF is on).
"""

from __future__ import annotations

import json
import math
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import redis
import redis.exceptions
from storesense.api.store.base import (
    HEATMAP_BUCKET_S,
    ApiKeyRecord,
    CameraReport,
    EventQuery,
    HeatmapCell,
    Store,
    ZoneOccupancy,
    check_bucket_seconds,
    check_heatmap_cells,
    check_occupancy_counts,
    check_tail_args,
    events_matching,
    validate_events,
    validate_store_id,
)
from storesense.api.store.live_floor import LiveFloorLink
from storesense.api.store.redis_errors import redis_errors
from storesense.api.store.redis_optin import RedisOptInKeys
from storesense.api.store.url import parse_store_url
from storesense.zones.events import Event

_PAGE = 1000

# KEYS: ev, ts, sid, stream, meta, then one minute-counter key per event.
# ARGV: per event: event_id, timestamp, json, counter field.
_WRITE_SCRIPT = """
local purged = redis.call('HGET', KEYS[5], 'purged_before')
if purged then purged = tonumber(purged) end
local new = 0
for i = 1, #ARGV / 4 do
    local id = ARGV[4 * i - 3]
    local ts = tonumber(ARGV[4 * i - 2])
    if (not purged or ts >= purged) and redis.call('HSETNX', KEYS[1], id, ARGV[4 * i - 1]) == 1 then
        redis.call('ZADD', KEYS[2], ARGV[4 * i - 2], id)
        local sid = redis.call('XADD', KEYS[4], '*', 'id', id)
        redis.call('HSET', KEYS[3], id, sid)
        redis.call('HINCRBY', KEYS[5 + i], ARGV[4 * i], 1)
        new = new + 1
    end
end
if new > 0 then redis.call('HINCRBY', KEYS[5], 'events_version', 1) end
return new
"""

# KEYS: heat:hours, then one heat:<hour> key per cell. ARGV: per cell: hour, field, seconds.
_HEATMAP_SCRIPT = """
for i = 1, #ARGV / 3 do
    redis.call('ZADD', KEYS[1], ARGV[3 * i - 2], ARGV[3 * i - 2])
    redis.call('HINCRBYFLOAT', KEYS[1 + i], ARGV[3 * i - 1], ARGV[3 * i])
end
return #ARGV / 3
"""

# KEYS: ev, ts, sid, stream, meta, then one minute-counter key per event.
# ARGV: per event: event_id, counter field.
_DELETE_SCRIPT = """
local deleted = 0
for i = 1, #ARGV / 2 do
    local id = ARGV[2 * i - 1]
    if redis.call('HDEL', KEYS[1], id) == 1 then
        redis.call('ZREM', KEYS[2], id)
        local sid = redis.call('HGET', KEYS[3], id)
        if sid then
            redis.call('XDEL', KEYS[4], sid)
            redis.call('HDEL', KEYS[3], id)
        end
        local counter = KEYS[5 + i]
        if redis.call('HINCRBY', counter, ARGV[2 * i], -1) <= 0 then
            redis.call('HDEL', counter, ARGV[2 * i])
        end
        deleted = deleted + 1
    end
end
if deleted > 0 then redis.call('HINCRBY', KEYS[5], 'events_version', 1) end
return deleted
"""

# KEYS: occ, ver, meta. ARGV: camera_id, new epoch, then (zone_id, count, row JSON) triples.
_OCCUPANCY_SCRIPT = """
local camera = ARGV[1]
local wanted = {}
for i = 3, #ARGV, 3 do wanted[ARGV[i]] = tonumber(ARGV[i + 1]) end
local changed = false
local current = redis.call('HGETALL', KEYS[1])
for i = 1, #current, 2 do
    local zone = current[i]
    local row = cjson.decode(current[i + 1])
    if row['camera_id'] == camera and wanted[zone] == nil then
        redis.call('HDEL', KEYS[1], zone)
        changed = true
    end
end
for i = 3, #ARGV, 3 do
    local zone = ARGV[i]
    local old = redis.call('HGET', KEYS[1], zone)
    if not old then
        changed = true
    else
        local row = cjson.decode(old)
        local soon = cjson.decode(ARGV[i + 2])['approaching']
        if row['count'] ~= wanted[zone] or row['camera_id'] ~= camera
            or (row['approaching'] or 0) ~= soon then changed = true end
    end
    redis.call('HSET', KEYS[1], zone, ARGV[i + 2])
end
if changed then redis.call('INCR', KEYS[2]) end
redis.call('HSETNX', KEYS[3], 'epoch', ARGV[2])
return changed and 1 or 0
"""

# KEYS: occ, ver, meta. Reads everything in one atomic step.
_READ_OCCUPANCY_SCRIPT = """
return {redis.call('HGET', KEYS[3], 'epoch') or '0', redis.call('GET', KEYS[2]) or '0',
        redis.call('HGETALL', KEYS[1])}
"""


def _minute(timestamp: float) -> int:
    return math.floor(timestamp / 60)


def _counter_field(event: Event) -> str:
    return f"{event.type}|{event.target}"


DEFAULT_SOCKET_TIMEOUT_S = 1.0
"""Longest wait for one Redis reply: a hung Redis (SIGSTOP, a frozen VM) is reported as
unavailable after this, so cameras spool and the API answers 503 instead of stalling."""
DEFAULT_CONNECT_TIMEOUT_S = 1.0


def redis_client(
    url: str,
    *,
    socket_timeout: float = DEFAULT_SOCKET_TIMEOUT_S,
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT_S,
    retries: int = 1,
) -> Any:
    """The one place StoreSense creates a redis-py client (the store, opt-in records included).

    Every command has a socket (read/write) timeout and a connect timeout; URL
    query options override them (``redis://host/0?socket_timeout=0.5``). A
    dropped connection is retried ``retries`` times (Redis restarted); a
    *timeout* is not retried, so a hung server costs one ``socket_timeout``,
    not several.
    """
    from redis.backoff import ExponentialBackoff
    from redis.retry import Retry

    if not (socket_timeout > 0 and connect_timeout > 0) or retries < 0:
        raise ValueError(
            f"socket_timeout and connect_timeout must be > 0 and retries >= 0; got "
            f"{socket_timeout}, {connect_timeout}, {retries}"
        )
    options: dict[str, Any] = {
        "decode_responses": True,
        "socket_timeout": socket_timeout,
        "socket_connect_timeout": connect_timeout,
        "health_check_interval": 30,
    }
    retry = Retry(
        ExponentialBackoff(cap=0.5, base=0.05),
        retries,
        supported_errors=(redis.exceptions.ConnectionError,),
    )
    parsed = parse_store_url(url)
    if parsed.backend != "redis":
        raise ValueError(f"{url!r} is not a Redis store URL")
    if parsed.cluster:
        from redis.cluster import RedisCluster

        return RedisCluster.from_url(parsed.client_url, retry=retry, **options)
    return redis.Redis.from_url(
        parsed.client_url, retry=retry, retry_on_error=[redis.exceptions.ConnectionError], **options
    )


class RedisStore(RedisOptInKeys, Store):
    """Store in Redis under the ``ss:{store_id}:`` namespace.

    ``client`` is any ``redis.Redis`` / ``redis.cluster.RedisCluster`` created
    with ``decode_responses=True`` (``from_url`` builds one).

    Example (needs a running Redis)::

        store = RedisStore.from_url("redis://localhost:6380/0", "s1")
        store.write_events(events)
    """

    def __init__(self, client: Any, store_id: str) -> None:
        self.store_id = validate_store_id(store_id)
        self._client = client
        prefix = f"ss:{{{self.store_id}}}:"
        self._prefix = prefix
        self._k_events = prefix + "ev"
        self._k_times = prefix + "ev:ts"
        self._k_stream_ids = prefix + "ev:sid"
        self._k_stream = prefix + "stream"
        self._k_meta = prefix + "meta"
        self._k_occupancy = prefix + "occ"
        self._k_occupancy_version = prefix + "occ:ver"
        self._k_transactions = prefix + "tx"
        self._k_layout = prefix + "layout"
        self._k_cameras = prefix + "cameras"
        self._k_keys = prefix + "keys"
        self._write = client.register_script(_WRITE_SCRIPT)
        self._delete_script = client.register_script(_DELETE_SCRIPT)
        self._heatmap = client.register_script(_HEATMAP_SCRIPT)
        self._occupancy = client.register_script(_OCCUPANCY_SCRIPT)
        self._read_occupancy = client.register_script(_READ_OCCUPANCY_SCRIPT)
        # Longest single blocking XREAD: stays below the socket read timeout.
        connection_kwargs: dict[str, Any] = getattr(client, "get_connection_kwargs", dict)()
        socket_timeout = float(connection_kwargs.get("socket_timeout") or 5.0)
        self._max_block_ms = max(1, int(socket_timeout * 500))

    @classmethod
    def from_url(
        cls,
        url: str,
        store_id: str,
        socket_timeout: float = DEFAULT_SOCKET_TIMEOUT_S,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT_S,
        retries: int = 1,
    ) -> RedisStore:
        """``redis://``, ``rediss://``, ``unix://`` or ``redis+cluster://`` (``rediss+cluster://``)."""
        return cls(
            redis_client(
                url,
                socket_timeout=socket_timeout,
                connect_timeout=connect_timeout,
                retries=retries,
            ),
            store_id,
        )

    @property
    def client(self) -> Any:
        """The redis-py client (for admin tools and tests)."""
        return self._client

    def key(self, name: str) -> str:
        """Full key of ``name`` in this store's namespace, e.g. ``ss:{s1}:stream``."""
        return self._prefix + name

    # events -------------------------------------------------------------------------
    @redis_errors
    def write_events(self, events: Sequence[Event]) -> int:
        if not events:
            return 0
        validate_events(events)
        keys = [self._k_events, self._k_times, self._k_stream_ids, self._k_stream, self._k_meta]
        args: list[Any] = []
        for event in events:
            keys.append(self.key(f"cnt:{_minute(event.timestamp)}"))
            args.extend(
                (
                    event.event_id,
                    repr(float(event.timestamp)),
                    event.to_json(),
                    _counter_field(event),
                )
            )
        return int(self._write(keys=keys, args=args))

    def _events_by_id(self, event_ids: Sequence[str]) -> list[Event]:
        if not event_ids:
            return []
        payloads = self._client.hmget(self._k_events, list(event_ids))
        return [Event.from_dict(json.loads(p)) for p in payloads if p is not None]

    def _iter_ids_by_time(self, start: float | None, end: float | None) -> Iterator[list[str]]:
        low = "-inf" if start is None else repr(float(start))
        high = "+inf" if end is None else f"({float(end)!r}"
        offset = 0
        while True:
            ids = self._client.zrangebyscore(self._k_times, low, high, start=offset, num=_PAGE)
            if not ids:
                return
            yield list(ids)
            if len(ids) < _PAGE:
                return
            offset += len(ids)

    @redis_errors
    def query_events(self, query: EventQuery) -> list[Event]:
        if query.limit is not None and query.limit < 0:
            raise ValueError(f"limit must not be negative, got {query.limit}")
        selected: list[Event] = []
        for ids in self._iter_ids_by_time(query.start, query.end):
            # The zset orders equal scores by member, i.e. (timestamp, event_id).
            selected.extend(events_matching(self._events_by_id(ids), query))
            if query.limit is not None and len(selected) >= query.limit:
                break
        return selected[: query.limit] if query.limit is not None else selected

    def _delete_events(self, events: Sequence[Event]) -> int:
        deleted = 0
        for first in range(0, len(events), _PAGE):
            chunk = events[first : first + _PAGE]
            keys = [
                self._k_events,
                self._k_times,
                self._k_stream_ids,
                self._k_stream,
                self._k_meta,
            ]
            args: list[str] = []
            for event in chunk:
                keys.append(self.key(f"cnt:{_minute(event.timestamp)}"))
                args.extend((event.event_id, _counter_field(event)))
            deleted += int(self._delete_script(keys=keys, args=args))
        return deleted

    @redis_errors
    def delete_events_before(self, timestamp: float) -> int:
        # The horizon first: a late replay of an older event can no longer add it back.
        purged = self._client.hget(self._k_meta, "purged_before")
        if purged is None or float(purged) < timestamp:
            self._client.hset(self._k_meta, "purged_before", repr(float(timestamp)))
        deleted = 0
        while True:
            ids = self._client.zrangebyscore(
                self._k_times, "-inf", f"({float(timestamp)!r}", start=0, num=_PAGE
            )
            if not ids:
                return deleted
            events = self._events_by_id(ids)
            removed = self._delete_events(events)
            deleted += removed
            if removed == 0:
                # Index entries whose event is already gone: drop them.
                self._client.zrem(self._k_times, *ids)

    @redis_errors
    def delete_events_with_attribute(self, key: str, value: str) -> int:
        # A full scan: erasure is rare, and an index of member tokens would itself be a trace.
        matches: list[Event] = []
        for _, payload in self._client.hscan_iter(self._k_events, count=_PAGE):
            event = Event.from_dict(json.loads(payload))
            if event.attributes.get(key) == value:
                matches.append(event)
        deleted = self._delete_events(matches)
        if deleted:
            self._rewrite_aof()
        return deleted

    def _rewrite_aof(self) -> None:
        try:
            if self._client.config_get("appendonly").get("appendonly") == "yes":
                self._client.bgrewriteaof()
        except redis.exceptions.ResponseError:
            pass  # CONFIG/BGREWRITEAOF disabled (managed Redis) or a rewrite already running

    @redis_errors
    def tail_events(
        self, last_id: str | None, block_ms: int = 0, limit: int = 100
    ) -> tuple[str, list[Event]]:
        check_tail_args(block_ms, limit)
        if last_id is None:
            newest = self._client.xrevrange(self._k_stream, count=1)
            cursor = newest[0][0] if newest else "0-0"
        else:
            cursor = "0-0" if last_id == "0" else last_id
            major, _, minor = cursor.partition("-")
            if not (major.isdigit() and (minor.isdigit() or minor == "")):
                raise ValueError(f"malformed event cursor {last_id!r}: expected a stream id")
        deadline = time.monotonic() + block_ms / 1000
        while True:
            remaining_ms = int((deadline - time.monotonic()) * 1000)
            block = min(remaining_ms, self._max_block_ms) if remaining_ms > 0 else None
            reply = self._client.xread({self._k_stream: cursor}, count=limit, block=block)
            entries = reply[0][1] if reply else []
            if entries:
                cursor = entries[-1][0]
                events = self._events_by_id([fields["id"] for _, fields in entries])
                if events or block is None:
                    return cursor, events
            elif block is None or time.monotonic() >= deadline:
                return cursor, []

    @redis_errors
    def events_version(self) -> str | None:
        epoch, version = self._client.hmget(self._k_meta, ["epoch", "events_version"])
        return f"{epoch or '0'}-{version or '0'}"

    # consumer groups (post-processing) -----------------------------------------------
    @redis_errors
    def create_consumer_group(self, group: str, start_id: str = "0") -> bool:
        """Create ``group`` on the event stream; ``False`` when it already exists."""
        try:
            self._client.xgroup_create(self._k_stream, group, id=start_id, mkstream=True)
        except redis.exceptions.ResponseError as exc:
            if "BUSYGROUP" in str(exc):
                return False
            raise
        return True

    @redis_errors
    def read_group(
        self, group: str, consumer: str, count: int = 100, block_ms: int = 0
    ) -> list[tuple[str, Event | None]]:
        """New entries for ``consumer`` as ``(entry_id, event)``; ack each with :meth:`ack`.

        ``event`` is ``None`` when the event was erased after it was written.
        """
        block = min(block_ms, self._max_block_ms) if block_ms > 0 else None
        reply = self._client.xreadgroup(
            group, consumer, {self._k_stream: ">"}, count=count, block=block
        )
        entries = reply[0][1] if reply else []
        ids = [fields["id"] for _, fields in entries]
        payloads = self._client.hmget(self._k_events, ids) if ids else []
        return [
            (entry_id, None if p is None else Event.from_dict(json.loads(p)))
            for (entry_id, _), p in zip(entries, payloads, strict=True)
        ]

    @redis_errors
    def ack(self, group: str, entry_ids: Sequence[str]) -> int:
        """Acknowledge processed entries of ``group``; returns how many were pending."""
        return int(self._client.xack(self._k_stream, group, *entry_ids)) if entry_ids else 0

    # occupancy -------------------------------------------------------------------------
    @redis_errors
    def set_occupancy(
        self,
        camera_id: str,
        counts: Mapping[str, int],
        timestamp: float,
        approaching: Mapping[str, int] | None = None,
    ) -> None:
        args: list[Any] = [camera_id, uuid.uuid4().hex[:8]]
        for zone_id, (count, soon) in check_occupancy_counts(counts, approaching).items():
            row = {
                "camera_id": camera_id,
                "count": count,
                "updated_at": float(timestamp),
                "approaching": soon,
            }
            args.extend((zone_id, count, json.dumps(row)))
        self._occupancy(
            keys=[self._k_occupancy, self._k_occupancy_version, self._k_meta], args=args
        )

    @redis_errors
    def get_occupancy(self) -> tuple[str, dict[str, ZoneOccupancy]]:
        epoch, version, flat = self._read_occupancy(
            keys=[self._k_occupancy, self._k_occupancy_version, self._k_meta]
        )
        zones: dict[str, ZoneOccupancy] = {}
        for zone_id, payload in zip(flat[::2], flat[1::2], strict=True):
            row = json.loads(payload)
            zones[zone_id] = ZoneOccupancy(
                zone_id,
                str(row["camera_id"]),
                int(row["count"]),
                float(row["updated_at"]),
                int(row.get("approaching", 0)),
            )
        return f"{epoch}-{version}", dict(sorted(zones.items()))

    # transactions ----------------------------------------------------------------------
    @redis_errors
    def add_transactions(self, buckets: Mapping[float, int]) -> None:
        mapping: dict[str, int] = {}
        for start, count in buckets.items():
            if int(count) < 0:
                raise ValueError(f"transaction count of bucket {start} must not be negative")
            mapping[repr(float(start))] = int(count)
        if mapping:
            self._client.hset(self._k_transactions, mapping=mapping)

    @redis_errors
    def get_transactions(self, start: float, end: float) -> dict[float, int]:
        stored = self._client.hgetall(self._k_transactions)
        selected = {float(k): int(v) for k, v in stored.items() if start <= float(k) < end}
        return dict(sorted(selected.items()))

    # floor heatmap -----------------------------------------------------------------------
    @redis_errors
    def add_heatmap(self, cells: Sequence[HeatmapCell]) -> None:
        check_heatmap_cells(cells)
        if not cells:
            return
        for first in range(0, len(cells), _PAGE):
            chunk = cells[first : first + _PAGE]
            args: list[Any] = []
            for cell in chunk:
                args.extend(
                    (
                        int(cell.hour),
                        f"{int(cell.x)}|{int(cell.y)}|{cell.camera_id}",
                        repr(float(cell.person_seconds)),
                    )
                )
            keys = [self.key("heat:hours")] + [self.key(f"heat:{int(c.hour)}") for c in chunk]
            self._heatmap(keys=keys, args=args)

    @redis_errors
    def get_heatmap(
        self, start: float, end: float, camera_id: str | None = None
    ) -> list[HeatmapCell]:
        hours = [
            int(h)
            for h in self._client.zrangebyscore(self.key("heat:hours"), float(start), f"({end}")
        ]
        cells: list[HeatmapCell] = []
        for first in range(0, len(hours), _PAGE):
            chunk = hours[first : first + _PAGE]
            pipe = self._client.pipeline(transaction=False)
            for hour in chunk:
                pipe.hgetall(self.key(f"heat:{hour}"))
            for hour, fields in zip(chunk, pipe.execute(), strict=True):
                for field, value in fields.items():
                    x, y, camera = field.split("|", 2)
                    if camera_id is None or camera == camera_id:
                        cells.append(HeatmapCell(camera, float(hour), int(x), int(y), float(value)))
        cells.sort(key=lambda c: (c.camera_id, c.hour, c.y, c.x))
        return cells

    @redis_errors
    def delete_heatmap_before(self, timestamp: float) -> int:
        hours = self._client.zrangebyscore(
            self.key("heat:hours"), "-inf", float(timestamp) - HEATMAP_BUCKET_S
        )
        deleted = 0
        for hour in hours:
            key = self.key(f"heat:{int(hour)}")
            deleted += int(self._client.hlen(key))
            self._client.delete(key)
            self._client.zrem(self.key("heat:hours"), hour)
        return deleted

    # counts ------------------------------------------------------------------------------
    @redis_errors
    def count_events(
        self, start: float, end: float, bucket_seconds: int = 60
    ) -> dict[tuple[float, str, str], int]:
        """From the per-minute counters when the range and buckets are whole minutes."""
        check_bucket_seconds(bucket_seconds)
        if bucket_seconds % 60 or start % 60 or end % 60:
            return super().count_events(start, end, bucket_seconds)
        minutes = list(range(_minute(start), _minute(end)))
        counts: dict[tuple[float, str, str], int] = {}
        for first in range(0, len(minutes), _PAGE):
            chunk = minutes[first : first + _PAGE]
            pipe = self._client.pipeline(transaction=False)
            for minute in chunk:
                pipe.hgetall(self.key(f"cnt:{minute}"))
            for minute, fields in zip(chunk, pipe.execute(), strict=True):
                bucket = float((minute * 60 // bucket_seconds) * bucket_seconds)
                for field, value in fields.items():
                    event_type, _, target = field.partition("|")
                    if int(value) > 0:
                        key = (bucket, event_type, target)
                        counts[key] = counts.get(key, 0) + int(value)
        return counts

    # layout and keys ---------------------------------------------------------------------
    @redis_errors
    def put_camera_report(self, report: CameraReport) -> None:
        payload = {"status": report.status_json, "reported_at": float(report.reported_at)}
        self._client.hset(self._k_cameras, report.camera_id, json.dumps(payload))

    @redis_errors
    def get_camera_reports(self) -> dict[str, CameraReport]:
        reports = {}
        for camera_id, value in self._client.hgetall(self._k_cameras).items():
            payload = json.loads(value)
            reports[str(camera_id)] = CameraReport(
                str(camera_id), str(payload["status"]), float(payload["reported_at"])
            )
        return reports

    @redis_errors
    def get_layout(self) -> str | None:
        value = self._client.get(self._k_layout)
        return None if value is None else str(value)

    @redis_errors
    def put_layout(self, layout_json: str) -> None:
        self._client.set(self._k_layout, layout_json)

    @staticmethod
    def _key_to_json(record: ApiKeyRecord) -> str:
        return json.dumps(
            {
                "key_id": record.key_id,
                "name": record.name,
                "key_hash": record.key_hash,
                "scopes": sorted(record.scopes),
                "created_at": record.created_at,
            }
        )

    @staticmethod
    def _key_from_json(payload: str) -> ApiKeyRecord:
        data = json.loads(payload)
        return ApiKeyRecord(
            key_id=data["key_id"],
            name=data["name"],
            key_hash=data["key_hash"],
            scopes=frozenset(data["scopes"]),
            created_at=float(data["created_at"]),
        )

    @redis_errors
    def put_api_key(self, record: ApiKeyRecord) -> None:
        # Replacing a key id drops its old hash, as the SQLite store does.
        stale = [r.key_hash for r in self.list_api_keys() if r.key_id == record.key_id]
        pipe = self._client.pipeline(transaction=True)
        if stale:
            pipe.hdel(self._k_keys, *stale)
        pipe.hset(self._k_keys, record.key_hash, self._key_to_json(record))
        pipe.execute()

    @redis_errors
    def find_api_key(self, key_hash: str) -> ApiKeyRecord | None:
        payload = self._client.hget(self._k_keys, key_hash)
        return None if payload is None else self._key_from_json(payload)

    @redis_errors
    def list_api_keys(self) -> list[ApiKeyRecord]:
        records = [self._key_from_json(p) for p in self._client.hvals(self._k_keys)]
        return sorted(records, key=lambda r: (r.created_at, r.key_id))

    @redis_errors
    def delete_api_key(self, key_id: str) -> bool:
        hashes = [r.key_hash for r in self.list_api_keys() if r.key_id == key_id]
        return bool(hashes) and int(self._client.hdel(self._k_keys, *hashes)) > 0

    # live floor tracks across processes (jredis) ----------------------------------------
    def live_floor(self, worker: str) -> LiveFloorLink:
        """Shares live floor tracks under ``ss:{S}:floor:<camera>`` (see
        :mod:`storesense.api.store.live_floor`)."""
        return LiveFloorLink(self._client, self._prefix, worker)

    # health --------------------------------------------------------------------------------
    def ping(self) -> bool:
        try:
            return bool(self._client.ping())
        except (redis.exceptions.RedisError, OSError):
            return False

    def close(self) -> None:
        self._client.close()
