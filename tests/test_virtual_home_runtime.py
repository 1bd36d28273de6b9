"""Virtual home at run time: reset, change log and quiet, the standalone entry point and its
last will, and the project's own discovery adapter driving every simulated device."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import signal
import subprocess
import sys
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
from assistant.virtual.home import VirtualHome, demo_home
from tests.conftest import Broker

DATASETS = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "home-assistant-datasets"
ENUM_SPELLING = re.compile(r"^[a-z_]+\.[A-Za-z]+\.[A-Z0-9_]+$")


from tests.virtual_home_support import (  # noqa: F401 (house: a fixture)
    TIMEOUT,
    command,
    command_and_wait,
    fresh_base,
    house,
    observe,
    until,
)

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


@pytest.fixture
async def own_prefix_house(broker: Broker) -> AsyncIterator[VirtualHome]:
    """A house under a discovery prefix of its own: what other tests leave retained under
    "homeassistant" (a hub announcing itself, say) is not part of it."""
    base = fresh_base()
    home = VirtualHome(demo_home(), broker.host, broker.port, discovery_prefix=f"{base}-ha",
                       base_topic=base)
    await asyncio.wait_for(home.start(), TIMEOUT)
    yield home
    await asyncio.wait_for(home.stop(), TIMEOUT)


async def test_discovery_adapter_sees_and_commands_every_device(
    own_prefix_house: VirtualHome, broker: Broker
) -> None:
    house = own_prefix_house
    registry = DeviceRegistry(None)
    bridge = AdapterBridge(broker, asyncio.get_running_loop())
    adapter = HomeAssistantDiscoveryAdapter(house.discovery_prefix)
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
