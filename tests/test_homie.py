"""Homie adapter: entities from v5 descriptions and v4 attributes, values checked against
their datatype and format, device states as availability, commands to ``…/set``.

The broker is faked at the adapter's boundary (AdapterContext.subscribe/publish); the
device messages are recorded from the convention's own examples under data/homie/.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from paho.mqtt.client import topic_matches_sub

from assistant.messages import EntityCommand
from assistant.registry import DeviceRegistry, Entity
from device_adapters.base import AdapterContext, CommandNotSupportedError
from device_adapters.homie import HomieAdapter
from device_adapters.homie.values import Color, parse_value, rgb_to_xy
from tests.adapter_support import FakeBroker, matches

RECORDINGS = Path(__file__).parent / "data" / "homie"
LIGHT, TEMPERATURE = "light.kitchen_light_light", "sensor.kitchen_light_sensor_temperature"


def recording(name: str) -> list[tuple[str, bytes]]:
    """A recording's messages as (topic, payload bytes); object payloads become JSON."""
    messages = json.loads((RECORDINGS / f"{name}.json").read_text(encoding="utf-8"))
    return [(m["topic"], (json.dumps(m["payload"]) if isinstance(m["payload"], dict)
                          else m["payload"]).encode()) for m in messages]


class FakeContext(FakeBroker):
    """The in-process broker with retained messages (a new subscription gets them, as from
    a broker), and the registry the adapter fills."""

    def __init__(self, registry: DeviceRegistry | None = None) -> None:
        super().__init__(retained=True)
        self.registry = registry if registry is not None else DeviceRegistry(None)


@dataclass
class Hub:
    context: FakeContext
    adapter: HomieAdapter

    def replay(self, name: str, changes: dict[str, str] | None = None) -> None:
        """Deliver a recording, with the payloads of the topics in ``changes`` replaced."""
        for topic, payload in recording(name):
            self.context.deliver(topic, (changes or {}).get(topic, payload))

    def deliver(self, topic: str, payload: str | bytes | dict[str, Any]) -> None:
        self.context.deliver(topic, payload)

    def entity(self, entity_id: str) -> Entity:
        entity = self.context.registry.get(entity_id)
        assert entity is not None, f"{entity_id} is not in the registry"
        return entity

    @property
    def entity_ids(self) -> set[str]:
        return {entity.entity_id for entity in self.context.registry.all_entities()}

    def encode(self, entity_id: str, service: str, **params: Any) -> list[tuple[str, str, int]]:
        messages = self.adapter.encode(self.entity(entity_id),
                                       EntityCommand(entity_id, service, params))
        assert not any(message.retain for message in messages)  # /set is never retained
        return [(m.topic, m.payload.decode(), m.qos) for m in messages]


@pytest.fixture
def hub() -> Iterator[Hub]:
    context = FakeContext()
    adapter = HomieAdapter()
    stop = adapter.start(AdapterContext(context.registry, context.subscribe,
                                        lambda message: context.published.append(message)))
    yield Hub(context, adapter)
    stop()
    assert context.published == []  # reading devices never publishes


def description(**properties: dict[str, Any]) -> dict[str, Any]:
    """A v5 description of device ``lamp`` with one node ``main`` holding ``properties``."""
    return {"homie": "5.0", "version": 1, "name": "Lamp",
            "nodes": {"main": {"name": "Main", "properties": properties}}}


def announce(hub: Hub, document: dict[str, Any], state: str = "ready") -> None:
    hub.deliver("homie/5/lamp/$state", state)
    hub.deliver("homie/5/lamp/$description", document)


def test_the_fake_matches_topics_as_paho_does() -> None:
    filters = ["homie/5/+/$state", "homie/+/$homie", "homie/5/lamp/+/+", "homie/lamp/#",
               "homie/5/lamp/+/+/$target", "#", "homie/+/#"]
    topics = ["homie/5/lamp/$state", "homie/lamp/$homie", "homie/5/lamp/main/power",
              "homie/5/lamp/main/power/$target", "homie/lamp", "homie/lamp/a/b", "homie",
              "homie/5/lamp/main"]
    assert [[matches(f, t) for t in topics] for f in filters] == [
        [topic_matches_sub(f, t) for t in topics] for f in filters]


