"""The FastAPI application: routers, shared state and start-up/shut-down.

Example (single process, SQLite, camera workers in threads)::

    from storesense.api.app import create_app
    from storesense.api.settings import ServiceSettings
    from storesense.api.store import open_store
    from storesense.zones.config import load_layout

    layout = load_layout("examples/store.yaml")
    store = open_store("sqlite:///storesense.db", layout.store.id)
    app = create_app(ServiceSettings(), store, layout, supervisor=None)
    # uvicorn.run(app)
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from storesense.api.auth import Authenticator
from storesense.api.errors import install_error_handlers
from storesense.api.limits import BodySizeLimit
from storesense.api.privacy.service import OptInService
from storesense.api.routers import (
    cameras,
    counts,
    events,
    health,
    heatmap,
    keys,
    metrics,
    occupancy,
    pages,
    transactions,
)
from storesense.api.routers import journeys as journeys_router
from storesense.api.routers import layout as layout_router
from storesense.api.routers import optin as optin_router
from storesense.api.routers.events import EventHub
from storesense.api.routers.occupancy import OccupancyCache, OccupancyFastPath
from storesense.api.routers.pages import STATIC_DIR
from storesense.api.runtime import WorkerSupervisor
from storesense.api.settings import ServiceSettings
from storesense.api.store.base import ApiKeyRecord, Store
from storesense.zones.config import StoreLayout

logger = logging.getLogger(__name__)


def create_app(
    settings: ServiceSettings,
    store: Store,
    layout: StoreLayout,
    *,
    supervisor: WorkerSupervisor | None = None,
    file_keys: Iterable[ApiKeyRecord] = (),
    manage_supervisor: bool = True,
    optin: OptInService | None = None,
) -> FastAPI:
    """Build the API over ``store``.

    ``supervisor`` (optional) runs the camera workers of this process; with
    ``manage_supervisor`` it is started and stopped with the app. ``file_keys``
    are hashed keys from an ``--api-keys`` file, on top of keys in the store.
    ``optin`` (shared with the workers) serves ``/v1/optin`` and purges old data.
    """
    occupancy_cache = OccupancyCache(store, layout, settings.occupancy_refresh_s)
    hub = EventHub(store, settings.sse_queue_size)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        occupancy_cache.start()
        hub.start()
        if optin is not None:
            optin.start()
        if supervisor is not None and manage_supervisor:
            supervisor.start()
        try:
            yield
        finally:
            if supervisor is not None and manage_supervisor:
                supervisor.stop()
            hub.stop()
            occupancy_cache.stop()
            if optin is not None:
                optin.close()

    app = FastAPI(
        title="StoreSense",
        version="1",
        summary="Anonymous in-store analytics: live occupancy, events, counts and metrics.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.store = store
    app.state.layout = layout
    app.state.supervisor = supervisor
    app.state.auth = Authenticator(store, file_keys, cache_s=settings.key_cache_s)
    app.state.occupancy = occupancy_cache
    app.state.events = hub
    app.state.optin = optin

    def apply_layout(new_layout: StoreLayout) -> None:
        app.state.layout = new_layout
        occupancy_cache.set_layout(new_layout)
        if optin is not None:
            optin.set_layout(new_layout)
        if supervisor is not None:
            supervisor.apply_layout(new_layout)

    app.state.apply_layout = apply_layout

    for module in (
        occupancy,
        events,
        counts,
        metrics,
        transactions,
        layout_router,
        cameras,
        keys,
        health,
        optin_router,
        journeys_router,
        heatmap,
        pages,
    ):
        app.include_router(module.router)

    install_error_handlers(app)

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    app.add_middleware(OccupancyFastPath, state=app.state)
    app.add_middleware(BodySizeLimit, limit=lambda: app.state.settings.max_frame_bytes)
    return app
