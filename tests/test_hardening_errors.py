"""Issue 9 item 11: one error shape, declared in OpenAPI, and a 405 whose Allow header
lists every method of the path. Real uvicorn over a real SQLite store."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from service_helpers import SETTINGS, LiveServer, layout_dict
from storesense.api.app import create_app
from storesense.api.schemas import ErrorOut
from storesense.api.store import open_store
from storesense.zones.config import StoreLayout

JSON = {"content-type": "application/json"}


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    store_id = f"t{uuid.uuid4().hex[:8]}"
    store = open_store(f"sqlite:///{tmp_path_factory.mktemp('errors') / 's.db'}", store_id)
    layout = StoreLayout.model_validate(layout_dict(store_id))
    with LiveServer(create_app(SETTINGS, store, layout)) as server:
        yield server.url
    store.close()


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status", "has_errors"),
    [
        ("GET", "/v1/counts", {"params": {"from": "nan"}}, 422, False),
        ("POST", "/v1/keys", {"json": {"name": "x", "scopes": ["nope"]}}, 422, True),
        ("POST", "/v1/transactions", {"json": {"buckets": [{"start": "noon"}]}}, 422, True),
        ("PUT", "/v1/layout", {"json": {"store": {"id": 1}}}, 422, True),
        ("POST", "/v1/transactions", {"content": b"{no", "headers": JSON}, 422, True),
        ("POST", "/v1/transactions", {"content": b'{"a": "\xc3"}', "headers": JSON}, 400, False),
        ("GET", "/v1/zones/nowhere/occupancy", {}, 404, False),
        ("GET", "/v1/nothing-here", {}, 404, False),
        ("POST", "/v1/cameras/cam1/frames", {"content": b"x"}, 503, False),
        ("DELETE", "/v1/layout", {}, 405, False),
    ],
)
def test_every_error_has_the_one_shape(
    url: str, method: str, path: str, kwargs: dict[str, Any], status: int, has_errors: bool
) -> None:
    response = httpx.request(method, f"{url}{path}", timeout=10, **kwargs)
    assert response.status_code == status, response.text
    body = ErrorOut.model_validate(response.json())
    assert body.detail
    assert bool(body.errors) == has_errors
    for problem in body.errors:
        assert problem.path and problem.message and problem.path in body.detail


@pytest.mark.parametrize(
    ("path", "allowed"),
    [
        ("/v1/layout", {"GET", "HEAD", "PUT"}),
        ("/v1/transactions", {"GET", "HEAD", "POST"}),
        ("/v1/cameras/cam1/debug", {"GET", "HEAD", "PUT"}),
        ("/v1/optin/members/m-1", {"GET", "HEAD", "DELETE"}),
    ],
)
def test_405_allow_lists_every_method_of_the_path(url: str, path: str, allowed: set[str]) -> None:
    response = httpx.request("PATCH", f"{url}{path}", timeout=10)
    assert response.status_code == 405
    assert {m.strip() for m in response.headers["allow"].split(",")} == allowed


def test_openapi_declares_the_error_shape_for_every_error_status(url: str) -> None:
    schema = httpx.get(f"{url}/openapi.json", timeout=10).json()
    assert "HTTPValidationError" not in schema["components"]["schemas"]
    seen = set()
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            responses = operation["responses"]
            if path.startswith("/v1/"):
                assert {"401", "403"} <= set(responses), (method, path)
            if operation.get("parameters") or operation.get("requestBody"):
                assert "422" in responses, (method, path)
            for code, response in responses.items():
                if int(code) >= 400 and not (path == "/readyz" and code == "503"):
                    ref = response["content"]["application/json"]["schema"]["$ref"]
                    assert ref.endswith("/ErrorOut"), (method, path, code)
                    seen.add(code)
    assert {"400", "401", "403", "404", "409", "413", "415", "422", "503"} <= seen
