"""Shelly Gen2+ devices over MQTT: JSON-RPC requests, notifications and availability."""

from device_adapters.shelly.adapter import ShellyAdapter

__all__ = ["ShellyAdapter"]
