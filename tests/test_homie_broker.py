"""The Homie adapter end to end: the recordings replayed into a real Mosquitto by a plain
paho client, the adapter on the real MqttLink and DeviceGateway, and the commands seen by
an independent subscriber."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from assistant.devices import DeviceGateway
from assistant.messages import EntityCommand
from device_adapters.base import CommandNotSupportedError
from device_adapters.homie import HomieAdapter
from tests.adapter_support import hub, registry_until
from tests.conftest import Broker
from tests.test_homie import recording
from tests.test_mqtt_link import Recorder, until

RECORDINGS = ("v5_kitchen_light", "v4_devices")


@pytest.fixture
def base() -> str:
    return f"homie{uuid.uuid4().hex[:8]}"  # a homie-domain of its own: no retained leftovers


@pytest.fixture
def replayed(broker: Broker, base: str) -> Iterator[list[str]]:
    """The recordings published as retained messages under ``base``; cleared afterwards."""
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"replay-{base}")
    client.connect(broker.host, broker.port)
    client.loop_start()
    topics = []
    try:
        for name in RECORDINGS:
            for topic, payload in recording(name):
                topic = base + topic.removeprefix("homie")
                client.publish(topic, payload, qos=1, retain=True).wait_for_publish(5)
                topics.append(topic)
        yield list(dict.fromkeys(topics))
    finally:
        for topic in topics:
            client.publish(topic, b"", qos=1, retain=True).wait_for_publish(5)
        client.disconnect()
        client.loop_stop()


@pytest.fixture
async def gateway(broker: Broker, base: str) -> AsyncIterator[DeviceGateway]:
    async with hub(broker, HomieAdapter(base_topic=base), f"mimo-{base}",
                   sensitive=True) as (_registry, gateway):
        yield gateway


async def test_a_replayed_light_is_switched_on_its_set_topics(
        broker: Broker, base: str, replayed: list[str], gateway: DeviceGateway) -> None:
    watcher = Recorder(broker.port, f"{base}/#")
    try:
        await watcher.wait_for(len(replayed))  # the retained recordings: it is subscribed
        registry = gateway.registry
        await registry_until(registry, lambda: registry.get("light.kitchen_light_light")
                             is not None and registry.get("sensor.super_car_engine_temperature")
                             is not None)
        light = registry.get("light.kitchen_light_light")
        assert light is not None and (light.state, light.attributes["brightness"]) == ("on", 153)
        v4_sensor = registry.get("sensor.super_car_engine_temperature")
        assert v4_sensor is not None and v4_sensor.state == "21.5"
        await gateway.send([(light, EntityCommand(light.entity_id, "turn_on",
                                                  {"brightness": 128}))])
        await watcher.wait_for(len(replayed) + 2)
        commands = [(t, p) for t, p in watcher.messages if t.endswith("/set")]
        assert commands == [(f"{base}/5/kitchen-light/light/power/set", b"true"),
                            (f"{base}/5/kitchen-light/light/brightness/set", b"50")]
        # A new subscriber gets what is retained (another filter: Recorder names its client
        # by it, and a second client of the same name would push the first off the broker).
        late = Recorder(broker.port, f"{base}/+/#")
        try:
            await late.wait_for(len(replayed))
            marker = f"{base}/marker"  # the broker sends it after every retained one
            watcher.client.publish(marker, b"after the retained ones", qos=1)
            await until(lambda: marker in (t for t, _ in late.messages), 10)
            assert not [t for t, _ in late.messages if t.endswith("/set")]  # never retained
        finally:
            late.close()
    finally:
        watcher.close()


async def test_a_v4_device_is_never_commanded(
        base: str, replayed: list[str], gateway: DeviceGateway) -> None:
    registry = gateway.registry
    await registry_until(registry, lambda: registry.get("binary_sensor.kitchen_light_light_power")
                         is not None)
    power = registry.get("binary_sensor.kitchen_light_light_power")
    assert power is not None and power.state == "on"
    with pytest.raises(CommandNotSupportedError, match="no 'turn_on' command"):
        await asyncio.wait_for(gateway.send(
            [(power, EntityCommand(power.entity_id, "turn_on"))]), 5)
