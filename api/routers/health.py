"""Liveness, readiness (store and cameras) and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from storesense.api.routers.cameras import camera_status_out
from storesense.api.schemas import ReadyOut
from storesense.api.store.base import Store
from storesense.api.workers import CameraState, WorkerSupervisor

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@router.get("/readyz", response_model=ReadyOut, responses={503: {"model": ReadyOut}})
def readyz(request: Request) -> JSONResponse:
    """Ready when the store answers and no camera has failed for good (else 503)."""
    store: Store = request.app.state.store
    try:
        store_ok = bool(store.ping())
        store_state = "ok" if store_ok else "store did not answer the ping"
    except Exception as exc:
        store_ok, store_state = False, f"store unreachable: {type(exc).__name__}: {exc}"
    supervisor: WorkerSupervisor | None = request.app.state.supervisor
    statuses = list(supervisor.statuses().values()) if supervisor is not None else []
    cameras_ok = all(s.state != CameraState.FAILED for s in statuses)
    ready = store_ok and cameras_ok
    body = ReadyOut(
        ready=ready,
        store=store_state,
        workers=supervisor is not None,
        cameras=[camera_status_out(s) for s in statuses],
    )
    return JSONResponse(body.model_dump(), status_code=200 if ready else 503)


@router.get("/metrics", include_in_schema=False)
def prometheus_metrics() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
