"""The solution blueprints of ../shared/datasets/home-assistant-datasets/automations, filled
in with entities of their own ``_fixtures.yaml`` homes, do what their DESCRIPTION.md says.

The datasets are read where they are (never copied); each home becomes a registry with the
fixture's areas, entities and states, and the engine runs the filled-in rule against it with
a manual clock, the real safety policy and a sink that records commands and reports the
state a device would."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from assistant.automation.scheduler import ManualClock
from assistant.messages import Notice
from assistant.registry import Area, DeviceRegistry, Entity
from assistant.rules.blueprints import fill_blueprint, read_yaml
from assistant.rules.engine import RuleEngine
from assistant.rules.loader import LoadedRule
from assistant.rules.schema import parse_rule
from assistant.safety import SafetyPolicy
from tests.rules_support import HOME, MONDAY_NOON, Bus, Sink, settle

DATASET = Path(__file__).resolve().parents[2] / "shared" / "datasets" / \
    "home-assistant-datasets" / "automations"

pytestmark = pytest.mark.skipif(not DATASET.is_dir(), reason=f"{DATASET} is not there")


def fixture_state(value: Any) -> str | None:
    """A fixture's state as Home Assistant holds it (YAML booleans are on/off)."""
    if isinstance(value, bool):
        return "on" if value else "off"
    return None if value is None else str(value)


def fixture_registry(problem: str, extra: tuple[Entity, ...] = ()) -> DeviceRegistry:
    """The problem's ``_fixtures.yaml`` home as a registry."""
    home = yaml.safe_load((DATASET / problem / "_fixtures.yaml").read_text(encoding="utf-8"))
    registry = DeviceRegistry(None)
    for area in home["areas"]:
        registry.set_area(Area(id=area["id"], name=area["name"]))
    for item in home["entities"]:
        attributes = dict(item.get("attributes") or {})
        device_class = attributes.pop("device_class", None)
        registry.upsert(Entity(
            entity_id=item["id"], name=item["name"], domain=item["id"].split(".")[0],
            area=item.get("area"), state=fixture_state(item.get("state")),
            # "binary_sensor.BinarySensorDeviceClass.DOOR" -> "door"
            device_class=str(device_class).rsplit(".", 1)[-1].lower() if device_class else None,
            attributes=attributes))
    for entity in extra:
        registry.upsert(entity)
    return registry


def solution_rule(problem: str, inputs: dict[str, Any]) -> LoadedRule:
    path = DATASET / problem / "solution.yaml"
    blueprint = read_yaml(path.read_text(encoding="utf-8"), path)
    rule = parse_rule(fill_blueprint(blueprint, inputs, file=path, rule=problem), file=path)
    return LoadedRule(rule, path, problem)


@dataclass
class Home:
    registry: DeviceRegistry
    clock: ManualClock
    sink: Sink
    engine: RuleEngine

    def set(self, entity_id: str, state: str) -> None:
        self.registry.update_state(entity_id, state)

    async def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)
        await settle()


@pytest.fixture
async def home() -> AsyncIterator[Callable[..., Any]]:
    engines: list[RuleEngine] = []
    notices: list[Notice] = []  # a problem in a run would be announced: none may be

    async def make(problem: str, inputs: dict[str, Any],
                   extra: tuple[Entity, ...] = ()) -> Home:
        registry = fixture_registry(problem, extra)
        clock = ManualClock(MONDAY_NOON)
        sink, bus = Sink(registry), Bus()

        async def announce(notice: Notice) -> None:
            notices.append(notice)

        engine = RuleEngine(registry, send=sink, policy=SafetyPolicy(registry),
                            subscribe=bus.subscribe, publish=bus.publish, announce=announce,
                            clock=clock, location=HOME)
        engines.append(engine)
        assert engine.load([solution_rule(problem, inputs)]) == []
        engine.start()
        await settle()
        return Home(registry, clock, sink, engine)

    yield make
    for engine in engines:
        await engine.stop()
    assert notices == []


LIGHT_ON_DOOR = {"door_sensor": "binary_sensor.pantry_door",
                 "light_switch": {"entity_id": "light.pantry_light"}, "light_timeout": 120}


