"""The MQTT link reads what arrived in one go, and hands paho every byte of it in order."""

import asyncio
import socket
import threading
import time

import pytest

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from assistant.messages import MqttMessage
from assistant.transport.mqtt_link import MqttLink
from assistant.transport.read_ahead import READ_AHEAD, ReadAheadClient, _ReadAheadSocket
from tests.conftest import Broker
from tests.test_mqtt_link import link_config, running, until


def test_bytes_come_out_in_order_and_the_rest_is_pending() -> None:
    ours, theirs = socket.socketpair()
    reading = _ReadAheadSocket(ours)
    try:
        theirs.sendall(b"\x30\x05hello\x30\x02hi")
        assert reading.recv(1) == b"\x30"
        assert reading.pending() == 10  # read ahead: one recv took all of it
        assert reading.recv(1) == b"\x05"
        assert reading.recv(5) == b"hello"
        assert reading.recv(100) == b"\x30\x02hi"  # no more than it holds
        assert reading.pending() == 0
        theirs.sendall(b"x" * (READ_AHEAD + 10))
        assert len(reading.recv(READ_AHEAD * 2)) >= 1  # a big read is passed straight on
        theirs.close()
        while reading.recv(READ_AHEAD):
            pass
        assert reading.recv(1) == b""  # the end of the stream, as a plain socket says it
    finally:
        reading.close()


def burst(port: int, messages: list[tuple[str, bytes]]) -> None:
    """Publish every message at once from a client of its own, then go quiet."""
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id="burst")
    client.connect("127.0.0.1", port)
    client.loop_start()
    infos = [client.publish(topic, payload) for topic, payload in messages]
    for info in infos:
        info.wait_for_publish(10)
    client.disconnect()
    client.loop_stop()


def a_burst() -> list[tuple[str, bytes]]:
    small = [(f"dev/lamp{i % 7}/state", b'{"state": "ON", "brightness": %d}' % (i % 255))
             for i in range(3000)]
    # one message larger than a read ahead, in the middle, and small ones to the end
    return small[:1500] + [("dev/big/state", bytes(range(256)) * 1000)] + small[1500:]


async def test_a_burst_arrives_whole_and_in_order(broker: Broker,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    # paho's thread waits at its first message while the rest piles up in the socket, so
    # its reads find many packets at once
    sending = threading.Event()
    receive = MqttLink._on_plain_message_thread

    def held(link: MqttLink, topic: str, payload: bytes, retain: bool) -> None:
        sending.wait(10)
        receive(link, topic, payload, retain)

    monkeypatch.setattr(MqttLink, "_on_plain_message_thread", held)
    sent = a_burst()
    got: list[tuple[str, bytes]] = []
    link = MqttLink(link_config(broker.port))
    async with running(link):
        link.subscribe("dev/+/state", lambda m: got.append((m.topic, m.payload)))
        await link.wait_connected(10)
        await asyncio.sleep(0.2)  # the subscription reaches the broker (no ack is exposed)
        try:
            await asyncio.to_thread(burst, broker.port, sent)
        finally:
            sending.set()
        # nothing else comes now: what was read ahead must not wait for more traffic
        await until(lambda: len(got) >= len(sent), 10)
        assert isinstance(link._client.socket(), _ReadAheadSocket)
    assert got == sent


def publish_packet(topic: str, payload: bytes) -> bytes:
    """A QoS 0 PUBLISH of MQTT 3.1.1, as a broker sends it."""
    body = len(topic).to_bytes(2, "big") + topic.encode() + payload
    assert len(body) < 128  # a one-byte remaining length
    return bytes([0x30, len(body)]) + body


def paho_steps_after_five_packets(steps: int) -> list[tuple[str, bytes, bool]]:
    """The messages a read-ahead client hands on after ``steps`` of paho's own loop step,
    with five packets arrived at once and nothing after them."""
    ours, theirs = socket.socketpair()
    client = ReadAheadClient(CallbackAPIVersion.VERSION2, client_id="steps")
    got: list[tuple[str, bytes, bool]] = []
    client.on_plain_message = lambda topic, payload, retain: got.append((topic, payload, retain))
    reading = _ReadAheadSocket(ours)
    reading.setblocking(False)
    client._sock = reading  # as paho's connect sets it
    client._last_msg_in = client._last_msg_out = time.monotonic()
    try:
        theirs.sendall(b"".join(publish_packet(f"dev/{n}", b"%d" % n) for n in range(5)))
        for _ in range(steps):
            client._loop(timeout=0.05)
    finally:
        reading.close()
        theirs.close()
    return got


def test_one_step_of_paho_s_loop_hands_on_every_packet_read_ahead() -> None:
    assert paho_steps_after_five_packets(1) == [(f"dev/{n}", b"%d" % n, False)
                                                for n in range(5)]


def test_bytes_read_ahead_and_not_told_to_paho_would_wait(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The check above can fail: a socket that hides what it read ahead leaves all but the
    first packet unread once nothing more arrives."""
    monkeypatch.setattr(_ReadAheadSocket, "pending", lambda self: 0)
    assert paho_steps_after_five_packets(3) == [("dev/0", b"0", False)]


async def test_plain_messages_skip_paho_s_message_objects_and_arrive_the_same(
        broker: Broker, monkeypatch: pytest.MonkeyPatch) -> None:
    """QoS 0 goes the short way, QoS 1 paho's; each arrives with its topic, payload, QoS and
    retain flag as sent."""
    plain: list[str] = []
    short_way = MqttLink._on_plain_message_thread

    def spied(link: MqttLink, topic: str, payload: bytes, retain: bool) -> None:
        plain.append(topic)
        short_way(link, topic, payload, retain)

    monkeypatch.setattr(MqttLink, "_on_plain_message_thread", spied)
    publisher = paho.Client(CallbackAPIVersion.VERSION2, client_id="plain-publisher")
    publisher.connect("127.0.0.1", broker.port)
    publisher.loop_start()
    try:
        for topic, qos in (("plain/zero/state", 0), ("plain/one/state", 1)):
            publisher.publish(topic, f"kept {qos}".encode(), qos=qos, retain=True
                              ).wait_for_publish(5)
        got: list[MqttMessage] = []
        link = MqttLink(link_config(broker.port))
        async with running(link):
            link.subscribe("plain/+/state", got.append)
            await link.wait_connected(10)
            await until(lambda: len(got) == 2)
            publisher.publish("plain/zero/state", "ÿ live".encode(), qos=0).wait_for_publish(5)
            await until(lambda: len(got) == 3)
        assert sorted(got[:2], key=lambda m: m.topic) == [
            MqttMessage("plain/one/state", b"kept 1", 1, True),
            MqttMessage("plain/zero/state", b"kept 0", 0, True)]
        assert got[2] == MqttMessage("plain/zero/state", "ÿ live".encode(), 0, False)
        assert plain == ["plain/zero/state", "plain/zero/state"]  # never the QoS 1 one
    finally:
        for topic in ("plain/zero/state", "plain/one/state"):  # no retained leftovers
            publisher.publish(topic, b"", retain=True).wait_for_publish(5)
        publisher.disconnect()
        publisher.loop_stop()
