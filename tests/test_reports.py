"""Replies say what the devices report after a command, and what a restart left unknown."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from assistant.config import Config
from assistant.llm.config import LlmConfig
from assistant.messages import (
    CommandNotSupportedError,
    EntityCommand,
    MqttMessage,
    ToolCall,
    ToolResult,
)
from assistant.registry import DeviceRegistry, Entity
from assistant.safety import SafetyPolicy
from assistant.virtual.stack import demo_stack
from device_adapters.base import ReportWait
from skills.base import SkillRegistry, ToolContext
from skills.home_control import HomeControlSkill
from skills.reports import recording_report_waits
from tests.test_mqtt_link import until

WAIT_S = 0.2
Answer = Callable[[EntityCommand], dict[str, object] | None]


class Device:
    """The devices' side of the wire: each command is answered (or not) the way an adapter
    would hear it, through the registry, after the sender has returned."""

    def __init__(self, registry: DeviceRegistry, answer: Answer, *, quick: bool = False) -> None:
        self.registry = registry
        self.answer = answer
        self.quick = quick  # answers before the send returns
        self.sent: list[EntityCommand] = []

    async def __call__(self, commands: list[tuple[Entity, EntityCommand]]) -> None:
        for _entity, command in commands:
            self.sent.append(command)
            report = self.answer(command)
            if report is None:
                continue
            if self.quick:
                self.registry.update_state(command.entity_id, **report)
            else:
                asyncio.get_running_loop().call_soon(
                    lambda c=command, r=report: self.registry.update_state(c.entity_id, **r))


def home() -> DeviceRegistry:
    registry = DeviceRegistry(None)
    for entity_id, name, state in [("lock.front_door", "Front Door", "unlocked"),
                                   ("light.kitchen", "Kitchen Light", "on"),
                                   ("light.porch", "Porch Light", "off"),
                                   ("media_player.radio", "Radio", "playing"),
                                   ("button.doorbell_chime", "Doorbell Chime", None)]:
        registry.upsert(Entity(entity_id=entity_id, name=name, domain=entity_id.split(".")[0],
                               state=state))
    return registry


async def run(registry: DeviceRegistry, device: Device, call: ToolCall,
              reports_state: Callable[[Entity], bool] = lambda _entity: True,
              wait_s: float = WAIT_S) -> ToolResult:
    skills = SkillRegistry()
    skills.register(HomeControlSkill())
    context = ToolContext(registry, device, SafetyPolicy(registry),
                          confirmed=frozenset(call.args["entity_ids"]),
                          report_wait=ReportWait(wait_s, reports_state))
    return await asyncio.wait_for(skills.run(call, context), wait_s + 5)


LOCK = ToolCall("lock", {"entity_ids": ["lock.front_door"]})


@pytest.mark.parametrize("quick", [False, True])
async def test_the_reply_waits_for_the_device_to_report_what_it_did(quick: bool) -> None:
    registry = home()
    device = Device(registry, lambda _c: {"state": "locked"}, quick=quick)
    with recording_report_waits() as waits:
        result = await run(registry, device, LOCK, wait_s=30)
    assert result.reply == "OK, locked the Front Door." and result.success
    assert len(waits) == 1 and waits[0] < 5  # it returned on the report, not on the timeout
    assert device.sent == [EntityCommand("lock.front_door", "lock")]


@pytest.mark.parametrize("report", [None, {"state": "unlocked"}, {"state": "jammed"}])
async def test_a_device_that_does_not_report_the_state_asked_for_gets_an_honest_reply(
        report: dict[str, object] | None) -> None:
    registry = home()
    result = await run(registry, Device(registry, lambda _c: report), LOCK)
    assert result.reply == "The Front Door did not report locked." and not result.success
    assert [a.entity_id for a in result.actions] == ["lock.front_door"]  # it was sent


async def test_a_state_reported_again_unchanged_counts() -> None:
    registry = home()  # the kitchen light is on already; the device says "on" once more
    result = await run(registry, Device(registry, lambda _c: {"state": "on"}),
                       ToolCall("turn_on", {"entity_ids": ["light.kitchen"]}))
    assert result.reply == "OK, turned on the Kitchen Light." and result.success


async def test_for_a_setting_any_report_counts_and_silence_is_said() -> None:
    registry = home()
    louder = ToolCall("set_volume", {"entity_ids": ["media_player.radio"], "volume_pct": 40})
    answered = await run(registry, Device(registry,
                                          lambda _c: {"attributes": {"volume_level": 0.4}}),
                         louder)
    assert answered.reply == "OK, changed the volume of the Radio." and answered.success
    silent = await run(registry, Device(registry, lambda _c: None), louder)
    assert silent.reply == "The Radio did not report back." and not silent.success
    dim = ToolCall("set_light", {"entity_ids": ["light.porch"], "brightness_pct": 40})
    off_still = await run(registry, Device(registry, lambda _c: {"state": "off"}), dim)
    assert off_still.reply == "The Porch Light did not report being on."


async def test_one_silent_device_among_several_is_named() -> None:
    registry = home()
    device = Device(registry, lambda c: {"state": "off"} if c.entity_id == "light.kitchen"
                    else None)
    result = await run(registry, device,
                       ToolCall("turn_off", {"entity_ids": ["light.kitchen", "light.porch"]}))
    assert result.reply == ("OK, turned off the Kitchen Light. "
                            "The Porch Light did not report being off.")
    assert not result.success


async def test_optimistic_devices_are_not_waited_for_and_the_reply_says_so() -> None:
    registry = home()
    device = Device(registry, lambda _c: None)
    optimistic = await run(registry, device, ToolCall("turn_on", {"entity_ids": ["light.porch"]}),
                           reports_state=lambda e: e.entity_id != "light.porch", wait_s=30)
    assert optimistic.reply == "OK, turned on the Porch Light; it does not report its state."
    assert optimistic.success
    both = await run(registry, Device(registry, lambda _c: {"state": "off"}),
                     ToolCall("turn_off", {"entity_ids": ["light.kitchen", "light.porch"]}),
                     reports_state=lambda e: e.entity_id != "light.porch", wait_s=30)
    assert both.reply == ("OK, turned off the Kitchen Light and the Porch Light; "
                          "the Porch Light does not report its state.")


async def test_stateless_things_are_not_waited_for() -> None:
    registry = home()
    result = await run(registry, Device(registry, lambda _c: None),
                       ToolCall("turn_on", {"entity_ids": ["button.doorbell_chime"]}), wait_s=30)
    assert result.reply == "OK, pressed the Doorbell Chime." and result.success


async def test_a_state_from_before_a_restart_is_not_reported_as_current(tmp_path: Path) -> None:
    db = tmp_path / "registry.sqlite3"
    registry = DeviceRegistry(db)
    registry.upsert(Entity(entity_id="cover.garage_door", name="Garage Door", domain="cover",
                           device_class="garage"))
    registry.update_state("cover.garage_door", "closed")
    registry.close()
    restarted = DeviceRegistry(db)
    ask = ToolCall("get_state", {"entity_ids": ["cover.garage_door"]})
    stale = await run(restarted, Device(restarted, lambda _c: None), ask)
    assert stale.reply == "The Garage Door has not reported its state since the hub started."
    restarted.update_state("cover.garage_door", "closed")  # the device speaks
    fresh = await run(restarted, Device(restarted, lambda _c: None), ask)
    assert fresh.reply == "The Garage Door is closed."
    restarted.close()


# -- end to end: the daemon's gateway and a virtual home on a real broker -----------------

async def test_virtual_devices_report_within_the_wait_and_an_optimistic_one_is_named() -> None:
    config = Config(llm=LlmConfig(enabled=False))
    async with demo_stack(config) as (_house, daemon):
        daemon.link.publish(MqttMessage("homeassistant/switch/porch_plug/config", json.dumps({
            "name": "Porch Plug", "unique_id": "porch-plug-1",
            "command_topic": "porch_plug/set"}).encode(), qos=1, retain=True))
        await until(lambda: daemon.registry.get("switch.porch_plug") is not None)
        wait = ReportWait(config.understanding.report_wait_s, daemon.gateway.reports_state)
        calls = [
            ToolCall("turn_on", {"entity_ids": ["light.kitchen"]}),
            ToolCall("set_light", {"entity_ids": ["light.kitchen"], "brightness_pct": 30}),
            ToolCall("turn_on", {"entity_ids": ["light.kitchen"]}),  # on already: said again
            ToolCall("unlock", {"entity_ids": ["lock.front_door"]}),
            ToolCall("open", {"entity_ids": ["cover.garage_door"]}),
            ToolCall("set_position", {"entity_ids": ["cover.living_room_blinds"],
                                      "position": 30}),
            ToolCall("set_temperature", {"entity_ids": ["climate.thermostat"],
                                         "temperature": 22}),
            ToolCall("set_volume", {"entity_ids": ["media_player.kitchen_speaker"],
                                    "volume_pct": 60}),
            ToolCall("vacuum", {"entity_ids": ["vacuum.robot_vacuum"], "command": "start"}),
        ]
        with recording_report_waits() as waits:
            for call in calls:
                context = ToolContext(daemon.registry, daemon.gateway.send, daemon.policy,
                                      confirmed=frozenset(call.args["entity_ids"]),
                                      report_wait=wait)
                result = await asyncio.wait_for(daemon.skills.run(call, context), 10)
                assert result.success and "did not report" not in result.reply, result.reply
        assert len(waits) == len(calls) and max(waits) < wait.timeout_s / 2, waits
        plug = ToolCall("turn_on", {"entity_ids": ["switch.porch_plug"]})
        context = ToolContext(daemon.registry, daemon.gateway.send, daemon.policy,
                              report_wait=wait)
        result = await asyncio.wait_for(daemon.skills.run(plug, context), 10)
        assert result.reply == "OK, turned on the Porch Plug; it does not report its state."


async def test_what_a_device_cannot_do_is_said_with_its_name_not_its_id() -> None:
    registry = home()

    def cannot(command: EntityCommand) -> dict[str, object] | None:
        raise CommandNotSupportedError(f"{command.entity_id} does not support brightness")

    result = await run(registry, Device(registry, cannot),
                       ToolCall("set_light", {"entity_ids": ["light.porch"], "brightness_pct": 40}))
    assert result.reply == "Sorry, the Porch Light does not support brightness."
    assert result.success is False
    assert "light.porch" not in result.reply
