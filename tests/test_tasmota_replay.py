"""Real devices' Tasmota discovery replayed through a real Mosquitto: the adapter runs on the
real MqttLink and DeviceGateway, a plain paho client plays the device, and an independent
MQTT v5 subscriber (retain-as-published, so the retain flag it sees is the sender's) checks
the command the hub sends."""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.subscribeoptions import SubscribeOptions

from assistant.messages import EntityCommand
from device_adapters.tasmota import TasmotaAdapter
from tests.adapter_support import TIMEOUT_S, hub, registry_until
from tests.conftest import Broker

DATA = Path(__file__).parent / "data" / "tasmota"
RELAY = "switch.tasmota_2c3ae82eb8ae_relay_1"


class Client:
    """A plain paho client: the device's side, or the independent observer."""

    def __init__(self, broker: Broker, name: str, topic: str | None = None) -> None:
        self.messages: list[paho.MQTTMessage] = []
        self.arrived = threading.Condition()
        self.ready = threading.Event()
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id=name,
                                  protocol=paho.MQTTv5)
        self.client.on_message = self._on_message
        self.client.on_connect = lambda client, *_: (
            client.subscribe(topic, options=SubscribeOptions(qos=1, retainAsPublished=True))
            if topic else self.ready.set())
        self.client.on_subscribe = lambda *_: self.ready.set()
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()

    def _on_message(self, _client: paho.Client, _userdata: object,
                    message: paho.MQTTMessage) -> None:
        with self.arrived:
            self.messages.append(message)
            self.arrived.notify_all()

    async def started(self) -> None:
        assert await asyncio.to_thread(self.ready.wait, TIMEOUT_S), "no SUBACK/CONNACK"

    async def received(self, count: int) -> list[paho.MQTTMessage]:
        def wait() -> bool:
            with self.arrived:
                return self.arrived.wait_for(lambda: len(self.messages) >= count, TIMEOUT_S)
        assert await asyncio.to_thread(wait), f"only {len(self.messages)} of {count} arrived"
        return list(self.messages)

    def publish(self, topic: str, payload: str, *, retain: bool) -> None:
        self.client.publish(topic, payload, qos=1, retain=retain).wait_for_publish(TIMEOUT_S)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def recorded(kind: str) -> str:
    return (DATA / f"sonoff_basic.{kind}.json").read_text(encoding="utf-8")


async def test_a_replayed_sonoff_basic_is_switched_with_an_unretained_power_command(
        broker: Broker) -> None:
    device = Client(broker, "sonoff-b1")
    observer = Client(broker, "observer", "cmnd/SONOFF_B1/#")
    await asyncio.gather(device.started(), observer.started())
    # What a Sonoff Basic leaves on the broker: retained discovery documents and LWT.
    device.publish("tasmota/discovery/2C3AE82EB8AE/config", recorded("config"), retain=True)
    device.publish("tasmota/discovery/2C3AE82EB8AE/sensors", recorded("sensors"), retain=True)
    device.publish("tele/SONOFF_B1/LWT", "Online", retain=True)
    try:
        async with hub(broker, TasmotaAdapter(), "tasmota-replay") as (registry, gateway):
            await registry_until(registry, lambda: (entity := registry.get(RELAY)) is not None
                                 and entity.available)
            # Online: asked what it is now, its state and its DS18B20 reading.
            polls = await observer.received(2)
            assert [(m.topic, m.payload, m.retain) for m in polls] == [
                ("cmnd/SONOFF_B1/State", b"", False), ("cmnd/SONOFF_B1/Status", b"10", False)]
            device.publish("stat/SONOFF_B1/RESULT", json.dumps({"POWER": "OFF"}), retain=False)
            await registry_until(registry, lambda: registry.get(RELAY).state == "off")

            relay = registry.get(RELAY)
            await gateway.send([(relay, EntityCommand(RELAY, "turn_on"))])
            command = (await observer.received(3))[2]
            assert (command.topic, command.payload, command.qos) == (
                "cmnd/SONOFF_B1/POWER", b"ON", 1)
            assert command.retain is False

            # The observer does see a retained flag when one is set: the check can fail.
            device.publish("cmnd/SONOFF_B1/POWER", "OFF", retain=True)
            retained = (await observer.received(4))[3]
            assert retained.retain is True
            device.publish("cmnd/SONOFF_B1/POWER", "", retain=True)  # clear it again
            await observer.received(5)

            # The device's answer is read back.
            device.publish("stat/SONOFF_B1/RESULT", json.dumps({"POWER": "ON"}), retain=False)
            await registry_until(registry, lambda: registry.get(RELAY).state == "on")
    finally:
        for topic in ("tasmota/discovery/2C3AE82EB8AE/config",
                      "tasmota/discovery/2C3AE82EB8AE/sensors", "tele/SONOFF_B1/LWT"):
            device.publish(topic, "", retain=True)
        device.close()
        observer.close()


async def test_removing_the_retained_config_removes_the_device_over_the_broker(
        broker: Broker) -> None:
    device = Client(broker, "t1-2ch")
    await device.started()
    config = (DATA / "sonoff_t1_2ch.config.json").read_text(encoding="utf-8")
    try:
        async with hub(broker, TasmotaAdapter(), "tasmota-replay") as (registry, _gateway):
            entities = registry.all_entities
            device.publish("tasmota/discovery/D8F15BB3DB2D/config", config, retain=True)
            await registry_until(registry, lambda: len(entities()) == 2)
            # Retained, as Tasmota's LWT is: it arrives whenever the subscription does.
            device.publish("tele/tasmota_B3DB2D/LWT", "Online", retain=True)
            await registry_until(registry, lambda: all(e.available for e in entities()))
            device.publish("tele/tasmota_B3DB2D/LWT", "Offline", retain=True)
            await registry_until(registry, lambda: not any(e.available for e in entities()))
            device.publish("tasmota/discovery/D8F15BB3DB2D/config", "", retain=True)
            await registry_until(registry, lambda: entities() == [])
    finally:
        for topic in ("tasmota/discovery/D8F15BB3DB2D/config", "tele/tasmota_B3DB2D/LWT"):
            device.publish(topic, "", retain=True)
        device.close()
