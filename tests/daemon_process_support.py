"""The real daemon as a separate process (``python -m assistant.cli run``), for the
reliability tests: its readiness and status come over a notify socket of our own (as systemd
would get them), requests over the local API, devices from a virtual home on the broker."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

import yaml

from assistant.config import load_config
from assistant.transport.api import ApiClient
from assistant.virtual.home import VirtualHome, demo_home

REPO = Path(__file__).resolve().parents[1]
START_TIMEOUT_S = 60.0


def write_config(directory: Path, port: int, state_dir: Path, **sections: Any) -> Path:
    """A daemon config of its own topics on the broker at 127.0.0.1:``port``; ``sections``
    replace whole top-level sections (``llm={...}``)."""
    base = f"mimo-rel-{uuid.uuid4().hex[:8]}"
    body: dict[str, Any] = {
        "state_dir": str(state_dir),
        "mqtt": {"host": "127.0.0.1", "port": port, "base_topic": base, "client_id": base},
        "adapters": {"ha_discovery": {"prefix": f"{base}-ha"}},
        "llm": {"enabled": False}, "voice": {"enabled": False}, "mdns": {"enabled": False},
        **sections,
    }
    path = directory / "mimo-home.yaml"
    path.write_text(yaml.safe_dump(body))
    return path


def daemon_command(config_file: Path) -> list[str]:
    return [sys.executable, "-m", "assistant.cli", "run", "--config", str(config_file)]


class KilledOrStopped:
    """``kill`` and ``stop`` for a test's daemon process, kept in ``process``."""

    process: asyncio.subprocess.Process | None

    async def kill(self, timeout: float = 20.0) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        await asyncio.wait_for(self.process.wait(), timeout)

    async def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM, then SIGKILL when it does not stop in time."""
        if self.process is not None and self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.process.wait(), timeout)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()


class DaemonProcess:
    """One daemon process; ``status`` is the latest STATUS= line it sent."""

    def __init__(self, config_file: Path, log_file: Path,
                 wrap: Callable[[list[str]], Sequence[str]] = list,
                 env: dict[str, str] | None = None) -> None:
        self.config_file = config_file
        self.config = load_config(config_file, environ={})
        self.log_file = log_file
        self._wrap = wrap
        self._env = env or {}
        self.process: asyncio.subprocess.Process | None = None
        self.status = ""
        self._statuses: asyncio.Queue[str] = asyncio.Queue()
        self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._socket.setblocking(False)
        self._address = f"@mimo-rel-{uuid.uuid4().hex}"
        self._socket.bind("\0" + self._address[1:])
        self._reader: asyncio.Task[None] | None = None
        self._client: ApiClient | None = None

    async def start(self) -> None:
        """Start it and wait for READY=1 (failing with its log if it exits first)."""
        env = {**os.environ, **self._env, "NOTIFY_SOCKET": self._address,
               "PYTHONUNBUFFERED": "1"}
        with self.log_file.open("ab") as log:
            self.process = await asyncio.create_subprocess_exec(
                *self._wrap(daemon_command(self.config_file)), cwd=REPO, env=env,
                stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        self._reader = asyncio.create_task(self._read_notifications())
        await self.wait_status(lambda status: status.startswith("READY"), START_TIMEOUT_S)

    async def _read_notifications(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            datagram = (await loop.sock_recv(self._socket, 4096)).decode()
            for line in datagram.splitlines():
                if line.startswith("STATUS="):
                    self.status = line.removeprefix("STATUS=")
                    self._statuses.put_nowait(self.status)
                elif line == "READY=1":
                    self._statuses.put_nowait("READY")

    async def wait_status(self, wanted: Callable[[str], bool], timeout: float) -> str:
        """The first status line from now on that ``wanted`` accepts (the current one
        counts too)."""
        if wanted(self.status):
            return self.status
        assert self.process is not None
        exited = asyncio.ensure_future(self.process.wait())
        try:
            async with asyncio.timeout(timeout):
                while True:
                    line = asyncio.ensure_future(self._statuses.get())
                    await asyncio.wait({line, exited}, return_when=asyncio.FIRST_COMPLETED)
                    if not line.done():
                        line.cancel()
                        raise AssertionError(f"the daemon exited ({exited.result()}):\n"
                                             f"{self.log_tail()}")
                    if wanted(line.result()):
                        return line.result()
        except TimeoutError:
            raise AssertionError(f"no wanted status within {timeout:.0f} s (last: "
                                 f"{self.status!r}):\n{self.log_tail()}") from None
        finally:
            exited.cancel()

    def log_tail(self, lines: int = 40) -> str:
        text = self.log_file.read_text(errors="replace") if self.log_file.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    async def ask(self, text: str, conversation_id: str | None = None,
                  timeout: float = 30.0) -> dict[str, Any]:
        """One request through the local API, as ``mimo-home ask`` sends it."""
        if self._client is None:
            self._client = await asyncio.to_thread(ApiClient, self.config.mqtt)
        client = self._client
        async with asyncio.timeout(timeout + 5):
            return await asyncio.to_thread(client.ask, text, conversation_id=conversation_id,
                                           timeout=timeout)

    @property
    def pid(self) -> int:
        """The daemon's own process (the wrapping command's only child, when wrapped)."""
        assert self.process is not None
        if self._wrap is list:
            return self.process.pid
        (pid,) = children_of(self.process.pid)
        return pid

    def children(self) -> list[int]:
        """The daemon's child processes (the model worker)."""
        return children_of(self.pid)

    async def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM, then its exit code (SIGKILL if it does not stop in time)."""
        if self._client is not None:
            await asyncio.to_thread(self._client.close)
            self._client = None
        code = -1
        if self.process is not None:
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(self.pid, signal.SIGTERM)
            try:
                code = await asyncio.wait_for(self.process.wait(), timeout)
            except TimeoutError:
                self.process.kill()
                await asyncio.wait_for(self.process.wait(), 10)
                raise AssertionError(f"the daemon did not stop on SIGTERM:\n{self.log_tail()}")
        if self._reader is not None:
            self._reader.cancel()
        self._socket.close()
        return code


def children_of(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            found += [int(child) for child in (task / "children").read_text().split()]
    return found


@contextlib.asynccontextmanager
async def virtual_home(config_file: Path) -> AsyncIterator[VirtualHome]:
    """The demo home's devices, announced where the daemon of ``config_file`` looks."""
    config = load_config(config_file, environ={})
    house = VirtualHome(demo_home(), config.mqtt.host, config.mqtt.port,
                        discovery_prefix=config.adapters.ha_discovery.prefix,
                        base_topic=f"{config.mqtt.base_topic}-home")
    await house.start()
    try:
        yield house
    finally:
        await house.stop()


async def wait_discovered(daemon: DaemonProcess, house: VirtualHome) -> None:
    """Until the daemon's status counts every device the virtual home presents."""
    presented = len(house.protocols())
    await daemon.wait_status(lambda s: int(re.match(r"\d*", s).group() or 0) >= presented, 20)


async def until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    try:
        async with asyncio.timeout(timeout):
            while not predicate():
                await asyncio.sleep(0.05)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}") from None


def light_state(house: VirtualHome, entity_id: str = "light.kitchen") -> str:
    return house.states()[entity_id].state
