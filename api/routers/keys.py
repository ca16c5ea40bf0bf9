"""API keys (scope ``admin``): create (the secret is shown once), list, delete."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request, status
from storesense.api.auth import Authenticator, Principal, Scope, new_key, require
from storesense.api.schemas import KeyCreatedOut, KeyCreateIn, KeyOut
from storesense.api.store.base import ApiKeyRecord, Store

router = APIRouter(prefix="/v1", tags=["keys"])


def _out(record: ApiKeyRecord) -> KeyOut:
    return KeyOut(
        key_id=record.key_id,
        name=record.name,
        scopes=sorted(record.scopes),
        created_at=record.created_at,
    )


@router.get("/keys", response_model=list[KeyOut])
def list_keys(
    request: Request, _: Annotated[Principal, Depends(require(Scope.ADMIN))]
) -> list[KeyOut]:
    """Keys stored in the store (hashes are never returned)."""
    store: Store = request.app.state.store
    return [_out(r) for r in store.list_api_keys()]


@router.post("/keys", response_model=KeyCreatedOut, status_code=status.HTTP_201_CREATED)
def create_key(
    request: Request,
    body: KeyCreateIn,
    _: Annotated[Principal, Depends(require(Scope.ADMIN))],
) -> KeyCreatedOut:
    """Create a key; the secret ``key`` is in this response only. The first key turns auth on."""
    key, record = new_key(body.name, body.scopes)
    store: Store = request.app.state.store
    store.put_api_key(record)
    auth: Authenticator = request.app.state.auth
    auth.key_enabled()
    return KeyCreatedOut(**_out(record).model_dump(), key=key)


@router.delete("/keys/{key_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_key(
    key_id: str, request: Request, _: Annotated[Principal, Depends(require(Scope.ADMIN))]
) -> None:
    """Revoke a key (other replicas stop accepting it within ``key_cache_s``)."""
    store: Store = request.app.state.store
    if not store.delete_api_key(key_id):
        raise HTTPException(404, f"unknown key id {key_id!r}")
    auth: Authenticator = request.app.state.auth
    auth.forget(key_id)
