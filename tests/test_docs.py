"""The documentation: the mkdocs site builds with --strict (no broken link, no warning),
its generated reference pages cover the code, and README.md stays a short front page."""

from __future__ import annotations

import doctest
import importlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

REPO_ROOT = Path(__file__).resolve().parents[1]
README = REPO_ROOT / "README.md"
HOOKS = REPO_ROOT / "docs" / "hooks"
MARKDOWN_LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The site, built once by ``mkdocs build --strict`` into a temporary folder."""
    out = tmp_path_factory.mktemp("site")
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    log = result.stdout[-6000:] + result.stderr[-6000:]
    assert result.returncode == 0, log
    assert "WARNING" not in result.stderr, log
    return out


def _hooks_module(name: str) -> Any:
    sys.path.insert(0, str(HOOKS))
    try:
        return importlib.import_module(name)
    finally:
        sys.path.remove(str(HOOKS))


def _models_under(root: type[BaseModel]) -> list[type[BaseModel]]:
    found: list[type[BaseModel]] = []
    queue = [root]
    while queue:
        model = queue.pop()
        if model not in found:
            found.append(model)
            for field in model.model_fields.values():
                queue += _hooks_module("config_reference")._models_in(field.annotation)
    return found


def test_the_site_builds_offline_with_every_page(site: Path) -> None:
    pages = sorted(p.relative_to(site).parent.as_posix() for p in site.rglob("index.html"))
    for page in (
        "getting-started",
        "guides/zones-and-lines",
        "guides/serving",
        "reference/configuration",
        "reference/http-api",
        "reference/cli",
        "reference/python-api",
        "benchmarks",
        "limits",
    ):
        assert page in pages
    for html in site.rglob("*.html"):
        text = html.read_text()
        assert "fonts.googleapis.com" not in text and "fonts.gstatic.com" not in text, html


def test_configuration_reference_lists_every_field_of_the_models(site: Path) -> None:
    from storesense.api.settings import ServiceSettings
    from storesense.zones.config import StoreLayout

    page = (site / "reference" / "configuration" / "index.html").read_text()
    for root in (StoreLayout, ServiceSettings):
        for model in _models_under(root):
            assert f'id="{model.__name__.lower()}"' in page, model
            for name in model.model_fields:
                assert f"<code>{name}</code>" in page, f"{model.__name__}.{name}"


def test_every_field_of_the_configuration_reference_has_a_description() -> None:
    from storesense.api.settings import ServiceSettings
    from storesense.zones.config import StoreLayout

    config_reference = _hooks_module("config_reference")
    missing = []
    for root in (StoreLayout, ServiceSettings):
        models = _models_under(root)
        assert len(models) >= 5, models
        for model in models:
            docs = config_reference.attribute_docstrings(model)
            for name, field in model.model_fields.items():
                if not (field.description or docs.get(name, "")).strip():
                    missing.append(f"{model.__module__}.{model.__name__}.{name}")
    assert not missing, (
        f"fields without a description (Field(description=...) or docstring): {missing}"
    )


def test_configuration_reference_shows_field_descriptions(site: Path) -> None:
    page = (site / "reference" / "configuration" / "index.html").read_text()
    assert "TCP port of the HTTP API" in page
    assert "white-noise acceleration of the box centre" in page


def test_http_reference_lists_every_operation_of_the_openapi_schema(site: Path) -> None:
    schema = json.loads((site / "reference" / "openapi.json").read_text())
    page = (site / "reference" / "http-api" / "index.html").read_text()
    assert schema["info"]["title"] == "StoreSense"
    operations = [
        f"{method.upper()} {path}" for path, ops in schema["paths"].items() for method in ops
    ]
    assert "GET /v1/occupancy" in operations
    for operation in operations:
        assert f"<code>{operation}</code>" in page, operation


def test_cli_reference_shows_every_command(site: Path) -> None:
    page = (site / "reference" / "cli" / "index.html").read_text()
    for command in ("models fetch", "track", "count", "serve", "keys create"):
        assert f"usage: storesense {command}" in page, command


def test_python_api_reference_renders_docstring_examples_as_code(site: Path) -> None:
    page = (site / "reference" / "python-api" / "index.html").read_text()
    assert 'id="storesense.zones.config.load_layout"' in page
    assert "Examples:" in page and ":class:`" not in page


@pytest.mark.parametrize(
    ("docstring", "markdown"),
    [
        ("Turns :class:`~storesense.vision.detections.Tracks` into", "Turns `Tracks` into"),
        ("See :func:`storesense.zones.load_layout`.", "See `storesense.zones.load_layout`."),
        ("``zone_exit`` events", "`zone_exit` events"),
        ("Example:\n    >>> 1 + 1\n    2", "Examples:\n    >>> 1 + 1\n    2"),
        ("An example: of text stays", "An example: of text stays"),
    ],
)
def test_docstrings_are_read_as_markdown(docstring: str, markdown: str) -> None:
    assert _hooks_module("griffe_docstrings").markdown_docstring(docstring) == markdown


def test_hook_examples_run() -> None:
    for name in ("griffe_docstrings", "config_reference", "http_reference", "cli_reference"):
        result = doctest.testmod(_hooks_module(name), report=False)
        assert result.failed == 0, name


def test_readme_is_a_short_front_page() -> None:
    lines = README.read_text().splitlines()
    assert len(lines) <= 200, f"README.md has {len(lines)} lines (at most 200)"
    text = "\n".join(lines)
    for command in ("./scripts/demo", "./scripts/test", "storesense count", "storesense serve"):
        assert command in text


def test_every_relative_link_in_the_readme_exists() -> None:
    targets = [
        target
        for target in MARKDOWN_LINK.findall(README.read_text())
        if not re.match(r"^[a-z][a-z0-9+.-]*:", target) and not target.startswith("#")
    ]
    assert len(targets) >= 10, targets
    missing = [t for t in targets if not (README.parent / t.split("#")[0]).exists()]
    assert not missing, f"README.md links to missing files: {missing}"
