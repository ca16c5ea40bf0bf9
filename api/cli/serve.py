"""``storesense serve``: camera workers and the HTTP API in one command.

Example::

    storesense serve --layout examples/serve-demo.yaml
    storesense serve --layout store.yaml --store redis://localhost:6379/0 --no-api   # workers only
    storesense serve --layout store.yaml --store redis://localhost:6379/0 --no-workers \\
        --host 0.0.0.0 --api-keys keys.json                                        # API replica
"""

from __future__ import annotations

import argparse
import logging
import socket
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError
from storesense.api.cli import CLIError
from storesense.api.store import DEFAULT_STORE_URL

if TYPE_CHECKING:
    from storesense.api.settings import ServiceSettings

logger = logging.getLogger(__name__)

NO_KEYS_WARNING = """
==============================================================================
  WARNING: NO API KEYS CONFIGURED - the API is OPEN to anyone who can reach it.
  It is bound to {host} (this machine only). To serve other machines, create
  keys first:   storesense keys create --scope admin --store {store} --layout {layout}
  then start with --host 0.0.0.0 (keys in the store or --api-keys FILE).
==============================================================================
"""


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="run camera workers and the HTTP API",
        description="Start one worker per camera of the layout and the HTTP API (uvicorn).",
    )
    parser.add_argument("--layout", required=True, type=Path, help="store layout YAML/JSON")
    parser.add_argument(
        "--store", default=DEFAULT_STORE_URL, help="sqlite:///FILE or redis://HOST:PORT/DB"
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--api-keys", type=Path, help="file of hashed keys (storesense keys)")
    parser.add_argument("--no-api", action="store_true", help="camera workers only")
    parser.add_argument("--no-workers", action="store_true", help="HTTP API only (a replica)")
    parser.add_argument(
        "--camera",
        action="append",
        metavar="ID",
        help="run only this camera of the layout (repeatable; default: all)",
    )
    parser.add_argument(
        "--spool", type=Path, help="Redis: file where events wait while Redis is down"
    )
    parser.add_argument("--k-anonymity", type=int, default=0, help="suppress buckets < k (0=off)")
    parser.add_argument(
        "--no-realtime", action="store_true", help="process files as fast as possible"
    )
    parser.add_argument("--loop", action="store_true", help="replay file sources forever")
    parser.add_argument("--status-every", type=float, default=5.0, help="seconds; 0 = quiet")
    parser.add_argument(
        "--privacy", type=Path, help="YAML of retention and opt-in hooks (OptInSettings)"
    )
    parser.set_defaults(func=_run)


def _settings(args: argparse.Namespace) -> ServiceSettings:
    from storesense.api.privacy.service import OptInSettings
    from storesense.api.settings import ServiceSettings

    try:
        optin = OptInSettings.load(args.privacy) if args.privacy else None
    except ValueError as exc:
        raise CLIError(f"--privacy: {exc}") from None
    spool = args.spool
    if spool is None and args.store.startswith(("redis", "unix")) and not args.no_workers:
        spool = Path("storesense-spool.db")
    try:
        return ServiceSettings(
            store_url=args.store,
            host=args.host,
            port=args.port,
            api_keys_file=args.api_keys,
            run_api=not args.no_api,
            run_workers=not args.no_workers,
            spool_path=spool,
            k_anonymity=args.k_anonymity,
            realtime=not args.no_realtime,
            loop_sources=args.loop,
            status_print_s=args.status_every,
            optin=optin,
        )
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'settings'}: "
            f"{str(e['msg']).removeprefix('Value error, ')}"
            for e in exc.errors()
        )
        raise CLIError(problems) from None


