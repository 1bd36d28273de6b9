"""What the virtual home's tests share: an independent observer on the real Mosquitto,
a fresh simulator per test, and commands sent as Home Assistant would."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import paho.mqtt.client as mqtt
import pytest

from assistant.virtual.home import EntityState, VirtualHome, demo_home
from tests.conftest import Broker

TIMEOUT = 5.0

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
