"""Home Assistant MQTT discovery adapter: templates and command encoding."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest

from assistant.messages import EntityCommand
from assistant.registry import DeviceRegistry, Entity
from device_adapters.base import AdapterContext, CommandNotSupportedError
from device_adapters.ha_discovery.adapter import HomeAssistantDiscoveryAdapter
from assistant.templating import (
    TemplateRenderError,
    UnsupportedTemplateError,
    render_template,
)
from tests.adapter_support import FakeBroker
from tests.ha_discovery_support import CONFIG_TOPICS, Hub, hub, recorded  # noqa: F401 (fixture)

# -- templates --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("template", "payload", "expected"),
    [
        ("{{ value }}", "ON", "ON"),
        ("{{value_json.state}}", '{"state": "ON"}', "ON"),
        ("{{ value_json['state'] }}", '{"state": "OFF"}', "OFF"),
        ('{{ value_json["a b"] }}', '{"a b": 1}', "1"),
        ("{{ value_json.a.b }}", '{"a": {"b": 7}}', "7"),
        ("{{ value_json.list[1] }}", '{"list": [4, 5]}', "5"),
        ("{{ value_json.t | int }}", '{"t": "21.7"}', "21"),
        ("{{ value_json.t | float }}", '{"t": "21"}', "21.0"),
        ("{{ value_json.t | round(1) }}", '{"t": 20.26}', "20.3"),
        ("{{ value_json.t | round }}", '{"t": 20.6}', "21"),
        ("{{ value | upper }}", "on", "ON"),
        ("{{ value | lower }}", "OFF", "off"),
        ("{{ value | int(0) }}", "n/a", "0"),
        ("{{ value_json.on }}", '{"on": true}', "True"),
        ("{{ value_json.r }},{{ value_json.g }}", '{"r": 1, "g": 2}', "1,2"),
        ("{{ value_json.c }}", '{"c": {"r": 1}}', '{"r": 1}'),
        ("{% if value == '1' %}ON{% else %}OFF{% endif %}", "1", "ON"),
        ("{{ value_json.x | default('OFF') }}", '{"y": 1}', "OFF"),
        ("{{ value_json.x + 1 }}", '{"x": 1}', "2"),
        ("{{ value | round(1, 'floor') }}", "1.29", "1.2"),
    ],
)
def test_supported_template_forms(template: str, payload: str, expected: str) -> None:
    variables: dict[str, Any] = {"value": payload}
    if payload.startswith("{"):
        variables["value_json"] = json.loads(payload)
    assert render_template(template, variables) == expected


@pytest.mark.parametrize(
    "template",
    [
        "{{ states('sensor.x') }}",
        "{{ now() }}",
        "{{ value | regex_replace('1', '2') }}",
        "{% macro twice(x) %}{{ x }}{{ x }}{% endmacro %}{{ twice(value) }}",
        "{{ value.__class__ }}",
        "{{ value.center(10) }}",
        "{% if value %}unclosed",
    ],
)
def test_unsupported_templates_are_refused(template: str) -> None:
    with pytest.raises(UnsupportedTemplateError):
        render_template(template, {"value": "1", "value_json": {"x": 1}})


@pytest.mark.parametrize(
    ("template", "variables"),
    [
        ("{{ value_json.missing }}", {"value_json": {"x": 1}}),
        ("{{ value_json.list[3] }}", {"value_json": {"list": [1]}}),
        ("{{ value | float }}", {"value": "warm"}),
    ],
)
def test_template_errors_on_a_payload(template: str, variables: dict[str, Any]) -> None:
    with pytest.raises(TemplateRenderError):
        render_template(template, variables)


@pytest.mark.parametrize(
    "template", ["{{ value_json.relay }}", "{{ states('switch.garden_pump') }}"]
)
def test_failing_value_template_warns_once_and_keeps_the_state(
    hub: Hub, caplog: pytest.LogCaptureFixture, template: str
) -> None:
    hub.discover("switch_garden_pump", value_template=template)
    hub.registry.update_state("switch.garden_pump", "on")
    with caplog.at_level(logging.WARNING):
        hub.broker.deliver("garden/pump/state", "off")  # not JSON: no value_json
        hub.broker.deliver("garden/pump/state", "off")
    assert hub.entity("switch.garden_pump").state == "on"
    assert caplog.text.count("failed on a message on 'garden/pump/state'") == 1


def test_value_template_on_json_payloads(hub: Hub) -> None:
    hub.discover("switch_garden_pump", value_template="{{ value_json.relay | default('off') }}")
    hub.broker.deliver("garden/pump/state", {"relay": "on"})
    assert hub.entity("switch.garden_pump").state == "on"
    hub.broker.deliver("garden/pump/state", {"other": 1})
    assert hub.entity("switch.garden_pump").state == "off"


# -- encoding commands ------------------------------------------------------------------------


def test_basic_light_sends_brightness_then_on_by_default(hub: Hub) -> None:
    hub.discover("light_tasmota_abbreviated")
    assert hub.encode("light.a1b2c3_li_1", "turn_on", brightness=128) == [
        ("tasmota_A1B2C3/cmnd/Dimmer", "50"),
        ("tasmota_A1B2C3/cmnd/POWER", "ON"),
    ]
    assert hub.encode("light.a1b2c3_li_1", "turn_on", brightness=1) == [
        ("tasmota_A1B2C3/cmnd/Dimmer", "1"),  # never rounded down to 0
        ("tasmota_A1B2C3/cmnd/POWER", "ON"),
    ]
    assert hub.encode("light.a1b2c3_li_1", "turn_off") == [("tasmota_A1B2C3/cmnd/POWER", "OFF")]
    assert hub.encode("light.a1b2c3_li_1", "turn_on", brightness=0) == [
        ("tasmota_A1B2C3/cmnd/POWER", "OFF")
    ]


@pytest.mark.parametrize(
    ("on_command_type", "expected"),
    [
        ("first", [("t/cmnd/POWER", "ON"), ("t/cmnd/Dimmer", "100")]),
        ("brightness", [("t/cmnd/Dimmer", "100")]),
    ],
)
def test_basic_light_on_command_type(hub: Hub, on_command_type: str, expected: list[Any]) -> None:
    hub.discover("light_tasmota_abbreviated", on_cmd_type=on_command_type, **{"~": "t/"})
    assert hub.encode("light.a1b2c3_li_1", "turn_on", brightness=255) == expected


def test_basic_light_rgb_and_color_temp_topics(hub: Hub) -> None:
    hub.broker.deliver("homeassistant/light/strip/config", {
        "name": "Strip", "~": "strip", "cmd_t": "~/power", "rgb_cmd_t": "~/rgb",
        "clr_temp_cmd_t": "~/ct", "stat_t": "~/state", "rgb_stat_t": "~/rgb/state",
    })
    strip = hub.entity("light.strip")
    assert strip.capabilities["supported_color_modes"] == ["color_temp", "rgb"]
    # No brightness topic: the color carries the brightness.
    assert hub.encode("light.strip", "turn_on", rgb_color=[255, 0, 0], brightness=128) == [
        ("strip/rgb", "128,0,0"),
        ("strip/power", "ON"),
    ]
    assert hub.encode("light.strip", "turn_on", color_temp_kelvin=2700) == [
        ("strip/ct", "370"),
        ("strip/power", "ON"),
    ]
    assert hub.encode("light.strip", "turn_on", color_temp_kelvin=20000)[0] == ("strip/ct", "153")
    hub.broker.deliver("strip/rgb/state", "128,0,64")
    strip = hub.entity("light.strip")
    assert strip.attributes["rgb_color"] == [255, 0, 128]
    assert strip.attributes["brightness"] == 128


def test_json_light_commands(hub: Hub) -> None:
    hub.discover("light_esphome_json")
    assert hub.encode("light.desk_strip", "turn_on", brightness=128, rgb_color=[255, 0, 0]) == [
        ("deskstrip/light/desk_strip/command",
         '{"state":"ON","color":{"r":255,"g":0,"b":0},"brightness":128}'),
    ]
    assert hub.encode("light.desk_strip", "turn_off") == [
        ("deskstrip/light/desk_strip/command", '{"state":"OFF"}')
    ]
    hub.discover("light_z2m_json")
    [(topic, payload)] = hub.encode("light.living_room_lamp", "turn_on", brightness=255,
                                    color_temp_kelvin=2700)
    assert topic == "zigbee2mqtt/Living room lamp/set"
    assert json.loads(payload) == {"state": "ON", "brightness": 254, "color_temp": 370}


def test_toggle_follows_the_registry_state(hub: Hub) -> None:
    hub.discover("switch_garden_pump")
    assert hub.encode("switch.garden_pump", "toggle") == [("garden/pump/set", "1")]
    hub.broker.deliver("garden/pump/state", "on")
    assert hub.encode("switch.garden_pump", "toggle") == [("garden/pump/set", "0")]


def test_switch_command_template(hub: Hub) -> None:
    hub.discover("switch_garden_pump", command_template='{"relay": "{{ value }}"}')
    assert hub.encode("switch.garden_pump", "turn_on") == [("garden/pump/set", '{"relay": "1"}')]


def test_cover_commands_and_position_scaling(hub: Hub) -> None:
    hub.discover("cover_shelly_blind")
    base = "shellies/office-blind/roller/0/command"
    assert hub.encode("cover.shelly25_office_blind", "open_cover") == [(base, "open")]
    assert hub.encode("cover.shelly25_office_blind", "close_cover") == [(base, "close")]
    assert hub.encode("cover.shelly25_office_blind", "stop_cover") == [(base, "stop")]
    assert hub.encode("cover.shelly25_office_blind", "set_cover_position", position=30) == [
        (f"{base}/pos", "30")
    ]
    hub.discover("cover_shelly_blind", pos_open=0, pos_clsd=100)  # an inverted device
    assert hub.encode("cover.shelly25_office_blind", "set_cover_position", position=30) == [
        (f"{base}/pos", "70")
    ]
    hub.broker.deliver("shellies/office-blind/roller/0/pos", "25")
    assert hub.entity("cover.shelly25_office_blind").attributes["current_position"] == 75


def test_valve_commands(hub: Hub) -> None:
    hub.discover("valve_irrigation")
    assert hub.encode("valve.irrigation_valve", "set_valve_position", position=40) == [
        ("irrigation/valve/set", "40")
    ]
    assert hub.encode("valve.irrigation_valve", "open_valve") == [("irrigation/valve/set", "OPEN")]
    hub.discover("valve_gas_shutoff")
    assert hub.encode("valve.gas_shutoff", "close_valve") == [("gas/valve/set", "CLOSE")]
    for service in ("set_valve_position", "stop_valve"):
        with pytest.raises(CommandNotSupportedError):
            hub.encode("valve.gas_shutoff", service, position=10)


def test_lock_commands(hub: Hub) -> None:
    hub.discover("lock_front_door")
    assert hub.encode("lock.front_door", "lock") == [("frontdoor/lock/set", "LOCK")]
    assert hub.encode("lock.front_door", "unlock") == [("frontdoor/lock/set", "UNLOCK")]
    assert hub.encode("lock.front_door", "open") == [("frontdoor/lock/set", "OPEN")]
    assert hub.entity("lock.front_door").capabilities["services"] == ["lock", "open", "unlock"]


def test_climate_commands_and_their_limits(hub: Hub) -> None:
    hub.discover("climate_thermostat")
    assert hub.encode("climate.thermostat_living", "set_temperature", temperature=21.5) == [
        ("thermostat/living/target/set", "21.5")
    ]
    assert hub.encode(
        "climate.thermostat_living", "set_temperature", temperature=20, hvac_mode="heat"
    ) == [("thermostat/living/mode/set", "heat"), ("thermostat/living/target/set", "20.0")]
    assert hub.encode("climate.thermostat_living", "set_hvac_mode", hvac_mode="auto") == [
        ("thermostat/living/mode/set", "auto")
    ]
    assert hub.encode("climate.thermostat_living", "turn_off") == [
        ("thermostat/living/mode/set", "off")
    ]
    assert hub.encode("climate.thermostat_living", "set_preset_mode", preset_mode="comfort") == [
        ("thermostat/living/preset/set", "comfort")
    ]
    with pytest.raises(CommandNotSupportedError, match="outside"):
        hub.encode("climate.thermostat_living", "set_temperature", temperature=31)
    with pytest.raises(CommandNotSupportedError, match="cool"):
        hub.encode("climate.thermostat_living", "set_hvac_mode", hvac_mode="cool")
    with pytest.raises(CommandNotSupportedError, match="required"):
        hub.encode("climate.thermostat_living", "set_temperature")


def test_fan_commands(hub: Hub) -> None:
    hub.discover("fan_ceiling")
    assert hub.encode("fan.bedroom_ceiling_fan", "turn_on", percentage=50) == [
        ("fans/bedroom/power/set", "true"),
        ("fans/bedroom/speed/set", "3"),
    ]
    assert hub.encode("fan.bedroom_ceiling_fan", "set_percentage", percentage=100) == [
        ("fans/bedroom/speed/set", "6")
    ]
    assert hub.encode("fan.bedroom_ceiling_fan", "set_percentage", percentage=0) == [
        ("fans/bedroom/power/set", "false")
    ]
    assert hub.encode("fan.bedroom_ceiling_fan", "set_preset_mode", preset_mode="breeze") == [
        ("fans/bedroom/preset/set", "breeze")
    ]
    with pytest.raises(CommandNotSupportedError):
        hub.encode("fan.bedroom_ceiling_fan", "set_preset_mode", preset_mode="turbo")


@pytest.mark.parametrize(
    ("recording", "entity_id", "service", "params", "expected"),
    [
        ("button_esphome_restart", "button.deskstrip_restart", "press", {},
         ("deskstrip/button/restart/command", "PRESS")),
        ("scene_movie_night", "scene.movie_night", "activate", {},
         ("livingroom/scene/set", "movie")),
        ("scene_movie_night", "scene.movie_night", "turn_on", {},
         ("livingroom/scene/set", "movie")),
        ("media_player_kitchen_speaker", "media_player.kitchenspeaker", "media_play", {},
         ("kitchenspeaker/play", "play")),
        ("media_player_kitchen_speaker", "media_player.kitchenspeaker", "media_play_pause", {},
         ("kitchenspeaker/playpause", "PlayPause")),
        ("media_player_kitchen_speaker", "media_player.kitchenspeaker", "media_next_track", {},
         ("kitchenspeaker/next", "Next")),
        ("media_player_kitchen_speaker", "media_player.kitchenspeaker", "volume_set",
         {"volume_level": 0.456}, ("kitchenspeaker/set_volume", "0.46")),
        ("media_player_office_radio", "media_player.office_radio", "media_pause", {},
         ("radio/office/pause", "Pause")),
        ("media_player_office_radio", "media_player.office_radio", "media_previous_track", {},
         ("radio/office/previous", "Previous")),
        ("vacuum_valetudo", "vacuum.valetudo_robo", "vacuum_start", {},
         ("valetudo/robo/command", "start")),
        ("vacuum_valetudo", "vacuum.valetudo_robo", "vacuum_pause", {},
         ("valetudo/robo/command", "pause")),
        ("vacuum_valetudo", "vacuum.valetudo_robo", "vacuum_stop", {},
         ("valetudo/robo/command", "stop")),
        ("vacuum_valetudo", "vacuum.valetudo_robo", "vacuum_return_to_base", {},
         ("valetudo/robo/command", "return_to_base")),
        ("alarm_control_panel_house", "alarm_control_panel.house", "alarm_arm_away",
         {"code": "1234"}, ("alarm/set", '{"action":"ARM_AWAY","code":"1234"}')),
        ("alarm_control_panel_house", "alarm_control_panel.house", "alarm_arm_home",
         {"code": "1234"}, ("alarm/set", '{"action":"ARM_HOME","code":"1234"}')),
        ("alarm_control_panel_house", "alarm_control_panel.house", "alarm_disarm",
         {"code": "0000"}, ("alarm/set", '{"action":"DISARM","code":"0000"}')),
    ],
)
def test_single_payload_commands(
    hub: Hub, recording: str, entity_id: str, service: str, params: dict[str, Any],
    expected: tuple[str, str],
) -> None:
    hub.discover(recording)
    assert hub.encode(entity_id, service, **params) == [expected]


def test_alarm_arming_modes_follow_supported_features(hub: Hub) -> None:
    hub.discover("alarm_control_panel_house")
    assert hub.entity("alarm_control_panel.house").capabilities["services"] == [
        "alarm_arm_away", "alarm_arm_home", "alarm_disarm",
    ]
    with pytest.raises(CommandNotSupportedError, match="arm_night"):
        hub.encode("alarm_control_panel.house", "alarm_arm_night")


def test_vacuum_pause_needs_the_pause_feature(hub: Hub) -> None:
    hub.discover("vacuum_valetudo", sup_feat=None)  # Home Assistant's defaults have no pause
    with pytest.raises(CommandNotSupportedError, match="pause"):
        hub.encode("vacuum.valetudo_robo", "vacuum_pause")
    assert hub.encode("vacuum.valetudo_robo", "vacuum_start") == [
        ("valetudo/robo/command", "start")
    ]


@pytest.mark.parametrize(
    ("name", "entity_id", "service", "params", "reason"),
    [
        ("switch_garden_pump", "switch.garden_pump", "lock", {}, "no 'lock' command"),
        ("light_z2m_json", "light.living_room_lamp", "turn_on", {"rgb_color": [1, 2, 3]}, "rgb"),
        ("light_z2m_json", "light.living_room_lamp", "turn_on", {"brightness": 300}, "outside"),
        ("light_esphome_json", "light.desk_strip", "turn_on", {"rgb_color": [1, 2]}, "rgb_color"),
        ("light_esphome_json", "light.desk_strip", "turn_on", {"color_temp_kelvin": 3000},
         "color_temp"),
        ("media_player_office_radio", "media_player.office_radio", "media_play_pause", {},
         "play_pause"),
        ("media_player_office_radio", "media_player.office_radio", "volume_set",
         {"volume_level": 1.5}, "outside"),
        ("cover_shelly_blind", "cover.shelly25_office_blind", "set_cover_position",
         {"position": "half"}, "number"),
        ("lock_front_door", "lock.front_door", "toggle", {}, "toggle"),
    ],
)
def test_unsupported_commands_raise(
    hub: Hub, name: str, entity_id: str, service: str, params: dict[str, Any], reason: str
) -> None:
    hub.discover(name)
    with pytest.raises(CommandNotSupportedError, match=reason):
        hub.encode(entity_id, service, **params)


def test_basic_on_off_light_refuses_brightness(hub: Hub) -> None:
    hub.broker.deliver("homeassistant/light/plain/config", {"cmd_t": "plain/set"})
    with pytest.raises(CommandNotSupportedError, match="brightness"):
        hub.encode("light.plain", "turn_on", brightness=10)
    assert hub.encode("light.plain", "turn_on") == [("plain/set", "ON")]


def test_encode_needs_a_wire_config() -> None:
    adapter = HomeAssistantDiscoveryAdapter()
    entity = Entity(entity_id="light.x", name="X", domain="light")
    with pytest.raises(CommandNotSupportedError):
        adapter.encode(entity, EntityCommand("light.x", "turn_on"))


def test_commands_encode_from_the_persisted_registry_after_a_restart(tmp_path: Path) -> None:
    registry, broker = DeviceRegistry(tmp_path / "registry.db"), FakeBroker()
    context = AdapterContext(registry, broker.subscribe, broker.publish)
    HomeAssistantDiscoveryAdapter().start(context)
    broker.deliver(
        CONFIG_TOPICS["light_tasmota_abbreviated"], recorded("light_tasmota_abbreviated")
    )
    registry.close()

    reopened = DeviceRegistry(tmp_path / "registry.db")
    light = reopened.get("light.a1b2c3_li_1")
    assert light is not None
    messages = HomeAssistantDiscoveryAdapter().encode(
        light, EntityCommand("light.a1b2c3_li_1", "turn_on", {"brightness": 255})
    )
    assert [(m.topic, m.payload, m.qos) for m in messages] == [
        ("tasmota_A1B2C3/cmnd/Dimmer", b"100", 1),
        ("tasmota_A1B2C3/cmnd/POWER", b"ON", 1),
    ]
    reopened.close()


def test_media_player_power_needs_a_command_topic(hub: Hub) -> None:
    hub.discover("media_player_office_radio")
    assert hub.encode("media_player.office_radio", "turn_off") == [("radio/office/power", "OFF")]
    assert hub.encode("media_player.office_radio", "turn_on") == [("radio/office/power", "ON")]
    hub.discover("media_player_kitchen_speaker")
    with pytest.raises(CommandNotSupportedError):
        hub.encode("media_player.kitchenspeaker", "turn_off")
