"""Zigbee2MQTT adapter: entity commands encoded exactly (topic, JSON payload, QoS 1, never
retained), and refused for what a device does not expose as settable."""

from __future__ import annotations

import json
from typing import Any

import pytest

from assistant.messages import EntityCommand
from device_adapters.base import CommandNotSupportedError
from tests.zigbee2mqtt_support import DEVICES, Bridge, entity_id


@pytest.fixture(scope="module")
def bridge() -> Bridge:
    bridge = Bridge()
    bridge.discover()
    return bridge


def encoded(bridge: Bridge, entity: str, service: str, **params: Any) -> tuple[str, dict[str, Any]]:
    messages = bridge.adapter.encode(bridge.entity(entity), EntityCommand(entity, service, params))
    assert len(messages) == 1
    message = messages[0]
    assert (message.qos, message.retain) == (1, False)
    return message.topic, json.loads(message.payload)


HUE = "light.z2m_0017880104dfc05e_light"
TRADFRI = entity_id("light", "bulb", "light")
L1_LIGHT = entity_id("light", "zigfred_plus", "light_l1")
HALL_L2 = entity_id("switch", "hall switch", "switch_l2")
COVER_L6 = entity_id("cover", "zigfred_plus", "cover_l6")
BLIND = entity_id("cover", "bedroom blind", "cover")
LOCK = entity_id("lock", "front door", "lock")
TRV = entity_id("climate", "radiator/living room", "climate")
FAN = entity_id("fan", "ceiling fan", "fan")


