"""A real, throw-away ``redis-server`` for tests: its own port, its own directory.

Never touches the machine's Redis (6379) and never flushes a server it did not
start. ``tests/conftest.py`` loads these fixtures for every test module.
"""

from __future__ import annotations

import random
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

# Redis Cluster listens on a second "bus" port, ``port + 10000``, and refuses
# any port above 55535; the kernel's ephemeral range goes up to 60999.
CLUSTER_BUS_OFFSET = 10000
MAX_CLUSTER_PORT = 65535 - CLUSTER_BUS_OFFSET


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_cluster_port() -> int:
    """A free port ``p <= 55535`` whose cluster bus port ``p + 10000`` is free too."""
    rng = random.Random()
    for _ in range(1000):
        port = rng.randint(20000, MAX_CLUSTER_PORT)
        if port != 6379 and _port_is_free(port) and _port_is_free(port + CLUSTER_BUS_OFFSET):
            return port
    raise RuntimeError("no free port pair for a Redis Cluster node")


class RedisServer:
    """One ``redis-server`` process on ``127.0.0.1:port`` with data in ``directory``.

    ``persistent=True`` turns on AOF with ``appendfsync always``, so a restart
    (after :meth:`kill` too) keeps every acknowledged write. ``cluster=True``
    starts a one-node Redis Cluster that owns all 16384 slots.
    """

    def __init__(
        self,
        directory: Path,
        port: int | None = None,
        persistent: bool = False,
        cluster: bool = False,
    ) -> None:
        executable = shutil.which("redis-server")
        if executable is None:
            pytest.fail("redis-server is not installed (apt-get install redis-server)")
        self.executable = executable
        self.directory = directory
        self.auto_port = port is None
        self.started_before = False
        self.port = port or (free_cluster_port() if cluster else free_port())
        if self.port == 6379:
            raise ValueError("refusing to use port 6379: that is the machine's own Redis")
        self.persistent = persistent
        self.cluster = cluster
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        if self.cluster:
            return f"redis+cluster://127.0.0.1:{self.port}"
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> None:
        """Start and wait until it answers.

        A first start on a port picked here retries on a new port when another
        process took it meanwhile; a restart keeps its port, for its clients.
        """
        attempts = 5 if self.auto_port and not self.started_before else 1
        for attempt in range(attempts):
            error = self._start_once(timeout)
            if error is None:
                self.started_before = True
                return
            if attempt + 1 < attempts and "Address already in use" in error:
                self.port = free_cluster_port() if self.cluster else free_port()
                continue
            pytest.fail(f"redis-server on port {self.port} did not start:\n{error}")

    def _start_once(self, timeout: float) -> str | None:
        self.directory.mkdir(parents=True, exist_ok=True)
        (self.directory / "nodes.conf").unlink(missing_ok=True)
        persistence = (
            ["--appendonly", "yes", "--appendfsync", "always"]
            if self.persistent
            else ["--appendonly", "no"]
        )
        cluster = (
            ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"]
            if self.cluster
            else []
        )
        log_file = self.directory / "redis.log"
        log_file.unlink(missing_ok=True)
        self.process = subprocess.Popen(
            [
                self.executable,
                *cluster,
                "--port", str(self.port),
                "--bind", "127.0.0.1",
                "--dir", str(self.directory),
                "--save", "",
                *persistence,
                "--logfile", str(log_file),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        client = redis.Redis(port=self.port, socket_connect_timeout=0.2)
        deadline = time.monotonic() + timeout
        try:
            while True:
                try:
                    if client.ping() and self._cluster_ready(client):
                        return None
                except redis.exceptions.RedisError:
                    pass
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    return log_file.read_text(errors="replace")[-2000:] if log_file.exists() else ""
                time.sleep(0.02)
        finally:
            client.close()

    def _cluster_ready(self, client: redis.Redis) -> bool:
        if not self.cluster:
            return True
        info = client.execute_command("CLUSTER", "INFO")
        info = info.decode() if isinstance(info, bytes) else str(info)
        if "cluster_slots_assigned:16384" not in info:
            client.execute_command("CLUSTER", "ADDSLOTSRANGE", 0, 16383)
        return "cluster_state:ok" in info

    def kill(self) -> None:
        """SIGKILL: a crash, no chance to save anything."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)
        self.process = None

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self.process = None


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A session-wide in-memory redis-server; tests isolate themselves by store id."""
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def redis_cluster_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A session-wide one-node Redis Cluster (all slots), as a ``redis+cluster://`` URL."""
    server = RedisServer(tmp_path_factory.mktemp("redis-cluster"), cluster=True)
    server.start()
    yield server.url
    server.stop()


@pytest.fixture(scope="session")
def redis_url(redis_server: RedisServer) -> str:
    return redis_server.url


@pytest.fixture()
def new_redis_server(tmp_path: Path) -> Iterator[Callable[..., RedisServer]]:
    """A factory of started servers (``persistent=True`` for AOF); all stopped at the end."""
    started: list[RedisServer] = []

    def start(persistent: bool = False) -> RedisServer:
        server = RedisServer(tmp_path / f"redis-{len(started)}", persistent=persistent)
        started.append(server)
        server.start()
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture()
def persistent_redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of its own with AOF (``appendfsync always``), for crash tests."""
    server = RedisServer(tmp_path / "redis-aof", persistent=True)
    server.start()
    yield server
    server.stop()
