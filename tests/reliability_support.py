"""What the reliability tests share: a real `mimo-home run` process with a config of its own,
lights that are independent MQTT clients, a client of the daemon's text API that survives a
broker restart, a gate that holds the daemon away from a restarted broker, and checks of the
state directory's SQLite files."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sqlite3
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import yaml
from paho.mqtt.enums import CallbackAPIVersion

from assistant.transport.api import request_topic, response_topic
from tests.daemon_process_support import KilledOrStopped

REPO = Path(__file__).resolve().parent.parent
TIMEOUT_S = 20.0


async def until(predicate: Callable[[], bool], timeout: float = TIMEOUT_S,
                what: str = "condition") -> None:
    async def poll() -> None:
        while not predicate():
            await asyncio.sleep(0.02)

    try:
        await asyncio.wait_for(poll(), timeout)
    except TimeoutError:
        raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}") from None


def light_config(base: str, name: str) -> dict[str, Any]:
    """Home Assistant discovery for a dimmable JSON light ``<base>/<name>/set|state``."""
    return {"name": name.replace("_", " ").title(), "unique_id": f"{base}-{name}",
            "default_entity_id": f"light.{name}", "schema": "json", "brightness": True,
            "command_topic": f"{base}/{name}/set", "state_topic": f"{base}/{name}/state",
            "device": {"identifiers": [f"{base}-{name}"], "name": name, "suggested_area": "Lab"}}


class Client:
    """A paho client that (re)subscribes on every connect; ``subscribed`` counts SUBACKs."""

    def __init__(self, port: int, filters: Iterable[str], prefix: str) -> None:
        self.filters = list(filters)
        self.received: list[tuple[str, bytes, float]] = []  # (topic, payload, arrival time)
        self.subscribed = 0
        self.lock = threading.Lock()
        self.client = paho.Client(CallbackAPIVersion.VERSION2,
                                  client_id=f"{prefix}-{uuid.uuid4().hex[:8]}")
        self.client.reconnect_delay_set(min_delay=1, max_delay=1)
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = lambda _c, _u, m: self.on_message(m)
        self.client.connect("127.0.0.1", port, keepalive=10)
        self.client.loop_start()

    def _on_connect(self, client: paho.Client, *_: Any) -> None:
        client.subscribe([(f, 1) for f in self.filters])

    def _on_subscribe(self, *_: Any) -> None:
        with self.lock:
            self.subscribed += 1

    def on_message(self, message: paho.MQTTMessage) -> None:
        with self.lock:
            self.received.append((message.topic, bytes(message.payload), time.time()))

    def payloads(self, topic: str) -> list[bytes]:
        with self.lock:
            return [payload for t, payload, _ in self.received if t == topic]

    def publish(self, topic: str, payload: str | bytes, retain: bool = False) -> None:
        self.client.publish(topic, payload, qos=1, retain=retain)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


class Lights(Client):
    """JSON lights as a device would be: each command applied (and logged with its arrival
    time), its new state reported back."""

    def __init__(self, port: int, base: str, names: Iterable[str]) -> None:
        self.base = base
        self.applied: dict[str, list[int]] = {name: [] for name in names}
        self.state: dict[str, dict[str, Any]] = {n: {"state": "OFF"} for n in self.applied}
        super().__init__(port, [f"{base}/+/set", f"{base}/tick"], "lights")

    def announce(self, prefix: str) -> None:
        for name in self.applied:
            self.publish(f"{prefix}/light/{name}/config",
                         json.dumps(light_config(self.base, name)), retain=True)
            self.publish(f"{self.base}/{name}/state", json.dumps(self.state[name]), retain=True)

    def on_message(self, message: paho.MQTTMessage) -> None:
        super().on_message(message)
        name = message.topic.split("/")[-2]
        with self.lock:
            if name not in self.applied:
                return
            body = json.loads(message.payload)
            state = {**self.state[name], **body}
            self.state[name] = state
            self.applied[name].append(int(state.get("brightness", 0)))
        self.publish(f"{self.base}/{name}/state", json.dumps(state), retain=True)


class StateStream:
    """Brightness reports for every lamp, round and round, ``per_s`` a second, from a thread
    of its own (as a busy home's devices report)."""

    def __init__(self, port: int, base: str, lamps: Iterable[str], per_s: int) -> None:
        self.topics = [f"{base}/{lamp}/state" for lamp in lamps]
        self.per_s = per_s
        self.sent = 0
        self._stop = threading.Event()
        self._client = paho.Client(CallbackAPIVersion.VERSION2,
                                   client_id=f"stream-{uuid.uuid4().hex[:8]}")
        self._client.connect("127.0.0.1", port)
        self._client.loop_start()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        burst, started = max(1, self.per_s // 20), time.monotonic()
        while not self._stop.is_set():
            for _ in range(burst):
                self._client.publish(self.topics[self.sent % len(self.topics)],
                                     f'{{"state": "ON", "brightness": {self.sent % 256}}}')
                self.sent += 1
            # steady, not a flood: wait for the moment the messages so far are due
            self._stop.wait(max(0.0, started + self.sent / self.per_s - time.monotonic()))

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._client.disconnect()
        self._client.loop_stop()


class Requester(Client):
    """The daemon's text API (docs/API.md) over a connection that resubscribes after a broker
    restart, as a long-lived client would; ``online`` follows the daemon's status topic."""

    def __init__(self, port: int, base: str) -> None:
        self.base = base
        self.online = False
        self.replies: dict[str, dict[str, Any]] = {}
        self._arrived = threading.Condition()
        super().__init__(port, [f"{base}/status", response_topic(base, "+")], "requester")
        self.client.on_disconnect = self._offline

    def _offline(self, *_: Any) -> None:
        self.online = False  # a restarted broker has no status until the daemon says it

    def on_message(self, message: paho.MQTTMessage) -> None:
        with self._arrived:
            if message.topic == f"{self.base}/status":
                self.online = message.payload == b"online"
            else:
                body = json.loads(message.payload)
                self.replies[str(body["id"])] = body
            self._arrived.notify_all()

    def send(self, text: str) -> str:
        request_id = uuid.uuid4().hex
        self.publish(request_topic(self.base),
                     json.dumps({"id": request_id, "text": text, "area": "lab"}))
        return request_id

    def wait_reply(self, request_id: str, timeout: float) -> dict[str, Any] | None:
        with self._arrived:
            self._arrived.wait_for(lambda: request_id in self.replies, timeout)
            return self.replies.get(request_id)

    def wait_online(self, timeout: float) -> bool:
        with self._arrived:
            return self._arrived.wait_for(lambda: self.online, timeout)

    async def ask(self, text: str, timeout: float = TIMEOUT_S) -> dict[str, Any]:
        await until(lambda: self.online, timeout, "the daemon online")
        reply = await asyncio.to_thread(self.wait_reply, self.send(text), timeout)
        assert reply is not None, f"no reply to {text!r}"
        return reply


async def until_known(requester: Requester, lamps: Iterable[str],
                      timeout: float = 60.0) -> None:
    """Until the daemon answers about every lamp by its name (discovery is done)."""
    for lamp in lamps:
        name = lamp.replace("_", " ")
        deadline = time.monotonic() + timeout
        while name.title() not in (await requester.ask(f"is the {name} on"))["reply"]:
            assert time.monotonic() < deadline, f"the daemon never learnt {lamp}"
            await asyncio.sleep(0.2)


class Gate:
    """A TCP relay between the daemon and the broker. Held, it drops the daemon's connection
    and refuses new ones: the test decides when the daemon may reach a restarted broker (after
    the devices have subscribed again, which on a real network is a race)."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.held = False
        self.port = 0
        self._server: asyncio.Server | None = None
        self._pairs: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    def hold(self) -> None:
        self.held = True
        for writer in list(self._pairs):
            writer.transport.abort()

    def release(self) -> None:
        self.held = False

    async def close(self) -> None:
        self.hold()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.held:
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.transport.abort()
            return
        self._pairs.update((writer, up_writer))
        try:
            await asyncio.gather(_pump(reader, up_writer), _pump(up_reader, writer))
        finally:
            for end in (writer, up_writer):
                self._pairs.discard(end)
                end.transport.abort()


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(OSError, asyncio.IncompleteReadError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    writer.transport.abort()  # one side gone: so is the other


@dataclass
class Hub(KilledOrStopped):
    """A `mimo-home run` process and its config file."""

    config_file: Path
    state_dir: Path
    log_file: Path
    process: asyncio.subprocess.Process | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    async def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("MIMO_HOME")}
        with open(self.log_file, "ab") as log:
            self.process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "assistant.cli", "run", "--config", str(self.config_file),
                env=env, cwd=REPO, stdout=log, stderr=log)


def write_hub(tmp_path: Path, port: int, base: str, **sections: Any) -> Hub:
    state = tmp_path / "state"
    config: dict[str, Any] = {
        "state_dir": str(state),
        "mqtt": {"host": "127.0.0.1", "port": port, "base_topic": base, "client_id": base,
                 "reconnect_min_s": 1, "reconnect_max_s": 1},
        "adapters": {"ha_discovery": {"prefix": f"{base}-ha"}},
        "automation": {"time_zone": "UTC"},
        "llm": {"enabled": False}, "voice": {"enabled": False}, "mdns": {"enabled": False},
        "announce": {"enabled": False},
    }
    for name, section in sections.items():
        config[name] = {**config.get(name, {}), **section}
    path = tmp_path / "mimo-home.yaml"
    path.write_text(yaml.safe_dump(config))
    return Hub(path, state, tmp_path / "daemon.log")


def integrity_problems(state_dir: Path) -> dict[str, str]:
    """``PRAGMA integrity_check`` of every SQLite file in the state directory: name -> what
    it said, for those not "ok" (opening one also replays its write-ahead log)."""
    problems = {}
    for path in sorted(state_dir.glob("*.sqlite3")):
        with contextlib.closing(sqlite3.connect(path)) as db:
            result = "; ".join(row[0] for row in db.execute("PRAGMA integrity_check"))
        if result != "ok":
            problems[path.name] = result
    return problems


def stored_entities(state_dir: Path) -> dict[str, dict[str, Any]]:
    """The registry's entity rows as the daemon left them on disk."""
    with contextlib.closing(sqlite3.connect(state_dir / "registry.sqlite3")) as db:
        return {entity_id: json.loads(body)
                for entity_id, body in db.execute("SELECT entity_id, body FROM entities")}
