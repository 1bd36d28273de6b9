"""A burst of light state messages, published as fast as paho can: the load of
``mimo-home bench mqtt``, in a process of its own so it does not share the daemon's GIL.

    python -m assistant.virtual.burst_publisher HOST PORT COUNT TOPIC [TOPIC ...]

It connects, prints ``ready``, waits for a line on stdin, then publishes COUNT messages
(QoS 0, retained, as zigbee2mqtt publishes states) round-robin over the topics, and prints
``<monotonic s at the first publish> <monotonic s once all were written>`` (Linux's
monotonic clock is one for every process). Every message but each topic's last is a JSON
light state "ON" with a brightness that differs from that topic's previous one; each topic's
last is "OFF", so a receiver knows when the burst is over.
"""

from __future__ import annotations

import json
import sys
import threading
import time

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

CONNECT_TIMEOUT_S = 10.0
OFF = json.dumps({"state": "OFF"}).encode()


def burst(topics: list[str], count: int) -> list[tuple[str, bytes]]:
    """The messages, in publishing order."""
    messages = [(topics[i % len(topics)], _payload(i, len(topics))) for i in range(count)]
    for i in range(max(count - len(topics), 0), count):  # each topic's last says "OFF"
        messages[i] = (messages[i][0], OFF)
    return messages


def _payload(i: int, topics: int) -> bytes:
    brightness = 1 + (i // topics) % 254
    return json.dumps({"state": "ON", "brightness": brightness,
                       "color_mode": "brightness"}).encode()


def main(argv: list[str]) -> None:
    host, port, count, topics = argv[0], int(argv[1]), int(argv[2]), argv[3:]
    messages = burst(topics, count)
    connected = threading.Event()
    client = paho.Client(CallbackAPIVersion.VERSION2)
    client.on_connect = lambda *_args: connected.set()
    client.connect(host, port)
    client.loop_start()
    if not connected.wait(CONNECT_TIMEOUT_S):
        raise SystemExit(f"no CONNACK from {host}:{port}")
    print("ready", flush=True)
    sys.stdin.readline()
    started = time.monotonic()
    info = None
    for topic, payload in messages:
        info = client.publish(topic, payload, qos=0, retain=True)
    if info is not None:
        info.wait_for_publish(CONNECT_TIMEOUT_S)
    print(f"{started} {time.monotonic()}", flush=True)
    client.disconnect()
    client.loop_stop()


if __name__ == "__main__":
    main(sys.argv[1:])
