"""An MQTT broker inside the process (amqtt), for the demo and evaluation when no broker
runs. Loopback only; production points at Mosquitto."""

from __future__ import annotations

import logging
import socket

from amqtt.broker import Broker

log = logging.getLogger(__name__)


def port_is_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def free_loopback_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class EmbeddedBroker:
    def __init__(self, port: int, host: str = "127.0.0.1") -> None:
        if host not in {"127.0.0.1", "localhost", "::1"}:
            raise ValueError("the embedded broker only listens on loopback")
        self.host = host
        self.port = port
        self._broker = Broker({
            "listeners": {"default": {"type": "tcp", "bind": f"{host}:{port}"}},
            "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin":
                        {"allow_anonymous": True}},
        })

    async def start(self) -> None:
        await self._broker.start()
        log.info("embedded MQTT broker listening on %s:%d", self.host, self.port)

    async def stop(self) -> None:
        await self._broker.shutdown()
