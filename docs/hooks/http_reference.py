"""Render the service's OpenAPI schema as Markdown: the HTTP API page of the docs site.

The schema is the one ``storesense serve`` publishes at ``/openapi.json``, taken from
:func:`storesense.api.app.create_app` over an in-memory store (no server, no camera).
"""

from __future__ import annotations

import json
from typing import Any

_METHODS = ("get", "post", "put", "patch", "delete")


def openapi_schema() -> dict[str, Any]:
    """The service's OpenAPI document, built from the app without starting it."""
    from storesense.api.app import create_app
    from storesense.api.settings import ServiceSettings
    from storesense.api.store import open_store
    from storesense.zones.config import StoreLayout

    layout = StoreLayout.model_validate({"store": {"id": "docs"}, "cameras": [{"id": "cam1"}]})
    store = open_store("sqlite://:memory:", "docs")
    try:
        return create_app(ServiceSettings(), store, layout).openapi()
    finally:
        store.close()


def _text(text: str | None) -> str:
    return (text or "").replace("``", "`").strip()


def _cell(text: str | None) -> str:
    return " ".join(_text(text).split()).replace("|", "\\|")


def _schema_type(schema: dict[str, Any]) -> str:
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return f"[{name}](#{name.lower()})"
    for key in ("anyOf", "oneOf", "allOf"):
        if key in schema:
            return " \\| ".join(_schema_type(part) for part in schema[key])
    if "enum" in schema:
        return " \\| ".join(f"`{json.dumps(value)}`" for value in schema["enum"])
    kind = schema.get("type", "any")
    if kind == "array":
        return f"array of {_schema_type(schema.get('items', {}))}"
    if kind == "object" and "additionalProperties" in schema:
        values = schema["additionalProperties"]
        inner = _schema_type(values) if isinstance(values, dict) else "any"
        return f"object of {inner}"
    return str(kind)


def _operation(method: str, path: str, op: dict[str, Any]) -> list[str]:
    out = [f"### `{method.upper()} {path}`", ""]
    if op.get("summary"):
        out += [f"**{op['summary']}.** " + _text(op.get("description")), ""]
    elif op.get("description"):
        out += [_text(op["description"]), ""]
    parameters = op.get("parameters", [])
    if parameters:
        out += ["| parameter | in | type | required | description |", "|---|---|---|---|---|"]
        for parameter in parameters:
            schema = parameter.get("schema", {})
            description = parameter.get("description") or schema.get("description")
            out.append(
                f"| `{parameter['name']}` | {parameter['in']} | {_schema_type(schema)} "
                f"| {'yes' if parameter.get('required') else 'no'} | {_cell(description)} |"
            )
        out.append("")
    body = op.get("requestBody")
    if body:
        kinds = [
            f"`{media}` {_schema_type(spec.get('schema', {}))}"
            for media, spec in body.get("content", {}).items()
        ]
        out += [
            f"Request body{' (required)' if body.get('required') else ''}: " + ", ".join(kinds),
            "",
        ]
    out += ["| answer | meaning | body |", "|---|---|---|"]
    for code, response in op.get("responses", {}).items():
        content = response.get("content", {})
        bodies = ", ".join(
            f"`{media}` {_schema_type(spec.get('schema', {}))}" for media, spec in content.items()
        )
        out.append(f"| `{code}` | {_cell(response.get('description'))} | {bodies} |")
    return [*out, ""]


def _component(name: str, schema: dict[str, Any]) -> list[str]:
    out = [f"### {name} {{#{name.lower()}}}", ""]
    if schema.get("description"):
        out += [_text(schema["description"]), ""]
    properties = schema.get("properties")
    if not properties:
        return [*out, f"Type: {_schema_type(schema)}", ""]
    required = set(schema.get("required", []))
    out += ["| field | type | required | default | description |", "|---|---|---|---|---|"]
    for field, spec in properties.items():
        default = f"`{json.dumps(spec['default'])}`" if "default" in spec else ""
        out.append(
            f"| `{field}` | {_schema_type(spec)} | {'yes' if field in required else 'no'} "
            f"| {default} | {_cell(spec.get('description'))} |"
        )
    return [*out, ""]


def http_api_page(schema: dict[str, Any], intro: str) -> str:
    """Endpoints grouped by tag (in the order the app declares them), then the schemas."""
    groups: dict[str, list[str]] = {}
    for path, operations in schema["paths"].items():
        for method in _METHODS:
            if method in operations:
                op = operations[method]
                tag = (op.get("tags") or ["other"])[0]
                groups.setdefault(tag, []).extend(_operation(method, path, op))
    info = schema["info"]
    out = [
        "# HTTP API",
        "",
        intro,
        "",
        f"OpenAPI {schema['openapi']}, API version {info['version']}: {_text(info.get('summary'))}",
        "",
    ]
    for tag, lines in groups.items():
        out += [f"## {tag.capitalize()}", "", *lines]
    out += ["## Schemas", ""]
    for name, component in schema.get("components", {}).get("schemas", {}).items():
        out += _component(name, component)
    return "\n".join(out)
