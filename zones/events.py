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
    ) -> Event:
        """Build an event whose id is a hash of what identifies it.

        ``run_id`` distinguishes separate runs of the same camera whose track
        ids restart (a worker restart); a replay of the same run keeps it.
        """
        attrs = attributes or {}
        key = f"{run_id}|{store_id}|{camera_id}|{type}|{target}|{track_id}|{timestamp:.3f}"
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
