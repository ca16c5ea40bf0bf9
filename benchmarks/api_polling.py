"""Occupancy polling: StoreSense ``/v1/occupancy`` beside a bare FastAPI constant endpoint,
and the analytics reads ``/v1/counts`` and ``/v1/metrics`` over a day of events.

Both run in their own uvicorn process with identical settings (1 worker, the same
loop and HTTP implementation); ``wrk`` (Debian package) drives 64 concurrent
keep-alive pollers at each in turn. A wrk Lua script remembers the last ETag per
connection and, in the ``If-None-Match`` runs, sends it back, as the live page does.
The StoreSense server's occupancy changes every second (a writer thread), so
pollers see real version changes. Target: >= 0.8x the bare endpoint's
requests/s, p99 < 20 ms.

The counts/metrics server holds a day of events (``--day-events``, spread over
today in UTC, zone entries/exits and door crossings) and a writer adds one event
per second, so the store's events version keeps changing as in a live store;
64 dashboards then poll ``/v1/counts?bucket=1h`` and ``/v1/metrics`` for today.
Target: p99 < 200 ms.

Run: ``python benchmarks/api_polling.py [--duration 8] [--connections 64]``
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

LUA = """
local etag = nil
local use_etag = os.getenv("USE_ETAG") == "1"
local key = os.getenv("API_KEY")
request = function()
  local headers = {}
  if key and key ~= "" then headers["X-API-Key"] = key end
  if use_etag and etag then headers["If-None-Match"] = etag end
  return wrk.format("GET", nil, headers)
end
response = function(status, headers, body)
  local tag = headers["etag"] or headers["ETag"]
  if tag then etag = tag end
  if status ~= 200 and status ~= 304 then error("unexpected status " .. status) end
end
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# ------------------------------------------------------------------ server side
def serve_bare(port: int) -> None:
    import uvicorn
    from fastapi import FastAPI

    app = FastAPI()

    @app.get("/bare")
    async def bare() -> dict[str, int]:
        return {"count": 3}

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


def day_of_events(store_id: str, count: int, now: float) -> list[Any]:
    """``count`` events between UTC midnight and ``now``: visits of 6 zones, door crossings."""
    import random

    from storesense.zones.events import Event, EventType

    rng = random.Random(7)
    midnight = now - now % 86_400
    events = []
    for i in range(count // 3):
        at = midnight + rng.random() * (now - midnight - 120)
        zone = f"zone{rng.randrange(6)}"
        dwell = rng.uniform(2, 90)
        events += [
            Event.create(EventType.ZONE_ENTER, store_id, "cam1", zone, i, at),
            Event.create(EventType.ZONE_EXIT, store_id, "cam1", zone, i, at + dwell,
                         {"dwell_seconds": round(dwell, 3)}),
            Event.create(EventType.LINE_CROSS, store_id, "cam1", "door", i, at - 1,
                         {"direction": rng.choice(["in", "out"])}),
        ]  # fmt: skip
    return events


def serve_storesense(port: int, folder: Path, with_key: bool, day_events: int = 0) -> None:
    import uvicorn
    from storesense.api.app import create_app
    from storesense.api.auth import new_key
    from storesense.api.settings import ServiceSettings
    from storesense.api.store import open_store
    from storesense.zones.config import StoreLayout

    zones = [
        {
            "id": f"zone{i}",
            "camera": "cam1",
            "polygon": [[i * 100, 0], [i * 100 + 90, 0], [i * 100 + 90, 90], [i * 100, 90]],
        }
        for i in range(6)
    ]
    door = {
        "id": "door",
        "camera": "cam1",
        "points": [[0, 100], [600, 100]],
        "inside": [300, 300],
        "entrance": True,
    }
    layout = StoreLayout.model_validate(
        {"store": {"id": "bench"}, "cameras": [{"id": "cam1"}], "zones": zones, "lines": [door]}
    )
    store = open_store(f"sqlite:///{folder / 'bench.db'}", "bench")
    if day_events:
        from storesense.zones.events import Event, EventType

        events = day_of_events("bench", day_events, time.time())
        for first in range(0, len(events), 5000):
            store.write_events(events[first : first + 5000])
    if with_key:
        key, record = new_key("display", ["display"])
        store.put_api_key(record)
        (folder / "key").write_text(key)

    def writer() -> None:
        tick = 0
        while True:
            tick += 1
            store.set_occupancy(
                "cam1", {z["id"]: (tick + i) % 5 for i, z in enumerate(zones)}, tick
            )
            if day_events:  # a live store: one new event a second changes the events version
                now = time.time()
                store.write_events(
                    [Event.create(EventType.LINE_CROSS, "bench", "cam1", "door", -tick, now,
                                  {"direction": "in"})]
                )  # fmt: skip
            time.sleep(1.0)

    threading.Thread(target=writer, daemon=True).start()
    app = create_app(ServiceSettings(store_url="sqlite:///bench.db"), store, layout)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


# ------------------------------------------------------------------ client side
def start(
    kind: str, folder: Path, with_key: bool = False, day_events: int = 0
) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    command = [sys.executable, __file__, "--serve", kind, "--port", str(port), "--dir", str(folder)]
    if with_key:
        command.append("--with-key")
    if day_events:
        command += ["--day-events", str(day_events)]
    process = subprocess.Popen(command)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            httpx.get(f"http://127.0.0.1:{port}/healthz" if kind != "bare" else
                      f"http://127.0.0.1:{port}/bare", timeout=1)  # fmt: skip
            return process, port
        except httpx.TransportError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"{kind} server did not start")


