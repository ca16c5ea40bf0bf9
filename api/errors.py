"""One error shape for every 4xx/5xx answer, its exception handlers and its OpenAPI entries.

Every error body is an :class:`~storesense.api.schemas.ErrorOut`::

    {"detail": "one sentence: what went wrong and how to fix it",
     "errors": [{"path": "query.from", "message": "..."}]}

``errors`` lists field problems (validation errors, layout problems) and is empty
otherwise. The OpenAPI schema declares it for every status a route can answer
(docs/reference/errors.md). A 405 carries an ``Allow`` header listing every method the
path supports.

Example:
    >>> import json
    >>> json.loads(error_response(422, [{"path": "query.from", "message": "bad"}]).body)
    {'detail': 'query.from: bad', 'errors': [{'path': 'query.from', 'message': 'bad'}]}
    >>> json.loads(error_response(404, "unknown zone 'x'").body)
    {'detail': "unknown zone 'x'", 'errors': []}
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from storesense.api.schemas import ErrorOut, Problem
from storesense.api.store.base import StoreUnavailableError

DESCRIPTIONS = {
    400: "malformed request (e.g. a Last-Event-ID that is not a cursor of this store)",
    401: "no API key, or an unknown one",
    403: "the key lacks the scope this route needs",
    404: "unknown resource (zone, camera, key, member)",
    405: "method not allowed on this path (see the Allow header)",
    409: "conflict with the current state",
    413: "request body too large, or an image declaring too many pixels",
    415: "unsupported content type",
    422: "invalid parameters or body: each problem with its field path",
    503: "the store (or the part of the service this route needs) is unavailable",
}
_ERROR_REF = {"$ref": "#/components/schemas/ErrorOut"}
_PATH_PARAM = re.compile(r"\{[^}]+\}")


def dotted(loc: Iterable[object]) -> str:
    """``('body', 'zones', 2, 'polygon')`` → ``body.zones[2].polygon``.

    >>> dotted(("body", "zones", 2, "polygon"))
    'body.zones[2].polygon'
    """
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path


def _problems(detail: object) -> list[Problem]:
    if isinstance(detail, list):
        problems = []
        for item in detail:
            if isinstance(item, Mapping):
                path = item.get("path", dotted(item.get("loc", ())))
                message = item.get("message", item.get("msg", ""))
                problems.append(Problem(path=str(path), message=str(message)))
            else:
                problems.append(Problem(path="", message=str(item)))
        return problems
    return []


def error_body(status_code: int, detail: object) -> ErrorOut:
    """The :class:`ErrorOut` of ``detail``: a message, or a list of field problems."""
    problems = _problems(detail)
    if problems:
        summary = "; ".join(f"{p.path}: {p.message}" if p.path else p.message for p in problems)
    elif detail is None or detail == "":
        summary = DESCRIPTIONS.get(status_code, f"HTTP {status_code}")
    else:
        summary = str(detail)
    return ErrorOut(detail=summary, errors=problems)


def error_response(
    status_code: int, detail: object, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(
        error_body(status_code, detail).model_dump(),
        status_code=status_code,
        headers=dict(headers) if headers else None,
    )


def allowed_methods(schema: Mapping[str, Any], path: str) -> list[str]:
    """Every method the OpenAPI ``schema`` declares for a concrete ``path`` (HEAD with GET).

    Starlette's own 405 names only the first route that matched the path (``GET`` for
    ``/v1/layout``, which also takes ``PUT``).

    >>> allowed_methods({"paths": {"/v1/x/{id}": {"get": {}, "delete": {}}}}, "/v1/x/7")
    ['DELETE', 'GET', 'HEAD']
    """
    methods: set[str] = set()
    for template, operations in schema.get("paths", {}).items():
        if re.fullmatch(_PATH_PARAM.sub("[^/]+", template), path):
            methods |= {method.upper() for method in operations}
    if "GET" in methods:
        methods.add("HEAD")
    return sorted(methods)


def install_error_handlers(app: FastAPI) -> None:
    """Every error answer of ``app`` in the :class:`ErrorOut` shape, documented in OpenAPI."""

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            allowed = allowed_methods(app.openapi(), request.url.path)
            if allowed:
                headers["Allow"] = ", ".join(allowed)
        return error_response(exc.status_code, exc.detail, headers)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [
            {"path": dotted(err.get("loc", ())), "message": str(err.get("msg", ""))}
            for err in exc.errors()
        ]
        return error_response(422, problems)

    @app.exception_handler(StoreUnavailableError)
    async def store_unavailable(request: Request, exc: StoreUnavailableError) -> JSONResponse:
        return error_response(503, f"store unavailable: {exc}")

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                summary=app.summary,
                description=app.description,
                routes=app.routes,
            )
            app.openapi_schema = document_errors(schema)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def error_statuses(path: str, method: str, operation: Mapping[str, Any]) -> set[int]:
    """The error statuses an operation can answer, from what it takes."""
    statuses: set[int] = set()
    if path.startswith("/v1/"):
        statuses |= {401, 403, 503}
    if operation.get("parameters") or operation.get("requestBody"):
        statuses.add(422)
    if _PATH_PARAM.search(path):
        statuses.add(404)
    if "requestBody" in operation:
        statuses |= {400, 413}  # 400: a JSON body that does not parse
    return statuses


def document_errors(schema: dict[str, Any]) -> dict[str, Any]:
    """Declare :class:`ErrorOut` for every error status of every operation (replacing
    FastAPI's ``HTTPValidationError``, which the service never sends)."""
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    error_schema = ErrorOut.model_json_schema(ref_template="#/components/schemas/{model}")
    components.update(error_schema.pop("$defs", {}))
    components["ErrorOut"] = error_schema
    for name in ("HTTPValidationError", "ValidationError"):
        components.pop(name, None)
    for path, operations in schema.get("paths", {}).items():
        for method, operation in operations.items():
            responses = operation.setdefault("responses", {})
            declared = {int(code) for code in responses if code.isdigit()}
            for code in sorted(error_statuses(path, method, operation) | declared):
                if code < 400:
                    continue
                entry = responses.setdefault(str(code), {})
                entry.setdefault("description", DESCRIPTIONS.get(code, f"HTTP {code}"))
                content = entry.get("content", {}).get("application/json", {})
                ref = content.get("schema", {}).get("$ref", "")
                if not content or ref.endswith("/HTTPValidationError") or not ref:
                    entry["content"] = {"application/json": {"schema": dict(_ERROR_REF)}}
    return schema
