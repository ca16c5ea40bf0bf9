"""The web app's pages: the dashboard at ``/`` and the zone editor at ``/setup``.

The pages are static HTML; the data comes from the ``/v1`` API with the browser's key, so
each page shows what that key's scope allows (``/setup`` needs ``admin`` for its data).
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse

STATIC_DIR = Path(str(resources.files("storesense.api") / "static"))

router = APIRouter(include_in_schema=False)

_NO_CACHE = {"Cache-Control": "no-cache"}


@router.get("/")
async def dashboard_page() -> FileResponse:
    return FileResponse(STATIC_DIR / "index.html", headers=_NO_CACHE)


@router.get("/setup")
async def setup_page() -> FileResponse:
    return FileResponse(STATIC_DIR / "setup.html", headers=_NO_CACHE)