# -- v5 entities ----------------------------------------------------------------------------


def test_the_kitchen_light_is_one_light_and_its_sensor_a_temperature_sensor(hub: Hub) -> None:
    hub.replay("v5_kitchen_light")
    assert hub.entity_ids == {LIGHT, TEMPERATURE}  # power, brightness, color: one light
    light = hub.entity(LIGHT)
    assert (light.name, light.state, light.available) == ("Kitchen light", "on", True)
    assert light.attributes["brightness"] == 153  # 60 of 0..100
    assert light.attributes["rgb_color"] == [255, 255, 255]  # rgb,100,100,100 at full
    assert light.attributes["color_mode"] == "rgb"
    assert light.capabilities == {"services": ["toggle", "turn_off", "turn_on"],
                                  "supported_color_modes": ["rgb"], "brightness": True}
    assert light.unique_id == "homie5:kitchen-light/light"
    assert hub.adapter.reports_state(light)
    sensor = hub.entity(TEMPERATURE)
    assert (sensor.name, sensor.state, sensor.device_class) == (
        "Engine temperature", "21.5", "temperature")
    assert sensor.aliases == ("Kitchen light Engine temperature",)
    assert sensor.attributes == {"unit_of_measurement": "°C"}
    assert sensor.capabilities == {"services": [], "unit_of_measurement": "°C",
                                   "state_class": "measurement"}


def test_a_power_switch_without_brightness_or_color_is_a_switch_not_a_light(hub: Hub) -> None:
    announce(hub, description(power={"datatype": "boolean", "settable": True},
                              level={"datatype": "integer", "format": "0:100",
                                     "settable": True}))
    assert hub.entity_ids == {"switch.lamp_main_power", "number.lamp_main_level"}
    assert hub.entity("switch.lamp_main_power").capabilities["services"] == [
        "toggle", "turn_off", "turn_on"]


@pytest.mark.parametrize(("node", "node_type", "entity_id"), [
    ("light", None, "light.lamp_light"), ("main", "acme.lamp", "light.lamp_main"),
    ("main", None, "switch.lamp_main_power"), ("relay", "acme.plug", "switch.lamp_relay_power")])
def test_an_on_off_light_is_a_light_where_its_node_says_so(
        hub: Hub, node: str, node_type: str | None, entity_id: str) -> None:
    spec = {"properties": {"power": {"datatype": "boolean", "settable": True}},
            **({"type": node_type} if node_type else {})}
    announce(hub, {"homie": "5.0", "version": 1, "name": "Lamp", "nodes": {node: spec}})
    assert hub.entity_ids == {entity_id}
    if entity_id.startswith("light."):
        assert hub.entity(entity_id).capabilities["supported_color_modes"] == ["onoff"]
        assert hub.entity(entity_id).capabilities["brightness"] is False
        with pytest.raises(CommandNotSupportedError, match="brightness"):
            hub.encode(entity_id, "turn_on", brightness=100)


@pytest.mark.parametrize(("label", "name", "aliases"), [
    ("Light", "Lamp light", ()), ("Lamp light", "Lamp light", ()),
    ("Power", "Lamp light", ("Lamp light Power",)), ("State", "Lamp light", ("Lamp light State",)),
    ("Ligh", "Ligh", ("Lamp light Ligh",)), ("Power level", "Power level",
                                             ("Lamp light Power level",))])
def test_names_are_the_property_names_with_the_device_name_as_an_alias(
        hub: Hub, label: str, name: str, aliases: tuple[str, ...]) -> None:
    announce(hub, {**description(power={"datatype": "boolean", "name": label}),
                   "name": "Lamp light"})
    sensor = hub.entity("binary_sensor.lamp_main_power")
    assert (sensor.name, sensor.aliases) == (name, aliases)


