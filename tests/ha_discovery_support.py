"""What the Home Assistant discovery tests share: the recorded payloads
(tests/data/ha_discovery, Home Assistant's wire format) and a hub that runs the adapter on a
fake broker at its boundary (AdapterContext.subscribe/publish)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from assistant.device_data import DeviceLimits
from assistant.messages import EntityCommand
from assistant.registry import DeviceRegistry, Entity
from device_adapters.base import AdapterContext
from device_adapters.ha_discovery.adapter import HomeAssistantDiscoveryAdapter
from tests.adapter_support import FakeBroker

PAYLOADS = Path(__file__).parent / "data" / "ha_discovery"

# Where each recorded payload is published.
CONFIG_TOPICS = {
    "alarm_control_panel_house": "homeassistant/alarm_control_panel/house/config",
    "binary_sensor_z2m_contact": "homeassistant/binary_sensor/0x00158d0004c5d6e7/contact/config",
    "button_esphome_restart": "homeassistant/button/deskstrip/restart/config",
    "climate_thermostat": "homeassistant/climate/thermostat_living/config",
    "cover_shelly_blind": "homeassistant/cover/shelly25-office-blind/config",
    "device_hallway_multisensor": "homeassistant/device/ea334450945afc/config",
    "device_hallway_multisensor_update": "homeassistant/device/ea334450945afc/config",
    "fan_ceiling": "homeassistant/fan/bedroom_ceiling_fan/config",
    "light_esphome_json": "homeassistant/light/deskstrip/desk_strip/config",
    "light_tasmota_abbreviated": "homeassistant/light/A1B2C3_LI_1/config",
    "light_z2m_json": "homeassistant/light/0x0017880104e45517/light/config",
    "lock_front_door": "homeassistant/lock/front_door/config",
    "media_player_kitchen_speaker": "homeassistant/media_player/kitchenspeaker/config",
    "media_player_office_radio": "homeassistant/media_player/office_radio/config",
    "scene_movie_night": "homeassistant/scene/movie_night/config",
    "sensor_esphome_wifi_signal": "homeassistant/sensor/deskstrip/wifi_signal/config",
    "sensor_z2m_temperature": "homeassistant/sensor/0x00158d0001a2b3c4/temperature/config",
    "switch_garden_pump": "homeassistant/switch/garden_pump/config",
    "vacuum_valetudo": "homeassistant/vacuum/valetudo_robo/config",
    "valve_gas_shutoff": "homeassistant/valve/gas_shutoff/config",
    "valve_irrigation": "homeassistant/valve/irrigation_valve/config",
}


def recorded(name: str) -> dict[str, Any]:
    return json.loads((PAYLOADS / f"{name}.json").read_text(encoding="utf-8"))


@dataclass
class Hub:
    registry: DeviceRegistry
    broker: FakeBroker
    adapter: HomeAssistantDiscoveryAdapter
    stop: Callable[[], None]

    def discover(self, recording: str, /, **overrides: Any) -> None:
        """Publish a recorded config, optionally with options replaced (None deletes)."""
        config = {**recorded(recording), **overrides}
        self.broker.deliver(
            CONFIG_TOPICS[recording], {k: v for k, v in config.items() if v is not None}
        )

    def entity(self, entity_id: str) -> Entity:
        entity = self.registry.get(entity_id)
        assert entity is not None, f"{entity_id} is not in the registry"
        return entity

    def encode(self, entity_id: str, service: str, **params: Any) -> list[tuple[str, str]]:
        command = EntityCommand(entity_id, service, params)
        messages = self.adapter.encode(self.entity(entity_id), command)
        assert all(message.qos == 1 for message in messages)
        return [(message.topic, message.payload.decode()) for message in messages]


def make_hub(limits: DeviceLimits | None = None, db: Path | None = None) -> Hub:
    registry = DeviceRegistry(db, limits)
    broker = FakeBroker()
    adapter = HomeAssistantDiscoveryAdapter()
    stop = adapter.start(AdapterContext(registry, broker.subscribe, broker.publish))
    return Hub(registry, broker, adapter, stop)


@pytest.fixture
def hub() -> Iterator[Hub]:
    started = make_hub()
    yield started
    started.stop()


