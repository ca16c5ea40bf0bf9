"""Camera states, pushed frames (``POST /v1/cameras/{id}/frames``) and admin debug snapshots.

Debug snapshots (``PUT /v1/cameras/{id}/debug``, ``GET /v1/cameras/{id}/snapshot``) are
off by default, admin only, expire by themselves, are audited, and every person in
them is pixelated by :func:`storesense.vision.privacy.encode_snapshot`.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Annotated

import cv2
import numpy as np
import numpy.typing as npt
from fastapi import APIRouter, Depends, Header, HTTPException, Request, Response, status
from starlette.concurrency import run_in_threadpool
from storesense.api import telemetry
from storesense.api.auth import Principal, Scope, require
from storesense.api.limits import ImageTooLargeError, check_image_size
from storesense.api.runtime import (
    CameraStatus,
    DebugSnapshots,
    NotAPushCameraError,
    UnknownCameraError,
    WorkerSupervisor,
)
from storesense.api.schemas import (
    CameraDebugIn,
    CameraDebugOut,
    CameraStatusOut,
    FrameAcceptedOut,
)
from storesense.api.settings import ServiceSettings
from storesense.api.store.base import AuditEntry, CameraReport, Store, StoreUnavailableError
from storesense.vision.frames import Frame
from storesense.vision.privacy import encode_snapshot
from storesense.zones.config import CameraConfig, StoreLayout
from storesense.zones.timemodel import parse_capture_time

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/v1", tags=["cameras"])

IMAGE_TYPES = frozenset({"image/jpeg", "image/jpg", "image/png", "application/octet-stream"})
_MAGIC = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n")


def camera_status_out(
    status: CameraStatus, worker: str | None = None, reported_at: float | None = None
) -> CameraStatusOut:
    return CameraStatusOut.model_validate(
        {**status.public_fields(), "worker": worker, "reported_at": reported_at}
    )


def reported_status_out(report: CameraReport, stale_after_s: float, now: float) -> CameraStatusOut:
    """A camera run by another process, from the report its worker published."""
    stale = now - report.reported_at > stale_after_s
    try:
        fields = json.loads(report.status_json)
        fields.update(camera_id=report.camera_id, reported_at=report.reported_at, stale=stale)
        return CameraStatusOut.model_validate(fields)
    except (ValueError, TypeError, AttributeError) as exc:
        logger.warning("unreadable report of camera %s: %s", report.camera_id, exc)
        return CameraStatusOut(
            camera_id=report.camera_id,
            state="unknown",
            mode="unknown",
            last_error=f"unreadable worker report: {type(exc).__name__}",
            reported_at=report.reported_at,
            stale=stale,
        )


def unassigned_status_out(camera: CameraConfig) -> CameraStatusOut:
    """A camera of the layout that no worker has reported."""
    return CameraStatusOut(
        camera_id=camera.id,
        state="unassigned",
        mode="pull" if camera.source is not None else "push",
    )


@router.get("/cameras", response_model=list[CameraStatusOut])
def list_cameras(
    request: Request, _: Annotated[Principal, Depends(require(Scope.ANALYST))]
) -> list[CameraStatusOut]:
    """Every camera of the layout, whichever process runs it (scope ``analyst``).

    This process's own workers answer live; the others come from the reports
    their workers publish to the store every ``camera_report_s`` seconds, marked
    ``stale`` after three missed reports. A camera nobody runs is ``unassigned``.
    """
    supervisor: WorkerSupervisor | None = request.app.state.supervisor
    layout: StoreLayout = request.app.state.layout
    settings: ServiceSettings = request.app.state.settings
    store: Store = request.app.state.store
    now = time.time()
    local: dict[str, CameraStatusOut] = {}
    if supervisor is not None:
        local = {
            camera_id: camera_status_out(status, supervisor.worker_name, now)
            for camera_id, status in supervisor.statuses().items()
        }
    reports: dict[str, CameraReport] = {}
    if any(camera.id not in local for camera in layout.cameras):
        try:
            reports = store.get_camera_reports()
        except StoreUnavailableError as exc:
            if supervisor is None:
                raise HTTPException(503, f"store unavailable: {exc}") from exc
            logger.warning("camera reports unavailable, showing this process's cameras: %s", exc)
    stale_after_s = 3 * settings.camera_report_s
    listed = []
    for camera in layout.cameras:
        if camera.id in local:
            listed.append(local[camera.id])
        elif camera.id in reports:
            listed.append(reported_status_out(reports[camera.id], stale_after_s, now))
        else:
            listed.append(unassigned_status_out(camera))
    return listed


def decode_image(body: bytes, max_side: int = 4096) -> npt.NDArray[np.uint8]:
    """BGR image from JPEG/PNG bytes; ``ValueError`` with the reason otherwise, and
    :class:`~storesense.api.limits.ImageTooLargeError` when the header declares a side over
    ``max_side`` (checked before decoding: a small file can declare a huge image)."""
    if not body:
        raise ValueError("empty body: send the JPEG or PNG bytes of one frame")
    if not body.startswith(_MAGIC):
        raise ValueError("body is not a JPEG or PNG image (no JPEG/PNG signature)")
    try:
        check_image_size(body, max_side)
    except ImageTooLargeError:
        raise
    except ValueError:
        raise ValueError(
            "body has a JPEG/PNG signature but could not be decoded (truncated?)"
        ) from None
    image = cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_COLOR)
    if image is None or image.size == 0:
        raise ValueError("body has a JPEG/PNG signature but could not be decoded (truncated?)")
    return np.asarray(image, np.uint8)


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, read chunk by chunk and refused (413) once over ``limit`` bytes,
    with or without ``Content-Length``."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise HTTPException(413, f"frame of {declared} bytes exceeds the {limit}-byte limit")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise HTTPException(413, f"frame exceeds the {limit}-byte limit (stopped reading)")
    return bytes(body)


@router.post(
    "/cameras/{camera_id}/frames",
    response_model=FrameAcceptedOut,
    status_code=status.HTTP_202_ACCEPTED,
    responses={
        404: {"description": "unknown camera"},
        409: {"description": "the camera reads its own source"},
        413: {"description": "body too large, or the image declares too many pixels"},
        415: {"description": "content type is not image/jpeg or image/png"},
        422: {"description": "empty or undecodable body, bad X-Capture-Time"},
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"image/jpeg": {}, "image/png": {}},
        }
    },
)
async def push_frame(
    camera_id: str,
    request: Request,
    _: Annotated[Principal, Depends(require(Scope.INGEST))],
    x_capture_time: Annotated[
        str | None, Header(description="Unix seconds or ISO 8601; default: arrival time")
    ] = None,
) -> FrameAcceptedOut:
    """Push one JPEG/PNG frame of a camera without a source (scope ``ingest``)."""
    supervisor = _camera_supervisor(request, camera_id)
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type and content_type not in IMAGE_TYPES:
        raise HTTPException(415, f"content type {content_type!r} is not image/jpeg or image/png")
    try:
        capture_time = time.time() if x_capture_time is None else parse_capture_time(x_capture_time)
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from None
    settings: ServiceSettings = request.app.state.settings
    body = await read_body(request, settings.max_frame_bytes)
    try:
        image = await run_in_threadpool(decode_image, body, settings.max_frame_side)
    except ImageTooLargeError as exc:
        telemetry.FRAMES_DROPPED.labels(camera_id, "too_large").inc()
        raise HTTPException(413, str(exc)) from None
    except ValueError as exc:
        telemetry.FRAMES_DROPPED.labels(camera_id, "undecodable").inc()
        raise HTTPException(422, str(exc)) from None
    frame = Frame(image=image, index=0, timestamp=capture_time, camera_id=camera_id)
    try:
        kept_all = supervisor.push_frame(frame)
    except UnknownCameraError as exc:
        raise HTTPException(404, str(exc.args[0])) from None
    except NotAPushCameraError as exc:
        raise HTTPException(409, str(exc)) from None
    return FrameAcceptedOut(
        camera_id=camera_id,
        capture_time=capture_time,
        width=int(image.shape[1]),
        height=int(image.shape[0]),
        dropped_older=not kept_all,
    )


def _camera_supervisor(request: Request, camera_id: str) -> WorkerSupervisor:
    """The supervisor running ``camera_id`` here: 503 without workers, 404 if unknown."""
    supervisor: WorkerSupervisor | None = request.app.state.supervisor
    if supervisor is None:
        raise HTTPException(503, "this replica runs no camera workers (--no-workers)")
    if camera_id not in supervisor.camera_ids():
        known = ", ".join(sorted(supervisor.camera_ids())) or "none"
        raise HTTPException(404, f"unknown camera {camera_id!r} (known: {known})")
    return supervisor


def _audit(
    request: Request, principal: Principal, action: str, camera_id: str, detail: str
) -> None:
    """Debug-snapshot accesses go to the opt-in audit log (when there is one) and the log."""
    actor = principal.key_id or "open"
    logger.warning("debug snapshots: %s camera=%s key=%s %s", action, camera_id, actor, detail)
    optin = getattr(request.app.state, "optin", None)
    if optin is not None:
        entry = AuditEntry(time.time(), actor, action, f"camera:{camera_id}", detail)
        optin.store.append_audit(entry)


def _debug_state(snapshots: DebugSnapshots, camera_id: str) -> CameraDebugOut:
    expires_at = snapshots.expires_at(camera_id)
    return CameraDebugOut(
        camera_id=camera_id, snapshots=expires_at is not None, expires_at=expires_at
    )


@router.get("/cameras/{camera_id}/debug", response_model=CameraDebugOut)
def get_camera_debug(
    camera_id: str, request: Request, _: Annotated[Principal, Depends(require(Scope.ADMIN))]
) -> CameraDebugOut:
    """Whether debug snapshots are on for the camera, and until when (scope ``admin``)."""
    return _debug_state(_camera_supervisor(request, camera_id).snapshots, camera_id)


@router.put(
    "/cameras/{camera_id}/debug",
    response_model=CameraDebugOut,
    responses={404: {"description": "unknown camera"}, 422: {"description": "bad ttl"}},
)
def put_camera_debug(
    camera_id: str,
    body: CameraDebugIn,
    request: Request,
    principal: Annotated[Principal, Depends(require(Scope.ADMIN))],
) -> CameraDebugOut:
    """Turn pixelated debug snapshots on for ``ttl_seconds`` (or off) (scope ``admin``).

    While on, the camera's worker keeps its latest frame in memory (nothing when
    off) for ``GET /v1/cameras/{id}/snapshot``. Audited.
    """
    snapshots = _camera_supervisor(request, camera_id).snapshots
    if body.snapshots:
        longest: float = request.app.state.settings.debug_snapshot_max_ttl_s
        if body.ttl_seconds > longest:
            raise HTTPException(
                422, f"ttl_seconds {body.ttl_seconds:g} exceeds the {longest:g} s limit"
            )
        snapshots.enable(camera_id, body.ttl_seconds)
        _audit(request, principal, "debug_on", camera_id, f"ttl_s={body.ttl_seconds:g}")
    else:
        snapshots.disable(camera_id)
        _audit(request, principal, "debug_off", camera_id, "")
    return _debug_state(snapshots, camera_id)


@router.get(
    "/cameras/{camera_id}/snapshot",
    response_class=Response,
    responses={
        200: {"content": {"image/jpeg": {}}, "description": "latest frame, people pixelated"},
        404: {"description": "unknown camera, or no frame since snapshots were turned on"},
        409: {"description": "debug snapshots are off for this camera"},
    },
)
async def get_camera_snapshot(
    camera_id: str,
    request: Request,
    principal: Annotated[Principal, Depends(require(Scope.ADMIN))],
) -> Response:
    """The camera's latest frame as JPEG, every person pixelated (scope ``admin``; audited)."""
    snapshots = _camera_supervisor(request, camera_id).snapshots
    if not snapshots.is_on(camera_id):
        raise HTTPException(
            409,
            f"debug snapshots are off for camera {camera_id!r}: an admin turns them on with "
            f'PUT /v1/cameras/{camera_id}/debug {{"snapshots": true, "ttl_seconds": 600}}',
        )
    latest = snapshots.latest(camera_id)
    if latest is None:
        raise HTTPException(
            404, f"camera {camera_id!r} has not processed a frame since snapshots were turned on"
        )
    jpeg = await run_in_threadpool(encode_snapshot, latest.image, latest.person_boxes)
    await run_in_threadpool(
        _audit, request, principal, "snapshot", camera_id, f"frame_time={latest.frame_time:.3f}"
    )
    telemetry.SNAPSHOTS_SERVED.labels(camera_id).inc()
    return Response(
        jpeg,
        media_type="image/jpeg",
        headers={"Cache-Control": "no-store", "X-Frame-Time": f"{latest.frame_time:.3f}"},
    )
