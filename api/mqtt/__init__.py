"""MQTT output of ``storesense serve``: live occupancy, line counts, events and camera
states to a broker, with Home Assistant discovery (``--mqtt URL --mqtt-discovery``).

Topics and payloads: :mod:`storesense.api.mqtt.topics`; the connection:
:class:`~storesense.api.mqtt.config.MqttOptions`; the publisher that never slows a camera:
:class:`~storesense.api.mqtt.publisher.MqttPublisher` (imported on its own: it loads
paho-mqtt).
"""

from storesense.api.mqtt.config import MqttOptions
from storesense.api.mqtt.topics import Topics, mqtt_event_payload

__all__ = ["MqttOptions", "Topics", "mqtt_event_payload"]