def test_the_super_car_properties_by_datatype(hub: Hub) -> None:
    hub.replay("v5_super_car")
    assert hub.entity_ids == {
        "sensor.super_car_wheels_angle", "sensor.super_car_engine_speed",
        "select.super_car_engine_direction", "sensor.super_car_engine_temperature",
        "number.super_car_lights_intensity", "sensor.super_car_lights_color",
        "switch.super_car_lights_horn"}
    intensity = hub.entity("number.super_car_lights_intensity")
    assert intensity.state == "40"
    assert intensity.capabilities == {"services": ["set_value"], "min": 0, "max": 100,
                                      "step": 5, "unit_of_measurement": "%"}
    direction = hub.entity("select.super_car_engine_direction")
    assert (direction.state, direction.capabilities["options"]) == (
        "forward", ["forward", "reverse"])
    speed = hub.entity("sensor.super_car_engine_speed")
    assert (speed.state, speed.device_class) == ("3200", None)  # rpm names no class
    assert hub.entity("sensor.super_car_wheels_angle").state == "-12.5"
    assert hub.entity("sensor.super_car_lights_color").state == "hsv,300,50,75"
    horn = hub.entity("switch.super_car_lights_horn")
    assert horn.state is None  # a non-retained event has no state until it happens
    assert not hub.adapter.reports_state(horn)  # optimistic: nothing confirms a command
    assert hub.adapter.reports_state(intensity)


@pytest.mark.parametrize(("unit", "property_id", "device_class"), [
    ("%", "humidity", "humidity"), ("%", "battery", "battery"), ("%", "level", None),
    ("W", "load", "power"), ("kWh", "total", "energy"), ("°F", "outside", "temperature"),
    ("ppm", "co2", "carbon_dioxide"), ("ppm", "voc", None), (None, "count", None),
])
def test_sensor_device_classes_come_from_unit_and_name(
        hub: Hub, unit: str | None, property_id: str, device_class: str | None) -> None:
    spec = {"datatype": "float", **({"unit": unit} if unit else {})}
    announce(hub, description(**{property_id: spec}))
    sensor = hub.entity(f"sensor.lamp_main_{property_id}")
    assert sensor.device_class == device_class
    assert sensor.capabilities["state_class"] == (
        "total_increasing" if device_class == "energy" else "measurement")


@pytest.mark.parametrize(("property_id", "device_class"), [
    ("motion", "motion"), ("door", "door"), ("leak", "moisture"), ("pressed", None)])
def test_binary_sensors_from_non_settable_booleans(hub: Hub, property_id: str,
                                                   device_class: str | None) -> None:
    announce(hub, description(**{property_id: {"datatype": "boolean"}}))
    hub.deliver(f"homie/5/lamp/main/{property_id}", "true")
    sensor = hub.entity(f"binary_sensor.lamp_main_{property_id}")
    assert (sensor.state, sensor.device_class) == ("on", device_class)
    hub.deliver(f"homie/5/lamp/main/{property_id}", "TRUE")  # case counts: ignored
    hub.deliver(f"homie/5/lamp/main/{property_id}", "false")
    assert hub.entity(f"binary_sensor.lamp_main_{property_id}").state == "off"


def test_json_properties_are_not_entities(hub: Hub) -> None:
    announce(hub, description(blob={"datatype": "json"}, text={"datatype": "string"}))
    assert hub.entity_ids == {"sensor.lamp_main_text"}


def test_an_empty_string_value_is_one_nul_byte(hub: Hub) -> None:
    announce(hub, description(text={"datatype": "string"}))
    hub.deliver("homie/5/lamp/main/text", "hello")
    hub.deliver("homie/5/lamp/main/text", b"")  # a deleted topic, not a value
    assert hub.entity("sensor.lamp_main_text").state == "hello"
    hub.deliver("homie/5/lamp/main/text", b"\x00")
    assert hub.entity("sensor.lamp_main_text").attributes == {}
    assert hub.entity("sensor.lamp_main_text").state == "hello"  # "" cleans to no text


# -- values and formats ---------------------------------------------------------------------


