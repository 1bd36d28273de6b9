"""Virtual home: discovery, commands, state and reset against a real Mosquitto.

Every simulator gets its own base topic (and so its own discovery node id), and an
independent paho client plays Home Assistant / the daemon.
"""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

import pytest

from assistant.virtual.home import EntityState, VirtualHome, demo_home, load_home
from tests.conftest import Broker

DATASETS = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "home-assistant-datasets"
ENUM_SPELLING = re.compile(r"^[a-z_]+\.[A-Za-z]+\.[A-Z0-9_]+$")


from tests.virtual_home_support import (  # noqa: F401 (house: a fixture)
    TIMEOUT,
    command_and_wait,
    fresh_base,
    house,
    observe,
    until,
)

# -- the home description -----------------------------------------------------------------------


def test_demo_home_is_a_small_two_floor_home() -> None:
    home = demo_home()
    floor_ids = {floor.id for floor in home.floors}
    area_ids = {area.id for area in home.areas}
    assert len(floor_ids) == 2
    assert all(area.floor in floor_ids for area in home.areas)
    assert 20 <= len(home.entities) <= 30
    assert all(e.area in area_ids for e in home.entities if e.area is not None)
    assert {e.domain for e in home.entities} >= {
        "light", "switch", "fan", "cover", "lock", "climate", "valve", "media_player",
        "vacuum", "sensor", "binary_sensor", "scene", "todo"}
    garage = next(e for e in home.entities if e.entity_id == "cover.garage_door")
    assert garage.device_class == "garage"


def test_dataset_homes_load_with_normalised_states_and_attributes() -> None:
    homes = [p.parent for sub in ("device-actions-v2-fixtures", "assist-mini")
             for p in sorted((DATASETS / sub).glob("*/_fixtures.yaml"))]
    if not homes:
        pytest.skip(f"no datasets under {DATASETS}")
    for path in homes:
        spec = load_home(path)
        assert spec.entities, path
        states = VirtualHome(spec, "127.0.0.1", 1).states()  # builds, does not connect
        for entity_id, state in states.items():
            assert isinstance(state.state, str) and state.state, (path, entity_id)
            plain = json.dumps(state.attributes)
            assert not any(ENUM_SPELLING.match(str(v)) for v in _leaves(state.attributes)), (
                path, entity_id, plain)

    garage = VirtualHome(load_home(DATASETS / "assist-mini" / "home1-us-cover-garage"),
                         "127.0.0.1", 1).states()
    assert garage["cover.garage_door_opener"] == EntityState(
        "closed", {"device_class": "garage", "supported_features": ["open", "close"]})
    lock = load_home(DATASETS / "assist-mini" / "home1-us-lock")
    classes = {e.entity_id: e.device_class for e in lock.entities}
    assert classes["binary_sensor.smart_lock"] == "lock"


def _leaves(value: Any) -> list[Any]:
    if isinstance(value, dict):
        return [leaf for item in value.values() for leaf in _leaves(item)]
    if isinstance(value, list):
        return [leaf for item in value for leaf in _leaves(item)]
    return [value]


def test_fixture_file_with_floors_and_odd_states(tmp_path: Path) -> None:
    fixture = tmp_path / "_fixtures.yaml"
    fixture.write_text("""
floors: [{id: up, name: Upstairs}]
areas: [{id: attic, name: Attic, floor: up}, {id: shed, name: Shed, floor: outside}]
devices: [{id: plug, name: Plug, area: shed, info: {manufacturer: Acme}}]
entities:
  - {id: switch.plug, name: Plug, device: plug, state: true}
  - {id: cover.hatch, name: Hatch, area: attic, state: false,
     attributes: {device_class: cover.CoverDeviceClass.DOOR, current_position: 0}}
  - {id: light.attic, name: Attic Light, area: attic,
     attributes: {supported_color_modes: [brightness], color_mode: [brightness], brightness: 90}}
  - {id: climate.attic, name: Attic Heater, area: attic,
     attributes: {hvac_modes: ["off", heat], hvac_mode: heat, target_temperature: 18}}
  - {id: sensor.attic_temperature, name: Attic Temperature, area: attic,
     attributes: {native_value: 17, native_unit_of_measurement: °C}}
""")
    spec = load_home(tmp_path)
    assert [(f.id, f.name) for f in spec.floors] == [("up", "Upstairs"), ("outside", "outside")]
    plug = spec.entities[0]
    assert (plug.area, plug.state) == ("shed", "on")  # the device's area
    states = VirtualHome(spec, "127.0.0.1", 1).states()
    assert states["cover.hatch"].state == "closed"
    assert states["cover.hatch"].attributes["device_class"] == "door"
    assert states["light.attic"] == EntityState("on", {
        "supported_color_modes": ["brightness"], "color_mode": "brightness", "brightness": 90})
    assert states["climate.attic"].state == "heat"
    assert states["climate.attic"].attributes["temperature"] == 18
    assert states["sensor.attic_temperature"] == EntityState("17", {"unit_of_measurement": "°C"})


