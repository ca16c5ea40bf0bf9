"""Live event stream (Server-Sent Events) and event listing.

One :class:`EventHub` thread tails the store (so every replica sees the events
of every worker) and fans each event out to per-client bounded queues; a client
that cannot keep up loses its oldest queued events (counted in
``storesense_sse_dropped_events_total`` and sent to it as an ``event: dropped``
notice), so a slow consumer never slows the pipeline or other clients.

Resuming: every message that ends a batch read from the store carries the store
cursor as its SSE ``id:``; a client that reconnects with ``Last-Event-ID`` (browsers'
``EventSource`` do this by themselves) first gets the events it missed, read from the
store, then the live stream, with no gap and no repeat.

The SSE framing, keep-alive comments and disconnect handling are ``sse-starlette``'s
(:class:`~sse_starlette.EventSourceResponse`); this module decides what is sent.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Depends, Header, HTTPException, Query, Request
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.concurrency import run_in_threadpool
from storesense.api import telemetry
from storesense.api.auth import Principal, Scope, require
from storesense.api.privacy.redaction import event_for_scope
from storesense.api.routers.counts import time_range
from storesense.api.schemas import EventOut
from storesense.api.store.base import EventQuery, Store, StoreUnavailableError
from storesense.zones.events import Event, EventType

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/v1", tags=["events"])


def event_out(event: Event, principal: Principal) -> EventOut:
    """The API view of an event, redacted by :func:`event_for_scope` (track id and
    member token for admin keys only)."""
    return EventOut.model_validate(event_for_scope(event, admin=principal.is_admin))


DISPLAY_RESUME_S = 30.0
"""A display-only key resuming with ``Last-Event-ID`` gets back at most the events
stamped in this many seconds before it reconnected (no history replay)."""

Cursor = str
"""A store cursor (``Store.tail_events``): what an SSE ``id:`` carries."""


@dataclass(eq=False)
class Subscriber:
    queue: asyncio.Queue[tuple[Event, Cursor | None]]
    """Events with the store cursor on the last one of each batch read from the store."""
    loop: asyncio.AbstractEventLoop
    zones: frozenset[str] | None
    types: frozenset[EventType] | None
    dropped: int = 0
    """Events dropped from this client's queue in all."""
    dropped_unreported: int = 0
    """Events dropped since the client was last told (an ``event: dropped`` notice)."""

    def wants(self, event: Event) -> bool:
        return (self.zones is None or event.target in self.zones) and (
            self.types is None or event.type in self.types
        )

    def offer(self, event: Event, cursor: Cursor | None = None) -> None:
        """Runs on the event loop: enqueue, dropping the oldest when full."""
        if self.queue.full():
            self.queue.get_nowait()
            self.dropped += 1
            self.dropped_unreported += 1
            telemetry.SSE_DROPPED.inc()
        self.queue.put_nowait((event, cursor))


