"""Publishes a process's live occupancy, line counts, events and camera states to MQTT.

:class:`MqttPublisher` is the camera workers' live sink
(:class:`~storesense.api.runtime.worker.LiveSink`): a worker hands it each change of its zones'
counts and each batch of events, which costs one short lock
(:class:`~storesense.api.mqtt.queue.OutgoingQueue`). One thread of its own drains the queue
into paho-mqtt, whose network thread talks to the broker, reconnects with back-off
(1 s doubling to 30 s) and sends the last will (``offline``). A broker that is down, slow
or stopped only fills the bounded queue: occupancy keeps its newest value, events beyond
``queue_size`` are dropped and counted in ``storesense_mqtt_dropped_total``. After every
(re)connection the status, the discovery configs and the newest retained state of every
topic are published again.

Only what this process's own cameras see is published: with several worker processes
per store, a zone's occupancy and a line's counts come from the process that runs its
camera.
"""

from __future__ import annotations

import contextlib
import logging
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import date, datetime
from typing import Any

import paho.mqtt.client as mqtt
import tenacity
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from storesense.api import telemetry
from storesense.api.mqtt.config import MqttOptions
from storesense.api.mqtt.queue import Message, OutgoingQueue
from storesense.api.mqtt.topics import (
    Topics,
    discovery_configs,
    dumps,
    mqtt_event_payload,
    occupancy_payload,
)
from storesense.api.store.base import EventQuery, Store, StoreUnavailableError
from storesense.zones.config import StoreLayout
from storesense.zones.events import Event, EventType

logger = logging.getLogger(__name__)

QOS = 1
"""Every message is sent with QoS 1, so the client's own buffer is bounded (below)."""
MAX_INFLIGHT = 20
CLIENT_QUEUE = 200
"""Messages the paho client may hold unacknowledged; beyond that, they wait in our queue."""
POLL_S = 1.0
"""How often camera states and layout changes are looked at."""
LINE_LOAD_RETRY_S = 5.0
"""Seconds between tries to load today's line counts while the store is unavailable."""


class _Stopped(Exception):
    """The publisher was stopped while it waited to retry."""


StatusSource = Callable[[], Mapping[str, Any]]
"""``camera id -> CameraStatus`` (anything with ``state`` and ``restarts``)."""
LayoutSource = Callable[[], StoreLayout]


