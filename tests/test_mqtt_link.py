"""The MQTT link against a real Mosquitto: subscribe/dispatch, LWT, reconnect and queueing."""

import asyncio
import contextlib
import re
import signal
import subprocess
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from assistant.config import MqttConfig
from assistant.messages import MqttMessage
from assistant.transport.mqtt_link import BrokerUnreachableError, MqttLink, PublishQueueFullError
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


async def test_a_late_handler_of_a_subscribed_topic_hears_its_retained_message(
        broker: Broker) -> None:
    """Two entities sharing an availability topic: the second must hear "online" too, and the
    first must not hear it twice."""
    topic = f"shared-{uuid.uuid4().hex[:8]}/availability"
    publisher = Recorder(broker.port, "unused")
    publisher.client.publish(topic, b"online", qos=1, retain=True).wait_for_publish(5)
    try:
        async with running(MqttLink(link_config(broker.port))) as link:
            first: list[MqttMessage] = []
            link.subscribe(topic, first.append)
            await link.wait_connected(10)
            await until(lambda: bool(first))
            second: list[MqttMessage] = []
            link.subscribe(topic, second.append)
            await until(lambda: bool(second))
            assert second == [MqttMessage(topic, b"online", 1, True)]
            publisher.client.publish(topic, b"offline", qos=1).wait_for_publish(5)
            await until(lambda: len(second) == 2 and len(first) == 2)
            assert [m.payload for m in first] == [b"online", b"offline"]  # not "online" twice
            assert [m.payload for m in second] == [b"online", b"offline"]
    finally:
        publisher.client.publish(topic, b"", qos=1, retain=True).wait_for_publish(5)
        publisher.close()


async def test_status_topic_and_last_will(broker: Broker) -> None:
    recorder = Recorder(broker.port, "t/status")
    # An earlier test's link may have left its retained "offline": wait for what this one says.
    async with running(MqttLink(link_config(broker.port))) as link:
        await link.wait_connected(10)
        await until(lambda: recorder.messages[-1:] == [("t/status", b"online")], 10)
        said = len(recorder.messages)
    await recorder.wait_for(said + 1)
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


async def test_a_command_that_may_not_wait_is_refused_while_the_broker_is_away() -> None:
    async with running(MqttLink(link_config(free_port()))) as link:
        with pytest.raises(BrokerUnreachableError, match="may not be sent later"):
            link.publish(MqttMessage("cmd/garage", b"OPEN", qos=1, resend=False))
        link.publish(MqttMessage("cmd/light", b"ON", qos=1))
        assert link.queued == 1  # the one that may wait does


def published_by(log_file: Path, client_id: str) -> list[str]:
    """The topics the broker received from ``client_id``, in order, from its packet log."""
    received = re.compile(rf"Received PUBLISH from {re.escape(client_id)} \(d\d, q\d, r\d, "
                          r"m\d+, '([^']*)'")
    return received.findall(log_file.read_text(errors="replace"))


async def replayed_after_a_crash(tmp_path: Path, messages: list[MqttMessage],
                                 **config: object) -> list[str]:
    """Publish ``messages`` while the broker hangs (so none is acknowledged), crash it, start
    a new one; returns the commands the new broker received from the link once it is back."""
    port = free_port()
    hanging = start_mosquitto(port)
    async with running(MqttLink(link_config(port, **config))) as link:
        try:
            await link.wait_connected(15)
            hanging.send_signal(signal.SIGSTOP)  # reads nothing, acknowledges nothing
            for message in messages:
                link.publish(message)
            assert link.unacknowledged == len(messages)
            hanging.send_signal(signal.SIGKILL)
            await until(lambda: not link.connected, 15)
        finally:
            hanging.stop_sync()
        log_file = tmp_path / "broker.log"
        restarted = start_mosquitto(port, log_file=log_file)
        try:
            await link.wait_connected(15)
            # Everything paho re-sent is acknowledged, and "online" follows the re-sends.
            await until(lambda: link.unacknowledged == 0
                        and "t/status" in published_by(log_file, "test-link"), 15)
            return [t for t in published_by(log_file, "test-link") if t.startswith("cmd/")]
        finally:
            restarted.stop_sync()


async def test_paho_re_sends_a_fresh_command_but_never_a_confirmed_one(tmp_path: Path) -> None:
    received = await replayed_after_a_crash(tmp_path, [
        MqttMessage("cmd/light", b"ON", qos=1),
        MqttMessage("cmd/garage", b"OPEN", qos=1, resend=False)], queue_max_age_s=60)
    assert received == ["cmd/light"]


async def test_paho_does_not_re_send_a_command_older_than_its_maximum_age(
        tmp_path: Path) -> None:
    # Reconnecting takes at least reconnect_min_s (1 s): longer than the command may wait.
    received = await replayed_after_a_crash(
        tmp_path, [MqttMessage("cmd/light", b"ON", qos=1)], queue_max_age_s=0.5)
    assert received == []