# -- discovery --------------------------------------------------------------------------------


async def test_discovery_configs_are_retained_json_with_home_assistant_options(
    house: VirtualHome, broker: Broker
) -> None:
    base, node = house.base_topic, house.node_id
    observer = await observe(broker, f"homeassistant/+/{node}/+/config", f"{base}/#")
    try:
        await until(lambda: len(observer.matching(f"homeassistant/+/{node}/+/config")) == 25)
        configs = {}
        for topic, message in observer.matching(f"homeassistant/+/{node}/+/config").items():
            assert message.retain, topic
            config = json.loads(message.payload)
            configs[config["default_entity_id"]] = config
            assert topic.split("/")[1] == config["default_entity_id"].split(".")[0], topic
            # the to-do list is a sensor on the wire; its topics keep the fixture's domain
            fixture_id = config["default_entity_id"].replace("sensor.shopping", "todo.shopping")
            domain, object_id = fixture_id.split(".")
            assert config["name"] and config["unique_id"] and config["device"]["identifiers"]
            assert {a["topic"] for a in config["availability"]} == {
                f"{base}/availability", f"{base}/{domain}/{object_id}/availability"}
            for option, value in config.items():
                if option.endswith("_topic"):
                    assert value.startswith(f"{base}/{domain}/{object_id}/"), (option, value)
        assert len({c["unique_id"] for c in configs.values()}) == 25
        assert "sensor.shopping_list" in configs  # the to-do list, as a sensor of open items

        kitchen = configs["light.kitchen"]
        assert kitchen["schema"] == "json" and kitchen["brightness"] is True
        assert kitchen["supported_color_modes"] == ["rgb"]
        assert kitchen["command_topic"] == f"{base}/light/kitchen/set"
        assert kitchen["state_topic"] == f"{base}/light/kitchen/state"
        assert kitchen["device"]["suggested_area"] == "Kitchen"
        assert kitchen["device"]["name"] == "Kitchen Light"
        assert "brightness" not in configs["light.hallway"]  # an on/off light
        for entity_id, options in {
            "lock.front_door": {"payload_lock": "LOCK", "state_unlocked": "UNLOCKED"},
            "cover.living_room_blinds": {
                "payload_stop": "STOP", "position_open": 100,
                "set_position_topic": f"{base}/cover/living_room_blinds/position/set"},
            "cover.garage_door": {"device_class": "garage"},
            "climate.thermostat": {"modes": ["off", "heat", "cool", "auto"], "min_temp": 10,
                                   "max_temp": 30, "temperature_unit": "C"},
            "valve.garden_sprinkler": {"reports_position": False, "payload_open": "OPEN"},
            "fan.ceiling_fan": {
                "percentage_command_topic": f"{base}/fan/ceiling_fan/percentage/set"},
            "media_player.kitchen_speaker": {
                "device_class": "speaker",
                "volume_set_topic": f"{base}/media_player/kitchen_speaker/volume/set"},
            "vacuum.robot_vacuum": {"payload_start": "start",
                                    "payload_return_to_base": "return_to_base"},
            "sensor.living_room_temperature": {"device_class": "temperature",
                                               "unit_of_measurement": "°C"},
            "binary_sensor.back_door": {"device_class": "door", "payload_on": "ON"},
            "scene.movie_night": {"payload_on": "ON"},
            "button.restart_router": {"payload_press": "PRESS"},
        }.items():
            assert configs[entity_id].items() >= options.items(), entity_id
        assert "set_position_topic" not in configs["cover.garage_door"]

        # the simulator's own availability is announced last, so by then every state is in
        await until(lambda: observer.payload(f"{base}/availability") == "online")
        assert observer.payload(f"{base}/climate/thermostat/temperature") == "21"
        assert observer.matching(f"{base}/climate/thermostat/temperature")[
            f"{base}/climate/thermostat/temperature"].retain
        assert observer.payload(f"{base}/lock/front_door/availability") == "online"
        assert json.loads(observer.payload(f"{base}/light/kitchen/state") or "") == {"state": "OFF"}
        assert observer.payload(f"{base}/cover/living_room_blinds/position") == "100"
        assert observer.payload(f"{base}/climate/thermostat/mode") == "heat"
        assert observer.payload(f"{base}/lock/front_door/state") == "LOCKED"
    finally:
        observer.close()


