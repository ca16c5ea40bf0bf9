"""API keys (scope ``admin``): create (the secret is shown once), list, delete."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Request, status
from storesense.api.auth import Authenticator, Principal, Scope, new_key, require
from storesense.api.schemas import KeyCreatedOut, KeyCreateIn, KeyOut
from storesense.api.store.base import ApiKeyRecord, Store

router = APIRouter(prefix="/v1", tags=["keys"])


def _out(record: ApiKeyRecord, source: Literal["store", "file"] = "store") -> KeyOut:
    return KeyOut(
        key_id=record.key_id,
        name=record.name,
        scopes=sorted(record.scopes),
        created_at=record.created_at,
        source=source,
    )


@router.get("/keys", response_model=list[KeyOut])
def list_keys(
    request: Request, _: Annotated[Principal, Depends(require(Scope.ADMIN))]
) -> list[KeyOut]:
    """Keys of the store, then the read-only keys of the ``--api-keys`` file (``source``).

    Hashes are never returned.
    """
    store: Store = request.app.state.store
    auth: Authenticator = request.app.state.auth
    return [_out(r) for r in store.list_api_keys()] + [_out(r, "file") for r in auth.file_records]


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


@router.delete(
    "/keys/{key_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={
        404: {"description": "unknown key id"},
        409: {"description": "the key comes from the --api-keys file (read-only)"},
    },
)
def delete_key(
    key_id: str, request: Request, _: Annotated[Principal, Depends(require(Scope.ADMIN))]
) -> None:
    """Revoke a key (other replicas stop accepting it within ``key_cache_s``).

    Keys of the ``--api-keys`` file cannot be revoked here (409): edit the file.
    """
    store: Store = request.app.state.store
    auth: Authenticator = request.app.state.auth
    if auth.is_file_key(key_id):
        raise HTTPException(
            409,
            f"key {key_id!r} comes from the --api-keys file and is read-only here: "
            "remove it from that file and restart the server",
        )
    if not store.delete_api_key(key_id):
        raise HTTPException(404, f"unknown key id {key_id!r}")
    auth.forget(key_id)