@pytest.mark.parametrize(("datatype", "format_text", "payload", "expected"), [
    ("integer", None, "42", 42), ("integer", None, "-7", -7), ("integer", None, "4.2", None),
    ("integer", None, "-", None), ("integer", None, " 42", None), ("integer", None, "", None),
    ("integer", None, str(2**63), None), ("integer", "5:35", "36", None),
    ("integer", "5:35", "35", 35), ("integer", ":10", "-99", -99),
    ("float", None, "21.5", 21.5), ("float", None, "2.15e1", 21.5), ("float", None, "1e+3", None),
    ("float", None, "nan", None), ("float", None, "Infinity", None), ("float", None, "1.2.3", None),
    ("float", None, ".", None), ("float", None, "1e999", None), ("float", "-20:120", "121", None),
    ("float", "0:", "-0.1", None), ("float", "0:", "0", 0.0),
    ("boolean", None, "true", True), ("boolean", None, "false", False),
    ("boolean", "off,on", "on", None), ("boolean", None, "TRUE", None),
    ("enum", "car,bike", "car", "car"), ("enum", "car,bike", "Car", None),
    ("enum", "car,bike", " car", None), ("enum", " car,bike", " car", " car"),
    ("color", "rgb,hsv", "rgb,100,100,100", Color("rgb", (100.0, 100.0, 100.0))),
    ("color", "rgb,hsv", "hsv,300,50,75", Color("hsv", (300.0, 50.0, 75.0))),
    ("color", "rgb", "hsv,300,50,75", None), ("color", "rgb", "rgb,256,0,0", None),
    ("color", "rgb", "rgb,1,2", None), ("color", "rgb", "rgb, 1,2,3", None),
    ("color", "hsv", "hsv,361,0,0", None), ("color", "xyz", "xyz,0.25,0.34",
                                             Color("xyz", (0.25, 0.34))),
    ("color", "xyz", "xyz,0.25,1.5", None),
    ("datetime", None, "2024-03-01T12:30:00+01:00", "2024-03-01T12:30:00+01:00"),
    ("datetime", None, "yesterday", None),
    ("duration", None, "PT12H5M46S", "PT12H5M46S"), ("duration", None, "PT5M", "PT5M"),
    ("duration", None, "PT", None), ("duration", None, "P1D", None),
    ("json", None, '{"a": 1}', '{"a": 1}'), ("json", None, "[1]", "[1]"),
    ("json", None, "1", None), ("json", None, "{", None),
    ("string", None, "\x00", ""), ("string", None, "any text", "any text"),
])
def test_values_are_read_strictly_by_datatype_and_format(
        datatype: str, format_text: str | None, payload: str, expected: Any) -> None:
    assert parse_value(datatype, format_text, payload) == expected


def test_a_value_out_of_range_or_of_the_wrong_type_is_ignored(hub: Hub) -> None:
    hub.replay("v5_kitchen_light")
    for payload in ("101", "-1", "50.5", "fifty", "", "5e1"):
        hub.deliver("homie/5/kitchen-light/light/brightness", payload)
    hub.deliver("homie/5/kitchen-light/sensor/temperature", "121")
    hub.deliver("homie/5/kitchen-light/light/color", "cmyk,1,2,3,4")
    light = hub.entity(LIGHT)
    assert (light.attributes["brightness"], light.attributes["rgb_color"]) == (153, [255] * 3)
    assert hub.entity(TEMPERATURE).state == "21.5"
    hub.deliver("homie/5/kitchen-light/light/brightness", "100")
    hub.deliver("homie/5/kitchen-light/sensor/temperature", "-19.5")
    hub.deliver("homie/5/kitchen-light/light/color", "hsv,0,100,100")
    light = hub.entity(LIGHT)
    assert light.attributes["brightness"] == 255
    assert (light.attributes["hs_color"], light.attributes["color_mode"]) == ([0, 100], "hs")
    assert hub.entity(TEMPERATURE).state == "-19.5"


@pytest.mark.parametrize("broken", [
    {"datatype": "integer", "format": "5:1"}, {"datatype": "integer", "format": "1:5:0"},
    {"datatype": "integer", "format": "a:b"}, {"datatype": "float", "format": "1:2:3:4"},
    {"datatype": "enum"}, {"datatype": "enum", "format": "a,,b"},
    {"datatype": "enum", "format": "a,a"}, {"datatype": "color", "format": "cmyk"},
    {"datatype": "boolean", "format": "off"}, {"datatype": "number"}, {},
    {"datatype": "boolean", "settable": "yes"}, {"datatype": "string", "name": 7},
    {"datatype": []}, {"datatype": {"x": 1}}, {"datatype": "enum", "format": ["a", "b"]},
])
def test_a_property_with_an_illegal_field_is_ignored_and_its_neighbours_kept(
        hub: Hub, broken: dict[str, Any]) -> None:
    announce(hub, description(good={"datatype": "integer", "format": "1:5"}, bad=broken))
    assert hub.entity_ids == {"sensor.lamp_main_good"}


