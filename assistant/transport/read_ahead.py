"""A paho client that reads what the broker sent in one system call, not three per packet,
and hands a plain QoS 0 message straight to its receiver.

paho reads each packet with a ``recv`` of one byte (its type), one per byte of its length and
one for the rest, and goes back to ``select`` after every packet: during a burst of state
messages that is most of what a message costs (``mimo-home bench mqtt``). Here the TCP socket
reads up to ``READ_AHEAD`` bytes at once and hands paho its bytes from there, and paho's read
step goes on while those bytes last. The socket says how many bytes it holds through
``pending()``, the method paho already asks of an SSL socket before it waits in ``select``, so
nothing read ahead waits for the next packet to arrive.

A QoS 0 PUBLISH of MQTT 3.1.1 (a state message, the bulk of the traffic) is only a topic and a
payload: it goes to ``on_plain_message`` as ``(topic, payload, retain)`` without the
MQTTMessage, its delivery-tracking condition and the callback filter paho builds for every
message. Anything else (QoS 1 and 2, MQTT 5, a topic that is not UTF-8, a malformed packet)
takes paho's own path, to ``on_message``.
"""

from __future__ import annotations

import socket
from collections.abc import Callable

import paho.mqtt.client as paho
from paho.mqtt.enums import MQTTErrorCode, MQTTProtocolVersion

# (topic, payload, retain) of a QoS 0 message
PlainMessageHandler = Callable[[str, bytes, bool], None]
_QOS_BITS = 0x06
_RETAIN_BIT = 0x01

READ_AHEAD = 65536  # bytes asked of the socket at once
READ_BATCH = 64  # packets read before paho's loop gets to write and keep alive again


class _ReadAheadSocket(socket.socket):
    """The connected socket it takes over (the same descriptor), reading ahead."""

    def __init__(self, connected: socket.socket) -> None:
        timeout = connected.gettimeout()
        super().__init__(connected.family, connected.type, connected.proto,
                         fileno=connected.detach())
        self.settimeout(timeout)
        self._ahead = b""
        self._at = 0

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        if flags:  # nothing here asks for flags; keep their meaning if something does
            raise ValueError("recv flags are not supported on a read-ahead socket")
        if self._at >= len(self._ahead):
            data = super().recv(max(bufsize, READ_AHEAD))
            if len(data) <= bufsize:
                return data
            self._ahead, self._at = data, 0
        chunk = self._ahead[self._at:self._at + bufsize]
        self._at += len(chunk)
        return chunk

    def pending(self) -> int:
        return len(self._ahead) - self._at


class ReadAheadClient(paho.Client):
    on_plain_message: PlainMessageHandler | None = None

    def _handle_publish(self) -> MQTTErrorCode:
        command, body = self._in_packet["command"], self._in_packet["packet"]
        receive = self.on_plain_message
        if receive is None or command & _QOS_BITS or self._protocol == MQTTProtocolVersion.MQTTv5:
            return super()._handle_publish()
        end = 2 + int.from_bytes(body[:2], "big")
        if len(body) < end or end == 2:  # malformed, or no topic: paho says which
            return super()._handle_publish()
        try:
            topic = body[2:end].decode("utf-8")
        except UnicodeDecodeError:
            return super()._handle_publish()
        receive(topic, bytes(body[end:]), bool(command & _RETAIN_BIT))
        return MQTTErrorCode.MQTT_ERR_SUCCESS

    def _create_socket_connection(self) -> socket.socket:
        connected = super()._create_socket_connection()
        # TLS reads through its own buffer (and has its own pending()); websockets frame it
        if self._ssl or self._transport != "tcp":
            return connected
        return _ReadAheadSocket(connected)

    def loop_read(self, max_packets: int = 1) -> MQTTErrorCode:
        """paho's read step, again while the socket still holds bytes (paho reads one
        packet per step and ignores ``max_packets`` for QoS 0)."""
        for _ in range(READ_BATCH):
            rc = super().loop_read(max_packets)
            pending = getattr(self._sock, "pending", None)
            if rc or pending is None or not pending():
                return rc
        return MQTTErrorCode.MQTT_ERR_SUCCESS
