"""Retention: events, floor heatmap hours, check-ins, consent and audit records are deleted
when they age out.

Example:
    >>> policy = RetentionPolicy(days=30, consent_days=365, audit_days=730)
    >>> policy.event_cutoff(now=40 * 86400.0) / 86400
    10.0
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field
from storesense.api.store.base import Store

logger = logging.getLogger(__name__)

DAY_SECONDS = 86_400.0
MAX_DAYS = 36_500.0
"""A century: longer is not a retention period (and ``inf`` days is not a number of days)."""


class RetentionPolicy(BaseModel):
    """How long each kind of record is kept, in days (fractions allowed).

    ``days``: zone events and member check-ins/links. ``consent_days``: a
    consent record after it was last given or renewed (every check-in renews
    it). ``audit_days``: the member-data audit log. ``interval_s``: how often
    the service purges.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    days: float = Field(
        30.0, gt=0, le=MAX_DAYS, description="keep events and check-ins this many days"
    )
    consent_days: float = Field(
        365.0, gt=0, le=MAX_DAYS, description="keep consent records this many days"
    )
    audit_days: float = Field(
        730.0, gt=0, le=MAX_DAYS, description="keep audit entries this many days"
    )
    interval_s: float = Field(3600.0, gt=0, le=DAY_SECONDS, description="seconds between purges")

    def __init__(self, days: float = 30.0, **data: float) -> None:
        super().__init__(days=days, **data)

    def event_cutoff(self, now: float | None = None) -> float:
        return (time.time() if now is None else now) - self.days * DAY_SECONDS

    def consent_cutoff(self, now: float | None = None) -> float:
        return (time.time() if now is None else now) - self.consent_days * DAY_SECONDS

    def audit_cutoff(self, now: float | None = None) -> float:
        return (time.time() if now is None else now) - self.audit_days * DAY_SECONDS


@dataclass(frozen=True)
class PurgeReport:
    events: int
    checkins_and_links: int
    consents: int
    audit_entries: int
    heatmap_cells: int = 0
    """Floor heatmap cells of hours that ended before the event cutoff (as events)."""


def purge_once(policy: RetentionPolicy, store: Store, *, now: float | None = None) -> PurgeReport:
    """Delete everything older than the policy allows; returns how much went."""
    current = time.time() if now is None else now
    return PurgeReport(
        events=store.delete_events_before(policy.event_cutoff(current)),
        checkins_and_links=store.delete_checkins_before(policy.event_cutoff(current)),
        consents=store.delete_consents_before(policy.consent_cutoff(current)),
        audit_entries=store.delete_audit_before(policy.audit_cutoff(current)),
        heatmap_cells=store.delete_heatmap_before(policy.event_cutoff(current)),
    )


class RetentionLoop:
    """Runs :func:`purge_once` every ``policy.interval_s`` in a daemon thread.

    A failing purge (store down) is logged and retried at the next interval.

    Example:
        >>> loop = RetentionLoop(RetentionPolicy(30), store)            # doctest: +SKIP
        >>> loop.start(); ...; loop.stop()                              # doctest: +SKIP
    """

    def __init__(self, policy: RetentionPolicy, store: Store) -> None:
        self.policy = policy
        self.store = store
        self.last_report: PurgeReport | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def run_once(self) -> PurgeReport | None:
        try:
            self.last_report = purge_once(self.policy, self.store)
        except Exception:
            logger.exception("retention purge failed; will retry in %.0f s", self.policy.interval_s)
            return None
        logger.info("retention purge: %s", self.last_report)
        return self.last_report

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.run_once()
            self._stop.wait(self.policy.interval_s)

    def start(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="retention", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