def _run(args: argparse.Namespace) -> int:
    from storesense.api.auth import load_key_file
    from storesense.api.store import open_store
    from storesense.api.store.base import StoreUnavailableError
    from storesense.api.workers import (
        WorkerSupervisor,
        check_camera_ids,
        live_count_line,
        pipeline_factory_for,
    )
    from storesense.zones.config import LayoutError, load_layout

    settings = _settings(args)
    try:
        layout = load_layout(args.layout)
    except LayoutError as exc:
        raise CLIError(f"layout {args.layout}: {exc}") from None
    if args.camera:
        if not settings.run_workers:
            raise CLIError("--camera picks the cameras this process runs: drop --no-workers")
        try:
            check_camera_ids(layout, args.camera)
        except ValueError as exc:
            raise CLIError(f"--camera: {exc}") from None
    try:
        file_keys = load_key_file(settings.api_keys_file) if settings.api_keys_file else []
    except ValueError as exc:
        raise CLIError(str(exc)) from None
    store_id = settings.store_id or layout.store.id
    try:
        store = open_store(settings.store_url, store_id, spool_path=settings.spool_path)
        store_has_keys = bool(store.list_api_keys())
    except (ValueError, StoreUnavailableError) as exc:
        raise CLIError(f"store {settings.store_url}: {exc}") from None

    if settings.run_api and not (file_keys or store_has_keys):
        if not settings.is_loopback:
            raise CLIError(
                f"refusing to serve on {settings.host} with no API keys: create one with "
                f"'storesense keys create --scope admin --store {settings.store_url} "
                f"--layout {args.layout}' or "
                "bind to 127.0.0.1"
            )
        print(
            NO_KEYS_WARNING.format(
                host=settings.host, store=settings.store_url, layout=args.layout
            ),
            file=sys.stderr,
        )

    listener = _listen(settings.host, settings.port) if settings.run_api else None

    from storesense.api.privacy.service import OptInService

    try:
        optin = OptInService.for_store(settings.store_url, store, layout, settings.optin)
    except ValueError as exc:
        raise CLIError(f"opt-in: {exc}") from None
    supervisor = None
    if settings.run_workers:
        from storesense.vision.detector import Detector
        from storesense.vision.inference import InferenceService

        # One service runs every camera's detector: one single-threaded session call per core.
        inference = InferenceService(Detector.from_model("yolox-nano", intra_op_threads=1))
        supervisor = WorkerSupervisor(
            layout,
            store,
            settings,
            pipeline_factory=pipeline_factory_for(inference),
            optin=optin,
            cameras=args.camera,
        )
    # The file given at start-up is the layout in force (PUT /v1/layout changes it live).
    try:
        store.put_layout(layout.model_dump_json())
    except StoreUnavailableError as exc:
        raise CLIError(f"store {settings.store_url}: {exc}") from None

    stop_printing = threading.Event()
    if supervisor is not None and settings.status_print_s > 0:

        def print_status() -> None:
            while not stop_printing.wait(settings.status_print_s):
                print(live_count_line(supervisor.statuses()), flush=True)

        threading.Thread(target=print_status, name="status-print", daemon=True).start()

    try:
        if settings.run_api:
            import uvicorn
            from storesense.api.app import create_app

            app = create_app(
                settings, store, layout, supervisor=supervisor, file_keys=file_keys, optin=optin
            )
            print(f"StoreSense API on http://{settings.host}:{settings.port}/", file=sys.stderr)
            assert listener is not None
            uvicorn.Server(uvicorn.Config(app, log_level="warning")).run(sockets=[listener])
        else:
            assert supervisor is not None
            optin.start()
            supervisor.start()
            print("camera workers running (no API); Ctrl-C to stop", file=sys.stderr)
            threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        stop_printing.set()
        if supervisor is not None and not settings.run_api:
            supervisor.stop()
            optin.close()
        store.close()
    logger.debug("serve stopped")
    return 0


def _listen(host: str, port: int) -> socket.socket:
    """The API's listening socket, bound before any worker starts (a clash is one clear line)."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        listener = socket.socket(family, kind, proto)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(address)
        listener.listen(2048)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise CLIError(
            f"cannot listen on {host}:{port} ({reason}); is another server using it? "
            "pick another with --port"
        ) from None
    listener.set_inheritable(True)
    return listener
