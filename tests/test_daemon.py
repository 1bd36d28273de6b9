"""The daemon end to end on a real broker: discovery in, `mimo-home ask` in, commands out,
seen by an independent mosquitto_sub."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import yaml

from assistant.config import load_config
from assistant.daemon import Daemon
from assistant.messages import ConversationRequest
from tests.conftest import Broker

KITCHEN_LIGHT = {
    "name": "Kitchen Light", "unique_id": "kl1", "default_entity_id": "light.kitchen_light",
    "schema": "json", "brightness": True, "supported_color_modes": ["rgb"],
    "~": "home/kitchen_light", "cmd_t": "~/set", "stat_t": "~/state",
    "avty_t": "~/availability",
    "dev": {"ids": ["kl1"], "name": "Kitchen Light", "sa": "Kitchen"},
}
FRONT_DOOR = {
    "name": "Front Door", "unique_id": "fd1", "default_entity_id": "lock.front_door",
    "command_topic": "home/front_door/set", "state_topic": "home/front_door/state",
    "device": {"identifiers": ["fd1"], "name": "Front Door Lock", "suggested_area": "Entry"},
}


def mosquitto_pub(broker: Broker, topic: str, payload: str | bytes,
                  retain: bool = True) -> None:
    data = payload.encode() if isinstance(payload, str) else payload
    args = ["mosquitto_pub", "-h", broker.host, "-p", str(broker.port), "-t", topic,
            "-q", "1"] + (["-r"] if retain else [])
    # -n: an empty payload (clears a retained config); -s: the payload from stdin, any bytes
    args += ["-n"] if not data else ["-s"]
    subprocess.run(args, input=data, check=True, timeout=10)


async def mosquitto_sub(broker: Broker, topic: str, count: int,
                        wait_s: int) -> asyncio.subprocess.Process:
    process = await asyncio.create_subprocess_exec(
        "mosquitto_sub", "-h", broker.host, "-p", str(broker.port), "-t", topic, "-v",
        "-C", str(count), "-W", str(wait_s), stdout=asyncio.subprocess.PIPE)
    await asyncio.sleep(0.3)  # let it subscribe before anything is published
    return process


async def mimo_ask(config_file: Path, *words: str) -> dict:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "assistant.cli", "ask", "--config", str(config_file), "--json",
        *words, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, err.decode()
    return json.loads(out)


@pytest.fixture()
def config_file(tmp_path: Path, broker: Broker, request: pytest.FixtureRequest) -> Path:
    base = f"mimo-test-{request.node.name[:20]}"
    path = tmp_path / "mimo-home.yaml"
    path.write_text(yaml.safe_dump({
        "state_dir": str(tmp_path / "state"),
        "mqtt": {"host": broker.host, "port": broker.port, "base_topic": base,
                 "client_id": base},
        "adapters": {"ha_discovery": {"prefix": f"{base}-ha"}},
        "llm": {"enabled": False}, "voice": {"enabled": False},
        "mdns": {"enabled": False},  # never browse the host's network from a test
    }))
    return path


@pytest.fixture()
async def daemon(config_file: Path, broker: Broker) -> AsyncIterator[Daemon]:
    config = load_config(config_file, environ={})
    prefix = config.adapters.ha_discovery.prefix
    mosquitto_pub(broker, f"{prefix}/light/kitchen_light/config", json.dumps(KITCHEN_LIGHT))
    mosquitto_pub(broker, f"{prefix}/lock/front_door/config", json.dumps(FRONT_DOOR))
    mosquitto_pub(broker, "home/kitchen_light/availability", "online")
    mosquitto_pub(broker, "home/kitchen_light/state", '{"state": "OFF"}')
    mosquitto_pub(broker, "home/front_door/state", "UNLOCKED")
    running = Daemon(config)
    task = asyncio.create_task(running.run())
    await asyncio.wait_for(running.ready.wait(), 20)

    async def discovered() -> None:
        while len(running.registry) < 2 or running.registry.get("lock.front_door").state is None:
            await asyncio.sleep(0.05)
    await asyncio.wait_for(discovered(), 10)
    yield running
    running.request_stop()
    await asyncio.wait_for(task, 20)
    for topic in (f"{prefix}/light/kitchen_light/config", f"{prefix}/lock/front_door/config"):
        mosquitto_pub(broker, topic, "")  # clear retained discovery for the next test


async def test_ask_turns_on_the_kitchen_light(daemon: Daemon, broker: Broker,
                                              config_file: Path) -> None:
    sub = await mosquitto_sub(broker, "home/kitchen_light/set", 1, 15)
    reply = await mimo_ask(config_file, "turn on the kitchen light")
    out, _ = await asyncio.wait_for(sub.communicate(), 20)
    topic, payload = out.decode().strip().split(" ", 1)
    assert topic == "home/kitchen_light/set"
    assert json.loads(payload)["state"] == "ON"
    assert reply["path"] == "fast"
    assert reply["actions"] == [{"tool": "turn_on", "entity_id": "light.kitchen_light",
                                 "args": {}}]


async def test_lock_asks_first_and_only_yes_sends(daemon: Daemon, broker: Broker,
                                                  config_file: Path) -> None:
    sub = await mosquitto_sub(broker, "home/front_door/set", 1, 15)
    question = await mimo_ask(config_file, "lock the front door")
    assert question["awaiting_confirmation"] and question["actions"] == []
    await asyncio.sleep(0.5)
    assert sub.returncode is None  # nothing was published yet
    done = await mimo_ask(config_file, "yes")
    out, _ = await asyncio.wait_for(sub.communicate(), 20)
    assert out.decode().strip() == "home/front_door/set LOCK"
    assert done["actions"][0]["entity_id"] == "lock.front_door"


async def test_malformed_payloads_do_not_hurt(daemon: Daemon, broker: Broker,
                                              config_file: Path) -> None:
    prefix = daemon.config.adapters.ha_discovery.prefix
    mosquitto_pub(broker, f"{prefix}/light/kitchen_light/config", "{not json", retain=False)
    mosquitto_pub(broker, f"{prefix}/light/x/config", "[1, 2]", retain=False)
    mosquitto_pub(broker, "home/kitchen_light/state", b"\x00\xff garbage", retain=False)
    mosquitto_pub(broker, f"{daemon.config.mqtt.base_topic}/conversation/request", "nope",
                  retain=False)
    await asyncio.sleep(0.5)
    assert daemon.registry.get("light.kitchen_light") is not None
    reply = await mimo_ask(config_file, "turn off the kitchen light")
    assert reply["actions"][0]["entity_id"] == "light.kitchen_light"


async def test_registry_survives_a_restart(daemon: Daemon, config_file: Path) -> None:
    from assistant.registry import DeviceRegistry

    daemon.request_stop()
    await asyncio.sleep(0.5)
    reopened = DeviceRegistry(Path(daemon.config.state_dir) / "registry.sqlite3")
    try:
        entity = reopened.get("lock.front_door")
        assert entity is not None and entity.state == "unlocked"
        assert reopened.area_name(entity.area) == "Entry"
    finally:
        reopened.close()


async def test_ask_without_a_daemon_says_so(tmp_path: Path, broker: Broker) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"mqtt": {"host": broker.host, "port": broker.port,
                                             "base_topic": "nobody-home"}}))
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "assistant.cli", "ask", "--config", str(path), "hello",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    _, err = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 1 and b"no mimo-home daemon is online" in err


async def test_systemd_notifications_and_a_broken_voice_setup(
        tmp_path: Path, broker: Broker) -> None:
    """READY, WATCHDOG (while healthy) and STOPPING reach systemd; a voice section whose model
    is missing turns voice off with a clear status, and text keeps working."""
    import socket

    from assistant.config import Config, MqttConfig
    from assistant.transport.sdnotify import SystemdNotifier
    from assistant.voice.config import SttConfig, VoiceConfig

    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(tmp_path / "notify"))
    notify.setblocking(False)
    notifier = SystemdNotifier.from_environment(
        {"NOTIFY_SOCKET": str(tmp_path / "notify"), "WATCHDOG_USEC": "400000"})
    config = Config(
        state_dir=tmp_path / "state",
        mqtt=MqttConfig(host=broker.host, port=broker.port, base_topic="notify-test",
                        client_id="notify-test"),
        llm={"enabled": False},
        voice=VoiceConfig(enabled=True, stt=SttConfig(model_dir=tmp_path / "no-such-model")),
        mdns={"enabled": False},
    )
    messages: list[str] = []

    def receive() -> None:  # often: the socket queues only a few datagrams (max_dgram_qlen)
        while True:
            try:
                messages.append(notify.recv(4096).decode())
            except BlockingIOError:
                return

    daemon = Daemon(config, notifier=notifier)
    task = asyncio.create_task(daemon.run())
    await asyncio.wait_for(daemon.ready.wait(), 30)
    receive()
    assert daemon.voice_error is not None and "no-such-model" in daemon.voice_error
    reply = await asyncio.wait_for(daemon.converse(ConversationRequest("what time is it")), 5)
    assert reply.reply.startswith("It is")
    await asyncio.sleep(0.7)  # a few watchdog periods (half of WATCHDOG_USEC each)
    receive()
    daemon.request_stop()
    await asyncio.wait_for(task, 20)
    receive()
    notify.close()
    # READY comes before the voice models load; the status then says voice is off
    ready = messages.index(next(m for m in messages if m.startswith("READY=1")))
    assert any("voice off" in m for m in messages[ready + 1:])
    assert not any("voice off" in m for m in messages[:ready])
    assert messages.count("WATCHDOG=1") >= 2
    assert messages[-1] == "STOPPING=1"
