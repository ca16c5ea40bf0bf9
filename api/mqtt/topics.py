"""Topic names and payloads: what StoreSense publishes to MQTT (keep these stable).

===========================================  ======  =========================================
topic                                        retain  payload
===========================================  ======  =========================================
``{prefix}/{store}/status``                  yes     ``online`` / ``offline`` (last will)
``{prefix}/{store}/zones/{zone}/occupancy``  yes     ``{"count", "approaching", "updated_at"}``
``{prefix}/{store}/lines/{line}/count``      yes     ``{"in", "out", "date", "updated_at"}``
``{prefix}/{store}/events/{type}``           no      :func:`mqtt_event_payload`
``{prefix}/{store}/cameras/{camera}/state``  yes     ``{"state", "restarts", "updated_at"}``
===========================================  ======  =========================================

Ids become one topic level each: ``/``, ``+``, ``#``, ``%`` and control characters in an
id are percent-encoded (``aisle/3`` → ``aisle%2F3``).

Example:
    >>> topics = Topics("storesense", "shop-12")
    >>> topics.occupancy("front door")
    'storesense/shop-12/zones/front door/occupancy'
    >>> topics.event("line_cross"), topics.line_count("a/b")
    ('storesense/shop-12/events/line_cross', 'storesense/shop-12/lines/a%2Fb/count')
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from storesense.api.privacy.redaction import public_event_fields
from storesense.zones.events import Event

_UNSAFE = re.compile(r"[/+#%\x00-\x1f\x7f]")
_OBJECT_ID_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")
_ENTITY_UNSAFE = re.compile(r"[^a-z0-9_]")


def topic_level(name: str) -> str:
    """``name`` as one topic level (percent-encodes ``/ + # %`` and control characters).

    >>> topic_level("till/2+"), topic_level("50%")
    ('till%2F2%2B', '50%25')
    """
    return _UNSAFE.sub(lambda match: f"%{ord(match.group()):02X}", name)


def object_id(*names: str) -> str:
    """An id Home Assistant accepts (``[A-Za-z0-9_-]``), readable and unique per input.

    Characters outside the set become ``_XX`` (their hex code), so distinct ids stay distinct.

    >>> object_id("storesense", "shop 12", "door")
    'storesense_shop_2012_door'
    """
    return "_".join(
        _OBJECT_ID_UNSAFE.sub(lambda match: f"_{ord(match.group()):02x}", name) for name in names
    )


class Topics:
    """Every topic of one store under ``prefix``; ``node`` names this process's status topic
    when several processes share the store's cameras (``{prefix}/{store}/status/{node}``)."""

    def __init__(self, prefix: str, store_id: str, node: str | None = None) -> None:
        self.base = f"{prefix}/{topic_level(store_id)}"
        self.status = f"{self.base}/status" + (f"/{topic_level(node)}" if node else "")

    def occupancy(self, zone_id: str) -> str:
        return f"{self.base}/zones/{topic_level(zone_id)}/occupancy"

    def line_count(self, line_id: str) -> str:
        return f"{self.base}/lines/{topic_level(line_id)}/count"

    def event(self, event_type: str) -> str:
        return f"{self.base}/events/{topic_level(event_type)}"

    def camera_state(self, camera_id: str) -> str:
        return f"{self.base}/cameras/{topic_level(camera_id)}/state"


def dumps(payload: Mapping[str, Any]) -> bytes:
    """Compact JSON, as every JSON payload is sent."""
    return json.dumps(payload, separators=(",", ":"), allow_nan=False).encode()


def mqtt_event_payload(event: Event) -> dict[str, Any]:
    """What an event shows on MQTT: exactly what a display key sees over SSE.

    One definition for both: :func:`storesense.api.privacy.redaction.public_event_fields`
    (never the track id, a member token or any attribute outside its allowlist).

    >>> from storesense.zones.events import EventType
    >>> event = Event.create(EventType.ZONE_EXIT, "s", "cam1", "till", 7, 1700000000.0,
    ...                      {"dwell_seconds": 12.5, "member": "m_8f2"})
    >>> sorted(mqtt_event_payload(event))
    ['attributes', 'camera_id', 'event_id', 'target', 'timestamp', 'type']
    >>> mqtt_event_payload(event)["attributes"]
    {'dwell_seconds': 12.5}
    """
    return public_event_fields(event)


def occupancy_payload(count: int, approaching: int, updated_at: float) -> dict[str, Any]:
    return {"count": int(count), "approaching": int(approaching), "updated_at": updated_at}


def discovery_device(prefix: str, store_id: str) -> dict[str, Any]:
    """The one Home Assistant device that groups a store's sensors."""
    return {
        "identifiers": [object_id(prefix, store_id)],
        "name": f"StoreSense {store_id}",
        "manufacturer": "StoreSense",
        "model": "StoreSense store",
    }


def discovery_configs(
    topics: Topics,
    prefix: str,
    discovery_prefix: str,
    store_id: str,
    zone_ids: list[str],
    line_ids: list[str],
) -> dict[str, dict[str, Any]]:
    """Home Assistant MQTT discovery: ``{config topic: config}``, one sensor per zone
    (occupancy, with ``approaching`` as an attribute) and two per line (in / out today).

    >>> topics = Topics("storesense", "shop")
    >>> configs = discovery_configs(topics, "storesense", "homeassistant", "shop", ["till"], [])
    >>> [(t, c["state_topic"], c["value_template"]) for t, c in configs.items()]
    [('homeassistant/sensor/storesense_shop/zone_till/config', 'storesense/shop/zones/till/occupancy', '{{ value_json.count }}')]
    >>> configs["homeassistant/sensor/storesense_shop/zone_till/config"]["default_entity_id"]
    'sensor.storesense_shop_zone_till'
    """  # noqa: E501
    node = object_id(prefix, store_id)
    device = discovery_device(prefix, store_id)
    configs: dict[str, dict[str, Any]] = {}

    def sensor(key: str, name: str, state_topic: str, value: str, state_class: str) -> None:
        configs[f"{discovery_prefix}/sensor/{node}/{key}/config"] = {
            "name": name,
            "unique_id": f"{node}_{key}",
            "default_entity_id": "sensor." + _ENTITY_UNSAFE.sub("_", f"{node}_{key}".lower()),
            "state_topic": state_topic,
            "value_template": value,
            "json_attributes_topic": state_topic,
            "unit_of_measurement": "people",
            "state_class": state_class,
            "icon": "mdi:account-group" if key.startswith("zone") else "mdi:door",
            "availability_topic": topics.status,
            "device": device,
        }

    for zone_id in zone_ids:
        sensor(
            object_id("zone", zone_id),
            f"{zone_id} occupancy",
            topics.occupancy(zone_id),
            "{{ value_json.count }}",
            "measurement",
        )
    for line_id in line_ids:
        for direction in ("in", "out"):
            sensor(
                object_id("line", line_id, direction),
                f"{line_id} {direction} today",
                topics.line_count(line_id),
                f"{{{{ value_json['{direction}'] }}}}",
                "total_increasing",
            )
    return configs