async def test_light_on_door_turns_on_and_off_when_the_door_closes(home: Any) -> None:
    pantry = await home("light_on_door", LIGHT_ON_DOOR)
    pantry.set("binary_sensor.pantry_door", "on")
    await settle()
    assert pantry.sink.services() == [("light.pantry_light", "turn_on")]
    assert pantry.registry.get("light.pantry_light").state == "on"
    await pantry.advance(30)
    pantry.set("binary_sensor.pantry_door", "off")
    await settle()
    assert pantry.sink.services() == [("light.pantry_light", "turn_on"),
                                      ("light.pantry_light", "turn_off")]
    await pantry.advance(300)  # nothing more once it is off
    assert len(pantry.sink.sent) == 2


async def test_light_on_door_turns_off_after_two_minutes_open(home: Any) -> None:
    pantry = await home("light_on_door", LIGHT_ON_DOOR)
    pantry.set("binary_sensor.pantry_door", "on")
    await settle()
    await pantry.advance(119)
    assert pantry.sink.services() == [("light.pantry_light", "turn_on")]  # not yet
    await pantry.advance(1)
    assert pantry.sink.services()[-1] == ("light.pantry_light", "turn_off")
    assert pantry.registry.get("light.pantry_light").state == "off"


ALERT = {"entity_id": "media_player.smart_speaker",
         "media_content_id": "media-source://media_source/local/door.mp3",
         "media_content_type": "audio/mpeg"}


async def test_door_left_open_plays_the_alert_after_the_duration(home: Any) -> None:
    entry = await home("door_left_open", {"door_sensor": "binary_sensor.entry_door",
                                          "alert_media": ALERT,
                                          "open_duration": {"minutes": 5}})
    entry.set("binary_sensor.entry_door", "on")
    await entry.advance(240)
    entry.set("binary_sensor.entry_door", "off")  # closed in time: no alert
    await entry.advance(600)
    assert entry.sink.sent == []
    entry.set("binary_sensor.entry_door", "on")
    await entry.advance(299)
    assert entry.sink.sent == []
    await entry.advance(1)
    assert entry.sink.sent == [("media_player.smart_speaker", "play_media", {
        "media_content_id": ALERT["media_content_id"],
        "media_content_type": "audio/mpeg"})]


HUMIDITY = {"humidity_sensor": "sensor.bathroom_exhaust_fan_humidity", "humidity_level": 60,
            "fan_entity": "fan.bathroom_exhaust_fan"}


async def test_humidity_fan_switches_only_when_needed(home: Any) -> None:
    bath = await home("humidity_fan", HUMIDITY)
    sensor, fan = HUMIDITY["humidity_sensor"], HUMIDITY["fan_entity"]
    bath.set(sensor, "58")
    await settle()
    assert bath.sink.sent == []  # below the level all along
    bath.set(sensor, "65")
    await settle()
    assert bath.sink.services() == [(fan, "turn_on")]
    bath.set(sensor, "55")
    await settle()
    assert bath.sink.services() == [(fan, "turn_on"), (fan, "turn_off")]
    bath.set(fan, "on")  # switched on by hand: a rise finds it on and leaves it
    bath.set(sensor, "70")
    await settle()
    assert len(bath.sink.sent) == 2
    bath.set(fan, "off")  # off by hand: the drop finds it off and leaves it
    bath.set(sensor, "50")
    await settle()
    assert len(bath.sink.sent) == 2


PHONE = Entity(entity_id="binary_sensor.phone_call", name="Phone Call",
               domain="binary_sensor", state="off")  # the fixture home has no phone sensor


async def test_vacuum_pauses_on_a_call_only_while_cleaning(home: Any) -> None:
    studio = await home("vacuum_pause", {"phone_call_sensor": "binary_sensor.phone_call",
                                         "vacuum_entity": "vacuum.vacuum_cleaner"},
                        extra=(PHONE,))
    assert studio.registry.get("vacuum.vacuum_cleaner").state == "docked"
    studio.set("binary_sensor.phone_call", "on")  # docked: left alone
    await settle()
    assert studio.sink.sent == []
    studio.set("binary_sensor.phone_call", "off")
    studio.set("vacuum.vacuum_cleaner", "cleaning")
    studio.set("binary_sensor.phone_call", "on")
    await settle()
    assert studio.sink.services() == [("vacuum.vacuum_cleaner", "vacuum_pause")]  # not stop
    assert studio.registry.get("vacuum.vacuum_cleaner").state == "paused"
