"""Event write throughput of the stores, side by side in one run.

Back-ends: SQLite (``synchronous=FULL``, the default, and ``NORMAL``), Redis
without persistence and Redis with AOF ``appendfsync always`` (each a private
``redis-server`` on a free port), and the spooling wrapper over Redis. Modes:
batches of 1 event (one write call per event), batches of 100 (one call per
camera frame with many events), and a replay of the same events in batches of
100 (every event a duplicate, as after a spool retry). Ratios are to SQLite FULL.

    python benchmarks/store_writes.py [--events 1000] [--seconds 1] [--rounds 3]
"""

from __future__ import annotations

import argparse
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import redis
from storesense.api.store.base import Store
from storesense.api.store.redis import RedisStore
from storesense.api.store.spool import SpoolingStore
from storesense.api.store.sqlite import SQLiteStore
from storesense.zones.events import Event, EventType


def make_events(count: int, offset: int) -> list[Event]:
    kinds = (EventType.ZONE_ENTER, EventType.ZONE_EXIT, EventType.LINE_CROSS)
    return [
        Event.create(kinds[i % 3], "bench", f"cam{i % 4}", f"zone{i % 7}", offset + i,
                     1_700_000_000.0 + (offset + i) * 0.1, {"direction": "in", "dwell": 3.5})
        for i in range(count)
    ]  # fmt: skip


@contextmanager
def redis_server(directory: Path, aof: bool) -> Iterator[str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    directory.mkdir(parents=True, exist_ok=True)
    persistence = ["--appendonly", "yes", "--appendfsync", "always"] if aof else []
    process = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", str(directory),
         "--save", "", *persistence],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    client = redis.Redis(port=port)
    try:
        for _ in range(500):
            try:
                client.ping()
                break
            except redis.exceptions.ConnectionError:
                if process.poll() is not None:
                    raise SystemExit(f"redis-server exited: {process.returncode}") from None
                time.sleep(0.01)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        client.close()
        process.terminate()
        process.wait(timeout=10)


def throughput(
    store: Store, events: list[Event], batch: int, seconds: float
) -> tuple[float, int, int]:
    """(events/s, events written, new events) writing in batches, stopping after ``seconds``."""
    written = new = 0
    started = time.perf_counter()
    for first in range(0, len(events), batch):
        new += store.write_events(events[first : first + batch])
        written += len(events[first : first + batch])
        if time.perf_counter() - started > seconds:
            break
    return written / (time.perf_counter() - started), written, new


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1000, help="events per mode and round")
    parser.add_argument("--seconds", type=float, default=1.0, help="time cap per mode and round")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds; best is shown")
    args = parser.parse_args()
    if shutil.which("redis-server") is None:
        raise SystemExit("redis-server is not installed")

    modes = ["batch 1", "batch 100", "replay 100 (dups)"]
    results: dict[tuple[str, str], float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        with (
            redis_server(root / "plain", aof=False) as plain_url,
            redis_server(root / "aof", aof=True) as aof_url,
        ):
            backends: dict[str, Store] = {
                "sqlite FULL": SQLiteStore(root / "full.db", "bench", "full"),
                "sqlite NORMAL": SQLiteStore(root / "normal.db", "bench", "normal"),
                "redis (no persistence)": RedisStore.from_url(plain_url, "bench"),
                "redis AOF always": RedisStore.from_url(aof_url, "bench"),
                "spool + redis": SpoolingStore(
                    RedisStore.from_url(plain_url, "bench-spool"), root / "spool.db"
                ),
            }
            # Rounds interleave the back-ends so that load from elsewhere hits them alike.
            for round_number in range(args.rounds):
                offset = round_number * args.events * 11
                single = make_events(args.events, offset)
                batched = make_events(args.events * 10, offset + args.events)
                for name, store in backends.items():
                    rates = dict.fromkeys(modes, 0.0)
                    rates["batch 1"], _, _ = throughput(store, single, 1, args.seconds)
                    rates["batch 100"], written, _ = throughput(store, batched, 100, args.seconds)
                    rate, _, new = throughput(store, batched[:written], 100, args.seconds)
                    assert new == 0, f"{name}: duplicate replay stored {new} events"
                    rates["replay 100 (dups)"] = rate
                    for mode, value in rates.items():
                        results[(name, mode)] = max(results.get((name, mode), 0.0), value)
            for store in backends.values():
                store.close()

    print(f"{'back-end':<24}" + "".join(f"{m + ' ev/s':>24}{'ratio':>7}" for m in modes))
    for name in backends:
        row = f"{name:<24}"
        for mode in modes:
            rate = results[(name, mode)]
            row += f"{rate:>24,.0f}{rate / results[('sqlite FULL', mode)]:>7.2f}"
        print(row)
    print("ratio = events/s relative to sqlite FULL in the same mode; best of the rounds")


if __name__ == "__main__":
    main()
