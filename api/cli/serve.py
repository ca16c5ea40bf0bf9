"""``storesense serve``: camera workers and the HTTP API in one command.

Example::

    storesense serve --layout examples/serve-demo.yaml
    storesense serve --layout store.yaml --store redis://localhost:6379/0 --no-api   # workers only
    storesense serve --layout store.yaml --store redis://localhost:6379/0 --no-workers \\
        --host 0.0.0.0 --api-keys keys.json                                        # API replica
    storesense serve --layout store.yaml --mqtt mqtt://broker.local --mqtt-discovery  # + MQTT
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
from storesense.api.settings import MQTT_URL_ENV
from storesense.api.store import DEFAULT_STORE_URL

if TYPE_CHECKING:
    from storesense.api.mqtt.publisher import MqttPublisher
    from storesense.api.settings import ServiceSettings
    from storesense.api.store.base import Store
    from storesense.vision.detector import Detector
    from storesense.zones.config import StoreLayout

logger = logging.getLogger(__name__)

NO_KEYS_WARNING = """
==============================================================================
  WARNING: NO API KEYS CONFIGURED - the API is OPEN to anyone who can reach it.
  It is bound to {host} (this machine only). To serve other machines, create
  keys first:   storesense keys create --scope admin --store {store} --layout {layout}
  then start with --host 0.0.0.0 (keys in the store or --api-keys FILE).
==============================================================================
"""


EXAMPLES = """\
  storesense serve --layout examples/serve-demo.yaml
  STORESENSE_STORE=redis://localhost:6379/0 storesense serve --layout store.yaml --no-api
  storesense serve --layout store.yaml --config storesense.toml --host 0.0.0.0
  storesense serve --layout store.yaml --model my-detector.onnx --input-size 640 --provider cuda
