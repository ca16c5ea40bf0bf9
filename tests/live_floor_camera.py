"""One camera worker process of a store, for the two-process test of visits across processes.

``python tests/live_floor_camera.py REDIS_URL STORE_ID CAMERA TRACKS START_FILE SPEED OUT``
(``REDIS_URL`` ``none``: no live floor link, each process on its own, the baseline of
``benchmarks/store_visits_redis.py``)

Runs CAMERA of the PETS09 split layout (``benchmarks/store_visits.py``) as the service's
camera workers do (``StoreWideAnalytics`` with the Redis store's live floor link), on the
tracks pickled in TRACKS (the real detector's and tracker's, per frame). Writes
``OUT.ready`` once set up, waits for START_FILE (the shared wall-clock start), then plays
the frames at SPEED times 7 fps on a clock shared with the other process and writes OUT
(JSON): per frame the store-wide count, the store-wide floor zone's count and each track's
visit, and the link's figures.
"""

from __future__ import annotations

import json
import pickle
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from store_visits import FLOOR_ZONE, FPS, split_layout
from storesense.api.store.redis import RedisStore
from storesense.api.store_wide import StoreWideAnalytics

T0 = 1_750_000_000.0
"""Both processes' frame clock 0 (Unix seconds): one shared clock."""


def main(argv: list[str]) -> None:
    url, store_id, camera_id, tracks_path, start_file, speed_text, out = argv
    speed = float(speed_text)
    frames = pickle.loads(Path(tracks_path).read_bytes())
    layout = split_layout()
    store = None if url == "none" else RedisStore.from_url(url, store_id)
    engines = StoreWideAnalytics(None if store is None else store.live_floor(f"p-{camera_id}"))
    analytics = engines(layout, camera_id, "run", T0)
    visits = analytics.store_visits
    assert visits is not None
    Path(out + ".ready").write_text("ready")
    while not Path(start_file).exists():
        time.sleep(0.01)
    start = float(Path(start_file).read_text())
    counts: list[int] = []
    zone_counts: list[int] = []
    keys: list[dict[str, str]] = []
    late = update_s = 0.0
    cpu_start = time.process_time()
    for f, tracks in enumerate(frames):
        due = start + f / (FPS * speed)
        wait = due - time.time()
        if wait > 0:
            time.sleep(wait)
        else:
            late = max(late, -wait)
        t = time.perf_counter()
        analytics.update(None, tracks)
        update_s += time.perf_counter() - t
        now = visits.counts()
        counts.append(now.count)
        zone_counts.append(now.zones[FLOOR_ZONE])
        keys.append({str(t): visits.visit_of(camera_id, int(t)) for t in tracks.track_id})
    cpu_s = time.process_time() - cpu_start
    link = engines.live_floor
    engines.close()
    if store is not None:
        store.close()
    result = {
        "counts": counts,
        "zone_counts": zone_counts,
        "keys": keys,
        "published": link.published if link else 0,
        "received": link.received if link else 0,
        "dropped": link.dropped if link else 0,
        "failures": link.failures if link else 0,
        "remote_cameras": sorted(visits.remote_cameras),
        "most_late_s": late,
        "update_s": update_s,
        "cpu_s": cpu_s,
    }
    Path(out).write_text(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1:])
