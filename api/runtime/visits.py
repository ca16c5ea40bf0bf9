"""Visits across restarts: event ids that survive a restart, and closing the visits a
killed run of a live camera left open."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import socket
import time
from collections.abc import Iterable

from storesense.api.runtime.status import CameraState
from storesense.api.store.base import EventQuery, Store, StoreUnavailableError
from storesense.zones.config import StoreLayout
from storesense.zones.events import Event, EventType
from storesense.zones.journeys import VISIT_ATTRIBUTE, visit_camera
from storesense.zones.store_visits import STORE_CAMERA

logger = logging.getLogger(__name__)

VISIT_LOOKBACK_S = 86_400.0
"""How far back a restarting live camera looks for visits its last run left open."""
CLOSED_BY_RESTART = "restart"
"""``attributes.closed_by`` of a ``zone_exit`` written for a visit a killed run left open."""


def event_identity_scope(layout: StoreLayout, camera_id: str) -> str:
    """What identifies a camera's run in its event ids: the camera and its part of the layout.

    Deterministic (no random run id): the same camera with the same configuration,
    zones and lines gives the same scope after a restart, in any process, so events
    re-emitted from the same source position get the same ids and the store keeps
    them once. A change to an unrelated camera's zones does not change it.

    >>> from storesense.zones.config import parse_layout
    >>> layout = parse_layout({"store": {"id": "s"}, "cameras": [{"id": "a"}, {"id": "b"}]})
    >>> event_identity_scope(layout, "a") == event_identity_scope(layout, "a")
    True
    >>> event_identity_scope(layout, "a") == event_identity_scope(layout, "b")
    False
    """
    camera = layout.camera(camera_id)
    parts = [
        camera.model_dump_json(),
        *(zone.model_dump_json() for zone in layout.zones_of(camera_id)),
        *(line.model_dump_json() for line in layout.lines_of(camera_id)),
    ]
    digest = hashlib.blake2b("\n".join(parts).encode(), digest_size=8).hexdigest()
    return f"{camera_id}@{digest}"


def open_visits(events: Iterable[Event]) -> list[Event]:
    """``zone_enter`` events that no ``zone_exit`` closes, oldest first.

    An exit closes the enter of the same zone at ``exit time - dwell_seconds``
    (a re-linked track exits under a new track id), preferring the same track.

    >>> from storesense.zones.events import EventType as T
    >>> enter = Event.create(T.ZONE_ENTER, "s", "c", "left", 1, 10.0)
    >>> other = Event.create(T.ZONE_ENTER, "s", "c", "left", 2, 11.0)
    >>> exit_ = Event.create(T.ZONE_EXIT, "s", "c", "left", 5, 14.0, {"dwell_seconds": 4.0})
    >>> [e.track_id for e in open_visits([enter, other, exit_])]
    [2]
    """
    ordered = sorted(events, key=lambda e: (e.timestamp, e.type != EventType.ZONE_ENTER))
    open_enters: list[Event] = []
    for event in ordered:
        if event.type == EventType.ZONE_ENTER:
            if all(e.event_id != event.event_id for e in open_enters):
                open_enters.append(event)
            continue
        if event.type != EventType.ZONE_EXIT:
            continue
        dwell = event.attributes.get("dwell_seconds")
        entered = event.timestamp - float(dwell) if isinstance(dwell, int | float) else None
        candidates = [
            e
            for e in open_enters
            if e.target == event.target
            and (
                entered is None or abs(e.timestamp - entered) < 0.01 or e.track_id == event.track_id
            )
        ]
        if candidates:
            same_track = [e for e in candidates if e.track_id == event.track_id]
            open_enters.remove((same_track or candidates)[0])
    return open_enters


def visit_closing_exits(open_enters: Iterable[Event], closed_at: float) -> list[Event]:
    """A ``zone_exit`` at ``closed_at`` for each open visit (``closed_by: restart``).

    The exit's id derives from its enter, so two workers closing the same visit
    write one exit.
    """
    exits = []
    for enter in open_enters:
        at = max(closed_at, enter.timestamp)
        attributes: dict[str, object] = {
            "dwell_seconds": round(at - enter.timestamp, 3),
            "closed_by": CLOSED_BY_RESTART,
        }
        if VISIT_ATTRIBUTE in enter.attributes:
            attributes[VISIT_ATTRIBUTE] = enter.attributes[VISIT_ATTRIBUTE]
        exits.append(
            Event.create(
                EventType.ZONE_EXIT,
                enter.store_id,
                enter.camera_id,
                enter.target,
                enter.track_id,
                at,
                attributes,
                run_id=f"closes:{enter.event_id}",
                position=enter.timestamp,
            )
        )
    return exits


def worker_may_be_alive(worker: str) -> bool:
    """``host:pid`` of a report: ``False`` only when it is a process of this host that is gone
    (a killed worker restarted here); a worker on another host may be alive."""
    host, _, pid = worker.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class OpenVisitCloser:
    """Closes the visits an earlier run of a live camera left open (a killed worker),
    once the store answers: :meth:`due` at the start of a run, :meth:`close` whenever
    the store may answer (at the start, after each successful write)."""

    def __init__(self, store: Store, camera_id: str, worker_name: str, report_s: float) -> None:
        self._store = store
        self.camera_id = camera_id
        self._worker_name = worker_name
        self._report_s = report_s
        self.before: float | None = None
        """Visits opened before this Unix time are to close; ``None`` when nothing is due."""

    def due(self, before: float) -> None:
        self.before = before

    def _another_worker_runs_this_camera(self) -> bool:
        """A fresh report of this camera, running, signed by another process."""
        report = self._store.get_camera_reports().get(self.camera_id)
        if report is None:
            return False
        try:
            fields = json.loads(report.status_json)
        except ValueError:
            return False
        worker = str(fields.get("worker") or "")
        fresh = time.time() - report.reported_at < 3 * self._report_s
        if not fresh or fields.get("state") != CameraState.RUNNING.value:
            return False
        if worker in ("", self._worker_name):
            return False
        return worker_may_be_alive(worker)

    def _stored_stays(self, before: float, camera_id: str) -> list[Event]:
        return self._store.query_events(
            EventQuery(
                start=before - VISIT_LOOKBACK_S,
                end=before,
                types=frozenset({EventType.ZONE_ENTER, EventType.ZONE_EXIT}),
                camera_id=camera_id,
            )
        )

    def close(self) -> None:
        """Close the open visits if due (kept due while the store is unavailable)."""
        before = self.before
        if before is None:
            return
        try:
            if self._another_worker_runs_this_camera():
                logger.warning(
                    "camera %s: another live worker runs this camera; its open visits "
                    "are its own, none closed",
                    self.camera_id,
                )
                self.before = None
                return
            stored = self._stored_stays(before, self.camera_id)
            # Store-wide floor zones' stays of the visits this camera began: its process
            # wrote them, so its restart closes them.
            store_wide = [
                e
                for e in self._stored_stays(before, STORE_CAMERA)
                if visit_camera(str(e.attributes.get(VISIT_ATTRIBUTE, ""))) == self.camera_id
            ]
            if stored or store_wide:
                exits = []
                if stored:
                    last_seen = max(e.timestamp for e in stored)
                    exits += visit_closing_exits(open_visits(stored), last_seen)
                if store_wide:
                    last_seen = max(e.timestamp for e in stored + store_wide)
                    exits += visit_closing_exits(open_visits(store_wide), last_seen)
                if exits:
                    self._store.write_events(exits)
                    logger.warning(
                        "camera %s: closed %d visit(s) an earlier run left open",
                        self.camera_id,
                        len(exits),
                    )
        except StoreUnavailableError as exc:
            logger.info("camera %s: open visits not closed yet: %s", self.camera_id, exc)
            return
        except Exception:
            logger.exception("camera %s: closing open visits failed", self.camera_id)
        self.before = None