@pytest.mark.parametrize(("document", "entities"), [
    ({"homie": "4.0", "version": 1}, set()), ({"homie": "5.0"}, set()),
    ({"homie": "5.0", "version": "1"}, set()), ({"homie": "5.0", "version": 1, "nodes": []}, set()),
    ({"homie": "5.0", "version": 1, "root": "Bridge!"}, set()),
    ({"homie": "5.0", "version": 1, "nodes": {"Main": {"properties": {
        "x": {"datatype": "boolean"}}}}}, set()),
    ({"homie": "5.0", "version": 1, "nodes": {"main": {"properties": {
        "X+": {"datatype": "boolean"}, "y": {"datatype": "boolean"}}}}},
     {"binary_sensor.lamp_main_y"}),
    ({"homie": "5.1", "version": 1, "future-field": True, "nodes": {"main": {"properties": {
        "y": {"datatype": "boolean", "future": 1}}}}}, {"binary_sensor.lamp_main_y"}),
])
def test_descriptions_the_convention_does_not_allow_are_ignored(
        hub: Hub, document: dict[str, Any], entities: set[str]) -> None:
    announce(hub, document)
    assert hub.entity_ids == entities


# -- device state ---------------------------------------------------------------------------


def test_device_state_is_availability(hub: Hub) -> None:
    hub.replay("v5_kitchen_light")
    seen = {}
    for state in ("init", "disconnected", "sleeping", "lost", "READY", "alert", "ready"):
        hub.deliver("homie/5/kitchen-light/$state", state)
        seen[state] = hub.entity(LIGHT).available
    assert seen == {"init": False, "disconnected": False, "sleeping": True, "lost": False,
                    "READY": False, "alert": False, "ready": True}  # unknown ones change nothing


def test_a_lost_root_makes_its_whole_tree_unavailable_a_lost_parent_does_not(hub: Hub) -> None:
    hub.replay("v5_bridge")
    lights = ("switch.light1_relay_power", "switch.light2_relay_power")
    assert [hub.entity(e).state for e in lights] == ["off", "on"]
    hub.deliver("homie/5/dualrelay/$state", "lost")  # a parent, not the root
    assert all(hub.entity(e).available for e in lights)
    hub.deliver("homie/5/bridge/$state", "lost")  # the root's last will
    assert not any(hub.entity(e).available for e in lights)
    hub.deliver("homie/5/bridge/$state", "ready")
    assert all(hub.entity(e).available for e in lights)


def test_nothing_exists_before_its_state_and_values_before_the_description_count(
        hub: Hub) -> None:
    messages = recording("v5_kitchen_light")
    for topic, payload in [*messages[2:6], messages[1]]:  # values first, no $state yet
        hub.deliver(topic, payload)
    assert hub.entity_ids == set()
    hub.deliver("homie/5/kitchen-light/$state", "ready")
    assert hub.entity(LIGHT).attributes["brightness"] == 153
    assert hub.entity(TEMPERATURE).state == "21.5"


def test_clearing_state_or_description_removes_the_device(hub: Hub) -> None:
    hub.replay("v5_kitchen_light")
    hub.deliver("homie/5/kitchen-light/light/power", b"")  # one value deleted: nothing goes
    assert hub.entity_ids == {LIGHT, TEMPERATURE}
    hub.deliver("homie/5/kitchen-light/$description", b"")
    assert hub.entity_ids == set()
    hub.replay("v5_kitchen_light")
    hub.deliver("homie/5/kitchen-light/$state", b"")
    assert hub.entity_ids == set()
    assert hub.context.topics == {"homie/5/+/$state", "homie/5/+/$description",
                                   "homie/+/$homie"}  # the device's own subscriptions went


