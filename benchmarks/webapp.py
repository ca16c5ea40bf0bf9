"""The dashboard's first render with a day of events, in a real headless Chromium.

A real ``storesense serve --no-workers`` (SQLite store, open mode on loopback) serves a
store holding one busy day of events (today, in the store's time zone) and the same
weekday a week earlier; Chromium opens ``/`` in a fresh context (empty cache) ``--runs``
times, then reloads it warm. Reported per run, from the page's own Performance marks:

* ``first_paint``: first contentful paint (the page shell);
* ``occupancy``: the live occupancy cards rendered;
* ``metrics``: the store's figures rendered (KPIs, trend, dwell: ``GET /v1/metrics``);
* ``loaded``: every panel rendered (plus a week earlier, counts, funnel, paths, the floor
  heatmap: 12 opening hours of a 10 m x 15 m floor in 0.5 m cells);

plus the slowest API request and the static assets' total size on disk and on the wire.
Target: ``loaded`` < 1 s, static assets < 300 KB.

Run: ``python benchmarks/webapp.py [--visitors 3000] [--runs 5]``
"""

from __future__ import annotations

import argparse
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import yaml
from playwright.sync_api import sync_playwright
from storesense.api.store import open_store
from storesense.api.store.base import HeatmapCell
from storesense.zones.events import Event, EventType

ROOT = Path(__file__).resolve().parent.parent
STATIC = ROOT / "api" / "static"
MARKS = ("first_paint", "occupancy", "metrics", "loaded")
CHROMIUM = os.environ.get("STORESENSE_CHROMIUM", "/usr/bin/chromium")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def layout(store_id: str) -> dict[str, object]:
    return {
        "store": {"id": store_id, "timezone": "UTC"},
        "cameras": [{"id": "cam1", "homography": {  # a floor heatmap panel
            "image_points": [[50, 550], [718, 550], [524, 150], [244, 150]],
            "floor_points": [[0, 0], [10, 0], [10, 15], [0, 15]]}}],
        "zones": [
            {"id": "street", "camera": "cam1", "kind": "passerby",
             "polygon": [[0, 0], [384, 0], [384, 576], [0, 576]]},
            {"id": "shop", "camera": "cam1",
             "polygon": [[384, 0], [768, 0], [768, 576], [384, 576]]},
            {"id": "till", "camera": "cam1", "kind": "queue",
             "polygon": [[500, 300], [700, 300], [700, 500], [500, 500]]},
        ],
        "lines": [{"id": "door", "camera": "cam1", "points": [[384, 0], [384, 576]],
                   "inside": [600, 300], "entrance": True}],
    }  # fmt: skip


def day_of_events(store_id: str, start: float, visitors: int, seed: int) -> list[Event]:
    """``visitors`` passers-by over 24 hours from ``start``, opening-hours shaped; 45 % come
    in, stay 10-600 s, 60 % of those queue at the till."""
    rng = random.Random(seed)
    events: list[Event] = []

    def add(kind: EventType, target: str, track: int, at: float, **attrs: object) -> None:
        events.append(Event.create(kind, store_id, "cam1", target, track, at, dict(attrs)))

    for track in range(visitors):
        at = start + min(86_000.0, max(0.0, rng.gauss(14 * 3600, 3.5 * 3600)))
        add(EventType.ZONE_ENTER, "street", track, at)
        add(EventType.ZONE_EXIT, "street", track, at + 4, dwell_seconds=4.0)
        if rng.random() < 0.45:
            stay = rng.uniform(10, 600)
            add(EventType.LINE_CROSS, "door", track, at + 5, direction="in")
            add(EventType.ZONE_ENTER, "shop", track, at + 6)
            if rng.random() < 0.6:
                wait = rng.uniform(5, min(120, stay - 2))
                add(EventType.ZONE_ENTER, "till", track, at + 6 + stay - wait - 1)
                add(EventType.ZONE_EXIT, "till", track, at + 5 + stay, dwell_seconds=wait)
            add(EventType.ZONE_EXIT, "shop", track, at + 6 + stay, dwell_seconds=stay)
            add(EventType.LINE_CROSS, "door", track, at + 7 + stay, direction="out")
    return events


def day_of_heatmap(start: float, seed: int) -> list[HeatmapCell]:
    """Person-seconds in every 0.5 m cell of a 10 m x 15 m floor, each opening hour (8-20 h)."""
    rng = random.Random(seed)
    return [
        HeatmapCell("cam1", start + 3600 * hour, x, y, rng.uniform(0, 60))
        for hour in range(8, 20)
        for x in range(20)
        for y in range(30)
    ]


