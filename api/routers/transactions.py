"""Till transactions per time bucket, for sales conversion in ``/v1/metrics``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, status
from storesense.api.auth import Principal, Scope, require
from storesense.api.routers.counts import time_range
from storesense.api.schemas import TransactionsIn, TransactionsOut, unix_text
from storesense.api.store.base import Store

router = APIRouter(prefix="/v1", tags=["transactions"])


@router.post("/transactions", status_code=status.HTTP_204_NO_CONTENT)
def post_transactions(
    request: Request,
    body: TransactionsIn,
    _: Annotated[Principal, Depends(require(Scope.ANALYST))],
) -> None:
    """Set the transaction count of each bucket start (scope ``analyst``); re-posting replaces."""
    store: Store = request.app.state.store
    store.add_transactions({b.start: b.count for b in body.buckets})


@router.get("/transactions", response_model=TransactionsOut)
def get_transactions(
    request: Request,
    _: Annotated[Principal, Depends(require(Scope.ANALYST))],
    from_: Annotated[str, Query(alias="from", description="Unix seconds or ISO 8601")],
    to: Annotated[str, Query(description="Unix seconds or ISO 8601 (exclusive)")],
) -> TransactionsOut:
    start, end = time_range(from_, to)
    store: Store = request.app.state.store
    found = store.get_transactions(start, end)
    return TransactionsOut(buckets={unix_text(k): v for k, v in sorted(found.items())})
