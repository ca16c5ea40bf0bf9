"""The layout shared through the store: follow changes other replicas make, and store
this process's layout once the store answers (it was down at start-up)."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable

from storesense.api.store.base import Store, StoreUnavailableError
from storesense.zones.config import StoreLayout

logger = logging.getLogger(__name__)


class LayoutWatcher:
    """Polls the store's layout every ``poll_s`` on a daemon thread and calls ``apply``
    with a valid layout that differs from ``current_json()`` (an invalid one is logged
    and ignored)."""

    def __init__(
        self,
        store: Store,
        current_json: Callable[[], str],
        apply: Callable[[StoreLayout], None],
        poll_s: float,
    ) -> None:
        self._store = store
        self._current_json = current_json
        self._apply = apply
        self._poll_s = poll_s
        self._unpublished = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def publish_later(self) -> None:
        """The layout could not be stored at start-up (store down): store it once the
        store answers, before reading the shared layout again."""
        self._unpublished = True

    def _publish_if_due(self) -> bool:
        """``False`` while the start-up layout still waits to be stored."""
        if not self._unpublished:
            return True
        try:
            self._store.put_layout(self._current_json())
        except StoreUnavailableError:
            return False
        self._unpublished = False
        logger.warning("the store answers again: layout stored")
        return True

    def start(self) -> None:
        self._thread = threading.Thread(target=self._watch, name="layout-watch", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def check(self) -> None:
        """One poll: apply the stored layout if it is new and valid."""
        from storesense.zones.config import LayoutError, parse_layout

        try:
            if not self._publish_if_due():
                return
            stored = self._store.get_layout()
        except StoreUnavailableError:
            return
        except Exception:
            logger.exception("reading the shared layout failed")
            return
        if stored is None or stored == self._current_json():
            return
        try:
            layout = parse_layout(json.loads(stored))
        except (LayoutError, ValueError) as exc:
            logger.error("ignoring an invalid shared layout: %s", exc)
            return
        if layout.model_dump_json() != self._current_json():
            logger.warning("layout changed in the store; applying it")
            self._apply(layout)

    def _watch(self) -> None:
        while not self._stop.wait(self._poll_s):
            self.check()
