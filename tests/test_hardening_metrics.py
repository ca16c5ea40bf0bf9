"""Issue 9 item 12: today's mean occupancy is not carried forward to midnight.

The time-weighted mean ends at what was observed (now), not at the end of the day,
so someone who entered half-way through the day so far gives a mean of 0.5 now.
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from service_helpers import SETTINGS, LiveServer, layout_dict
from storesense.api.app import create_app
from storesense.api.store import open_store
from storesense.zones.config import StoreLayout
from storesense.zones.events import Event, EventType
from storesense.zones.metrics import compute_metrics


def test_today_mean_occupancy_ends_now_over_http(tmp_path: Path) -> None:
    store_id = f"t{uuid.uuid4().hex[:8]}"
    store = open_store(f"sqlite:///{tmp_path / 'store.db'}", store_id)
    layout = StoreLayout.model_validate(layout_dict(store_id))
    now = time.time()
    midnight = datetime.fromtimestamp(now, UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    elapsed = now - midnight.timestamp()
    entered = midnight.timestamp() + elapsed / 2
    store.write_events([Event.create(EventType.ZONE_ENTER, store_id, "cam1", "left", 7, entered)])
    with LiveServer(create_app(SETTINGS, store, layout)) as server:
        before = time.time()
        metrics = httpx.get(f"{server.url}/v1/metrics", timeout=10).json()
        after = time.time()
        explicit = httpx.get(
            f"{server.url}/v1/metrics", params={"from": midnight.timestamp(), "to": now}, timeout=10
        ).json()
    store.close()
    start = midnight.timestamp()
    low, high = (before - entered) / (before - start), (after - entered) / (after - start)
    mean = metrics["occupancy"]["left"]["mean"]
    assert low - 1e-3 <= mean <= high + 1e-3, (mean, low, high)
    assert metrics["occupancy"]["left"]["peak"] == 1
    # to=now asks for the same span: the same mean (was 0.0069 vs 2.33 before).
    assert explicit["occupancy"]["left"]["mean"] == pytest.approx(0.5, abs=1e-3)


@pytest.mark.parametrize(
    ("observed_hour", "mean", "peak"),
    [
        (None, 14 / 24, 1),  # a finished day: carried to its end, as recorded
        (12, 2 / 12, 1),  # at noon: 10:00-12:00 inside out of 12 h observed
        (9, 0.0, 0),  # before the entry
        (0, 0.0, 0),  # nothing observed yet
    ],
)
def test_compute_metrics_clips_the_mean_at_observed_until(
    observed_hour: int | None, mean: float, peak: int
) -> None:
    layout = StoreLayout.model_validate(layout_dict("s"))
    day = datetime(2024, 5, 1, tzinfo=UTC)
    entered = day.replace(hour=10).timestamp()
    events = [Event.create(EventType.ZONE_ENTER, "s", "cam1", "left", 7, entered)]
    observed = None if observed_hour is None else day.replace(hour=observed_hour)
    metrics = compute_metrics(
        events,
        layout,
        start=day,
        end=day.replace(day=2),
        observed_until=observed,
        bucket=None,
    )
    assert metrics.occupancy["left"].mean == pytest.approx(mean, abs=1e-4)
    assert metrics.occupancy["left"].peak == peak