@pytest.mark.parametrize(("entity", "service", "params", "topic", "payload"), [
    (HUE, "turn_on", {}, "zigbee2mqtt/hue_back_tv/set", {"state": "ON"}),
    (HUE, "turn_off", {}, "zigbee2mqtt/hue_back_tv/set", {"state": "OFF"}),
    (HUE, "toggle", {}, "zigbee2mqtt/hue_back_tv/set", {"state": "TOGGLE"}),
    (HUE, "turn_on", {"brightness": 128}, "zigbee2mqtt/hue_back_tv/set",
     {"state": "ON", "brightness": 127}),  # 128/255 of 254
    (HUE, "turn_on", {"brightness": 1}, "zigbee2mqtt/hue_back_tv/set",
     {"state": "ON", "brightness": 1}),  # never rounded down to 0 (off)
    (HUE, "turn_on", {"brightness": 0}, "zigbee2mqtt/hue_back_tv/set", {"state": "OFF"}),
    (HUE, "turn_on", {"rgb_color": [255, 0, 0]}, "zigbee2mqtt/hue_back_tv/set",
     {"state": "ON", "color": {"r": 255, "g": 0, "b": 0}}),
    (HUE, "turn_on", {"hs_color": [240, 100]}, "zigbee2mqtt/hue_back_tv/set",
     {"state": "ON", "color": {"hue": 240, "saturation": 100}}),
    (HUE, "turn_on", {"xy_color": [0.17, 0.05]}, "zigbee2mqtt/hue_back_tv/set",
     {"state": "ON", "color": {"x": 0.17, "y": 0.05}}),
    (TRADFRI, "turn_on", {"color_temp_kelvin": 2700}, "zigbee2mqtt/bulb/set",
     {"state": "ON", "color_temp": 370}),
    (TRADFRI, "turn_on", {"color_temp_kelvin": 6500}, "zigbee2mqtt/bulb/set",
     {"state": "ON", "color_temp": 250}),  # clamped to the bulb's 250..454 mireds
    (L1_LIGHT, "turn_on", {"brightness": 255, "rgb_color": [0, 0, 255]},
     "zigbee2mqtt/zigfred_plus/set",
     {"state_l1": "ON", "brightness_l1": 254, "color_l1": {"r": 0, "g": 0, "b": 255}}),
    (HALL_L2, "turn_on", {}, "zigbee2mqtt/hall switch/set", {"state_l2": "ON"}),
    (HALL_L2, "turn_off", {}, "zigbee2mqtt/hall switch/set", {"state_l2": "OFF"}),
    (COVER_L6, "open_cover", {}, "zigbee2mqtt/zigfred_plus/set", {"state_l6": "OPEN"}),
    (COVER_L6, "close_cover", {}, "zigbee2mqtt/zigfred_plus/set", {"state_l6": "CLOSE"}),
    (COVER_L6, "stop_cover", {}, "zigbee2mqtt/zigfred_plus/set", {"state_l6": "STOP"}),
    (COVER_L6, "set_cover_position", {"position": 30}, "zigbee2mqtt/zigfred_plus/set",
     {"position_l6": 30}),
    (COVER_L6, "set_cover_tilt_position", {"tilt_position": 55},
     "zigbee2mqtt/zigfred_plus/set", {"tilt_l6": 55}),
    (BLIND, "close_cover", {}, "zigbee2mqtt/bedroom blind/set", {"state": "CLOSE"}),
    (BLIND, "set_cover_position", {"position": 100}, "zigbee2mqtt/bedroom blind/set",
     {"position": 100}),
    (LOCK, "lock", {}, "zigbee2mqtt/front door/set", {"state": "LOCK"}),
    (LOCK, "unlock", {}, "zigbee2mqtt/front door/set", {"state": "UNLOCK"}),
    (TRV, "set_temperature", {"temperature": 22.5}, "zigbee2mqtt/radiator/living room/set",
     {"current_heating_setpoint": 22.5}),
    (TRV, "set_temperature", {"temperature": 18, "hvac_mode": "heat"},
     "zigbee2mqtt/radiator/living room/set", {"system_mode": "heat",
                                              "current_heating_setpoint": 18}),
    (TRV, "set_hvac_mode", {"hvac_mode": "heat"}, "zigbee2mqtt/radiator/living room/set",
     {"system_mode": "heat"}),
    (TRV, "set_preset_mode", {"preset_mode": "holiday"}, "zigbee2mqtt/radiator/living room/set",
     {"preset": "holiday"}),
    (FAN, "turn_on", {}, "zigbee2mqtt/ceiling fan/set", {"fan_state": "ON"}),
    (FAN, "turn_on", {"percentage": 30}, "zigbee2mqtt/ceiling fan/set",
     {"fan_state": "ON", "fan_mode": "low"}),
    (FAN, "turn_off", {}, "zigbee2mqtt/ceiling fan/set", {"fan_state": "OFF"}),
    (FAN, "set_percentage", {"percentage": 50}, "zigbee2mqtt/ceiling fan/set",
     {"fan_mode": "medium"}),
    (FAN, "set_percentage", {"percentage": 100}, "zigbee2mqtt/ceiling fan/set",
     {"fan_mode": "high"}),
    (FAN, "set_percentage", {"percentage": 0}, "zigbee2mqtt/ceiling fan/set",
     {"fan_state": "OFF"}),
    (FAN, "set_preset_mode", {"preset_mode": "smart"}, "zigbee2mqtt/ceiling fan/set",
     {"fan_mode": "smart"}),
    ("light.z2m_group_1_light", "turn_on", {"brightness": 255},
     "zigbee2mqtt/hue lights/set", {"state": "ON", "brightness": 254}),
    ("switch.z2m_group_2_switch", "turn_off", {}, "zigbee2mqtt/basement/switches/set",
     {"state": "OFF"}),
])
def test_commands_are_one_json_object_on_the_set_topic(
        bridge: Bridge, entity: str, service: str, params: dict[str, Any], topic: str,
        payload: dict[str, Any]) -> None:
    assert encoded(bridge, entity, service, **params) == (topic, payload)


