"""A real, throw-away ``mosquitto`` broker for tests (its own port, config and directory)
and a recording subscriber.

Never touches the machine's broker on 1883. Like ``fixtures_redis``: the broker can be
killed, restarted on the same port, or stopped (SIGSTOP) and resumed (SIGCONT).
"""

from __future__ import annotations

import json
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from fixtures_redis import free_port
from paho.mqtt.enums import CallbackAPIVersion

MOSQUITTO = "/usr/sbin/mosquitto"


@dataclass(frozen=True)
class TlsFiles:
    ca: Path
    cert: Path
    key: Path


def make_tls_files(directory: Path, host: str = "localhost") -> TlsFiles:
    """A throw-away CA and a server certificate for ``host`` signed by it (openssl CLI)."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.fail("openssl is not installed")
    directory.mkdir(parents=True, exist_ok=True)
    ca_key, ca, key, csr, cert = (
        directory / name for name in ("ca.key", "ca.pem", "server.key", "server.csr", "server.pem")
    )
    ext = directory / "ext.cnf"
    ext.write_text(f"subjectAltName=DNS:{host}\n")
    steps = [
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-subj", "/CN=storesense-test-ca", "-keyout", str(ca_key), "-out", str(ca)],
        [openssl, "req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={host}",
         "-keyout", str(key), "-out", str(csr)],
        [openssl, "x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key),
         "-CAcreateserial", "-days", "2", "-extfile", str(ext), "-out", str(cert)],
    ]  # fmt: skip
    for step in steps:
        subprocess.run(step, check=True, capture_output=True, timeout=60)
    return TlsFiles(ca, cert, key)


class MosquittoBroker:
    """One ``mosquitto`` on ``127.0.0.1:port``, configured by a file in ``directory``.

    No persistence: a restarted broker has forgotten every retained message, so what
    a subscriber sees after a restart was published again by the client.
    """

    def __init__(self, directory: Path, *, tls: TlsFiles | None = None) -> None:
        if not Path(MOSQUITTO).exists():
            pytest.fail(f"{MOSQUITTO} is not installed (apt-get install mosquitto)")
        self.directory = directory
        self.tls = tls
        self.port = free_port()
        if self.port == 1883:
            raise ValueError("refusing port 1883: that is the machine's own broker")
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"{'mqtts' if self.tls else 'mqtt'}://127.0.0.1:{self.port}"

    def _config(self) -> Path:
        lines = [
            f"listener {self.port} 127.0.0.1",
            "allow_anonymous true",
            "persistence false",
            "user root",
            f"log_dest file {self.directory / 'mosquitto.log'}",
            "log_type error",
            "log_type warning",
            "log_type notice",
        ]
        if self.tls is not None:
            lines += [
                f"cafile {self.tls.ca}",
                f"certfile {self.tls.cert}",
                f"keyfile {self.tls.key}",
            ]
        config = self.directory / "mosquitto.conf"
        config.write_text("\n".join(lines) + "\n")
        return config

    def start(self, timeout: float = 10.0) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [MOSQUITTO, "-c", str(self._config())],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                error = self.process.stderr.read().decode() if self.process.stderr else ""
                log = self.directory / "mosquitto.log"
                error += log.read_text() if log.exists() else ""
                pytest.fail(f"mosquitto on port {self.port} did not start:\n{error}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        pytest.fail(f"mosquitto on port {self.port} did not answer within {timeout} s")

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def pause(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.resume()
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()


@dataclass(frozen=True)
class Received:
    topic: str
    payload: bytes
    retain: bool
    at: float
    """``time.time()`` when it arrived."""

    def json(self) -> Any:
        return json.loads(self.payload)


class Recorder:
    """A paho subscriber on ``topic`` that keeps every message it gets, thread-safe."""

    def __init__(self, port: int, topic: str = "#", *, tls: TlsFiles | None = None) -> None:
        self.messages: list[Received] = []
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311)
        if tls is not None:
            self.client.tls_set(ca_certs=str(tls.ca))
        self.client.on_connect = lambda c, *_: c.subscribe(topic, qos=1)
        self.client.on_subscribe = lambda *_: self._subscribed.set()
        self.client.on_message = self._on_message
        self.client.reconnect_delay_set(0.2, 1)
        self.client.connect_async("localhost" if tls else "127.0.0.1", port, keepalive=5)
        self.client.loop_start()
        if not self._subscribed.wait(10):
            raise AssertionError(f"test subscriber could not subscribe on port {port}")

    def _on_message(self, client: Any, userdata: Any, message: mqtt.MQTTMessage) -> None:
        payload, retain = bytes(message.payload), bool(message.retain)
        received = Received(message.topic, payload, retain, time.time())
        with self._lock:
            self.messages.append(received)

    def snapshot(self) -> list[Received]:
        with self._lock:
            return list(self.messages)

    def on(self, topic: str) -> list[Received]:
        return [m for m in self.snapshot() if m.topic == topic]

    def latest(self) -> dict[str, Received]:
        """The newest message per topic."""
        latest: dict[str, Received] = {}
        for message in self.snapshot():
            latest[message.topic] = message
        return latest

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture()
def mosquitto(tmp_path: Path) -> Iterator[MosquittoBroker]:
    broker = MosquittoBroker(tmp_path / "mosquitto")
    broker.start()
    yield broker
    broker.stop()