async def test_stop_removes_every_retained_config_and_state(broker: Broker) -> None:
    home = VirtualHome(demo_home(), broker.host, broker.port, base_topic=fresh_base())
    await asyncio.wait_for(home.start(), TIMEOUT)
    await asyncio.wait_for(home.stop(), TIMEOUT)
    observer = await observe(broker, f"homeassistant/+/{home.node_id}/+/config",
                             f"{home.base_topic}/#")
    try:
        await asyncio.sleep(0.2)  # any retained message would arrive right after subscribing
        assert observer.messages == {}
    finally:
        observer.close()


# -- commands -----------------------------------------------------------------------------------


async def test_light_command_changes_state_and_retained_state(
    house: VirtualHome, broker: Broker
) -> None:
    on = json.dumps({"state": "ON", "brightness": 128, "color": {"r": 255, "g": 0, "b": 0}})
    state = await command_and_wait(house, broker, "light.kitchen", "", on,
                                   lambda s: s.state == "on")
    assert state.attributes == {"supported_color_modes": ["rgb"], "color_mode": "rgb",
                                     "brightness": 128, "rgb_color": [255, 0, 0]}
    late = await observe(broker, f"{house.base_topic}/light/kitchen/state")
    try:
        await until(lambda: late.payload(f"{house.base_topic}/light/kitchen/state") is not None)
        assert json.loads(late.payload(f"{house.base_topic}/light/kitchen/state") or "") == {
            "state": "ON", "color_mode": "rgb", "brightness": 128,
            "color": {"r": 255, "g": 0, "b": 0}}
    finally:
        late.close()

    off = await command_and_wait(house, broker, "light.kitchen", "", '{"state": "OFF"}',
                                 lambda s: s.state == "off")
    assert "brightness" not in off.attributes and "rgb_color" not in off.attributes
    again = await command_and_wait(house, broker, "light.kitchen", "", '{"state": "ON"}',
                                   lambda s: s.state == "on")
    assert again.attributes["brightness"] == 128  # the bulb remembers
    fresh = await command_and_wait(house, broker, "light.bedroom", "", '{"state": "ON"}',
                                   lambda s: s.state == "on")
    assert fresh.attributes["brightness"] == 255  # no brightness known: full
    dimmed = await command_and_wait(house, broker, "light.bedroom", "",
                                    '{"state": "ON", "brightness": 0}', lambda s: s.state == "off")
    assert "brightness" not in dimmed.attributes


async def test_lock_and_unlock(house: VirtualHome, broker: Broker) -> None:
    base = house.base_topic
    observer = await observe(broker, f"{base}/lock/front_door/state")
    try:
        await command_and_wait(house, broker, "lock.front_door", "", "UNLOCK",
                               lambda s: s.state == "unlocked")
        await until(lambda: observer.payload(f"{base}/lock/front_door/state") == "UNLOCKED")
        await command_and_wait(house, broker, "lock.front_door", "", "LOCK",
                               lambda s: s.state == "locked")
        await until(lambda: observer.payload(f"{base}/lock/front_door/state") == "LOCKED")
    finally:
        observer.close()


