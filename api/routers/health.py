"""Liveness, readiness (store and cameras) and Prometheus metrics.

``/healthz`` never touches the store. ``/readyz`` waits at most
:data:`READY_TIMEOUT_S` for the store's answer (one ping in flight at a time, on
its own thread, however many probes call), so a hung store gives a quick 503
instead of a hung probe.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from storesense.api.routers.cameras import camera_status_out
from storesense.api.runtime import CameraStatus, WorkerSupervisor, camera_not_ready_reason
from storesense.api.schemas import ReadyOut
from storesense.api.store.base import Store

router = APIRouter(tags=["health"])

READY_TIMEOUT_S = 0.8
"""Longest ``/readyz`` waits for the store's ping (it answers well within 1 s)."""


class StoreProbe:
    """Pings the store on a thread of its own; callers wait for that one ping, bounded.

    A ping still running (a hung store) is shared by every later caller, so a burst
    of probes during an outage starts no new store calls and holds no worker thread.
    """

    def __init__(self, store: Store, timeout_s: float = READY_TIMEOUT_S) -> None:
        self._store = store
        self.timeout_s = timeout_s
        self._lock = threading.Lock()
        self._in_flight: concurrent.futures.Future[bool] | None = None

    def _ping(self, future: concurrent.futures.Future[bool]) -> None:
        try:
            future.set_result(bool(self._store.ping()))
        except Exception as exc:
            future.set_exception(exc)

    def _current(self) -> concurrent.futures.Future[bool]:
        with self._lock:
            if self._in_flight is None or self._in_flight.done():
                future: concurrent.futures.Future[bool] = concurrent.futures.Future()
                threading.Thread(
                    target=self._ping, args=(future,), name="store-probe", daemon=True
                ).start()
                self._in_flight = future
            return self._in_flight

    async def check(self) -> tuple[bool, str]:
        """``(ok, 'ok' or why not)`` within ``timeout_s`` seconds."""
        future = asyncio.wrap_future(self._current())
        try:
            ok = await asyncio.wait_for(asyncio.shield(future), self.timeout_s)
        except TimeoutError:
            return False, f"store did not answer within {self.timeout_s:g} s"
        except Exception as exc:
            return False, f"store unreachable: {type(exc).__name__}: {exc}"
        return ok, "ok" if ok else "store did not answer the ping"


def _probe(request: Request) -> StoreProbe:
    state = request.app.state
    probe: StoreProbe | None = getattr(state, "store_probe", None)
    if probe is None:
        probe = state.store_probe = StoreProbe(state.store)
    return probe


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is up (no store call)."""
    return {"status": "ok"}


@router.get("/readyz", response_model=ReadyOut, responses={503: {"model": ReadyOut}})
async def readyz(request: Request) -> JSONResponse:
    """Ready (200) when the store answers within 0.8 s and every camera of this process
    is running (or has finished its file); else 503 with the reasons."""
    store_ok, store_state = await _probe(request).check()
    supervisor: WorkerSupervisor | None = request.app.state.supervisor
    statuses: list[CameraStatus] = (
        list(supervisor.statuses().values()) if supervisor is not None else []
    )
    reasons = [] if store_ok else [store_state]
    for status in statuses:
        reason = camera_not_ready_reason(status)
        if reason is not None:
            reasons.append(reason)
    ready = not reasons
    body = ReadyOut(
        ready=ready,
        store=store_state,
        workers=supervisor is not None,
        cameras=[camera_status_out(s) for s in statuses],
        reasons=reasons,
    )
    return JSONResponse(body.model_dump(), status_code=200 if ready else 503)


@router.get("/metrics", include_in_schema=False)
def prometheus_metrics() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
