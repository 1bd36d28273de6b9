"""What the rule engine's tests share: a small home as a registry, a command sink that
records commands and reports back like a device, MQTT as the engine sees it, rule files."""

from __future__ import annotations

import asyncio
import textwrap
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from paho.mqtt.client import topic_matches_sub

from assistant.automation.scheduler import ManualClock
from assistant.automation.sun import Location
from assistant.messages import EntityCommand, MqttMessage, Notice
from assistant.registry import Area, DeviceRegistry, Entity
from assistant.rules.engine import RuleEngine
from assistant.rules.loader import LoadResult, load_rules

ZONE = ZoneInfo("Europe/Rome")
MONDAY_NOON = datetime(2026, 6, 1, 12, 0, tzinfo=ZONE)  # a Monday
HOME = Location(45.46, 9.19, timezone=ZONE)  # Milan
TIMEOUT = 5.0


# -- the home, a sink that answers like devices, MQTT as the engine sees it ---------------------


def home_registry() -> DeviceRegistry:
    registry = DeviceRegistry(None)
    for area in ("hall", "kitchen", "bathroom"):
        registry.set_area(Area(id=area, name=area.title()))
    for entity in (
        Entity(entity_id="light.hall", name="Hall Light", domain="light", area="hall",
               state="off"),
        Entity(entity_id="light.kitchen", name="Kitchen Light", domain="light", area="kitchen",
               state="off"),
        Entity(entity_id="switch.kettle", name="Kettle", domain="switch", area="kitchen",
               state="off"),
        Entity(entity_id="lock.front_door", name="Front Door", domain="lock", area="hall",
               state="locked"),
        Entity(entity_id="cover.garage_door", name="Garage Door", domain="cover",
               device_class="garage", area="hall", state="closed"),
        Entity(entity_id="switch.garage_opener", name="Garage Opener", domain="switch",
               area="hall", state="off"),
        Entity(entity_id="binary_sensor.hall_motion", name="Hall Motion",
               domain="binary_sensor", area="hall", state="off"),
        Entity(entity_id="sensor.bath_humidity", name="Bath Humidity", domain="sensor",
               area="bathroom", state="40", attributes={"unit_of_measurement": "%"}),
        Entity(entity_id="fan.bath", name="Bath Fan", domain="fan", area="bathroom",
               state="off"),
        Entity(entity_id="vacuum.robot", name="Robot", domain="vacuum", state="docked"),
        Entity(entity_id="media_player.speaker", name="Speaker", domain="media_player",
               area="kitchen", state="idle"),
    ):
        registry.upsert(entity)
    return registry


class Sink:
    """The command sink: records each command and, like a device, reports the new state."""

    def __init__(self, registry: DeviceRegistry, report: bool = True) -> None:
        self.registry, self.report = registry, report
        self.sent: list[tuple[str, str, dict[str, Any]]] = []
        self._changed = asyncio.Event()

    async def __call__(self, commands: list[tuple[Entity, EntityCommand]]) -> None:
        for entity, command in commands:
            self.sent.append((entity.entity_id, command.service, dict(command.params)))
            state = {"turn_on": "on", "turn_off": "off", "unlock": "unlocked",
                     "lock": "locked", "vacuum_pause": "paused"}.get(command.service)
            if self.report and state:  # a device answers a moment later
                later(lambda eid=entity.entity_id, new=state: self.registry.update_state(eid, new))
        self._changed.set()

    async def count(self, n: int) -> None:
        async def reached() -> None:
            while len(self.sent) < n:
                self._changed.clear()
                await self._changed.wait()
        await asyncio.wait_for(reached(), TIMEOUT)

    def services(self) -> list[tuple[str, str]]:
        return [(entity_id, service) for entity_id, service, _ in self.sent]


_LATER: set[asyncio.Task[None]] = set()


def later(call: Callable[[], Any], turns: int = 10) -> None:
    """``call`` a few loop turns from now, as a device or a broker answers."""
    async def wait_then_call() -> None:
        for _ in range(turns):
            await asyncio.sleep(0)
        call()

    task = asyncio.get_running_loop().create_task(wait_then_call())
    _LATER.add(task)
    task.add_done_callback(_LATER.discard)


class Bus:
    """MQTT as the engine sees it (subscribe with wildcards, publish); what the engine
    publishes is delivered to matching subscribers, as a broker would."""

    def __init__(self) -> None:
        self.handlers: list[tuple[str, Callable[[MqttMessage], None]]] = []
        self.published: list[MqttMessage] = []

    def subscribe(self, topic: str, handler: Callable[[MqttMessage], None]) -> Callable[[], None]:
        entry = (topic, handler)
        self.handlers.append(entry)
        return lambda: self.handlers.remove(entry)

    def publish(self, message: MqttMessage) -> None:
        self.published.append(message)
        later(lambda: self.deliver(message.topic, message.payload))

    def deliver(self, topic: str, payload: str | bytes) -> None:
        body = payload.encode() if isinstance(payload, str) else payload
        for pattern, handler in list(self.handlers):
            if topic_matches_sub(pattern, topic):
                handler(MqttMessage(topic, body))


@dataclass
class Rig:
    engine: RuleEngine
    registry: DeviceRegistry
    clock: ManualClock
    sink: Sink
    bus: Bus
    directory: Path
    notices: list[Notice] = field(default_factory=list)
    load_errors: list[Any] = field(default_factory=list)

    def set(self, entity_id: str, state: str, **attributes: Any) -> None:
        self.registry.update_state(entity_id, state, attributes or None)

    async def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)
        await settle()


async def settle(turns: int = 30) -> None:
    """Let woken tasks run (no time passes: the clock is manual)."""
    for _ in range(turns):
        await asyncio.sleep(0)


def write_rules(directory: Path, text: str) -> LoadResult:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "rules.yaml").write_text(textwrap.dedent(text), encoding="utf-8")
    result = load_rules(directory)
    assert not result.errors, [str(e) for e in result.errors]
    return result


def button_rule(conditions: str) -> str:
    """A rule that turns the hall light on when "go" is published, if ``conditions``."""
    return f"""
        - alias: guarded
          triggers: {{trigger: mqtt, topic: go, id: press}}
          conditions: {conditions}
          actions: {{action: light.turn_on, target: {{entity_id: light.hall}}}}
        """


async def fires(home: Rig) -> bool:
    """Whether publishing "go" makes the button rule send a command."""
    before = len(home.sink.sent)
    home.bus.deliver("go", "x")
    await settle()
    return len(home.sink.sent) > before
