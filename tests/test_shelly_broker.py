"""The Shelly adapter on the real MQTT link and device gateway, through a real Mosquitto: a
test-side device (a plain paho client answering RPC as Shelly's docs show it, from the
documented Plus 1PM of tests/data/shelly) is found, read and commanded, and an independent
paho subscriber sees the command on ``<prefix>/rpc``."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from assistant.messages import EntityCommand
from assistant.registry import DeviceRegistry, Entity
from device_adapters.shelly import ShellyAdapter
from tests.adapter_support import TIMEOUT_S, hub, registry_until
from tests.conftest import Broker
from tests.shelly_support import device, reply_to

KETTLE = "switch.shellyplus1pm_a8032ab636ec_switch_0"


class PahoClient:
    """A plain paho client whose received messages land in an asyncio queue."""

    def __init__(self, port: int, name: str, topic: str,
                 on_message: Callable[[paho.Client, paho.MQTTMessage], None] | None = None
                 ) -> None:
        loop = asyncio.get_running_loop()
        self.received: asyncio.Queue[tuple[str, dict[str, Any]]] = asyncio.Queue()
        self.subscribed = asyncio.Event()
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id=name)

        def received(client: paho.Client, _userdata: Any, message: paho.MQTTMessage) -> None:
            if on_message is not None:
                on_message(client, message)
            item = (message.topic, json.loads(message.payload))
            loop.call_soon_threadsafe(self.received.put_nowait, item)

        self.client.on_message = received
        self.client.on_connect = lambda c, *_: c.subscribe(topic, qos=1)
        self.client.on_subscribe = lambda *_: loop.call_soon_threadsafe(self.subscribed.set)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    async def next(self) -> tuple[str, dict[str, Any]]:
        return await asyncio.wait_for(self.received.get(), TIMEOUT_S)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


class TestDevice(PahoClient):
    """The documented Plus 1PM: answers requests on ``<prefix>/rpc`` on ``<src>/rpc``."""

    __test__ = False  # not a pytest class

    def __init__(self, port: int, recorded: dict[str, Any]) -> None:
        self.recorded = recorded
        self.prefix = recorded["prefix"]
        super().__init__(port, "test-shelly-device", f"{self.prefix}/rpc", self._answer)

    def _answer(self, client: paho.Client, message: paho.MQTTMessage) -> None:
        request = json.loads(message.payload)
        client.publish(f"{request['src']}/rpc", json.dumps(reply_to(self.recorded, request)),
                       qos=1)

    def publish(self, suffix: str, payload: Any, *, retain: bool = False) -> None:
        data = payload if isinstance(payload, str) else json.dumps(payload)
        self.client.publish(f"{self.prefix}/{suffix}", data, qos=1, retain=retain)


async def entity_where(registry: DeviceRegistry, entity_id: str,
                       predicate: Callable[[Entity], bool]) -> Entity:
    """The entity once it exists and ``predicate`` holds, awaited on registry changes."""
    await registry_until(registry, lambda: (entity := registry.get_any(entity_id)) is not None
                         and predicate(entity))
    entity = registry.get_any(entity_id)
    assert entity is not None
    return entity


async def test_a_plus_1pm_is_found_read_and_switched(broker: Broker) -> None:
    recorded = device("plus1pm")
    prefix = recorded["prefix"]
    observer = PahoClient(broker.port, "test-shelly-observer", f"{prefix}/rpc")
    shelly = TestDevice(broker.port, recorded)
    try:
        await asyncio.wait_for(observer.subscribed.wait(), TIMEOUT_S)
        await asyncio.wait_for(shelly.subscribed.wait(), TIMEOUT_S)
        async with hub(broker, ShellyAdapter(client_id="replay", rpc_timeout_s=5),
                       "test-shelly-hub", sensitive=True) as (registry, gateway):
            shelly.publish("online", "true", retain=True)  # as the device does on connecting
            kettle = await entity_where(registry, KETTLE, lambda e: e.state == "on")
            seen = [await observer.next() for _ in range(3)]
            assert [frame["method"] for _topic, frame in seen] == [
                "Shelly.GetDeviceInfo", "Shelly.GetConfig", "Shelly.GetStatus"]
            assert observer.received.empty()  # reading the device commanded nothing

            assert kettle.device_ids == ("mac:a8032ab636ec",)
            await gateway.send([(kettle, EntityCommand(KETTLE, "turn_off"))])
            topic, frame = await observer.next()
            assert topic == f"{prefix}/rpc"
            assert {k: frame[k] for k in ("src", "method", "params")} == {
                "src": "mimo-home-replay", "method": "Switch.Set", "params": {"id": 0, "on": False}}
            assert registry.get_any(KETTLE) == kettle  # until the device says otherwise

            shelly.publish("events/rpc", recorded["notifications"][0])
            await entity_where(registry, KETTLE, lambda e: e.state == "off")
            shelly.publish("online", "false", retain=True)  # its last will
            assert (await entity_where(registry, KETTLE, lambda e: not e.available)).state == "off"
    finally:
        shelly.publish("online", "", retain=True)  # leave no retained message behind
        shelly.close()
        observer.close()
