"""Virtual home: discovery, commands, state and reset against a real Mosquitto.

Every simulator gets its own base topic (and so its own discovery node id), and an
independent paho client plays Home Assistant / the daemon.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest

from assistant.messages import EntityCommand, MqttMessage
from assistant.registry import DeviceRegistry
from device_adapters.base import AdapterContext
from device_adapters.ha_discovery.adapter import HomeAssistantDiscoveryAdapter
from assistant.virtual.home import EntityState, VirtualHome, demo_home, load_home
from tests.conftest import Broker

DATASETS = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "home-assistant-datasets"
TIMEOUT = 5.0
ENUM_SPELLING = re.compile(r"^[a-z_]+\.[A-Za-z]+\.[A-Z0-9_]+$")


# -- helpers ------------------------------------------------------------------------------------


class Observer:
    """An independent MQTT client that keeps the last message seen on every topic."""

    def __init__(self, broker: Broker, *filters: str) -> None:
        self.messages: dict[str, mqtt.MQTTMessage] = {}
        self._filters = filters
        self._subscribed = threading.Event()
        self._lock = threading.Lock()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2,
                                  client_id=f"observer-{uuid.uuid4().hex[:8]}")
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = lambda *_: self._subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()

    def _on_connect(self, client: mqtt.Client, *_: Any) -> None:
        if self._filters:
            client.subscribe([(f, 1) for f in self._filters])
        else:
            self._subscribed.set()

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.messages[message.topic] = message

    def payload(self, topic: str) -> str | None:
        with self._lock:
            message = self.messages.get(topic)
        return None if message is None else message.payload.decode()

    def matching(self, pattern: str) -> dict[str, mqtt.MQTTMessage]:
        with self._lock:
            return {t: m for t, m in self.messages.items() if mqtt.topic_matches_sub(pattern, t)}

    def publish(self, topic: str, payload: str | bytes, retain: bool = False) -> None:
        self.client.publish(topic, payload, qos=1, retain=retain).wait_for_publish(TIMEOUT)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


async def observe(broker: Broker, *filters: str) -> Observer:
    observer = Observer(broker, *filters)
    assert await asyncio.to_thread(observer._subscribed.wait, TIMEOUT), "observer not subscribed"
    return observer


async def until(predicate: Callable[[], bool], timeout: float = TIMEOUT) -> None:
    async def poll() -> None:
        while not predicate():
            await asyncio.sleep(0.01)

    await asyncio.wait_for(poll(), timeout)


def fresh_base() -> str:
    return f"vh-test-{uuid.uuid4().hex[:8]}"


@pytest.fixture
async def house(broker: Broker) -> AsyncIterator[VirtualHome]:
    home = VirtualHome(demo_home(), broker.host, broker.port, base_topic=fresh_base())
    await asyncio.wait_for(home.start(), TIMEOUT)
    yield home
    await asyncio.wait_for(home.stop(), TIMEOUT)


async def command(house: VirtualHome, broker: Broker, entity_id: str, aspect: str,
                  payload: str | bytes) -> None:
    """Publish a command to an entity's (aspect) command topic."""
    domain, object_id = entity_id.split(".")
    suffix = f"{aspect}/set" if aspect else "set"
    observer = await observe(broker)
    try:
        await asyncio.to_thread(observer.publish,
                                f"{house.base_topic}/{domain}/{object_id}/{suffix}", payload)
    finally:
        observer.close()


async def command_and_wait(house: VirtualHome, broker: Broker, entity_id: str, aspect: str,
                           payload: str, check: Callable[[EntityState], bool]) -> EntityState:
    await command(house, broker, entity_id, aspect, payload)
    await until(lambda: check(house.states()[entity_id]))
    return house.states()[entity_id]


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


# -- reset, change log, quiet -------------------------------------------------------------------


async def test_reset_restores_the_fixture_and_applies_the_setup(
    house: VirtualHome, broker: Broker, caplog: pytest.LogCaptureFixture
) -> None:
    base = house.base_topic
    initial = house.states()
    observer = await observe(broker, f"{base}/#")
    try:
        await command_and_wait(house, broker, "light.kitchen", "", '{"state": "ON"}',
                               lambda s: s.state == "on")
        await command_and_wait(house, broker, "lock.front_door", "", "UNLOCK",
                               lambda s: s.state == "unlocked")
        marker = await asyncio.wait_for(house.reset(), TIMEOUT)
        assert house.states() == initial
        assert house.changes_since(marker) == []
        await until(lambda: observer.payload(f"{base}/lock/front_door/state") == "LOCKED")

        setup = {
            "light.kitchen": {"state": "on", "attributes": {"brightness": 50}},
            "cover.living_room_blinds": {"attributes": {"current_position": 30}},
            "vacuum.robot_vacuum": {"state": "off"},  # datasets say off; vacuums idle
            "switch.coffee_maker": {"state": True},
            "light.no_such_light": {"state": "on"},
        }
        with caplog.at_level(logging.WARNING, logger="assistant.virtual.home"):
            marker = await asyncio.wait_for(house.reset(setup), TIMEOUT)
        assert "light.no_such_light" in caplog.text
        states = house.states()
        assert states["light.kitchen"].state == "on"
        assert states["light.kitchen"].attributes["brightness"] == 50
        assert states["light.kitchen"].attributes["rgb_color"] == [255, 180, 120]
        assert states["cover.living_room_blinds"].state == "open"
        assert states["cover.living_room_blinds"].attributes["current_position"] == 30
        assert states["vacuum.robot_vacuum"].state == "idle"
        assert states["switch.coffee_maker"].state == "on"
        assert states["lock.front_door"].state == "locked"
        await until(lambda: observer.payload(f"{base}/cover/living_room_blinds/position") == "30")
        assert json.loads(observer.payload(f"{base}/light/kitchen/state") or "")["brightness"] == 50

        await command_and_wait(house, broker, "switch.coffee_maker", "", "OFF",
                               lambda s: s.state == "off")
        changes = house.changes_since(marker)
        assert [(c.entity_id, c.before.state, c.after.state, c.cause) for c in changes] == [
            ("switch.coffee_maker", "on", "off", "command")]
    finally:
        observer.close()


