"""Tasmota devices through the firmware's native discovery (``tasmota/discovery/<MAC>/...``)."""

from device_adapters.tasmota.adapter import DEFAULT_PREFIX, TasmotaAdapter

__all__ = ["DEFAULT_PREFIX", "TasmotaAdapter"]
