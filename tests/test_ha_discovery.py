"""Home Assistant MQTT discovery adapter: discovery, state translation, availability,
re-publishing and malformed input (payloads in tests/data/ha_discovery)."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest

from assistant.registry import DeviceRegistry, Entity
from device_adapters.base import AdapterContext
from device_adapters.ha_discovery.adapter import HomeAssistantDiscoveryAdapter
from tests.adapter_support import FakeBroker
from tests.ha_discovery_support import CONFIG_TOPICS, Hub, hub, recorded  # noqa: F401 (fixture)

# -- discovery, abbreviations, ~ -----------------------------------------------------------


def test_abbreviated_config_with_topic_base_becomes_an_expanded_entity(hub: Hub) -> None:
    hub.discover("light_tasmota_abbreviated")

    light = hub.entity("light.a1b2c3_li_1")
    assert light.name == "Kitchen Ceiling"
    assert light.domain == "light"
    assert light.source == "ha_discovery"
    assert light.area == "kitchen"
    assert hub.registry.areas["kitchen"].name == "Kitchen"
    assert light.wire["command_topic"] == "tasmota_A1B2C3/cmnd/POWER"
    assert light.wire["brightness_scale"] == 100
    assert light.wire["device"]["suggested_area"] == "Kitchen"
    assert "~" not in light.wire and "cmd_t" not in light.wire
    assert light.capabilities["supported_color_modes"] == ["brightness"]
    assert light.capabilities["brightness"] is True
    assert light.capabilities["services"] == ["toggle", "turn_off", "turn_on"]
    assert {
        "tasmota_A1B2C3/stat/POWER", "tasmota_A1B2C3/stat/RESULT",
        "tasmota_A1B2C3/tele/LWT", "tasmota_A1B2C3/tele/STATE",
    } <= hub.broker.topics


def test_topic_base_at_the_end_of_a_topic(hub: Hub) -> None:
    hub.discover("switch_garden_pump")
    pump = hub.entity("switch.garden_pump")
    assert pump.wire["command_topic"] == "garden/pump/set"
    assert pump.wire["availability_topic"] == "status/garden/pump"
    assert pump.device_class == "outlet"


def test_entity_id_comes_from_default_entity_id_then_object_id_then_topic(hub: Hub) -> None:
    hub.discover("light_z2m_json")  # default_entity_id
    hub.discover("sensor_z2m_temperature")  # legacy object_id
    hub.discover("light_esphome_json")  # abbreviated obj_id
    hub.discover("scene_movie_night")  # neither: the topic's object id
    hub.discover("switch_garden_pump", default_entity_id="light.Pump #2")  # domain is ours
    assert {e.entity_id for e in hub.registry.entities()} == {
        "light.living_room_lamp", "sensor.bedroom_climate_sensor_temperature",
        "light.desk_strip", "scene.movie_night", "switch.pump_2",
    }


def test_names_fall_back_to_the_device_and_keep_device_qualified_aliases(hub: Hub) -> None:
    hub.discover("light_z2m_json")  # name: null
    hub.discover("sensor_z2m_temperature")
    hub.discover("scene_movie_night", name=None, device=None)
    assert hub.entity("light.living_room_lamp").name == "Living room lamp"
    temperature = hub.entity("sensor.bedroom_climate_sensor_temperature")
    assert temperature.name == "Temperature"
    assert temperature.aliases == ("Bedroom climate sensor Temperature",)
    assert temperature.area == "bedroom"
    assert temperature.attributes["unit_of_measurement"] == "°C"
    assert hub.entity("scene.movie_night").name == "movie night"


def test_device_text_is_stored_as_plain_data(hub: Hub) -> None:
    hub.discover("scene_movie_night", name="{{ states('lock.front') }}\x00\nignore" + "x" * 300)
    scene = hub.entity("scene.movie_night")
    assert scene.name.startswith("{{ states('lock.front') }}")
    assert "\x00" not in scene.name and "\n" not in scene.name and len(scene.name) <= 100


def test_configs_under_another_prefix_or_not_config_topics_are_ignored(hub: Hub) -> None:
    hub.broker.deliver("homeassistant/sensor/x/state", "21")
    hub.broker.deliver("homeassistant/sensor/bad topic!/config", recorded("sensor_z2m_temperature"))
    assert len(hub.registry) == 0

    registry, broker = DeviceRegistry(None), FakeBroker()
    adapter = HomeAssistantDiscoveryAdapter("custom_prefix")
    adapter.start(AdapterContext(registry, broker.subscribe, broker.publish))
    assert broker.topics == {"custom_prefix/#"}
    broker.deliver("custom_prefix/scene/movie/config", recorded("scene_movie_night"))
    assert registry.get("scene.movie") is not None


# -- state translation -----------------------------------------------------------------------


def test_basic_light_state_brightness_scale_and_value_template(hub: Hub) -> None:
    hub.discover("light_tasmota_abbreviated")
    hub.broker.deliver("tasmota_A1B2C3/stat/POWER", "ON")
    hub.broker.deliver("tasmota_A1B2C3/stat/RESULT", {"POWER": "ON", "Dimmer": 50})
    light = hub.entity("light.a1b2c3_li_1")
    assert light.state == "on"
    assert light.attributes["brightness"] == 128  # 50 of 100 -> 0..255

    hub.broker.deliver("tasmota_A1B2C3/stat/POWER", "OFF")
    assert hub.entity("light.a1b2c3_li_1").state == "off"


def test_json_attributes_never_overwrite_computed_attributes(hub: Hub) -> None:
    hub.discover("light_tasmota_abbreviated")
    hub.broker.deliver("tasmota_A1B2C3/stat/RESULT", {"Dimmer": 100})
    hub.broker.deliver("tasmota_A1B2C3/tele/STATE", {"Uptime": "0T01:00:00", "brightness": 3})
    light = hub.entity("light.a1b2c3_li_1")
    assert light.attributes["Uptime"] == "0T01:00:00"
    assert light.attributes["brightness"] == 255


def test_json_light_state_with_color_temp_in_mireds(hub: Hub) -> None:
    hub.discover("light_z2m_json")
    hub.broker.deliver(
        "zigbee2mqtt/Living room lamp",
        {"state": "ON", "brightness": 254, "color_mode": "color_temp", "color_temp": 370,
         "linkquality": 120},
    )
    lamp = hub.entity("light.living_room_lamp")
    assert lamp.state == "on"
    assert lamp.attributes["brightness"] == 255
    assert lamp.attributes["color_temp"] == 370
    assert lamp.attributes["color_temp_kelvin"] == 2702
    assert lamp.attributes["color_mode"] == "color_temp"
    assert lamp.attributes["linkquality"] == 120  # json_attributes_topic is the same topic
    assert lamp.capabilities["min_color_temp_kelvin"] == 2000
    assert lamp.capabilities["max_color_temp_kelvin"] == 6535
    assert lamp.capabilities["effect_list"][0] == "blink"


def test_json_light_rgb_state(hub: Hub) -> None:
    hub.discover("light_esphome_json")
    hub.broker.deliver(
        "deskstrip/light/desk_strip/state",
        {"state": "ON", "color_mode": "rgb", "brightness": 128,
         "color": {"r": 255, "g": 0, "b": 64}},
    )
    strip = hub.entity("light.desk_strip")
    assert strip.attributes["rgb_color"] == [255, 0, 64]
    assert strip.attributes["brightness"] == 128


def test_switch_uses_state_on_off_and_binary_sensor_boolean_payloads(hub: Hub) -> None:
    hub.discover("switch_garden_pump")
    hub.broker.deliver("garden/pump/state", "on")
    assert hub.entity("switch.garden_pump").state == "on"
    hub.broker.deliver("garden/pump/state", "off")
    assert hub.entity("switch.garden_pump").state == "off"

    hub.discover("binary_sensor_z2m_contact")  # payload_on: false (contact false = open door)
    hub.broker.deliver("zigbee2mqtt/Front door contact", {"contact": False, "battery": 91})
    assert hub.entity("binary_sensor.front_door_contact_contact").state == "on"
    hub.broker.deliver("zigbee2mqtt/Front door contact", {"contact": True})
    assert hub.entity("binary_sensor.front_door_contact_contact").state == "off"


def test_sensor_takes_the_templated_raw_value(hub: Hub) -> None:
    hub.discover("sensor_z2m_temperature")
    hub.broker.deliver("zigbee2mqtt/Bedroom climate sensor", {"temperature": 21.5, "humidity": 40})
    sensor = hub.entity("sensor.bedroom_climate_sensor_temperature")
    assert sensor.state == "21.5"
    assert sensor.capabilities["state_class"] == "measurement"


def test_cover_state_position_and_stopped(hub: Hub) -> None:
    hub.discover("cover_shelly_blind")
    hub.broker.deliver("shellies/office-blind/roller/0/pos", "40")
    hub.broker.deliver("shellies/office-blind/roller/0", "open")
    blind = hub.entity("cover.shelly25_office_blind")
    assert (blind.state, blind.attributes["current_position"]) == ("open", 40)
    assert blind.device_class == "shade"

    hub.broker.deliver("shellies/office-blind/roller/0", "close")
    hub.broker.deliver("shellies/office-blind/roller/0/pos", "0")
    hub.broker.deliver("shellies/office-blind/roller/0", "stop")
    assert hub.entity("cover.shelly25_office_blind").state == "closed"


def test_valve_reporting_position_reads_json_and_plain_positions(hub: Hub) -> None:
    hub.discover("valve_irrigation")
    hub.broker.deliver("irrigation/valve/state", {"state": "opening", "position": 30})
    valve = hub.entity("valve.irrigation_valve")
    assert (valve.state, valve.attributes["current_position"]) == ("opening", 30)
    hub.broker.deliver("irrigation/valve/state", "60")  # still moving
    assert hub.entity("valve.irrigation_valve").state == "opening"
    hub.broker.deliver("irrigation/valve/state", "100")
    valve = hub.entity("valve.irrigation_valve")
    assert (valve.state, valve.attributes["current_position"]) == ("open", 100)


def test_binary_valve_maps_its_own_state_payloads(hub: Hub) -> None:
    hub.discover("valve_gas_shutoff")
    hub.broker.deliver("gas/valve/state", "OPENED")
    assert hub.entity("valve.gas_shutoff").state == "open"
    hub.broker.deliver("gas/valve/state", "closing")
    assert hub.entity("valve.gas_shutoff").state == "closing"
    hub.broker.deliver("gas/valve/state", "CLOSED")
    assert hub.entity("valve.gas_shutoff").state == "closed"


@pytest.mark.parametrize(
    ("payload", "state"),
    [("LOCKED", "locked"), ("UNLOCKED", "unlocked"), ("LOCKING", "locking"),
     ("MOTOR_JAMMED", "jammed"), ("OPEN", "open"), ("None", "unknown")],
)
def test_lock_states(hub: Hub, payload: str, state: str) -> None:
    hub.discover("lock_front_door")
    hub.broker.deliver("frontdoor/lock/state", payload)
    assert hub.entity("lock.front_door").state == state


def test_climate_mode_is_the_state_and_temperatures_are_attributes(hub: Hub) -> None:
    hub.discover("climate_thermostat")
    hub.broker.deliver(
        "thermostat/living/state",
        {"mode": "heat", "target": "21.5", "current": 20.26, "action": "heating", "preset": "eco"},
    )
    thermostat = hub.entity("climate.thermostat_living")
    assert thermostat.name == "Living Room Thermostat"
    assert thermostat.state == "heat"
    assert thermostat.attributes["temperature"] == 21.5
    assert thermostat.attributes["current_temperature"] == 20.3
    assert thermostat.attributes["hvac_action"] == "heating"
    assert thermostat.attributes["preset_mode"] == "eco"
    assert thermostat.capabilities["hvac_modes"] == ["off", "heat", "auto"]
    assert (thermostat.capabilities["min_temp"], thermostat.capabilities["max_temp"]) == (5, 30)
    assert thermostat.capabilities["target_temp_step"] == 0.5


def test_fan_speed_range_maps_to_percentage(hub: Hub) -> None:
    hub.discover("fan_ceiling")
    hub.broker.deliver("fans/bedroom/power", "true")
    hub.broker.deliver("fans/bedroom/speed", "3")
    hub.broker.deliver("fans/bedroom/preset", "sleep")
    fan = hub.entity("fan.bedroom_ceiling_fan")
    assert fan.state == "on"
    assert fan.attributes["percentage"] == 50
    assert fan.attributes["preset_mode"] == "sleep"
    assert fan.capabilities["speed_count"] == 6
    hub.broker.deliver("fans/bedroom/speed", "None")
    assert hub.entity("fan.bedroom_ceiling_fan").attributes["percentage"] is None


def test_media_player_community_layout_and_aliases(hub: Hub) -> None:
    hub.discover("media_player_kitchen_speaker")
    speaker = hub.entity("media_player.kitchenspeaker")
    assert speaker.wire["state_topic"] == "kitchenspeaker/state"
    assert "state_state_topic" not in speaker.wire
    assert not speaker.available  # its availability topic has said nothing yet
    hub.broker.deliver("kitchenspeaker/available", "ON")
    hub.broker.deliver("kitchenspeaker/state", "Playing")
    hub.broker.deliver("kitchenspeaker/volume", "0.35")
    hub.broker.deliver("kitchenspeaker/title", "So What")
    speaker = hub.entity("media_player.kitchenspeaker")
    assert speaker.available and speaker.state == "playing"
    assert speaker.attributes["volume_level"] == 0.35
    assert speaker.attributes["media_title"] == "So What"
    hub.broker.deliver("kitchenspeaker/state", "stopped")
    assert hub.entity("media_player.kitchenspeaker").state == "idle"


def test_alarm_and_vacuum_states(hub: Hub) -> None:
    hub.discover("alarm_control_panel_house")
    hub.broker.deliver("alarm/state", "armed_away")
    assert hub.entity("alarm_control_panel.house").state == "armed_away"

    hub.discover("vacuum_valetudo")
    hub.broker.deliver(
        "valetudo/robo/state", {"state": "cleaning", "battery_level": 81, "fan_speed": "max"}
    )
    robo = hub.entity("vacuum.valetudo_robo")
    assert robo.state == "cleaning"
    assert robo.attributes == {"battery_level": 81, "fan_speed": "max"}


# -- availability -----------------------------------------------------------------------------


def test_availability_topic_with_custom_payloads(hub: Hub) -> None:
    hub.discover("light_tasmota_abbreviated")
    assert not hub.entity("light.a1b2c3_li_1").available
    hub.broker.deliver("tasmota_A1B2C3/tele/LWT", "Online")
    assert hub.entity("light.a1b2c3_li_1").available
    hub.broker.deliver("tasmota_A1B2C3/tele/LWT", "something else")  # ignored, like HA
    assert hub.entity("light.a1b2c3_li_1").available
    hub.broker.deliver("tasmota_A1B2C3/tele/LWT", "Offline")
    assert not hub.entity("light.a1b2c3_li_1").available


def test_availability_list_in_mode_all_with_templates(hub: Hub) -> None:
    hub.discover("light_z2m_json")
    hub.broker.deliver("zigbee2mqtt/bridge/state", {"state": "online"})
    assert not hub.entity("light.living_room_lamp").available  # the lamp has not said yet
    hub.broker.deliver("zigbee2mqtt/Living room lamp/availability", {"state": "online"})
    assert hub.entity("light.living_room_lamp").available
    hub.broker.deliver("zigbee2mqtt/bridge/state", {"state": "offline"})
    assert not hub.entity("light.living_room_lamp").available


def test_availability_defaults_to_online_offline(hub: Hub) -> None:
    hub.discover("switch_garden_pump")
    hub.broker.deliver("status/garden/pump", "online")
    assert hub.entity("switch.garden_pump").available
    hub.broker.deliver("status/garden/pump", "offline")
    assert not hub.entity("switch.garden_pump").available


# -- re-publishing and removal ------------------------------------------------------------------


def test_empty_config_removes_the_entity_and_unsubscribes(hub: Hub) -> None:
    hub.discover("switch_garden_pump")
    assert "garden/pump/state" in hub.broker.topics
    hub.broker.deliver(CONFIG_TOPICS["switch_garden_pump"], "")
    assert hub.registry.get("switch.garden_pump") is None
    assert hub.broker.topics == {"homeassistant/#"}


def test_republished_config_replaces_the_subscriptions_and_keeps_the_state(hub: Hub) -> None:
    hub.discover("switch_garden_pump")
    hub.broker.deliver("garden/pump/state", "on")
    hub.discover("switch_garden_pump", state_topic="~/status")
    assert "garden/pump/state" not in hub.broker.topics
    assert "garden/pump/status" in hub.broker.topics
    assert hub.entity("switch.garden_pump").state == "on"
    hub.broker.deliver("garden/pump/status", "off")
    assert hub.entity("switch.garden_pump").state == "off"


def test_identical_republished_config_does_not_resubscribe(hub: Hub) -> None:
    hub.discover("switch_garden_pump")
    handlers = list(hub.broker.subscriptions["garden/pump/state"])
    hub.discover("switch_garden_pump")
    assert hub.broker.subscriptions["garden/pump/state"] == handlers


def test_changed_entity_id_moves_the_entity(hub: Hub) -> None:
    hub.discover("switch_garden_pump")
    hub.discover("switch_garden_pump", default_entity_id="switch.pump")
    assert hub.registry.get("switch.garden_pump") is None
    assert hub.entity("switch.pump").name == "Garden Pump"


def test_migration_request_keeps_the_entity(hub: Hub) -> None:
    hub.discover("switch_garden_pump")
    hub.broker.deliver(CONFIG_TOPICS["switch_garden_pump"], {"migrate_discovery": True})
    assert hub.registry.get("switch.garden_pump") is not None
    assert "garden/pump/state" not in hub.broker.topics


def test_device_discovery_shares_options_and_removes_omitted_components(hub: Hub) -> None:
    hub.discover("device_hallway_multisensor")
    temperature = hub.entity("sensor.ea334450945afc_temperature")
    assert temperature.name == "Hallway Multisensor"
    assert temperature.aliases == ("Hallway Multisensor temperature",)
    assert temperature.area == "hallway"
    assert temperature.wire["state_topic"] == "multisensor/ea334450945afc/state"
    assert temperature.wire["availability"] == [
        {"topic": "multisensor/ea334450945afc/availability"}
    ]
    assert temperature.wire["origin"]["support_url"] == "https://bla2mqtt.example.com/support"
    motion = hub.entity("binary_sensor.ea334450945afc_motion")
    assert motion.wire["state_topic"] == "multisensor/ea334450945afc/motion"
    assert hub.entity("light.ea334450945afc_night_light").name == "Night light"

    hub.broker.deliver("multisensor/ea334450945afc/availability", "online")
    hub.broker.deliver("multisensor/ea334450945afc/state", {"temperature": 19.5, "humidity": 55})
    hub.broker.deliver("multisensor/ea334450945afc/motion", "1")
    assert hub.entity("sensor.ea334450945afc_temperature").state == "19.5"
    assert hub.entity("sensor.ea334450945afc_humidity").state == "55"
    assert hub.entity("binary_sensor.ea334450945afc_motion").state == "on"
    assert hub.entity("sensor.ea334450945afc_humidity").available

    hub.discover("device_hallway_multisensor_update")  # humidity omitted, light reduced to "p"
    assert hub.registry.get("sensor.ea334450945afc_humidity") is None
    assert hub.registry.get("light.ea334450945afc_night_light") is None
    assert hub.entity("sensor.ea334450945afc_temperature").state == "19.5"
    assert "multisensor/ea334450945afc/light" not in hub.broker.topics

    hub.broker.deliver(CONFIG_TOPICS["device_hallway_multisensor"], "")
    assert len(hub.registry) == 0
    assert hub.broker.topics == {"homeassistant/#"}


def test_a_broken_device_component_keeps_what_it_was(hub: Hub) -> None:
    hub.discover("device_hallway_multisensor")
    update = recorded("device_hallway_multisensor")
    del update["cmps"]["night_light"]["cmd_t"]
    update["cmps"]["humidity"] = ["not", "an", "object"]
    hub.broker.deliver(CONFIG_TOPICS["device_hallway_multisensor"], update)
    assert hub.registry.get("light.ea334450945afc_night_light") is not None
    assert hub.registry.get("sensor.ea334450945afc_humidity") is not None


def test_stop_unsubscribes_everything(hub: Hub) -> None:
    for name in ("light_z2m_json", "device_hallway_multisensor", "media_player_office_radio"):
        hub.discover(name)
    assert len(hub.broker.topics) > 3
    hub.stop()
    assert hub.broker.topics == set()


def test_entity_of_another_adapter_is_never_taken_over(hub: Hub) -> None:
    hub.registry.upsert(Entity(entity_id="switch.garden_pump", name="Pump", domain="switch",
                               source="zwave"))
    hub.discover("switch_garden_pump")
    assert hub.entity("switch.garden_pump").source == "zwave"
    assert hub.entity("switch.garden_pump").name == "Pump"
    assert hub.entity("switch.garden_pump_2").source == "ha_discovery"  # like HA: <id>_2
    hub.discover("light_esphome_json")  # node id + object id is the fallback on a clash
    hub.registry.remove("light.desk_strip")
    hub.registry.upsert(Entity(entity_id="light.desk_strip", name="Desk", domain="light",
                               source="zigbee"))
    hub.discover("light_esphome_json", name="Desk Strip 2")
    assert hub.entity("light.deskstrip_desk_strip").name == "Desk Strip 2"


# -- malformed input ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "payload",
    [
        "{not json",
        "[1, 2, 3]",
        '"a string"',
        json.dumps({**recorded("switch_garden_pump"), "command_topic": None}),
        json.dumps({**recorded("switch_garden_pump"), "state_topic": 42}),
        json.dumps({**recorded("switch_garden_pump"), "device": "garden"}),
        json.dumps({**recorded("switch_garden_pump"), "availability": [{"pl_avail": "up"}]}),
        json.dumps({**recorded("switch_garden_pump"), "~": 7}),
        b"\xff\xfe not utf-8",
    ],
)
def test_malformed_config_is_skipped_and_keeps_the_existing_entry(hub: Hub, payload: Any) -> None:
    hub.discover("switch_garden_pump")
    hub.broker.deliver("garden/pump/state", "on")
    before = hub.entity("switch.garden_pump")
    hub.broker.deliver(CONFIG_TOPICS["switch_garden_pump"], payload)
    assert hub.entity("switch.garden_pump") == before
    assert "garden/pump/state" in hub.broker.topics


def test_malformed_component_specific_configs_are_skipped(hub: Hub) -> None:
    hub.broker.deliver("homeassistant/number/x/config", {"command_topic": "x/set"})
    hub.broker.deliver("homeassistant/light/x/config", {"name": "No command topic"})
    hub.broker.deliver("homeassistant/light/y/config", {"schema": "template", "command_topic": "y"})
    hub.broker.deliver("homeassistant/fan/z/config", {**recorded("fan_ceiling"), "spd_rng_min": 0})
    hub.broker.deliver("homeassistant/climate/c/config", {"modes": "heat"})
    hub.broker.deliver("homeassistant/device/d/config", {"cmps": []})
    assert len(hub.registry) == 0


@pytest.mark.parametrize(
    ("topic", "payload"),
    [
        ("tasmota_A1B2C3/stat/POWER", "BANANA"),
        ("tasmota_A1B2C3/stat/RESULT", "not json"),
        ("tasmota_A1B2C3/stat/RESULT", {"Dimmer": "bright"}),
        ("tasmota_A1B2C3/stat/RESULT", {"Other": 1}),
        ("tasmota_A1B2C3/tele/STATE", "[1]"),
        ("tasmota_A1B2C3/tele/LWT", b"\xff"),
    ],
)
def test_junk_state_payloads_are_ignored(
    hub: Hub, topic: str, payload: Any, caplog: pytest.LogCaptureFixture
) -> None:
    hub.discover("light_tasmota_abbreviated")
    hub.broker.deliver("tasmota_A1B2C3/stat/POWER", "ON")
    before = hub.entity("light.a1b2c3_li_1")
    with caplog.at_level(logging.WARNING):
        hub.broker.deliver(topic, payload)
    assert hub.entity("light.a1b2c3_li_1") == before
    assert topic in caplog.text


def test_junk_json_light_vacuum_and_valve_states_are_ignored(hub: Hub) -> None:
    for name in ("light_z2m_json", "vacuum_valetudo", "valve_irrigation", "fan_ceiling"):
        hub.discover(name)
    hub.broker.deliver("zigbee2mqtt/Living room lamp", {"state": "MAYBE"})
    hub.broker.deliver("zigbee2mqtt/Living room lamp", {"state": "ON", "brightness": [1]})
    hub.broker.deliver("valetudo/robo/state", {"state": "flying"})
    hub.broker.deliver("irrigation/valve/state", {"state": "open"})  # position is required
    hub.broker.deliver("fans/bedroom/speed", "9")  # outside 1..6
    assert all(entity.state is None for entity in hub.registry.entities())
