"""`mimo-home demo` as a new user runs it: its own broker (a private Mosquitto, else the
embedded one, saying why), how clients find it, what it shows of a request, Ctrl-C."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from assistant.config import Config
from assistant.transport import embedded_broker
from assistant.transport.embedded_broker import port_is_open
from assistant.virtual import demo
from tests.conftest import Broker, free_port
from tests.test_demo_display import check_request_shown

STOP_S = 15  # what the daemon's shutdown needs, with room; a hang is far longer
START_S = 120  # a loaded 2-core machine; a demo that hangs is far longer
MOSQUITTO_SAID = re.compile(r"^broker: private Mosquitto 2\.\S+ on 127\.0\.0\.1:(\d+)$")


async def read_until(stream: asyncio.StreamReader, seen: list[str],
                     holds: Callable[[str], bool], timeout: float) -> str:
    """Reads lines into ``seen`` until one for which ``holds``; returns that line."""
    async def read() -> str:
        while True:
            line = (await stream.readline()).decode()
            assert line, "the demo closed its output:\n" + "".join(seen)
            seen.append(line)
            if holds(line.rstrip("\n")):
                return line.rstrip("\n")
    return await asyncio.wait_for(read(), timeout)


async def test_the_demo_runs_a_private_mosquitto_shows_an_ask_and_stops_on_ctrl_c(
        tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MIMO_HOME")}
    env.update(XDG_RUNTIME_DIR=str(tmp_path), XDG_STATE_HOME=str(tmp_path / "state"),
               MIMO_HOME__LLM__ENABLED="false", MIMO_HOME__VOICE__ENABLED="false")
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "assistant.cli", "demo", env=env,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT)
    assert process.stdout is not None
    seen: list[str] = []
    runtime = tmp_path / "mimo-home-demo.json"
    try:
        said = await read_until(process.stdout, seen, lambda line: line.startswith("broker:"),
                                START_S)
        mosquitto = MOSQUITTO_SAID.fullmatch(said)
        assert mosquitto is not None, said
        port = int(mosquitto.group(1))
        await read_until(process.stdout, seen, lambda line: "Ctrl-C stops" in line, START_S)
        assert json.loads(runtime.read_text())["port"] == port  # how `ask` finds it
        await read_until(process.stdout, seen, lambda line: line.startswith(
            "reasoning model: off"), START_S)

        ask = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "assistant.cli", "ask", "--json", "turn on the kitchen light",
            env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(ask.communicate(), 60)
        assert ask.returncode == 0, err.decode()
        assert [a["entity_id"] for a in json.loads(out)["actions"]] == ["light.kitchen"]
        await read_until(process.stdout, seen, lambda line: "light.kitchen: off -> on" in line,
                         30)
        await read_until(process.stdout, seen, lambda line: line.startswith("   reply"), 30)
        check_request_shown("".join(seen), "turn on the kitchen light", path="fast",
                            tools=["turn_on light.kitchen"], sent=["turn_on light.kitchen"],
                            changes=["light.kitchen: off -> on"])

        # Ctrl-C while stdin stays open (a terminal nobody types into) ends the demo, and
        # its broker with it.
        process.send_signal(signal.SIGINT)
        await asyncio.wait_for(process.wait(), STOP_S)
        assert not runtime.exists()
        assert not port_is_open("127.0.0.1", port)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def test_the_demo_listens_where_the_environment_says(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        broker: Broker) -> None:
    port = free_port()
    monkeypatch.setenv("MIMO_HOME__MQTT__PORT", str(port))
    config = Config().model_copy(update={"mqtt": Config().mqtt.model_copy(
        update={"port": port})})
    async with demo.demo_broker(config) as chosen:
        assert (chosen.mqtt.host, chosen.mqtt.port) == ("127.0.0.1", port)
        assert port_is_open("127.0.0.1", port)
    said = MOSQUITTO_SAID.fullmatch(capsys.readouterr().out.strip())
    assert said is not None and said.group(1) == str(port), said
    assert not port_is_open("127.0.0.1", port)  # it was the demo's: stopped with it

    # A broker already listening there is used, and left running.
    monkeypatch.setenv("MIMO_HOME__MQTT__PORT", str(broker.port))
    async with demo.demo_broker(config.model_copy(update={"mqtt": config.mqtt.model_copy(
            update={"port": broker.port})})) as chosen:
        assert chosen.mqtt.port == broker.port
    assert capsys.readouterr().out.strip() == \
        f"broker: the one already listening on 127.0.0.1:{broker.port}"
    assert port_is_open("127.0.0.1", broker.port)


@pytest.mark.parametrize(("mosquitto", "why"), [
    (None, "Mosquitto is not installed"),  # as on a machine without it
    ("/bin/false", "Mosquitto did not start"),
])
async def test_without_a_working_mosquitto_the_demo_falls_back_and_says_why(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        mosquitto: str | None, why: str) -> None:
    # The executable is looked for on PATH and in /usr/sbin: replace the lookup, not PATH.
    for module in (demo, embedded_broker):
        monkeypatch.setattr(module, "mosquitto_executable", lambda: mosquitto)
    monkeypatch.delenv("MIMO_HOME__MQTT__PORT", raising=False)
    async with demo.demo_broker(Config()) as chosen:
        assert port_is_open(chosen.mqtt.host, chosen.mqtt.port)
    said = capsys.readouterr().out.strip()
    assert said.startswith(f"broker: embedded amqtt on 127.0.0.1:{chosen.mqtt.port}, "
                           f"the fallback: {why}"), said
    assert not port_is_open(chosen.mqtt.host, chosen.mqtt.port)