def test_a_new_description_version_replaces_the_entities(hub: Hub) -> None:
    hub.replay("v5_kitchen_light")
    document = json.loads(recording("v5_kitchen_light")[1][1])
    del document["nodes"]["sensor"]
    document["nodes"]["light"]["properties"].pop("color")
    document["nodes"]["light"]["properties"].pop("brightness")
    hub.deliver("homie/5/kitchen-light/$description", {**document, "version": 2})
    assert hub.entity_ids == {LIGHT}
    light = hub.entity(LIGHT)
    assert light.capabilities["supported_color_modes"] == ["onoff"]
    assert light.state == "on"  # the kept value
    document["nodes"]["light"]["properties"]["power"]["settable"] = False
    hub.deliver("homie/5/kitchen-light/$description", {**document, "version": 3})
    assert hub.entity_ids == {"binary_sensor.kitchen_light_light_power"}
    assert hub.entity("binary_sensor.kitchen_light_light_power").state == "on"


def test_targets_are_shown_and_count_as_a_report(hub: Hub) -> None:
    hub.replay("v5_super_car")
    hub.deliver("homie/5/super-car/lights/intensity/$target", "100")
    assert hub.entity("number.super_car_lights_intensity").attributes["target"] == "100"
    hub.deliver("homie/5/super-car/lights/intensity/$target", "105")  # out of range
    assert hub.entity("number.super_car_lights_intensity").attributes["target"] == "100"


def test_device_ids_that_are_not_homie_ids_are_ignored(hub: Hub) -> None:
    for device_id in ("Kitchen", "kitchen_light", "-lamp", "lamp-", "$broadcast", "a--b"):
        hub.deliver(f"homie/5/{device_id}/$state", "ready")
        hub.deliver(f"homie/5/{device_id}/$description", description(
            power={"datatype": "boolean"}))
    assert hub.entity_ids == set()
    assert hub.context.topics == {"homie/5/+/$state", "homie/5/+/$description",
                                   "homie/+/$homie"}
    hub.deliver("homie/5/lamp-2/$state", "ready")
    hub.deliver("homie/5/lamp-2/$description", description(power={"datatype": "boolean"}))
    assert hub.entity_ids == {"binary_sensor.lamp_2_main_power"}


def test_look_alike_ids_get_their_own_entities(hub: Hub) -> None:
    for device_id, node_id, property_id in (("a-b", "c", "d"), ("a", "b-c", "d")):
        hub.deliver(f"homie/5/{device_id}/$state", "ready")
        hub.deliver(f"homie/5/{device_id}/$description", {
            "homie": "5.0", "version": 1,
            "nodes": {node_id: {"properties": {property_id: {"datatype": "boolean"}}}}})
    assert hub.entity_ids == {"binary_sensor.a_b_c_d", "binary_sensor.a_b_c_d_2"}
    assert hub.entity("binary_sensor.a_b_c_d_2").unique_id == "homie5:a/b-c/d"


def test_another_base_topic_is_its_own_homie_domain() -> None:
    context = FakeContext()
    adapter = HomieAdapter(base_topic="/acme/")
    adapter.start(AdapterContext(context.registry, context.subscribe, context.published.append))
    context.deliver("homie/5/lamp/$state", "ready")
    context.deliver("acme/5/lamp/$state", "ready")
    context.deliver("acme/5/lamp/$description", description(power={"datatype": "boolean"}))
    assert [e.entity_id for e in context.registry.all_entities()] == [
        "binary_sensor.lamp_main_power"]
    with pytest.raises(ValueError, match="one topic level"):
        HomieAdapter(base_topic="a/+")


# -- commands -------------------------------------------------------------------------------


