"""The MQTT link reads what arrived in one go, and hands paho every byte of it in order."""

import asyncio
import socket

import pytest

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from assistant.transport.mqtt_link import MqttLink
from assistant.transport.read_ahead import READ_AHEAD, _ReadAheadSocket
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


async def received_after_a_burst(broker: Broker, wait_s: float) -> tuple[
        list[tuple[str, bytes]], list[tuple[str, bytes]], object]:
    """What was sent, what the link received, and the socket it read from."""
    sent = a_burst()
    got: list[tuple[str, bytes]] = []
    link = MqttLink(link_config(broker.port))
    async with running(link):
        link.subscribe("dev/+/state", lambda m: got.append((m.topic, m.payload)))
        await link.wait_connected(10)
        await asyncio.sleep(0.2)  # the subscription reaches the broker (no ack is exposed)
        # paho's thread waits at its first message while the rest piles up in the socket,
        # so its reads find many packets at once
        with link._client._callback_mutex:
            await asyncio.to_thread(burst, broker.port, sent)
        # nothing else comes now: what was read ahead must not wait for more traffic
        try:
            await until(lambda: len(got) >= len(sent), wait_s)
        except TimeoutError:
            pass
        return sent, got, link._client.socket()


async def test_a_burst_arrives_whole_and_in_order(broker: Broker) -> None:
    sent, got, read_from = await received_after_a_burst(broker, 10)
    assert got == sent
    assert isinstance(read_from, _ReadAheadSocket)


async def test_bytes_read_ahead_and_not_told_to_paho_would_wait(
        broker: Broker, monkeypatch: pytest.MonkeyPatch) -> None:
    """The check above can fail: a socket that hides what it read ahead leaves the burst's
    last messages unread once the broker goes quiet."""
    monkeypatch.setattr(_ReadAheadSocket, "pending", lambda self: 0)
    sent, got, _ = await received_after_a_burst(broker, 3)
    assert got == sent[:len(got)] and len(got) < len(sent)
