"""A paho client that reads what the broker sent in one system call, not three per packet.

paho reads each packet with a ``recv`` of one byte (its type), one per byte of its length and
one for the rest, and goes back to ``select`` after every packet: during a burst of state
messages that is most of what a message costs (``mimo-home bench mqtt``). Here the TCP socket
reads up to ``READ_AHEAD`` bytes at once and hands paho its bytes from there, and paho's read
step goes on while those bytes last. The socket says how many bytes it holds through
``pending()``, the method paho already asks of an SSL socket before it waits in ``select``, so
nothing read ahead waits for the next packet to arrive.
"""

from __future__ import annotations

import socket

import paho.mqtt.client as paho
from paho.mqtt.enums import MQTTErrorCode

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