class EventHub:
    """Tails the store in one thread and fans events out to SSE subscribers."""

    def __init__(self, store: Store, queue_size: int, poll_ms: int = 500) -> None:
        self._store = store
        self._queue_size = queue_size
        self._poll_ms = poll_ms
        self._subscribers: set[Subscriber] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._cursor: str | None = None
        self.error: str | None = None

    def start(self) -> None:
        """Start tailing from now (events written from here on are streamed)."""
        try:
            self._cursor, _ = self._store.tail_events(None)
        except StoreUnavailableError as exc:
            self.error = f"store unavailable: {exc}"
        self._thread = threading.Thread(target=self._run, name="event-hub", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(self._poll_ms / 1000 + 2)

    def subscribe(
        self, zones: frozenset[str] | None, types: frozenset[EventType] | None
    ) -> Subscriber:
        subscriber = Subscriber(
            asyncio.Queue(self._queue_size), asyncio.get_running_loop(), zones, types
        )
        with self._lock:
            self._subscribers.add(subscriber)
        telemetry.SSE_CLIENTS.inc()
        return subscriber

    def unsubscribe(self, subscriber: Subscriber) -> None:
        with self._lock:
            if subscriber in self._subscribers:
                self._subscribers.discard(subscriber)
                telemetry.SSE_CLIENTS.dec()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                if self._cursor is None:
                    self._cursor, _ = self._store.tail_events(None)
                self._cursor, events = self._store.tail_events(self._cursor, block_ms=self._poll_ms)
                self.error = None
            except StoreUnavailableError as exc:
                self.error = f"store unavailable: {exc}"
                self._stop.wait(1.0)
                continue
            except Exception as exc:
                logger.exception("tailing events failed")
                self.error = f"{type(exc).__name__}: {exc}"
                self._stop.wait(1.0)
                continue
            if not events:
                continue
            with self._lock:
                subscribers = list(self._subscribers)
            for subscriber in subscribers:
                wanted = [e for e in events if subscriber.wants(e)]
                if not wanted:
                    continue
                try:
                    subscriber.loop.call_soon_threadsafe(_deliver, subscriber, wanted, self._cursor)
                except RuntimeError:  # its event loop is closed: the client is gone
                    self.unsubscribe(subscriber)


def _deliver(subscriber: Subscriber, events: list[Event], cursor: Cursor) -> None:
    for event in events[:-1]:
        subscriber.offer(event)
    subscriber.offer(events[-1], cursor)


@dataclass(frozen=True)
class CatchUp:
    """What a (re)connecting client gets from the store before the live stream."""

    events: list[Event]
    cursor: Cursor
    """Where the store was when the catch-up ended (the client's next ``Last-Event-ID``)."""
    truncated: bool = False
    """More than ``max_events`` were missed: the rest was skipped up to now."""


def catch_up(
    store: Store,
    last_event_id: Cursor | None,
    wants: Callable[[Event], bool],
    max_events: int,
    batch: int = 500,
) -> CatchUp:
    """Events after ``last_event_id`` that ``wants`` keeps, up to the store's current end.

    ``None`` (a first connection) gives no events and the current cursor. After
    ``max_events`` read, the rest is skipped (``truncated``). A malformed cursor
    raises ``ValueError``.

    >>> from storesense.api.store.sqlite import SQLiteStore
    >>> store = SQLiteStore(":memory:", "doc")
    >>> start = catch_up(store, None, lambda e: True, 100)
    >>> store.write_events([Event.create(EventType.ZONE_ENTER, "doc", "c", "door", 1, 5.0)])
    1
    >>> [e.target for e in catch_up(store, start.cursor, lambda e: True, 100).events]
    ['door']
    """
    if last_event_id is None:
        return CatchUp([], store.tail_events(None)[0])
    cursor, read = last_event_id, 0
    kept: list[Event] = []
    while True:
        cursor, events = store.tail_events(cursor, limit=batch)
        if not events:
            return CatchUp(kept, cursor)
        kept.extend(e for e in events if wants(e))
        read += len(events)
        if read >= max_events:
            return CatchUp(kept, store.tail_events(None)[0], truncated=True)


def resume_filter(
    principal: Principal, wants: Callable[[Event], bool], now: float
) -> Callable[[Event], bool]:
    """Which missed events a reconnecting client may get back.

    Analyst and admin keys may read the history anyway (``GET /v1/events``), so
    they get every missed event. A display-only key is a live screen: it gets
    back only events of the last :data:`DISPLAY_RESUME_S` seconds (a network blip),
    never the history (``Last-Event-ID: 0`` replays nothing older).

    >>> from storesense.api.auth import Principal, Scope
    >>> screen = Principal("k1", "screen", frozenset({Scope.DISPLAY}))
    >>> keep = resume_filter(screen, lambda e: True, now=1000.0)
    >>> old = Event.create(EventType.ZONE_ENTER, "s", "c", "door", 1, 900.0)
    >>> recent = Event.create(EventType.ZONE_ENTER, "s", "c", "door", 1, 990.0)
    >>> keep(old), keep(recent)
    (False, True)
    """
    if Scope.ANALYST in principal.scopes:
        return wants
    oldest = now - DISPLAY_RESUME_S
    return lambda event: event.timestamp >= oldest and wants(event)


def _parse_types(types: list[str] | None) -> frozenset[EventType] | None:
    if not types:
        return None
    parsed = set()
    for name in types:
        try:
            parsed.add(EventType(name))
        except ValueError:
            known = ", ".join(t.value for t in EventType)
            raise HTTPException(422, f"unknown event type {name!r} (known: {known})") from None
    return frozenset(parsed)


_SEP = "\n"
"""Line ending of the stream's SSE messages."""


def _sse(event_name: str, data: str, event_id: Cursor | None = None) -> ServerSentEvent:
    return ServerSentEvent(data, event=event_name, id=event_id, sep=_SEP)


def _keepalive() -> ServerSentEvent:
    """The comment sent when nothing else was for ``sse_keepalive_s`` (proxies keep the
    connection open)."""
    return ServerSentEvent(comment="keepalive", sep=_SEP)


@router.get(
    "/events/stream",
    response_class=EventSourceResponse,
    responses={
        200: {"content": {"text/event-stream": {}}, "description": "SSE stream"},
        400: {"description": "malformed Last-Event-ID"},
    },
)
async def event_stream(
    request: Request,
    principal: Annotated[Principal, Depends(require(Scope.DISPLAY))],
    zone: Annotated[list[str] | None, Query(description="zone or line id; repeatable")] = None,
    type: Annotated[list[str] | None, Query(description="event type; repeatable")] = None,
    last_event_id: Annotated[
        str | None, Header(description="resume after this SSE id (sent by EventSource)")
    ] = None,
) -> EventSourceResponse:
    """Server-Sent Events of zone enter/exit, approaching, line crossings and shelf events.

    Each message is ``event: <type>`` with the event as JSON ``data``; the last
    message of each batch carries the store cursor as ``id:``. Reconnect with
    ``Last-Event-ID`` to receive the events missed in between first (display-only
    keys: only those of the last 30 s, no history). Filter with
    ``?zone=a&zone=b`` and ``?type=zone_enter``. Scope ``display``.
    """
    hub: EventHub = request.app.state.events
    settings = request.app.state.settings
    types = _parse_types(type)
    zones = frozenset(zone) if zone else None
    # Subscribe first, catch up second: the live queue then starts at or before the
    # catch-up's end; the overlap (a prefix of the live queue) is skipped by event id.
    subscriber = hub.subscribe(zones, types)
    resumable = resume_filter(principal, subscriber.wants, time.time())
    try:
        missed = await run_in_threadpool(
            catch_up,
            request.app.state.store,
            last_event_id.strip() if last_event_id else None,
            resumable,
            settings.sse_resume_max,
        )
    except ValueError as exc:
        hub.unsubscribe(subscriber)
        raise HTTPException(
            400, f"Last-Event-ID {last_event_id!r} is not a cursor of this store: {exc}"
        ) from None
    except BaseException:
        hub.unsubscribe(subscriber)
        raise

    async def stream() -> AsyncIterator[ServerSentEvent]:
        try:
            yield ServerSentEvent(comment="connected", retry=settings.sse_retry_ms, sep=_SEP)
            for i, event in enumerate(missed.events):
                last = i == len(missed.events) - 1
                body = event_out(event, principal).model_dump_json(exclude_none=True)
                yield _sse(str(event.type), body, missed.cursor if last else None)
            if not missed.events:
                yield ServerSentEvent(id=missed.cursor, sep=_SEP)
            if missed.truncated:
                notice = {
                    "dropped": None,
                    "reason": f"more than {settings.sse_resume_max} "
                    "missed events: resumed from now; GET /v1/events has the history",
                }
                yield _sse("dropped", json.dumps(notice))
            already_sent = {e.event_id for e in missed.events}
            while True:
                event, cursor = await subscriber.queue.get()
                if already_sent:
                    if event.event_id in already_sent:
                        continue
                    already_sent.clear()
                if subscriber.dropped_unreported:
                    notice_dropped = json.dumps({"dropped": subscriber.dropped_unreported})
                    subscriber.dropped_unreported = 0
                    yield _sse("dropped", notice_dropped)
                body = event_out(event, principal).model_dump_json(exclude_none=True)
                yield _sse(str(event.type), body, cursor)
        finally:
            hub.unsubscribe(subscriber)

    return EventSourceResponse(
        stream(),
        headers={"Cache-Control": "no-cache"},
        ping=settings.sse_keepalive_s,
        ping_message_factory=_keepalive,
        sep=_SEP,
    )


@router.get("/events", response_model=list[EventOut], response_model_exclude_none=True)
def list_events(
    request: Request,
    principal: Annotated[Principal, Depends(require(Scope.ANALYST))],
    from_: Annotated[str, Query(alias="from", description="Unix seconds or ISO 8601")],
    to: Annotated[str, Query(description="Unix seconds or ISO 8601 (exclusive)")],
    zone: Annotated[list[str] | None, Query()] = None,
    type: Annotated[list[str] | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=100_000)] = 10_000,
) -> list[EventOut]:
    """Stored events in a time range (scope ``analyst``); track ids only for admin."""
    start, end = time_range(from_, to)
    store: Store = request.app.state.store
    query = EventQuery(
        start=start,
        end=end,
        types=_parse_types(type),
        targets=frozenset(zone) if zone else None,
        limit=limit,
    )
    return [event_out(e, principal) for e in store.query_events(query)]
