"""The embedded broker (amqtt) the demo starts: clients that come and go at the same time must
all be served — the demo's `mimo-home ask` connects, subscribes and leaves on every request."""

from __future__ import annotations

import asyncio
import threading
import uuid

import paho.mqtt.client as mqtt

from assistant.transport.embedded_broker import EmbeddedBroker, free_loopback_port

TIMEOUT = 10.0


def a_new_client_is_served(port: int) -> bool:
    """Connect, subscribe to a topic of its own, publish to it and say whether the message
    came back on the first connection — which needs the broker to have taken the client's
    session all the way up (amqtt 0.12.1 drops a newcomer when its subscription table
    changes while it sets the newcomer up, and paho's reconnect would hide that)."""
    received = threading.Event()
    dropped = threading.Event()
    own = f"own/{uuid.uuid4().hex}"
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"t-{uuid.uuid4().hex[:8]}")
    client.on_connect = lambda c, *_: c.subscribe(own, 1)
    client.on_subscribe = lambda c, *_: c.publish(own, "ping", qos=1)
    client.on_message = lambda _c, _u, message: message.topic == own and received.set()
    client.on_disconnect = lambda *_: dropped.set()
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        return received.wait(TIMEOUT) and not dropped.is_set()
    finally:
        client.disconnect()
        client.loop_stop()


async def test_clients_that_come_and_go_together_are_all_served() -> None:
    port = free_loopback_port()
    broker = EmbeddedBroker(port)
    await asyncio.wait_for(broker.start(), TIMEOUT)
    publisher = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="status-owner")
    try:
        await asyncio.to_thread(publisher.connect, "127.0.0.1", port)
        publisher.loop_start()
        # A subscriber with many retained messages under its filter, like the daemon's
        # discovery subscription: amqtt sends them to every newcomer, one await each.
        publisher.subscribe("data/#")
        for index in range(200):
            publisher.publish(f"data/{index}", "x", qos=1, retain=True)
        await asyncio.to_thread(
            publisher.publish("data/last", "x", qos=1, retain=True).wait_for_publish, TIMEOUT)
        results = await asyncio.wait_for(asyncio.gather(*(
            asyncio.to_thread(a_new_client_is_served, port)
            for _ in range(64))), TIMEOUT * 3)
    finally:
        publisher.disconnect()
        publisher.loop_stop()
        await asyncio.wait_for(broker.stop(), TIMEOUT)
    assert all(results), f"{results.count(False)} of {len(results)} clients were dropped"