def measure(url: str, runs: int) -> list[dict[str, float]]:
    results = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"]
        )
        for run in range(runs + 1):
            warm = run == runs
            context = browser.new_context(viewport={"width": 1400, "height": 1000})
            page = context.new_page()
            if warm:
                page.goto(url)
                page.wait_for_selector("body[data-loaded]", timeout=60_000)
                page.reload()
            else:
                page.goto(url)
            page.wait_for_selector("body[data-loaded]", timeout=60_000)
            timing = page.evaluate(
                """() => {
                  const at = (name) => (performance.getEntriesByName(name)[0] || {}).startTime;
                  const api = performance.getEntriesByType('resource')
                    .filter((r) => r.name.includes('/v1/'))
                    .map((r) => [new URL(r.name).pathname, r.duration]);
                  const statics = performance.getEntriesByType('resource')
                    .filter((r) => r.name.includes('/static/'))
                    .reduce((sum, r) => sum + r.encodedBodySize, 0);
                  return {first_paint: at('first-contentful-paint'),
                          occupancy: at('storesense:occupancy'), metrics: at('storesense:metrics'),
                          loaded: at('storesense:loaded'), api, static_bytes: statics};
                }"""
            )
            slowest = max(timing.pop("api"), key=lambda item: item[1])
            timing["slowest_api"] = slowest[1]
            timing["slowest_api_path"] = slowest[0]
            timing["warm"] = warm
            results.append(timing)
            context.close()
        browser.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--visitors", type=int, default=3000, help="passers-by in the day")
    parser.add_argument("--runs", type=int, default=5, help="cold page loads")
    args = parser.parse_args()

    static_bytes = sum(p.stat().st_size for p in STATIC.rglob("*") if p.is_file())
    with tempfile.TemporaryDirectory() as folder:
        store_id = "bench-webapp"
        layout_path = Path(folder) / "layout.yaml"
        layout_path.write_text(yaml.safe_dump(layout(store_id)))
        db = Path(folder) / "bench.db"
        store = open_store(f"sqlite:///{db}", store_id)
        today = time.time() // 86400 * 86400
        events = day_of_events(store_id, today, args.visitors, seed=1)
        events += day_of_events(store_id, today - 7 * 86400, args.visitors, seed=2)
        store.write_events(events)
        store.add_transactions({today + 3600 * h: 20 + h for h in range(8, 20)})
        store.add_heatmap(day_of_heatmap(today, seed=3))
        store.close()

        port = free_port()
        server = subprocess.Popen(
            [str(Path(sys.executable).parent / "storesense"), "serve", "--layout", str(layout_path),
             "--store", f"sqlite:///{db}", "--no-workers", "--port", str(port),
             "--status-every", "0"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline or server.poll() is not None:
                    raise SystemExit(
                        f"serve did not start: {server.stderr.read() if server.stderr else ''}"
                    )
                time.sleep(0.2)
            results = measure(url + "/", args.runs)
            api_ms = []  # the baseline: the same metrics request straight from Python
            for _ in range(3):
                began = time.perf_counter()
                httpx.get(
                    url + "/v1/metrics", params={"bucket": "1h"}, timeout=60
                ).raise_for_status()
                api_ms.append((time.perf_counter() - began) * 1000)
        finally:
            server.terminate()
            server.wait(10)

    cold = [r for r in results if not r["warm"]]
    warm = [r for r in results if r["warm"]]
    print(f"{len(events)} events ({args.visitors} passers-by a day, today and a week earlier)")
    print(f"static assets on disk: {static_bytes / 1024:.1f} KB; "
          f"on the wire (first load): {cold[0]['static_bytes'] / 1024:.1f} KB")  # fmt: skip
    print("| run | first paint ms | occupancy ms | metrics ms | all panels ms | slowest API ms |")
    print("|---|---|---|---|---|---|")
    for index, r in enumerate(results):
        name = "warm reload" if r["warm"] else f"cold {index + 1}"
        marks = " | ".join(f"{r[key]:.0f}" for key in MARKS)
        print(f"| {name} | {marks} | {r['slowest_api']:.0f} ({r['slowest_api_path']}) |")
    baseline = statistics.median(api_ms)
    median_metrics = statistics.median(r["metrics"] for r in cold)
    print(f"GET /v1/metrics?bucket=1h alone (httpx, median of 3): {baseline:.0f} ms; "
          f"cold page until metrics shown: {median_metrics / baseline:.2f}x that")  # fmt: skip
    summary = {
        "events": len(events),
        "static_kb": round(static_bytes / 1024, 1),
        "metrics_api_ms": round(baseline),
        "median_cold_ms": {key: round(statistics.median(r[key] for r in cold)) for key in MARKS},
        "warm_ms": {key: round(warm[0][key]) for key in MARKS},
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
