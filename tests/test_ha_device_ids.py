"""Who the physical device is: Entity.device_ids from a discovery config's device block."""

from __future__ import annotations

from typing import Any

import pytest

from device_adapters.ha_discovery.vocabulary import device_ids
from tests.ha_discovery_support import make_hub

IEEE = "zigbee:0x00158d0001a2b3c4"
MAC = "mac:a4cf12b3c4d5"


def test_zigbee2mqtt_devices_are_known_by_their_ieee_address() -> None:
    hub = make_hub()
    hub.discover("sensor_z2m_temperature")  # identifiers ["zigbee2mqtt_0x00158d0001a2b3c4"]
    entity = hub.entity("sensor.bedroom_climate_sensor_temperature")
    assert entity.device_ids == (IEEE,)  # not the bridge it is connected through


def test_esphome_devices_are_known_by_their_mac_address() -> None:
    hub = make_hub()
    hub.discover("sensor_esphome_wifi_signal")  # cns [["mac", "a4cf12b3c4d5"]]
    assert hub.entity("sensor.wifi_signal").device_ids == (MAC,)


def test_devices_without_a_protocol_identity_have_none() -> None:
    hub = make_hub()
    hub.discover("lock_front_door")  # ids ["front-door-lock"]
    assert hub.entity("lock.front_door").device_ids == ()


def test_every_component_of_a_device_config_has_the_device_ids() -> None:
    hub = make_hub()
    hub.broker.deliver("homeassistant/device/plug1/config", {
        "dev": {"ids": ["plug1"], "name": "Plug", "cns": [["mac", "AA:BB:CC:DD:EE:01"]]},
        "o": {"name": "test"},
        "cmps": {
            "relay": {"p": "switch", "cmd_t": "plug1/set", "stat_t": "plug1/state"},
            "power": {"p": "sensor", "stat_t": "plug1/power", "unit_of_meas": "W"},
        },
    })
    assert hub.entity("switch.plug1_relay").device_ids == ("mac:aabbccddee01",)
    assert hub.entity("sensor.plug1_power").device_ids == ("mac:aabbccddee01",)


@pytest.mark.parametrize(
    ("device", "expected"),
    [
        ({"connections": [["mac", "A4:CF:12:B3:C4:D5"]]}, (MAC,)),
        ({"connections": [["mac", "a4-cf-12-b3-c4-d5"]]}, (MAC,)),
        ({"connections": [["mac", "a4cf.12b3.c4d5"]]}, (MAC,)),
        ({"connections": [["mac", "a4cf12b3c4d5"]]}, (MAC,)),
        ({"connections": [["zigbee", "0x00158D0001A2B3C4"]]}, (IEEE,)),
        ({"connections": [["zigbee", "00:15:8d:00:01:a2:b3:c4"]]}, (IEEE,)),  # ZHA's form
        ({"identifiers": "zigbee2mqtt_0x00158d0001a2b3c4"}, (IEEE,)),
        ({"identifiers": ["x", "zigbee2mqtt_0x00158d0001a2b3c4"]}, (IEEE,)),
        ({"identifiers": ["zigbee2mqtt_0x00158d0001a2b3c4"],
          "connections": [["zigbee", "0x00158d0001a2b3c4"], ["mac", "a4cf12b3c4d5"]]},
         (MAC, IEEE)),
    ],
)
def test_device_ids_in_their_normal_form(device: dict[str, Any], expected: tuple[str, ...]) -> None:
    assert sorted(device_ids(device)) == sorted(expected)


@pytest.mark.parametrize(
    "device",
    [
        {"connections": [["mac", "A4:CF:12:B3:C4"]]},  # too short
        {"connections": [["mac", "a4:cf-12:b3:c4:d5"]]},  # mixed separators
        {"connections": [["mac", "g4cf12b3c4d5"]]},  # not hex
        {"connections": [["mac", "00:15:8d:00:01:a2:b3:c4"]]},  # an EUI-64 is no MAC-48
        {"connections": [["mac", "a4cf12b3c4d5\n"]]},
        {"connections": [["zigbee", "0x00158d0001a2"]]},  # too short
        {"connections": [["zigbee", "a4cf12b3c4d5"]]},
        {"connections": [["bluetooth", "a4:cf:12:b3:c4:d5"]]},  # another kind of connection
        {"connections": [["mac"]]},
        {"connections": ["mac", "a4cf12b3c4d5"]},  # not a list of pairs
        {"connections": [["mac", 0xA4CF12B3C4D5]]},
        {"connections": "mac:a4cf12b3c4d5"},
        {"identifiers": ["zigbee2mqtt_bridge_0x00124b0024c2f4a0"]},  # the coordinator
        {"identifiers": ["zigbee2mqtt_1"]},  # a Zigbee2MQTT group
        {"identifiers": ["zigbee2mqtt_0x00158d0001a2b3c4_light"]},
        {"identifiers": ["0x00158d0001a2b3c4"]},  # not Zigbee2MQTT's form
        {"identifiers": [["zigbee2mqtt_0x00158d0001a2b3c4"]]},
        {"identifiers": 7},
        {},
    ],
)
def test_other_forms_are_not_device_ids(device: dict[str, Any]) -> None:
    assert device_ids(device) == ()


def test_a_hostile_device_block_is_read_only_so_far() -> None:
    connections = [["mac", f"aabbccdd{n:04x}"] for n in range(10_000)]
    ids = device_ids({"connections": connections, "identifiers": ["x"] * 10_000})
    assert 0 < len(ids) <= 20