def to_ms(text: str) -> float:
    value, unit = re.match(r"([\d.]+)(us|ms|s)", text).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def run_wrk(
    url: str, script: Path, connections: int, duration: float, etag: bool, key: str = ""
) -> dict[str, float]:
    env = {**os.environ, "USE_ETAG": "1" if etag else "0", "API_KEY": key}
    result = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{round(duration)}s", "--latency",
         "-s", str(script), url],
        capture_output=True, text=True, env=env, check=True,
    )  # fmt: skip
    out = result.stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = to_ms(re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1))  # type: ignore[union-attr]
    p99 = to_ms(re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1))  # type: ignore[union-attr]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {"rps": rps, "p50": p50, "p99": p99, "errors": float(errors.group(1)) if errors else 0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=4.0, help="seconds per run")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--serve", choices=["bare", "storesense"], help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--dir", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--with-key", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument(
        "--day-events", type=int, default=20_000, help="events of today for counts/metrics"
    )
    args = parser.parse_args()
    if args.serve == "bare":
        serve_bare(args.port)
        return
    if args.serve == "storesense":
        serve_storesense(args.port, args.dir, args.with_key, args.day_events)
        return
    if shutil.which("wrk") is None:
        sys.exit("wrk is missing: apt-get install -y wrk")

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        script = folder / "poll.lua"
        script.write_text(LUA)
        cases = [
            ("bare FastAPI constant", "bare", False, False),
            ("/v1/occupancy", "storesense", False, False),
            ("/v1/occupancy + If-None-Match", "storesense", False, True),
            ("/v1/occupancy display key", "storesense-key", True, False),
            ("/v1/occupancy display key + If-None-Match", "storesense-key", True, True),
            (f"/v1/counts, today ({args.day_events} events)", "storesense-day", False, False),
            (f"/v1/metrics, today ({args.day_events} events)", "storesense-day", False, False),
        ]
        paths = {
            "/v1/counts": "/v1/counts?bucket=1h",
            "/v1/metrics": "/v1/metrics",
        }
        results: dict[str, list[dict[str, float]]] = {label: [] for label, *_ in cases}
        servers: dict[str, tuple[subprocess.Popen[bytes], int]] = {}
        try:
            for kind, with_key in (
                ("bare", False),
                ("storesense", False),
                ("storesense-key", True),
                ("storesense-day", False),
            ):
                sub = folder / kind
                sub.mkdir()
                day = args.day_events if kind == "storesense-day" else 0
                servers[kind] = start(kind.split("-")[0], sub, with_key, day)
            # Interleaved rounds: a shared, busy machine drifts; each round compares like with like.
            for _ in range(args.rounds):
                for label, kind, with_key, etag in cases:
                    port = servers[kind][1]
                    endpoint = label.split(",")[0].split(" ")[0]
                    path = "/bare" if kind == "bare" else paths.get(endpoint, "/v1/occupancy")
                    key = (folder / kind / "key").read_text() if with_key else ""
                    url = f"http://127.0.0.1:{port}{path}"
                    run_wrk(url, script, args.connections, 1.0, etag, key)  # warm-up
                    results[label].append(
                        run_wrk(url, script, args.connections, args.duration, etag, key)
                    )
        finally:
            for process, _ in servers.values():
                process.terminate()
                try:
                    process.wait(10)
                except subprocess.TimeoutExpired:  # still busy answering: stop it hard
                    process.kill()
                    process.wait(10)

    bare_runs = results[cases[0][0]]
    print(f"\n{args.connections} concurrent keep-alive pollers, {args.rounds} interleaved rounds "
          f"of {args.duration:g} s, wrk -t1, uvicorn 1 worker (same settings); "
          f"{os.cpu_count()} CPU cores, load average {os.getloadavg()[0]:.1f}")  # fmt: skip
    print("medians over rounds; 'x bare' = median of per-round ratios")
    print(f"{'endpoint':44} {'req/s':>9} {'x bare':>7} {'p50 ms':>7} {'p99 ms':>7} {'errors':>6}")
    for label, *_ in cases:
        runs = results[label]
        ratio = statistics.median(r["rps"] / b["rps"] for r, b in zip(runs, bare_runs, strict=True))
        rps, errors = statistics.median(r["rps"] for r in runs), sum(r["errors"] for r in runs)
        p50, p99 = (statistics.median(r[q] for r in runs) for q in ("p50", "p99"))
        print(f"{label:44} {rps:9.0f} {ratio:7.2f} {p50:7.2f} {p99:7.2f} {errors:6.0f}")
    print("\ntargets: occupancy >= 0.80 x bare req/s, p99 < 20 ms; counts/metrics p99 < 200 ms")


if __name__ == "__main__":
    main()
