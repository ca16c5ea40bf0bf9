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
from storesense.api.errors import error_response
from storesense.api.schemas import ErrorOut, LayoutProblem
from storesense.api.store.base import Store
from storesense.zones.config import (
    NESTED_TOO_DEEPLY,
    LayoutError,
    StoreLayout,
    parse_layout,
    syntax_error_message,
)

router = APIRouter(prefix="/v1", tags=["layout"])

YAML_TYPES = frozenset({"application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml"})
JSON_TYPES = frozenset({"application/json", ""})
MAX_LAYOUT_BYTES = 2_000_000
MAX_LAYOUT_VALUES = 500_000
"""YAML aliases can make a small body expand enormously (or into itself): refused."""


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
        data = yaml.safe_load(text) if media in YAML_TYPES else json.loads(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise ValueError(syntax_error_message(exc)) from None
    except RecursionError:
        raise ValueError(NESTED_TOO_DEEPLY) from None
    check_expanded_size(data, MAX_LAYOUT_VALUES)
    return data


def check_expanded_size(data: Any, limit: int) -> None:
    """``ValueError`` when ``data`` holds more than ``limit`` values once YAML aliases are
    followed (a "billion laughs" body, or one that contains itself).

    >>> check_expanded_size({"zones": [[1, 2], [3, 4]]}, limit=10)
    >>> looped: list[Any] = []
    >>> looped.append(looped)
    >>> check_expanded_size(looped, limit=10)
    Traceback (most recent call last):
    ...
    ValueError: the layout holds more than 10 values once its YAML aliases are expanded
    """
    pending = [data]
    seen = 0
    while pending:
        item = pending.pop()
        seen += 1
        if seen > limit:
            raise ValueError(
                f"the layout holds more than {limit} values once its YAML aliases are expanded"
            )
        if isinstance(item, dict):
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)


def _problem(path: str, message: str, status_code: int = 422) -> JSONResponse:
    return error_response(status_code, [LayoutProblem(path=path, message=message).model_dump()])


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
        422: {"model": ErrorOut, "description": "each problem with its field path"},
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
    body = await _read_limited(request, MAX_LAYOUT_BYTES)
    content_type = request.headers.get("content-type", "")
    return await run_in_threadpool(_decode_and_apply, request, body, content_type)


async def _read_limited(request: Request, limit: int) -> bytes:
    """The body, refused with 413 as soon as it is larger than ``limit`` (chunked too)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise HTTPException(413, f"layout of {declared} bytes exceeds the {limit}-byte limit")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise HTTPException(413, f"layout larger than the {limit}-byte limit")
    return bytes(body)


def _decode_and_apply(request: Request, body: bytes, content_type: str) -> Any:
    try:
        data = decode_layout_body(body, content_type)
    except TypeError as exc:
        raise HTTPException(415, str(exc)) from None
    except ValueError as exc:
        return _problem("", str(exc))
    if not isinstance(data, dict):
        return _problem("", "the layout must be a mapping with store, cameras, zones, lines")
    return _apply(request, data)


def _apply(request: Request, data: dict[str, Any]) -> Any:
    try:
        layout = parse_layout(data)
    except LayoutError as exc:
        problems = [p.model_dump() for p in layout_problems(str(exc))]
        return error_response(422, problems)
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
