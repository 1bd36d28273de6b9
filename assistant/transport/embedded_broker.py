"""Brokers on loopback for the demo, evaluation and tests: a private Mosquitto process when
Mosquitto is installed, else an MQTT broker inside the process (amqtt). Production points at
a real Mosquitto."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

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


class _SubscriptionTable(dict[str, Any]):
    """amqtt 0.12.1 walks its subscription table across awaits (setting up a newcomer,
    broadcasting); a client subscribing or leaving meanwhile raises "dictionary changed size
    during iteration" there and the newcomer is dropped. Walking a snapshot is safe: a
    subscription made meanwhile is served by its own SUBSCRIBE."""

    def __iter__(self) -> Iterator[str]:
        return iter(list(dict.keys(self)))

    def items(self) -> list[tuple[str, Any]]:  # type: ignore[override]
        return list(dict.items(self))


LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


class EmbeddedBroker:
    def __init__(self, port: int, host: str = "127.0.0.1") -> None:
        if host not in LOOPBACK_HOSTS:
            raise ValueError("the embedded broker only listens on loopback")
        self.host = host
        self.port = port
        self._broker = Broker({
            "listeners": {"default": {"type": "tcp", "bind": f"{host}:{port}"}},
            "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin":
                        {"allow_anonymous": True}},
        })
        self._broker._subscriptions = _SubscriptionTable()

    async def start(self) -> None:
        await self._broker.start()
        log.info("embedded MQTT broker listening on %s:%d", self.host, self.port)

    async def stop(self) -> None:
        await self._broker.shutdown()


def mosquitto_executable() -> str | None:
    found = shutil.which("mosquitto")
    if found:
        return found
    return "/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None


def mosquitto_version(executable: str) -> str:
    """``2.0.11``, from ``mosquitto -h`` (it has no ``--version``)."""
    try:
        shown = subprocess.run([executable, "-h"], capture_output=True, text=True,
                               timeout=5).stdout
    except (OSError, subprocess.SubprocessError):
        return "(version unknown)"
    found = re.search(r"mosquitto version (\S+)", shown)
    return found.group(1) if found else "(version unknown)"


class MosquittoProcess:
    """A throw-away Mosquitto on a loopback port (anonymous, no persistence); with
    ``log_file``, it logs every packet it handles there (for tests)."""

    def __init__(self, port: int, host: str = "127.0.0.1", *,
                 log_file: Path | None = None) -> None:
        self.host = host
        self.port = port
        self.log_file = log_file
        self._process: subprocess.Popen[bytes] | None = None
        self._dir = tempfile.TemporaryDirectory(prefix="mimo-mosquitto-")

    def start_sync(self, timeout: float = 10.0) -> None:
        executable = mosquitto_executable()
        if executable is None:
            raise FileNotFoundError("mosquitto is not installed")
        conf = Path(self._dir.name) / "mosquitto.conf"
        log_lines = "log_dest stderr\nlog_type all\n" if self.log_file else ""
        conf.write_text(f"listener {self.port} {self.host}\nallow_anonymous true\n"
                        f"persistence false\nset_tcp_nodelay true\n{log_lines}")
        # stderr, not a log file: Mosquitto drops root for a user that may not write ours.
        # Its own session: a Ctrl-C in the terminal reaches us, and we stop it after the
        # clients are done with it.
        with open(self.log_file or os.devnull, "ab") as log_sink:
            self._process = subprocess.Popen([executable, "-c", str(conf)],
                                             stdout=subprocess.DEVNULL, stderr=log_sink,
                                             start_new_session=True)
        deadline = time.monotonic() + timeout
        while not port_is_open(self.host, self.port, timeout=0.2):
            if self._process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"mosquitto did not start on {self.host}:{self.port}")
            time.sleep(0.05)

    def send_signal(self, signum: int) -> None:
        """For tests of a broker that hangs (SIGSTOP) or crashes (SIGKILL)."""
        if self._process is not None:
            self._process.send_signal(signum)

    def stop_sync(self) -> None:
        if self._process is not None:
            self._process.terminate()
            self._process.wait(timeout=10)
            self._process = None
        self._dir.cleanup()

    async def start(self) -> None:
        await asyncio.to_thread(self.start_sync)

    async def stop(self) -> None:
        await asyncio.to_thread(self.stop_sync)


class LoopbackBroker(Protocol):
    host: str
    port: int

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


def private_broker_for(port: int) -> LoopbackBroker:
    """Mosquitto when installed (it copes with thousands of subscriptions), else amqtt."""
    if mosquitto_executable() is not None:
        return MosquittoProcess(port)
    return EmbeddedBroker(port)
