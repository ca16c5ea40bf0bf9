"""Camera reports: every camera's status in the store, for replicas that run no workers."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping

from storesense.api.runtime.status import CameraStatus
from storesense.api.store.base import Store, StoreUnavailableError

logger = logging.getLogger(__name__)


class CameraReporter:
    """Publishes ``statuses()`` to the store every ``interval_s`` on a daemon thread
    (and once more at :meth:`stop`), signed ``worker_name``; a store outage is skipped."""

    def __init__(
        self,
        store: Store,
        statuses: Callable[[], Mapping[str, CameraStatus]],
        worker_name: str,
        interval_s: float,
    ) -> None:
        self._store = store
        self._statuses = statuses
        self.worker_name = worker_name
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def publish(self) -> None:
        """Publish every camera's status now (raises on a store error)."""
        now = time.time()
        for status in self._statuses().values():
            self._store.put_camera_report(status.to_report(self.worker_name, now))

    def publish_quietly(self) -> None:
        try:
            self.publish()
        except StoreUnavailableError as exc:
            logger.debug("camera reports not published: %s", exc)
        except Exception:
            logger.exception("publishing camera reports failed")

    def start(self) -> None:
        self.publish_quietly()
        self._thread = threading.Thread(target=self._loop, name="camera-reports", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self._interval_s):
            self.publish_quietly()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.publish_quietly()