async def test_cover_position(house: VirtualHome, broker: Broker) -> None:
    base = house.base_topic
    observer = await observe(broker, f"{base}/cover/#")
    try:
        state = await command_and_wait(house, broker, "cover.living_room_blinds", "position",
                                       "40", lambda s: s.attributes["current_position"] == 40)
        assert state.state == "open"
        await until(lambda: observer.payload(f"{base}/cover/living_room_blinds/position") == "40")
        closed = await command_and_wait(house, broker, "cover.living_room_blinds", "", "CLOSE",
                                        lambda s: s.state == "closed")
        assert closed.attributes["current_position"] == 0
        await until(lambda: observer.payload(f"{base}/cover/living_room_blinds/state") == "closed")
        garage = await command_and_wait(house, broker, "cover.garage_door", "", "OPEN",
                                        lambda s: s.state == "open")
        assert "current_position" not in garage.attributes
    finally:
        observer.close()


async def test_climate_temperature_mode_and_power(house: VirtualHome, broker: Broker) -> None:
    base = house.base_topic
    observer = await observe(broker, f"{base}/climate/#")
    try:
        await command_and_wait(house, broker, "climate.thermostat", "temperature", "23.5",
                               lambda s: s.attributes["temperature"] == 23.5)
        await until(lambda: observer.payload(f"{base}/climate/thermostat/temperature") == "23.5")
        cool = await command_and_wait(house, broker, "climate.thermostat", "mode", "cool",
                                      lambda s: s.state == "cool")
        assert cool.attributes["hvac_action"] == "idle"  # 19.5 °C in the room, 23.5 wanted
        await command_and_wait(house, broker, "climate.thermostat", "power", "OFF",
                               lambda s: s.state == "off")
        await command_and_wait(house, broker, "climate.thermostat", "power", "ON",
                               lambda s: s.state == "cool")  # back to the last mode
        await until(lambda: observer.payload(f"{base}/climate/thermostat/mode") == "cool")
    finally:
        observer.close()


@pytest.mark.parametrize(("entity_id", "aspect", "payload", "state", "attributes"), [
    ("switch.coffee_maker", "", "ON", "on", {}),
    ("fan.ceiling_fan", "", "ON", "on", {"percentage": 100}),
    ("fan.ceiling_fan", "percentage", "40", "on", {"percentage": 40}),
    ("valve.garden_sprinkler", "", "OPEN", "open", {}),
    ("media_player.kitchen_speaker", "play", "Play", "playing", {}),
    ("media_player.kitchen_speaker", "next", "Next", "paused", {"media_track": 4}),
    ("media_player.kitchen_speaker", "previous", "", "paused", {"media_track": 2}),
    ("media_player.kitchen_speaker", "volume", "0.7", "paused", {"volume_level": 0.7}),
    ("media_player.living_room_tv", "", "ON", "idle", {}),
    ("vacuum.robot_vacuum", "", "start", "cleaning", {}),
    ("vacuum.robot_vacuum", "", "return_to_base", "returning", {}),
])
async def test_domain_commands(house: VirtualHome, broker: Broker, entity_id: str, aspect: str,
                               payload: str, state: str, attributes: dict[str, Any]) -> None:
    before = house.states()[entity_id]
    after = await command_and_wait(house, broker, entity_id, aspect, payload,
                                   lambda s: s != before)
    assert after.state == state
    assert after.attributes.items() >= attributes.items()


async def test_scene_sets_its_entities_and_button_records_the_press(
    house: VirtualHome, broker: Broker
) -> None:
    marker = house.mark()
    scene = await command_and_wait(house, broker, "scene.movie_night", "", "ON",
                                   lambda s: s.state != "unknown")
    assert scene.attributes["entity_id"][0] == "light.living_room_ceiling"
    states = house.states()
    assert states["light.living_room_ceiling"].state == "off"
    assert states["light.living_room_lamp"].attributes["brightness"] == 60
    assert states["cover.living_room_blinds"].attributes["current_position"] == 0
    assert states["media_player.living_room_tv"].state == "idle"
    assert {c.entity_id for c in house.changes_since(marker)} == {
        "scene.movie_night", "light.living_room_ceiling", "light.living_room_lamp",
        "cover.living_room_blinds", "media_player.living_room_tv"}
    await command_and_wait(house, broker, "button.restart_router", "", "PRESS",
                           lambda s: s.state != "unknown")