async def test_wait_quiet(house: VirtualHome, broker: Broker) -> None:
    assert await asyncio.wait_for(house.wait_quiet(quiet_s=0.05, timeout_s=1), TIMEOUT)
    await command_and_wait(house, broker, "switch.coffee_maker", "", "ON",
                           lambda s: s.state == "on")
    assert not await asyncio.wait_for(house.wait_quiet(quiet_s=10, timeout_s=0.1), TIMEOUT)
    started = time.monotonic()
    assert await asyncio.wait_for(house.wait_quiet(quiet_s=0.3, timeout_s=3), TIMEOUT)
    assert time.monotonic() - started < 0.5


async def test_malformed_commands_are_logged_and_ignored(
    house: VirtualHome, broker: Broker, caplog: pytest.LogCaptureFixture
) -> None:
    before = house.states()
    garbage: list[tuple[str, str, str | bytes]] = [
        ("light.kitchen", "", "not json"),
        ("light.kitchen", "", '{"state": "BLINK"}'),
        ("light.kitchen", "", "[1, 2]"),
        ("light.kitchen", "", '{"state": "ON", "color": {"r": 300, "g": 0, "b": 0}}'),
        ("light.hallway", "", '{"state": "ON", "brightness": 10}'),  # an on/off light
        ("climate.thermostat", "temperature", "hot"),
        ("climate.thermostat", "temperature", "99"),
        ("climate.thermostat", "mode", "turbo"),
        ("cover.living_room_blinds", "position", "150"),
        ("lock.front_door", "", "OPEN_SESAME"),
        ("fan.ceiling_fan", "percentage", "-5"),
        ("media_player.kitchen_speaker", "volume", "2"),
        ("switch.coffee_maker", "", b"\xff\xfe"),
        ("vacuum.robot_vacuum", "", "dance"),
    ]
    with caplog.at_level(logging.WARNING, logger="assistant.virtual.home"):
        for entity_id, aspect, payload in garbage:
            await command(house, broker, entity_id, aspect, payload)
        # Commands are handled in order: once this one shows, the garbage was handled.
        await command_and_wait(house, broker, "lock.front_door", "", "UNLOCK",
                               lambda s: s.state == "unlocked")
    after = house.states()
    assert {k: v for k, v in after.items() if k != "lock.front_door"} == {
        k: v for k, v in before.items() if k != "lock.front_door"}
    assert caplog.text.count("ignored a malformed command") == len(garbage)


# -- the standalone entry point and its last will -----------------------------------------------