def test_light_commands_go_to_the_set_topics(hub: Hub) -> None:
    hub.replay("v5_kitchen_light")
    power, level, color = (f"homie/5/kitchen-light/light/{p}/set" for p in (
        "power", "brightness", "color"))
    assert hub.encode(LIGHT, "turn_on") == [(power, "true", 1)]
    assert hub.encode(LIGHT, "turn_on", brightness=128) == [(power, "true", 1),
                                                            (level, "50", 1)]
    assert hub.encode(LIGHT, "turn_on", brightness=1) == [(power, "true", 1), (level, "1", 1)]
    assert hub.encode(LIGHT, "turn_on", rgb_color=[255, 0, 0]) == [
        (power, "true", 1), (color, "rgb,255,0,0", 1)]
    assert hub.encode(LIGHT, "turn_on", brightness=0) == [(power, "false", 1)]
    assert hub.encode(LIGHT, "turn_off") == [(power, "false", 1)]
    assert hub.encode(LIGHT, "toggle") == [(power, "false", 1)]  # it is on
    hub.deliver("homie/5/kitchen-light/light/power", "false")
    assert hub.encode(LIGHT, "toggle") == [(power, "true", 1)]
    for params in ({"brightness": 256}, {"brightness": "half"}, {"rgb_color": [1, 2]}):
        with pytest.raises(CommandNotSupportedError):
            hub.encode(LIGHT, "turn_on", **params)
    with pytest.raises(CommandNotSupportedError):
        hub.encode(LIGHT, "set_value", value=3)


def test_a_color_light_without_brightness_dims_through_its_color(hub: Hub) -> None:
    announce(hub, description(power={"datatype": "boolean", "settable": True},
                              color={"datatype": "color", "format": "hsv,rgb",
                                     "settable": True}))
    hub.deliver("homie/5/lamp/main/color", "rgb,0,0,128")
    light = hub.entity("light.lamp_main")
    assert (light.attributes["rgb_color"], light.attributes["brightness"]) == ([0, 0, 255], 128)
    set_color = "homie/5/lamp/main/color/set"
    assert hub.encode("light.lamp_main", "turn_on", brightness=255)[1] == (
        set_color, "hsv,240,100,100", 1)  # the device prefers hsv
    assert hub.encode("light.lamp_main", "turn_on", rgb_color=[255, 0, 0])[1] == (
        set_color, "hsv,0,100,50.1961", 1)  # at the brightness it has


def test_an_xyz_light_takes_colors_as_chromaticity(hub: Hub) -> None:
    assert rgb_to_xy(1, 0, 0) == pytest.approx((0.64, 0.33), abs=1e-3)
    assert rgb_to_xy(0, 0, 0) == (0.3127, 0.329)
    announce(hub, description(power={"datatype": "boolean", "settable": True},
                              color={"datatype": "color", "format": "xyz", "settable": True}))
    light = hub.entity("light.lamp_main")
    assert light.capabilities["supported_color_modes"] == ["xy"]
    assert light.capabilities["brightness"] is False  # xyz carries no brightness
    assert hub.encode("light.lamp_main", "turn_on", rgb_color=[255, 0, 0])[1] == (
        "homie/5/lamp/main/color/set", "xyz,0.6401,0.33", 1)
    with pytest.raises(CommandNotSupportedError, match="cannot dim"):
        hub.encode("light.lamp_main", "turn_on", brightness=100)
    hub.deliver("homie/5/lamp/main/color", "xyz,0.25,0.34")
    assert hub.entity("light.lamp_main").attributes == {"color_mode": "xy",
                                                        "xy_color": [0.25, 0.34]}


def test_switch_number_and_select_commands(hub: Hub) -> None:
    hub.replay("v5_super_car")
    assert hub.encode("switch.super_car_lights_horn", "turn_on") == [
        ("homie/5/super-car/lights/horn/set", "true", 1)]
    intensity = "number.super_car_lights_intensity"
    assert hub.encode(intensity, "set_value", value=42) == [
        ("homie/5/super-car/lights/intensity/set", "40", 1)]  # the 5-step
    assert hub.encode(intensity, "set_value", value=100.0) == [
        ("homie/5/super-car/lights/intensity/set", "100", 1)]
    for value in (103, -3, "40", None, float("nan"), float("inf"), True):
        with pytest.raises(CommandNotSupportedError):
            hub.encode(intensity, "set_value", value=value)
    assert hub.encode("select.super_car_engine_direction", "select_option",
                      option="reverse") == [("homie/5/super-car/engine/direction/set",
                                             "reverse", 1)]
    for option in ("Reverse", "sideways", None):
        with pytest.raises(CommandNotSupportedError):
            hub.encode("select.super_car_engine_direction", "select_option", option=option)
    for entity_id in ("sensor.super_car_engine_speed", "sensor.super_car_lights_color"):
        with pytest.raises(CommandNotSupportedError):
            hub.encode(entity_id, "turn_on")


