"""The store layout: read it (JSON, or YAML with ``?format=yaml``), or replace it (a JSON or
YAML body) and apply it to running workers."""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

import yaml
from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from storesense.api.auth import Principal, Scope, require
from storesense.api.schemas import LayoutErrorOut, LayoutProblem
from storesense.api.store.base import Store
from storesense.zones.config import LayoutError, StoreLayout, parse_layout, syntax_error_message

router = APIRouter(prefix="/v1", tags=["layout"])

YAML_TYPES = frozenset({"application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml"})
JSON_TYPES = frozenset({"application/json", ""})
MAX_LAYOUT_BYTES = 2_000_000


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


def layout_yaml(layout: StoreLayout) -> str:
    """The layout as YAML, in the layout file's order (store, cameras, zones, lines).

    >>> text = layout_yaml(StoreLayout.model_validate(
    ...     {"store": {"id": "s"}, "cameras": [{"id": "c"}]}))
    >>> text.splitlines()[:2]
    ['store:', '  id: s']
    """
    data = layout.model_dump(mode="json", exclude_none=True)
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, default_flow_style=None)


def decode_layout_body(body: bytes, content_type: str) -> Any:
    """The request body as data: JSON, or YAML for a YAML content type.

    ``ValueError`` with a one-line reason for an unsupported type or a syntax error.

    >>> decode_layout_body(b"store: {id: s}", "application/yaml")
    {'store': {'id': 's'}}
    """
    media = content_type.split(";")[0].strip().lower()
    if media not in YAML_TYPES and media not in JSON_TYPES:
        raise TypeError(
            f"content type {media!r} is neither JSON (application/json) "
            "nor YAML (application/yaml, text/yaml)"
        )
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"the body is not UTF-8 text (byte {exc.start})") from None
    try:
        return yaml.safe_load(text) if media in YAML_TYPES else json.loads(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise ValueError(syntax_error_message(exc)) from None


def _problem(path: str, message: str, status_code: int = 422) -> JSONResponse:
    body = LayoutErrorOut(detail=[LayoutProblem(path=path, message=message)])
    return JSONResponse(body.model_dump(), status_code=status_code)


@router.get(
    "/layout",
    responses={200: {"content": {"application/yaml": {}}, "description": "JSON, or YAML"}},
)
def get_layout(
    request: Request,
    _: Annotated[Principal, Depends(require(Scope.ADMIN))],
    format: Annotated[
        Literal["json", "yaml"], Query(description="yaml: download as a layout file")
    ] = "json",
) -> Any:
    """The layout in force (scope ``admin``: it holds camera sources)."""
    layout: StoreLayout = request.app.state.layout
    if format == "yaml":
        return Response(
            layout_yaml(layout),
            media_type="application/yaml",
            headers={"Content-Disposition": f'attachment; filename="{layout.store.id}.yaml"'},
        )
    return layout.model_dump(mode="json", exclude_none=True)


@router.put(
    "/layout",
    responses={
        415: {"description": "neither JSON nor YAML"},
        422: {"model": LayoutErrorOut, "description": "each problem with its field path"},
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "description": "the whole layout, as in the layout file (JSON or YAML)",
            "content": {
                "application/json": {"schema": {"type": "object"}},
                "application/yaml": {"schema": {"type": "string"}},
            },
        }
    },
)
async def put_layout(
    request: Request, _: Annotated[Principal, Depends(require(Scope.ADMIN))]
) -> Any:
    """Validate and apply a new layout (scope ``admin``) without restarting the service.

    The body is JSON, or YAML with ``Content-Type: application/yaml`` (or ``text/yaml``).
    Workers rebuild their zone engine between frames; added cameras start,
    removed cameras stop. Other replicas pick it up from the store.
    """
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_LAYOUT_BYTES:
        raise HTTPException(413, f"layout of {declared} bytes exceeds {MAX_LAYOUT_BYTES}")
    body = await request.body()
    if len(body) > MAX_LAYOUT_BYTES:
        raise HTTPException(413, f"layout of {len(body)} bytes exceeds {MAX_LAYOUT_BYTES}")
    try:
        data = decode_layout_body(body, request.headers.get("content-type", ""))
    except TypeError as exc:
        raise HTTPException(415, str(exc)) from None
    except ValueError as exc:
        return _problem("", str(exc))
    if not isinstance(data, dict):
        return _problem("", "the layout must be a mapping with store, cameras, zones, lines")
    return await run_in_threadpool(_apply, request, data)


def _apply(request: Request, data: dict[str, Any]) -> Any:
    try:
        layout = parse_layout(data)
    except LayoutError as exc:
        problems = layout_problems(str(exc))
        return JSONResponse(LayoutErrorOut(detail=problems).model_dump(), status_code=422)
    current: StoreLayout = request.app.state.layout
    if layout.store.id != current.store.id:
        return _problem(
            "store.id",
            f"cannot change from {current.store.id!r} on a running service "
            f"(got {layout.store.id!r})",
        )
    store: Store = request.app.state.store
    store.put_layout(layout.model_dump_json())
    request.app.state.apply_layout(layout)
    return layout.model_dump(mode="json", exclude_none=True)
