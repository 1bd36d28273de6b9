"""The Zigbee2MQTT adapter on the real MQTT link and device gateway, against a real
Mosquitto: the recorded bridge payloads are replayed by a plain paho client (as Zigbee2MQTT
would publish them, retained), and the commands are seen by another, independent one."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from assistant.messages import EntityCommand
from device_adapters.zigbee2mqtt import Zigbee2MqttAdapter
from tests.adapter_support import TIMEOUT_S, hub, registry_until
from tests.conftest import Broker
from tests.zigbee2mqtt_support import DEVICES, GROUPS, STATES, entity_id

HUE = "light.z2m_0017880104dfc05e_light"
LOCK = entity_id("lock", "front door", "lock")


class PahoClient:
    """A plain paho client: publishes like Zigbee2MQTT, records what arrives on ``topic``."""

    def __init__(self, broker: Broker, topic: str | None = None) -> None:
        self.loop = asyncio.get_running_loop()
        self.messages: list[paho.MQTTMessage] = []
        self.arrived = asyncio.Event()
        self.subscribed = asyncio.Event()
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"z2m-{uuid.uuid4()}")
        self.client.on_message = lambda _c, _u, m: self.loop.call_soon_threadsafe(self._got, m)
        self.client.on_subscribe = lambda *_: self.loop.call_soon_threadsafe(self.subscribed.set)
        if topic is not None:
            self.client.on_connect = lambda c, *_: c.subscribe(topic, qos=1)
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()

    def _got(self, message: paho.MQTTMessage) -> None:
        self.messages.append(message)
        self.arrived.set()

    async def next_matching(self, wanted: Callable[[paho.MQTTMessage], bool]) -> paho.MQTTMessage:
        async def wait() -> paho.MQTTMessage:
            while True:
                for message in self.messages:
                    if wanted(message):
                        return message
                self.arrived.clear()
                await self.arrived.wait()
        return await asyncio.wait_for(wait(), TIMEOUT_S)

    def publish(self, topic: str, payload: object, retain: bool = False) -> None:
        body = payload if isinstance(payload, str) else json.dumps(payload)
        self.client.publish(topic, body, qos=1, retain=retain).wait_for_publish(TIMEOUT_S)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


async def test_replayed_bridge_payloads_become_entities_and_commands_reach_the_set_topic(
        broker: Broker) -> None:
    base = f"z2m-{uuid.uuid4().hex[:8]}"
    zigbee2mqtt = PahoClient(broker)
    watcher = PahoClient(broker, f"{base}/#")
    await asyncio.wait_for(watcher.subscribed.wait(), TIMEOUT_S)
    # Zigbee2MQTT retains its bridge topics, and a device's state with the device option
    # ``retain: true``: the hub subscribes to a state topic only once it knows the device.
    retained = {f"{base}/bridge/state": "online", f"{base}/bridge/devices": DEVICES,
                f"{base}/bridge/groups": GROUPS, f"{base}/hue_back_tv": STATES["hue_back_tv"]}
    for topic, payload in retained.items():
        zigbee2mqtt.publish(topic, payload, retain=True)
    try:
        async with hub(broker, Zigbee2MqttAdapter(base), f"hub-{base}") as (registry, gateway):
            await registry_until(registry, lambda: registry.get_any(LOCK) is not None)
            await registry_until(registry, lambda: registry.get_any(HUE).state == "on")
            assert registry.get_any(HUE).attributes["brightness"] == 99

            light, lock = registry.get_any(HUE), registry.get_any(LOCK)
            await gateway.send([(light, EntityCommand(HUE, "turn_on", {"brightness": 128})),
                                (lock, EntityCommand(LOCK, "lock"))])
            to_light = await watcher.next_matching(
                lambda m: m.topic == f"{base}/hue_back_tv/set")
            to_lock = await watcher.next_matching(lambda m: m.topic == f"{base}/front door/set")
            assert json.loads(to_light.payload) == {"state": "ON", "brightness": 127}
            assert json.loads(to_lock.payload) == {"state": "LOCK"}
            assert (to_light.qos, to_light.retain, to_lock.qos, to_lock.retain) == (
                1, False, 1, False)
            # Nothing else was commanded; the only other messages are the /get requests.
            sets = [m.topic for m in watcher.messages if m.topic.endswith("/set")]
            assert sorted(sets) == [f"{base}/front door/set", f"{base}/hue_back_tv/set"]
            gets = {m.topic for m in watcher.messages if m.topic.endswith("/get")}
            assert f"{base}/front door/get" in gets
            assert f"{base}/livingroom/window/get" not in gets

            zigbee2mqtt.publish(f"{base}/bridge/state", "offline", retain=True)
            await registry_until(registry, lambda: not registry.get_any(LOCK).available)
            assert not registry.get_any(HUE).available
    finally:
        for topic in retained:
            zigbee2mqtt.publish(topic, "", retain=True)  # clear for whoever runs next
        zigbee2mqtt.close()
        watcher.close()