"""

_FLAG_FIELDS: dict[str, str] = {
    "store": "store_url",
    "host": "host",
    "port": "port",
    "api_keys": "api_keys_file",
    "spool": "spool_path",
    "k_anonymity": "k_anonymity",
    "loop": "loop_sources",
    "status_every": "status_print_s",
    "model": "model",
    "input_size": "input_size",
    "provider": "provider",
    "mqtt": "mqtt_url",
    "mqtt_discovery": "mqtt_discovery",
    "mqtt_ca": "mqtt_ca_file",
    "mqtt_cert": "mqtt_cert_file",
    "mqtt_key": "mqtt_key_file",
    "mqtt_insecure": "mqtt_tls_insecure",
    "mqtt_rate": "mqtt_occupancy_max_rate",
    "mqtt_queue": "mqtt_queue_size",
}
"""Flag (argparse dest) -> ServiceSettings field; a flag not given leaves the field to the
environment, the settings file or the default."""
_NEGATED_FLAGS: dict[str, str] = {
    "no_api": "run_api",
    "no_workers": "run_workers",
    "no_realtime": "realtime",
}


def _default(field: str) -> str:
    from storesense.api.settings import ServiceSettings

    value = ServiceSettings.model_fields[field].default
    env = f"STORESENSE_{field.upper()}"
    return f"(default: ${env} or {value})"


def register(subparsers: Any) -> None:
    from storesense.api.cli import CAMERA_HELP, add_command, add_layout_option

    parser = add_command(
        subparsers,
        "serve",
        examples=EXAMPLES,
        help="run camera workers and the HTTP API",
        description="Start one worker per camera of the layout and the HTTP API (uvicorn).\n"
        "Each setting comes from its flag, else its STORESENSE_<SETTING> environment\n"
        "variable, else the settings file (--config), else the default.",
        argument_default=argparse.SUPPRESS,  # an absent flag leaves the setting to env/file
    )
    add_layout_option(parser)
    parser.add_argument(
        "--config",
        type=Path,
        metavar="FILE",
        help="settings file (YAML, JSON or TOML; keys are ServiceSettings fields) "
        "(default: $STORESENSE_CONFIG, else none)",
    )
    parser.add_argument(
        "--store",
        metavar="URL",
        help=f"sqlite:///FILE or redis://HOST:PORT/DB (default: $STORESENSE_STORE or "
        f"{DEFAULT_STORE_URL})",
    )
    parser.add_argument("--host", help=f"address the API listens on {_default('host')}")
    parser.add_argument("--port", type=int, help=f"API port {_default('port')}")
    parser.add_argument(
        "--api-keys",
        type=Path,
        metavar="FILE",
        help="file of hashed keys (storesense keys) (default: none, keys in the store)",
    )
    parser.add_argument(
        "--no-api", action="store_true", help="camera workers only (default: API on)"
    )
    parser.add_argument(
        "--no-workers", action="store_true", help="HTTP API only, a replica (default: workers on)"
    )
    parser.add_argument(
        "--camera",
        action="append",
        metavar="ID",
        default=None,
        help=f"run only this camera, {CAMERA_HELP} (repeatable; default: all)",
    )
    parser.add_argument(
        "--spool",
        type=Path,
        metavar="FILE",
        help="Redis: file where events wait while Redis is down "
        "(default: storesense-spool.db with Redis and workers)",
    )
    parser.add_argument(
        "--k-anonymity",
        type=int,
        metavar="K",
        help=f"suppress exported buckets < K people, 0 = off {_default('k_anonymity')}",
    )
    parser.add_argument(
        "--no-realtime",
        action="store_true",
        help="process files as fast as possible (default: paced at their frame rate)",
    )
    parser.add_argument(
        "--loop", action="store_true", help="replay file sources forever (default: once)"
    )
    parser.add_argument(
        "--status-every",
        type=float,
        metavar="SECONDS",
        help=f"live-count line every SECONDS, 0 = quiet {_default('status_print_s')}",
    )
    parser.add_argument(
        "--privacy",
        type=Path,
        metavar="FILE",
        help="YAML of retention and opt-in hooks (OptInSettings) (default: 30 days, no hooks)",
    )
    detector = parser.add_argument_group("detector")
    detector.add_argument(
        "--model",
        metavar="NAME|PATH",
        help=f"registered model name or an ONNX file {_default('model')}",
    )
    detector.add_argument(
        "--input-size",
        type=int,
        metavar="N",
        help="square network input side; a model with a fixed input takes only its own "
        "(default: $STORESENSE_INPUT_SIZE or the model's)",
    )
    detector.add_argument(
        "--provider",
        metavar="NAME",
        help="onnxruntime execution provider: cpu, cuda, auto or a provider name such as "
        f"OpenVINOExecutionProvider {_default('provider')}",
    )
    mqtt = parser.add_argument_group("MQTT output (docs/guides/mqtt.md)")
    mqtt.add_argument(
        "--mqtt",
        metavar="URL",
        help="publish live occupancy, line counts, events and camera states to this broker: "
        f"mqtt[s]://[user:pass@]host[:port][/prefix] (default: ${MQTT_URL_ENV}, else off)",
    )
    mqtt.add_argument(
        "--mqtt-discovery",
        action="store_true",
        help="announce sensors to Home Assistant (default: off)",
    )
    mqtt.add_argument(
        "--mqtt-ca", type=Path, metavar="FILE", help="mqtts: CA bundle, PEM (default: system CAs)"
    )
    mqtt.add_argument(
        "--mqtt-cert", type=Path, metavar="FILE", help="mqtts: client certificate (default: none)"
    )
    mqtt.add_argument(
        "--mqtt-key", type=Path, metavar="FILE", help="mqtts: client key (default: none)"
    )
    mqtt.add_argument(
        "--mqtt-insecure",
        action="store_true",
        help="mqtts: skip the broker host name check (default: checked)",
    )
    mqtt.add_argument(
        "--mqtt-rate",
        type=float,
        metavar="N",
        help=f"most occupancy messages per second per zone {_default('mqtt_occupancy_max_rate')}",
    )
    mqtt.add_argument(
        "--mqtt-queue",
        type=int,
        metavar="N",
        help="events kept while the broker is slow or away, then dropped "
        f"{_default('mqtt_queue_size')}",
    )
    parser.set_defaults(func=_run, camera=None)


def settings_flags(args: argparse.Namespace) -> dict[str, Any]:
    """The ServiceSettings fields the command line sets (flags given, nothing else)."""
    given = vars(args)
    flags = {field: given[dest] for dest, field in _FLAG_FIELDS.items() if dest in given}
    flags.update({field: False for dest, field in _NEGATED_FLAGS.items() if given.get(dest)})
    return flags


def _settings(args: argparse.Namespace) -> ServiceSettings:
    from storesense.api.privacy.service import OptInSettings
    from storesense.api.settings import ServiceSettings
    from storesense.api.store import is_redis_url

    flags = settings_flags(args)
    privacy = getattr(args, "privacy", None)
    try:
        if privacy is not None:
            flags["optin"] = OptInSettings.load(privacy)
    except ValueError as exc:
        raise CLIError(f"--privacy: {exc}") from None
    try:
        settings = ServiceSettings.load(flags, getattr(args, "config", None))
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'settings'}: "
            f"{str(e['msg']).removeprefix('Value error, ')}"
            for e in exc.errors()
        )
        raise CLIError(problems) from None
    except ValueError as exc:
        raise CLIError(str(exc)) from None
    if settings.spool_path is None and is_redis_url(settings.store_url) and settings.run_workers:
        settings = settings.model_copy(update={"spool_path": Path("storesense-spool.db")})
    return settings


def _run(args: argparse.Namespace) -> int:
    from storesense.api.auth import load_key_file
    from storesense.api.cli import load_layout_file
    from storesense.api.runtime import (
        WorkerSupervisor,
        check_camera_ids,
        live_count_line,
        pipeline_factory_for,
    )
    from storesense.api.store import open_store
    from storesense.api.store.base import StoreUnavailableError

    settings = _settings(args)
    layout = load_layout_file(args.layout)
    if args.camera:
        if not settings.run_workers:
            raise CLIError("--camera picks the cameras this process runs: drop --no-workers")
        try:
            check_camera_ids(layout, args.camera)
        except ValueError as exc:
            raise CLIError(f"--camera: {exc}") from None
    if settings.mqtt_url is not None and not settings.run_workers:
        raise CLIError(
            "--mqtt publishes what this process's cameras see: drop --no-workers "
            "(run it on the worker processes)"
        )
    try:
        file_keys = load_key_file(settings.api_keys_file) if settings.api_keys_file else []
    except ValueError as exc:
        raise CLIError(str(exc)) from None
    store_id = settings.store_id or layout.store.id
    try:
        store = open_store(settings.store_url, store_id, spool_path=settings.spool_path)
        # Workers alone need no keys: with a spool they start while the store is down.
        store_has_keys = bool(store.list_api_keys()) if settings.run_api else False
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
        optin = OptInService.for_store(store, layout, settings.optin)
    except ValueError as exc:
        raise CLIError(f"opt-in: {exc}") from None
    publisher = _mqtt_publisher(settings, layout, store, store_id, args.camera)
    supervisor = None
    if settings.run_workers:
        from storesense.vision.inference import InferenceService

        # One service runs every camera's detector: one single-threaded session call per core.
        inference = InferenceService(_detector(settings))
        supervisor = WorkerSupervisor(
            layout,
            store,
            settings,
            pipeline_factory=pipeline_factory_for(inference),
            optin=optin,
            cameras=args.camera,
            sink=publisher,
        )
        if publisher is not None:
            running = supervisor
            publisher.watch(running.statuses, lambda: running.layout)
            publisher.start()
    # The file given at start-up is the layout in force (PUT /v1/layout changes it live).
    try:
        store.put_layout(layout.model_dump_json())
    except StoreUnavailableError as exc:
        if settings.run_api or supervisor is None or settings.spool_path is None:
            raise CLIError(f"store {settings.store_url}: {exc}") from None
        logger.warning(
            "store %s unavailable (%s): cameras start and spool to %s; the layout is "
            "stored and the spool replayed when the store answers",
            settings.store_url,
            exc,
            settings.spool_path,
        )
        print(
            f"store {settings.store_url} unavailable: spooling to {settings.spool_path} "
            "until it answers",
            file=sys.stderr,
        )
        supervisor.publish_layout_later()

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
        if publisher is not None:
            publisher.stop()
        store.close()
    logger.debug("serve stopped")
    return 0


def _detector(settings: ServiceSettings) -> Detector:
    """The detector ``--model``, ``--input-size`` and ``--provider`` name; one-line errors."""
    from storesense.models.fetch import FetchError
    from storesense.vision.detector import Detector

    try:
        return Detector.from_model(
            settings.model,
            providers=settings.execution_providers(),
            input_size=settings.input_size,
            intra_op_threads=1,
        )
    except (FetchError, ValueError, OSError) as exc:
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise CLIError(f"--model {settings.model}: {reason}") from None


def _mqtt_publisher(
    settings: ServiceSettings,
    layout: StoreLayout,
    store: Store,
    store_id: str,
    cameras: list[str] | None,
) -> MqttPublisher | None:
    """The MQTT publisher of this process's cameras, or ``None`` without ``--mqtt``.

    A process running only some cameras (``--camera``) has its own status topic,
    ``{prefix}/{store}/status/{its cameras}``, so its last will speaks for those only.
    """
    options = settings.mqtt_options()
    if options is None:
        return None
    from storesense.api.mqtt.publisher import MqttPublisher

    node = ",".join(sorted(set(cameras))) if cameras else None
    publisher = MqttPublisher(
        options, layout, store=store, store_id=store_id, cameras=cameras, node=node
    )
    print(
        f"MQTT: publishing to {options.safe_url} (status topic {publisher.topics.status})",
        file=sys.stderr,
    )
    return publisher


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
