"""Opt-in endpoints: member check-ins, member records, erasure and member aggregates.

- ``POST /v1/optin/checkins`` (scope ``ingest``: the store's app, kiosk or badge
  reader) links the one track in the zone/camera at that time to the member.
- ``GET /v1/optin/members/{token}`` and ``DELETE /v1/optin/members/{token}``
  (scope ``admin``) read or erase everything kept about a member; both audited.
- ``GET /v1/optin/audit`` (scope ``admin``): the audit log (members by keyed hash).
- ``GET /v1/optin/aggregates`` (scope ``analyst``): member visits and repeat-visit
  rate, aggregates only.

The app holds one :class:`~storesense.api.privacy.service.OptInService` in
``app.state.optin`` (shared with the camera workers).
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from pydantic import BaseModel
from storesense.api.auth import Principal, Scope, require
from storesense.api.privacy.service import CheckInRequest, OptInService
from storesense.api.routers.counts import time_range
from storesense.api.store.base import validate_token
from storesense.zones.timemodel import parse_timestamp

router = APIRouter(prefix="/v1/optin", tags=["opt-in"])


def _service(request: Request) -> OptInService:
    optin: OptInService | None = getattr(request.app.state, "optin", None)
    if optin is None:
        raise HTTPException(503, "opt-in is not enabled on this server")
    return optin


def _token(member_token: str) -> str:
    try:
        return validate_token(member_token)
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from None


class CheckInResponse(BaseModel):
    checkin_id: str
    outcome: str
    """``linked``, ``ambiguous`` (several tracks there: none linked) or ``no_track``."""
    candidates: int
    linked_track: dict[str, Any] | None
    message: str


class ErasureResponse(BaseModel):
    erased: bool
    registry_records: int
    events: int
    active_visit_ended: bool


class AggregatesResponse(BaseModel):
    member_visits: int
    distinct_members: int
    repeat_members: int
    repeat_visit_rate: float


@router.post("/checkins", response_model=CheckInResponse)
def post_checkin(
    body: CheckInRequest,
    request: Request,
    principal: Annotated[Principal, Depends(require(Scope.INGEST))],
) -> CheckInResponse:
    """A member (or a staff badge, ``role: staff``) checked in at a camera or zone."""
    try:
        result = _service(request).check_in(body, actor=principal.key_id)
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from None
    return CheckInResponse(**result.to_dict())


@router.get("/members/{member_token}")
def get_member(
    member_token: str,
    request: Request,
    principal: Annotated[Principal, Depends(require(Scope.ADMIN))],
) -> dict[str, Any]:
    """Everything kept about a member (consents, check-ins, links); the read is audited."""
    return _service(request).member_record(_token(member_token), actor=principal.key_id)


@router.delete("/members/{member_token}", response_model=ErasureResponse)
def delete_member(
    member_token: str,
    request: Request,
    principal: Annotated[Principal, Depends(require(Scope.ADMIN))],
) -> ErasureResponse:
    """Erase a member: links, templates, consent and check-ins, member-attributed events."""
    report = _service(request).erase_member(_token(member_token), actor=principal.key_id)
    return ErasureResponse(
        erased=True,
        registry_records=report.registry_records,
        events=report.events,
        active_visit_ended=report.active_visit,
    )


@router.get("/audit")
def get_audit(
    request: Request,
    _: Annotated[Principal, Depends(require(Scope.ADMIN))],
    since: Annotated[str | None, Query(description="Unix seconds or ISO 8601")] = None,
    member_token: Annotated[str | None, Query(description="only this member's entries")] = None,
) -> list[dict[str, Any]]:
    """Who accessed member data, what and when (members named by a keyed hash)."""
    service = _service(request)
    try:
        start = None if since is None else parse_timestamp(since, what="since")
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from None
    subject = None if member_token is None else service.registry.subject_of(_token(member_token))
    return [
        {
            "timestamp": e.timestamp,
            "actor": e.actor,
            "action": e.action,
            "subject": e.subject,
            "detail": e.detail,
        }
        for e in service.store.audit_log(start=start, subject=subject)
    ]


@router.get("/aggregates", response_model=AggregatesResponse)
def get_aggregates(
    request: Request,
    _: Annotated[Principal, Depends(require(Scope.ANALYST))],
    from_: Annotated[str, Query(alias="from", description="Unix seconds or ISO 8601")],
    to: Annotated[str, Query(description="Unix seconds or ISO 8601 (exclusive)")],
) -> AggregatesResponse:
    """Member visits and repeat-visit rate from check-ins: aggregates, never per member."""
    start, end = time_range(from_, to)
    return AggregatesResponse(**asdict(_service(request).aggregates(start, end)))