async def test_standalone_simulator_goes_offline_when_it_dies(broker: Broker) -> None:
    base = fresh_base()
    node = base.replace("-", "_")
    observer = await observe(broker, f"{base}/#", f"homeassistant/+/{node}/+/config")
    process = subprocess.Popen(
        [sys.executable, "-m", "assistant.virtual.home", "--host", broker.host,
         "--port", str(broker.port), "--base-topic", base, "--quiet"],
        cwd=Path(__file__).resolve().parents[1], stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        await until(lambda: observer.payload(f"{base}/availability") == "online", 15)
        await until(lambda: len(observer.matching(f"homeassistant/+/{node}/+/config")) == 25)
        process.send_signal(signal.SIGKILL)
        await until(lambda: observer.payload(f"{base}/availability") == "offline")
        late = await observe(broker, f"{base}/availability")
        try:
            await until(lambda: late.payload(f"{base}/availability") == "offline")
            assert late.matching(f"{base}/availability")[f"{base}/availability"].retain
        finally:
            late.close()
    finally:
        process.kill()
        process.wait(TIMEOUT)
        # A killed simulator leaves its retained configs: clear them for the other tests.
        for topic in list(observer.matching("#")):
            await asyncio.to_thread(observer.publish, topic, b"", True)
        observer.close()


# -- the project's own discovery adapter understands the simulator ------------------------------


class AdapterBridge:
    """The adapter's context over a real MQTT client; handlers run on the event loop."""

    def __init__(self, broker: Broker, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._handlers: list[tuple[str, Callable[[MqttMessage], None]]] = []
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2,
                                  client_id=f"adapter-{uuid.uuid4().hex[:8]}")
        self.client.on_message = self._on_message
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        copy = MqttMessage(message.topic, message.payload, message.qos, message.retain)
        self._loop.call_soon_threadsafe(self._dispatch, copy)

    def _dispatch(self, message: MqttMessage) -> None:
        for topic_filter, handler in list(self._handlers):
            if mqtt.topic_matches_sub(topic_filter, message.topic):
                handler(message)

    def subscribe(self, topic_filter: str, handler: Callable[[MqttMessage], None]
                  ) -> Callable[[], None]:
        entry = (topic_filter, handler)
        self._handlers.append(entry)
        self.client.subscribe(topic_filter, qos=1)
        return lambda: self._handlers.remove(entry)

    def publish(self, message: MqttMessage) -> None:
        self.client.publish(message.topic, message.payload, message.qos, message.retain)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


async def test_discovery_adapter_sees_and_commands_every_device(
    house: VirtualHome, broker: Broker
) -> None:
    registry = DeviceRegistry(None)
    bridge = AdapterBridge(broker, asyncio.get_running_loop())
    adapter = HomeAssistantDiscoveryAdapter()
    await until(lambda: bridge.client.is_connected())
    stop = adapter.start(AdapterContext(registry, bridge.subscribe, bridge.publish))
    # scenes and buttons have no state topic; the to-do list is a sensor on the wire
    stateful = {eid for eid in house.states() if eid.split(".")[0] not in ("scene", "button")}
    registry_id = {eid: eid.replace("todo.", "sensor.") for eid in house.states()}

    def agree(entity_ids: set[str]) -> bool:
        states = house.states()
        for entity_id in entity_ids:
            entity = registry.get(registry_id[entity_id])
            if entity is None or (entity_id in stateful
                                  and entity.state != states[entity_id].state):
                return False
        return True

    try:
        await until(lambda: len(registry) == 25 and agree(set(house.states())))
        kitchen = registry.get("light.kitchen")
        assert kitchen is not None and kitchen.area == "kitchen" and kitchen.available
        commands = [
            ("light.kitchen", "turn_on", {"brightness": 128, "rgb_color": [0, 0, 255]}),
            ("light.hallway", "turn_off", {}),
            ("lock.front_door", "unlock", {}),
            ("cover.living_room_blinds", "set_cover_position", {"position": 30}),
            ("cover.garage_door", "open_cover", {}),
            ("climate.thermostat", "set_temperature", {"temperature": 22.5}),
            ("climate.thermostat", "set_hvac_mode", {"hvac_mode": "cool"}),
            ("fan.ceiling_fan", "set_percentage", {"percentage": 40}),
            ("valve.garden_sprinkler", "open_valve", {}),
            ("media_player.kitchen_speaker", "media_play", {}),
            ("media_player.kitchen_speaker", "volume_set", {"volume_level": 0.6}),
            ("media_player.kitchen_speaker", "media_next_track", {}),
            ("vacuum.robot_vacuum", "vacuum_start", {}),
            ("switch.coffee_maker", "turn_on", {}),
            ("button.restart_router", "press", {}),
        ]
        for entity_id, service, params in commands:
            entity = registry.get(entity_id)
            assert entity is not None, entity_id
            for message in adapter.encode(entity, EntityCommand(entity_id, service, params)):
                bridge.publish(message)
        await until(lambda: house.states()["button.restart_router"].state != "unknown")
        states = house.states()
        assert states["light.kitchen"].attributes["rgb_color"] == [0, 0, 255]
        assert states["light.kitchen"].attributes["brightness"] == 128
        assert states["lock.front_door"].state == "unlocked"
        assert states["cover.living_room_blinds"].attributes["current_position"] == 30
        assert states["cover.garage_door"].state == "open"
        assert states["climate.thermostat"].state == "cool"
        assert states["climate.thermostat"].attributes["temperature"] == 22.5
        assert states["fan.ceiling_fan"].attributes["percentage"] == 40
        assert states["valve.garden_sprinkler"].state == "open"
        assert states["media_player.kitchen_speaker"].state == "playing"
        assert states["media_player.kitchen_speaker"].attributes["volume_level"] == 0.6
        assert states["media_player.kitchen_speaker"].attributes["media_track"] == 4
        assert states["vacuum.robot_vacuum"].state == "cleaning"
        assert states["switch.coffee_maker"].state == "on"
        await until(lambda: agree(set(states)))
        assert (registry.get("light.kitchen") or kitchen).attributes["brightness"] == 128

        await asyncio.wait_for(house.set_available("lock.front_door", False), TIMEOUT)
        await until(lambda: not (registry.get("lock.front_door") or kitchen).available)
        await asyncio.wait_for(house.reset(), TIMEOUT)  # the fixture's devices are all online
        await until(lambda: (registry.get("lock.front_door") or kitchen).available
                    and agree(set(states)))
    finally:
        stop()
        bridge.close()
