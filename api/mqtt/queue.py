"""The outgoing queue between camera threads and the MQTT thread.

Camera threads only ever take one short lock here; the broker's speed never reaches them.
State topics (occupancy, line counts, camera states, status, discovery) keep only their
newest payload and are sent at most ``1 / rate`` apart per topic; events wait in a bounded
FIFO whose oldest entry is dropped (and counted) when it is full.

Example:
    >>> clock = iter([0.0, 0.05, 0.3]).__next__
    >>> queue = OutgoingQueue(max_events=2, clock=clock)
    >>> queue.put_state(Message("z/occupancy", b"1", True, "occupancy"), min_interval=0.2)
    >>> queue.put_state(Message("z/occupancy", b"2", True, "occupancy"), min_interval=0.2)
    >>> [m.payload for m in queue.take()[0]]          # newest wins
    [b'2']
    >>> queue.put_state(Message("z/occupancy", b"3", True, "occupancy"), min_interval=0.2)
    >>> messages, wait = queue.take()                  # 0.05 s later: held back until 0.2
    >>> messages, round(wait, 2)
    ([], 0.15)
    >>> [m.payload for m in queue.take()[0]]
    [b'3']
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Message:
    topic: str
    payload: bytes
    retain: bool
    kind: str
    """``status``, ``occupancy``, ``line_count``, ``camera``, ``discovery`` or ``event``."""


class OutgoingQueue:
    """Newest-wins state per topic (rate-limited) plus a bounded FIFO of events.

    ``on_drop(kind)`` is called (under no lock of the caller's) for every event dropped
    because the FIFO was full.
    """

    def __init__(
        self,
        max_events: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        on_drop: Callable[[str], None] | None = None,
    ) -> None:
        if max_events < 1:
            raise ValueError(f"max_events must be >= 1, got {max_events}")
        self._clock = clock
        self._on_drop = on_drop
        self._max_events = max_events
        self._lock = threading.Lock()
        self.ready = threading.Event()
        """Set whenever something was queued (the MQTT thread waits on it)."""
        self._state: OrderedDict[str, tuple[Message, float]] = OrderedDict()
        self._next_at: dict[str, float] = {}
        self._events: deque[Message] = deque()

    def put_state(
        self, message: Message, min_interval: float = 0.0, *, first: bool = False
    ) -> None:
        """Queue ``message`` as its topic's newest state (replacing an unsent older one)."""
        with self._lock:
            self._state[message.topic] = (message, min_interval)
            if first:
                self._state.move_to_end(message.topic, last=False)
        self.ready.set()

    def put_event(self, message: Message) -> bool:
        """Queue an event; ``False`` when the oldest waiting event was dropped for it."""
        with self._lock:
            dropped = None
            if len(self._events) >= self._max_events:
                dropped = self._events.popleft()
            self._events.append(message)
        self.ready.set()
        if dropped is not None and self._on_drop is not None:
            self._on_drop(dropped.kind)
        return dropped is None

    def put_back(self, messages: list[Message]) -> None:
        """Messages the client could not take now, in their order, ahead of what waits
        (a state that has a newer payload queued meanwhile is not put back)."""
        dropped = 0
        with self._lock:
            for message in reversed(messages):
                if message.kind == "event":
                    self._events.appendleft(message)
                elif message.topic not in self._state:
                    self._state[message.topic] = (message, 0.0)
                    self._state.move_to_end(message.topic, last=False)
            while len(self._events) > self._max_events:
                self._events.popleft()  # the oldest, as in put_event
                dropped += 1
        if self._on_drop is not None:
            for _ in range(dropped):
                self._on_drop("event")

    def take(self, limit: int = 1000) -> tuple[list[Message], float | None]:
        """Up to ``limit`` messages due now (states first, then events) and the seconds
        until a held-back state is due (``None``: nothing held back)."""
        now = self._clock()
        taken: list[Message] = []
        wait: float | None = None
        with self._lock:
            for topic in list(self._state):
                if len(taken) >= limit:
                    break
                message, interval = self._state[topic]
                due = self._next_at.get(topic, 0.0)
                if due > now:
                    wait = due - now if wait is None else min(wait, due - now)
                    continue
                del self._state[topic]
                if interval > 0:
                    self._next_at[topic] = now + interval
                taken.append(message)
            while self._events and len(taken) < limit:
                taken.append(self._events.popleft())
            if len(taken) < limit and not self._events:
                self.ready.clear()  # what is left is held back: the caller waits ``wait``
        return taken, wait

    def waiting(self) -> tuple[int, int]:
        """(states, events) waiting."""
        with self._lock:
            return len(self._state), len(self._events)
