"""Shared by the Zigbee2MQTT tests: the recorded payloads and an adapter on a fake broker.

The broker is faked at the adapter's boundary (AdapterContext.subscribe/publish) and matches
topic filters as MQTT does (tests/adapter_support.py); the payloads are the documented and
recorded ones under data/zigbee2mqtt/ (see its README)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from assistant.registry import DeviceRegistry, Entity
from device_adapters.base import AdapterContext
from device_adapters.zigbee2mqtt import Zigbee2MqttAdapter
from tests.adapter_support import FakeBroker

DATA = Path(__file__).parent / "data" / "zigbee2mqtt"
BASE = "zigbee2mqtt"


def recorded(name: str) -> Any:
    return json.loads((DATA / f"{name}.json").read_text(encoding="utf-8"))


DEVICES: list[dict[str, Any]] = recorded("bridge_devices")
GROUPS: list[dict[str, Any]] = recorded("bridge_groups")
STATES: dict[str, dict[str, Any]] = {
    name: state for part in recorded("states").values() for name, state in part.items()}
AVAILABILITY: dict[str, Any] = recorded("availability_captured")


def ieee_of(friendly_name: str) -> str:
    return next(d["ieee_address"] for d in DEVICES if d["friendly_name"] == friendly_name)


def entity_id(domain: str, friendly_name: str, key: str) -> str:
    return f"{domain}.z2m_{ieee_of(friendly_name)[2:]}_{key}"


class Bridge:
    """An adapter started on a fake broker, fed the recorded bridge payloads."""

    def __init__(self, registry: DeviceRegistry | None = None, base: str = BASE) -> None:
        self.registry = registry if registry is not None else DeviceRegistry(None)
        self.broker = FakeBroker()
        self.base = base
        self.adapter = Zigbee2MqttAdapter(base)
        self.stop = self.adapter.start(
            AdapterContext(self.registry, self.broker.subscribe, self.broker.publish))

    def send(self, subtopic: str, payload: Any) -> None:
        self.broker.deliver(f"{self.base}/{subtopic}", payload)

    def discover(self, devices: list[Any] | None = None, groups: list[Any] | None = None) -> None:
        self.send("bridge/devices", DEVICES if devices is None else devices)
        self.send("bridge/groups", GROUPS if groups is None else groups)

    def report(self, friendly_name: str, state: dict[str, Any] | None = None) -> None:
        self.send(friendly_name, STATES[friendly_name] if state is None else state)

    def entity(self, entity_id: str) -> Entity:
        entity = self.registry.get_any(entity_id)
        assert entity is not None, f"{entity_id} is missing"
        return entity
