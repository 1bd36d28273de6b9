"""The MQTT link against a real Mosquitto: subscribe/dispatch, LWT, reconnect and queueing."""

import asyncio
import contextlib
import subprocess
from collections.abc import AsyncIterator, Callable, Iterator

import pytest

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from assistant.config import MqttConfig
from assistant.messages import MqttMessage
from assistant.mqtt_link import MqttLink, PublishQueueFullError
from tests.conftest import Broker, free_port, start_mosquitto


def link_config(port: int, **extra: object) -> MqttConfig:
    return MqttConfig(host="127.0.0.1", port=port, client_id="test-link", reconnect_min_s=1,
                      reconnect_max_s=1, base_topic="t", **extra)


@contextlib.asynccontextmanager
async def running(link: MqttLink) -> AsyncIterator[MqttLink]:
    task = asyncio.create_task(link.run())
    try:
        yield link
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def until(predicate: Callable[[], bool], timeout: float = 5) -> None:
    async def poll() -> None:
        while not predicate():
            await asyncio.sleep(0.02)
    await asyncio.wait_for(poll(), timeout)


class Recorder:
    """An independent paho client that records what the broker delivers."""

    def __init__(self, port: int, topic: str) -> None:
        self.messages: list[tuple[str, bytes]] = []
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"rec-{topic}")
        self.client.on_message = lambda _c, _u, m: self.messages.append((m.topic, m.payload))
        self.client.on_connect = lambda c, *_: c.subscribe(topic, qos=1)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    async def wait_for(self, count: int, timeout: float = 10) -> None:
        await until(lambda: len(self.messages) >= count, timeout)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


async def test_subscribe_publish_and_unsubscribe(broker: Broker) -> None:
    async with running(MqttLink(link_config(broker.port))) as link:
        got: list[MqttMessage] = []
        unsubscribe = link.subscribe("dev/+/state", got.append)
        await link.wait_connected(10)
        recorder = Recorder(broker.port, "cmd/#")
        publisher = Recorder(broker.port, "unused")
        try:
            await asyncio.sleep(0.2)
            publisher.client.publish("dev/lamp/state", b"ON", qos=1)
            await until(lambda: bool(got))
            assert got[0] == MqttMessage("dev/lamp/state", b"ON", 1, False)
            unsubscribe()
            link.publish(MqttMessage("cmd/lamp", b"OFF", qos=1))
            await recorder.wait_for(1)
            assert recorder.messages == [("cmd/lamp", b"OFF")]
        finally:
            publisher.close()
            recorder.close()


async def test_status_topic_and_last_will(broker: Broker) -> None:
    recorder = Recorder(broker.port, "t/status")
    async with running(MqttLink(link_config(broker.port))) as link:
        await link.wait_connected(10)
        await recorder.wait_for(1)
        assert recorder.messages[-1] == ("t/status", b"online")
    await recorder.wait_for(2)
    assert recorder.messages[-1] == ("t/status", b"offline")
    recorder.close()


@contextlib.contextmanager
def mosquitto_on(port: int) -> Iterator[None]:
    broker = start_mosquitto(port)
    try:
        yield
    finally:
        broker.stop_sync()


async def test_commands_queue_while_the_broker_is_down_and_go_out_in_order() -> None:
    port = free_port()
    async with running(MqttLink(link_config(port, queue_max=5, queue_max_age_s=60))) as link:
        await asyncio.sleep(0.3)  # nothing listens yet: the link keeps retrying
        assert not link.connected
        for n in range(3):
            link.publish(MqttMessage(f"cmd/{n}", str(n).encode(), qos=1))
        assert link.queued == 3
        got: list[MqttMessage] = []
        with mosquitto_on(port):
            recorder = Recorder(port, "cmd/#")
            await link.wait_connected(15)
            await recorder.wait_for(3)
            assert [t for t, _ in recorder.messages] == ["cmd/0", "cmd/1", "cmd/2"]
            assert link.queued == 0
            link.subscribe("dev/x", got.append)
            recorder.close()
        # The broker restarts: the link reconnects and resubscribes by itself.
        await asyncio.sleep(0.5)
        assert not link.connected
        with mosquitto_on(port):
            await link.wait_connected(15)
            await asyncio.sleep(0.3)
            subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(port), "-t", "dev/x",
                            "-m", "hello", "-q", "1"], check=True, timeout=10)
            await until(lambda: bool(got))
            assert got[0].payload == b"hello"


async def test_full_queue_refuses_and_stale_commands_are_dropped() -> None:
    port = free_port()
    async with running(MqttLink(link_config(port, queue_max=2, queue_max_age_s=0.2))) as link:
        link.publish(MqttMessage("cmd/old", b"1", qos=1))
        link.publish(MqttMessage("cmd/old2", b"2", qos=1))
        with pytest.raises(PublishQueueFullError, match="unreachable"):
            link.publish(MqttMessage("cmd/3", b"3", qos=1))
        await asyncio.sleep(0.4)  # both queued commands are now too old to replay
        with mosquitto_on(port):
            recorder = Recorder(port, "cmd/#")
            await link.wait_connected(15)
            link.publish(MqttMessage("cmd/fresh", b"F", qos=1))
            await recorder.wait_for(1)
            await asyncio.sleep(0.2)
            assert [t for t, _ in recorder.messages] == ["cmd/fresh"]
            recorder.close()
