"""What of an event each kind of reader may see: the one place events are redacted.

Every path that shows an event outside the service (``GET /v1/events``, the SSE
stream, later MQTT) goes through :func:`public_event_fields` or
:func:`event_for_scope`, so a new attribute is hidden until it is added to
:data:`PUBLIC_ATTRIBUTES` on purpose.

- **Public** (display and analyst keys, MQTT): event id, type, camera, target,
  timestamp and the attributes that describe the event, not the person:
  dwell time, crossing direction, ETA, shelf cell/outcome. No track id, no member
  token, no ``take_track_id``, nothing that follows one person across events.
- **Admin**: everything, including ``track_id`` and ``attributes.member`` (per-member
  data is admin scope only).

No FastAPI here: a plain function of an :class:`~storesense.zones.events.Event`.

Example:
    >>> from storesense.zones.events import Event, EventType
    >>> e = Event.create(EventType.ZONE_EXIT, "s", "cam1", "bakery", 7, 12.5,
    ...                  {"dwell_seconds": 4.2, "member": "m-42"})
    >>> public_event_fields(e)
    {'event_id': '...', 'type': 'zone_exit', 'camera_id': 'cam1', 'target': 'bakery', \
'timestamp': 12.5, 'attributes': {'dwell_seconds': 4.2}}
    >>> sorted(event_for_scope(e, admin=True)["attributes"])
    ['dwell_seconds', 'member']
"""

from __future__ import annotations

from typing import Any

from storesense.zones.events import Event

PUBLIC_ATTRIBUTES = frozenset(
    {
        # zone exits
        "dwell_seconds",
        "distance_m",
        # line crossings
        "direction",
        # approaching
        "eta_seconds",
        # shelf events
        "cell",
        "cells",
        "box",
        "started_at",
        "take_event_id",
        "outcome",
        "reach_seconds",
        "takes",
        "returns",
        "global_change",
    }
)
"""Attributes that describe an event, not a person. Anything else is admin only."""


def public_event_fields(event: Event) -> dict[str, Any]:
    """Exactly the fields a display or analyst key (or an MQTT subscriber) may see.

    >>> from storesense.zones.events import Event, EventType
    >>> e = Event.create(EventType.LINE_CROSS, "s", "cam1", "door", 3, 1.0,
    ...                  {"direction": "in", "member": "m-1"})
    >>> fields = public_event_fields(e)
    >>> "track_id" in fields, fields["attributes"]
    (False, {'direction': 'in'})
    """
    return {
        "event_id": event.event_id,
        "type": str(event.type),
        "camera_id": event.camera_id,
        "target": event.target,
        "timestamp": event.timestamp,
        "attributes": {k: v for k, v in event.attributes.items() if k in PUBLIC_ATTRIBUTES},
    }


def event_for_scope(event: Event, *, admin: bool) -> dict[str, Any]:
    """The event as a reader sees it: everything for admin, :func:`public_event_fields` else.

    >>> from storesense.zones.events import Event, EventType
    >>> e = Event.create(EventType.ZONE_ENTER, "s", "cam1", "door", 3, 1.0, {"member": "m-1"})
    >>> event_for_scope(e, admin=False)["attributes"], event_for_scope(e, admin=True)["track_id"]
    ({}, 3)
    """
    if not admin:
        return public_event_fields(event)
    return {
        "event_id": event.event_id,
        "type": str(event.type),
        "camera_id": event.camera_id,
        "target": event.target,
        "timestamp": event.timestamp,
        "attributes": dict(event.attributes),
        "track_id": event.track_id,
    }
