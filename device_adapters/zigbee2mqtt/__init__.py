"""Zigbee2MQTT's native MQTT API: ``bridge/devices`` exposes as entities (see ``adapter``)."""

from device_adapters.zigbee2mqtt.adapter import DEFAULT_BASE_TOPIC, SOURCE, Zigbee2MqttAdapter

__all__ = ["DEFAULT_BASE_TOPIC", "SOURCE", "Zigbee2MqttAdapter"]