def test_float_numbers_are_sent_without_a_plus_or_noise(hub: Hub) -> None:
    announce(hub, description(setpoint={"datatype": "float", "settable": True}))
    assert hub.encode("number.lamp_main_setpoint", "set_value", value=21.5) == [
        ("homie/5/lamp/main/setpoint/set", "21.5", 1)]
    assert hub.encode("number.lamp_main_setpoint", "set_value", value=1e20) == [
        ("homie/5/lamp/main/setpoint/set", "1e20", 1)]
    hub.deliver("homie/5/lamp/$description", description(count={"datatype": "integer",
                                                                "settable": True}))
    assert hub.encode("number.lamp_main_count", "set_value", value=2.0**62) == [
        ("homie/5/lamp/main/count/set", str(2**62), 1)]
    with pytest.raises(CommandNotSupportedError):  # beyond a 64-bit integer
        hub.encode("number.lamp_main_count", "set_value", value=1e19)


# -- v4 -------------------------------------------------------------------------------------


def test_v4_devices_are_read_only(hub: Hub) -> None:
    hub.replay("v4_devices")
    assert hub.entity_ids == {"sensor.super_car_engine_temperature",
                              "binary_sensor.kitchen_light_light_power"}  # speed: no datatype
    temperature = hub.entity("sensor.super_car_engine_temperature")
    assert (temperature.name, temperature.state, temperature.device_class) == (
        "Engine temperature", "21.5", "temperature")
    assert temperature.aliases == ("Super car Engine temperature",)
    assert temperature.unique_id == "homie4:super-car/engine/temperature"
    power = hub.entity("binary_sensor.kitchen_light_light_power")
    assert (power.state, power.available) == ("on", True)
    for entity_id in hub.entity_ids:
        with pytest.raises(CommandNotSupportedError):
            hub.encode(entity_id, "turn_on")
    forged = power.model_copy(update={"domain": "switch"})  # even dressed as a switch
    with pytest.raises(CommandNotSupportedError, match="read-only"):
        hub.adapter.encode(forged, EntityCommand(forged.entity_id, "turn_on"))


def test_v4_properties_appear_when_their_attributes_are_complete(hub: Hub) -> None:
    hub.replay("v4_devices")
    hub.deliver("homie/super-car/engine/speed", "3000")
    hub.deliver("homie/super-car/engine/speed/$datatype", "integer")
    assert hub.entity("sensor.super_car_engine_speed").state == "3000"
    hub.deliver("homie/super-car/engine/speed/$format", "0:100")  # 3000 is now out of range
    hub.deliver("homie/super-car/engine/speed", "4000")
    assert hub.entity("sensor.super_car_engine_speed").state == "3000"
    hub.deliver("homie/super-car/engine/speed/$datatype", "json")  # not a v4 datatype
    assert "sensor.super_car_engine_speed" not in hub.entity_ids


def test_v4_state_availability_and_removal(hub: Hub) -> None:
    hub.replay("v4_devices")
    seen = {}
    for state in ("alert", "lost", "sleeping", "disconnected", "bogus", "init", "ready"):
        hub.deliver("homie/kitchen-light/$state", state)
        seen[state] = hub.entity("binary_sensor.kitchen_light_light_power").available
    assert seen == {"alert": True, "lost": False, "sleeping": True, "disconnected": False,
                    "bogus": False, "init": False, "ready": True}  # bogus changes nothing
    hub.deliver("homie/kitchen-light/$state", b"")  # no state: the device does not exist
    assert hub.entity_ids == {"sensor.super_car_engine_temperature"}
    hub.deliver("homie/kitchen-light/$state", "ready")
    assert "binary_sensor.kitchen_light_light_power" in hub.entity_ids
    hub.deliver("homie/kitchen-light/$homie", b"")
    assert hub.entity_ids == {"sensor.super_car_engine_temperature"}


def test_other_homie_versions_are_not_read_as_v4(hub: Hub) -> None:
    hub.replay("v4_devices", {"homie/super-car/$homie": "3.0.1"})
    assert hub.entity_ids == {"binary_sensor.kitchen_light_light_power"}
