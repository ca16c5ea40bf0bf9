"""MQTT output against a real mosquitto: topics, payloads, discovery, privacy, resilience.

The publisher is fed here the way camera workers feed it (its live-sink methods);
``test_mqtt_serve.py`` runs the real ``storesense serve`` on PETS09.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fixtures_mqtt import MosquittoBroker, Recorder, make_tls_files
from prometheus_client import REGISTRY
from service_helpers import layout_dict, wait_for
from storesense.api.mqtt.config import MqttOptions
from storesense.api.mqtt.publisher import CLIENT_QUEUE, MqttPublisher
from storesense.api.mqtt.topics import mqtt_event_payload
from storesense.api.settings import ServiceSettings
from storesense.api.store import open_store
from storesense.zones.config import StoreLayout
from storesense.zones.events import Event, EventType

pytest_plugins = ["service_helpers", "fixtures_mqtt"]

PREFIX = "t"
EVENT_FIELDS = {"event_id", "type", "camera_id", "target", "timestamp", "attributes"}


def _layout(store_id: str = "shop") -> StoreLayout:
    return StoreLayout.model_validate(layout_dict(store_id))


def _event(kind: EventType, target: str, track: int, ts: float, **attrs: Any) -> Event:
    return Event.create(kind, "shop", "cam1", target, track, ts, attrs)


@pytest.fixture()
def start_publisher() -> Iterator[Any]:
    made: list[MqttPublisher] = []

    def start(url: str, layout: StoreLayout | None = None, **kwargs: Any) -> MqttPublisher:
        options = {k: kwargs.pop(k) for k in list(kwargs) if k in MqttOptions.model_fields}
        publisher = MqttPublisher(
            MqttOptions.from_url(url, **options), layout or _layout(), **kwargs
        )
        publisher.start()
        made.append(publisher)
        return publisher

    yield start
    for publisher in made:
        publisher.stop(timeout=1.0)


def _metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


# ------------------------------------------------------------------------- options
@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("mqtt://broker", ("broker", 1883, False, None, "storesense")),
        ("mqtts://u%40x:p%3Aw@broker:9999/a/b", ("broker", 9999, True, "u@x", "a/b")),
        ("mqtt://127.0.0.1:1884/", ("127.0.0.1", 1884, False, None, "storesense")),
    ],
)
def test_url_parsing(url: str, expected: tuple[Any, ...]) -> None:
    options = MqttOptions.from_url(url)
    host, port, tls, user, prefix = expected
    assert (options.host, options.port, options.tls, options.username, options.prefix) == (
        host,
        port,
        tls,
        user,
        prefix,
    )
    assert "p:w" not in options.safe_url and "p%3Aw" not in options.safe_url


@pytest.mark.parametrize(
    ("url", "options", "message"),
    [
        ("redis://broker", {}, "must start with mqtt:// or mqtts://"),
        ("mqtt://", {}, "has no host"),
        ("mqtt://broker:99999", {}, "Port out of range"),
        ("mqtt://broker/a/+/b", {}, "must not contain '+', '#'"),
        ("mqtt://broker?qos=2", {}, "option(s) qos unknown"),
        ("mqtt://broker?keepalive=1", {}, "keepalive_s"),
        ("mqtt://broker", {"ca_file": Path(__file__)}, "ca_file need an mqtts:// URL"),
        ("mqtts://broker", {"ca_file": Path("/no/such.pem")}, "no such file"),
        ("mqtt://:secret@broker", {}, "a password needs a user name"),
    ],
)
def test_bad_mqtt_options_are_one_clear_line(
    url: str, options: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=None) as caught:
        MqttOptions.from_url(url, **options)
    assert message in str(caught.value)
    assert "secret" not in str(caught.value)


def test_settings_and_cli_reject_a_bad_url(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="must start with mqtt") as caught:
        ServiceSettings(mqtt_url="http://user:hunter2@broker")
    assert "hunter2" not in str(caught.value)
    assert ServiceSettings(mqtt_url="mqtt://b", mqtt_discovery=True).mqtt_options() is not None
    layout = tmp_path / "layout.json"
    layout.write_text(json.dumps(layout_dict("shop")))
    cli = "import sys; from storesense.api.cli import main; sys.exit(main())"
    for args, env, message in [
        (["--mqtt", "mqtt://user:hunter2@broker?bogus=1"], {}, "bogus"),
        (["--mqtt", "mqtt://broker", "--no-workers"], {}, "drop --no-workers"),
        ([], {"STORESENSE_MQTT_URL": "mqtt://user:hunter2@broker:0"}, "port: Input should be"),
        (["--mqtt", "mqtt://broker", "--mqtt-rate", "0"], {}, "mqtt_occupancy_max_rate"),
    ]:
        result = subprocess.run(
            [sys.executable, "-c", cli, "serve", "--layout", str(layout),
             "--store", f"sqlite:///{tmp_path / 's.db'}", *args],
            capture_output=True, text=True, timeout=120, env={**os.environ, **env},
        )  # fmt: skip
        assert result.returncode != 0
        assert message in result.stderr and "Traceback" not in result.stderr
        assert "hunter2" not in result.stderr


# ------------------------------------------------------------------------ payloads
@pytest.mark.parametrize(
    ("kind", "attributes", "kept"),
    [
        (EventType.ZONE_EXIT, {"dwell_seconds": 4.2, "member": "m_0"}, {"dwell_seconds": 4.2}),
        (EventType.LINE_CROSS, {"direction": "in", "member": "m_1"}, {"direction": "in"}),
        (EventType.APPROACHING, {"eta_seconds": 1.5}, {"eta_seconds": 1.5}),
        (EventType.ITEM_TAKEN, {"cell": [1, 2], "take_track_id": 42}, {"cell": [1, 2]}),
        (EventType.ZONE_ENTER, {"member": "m_2", "embedding": [0.1]}, {}),
    ],
)
def test_event_payload_keeps_nothing_per_person(
    kind: EventType, attributes: dict[str, Any], kept: dict[str, Any]
) -> None:
    payload = mqtt_event_payload(_event(kind, "door", 42, 1.0, **attributes))
    assert set(payload) == EVENT_FIELDS
    assert payload["attributes"] == kept
    assert "42" not in json.dumps({k: v for k, v in payload.items() if k != "event_id"})


# --------------------------------------------------------------------- real broker
def test_occupancy_events_lines_and_discovery(
    mosquitto: MosquittoBroker, start_publisher: Any, tmp_path: Path
) -> None:
    store = open_store(f"sqlite:///{tmp_path / 's.db'}", "shop")
    now = time.time()
    # Crossings already in the store today count; one from yesterday does not.
    earlier = [
        _event(EventType.LINE_CROSS, "door", 1, now - 60, direction="in"),
        _event(EventType.LINE_CROSS, "door", 2, now - 50, direction="out"),
        _event(EventType.LINE_CROSS, "door", 3, now - 2 * 86_400, direction="in"),
    ]
    store.write_events(earlier)
    recorder = Recorder(mosquitto.port)
    publisher = start_publisher(f"{mosquitto.url}/{PREFIX}", store=store, discovery=True)
    base = f"{PREFIX}/shop"
    publisher.occupancy("cam1", {"left": 2, "right": 0}, {"right": 1}, now)
    new = _event(EventType.LINE_CROSS, "door", 7, now, direction="in", member="m_secret")
    publisher.events("cam1", [new, new])  # the same event twice counts once
    publisher.events("cam1", [_event(EventType.ZONE_EXIT, "left", 7, now, dwell_seconds=3.0)])

    def line_count() -> dict[str, Any] | None:
        got = recorder.on(f"{base}/lines/door/count")
        return got[-1].json() if got and got[-1].json()["in"] == 2 else None

    counted = wait_for(line_count, what="today's line counts")
    assert (counted["in"], counted["out"]) == (2, 1)
    assert counted["date"] == datetime.fromtimestamp(now, UTC).date().isoformat()
    wait_for(lambda: recorder.on(f"{base}/events/zone_exit"), what="the exit event")
    latest = recorder.latest()
    assert latest[f"{base}/status"].payload == b"online"
    left = latest[f"{base}/zones/left/occupancy"].json()
    right = latest[f"{base}/zones/right/occupancy"].json()
    assert left == {"count": 2, "approaching": 0, "updated_at": now}
    assert (right["count"], right["approaching"]) == (0, 1)
    crossing = latest[f"{base}/events/line_cross"].json()
    assert set(crossing) == EVENT_FIELDS and crossing["attributes"] == {"direction": "in"}
    assert b"m_secret" not in b"".join(m.payload for m in recorder.snapshot())

    configs = {t: m.json() for t, m in latest.items() if t.startswith("homeassistant/")}
    assert sorted(configs) == [
        f"homeassistant/sensor/{PREFIX}_shop/{key}/config"
        for key in ("line_door_in", "line_door_out", "zone_left", "zone_right")
    ]
    devices = {json.dumps(c["device"], sort_keys=True) for c in configs.values()}
    assert len(devices) == 1  # one device per store
    zone = configs[f"homeassistant/sensor/{PREFIX}_shop/zone_left/config"]
    assert zone["state_topic"] == f"{base}/zones/left/occupancy"
    assert zone["availability_topic"] == f"{base}/status"
    assert len({c["unique_id"] for c in configs.values()}) == 4

    # A subscriber arriving later gets the retained state of every topic.
    late = Recorder(mosquitto.port, f"{base}/#")
    wait_for(lambda: len(late.latest()) >= 4, what="retained messages")
    retained = {m.topic for m in late.snapshot() if m.retain}
    assert {f"{base}/status", f"{base}/zones/left/occupancy", f"{base}/zones/right/occupancy",
            f"{base}/lines/door/count"} <= retained  # fmt: skip
    assert not any("/events/" in topic for topic in retained)
    late.close()
    recorder.close()
    store.close()


def test_occupancy_is_rate_limited_and_newest_wins(
    mosquitto: MosquittoBroker, start_publisher: Any
) -> None:
    recorder = Recorder(mosquitto.port)
    publisher = start_publisher(f"{mosquitto.url}/{PREFIX}", occupancy_max_rate=2)
    topic = f"{PREFIX}/shop/zones/left/occupancy"
    wait_for(lambda: publisher.connected, what="a connection")
    started = time.monotonic()
    for count in range(1, 201):
        publisher.occupancy("cam1", {"left": count, "right": 0}, None, float(count))
    wait_for(lambda: recorder.on(topic) and recorder.on(topic)[-1].json()["count"] == 200)
    elapsed = time.monotonic() - started
    # At most 2 a second (plus the first one at once), however fast counts change.
    assert len(recorder.on(topic)) <= 2 * elapsed + 2
    assert len(recorder.on(f"{PREFIX}/shop/zones/right/occupancy")) == 1  # unchanged: once


def test_tls_with_a_ca_file(tmp_path: Path, start_publisher: Any) -> None:
    tls = make_tls_files(tmp_path / "tls")
    broker = MosquittoBroker(tmp_path / "mosquitto", tls=tls)
    broker.start()
    try:
        recorder = Recorder(broker.port, tls=tls)
        url = f"mqtts://localhost:{broker.port}/{PREFIX}"
        publisher = start_publisher(url, ca_file=tls.ca)
        publisher.occupancy("cam1", {"left": 5}, None, 1.0)
        topic = f"{PREFIX}/shop/zones/left/occupancy"
        wait_for(lambda: recorder.on(topic), what="occupancy over TLS")
        assert recorder.on(topic)[-1].json()["count"] == 5
        recorder.close()
        # Without the CA the broker's certificate is refused: nothing gets through.
        stranger = start_publisher(f"mqtts://localhost:{broker.port}/other")
        time.sleep(1.5)
        assert not stranger.connected
    finally:
        broker.stop()


def test_broker_down_at_start_then_restarted_gets_retained_state_again(
    tmp_path: Path, start_publisher: Any
) -> None:
    broker = MosquittoBroker(tmp_path / "mosquitto")
    publisher = start_publisher(f"{broker.url}/{PREFIX}")  # nothing listens yet
    publisher.occupancy("cam1", {"left": 1, "right": 0}, None, 1.0)
    publisher.occupancy("cam1", {"left": 3, "right": 0}, {"left": 2}, 2.0)
    broker.start()
    try:
        topic = f"{PREFIX}/shop/zones/left/occupancy"
        first = Recorder(broker.port)
        wait_for(lambda: first.on(topic), timeout=20, what="the first connection")
        assert first.on(topic)[-1].json() == {"count": 3, "approaching": 2, "updated_at": 2.0}
        first.close()
        # A restarted broker (no persistence) has forgotten everything: the publisher
        # reconnects with back-off and publishes its status and retained state again.
        broker.kill()
        wait_for(lambda: not publisher.connected, what="the publisher to notice")
        publisher.occupancy("cam1", {"left": 4, "right": 0}, None, 3.0)
        broker.start()
        again = Recorder(broker.port)
        wait_for(lambda: again.on(topic), timeout=40, what="republished occupancy")
        assert again.on(topic)[-1].json()["count"] == 4
        right = f"{PREFIX}/shop/zones/right/occupancy"
        wait_for(lambda: again.on(right), what="the unchanged zone, republished")
        assert again.latest()[f"{PREFIX}/shop/status"].payload == b"online"
        assert _metric("storesense_mqtt_disconnects_total") >= 1
        again.close()
    finally:
        broker.stop()


def test_stopped_broker_never_blocks_the_caller_and_drops_are_counted(
    mosquitto: MosquittoBroker, start_publisher: Any
) -> None:
    recorder = Recorder(mosquitto.port)
    queue_size = 100
    publisher = start_publisher(f"{mosquitto.url}/{PREFIX}", queue_size=queue_size)
    wait_for(lambda: publisher.connected, what="a connection")
    dropped_before = _metric("storesense_mqtt_dropped_total", kind="event")
    mosquitto.pause()
    try:
        events = [_event(EventType.ZONE_ENTER, "left", i, float(i)) for i in range(3000)]
        for index, event in enumerate(events):
            publisher.events("cam1", [event])
            publisher.occupancy("cam1", {"left": index % 7, "right": 0}, None, float(index))
        # Everything beyond the client's buffer and our queue was dropped, and counted.
        dropped = _metric("storesense_mqtt_dropped_total", kind="event") - dropped_before
        assert dropped >= len(events) - queue_size - CLIENT_QUEUE
    finally:
        mosquitto.resume()
    final = {"left": 5, "right": 0}
    publisher.occupancy("cam1", final, None, 9999.0)
    topic = f"{PREFIX}/shop/zones/left/occupancy"
    wait_for(
        lambda: recorder.on(topic) and recorder.on(topic)[-1].json()["updated_at"] == 9999.0,
        timeout=30,
        what="the newest occupancy after SIGCONT",
    )
    assert recorder.on(topic)[-1].json()["count"] == 5
    recorder.close()


def test_offline_on_clean_stop_and_layout_changes(
    mosquitto: MosquittoBroker, start_publisher: Any
) -> None:
    recorder = Recorder(mosquitto.port)
    layout = _layout()
    current = {"layout": layout}
    publisher = start_publisher(f"{mosquitto.url}/{PREFIX}", layout, discovery=True)
    publisher.watch(lambda: {}, lambda: current["layout"])
    publisher.occupancy("cam1", {"left": 1, "right": 1}, None, 1.0)
    base = f"{PREFIX}/shop"
    wait_for(lambda: recorder.on(f"{base}/zones/right/occupancy"), what="occupancy")
    # The "right" zone is removed from the layout: its retained topics are cleared.
    changed = layout.model_dump()
    changed["zones"] = [z for z in changed["zones"] if z["id"] != "right"]
    current["layout"] = StoreLayout.model_validate(changed)
    config = f"homeassistant/sensor/{PREFIX}_shop/zone_right/config"
    wait_for(lambda: recorder.on(config) and recorder.on(config)[-1].payload == b"")
    assert recorder.on(f"{base}/zones/right/occupancy")[-1].payload == b""
    publisher.stop()
    wait_for(lambda: recorder.on(f"{base}/status")[-1].payload == b"offline")
    recorder.close()


def test_status_of_one_worker_among_several(
    mosquitto: MosquittoBroker, start_publisher: Any
) -> None:
    layout = StoreLayout.model_validate(
        layout_dict("shop", cameras=[{"id": "cam1"}, {"id": "cam2"}])
    )
    recorder = Recorder(mosquitto.port)
    start_publisher(
        f"{mosquitto.url}/{PREFIX}", layout, cameras=["cam2"], node="cam2", discovery=True
    )
    wait_for(lambda: recorder.on(f"{PREFIX}/shop/status/cam2"), what="the worker's status")
    time.sleep(0.5)
    topics = {m.topic for m in recorder.snapshot()}
    # cam2 has no zones or lines: this worker announces none of cam1's.
    assert not any("zone" in t or "line" in t for t in topics), topics
    assert f"{PREFIX}/shop/status" not in topics
    recorder.close()


@pytest.mark.parametrize(
    ("cameras", "status"),
    [(None, "storesense/shop/status"), (["cam2", "cam1"], "storesense/shop/status/cam1,cam2")],
)
def test_serve_names_the_status_topic_of_a_split_worker(
    cameras: list[str] | None, status: str, tmp_path: Path
) -> None:
    from storesense.api.cli.serve import _mqtt_publisher

    layout = StoreLayout.model_validate(
        layout_dict("shop", cameras=[{"id": "cam1"}, {"id": "cam2"}])
    )
    store = open_store(f"sqlite:///{tmp_path / 's.db'}", "shop")
    settings = ServiceSettings(mqtt_url="mqtt://127.0.0.1:1")
    publisher = _mqtt_publisher(settings, layout, store, "shop", cameras)
    assert publisher is not None and publisher.topics.status == status
    assert _mqtt_publisher(ServiceSettings(), layout, store, "shop", cameras) is None
    store.close()


def test_queue_keeps_newest_states_and_drops_oldest_events() -> None:
    from storesense.api.mqtt.queue import Message, OutgoingQueue

    dropped: list[str] = []
    queue = OutgoingQueue(max_events=3, on_drop=dropped.append)
    for n in range(5):
        queue.put_event(Message("e", str(n).encode(), False, "event"))
        queue.put_state(Message("s", str(n).encode(), True, "occupancy"))
    taken, wait = queue.take(limit=2)
    assert [m.payload for m in taken] == [b"4", b"2"] and wait is None
    queue.put_back(taken)  # the client could not take them: they go first again
    queue.put_event(Message("e", b"5", False, "event"))
    taken, _ = queue.take()
    assert [m.payload for m in taken] == [b"4", b"3", b"4", b"5"]
    assert dropped == ["event"] * 3


def test_line_counts_are_loaded_once_the_store_is_back(
    mosquitto: MosquittoBroker,
    start_publisher: Any,
    new_redis_server: Any,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setattr("storesense.api.mqtt.publisher.LINE_LOAD_RETRY_S", 0.2)
    server = new_redis_server(persistent=True)
    store = open_store(server.url, "shop")
    now = time.time()
    store.write_events([_event(EventType.LINE_CROSS, "door", 1, now - 60, direction="in")])
    server.stop()  # the store is down when the publisher starts
    recorder = Recorder(mosquitto.port)
    topic = f"{PREFIX}/shop/lines/door/count"
    with caplog.at_level(logging.WARNING, logger="storesense.api.mqtt.publisher"):
        start_publisher(f"{mosquitto.url}/{PREFIX}", store=store)
        wait_for(
            lambda: sum("not loaded yet" in r.getMessage() for r in caplog.records) >= 2,
            what="retries while the store is down",
        )
    assert not recorder.on(topic)  # nothing published from a store it could not read
    server.start()
    counted = wait_for(lambda: recorder.on(topic), what="today's line counts")[-1].json()
    assert (counted["in"], counted["out"]) == (1, 0)
    recorder.close()
    store.close()


@pytest.mark.parametrize("on_floor", [True, False])
def test_store_wide_floor_zones_are_announced_when_a_camera_is_on_the_floor_plan(
    mosquitto: MosquittoBroker, start_publisher: Any, on_floor: bool
) -> None:
    """A worker process with a camera on the floor plan publishes the store-wide floor
    zones' counts (camera ``@store``) and announces them; one without, only its cameras'."""
    square = [[0, 0], [768, 0], [768, 576], [0, 576]]
    floor = {"image_points": square, "floor_points": [[0, 0], [8, 0], [8, 6], [0, 6]]}
    cam1: dict[str, Any] = {"id": "cam1", **({"homography": floor} if on_floor else {})}
    data = layout_dict("shop", cameras=[cam1, {"id": "cam2", "homography": floor}])
    data["zones"].append({"id": "plaza", "floor_polygon": [[1, 1], [7, 1], [7, 5], [1, 5]]})
    recorder = Recorder(mosquitto.port)
    publisher = start_publisher(
        f"{mosquitto.url}/{PREFIX}",
        StoreLayout.model_validate(data),
        cameras=["cam1"],
        discovery=True,
    )
    base = f"{PREFIX}/shop"
    announced = f"homeassistant/sensor/{PREFIX}_shop/zone_%s/config"
    wait_for(lambda: recorder.on(announced % "left"), what="the camera zones' discovery")
    if on_floor:
        publisher.occupancy("@store", {"plaza": 3}, {"plaza": 1}, time.time())
        wait_for(lambda: recorder.on(f"{base}/zones/plaza/occupancy"), what="the floor zone")
        plaza = recorder.latest()[f"{base}/zones/plaza/occupancy"].json()
        assert (plaza["count"], plaza["approaching"]) == (3, 1)
        wait_for(lambda: recorder.on(announced % "plaza"), what="the floor zone's discovery")
    else:
        time.sleep(0.5)
        assert not recorder.on(announced % "plaza")
    recorder.close()
