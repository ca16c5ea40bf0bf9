"""The store layout: read it, or replace it and apply it to running workers."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, HTTPException, Request
from storesense.api.auth import Principal, Scope, require
from storesense.api.schemas import ErrorOut, LayoutProblem
from storesense.api.store.base import Store
from storesense.zones.config import LayoutError, StoreLayout, parse_layout

router = APIRouter(prefix="/v1", tags=["layout"])


def layout_problems(message: str) -> list[LayoutProblem]:
    """``path: message`` lines of a :class:`LayoutError` as structured problems.

    >>> layout_problems("zones[2].polygon: self-intersecting")[0].path
    'zones[2].polygon'
    """
    problems = []
    for line in message.splitlines():
        path, sep, text = line.partition(": ")
        if sep and " " not in path:
            problems.append(LayoutProblem(path=path, message=text))
        else:
            problems.append(LayoutProblem(path="", message=line))
    return problems


@router.get("/layout")
def get_layout(
    request: Request, _: Annotated[Principal, Depends(require(Scope.ADMIN))]
) -> dict[str, Any]:
    """The layout in force (scope ``admin``: it holds camera sources)."""
    layout: StoreLayout = request.app.state.layout
    return layout.model_dump(mode="json", exclude_none=True)


@router.put(
    "/layout",
    responses={422: {"model": ErrorOut, "description": "each problem with its field path"}},
)
def put_layout(
    request: Request,
    _: Annotated[Principal, Depends(require(Scope.ADMIN))],
    body: Annotated[dict[str, Any], Body(description="the whole layout, as in the layout file")],
) -> dict[str, Any]:
    """Validate and apply a new layout (scope ``admin``) without restarting the service.

    Workers rebuild their zone engine between frames; added cameras start,
    removed cameras stop. Other replicas pick it up from the store.
    """
    try:
        layout = parse_layout(body)
    except LayoutError as exc:
        problems = [p.model_dump() for p in layout_problems(str(exc))]
        raise HTTPException(422, problems) from None
    current: StoreLayout = request.app.state.layout
    if layout.store.id != current.store.id:
        raise HTTPException(
            422,
            [
                {
                    "path": "store.id",
                    "message": f"cannot change from {current.store.id!r} "
                    f"on a running service (got {layout.store.id!r})",
                }
            ],
        )
    store: Store = request.app.state.store
    store.put_layout(layout.model_dump_json())
    request.app.state.apply_layout(layout)
    return layout.model_dump(mode="json", exclude_none=True)
