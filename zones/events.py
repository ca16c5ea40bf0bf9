"""Events emitted by the zone engine, one schema for every kind."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any


class EventType(StrEnum):
    ZONE_ENTER = "zone_enter"
    ZONE_EXIT = "zone_exit"
    LINE_CROSS = "line_cross"
    APPROACHING = "approaching"
    ITEM_TAKEN = "item_taken"
    ITEM_RETURNED = "item_returned"
    SHELF_INTERACTION = "shelf_interaction"
    VISIT_END = "visit_end"


@dataclass(frozen=True)
class Event:
    """One thing that happened, on the camera's frame clock.

    ``timestamp`` is Unix seconds (float, UTC). ``track_id`` is the camera-local
    anonymous track id. ``target`` is the zone id or line id. ``attributes``
    holds kind-specific fields: ``dwell_seconds`` for exits, ``direction``
    (``in``/``out``) for crossings, ``eta_seconds`` for approaching, shelf
    ``cell`` for shelf events. ``event_id`` is deterministic, so replaying the
    same video yields the same ids and a store can de-duplicate.

    Example:
        >>> e = Event.create(EventType.LINE_CROSS, "s1", "cam1", "door", 4, 12.5,
        ...                  {"direction": "in"})
        >>> e.event_id == Event.create(EventType.LINE_CROSS, "s1", "cam1", "door", 4, 12.5,
        ...                            {"direction": "in"}).event_id
        True
    """

    event_id: str
    type: EventType
    store_id: str
    camera_id: str
    target: str
    track_id: int
    timestamp: float
    attributes: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def create(
        cls,
        type: EventType,
        store_id: str,
        camera_id: str,
        target: str,
        track_id: int,
        timestamp: float,
        attributes: dict[str, Any] | None = None,
        run_id: str = "",
        position: float | None = None,
    ) -> Event:
        """Build an event whose id is a hash of what identifies it (never anything random).

        ``run_id`` is a deterministic identity scope: camera workers pass the camera
        and a digest of its layout (``storesense.api.runtime.event_identity_scope``),
        so a restart, or a second worker on the same camera, that emits the same
        event at the same source position reproduces its id and the store keeps it
        once. ``position`` is that source position when it is not ``timestamp``
        (default): e.g. the frame clock of a file, whose Unix time depends on when
        the run started.

        >>> a = Event.create(EventType.ZONE_ENTER, "s1", "cam1", "door", 3, 1e9 + 2.0,
        ...                  run_id="cam1@ab", position=2.0)
        >>> b = Event.create(EventType.ZONE_ENTER, "s1", "cam1", "door", 3, 2e9 + 2.0,
        ...                  run_id="cam1@ab", position=2.0)
        >>> a.event_id == b.event_id, a.timestamp == b.timestamp
        (True, False)
        """
        attrs = attributes or {}
        where = timestamp if position is None else position
        key = f"{run_id}|{store_id}|{camera_id}|{type}|{target}|{track_id}|{where:.3f}"
        if type == EventType.LINE_CROSS:
            key += f"|{attrs.get('direction', '')}"
        if type in (EventType.ITEM_TAKEN, EventType.ITEM_RETURNED):
            key += f"|{attrs.get('cell', '')}"
        event_id = hashlib.blake2b(key.encode(), digest_size=12).hexdigest()
        return cls(
            event_id,
            EventType(type),
            store_id,
            camera_id,
            target,
            int(track_id),
            float(timestamp),
            attrs,
        )

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["type"] = str(self.type)
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), separators=(",", ":"), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Event:
        return cls(
            event_id=str(data["event_id"]),
            type=EventType(data["type"]),
            store_id=str(data["store_id"]),
            camera_id=str(data["camera_id"]),
            target=str(data["target"]),
            track_id=int(data["track_id"]),
            timestamp=float(data["timestamp"]),
            attributes=dict(data.get("attributes") or {}),
        )
