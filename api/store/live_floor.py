"""Visits across processes: camera workers of one store share their live floor tracks in Redis.

Camera workers of one store may run on several boxes (``storesense serve --camera ID``
per box, one shared ``redis://`` store). Each process's
:class:`~storesense.zones.store_visits.StoreVisits` sees its own cameras; a
:class:`LiveFloorLink` shares them with the others:

* after each local camera update, the camera's :class:`FloorFrame` (its people's floor
  position, track id, visit key and when that visit began, the shared-clock time; no
  image, no appearance) goes to the link, which keeps only each camera's latest one;
* the link's own thread writes them (``SET ... PX ttl``, one key per camera) and reads
  every other camera of the layout (``MGET``) in one pipeline per round, and feeds the
  other processes' frames to its ``StoreVisits`` (:meth:`StoreVisits.update_remote`).

So a person walking from box A's camera into box B's continues the same visit (B hands
the new track over to the visit A's camera just saw there), people seen by cameras of two
boxes are one visit, and every process's store-wide count is the de-duplicated union of
all cameras (each publishes the same figure, so "last one wins" no longer matters).

Redis is the shared state, nothing more: a camera's key expires ``ttl_s`` after its
last write (its process stopped or lost Redis), and its people leave everyone's count.
The live state is ephemeral: while Redis is down or hung, the link drops it (a camera
thread only swaps a reference, it never waits for Redis) and the cameras go on with their
own view; the link retries every ``retry_s``.

Key (``S`` = store id): ``ss:{S}:floor:<camera_id>``, a string holding the camera's
latest frame as JSON (``w`` the writing process, ``t`` time, ``ids``, ``xy`` metres,
``v`` visit keys, ``f`` visit start times, ``u`` people off the floor, ``p`` placed).
"""

from __future__ import annotations

import json
import logging
import threading
import uuid
from typing import TYPE_CHECKING, Any

import numpy as np
import redis.exceptions
from storesense.zones.store_visits import FloorFrame

if TYPE_CHECKING:
    from storesense.zones.store_visits import StoreVisits

logger = logging.getLogger(__name__)

LIVE_FLOOR_TTL_S = 3.0
"""A camera's live floor frame outlives its last write by this: longer than a hand-over
gap needs (``StoreVisits.link_seconds``), short enough that a stopped box's people soon
leave the store-wide count."""


def encode_frame(frame: FloorFrame, worker: str) -> str:
    """The JSON of a camera's floor frame, signed by its process."""
    return json.dumps(
        {
            "w": worker,
            "c": frame.camera_id,
            "t": frame.timestamp,
            "ids": [int(t) for t in frame.track_ids],
            "xy": np.round(np.asarray(frame.floor, np.float64), 3).tolist(),
            "v": list(frame.visits),
            "f": [float(f) for f in frame.first_seen],
            "u": int(frame.unplaced),
            "p": bool(frame.placed),
        },
        separators=(",", ":"),
    )


def decode_frame(payload: str) -> tuple[str, FloorFrame]:
    """``(worker, frame)`` from :func:`encode_frame`'s JSON (``ValueError`` if malformed)."""
    try:
        row = json.loads(payload)
        ids = [int(t) for t in row["ids"]]
        floor = np.asarray(row["xy"], np.float64).reshape(-1, 2)
        visits = [str(v) for v in row["v"]]
        first_seen = [float(f) for f in row["f"]]
        if not (len(ids) == len(floor) == len(visits) == len(first_seen)):
            raise ValueError("lengths differ")
        frame = FloorFrame(
            str(row["c"]),
            float(row["t"]),
            ids,
            floor,
            visits,
            first_seen,
            int(row["u"]),
            placed=bool(row["p"]),
        )
        return str(row["w"]), frame
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"malformed live floor frame: {exc}") from exc


