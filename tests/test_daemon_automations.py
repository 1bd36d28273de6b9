"""Automations in the real daemon (`mimo-home run` in its own process) with the virtual home
on a real Mosquitto: a timer announced on MQTT when due, a schedule, a reminder, a timer and
a shopping list that survive the daemon being killed (SIGKILL) and started again, and a rule
file dropped into the rules directory that commands a virtual device."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from assistant.config import Config, MqttConfig
from assistant.transport.api import ApiClient
from assistant.virtual.home import VirtualHome, demo_home
from assistant.virtual.stack import home_config
from tests.conftest import Broker
from tests.virtual_home_support import Observer, observe, until
from tests.daemon_process_support import KilledOrStopped

REPO = Path(__file__).resolve().parent.parent
START_S = 60.0
TIMEOUT_S = 20.0


@dataclass
class Hub(KilledOrStopped):
    broker: Broker
    base: str
    config_file: Path
    state_dir: Path
    house: VirtualHome
    process: asyncio.subprocess.Process | None = None

    @property
    def mqtt(self) -> MqttConfig:
        return MqttConfig(host=self.broker.host, port=self.broker.port, base_topic=self.base)

    async def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("MIMO_HOME")}
        self.process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "assistant.cli", "run", "--config", str(self.config_file),
            env=env, cwd=REPO, stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL)
        # Ready once it answers and knows the virtual home's lights.
        await asyncio.wait_for(self._until_it_knows_the_home(), START_S)

    async def _until_it_knows_the_home(self) -> None:
        while True:
            assert self.process is not None and self.process.returncode is None, \
                "the daemon exited while starting"
            try:
                reply = await self.ask("is the kitchen light on", timeout=5)
            except Exception:  # not online yet
                reply = {}
            # the rules directory is made last when automations start
            if "Kitchen Light" in str(reply.get("reply")) and \
                    (self.state_dir / "rules").is_dir():
                return
            await asyncio.sleep(0.2)

    async def ask(self, text: str, timeout: float = TIMEOUT_S) -> dict[str, Any]:
        def blocking() -> dict[str, Any]:
            with ApiClient(self.mqtt, connect_timeout=2) as client:
                return client.ask(text, conversation_id="e2e", area="kitchen", timeout=timeout)

        return await asyncio.to_thread(blocking)

    async def entity_id(self, name: str) -> str:
        """The id the daemon gave a device (as `mimo-home devices` shows it)."""
        def blocking() -> dict[str, Any]:
            with ApiClient(self.mqtt, connect_timeout=2) as client:
                return client.devices(timeout=TIMEOUT_S)

        inventory = await asyncio.to_thread(blocking)
        return next(e["entity_id"] for e in inventory["entities"] if e["name"] == name)


@pytest.fixture
async def hub(broker: Broker, tmp_path: Path) -> AsyncIterator[Hub]:
    base = f"auto{uuid.uuid4().hex[:8]}"
    spec = demo_home()
    house = VirtualHome(spec, broker.host, broker.port, base_topic=f"{base}-home",
                        discovery_prefix=f"{base}-ha")
    config = Config.model_validate({
        "state_dir": str(tmp_path / "state"),
        "mqtt": {"host": broker.host, "port": broker.port, "base_topic": base,
                 "client_id": base},
        "adapters": {"ha_discovery": {"prefix": f"{base}-ha"}},
        "home": home_config(spec, Config().home).model_dump(mode="json"),
        "automation": {"time_zone": "Europe/Rome",
                       "location": {"latitude": 41.9, "longitude": 12.5}},
        "llm": {"enabled": False}, "voice": {"enabled": False}, "mdns": {"enabled": False},
        "announce": {"enabled": False},
    })
    config_file = tmp_path / "mimo-home.yaml"
    config_file.write_text(yaml.safe_dump(config.model_dump(
        mode="json", include={"state_dir", "mqtt", "adapters", "home", "automation", "llm",
                              "voice", "mdns", "announce"}, exclude_defaults=True)))
    await asyncio.wait_for(house.start(), TIMEOUT_S)
    made = Hub(broker, base, config_file, tmp_path / "state", house)
    try:
        yield made
    finally:
        await made.stop()
        await asyncio.wait_for(house.stop(), TIMEOUT_S)


async def test_a_due_timer_is_announced_on_mqtt(hub: Hub) -> None:
    notices = await observe(hub.broker, f"{hub.base}/notices")
    try:
        await hub.start()
        reply = await hub.ask("set a timer for 2 seconds")
        assert reply["success"] and "2 seconds" in reply["reply"]
        await until(lambda: notices.payload(f"{hub.base}/notices") is not None, TIMEOUT_S)
        notice = json.loads(notices.payload(f"{hub.base}/notices") or "{}")
        assert notice["kind"] == "timer" and "timer is done" in notice["text"]
        assert notice["area"] == "kitchen"
        # Nobody could hear it (no voice here): the next reply in that room says it first.
        after = await hub.ask("turn on the kitchen light")
        assert "timer is done" in after["reply"] and "Kitchen Light" in after["reply"]
    finally:
        notices.close()


async def test_what_was_set_survives_a_kill_and_a_restart(hub: Hub) -> None:
    await hub.start()
    schedule = await hub.ask("every day at 07:00 turn on the kitchen light")
    assert schedule["success"], schedule["reply"]
    reminder = await hub.ask("remind me at 6 pm to take out the trash")
    assert reminder["success"], reminder["reply"]
    timer = await hub.ask("set a pizza timer for 50 minutes")
    assert timer["success"], timer["reply"]
    added = await hub.ask("add milk to the shopping list")
    assert added["success"], added["reply"]

    await hub.kill()
    await hub.start()

    listed = (await hub.ask("what schedules do I have"))["reply"]
    assert "Kitchen Light" in listed and "07:00" in listed, listed
    reminders = (await hub.ask("what reminders do I have"))["reply"]
    assert "trash" in reminders, reminders
    left = (await hub.ask("how much time is left on the pizza timer"))["reply"]
    assert "49 minutes" in left or "50 minutes" in left, left
    items = (await hub.ask("what's on my shopping list"))["reply"]
    assert "milk" in items.lower(), items
    cancelled = await hub.ask("cancel schedule 1")
    assert cancelled["success"]
    assert "Kitchen Light" not in (await hub.ask("what schedules do I have"))["reply"]


async def test_a_rule_file_dropped_in_commands_a_virtual_device(hub: Hub) -> None:
    await hub.start()
    light, motion_sensor = await hub.entity_id("Hallway Light"), \
        await hub.entity_id("Hallway Motion")
    assert (await hub.ask("turn off the hallway light"))["success"]
    await until(lambda: hub.house.states()["light.hallway"].state == "off", TIMEOUT_S)
    observer: Observer = await observe(hub.broker)
    motion = f"{hub.house.base_topic}/binary_sensor/hallway_motion/state"
    try:
        (hub.state_dir / "rules" / "hall.yaml").write_text(yaml.safe_dump([{
            "alias": "Hall light on motion",
            "triggers": [{"trigger": "state", "entity_id": motion_sensor, "to": "on"}],
            "actions": [{"action": "light.turn_on", "target": {"entity_id": light}},
                        {"delay": {"seconds": 1}},
                        {"action": "light.turn_off", "target": {"entity_id": light}}],
        }]))

        async def loaded() -> list[str]:
            def blocking() -> dict[str, Any]:
                with ApiClient(hub.mqtt, connect_timeout=2) as client:
                    return client.rules("list", timeout=TIMEOUT_S)

            return [rule["name"] for rule in (await asyncio.to_thread(blocking))["rules"]]

        async def until_loaded() -> None:  # hot reload: the daemon reads the file on save
            while "Hall light on motion" not in await loaded():
                await asyncio.sleep(0.2)

        await asyncio.wait_for(until_loaded(), TIMEOUT_S)
        await asyncio.to_thread(observer.publish, motion, "ON")
        await until(lambda: hub.house.states()["light.hallway"].state == "on", TIMEOUT_S)
        await until(lambda: hub.house.states()["light.hallway"].state == "off", TIMEOUT_S)
    finally:
        observer.close()


async def mimo(hub: Hub, *args: str) -> tuple[int, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MIMO_HOME")}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "assistant.cli", *args, "--config", str(hub.config_file),
        env=env, cwd=REPO, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await asyncio.wait_for(process.communicate(), 60)
    return process.returncode or 0, out.decode()


async def test_rules_from_the_command_line(hub: Hub) -> None:
    await hub.start()
    kitchen = await hub.entity_id("Kitchen Light")
    rules = hub.state_dir / "rules"
    (rules / "bad.yaml").write_text(yaml.safe_dump({
        "alias": "Broken", "triggers": [{"trigger": "time", "at": "07:00"}],
        "actions": [{"delay": "five minutes"}]}))
    (rules / "good.yaml").write_text(yaml.safe_dump({
        "alias": "Kitchen on", "triggers": [{"trigger": "time", "at": "07:00"}],
        "actions": [{"action": "light.turn_on", "target": {"entity_id": kitchen}}]}))
    code, report = await mimo(hub, "rules", "check")
    assert code == 1 and "bad.yaml" in report and "Broken" in report and "delay" in report
    assert "good.yaml" not in report and "1 rule OK" in report, report

    assert (await hub.ask("turn off the kitchen light"))["success"]
    await until(lambda: hub.house.states()["light.kitchen"].state == "off", TIMEOUT_S)

    async def until_listed() -> str:  # hot reload: the daemon reads the files on save
        while True:
            code, listed = await mimo(hub, "rules", "list")
            if code == 0 and "Kitchen on" in listed:
                return listed
            await asyncio.sleep(0.2)

    listed = await asyncio.wait_for(until_listed(), TIMEOUT_S)
    assert "Broken" not in listed, listed
    code, ran = await mimo(hub, "rules", "run", "Kitchen on")
    assert code == 0 and "done" in ran, ran
    await until(lambda: hub.house.states()["light.kitchen"].state == "on", TIMEOUT_S)
    code, unknown = await mimo(hub, "rules", "run", "No such rule")
    assert code == 1 and "no rule called" in unknown
