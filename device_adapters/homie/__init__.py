"""Homie convention devices: v5 with commands, v4 read-only (https://homieiot.github.io)."""

from device_adapters.homie.adapter import HomieAdapter

__all__ = ["HomieAdapter"]