@pytest.mark.parametrize(("entity", "service", "params"), [
    (TRADFRI, "turn_on", {"rgb_color": [255, 0, 0]}),  # white spectrum: no colour
    (entity_id("light", "zigfred_plus", "light_l2"), "turn_on", {"color_temp_kelvin": 3000}),
    (HUE, "turn_on", {"brightness": 300}),
    (HUE, "turn_on", {"brightness": "full"}),
    (HUE, "turn_on", {"rgb_color": [255, 0]}),
    (HUE, "turn_on", {"hs_color": [400, 50]}),
    (HUE, "set_cover_position", {"position": 3}),
    (BLIND, "set_cover_tilt_position", {"tilt_position": 10}),  # no tilt
    (BLIND, "set_cover_position", {"position": 101}),
    (BLIND, "set_cover_position", {}),
    (LOCK, "turn_on", {}),  # a lock is never switched on or off
    (LOCK, "open", {}),
    (TRV, "set_temperature", {"temperature": 40}),  # above the valve's 35
    (TRV, "set_temperature", {}),
    (TRV, "set_hvac_mode", {"hvac_mode": "cool"}),  # the valve only heats
    (TRV, "turn_off", {}),  # no off mode
    (TRV, "set_preset_mode", {"preset_mode": "party"}),
    (FAN, "set_preset_mode", {"preset_mode": "low"}),  # a speed, not a preset
    (FAN, "set_percentage", {"percentage": -5}),
    (entity_id("sensor", "livingroom/temp_humidity", "temperature"), "turn_on", {}),
])
def test_what_the_device_cannot_do_is_refused(
        bridge: Bridge, entity: str, service: str, params: dict[str, Any]) -> None:
    with pytest.raises(CommandNotSupportedError):
        bridge.adapter.encode(bridge.entity(entity), EntityCommand(entity, service, params))


def test_a_feature_without_the_settable_bit_is_not_commandable() -> None:
    read_only = json.loads(json.dumps(DEVICES).replace('"access": 7', '"access": 5'))
    bridge = Bridge()
    bridge.discover(read_only)
    hue = bridge.entity(HUE)
    assert hue.capabilities["services"] == []
    with pytest.raises(CommandNotSupportedError):
        bridge.adapter.encode(hue, EntityCommand(HUE, "turn_on"))


def test_a_toggle_without_a_toggle_value_follows_the_state() -> None:
    devices = json.loads(json.dumps(DEVICES).replace('"value_toggle": "TOGGLE"', '"x": 0'))
    bridge = Bridge()
    bridge.discover(devices)
    bridge.report("hall switch")  # l1 on, l2 off
    assert encoded(bridge, entity_id("switch", "hall switch", "switch_l1"), "toggle") == (
        "zigbee2mqtt/hall switch/set", {"state_l1": "OFF"})
    assert encoded(bridge, HALL_L2, "toggle") == ("zigbee2mqtt/hall switch/set",
                                                  {"state_l2": "ON"})


def test_devices_report_what_they_do_unless_nothing_of_theirs_is_published(
        bridge: Bridge) -> None:
    assert bridge.adapter.reports_state(bridge.entity(HUE))
    assert bridge.adapter.reports_state(bridge.entity(HALL_L2))  # access 3: published
    set_only = json.loads(json.dumps(DEVICES).replace('"access": 3', '"access": 2'))
    quiet = Bridge()
    quiet.discover(set_only)
    assert not quiet.adapter.reports_state(quiet.entity(HALL_L2))


def test_another_base_topic_is_used_for_every_command() -> None:
    bridge = Bridge(base="home/zigbee")
    bridge.discover()
    assert encoded(bridge, LOCK, "lock")[0] == "home/zigbee/front door/set"
    with pytest.raises(ValueError):
        Bridge(base="home/#")


def _trv_with_modes(modes: list[str]) -> Bridge:
    devices = json.loads(json.dumps(DEVICES).replace(
        '"description": "Mode of this device", "values": ["heat"]',
        f'"description": "Mode of this device", "values": {json.dumps(modes)}'))
    bridge = Bridge()
    bridge.discover(devices)
    return bridge


def test_a_thermostat_turns_back_on_in_the_mode_it_last_had() -> None:
    bridge = _trv_with_modes(["off", "auto", "heat", "cool"])
    topic = "zigbee2mqtt/radiator/living room/set"
    assert encoded(bridge, TRV, "turn_on") == (topic, {"system_mode": "heat"})  # never heard
    bridge.report("radiator/living room", {"system_mode": "cool"})
    bridge.report("radiator/living room", {"system_mode": "off"})
    assert bridge.entity(TRV).state == "off"
    assert encoded(bridge, TRV, "turn_on") == (topic, {"system_mode": "cool"})
    assert encoded(bridge, TRV, "turn_off") == (topic, {"system_mode": "off"})


def test_a_thermostat_that_only_knows_off_cannot_turn_on() -> None:
    bridge = _trv_with_modes(["off"])
    with pytest.raises(CommandNotSupportedError, match="no mode but off"):
        encoded(bridge, TRV, "turn_on")