class MqttPublisher:
    """Live output of one process to one broker; see the module docstring.

    ``cameras``: the cameras this process runs (``None``: all of the layout). ``store``
    gives today's line counts so far at start-up. ``statuses`` and ``layout_source``
    (e.g. the supervisor's) are polled every second for camera states and layout changes.
    """

    def __init__(
        self,
        options: MqttOptions,
        layout: StoreLayout,
        *,
        store: Store | None = None,
        store_id: str | None = None,
        cameras: Iterable[str] | None = None,
        node: str | None = None,
        statuses: StatusSource | None = None,
        layout_source: LayoutSource | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.options = options
        self.store_id = store_id or layout.store.id
        self.topics = Topics(options.prefix, self.store_id, node)
        self._store = store
        self._cameras = None if cameras is None else frozenset(cameras)
        self._statuses = statuses
        self._layout_source = layout_source
        self._clock = clock
        self._occupancy_interval = 1.0 / options.occupancy_max_rate
        self._queue = OutgoingQueue(options.queue_size, on_drop=self._count_drop)
        self._lock = threading.Lock()
        self._zone_values: dict[str, tuple[int, int]] = {}
        self._line_events: dict[tuple[str, str], set[str]] = {}
        self._lines_loaded = threading.Event()
        self._today: date = datetime.fromtimestamp(clock(), layout.store.tz).date()
        self._retained: dict[str, Message] = {}
        """The newest retained message sent per topic: sent again after a reconnection."""
        self._camera_states: dict[str, tuple[str, int]] = {}
        self._connected = threading.Event()
        self._reconnected = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._drain, name="mqtt-publish", daemon=True)
        self._loader = threading.Thread(target=self._load_lines, name="mqtt-lines", daemon=True)
        self._layout = layout
        self._zones: list[str] = []
        self._lines: list[str] = []
        self._own(layout)
        self._client = self._make_client()

    # ------------------------------------------------------------------ set-up
    def _make_client(self) -> mqtt.Client:
        options = self.options
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=options.client_id,
            protocol=mqtt.MQTTv311,
            clean_session=True,
        )
        if options.username is not None:
            client.username_pw_set(options.username, options.password)
        if options.tls:
            client.tls_set(
                ca_certs=str(options.ca_file) if options.ca_file else None,
                certfile=str(options.cert_file) if options.cert_file else None,
                keyfile=str(options.key_file) if options.key_file else None,
                cert_reqs=ssl.CERT_REQUIRED,
            )
            client.tls_insecure_set(options.tls_insecure)
        client.will_set(self.topics.status, b"offline", qos=QOS, retain=True)
        client.reconnect_delay_set(min_delay=1, max_delay=30)
        client.max_inflight_messages_set(MAX_INFLIGHT)
        client.max_queued_messages_set(CLIENT_QUEUE)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        return client

    def _own(self, layout: StoreLayout) -> None:
        """Zones and lines of the cameras this process runs, in ``layout``; and the store-wide
        floor zones when one of them is on the floor plan (every such process publishes
        the same store-wide counts)."""
        owned = [c for c in layout.cameras if self._cameras is None or c.id in self._cameras]
        cameras = {c.id for c in owned}
        on_floor = any(c.homography is not None for c in owned)
        self._zones = [
            z.id for z in layout.zones if z.camera in cameras or (z.camera is None and on_floor)
        ]
        self._lines = [ln.id for ln in layout.lines if ln.camera in cameras]

    def watch(self, statuses: StatusSource, layout_source: LayoutSource) -> None:
        """Follow camera states and layout changes (e.g. a supervisor's), polled every second."""
        self._statuses = statuses
        self._layout_source = layout_source

    def start(self) -> None:
        """Connect in the background (a broker that is down is retried with back-off)."""
        self._client.connect_async(self.options.host, self.options.port, self.options.keepalive_s)
        self._client.loop_start()
        self._thread.start()
        self._loader.start()

    def stop(self, timeout: float = 2.0) -> None:
        """Send what waits (for at most ``timeout`` seconds), then ``offline``, and disconnect."""
        if self._stop.is_set():
            return
        deadline = time.monotonic() + timeout
        while self._connected.is_set() and time.monotonic() < deadline:
            states, events = self._queue.waiting()
            if not states and not events:
                break
            time.sleep(0.02)
        self._stop.set()
        self._queue.ready.set()
        self._thread.join(timeout)
        said_offline = False
        if self._connected.is_set():
            info = self._client.publish(self.topics.status, b"offline", qos=QOS, retain=True)
            with contextlib.suppress(RuntimeError, ValueError):
                info.wait_for_publish(max(0.1, deadline - time.monotonic()))
            said_offline = info.is_published()
        if said_offline:
            self._client.disconnect()
        # Otherwise no clean DISCONNECT: the broker sends the last will ("offline") when
        # the connection closes with the process.
        self._client.loop_stop()
        telemetry.MQTT_CONNECTED.set(0)

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    # ---------------------------------------------- the camera workers' live sink
    def occupancy(
        self,
        camera_id: str,
        counts: Mapping[str, int],
        approaching: Mapping[str, int] | None,
        timestamp: float,
    ) -> None:
        """A camera's zone counts changed: queue each changed zone (newest wins)."""
        approaching = approaching or {}
        changed = []
        with self._lock:
            for zone_id, count in counts.items():
                value = (int(count), int(approaching.get(zone_id, 0)))
                if self._zone_values.get(zone_id) != value:
                    self._zone_values[zone_id] = value
                    changed.append((zone_id, value))
        for zone_id, (count, soon) in changed:
            payload = dumps(occupancy_payload(count, soon, timestamp))
            message = Message(self.topics.occupancy(zone_id), payload, True, "occupancy")
            self._queue.put_state(message, self._occupancy_interval)

    def events(self, camera_id: str, events: Sequence[Event]) -> None:
        """Queue each event (without anything per person) and count line crossings."""
        lines_changed = set()
        for event in events:
            message = Message(
                self.topics.event(str(event.type)), dumps(mqtt_event_payload(event)), False, "event"
            )
            self._queue.put_event(message)
            if event.type == EventType.LINE_CROSS and self._count_crossing(event):
                lines_changed.add(event.target)
        if lines_changed and self._lines_loaded.is_set():
            for line_id in lines_changed:
                self._queue_line(line_id)

    # ------------------------------------------------------------ line counts
    def _local_date(self, timestamp: float) -> date:
        return datetime.fromtimestamp(timestamp, self._layout.store.tz).date()

    def _count_crossing(self, event: Event) -> bool:
        direction = event.attributes.get("direction")
        if direction not in ("in", "out"):
            return False
        with self._lock:
            if self._local_date(event.timestamp) != self._today:
                return False
            seen = self._line_events.setdefault((event.target, str(direction)), set())
            if event.event_id in seen:
                return False
            seen.add(event.event_id)
        return True

    def _queue_line(self, line_id: str) -> None:
        with self._lock:
            counts = {d: len(self._line_events.get((line_id, d), ())) for d in ("in", "out")}
            today = self._today
        payload = {**counts, "date": today.isoformat(), "updated_at": self._clock()}
        self._queue.put_state(
            Message(self.topics.line_count(line_id), dumps(payload), True, "line_count"),
            self._occupancy_interval,
        )

    def _load_lines(self) -> None:
        """Today's crossings so far from the store (once; retried while it is unavailable)."""
        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception_type(StoreUnavailableError),
            wait=tenacity.wait_fixed(LINE_LOAD_RETRY_S),
            stop=tenacity.stop_when_event_set(self._stop),
            sleep=self._wait_or_stop,
            before_sleep=lambda state: logger.warning(
                "MQTT: today's line counts not loaded yet (%s); retrying",
                state.outcome.exception() if state.outcome is not None else None,
            ),
            reraise=True,
        )
        try:
            if self._stop.is_set():
                return
            retrying(self._load_lines_once)
        except (StoreUnavailableError, _Stopped):
            return  # stopped while the store was down
        except Exception:
            logger.exception("MQTT: loading today's line counts failed; counting from now")
        self._lines_loaded.set()
        for line_id in list(self._lines):
            self._queue_line(line_id)

    def _wait_or_stop(self, seconds: float) -> None:
        if self._stop.wait(seconds):
            raise _Stopped

    def _load_lines_once(self) -> None:
        if self._store is None or not self._lines:
            return
        now = self._clock()
        today = self._local_date(now)
        tz = self._layout.store.tz
        midnight = datetime(today.year, today.month, today.day, tzinfo=tz).timestamp()
        query = EventQuery(
            start=midnight,
            types=frozenset({EventType.LINE_CROSS}),
            targets=frozenset(self._lines),
        )
        stored = self._store.query_events(query)
        for event in stored:
            self._count_crossing(event)

    def _roll_day(self) -> None:
        """At local midnight, every line starts again from zero."""
        today = self._local_date(self._clock())
        with self._lock:
            if today == self._today:
                return
            self._today = today
            self._line_events.clear()
        if self._lines_loaded.is_set():
            for line_id in list(self._lines):
                self._queue_line(line_id)

    # ------------------------------------------------------- camera states, layout
    def _poll(self) -> None:
        if self._layout_source is not None:
            layout = self._layout_source()
            if layout is not self._layout:
                self._apply_layout(layout)
        if self._statuses is None:
            return
        statuses = self._statuses()
        for camera_id in set(self._camera_states) - set(statuses):  # no longer run here
            del self._camera_states[camera_id]
            self._queue.put_state(Message(self.topics.camera_state(camera_id), b"", True, "camera"))
        for camera_id, status in statuses.items():
            state = str(getattr(status.state, "value", status.state))
            value = (state, int(getattr(status, "restarts", 0)))
            if self._camera_states.get(camera_id) == value:
                continue
            self._camera_states[camera_id] = value
            payload = {"state": value[0], "restarts": value[1], "updated_at": self._clock()}
            self._queue.put_state(
                Message(self.topics.camera_state(camera_id), dumps(payload), True, "camera")
            )

    def _apply_layout(self, layout: StoreLayout) -> None:
        old_zones, old_lines = set(self._zones), set(self._lines)
        old_discovery = set(self._discovery()) if self.options.discovery else set()
        self._layout = layout
        self._own(layout)
        cleared = [self.topics.occupancy(z) for z in old_zones - set(self._zones)]
        cleared += [self.topics.line_count(ln) for ln in old_lines - set(self._lines)]
        if self.options.discovery:
            cleared += sorted(old_discovery - set(self._discovery()))
            self._queue_discovery()
        for topic in cleared:  # an empty retained message deletes the retained one
            self._queue.put_state(Message(topic, b"", True, "discovery"))
        with self._lock:
            for zone_id in old_zones - set(self._zones):
                self._zone_values.pop(zone_id, None)
        if self._lines_loaded.is_set():
            for line_id in set(self._lines) - old_lines:
                self._queue_line(line_id)

    def _discovery(self) -> dict[str, dict[str, Any]]:
        return discovery_configs(
            self.topics,
            self.options.prefix,
            self.options.discovery_prefix,
            self.store_id,
            self._zones,
            self._lines,
        )

    def _queue_discovery(self) -> None:
        for topic, config in self._discovery().items():
            self._queue.put_state(Message(topic, dumps(config), True, "discovery"))

    # ----------------------------------------------------------- the MQTT thread
    def _on_connect(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: Any,
        reason_code: Any,
        properties: Any,
    ) -> None:
        if getattr(reason_code, "is_failure", False):
            logger.warning("MQTT broker %s refused: %s", self.options.safe_url, reason_code)
            return
        logger.info("MQTT connected to %s", self.options.safe_url)
        telemetry.MQTT_CONNECTED.set(1)
        self._connected.set()
        self._reconnected.set()
        self._queue.ready.set()

    def _on_disconnect(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: Any,
        reason_code: Any,
        properties: Any,
    ) -> None:
        if self._connected.is_set():
            telemetry.MQTT_DISCONNECTS.inc()
            logger.warning("MQTT disconnected from %s: %s", self.options.safe_url, reason_code)
        self._connected.clear()
        telemetry.MQTT_CONNECTED.set(0)

    def _republish(self) -> None:
        """After a (re)connection: status first, discovery, then the newest retained state."""
        for message in self._retained.values():
            if message.kind != "status":
                self._queue.put_back([message])
        if self.options.discovery:
            self._queue_discovery()
        self._queue.put_state(Message(self.topics.status, b"online", True, "status"), first=True)

    def _drain(self) -> None:
        next_poll = 0.0
        wait: float | None = None
        while not self._stop.is_set():
            self._queue.ready.wait(min(wait, POLL_S) if wait is not None else POLL_S)
            if self._stop.is_set():
                return
            now = time.monotonic()
            if now >= next_poll:
                next_poll = now + POLL_S
                try:
                    self._roll_day()
                    self._poll()
                except Exception:
                    logger.exception("MQTT: reading camera states or the layout failed")
            if not self._connected.is_set():
                wait = POLL_S
                self._queue.ready.clear()
                continue
            if self._reconnected.is_set():
                self._reconnected.clear()
                self._republish()
            messages, wait = self._queue.take()
            sent = self._send(messages)
            if sent < len(messages):
                self._queue.put_back(messages[sent:])
                wait = 0.05  # the client's buffer is full or the link dropped: try again soon

    def _send(self, messages: list[Message]) -> int:
        """Hand messages to the client; returns how many it took."""
        for index, message in enumerate(messages):
            try:
                info = self._client.publish(
                    message.topic, message.payload, qos=QOS, retain=message.retain
                )
            except ValueError as exc:  # a topic MQTT cannot carry (over 65,535 bytes)
                logger.error("MQTT: dropped a %s message: %s", message.kind, exc)
                self._count_drop(message.kind)
                continue
            if info.rc == MQTTErrorCode.MQTT_ERR_QUEUE_SIZE:
                return index
            # Taken (also NO_CONN: a QoS 1 message stays with the client until it is sent).
            telemetry.MQTT_PUBLISHED.labels(message.kind).inc()
            if message.retain:
                if message.payload:
                    self._retained[message.topic] = message
                else:
                    self._retained.pop(message.topic, None)
            if info.rc == MQTTErrorCode.MQTT_ERR_NO_CONN:
                return index + 1
        return len(messages)

    @staticmethod
    def _count_drop(kind: str) -> None:
        telemetry.MQTT_DROPPED.labels(kind).inc()