class LiveFloorLink:
    """Shares the floor frames of this process's cameras with the other processes of the
    store through Redis, and feeds theirs to this process's ``StoreVisits``.

    ``client``: a redis-py client (the store's); ``key_prefix``: the store's namespace
    (``ss:{S}:``); ``worker``: this process's name (``host:pid``; a random suffix
    makes it unique). :meth:`attach` a
    ``StoreVisits`` (again after a layout change), :meth:`start` the thread,
    :meth:`stop` it. :meth:`exchange` is one round (the thread's, or a caller's).
    """

    def __init__(
        self,
        client: Any,
        key_prefix: str,
        worker: str,
        *,
        ttl_s: float = LIVE_FLOOR_TTL_S,
        poll_s: float = 0.05,
        retry_s: float = 1.0,
    ) -> None:
        if not (ttl_s > 0 and poll_s > 0 and retry_s > 0):
            raise ValueError(
                f"ttl_s, poll_s and retry_s must be > 0; got {ttl_s}, {poll_s}, {retry_s}"
            )
        self._client = client
        self._prefix = key_prefix + "floor:"
        # Unique even where two processes share a name (containers all run as pid 1).
        self.worker = f"{worker}/{uuid.uuid4().hex[:8]}"
        self.ttl_ms = max(1, round(ttl_s * 1000))
        self.poll_s = float(poll_s)
        self.retry_s = float(retry_s)
        self._cond = threading.Condition()
        self._pending: dict[str, FloorFrame] = {}
        self._local: set[str] = set()
        self._visits: StoreVisits | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._failing = False
        self._malformed: set[str] = set()
        self.published = 0
        """Local frames written to Redis."""
        self.dropped = 0
        """Local frames never written (a newer one replaced it, or Redis failed)."""
        self.received = 0
        """Other processes' frames fed to the ``StoreVisits``."""
        self.failures = 0
        """Rounds that failed (Redis down, hung or refusing)."""

    def key(self, camera_id: str) -> str:
        return self._prefix + camera_id

    def attach(self, visits: StoreVisits) -> None:
        """Share ``visits``' local cameras from now on (replaces the previous one)."""
        with self._cond:
            if self._visits is not None and self._visits is not visits:
                self._visits.on_frame = None
            self._visits = visits
            self._pending.clear()
            self._local.clear()
            visits.on_frame = self.offer

    def offer(self, frame: FloorFrame) -> None:
        """A local camera's latest floor frame (never waits for Redis: the frame replaces
        the camera's unsent one)."""
        with self._cond:
            if frame.camera_id in self._pending:
                self.dropped += 1
            self._pending[frame.camera_id] = frame
            self._local.add(frame.camera_id)
            self._cond.notify()

    def exchange(self) -> bool:
        """One round: write the pending local frames, read the other cameras' and feed
        the fresh ones to the ``StoreVisits``. False when Redis failed (frames dropped)."""
        with self._cond:
            pending, self._pending = self._pending, {}
            visits, local = self._visits, set(self._local)
        if visits is None:
            return True
        remote = [c.id for c in visits.layout.cameras if c.id not in local]
        try:
            pipe = self._client.pipeline(transaction=False)
            for camera_id, frame in pending.items():
                pipe.set(self.key(camera_id), encode_frame(frame, self.worker), px=self.ttl_ms)
            if remote:
                pipe.mget([self.key(c) for c in remote])
            replies = pipe.execute()
        except (redis.exceptions.RedisError, OSError) as exc:
            self.failures += 1
            self.dropped += len(pending)
            if not self._failing:
                logger.warning("live floor tracks not shared (Redis: %s); cameras go on", exc)
            self._failing = True
            return False
        if self._failing:
            logger.info("live floor tracks shared again")
        self._failing = False
        self.published += len(pending)
        for camera_id, payload in zip(remote, replies[-1] if remote else [], strict=True):
            if not payload:
                continue
            try:
                worker, frame = decode_frame(payload)
                if frame.camera_id != camera_id:
                    raise ValueError(f"a frame of camera {frame.camera_id!r} in its key")
            except ValueError as exc:
                if camera_id not in self._malformed:  # once, not every round
                    logger.warning("camera %s: %s", camera_id, exc)
                self._malformed.add(camera_id)
                continue
            self._malformed.discard(camera_id)
            if worker != self.worker and frame.camera_id not in local:
                visits.update_remote(frame)
                self.received += 1
        return True

    def start(self) -> None:
        """Run :meth:`exchange` on a thread of its own: at each local frame, else every
        ``poll_s``; after a failure, again ``retry_s`` later."""
        with self._cond:
            if self._thread is not None:
                return
            self._stop.clear()
            self._thread = threading.Thread(target=self._loop, name="live-floor", daemon=True)
            self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            with self._cond:
                self._cond.wait_for(lambda: bool(self._pending) or self._stop.is_set(), self.poll_s)
            if self._stop.is_set():
                break
            if not self.exchange():
                self._stop.wait(self.retry_s)

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the thread (its keys expire by themselves)."""
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
            thread, self._thread = self._thread, None
            if self._visits is not None:
                self._visits.on_frame = None
        if thread is not None:
            thread.join(timeout)
