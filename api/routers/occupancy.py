"""Live occupancy: the hot endpoint that displays poll many times a second.

The counts are re-read from the store by one background thread every
``occupancy_refresh_s`` (one SQLite/Redis read, whatever the number of
pollers) and kept as a pre-serialised body per version; a request is then a
dictionary look-up, and a poller sending ``If-None-Match`` gets an empty 304.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, HTTPException, Request, Response
from starlette.datastructures import State
from starlette.types import ASGIApp, Receive, Send
from starlette.types import Scope as Scope_
from storesense.api.auth import Authenticator, Scope
from storesense.api.schemas import OccupancyOut, StoreOccupancyOut, ZoneOccupancyOut
from storesense.api.store.base import Store, StoreUnavailableError, ZoneOccupancy
from storesense.api.store_wide import STORE_OCCUPANCY_KEY
from storesense.zones.config import StoreLayout

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/v1", tags=["occupancy"])

_JSON = "application/json"


@dataclass(frozen=True)
class _Snapshot:
    etag: str
    body: bytes
    zone_bodies: dict[str, bytes]


class OccupancyCache:
    """Latest occupancy of every zone, serialised once per version."""

    def __init__(self, store: Store, layout: StoreLayout, refresh_s: float) -> None:
        self._store = store
        self._layout = layout
        self._refresh_s = refresh_s
        self._version: str | None = None
        self._snapshot: _Snapshot | None = None
        self.error: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def set_layout(self, layout: StoreLayout) -> None:
        self._layout = layout
        self._version = None
        self.refresh()

    @property
    def snapshot(self) -> _Snapshot | None:
        return self._snapshot

    def refresh(self) -> None:
        try:
            version, zones = self._store.get_occupancy()
        except StoreUnavailableError as exc:
            self.error = f"store unavailable: {exc}"
            return
        except Exception as exc:
            logger.exception("reading occupancy failed")
            self.error = f"reading occupancy failed: {type(exc).__name__}: {exc}"
            return
        self.error = None
        if version == self._version and self._snapshot is not None:
            return
        self._snapshot = self._serialise(version, zones)
        self._version = version

    def _serialise(self, version: str, stored: dict[str, ZoneOccupancy]) -> _Snapshot:
        zones: dict[str, ZoneOccupancyOut] = {}
        for zone in self._layout.zones:
            row = stored.get(zone.id)
            zones[zone.id] = ZoneOccupancyOut(
                zone=zone.id,
                camera=zone.camera,
                count=row.count if row else 0,
                approaching=row.approaching if row else 0,
                updated_at=row.updated_at if row else None,
                version=version,
            )
        store_row = stored.get(STORE_OCCUPANCY_KEY)
        store = StoreOccupancyOut(
            count=store_row.count if store_row else 0,
            updated_at=store_row.updated_at if store_row else None,
        )
        body = OccupancyOut(version=version, zones=zones, store=store)
        zone_bodies = {zone_id: zone.model_dump_json().encode() for zone_id, zone in zones.items()}
        return _Snapshot(f'"{version}"', body.model_dump_json().encode(), zone_bodies)

    def _loop(self) -> None:
        while not self._stop.wait(self._refresh_s):
            self.refresh()

    def start(self) -> None:
        self.refresh()
        self._thread = threading.Thread(target=self._loop, name="occupancy-refresh", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2)


def _snapshot_body(cache: OccupancyCache, zone: str | None) -> tuple[bytes, str]:
    """(body, etag) of the cached snapshot, or ``HTTPException`` 503/404 with the reason."""
    snapshot = cache.snapshot
    if cache.error is not None or snapshot is None:
        raise HTTPException(503, cache.error or "occupancy not available yet")
    if zone is None:
        return snapshot.body, snapshot.etag
    zone_body = snapshot.zone_bodies.get(zone)
    if zone_body is None:
        known = ", ".join(sorted(snapshot.zone_bodies)) or "none"
        raise HTTPException(404, f"unknown zone {zone!r} (known: {known})")
    return zone_body, snapshot.etag


def _cached_body(
    auth: Authenticator, cache: OccupancyCache, headers: Mapping[str, str], zone: str | None
) -> tuple[bytes, str]:
    """(body, etag) of a successful read, or ``HTTPException`` with the reason.

    May call the store to verify a key: never on the event loop.
    """
    auth.authenticate(headers, Scope.DISPLAY)
    return _snapshot_body(cache, zone)


class OccupancyFastPath:
    """Pure ASGI middleware answering successful occupancy reads before FastAPI's routing.

    Only the happy path (200 with the cached body, or 304) is answered here, and
    only when the key is known without a store call (cached or from the key file);
    anything else (401/403/404/503, a key to look up) falls through to the documented FastAPI
    routes below, which give the same answer with its reason. Measured in
    ``benchmarks/api_polling.py``.
    """

    def __init__(self, app: ASGIApp, state: State) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope_, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "GET":
            path: str = scope["path"]
            zone: str | None = None
            if path == "/v1/occupancy":
                matched = True
            elif path.startswith("/v1/zones/") and path.endswith("/occupancy"):
                zone = path[10:-10]
                matched = bool(zone) and "/" not in zone
            else:
                matched = False
            if matched:
                headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
                try:
                    # No store call here (this runs on the event loop): a key not in the
                    # cache goes to the sync route below, which verifies it on a thread.
                    principal = self.state.auth.authenticate_cached(headers, Scope.DISPLAY)
                    if principal is None:
                        raise HTTPException(401)
                    body, etag = _snapshot_body(self.state.occupancy, zone)
                except HTTPException:
                    await self.app(scope, receive, send)
                    return
                response_headers = [
                    (b"etag", etag.encode()),
                    (b"cache-control", b"no-cache"),
                ]
                if headers.get("if-none-match") == etag:
                    await send(
                        {"type": "http.response.start", "status": 304, "headers": response_headers}
                    )
                    await send({"type": "http.response.body", "body": b""})
                    return
                response_headers += [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ]
                await send(
                    {"type": "http.response.start", "status": 200, "headers": response_headers}
                )
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)


def _serve(request: Request, zone: str | None) -> Response:
    state = request.app.state
    body, etag = _cached_body(state.auth, state.occupancy, request.headers, zone)
    headers = {"ETag": etag, "Cache-Control": "no-cache"}
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=headers)
    return Response(body, media_type=_JSON, headers=headers)


_NOT_MODIFIED: dict[int | str, dict[str, Any]] = {
    304: {"description": "unchanged since the ETag sent in If-None-Match"}
}


@router.get("/occupancy", response_model=OccupancyOut, responses=_NOT_MODIFIED)
def all_occupancy(request: Request) -> Response:
    """Live count per zone (scope ``display``). Send ``If-None-Match`` to get 304 when unchanged."""
    return _serve(request, None)


@router.get(
    "/zones/{zone}/occupancy",
    response_model=ZoneOccupancyOut,
    responses={**_NOT_MODIFIED, 404: {"description": "unknown zone"}},
)
def zone_occupancy(zone: str, request: Request) -> Response:
    """Live count of one zone (scope ``display``), with ``ETag``/``If-None-Match``."""
    return _serve(request, zone)
