"""MkDocs hook: pages generated from the code at build time, and the import namespace.

* ``reference/configuration.md``: the layout file's and the service's pydantic models;
* ``reference/http-api.md`` and ``reference/openapi.json``: the app's OpenAPI schema;
* ``reference/cli.md``: every ``storesense`` command's ``--help``;
* ``build/docs-namespace/storesense/<package>``: links to the source folders, so that
  mkdocstrings (griffe) finds ``storesense.vision`` & co. by path, as setuptools'
  package-dir maps them (the folders are ``vision/``, ``zones/``, …, not ``storesense/``).
"""

from __future__ import annotations

import contextlib
import json
import sys
import tomllib
from pathlib import Path
from typing import Any

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.plugins import event_priority
from mkdocs.structure.files import File, Files

sys.path.insert(0, str(Path(__file__).parent))

from cli_reference import cli_page
from config_reference import models_page
from http_reference import http_api_page, openapi_schema

CONFIGURATION_INTRO = """\
Generated from the pydantic models at build time, so it always matches the code.
Every model forbids unknown fields and reports each problem as `path: message`
(see [Zones, lines and counting](../guides/zones-and-lines.md#the-layout-file)).
"""

LAYOUT_INTRO = """\
The store's own YAML or JSON file (`storesense count --layout`, `storesense serve --layout`,
`PUT /v1/layout`), read by `storesense.zones.config.load_layout`.
"""

SERVICE_INTRO = """\
What one `storesense serve` process runs with (`storesense.api.settings.ServiceSettings`,
pydantic-settings). Each field comes from the first of:

1. the command's flag (see [The service](../guides/serving.md#options));
2. the environment: `STORESENSE_<FIELD>` in capitals (`STORESENSE_HOST`, `STORESENSE_PORT`,
   `STORESENSE_MQTT_URL`, `STORESENSE_PROVIDER`, …; the store URL also as the short
   `STORESENSE_STORE`; nested fields with `__`, e.g. `STORESENSE_BACKOFF__MAX_S=30`);
3. a settings file, `--config FILE` or `STORESENSE_CONFIG=FILE`: YAML, JSON or TOML whose
   keys are the field names below (`store` for `store_url`);
4. the default below.

The layout is not a setting: it stays the store's own file (`--layout`). `--privacy FILE`
fills `optin` (see [Privacy](../guides/privacy.md#configuration-optinsettings)).

```bash
STORESENSE_STORE=redis://localhost:6379/0 storesense serve --layout store.yaml
storesense serve --layout store.yaml --model my-detector.onnx --input-size 640 --provider cuda
```
"""

HTTP_INTRO = """\
Generated at build time from the OpenAPI schema the service publishes at `/openapi.json`
(also [here](openapi.json)); a running service shows the same at `/docs`. Every path
except `/healthz` and `/readyz` needs an API key with the scope named in its description
once keys exist (see [API keys and scopes](../guides/serving.md#api-keys-and-scopes)).
"""

CLI_INTRO = """\
Generated at build time from the command's own `--help` (`storesense --version` prints the
version). Bad input ends with one `storesense: error: …` line and exit status 2; a layout
that cannot be used gives one line per problem, the same in every command:
`storesense: error: layout FILE: path: message`.

The shared options mean the same everywhere: `--layout FILE` is the store's layout,
`--store URL` the store (`sqlite:///FILE` or `redis://HOST:PORT/DB`, default
`$STORESENSE_STORE`, else `sqlite:///storesense.db`), and `--camera ID` always names a
camera by its id, `cameras[].id` of the layout: `count` counts that camera, `serve` runs
only the cameras named (repeatable), and `track`, which needs no layout, tags its frames
with it.
"""


def _link_namespace(root: Path) -> Path:
    """``build/docs-namespace/storesense/<name>`` -> each package-dir folder."""
    project = tomllib.loads((root / "pyproject.toml").read_text())
    package_dir: dict[str, str] = project["tool"]["setuptools"]["package-dir"]
    namespace = root / "build" / "docs-namespace"
    for name, folder in package_dir.items():
        link = namespace.joinpath(*name.split("."))
        link.parent.mkdir(parents=True, exist_ok=True)
        target = (root / folder).resolve()
        if link.is_symlink() and link.resolve() == target:
            continue
        if link.is_symlink():
            link.unlink()
        with contextlib.suppress(FileExistsError):  # a parallel build made it
            link.symlink_to(target, target_is_directory=True)
    return namespace


@event_priority(100)  # before mkdocstrings reads its `paths`
def on_config(config: MkDocsConfig) -> MkDocsConfig:
    _link_namespace(Path(config.config_file_path).parent)
    return config


def _models() -> list[tuple[str, str, Any]]:
    from storesense.api.settings import ServiceSettings
    from storesense.zones.config import StoreLayout

    return [
        ("Store layout file", LAYOUT_INTRO, StoreLayout),
        ("Service settings", SERVICE_INTRO, ServiceSettings),
    ]


def on_files(files: Files, config: MkDocsConfig) -> Files:
    schema = openapi_schema()
    generated = {
        "reference/configuration.md": models_page(
            "Configuration reference", CONFIGURATION_INTRO, _models()
        ),
        "reference/http-api.md": http_api_page(schema, HTTP_INTRO),
        "reference/openapi.json": json.dumps(schema, indent=2),
        "reference/cli.md": cli_page(CLI_INTRO),
    }
    for path, content in generated.items():
        files.append(File.generated(config, path, content=content))
    return files
