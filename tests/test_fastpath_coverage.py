"""Everyday phrasing on the fast path: floors, rooms several areas share, device kinds by
place, every sensor kind, percent words, relative changes, media and vacuums by place, covers
and house-wide questions. Each right answer comes with the wrong one it must not give."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from assistant.messages import ToolCall
from assistant.registry import DeviceRegistry, Entity, Floor
from assistant.safety import SafetyPolicy
from assistant.understanding.aliases import derived_names, shared_area_names
from assistant.understanding.fastpath import FastPath
from skills.base import SkillRegistry, ToolContext
from skills.home_control import HomeControlSkill
from tests.language_support import calls_of, home_of

_AREAS = (("living_room", "Living Room", "ground"), ("kitchen", "Kitchen", "ground"),
          ("bedroom_1", "Bedroom 1", "ground"), ("bedroom_2", "Bedroom 2", "up"),
          ("bedroom_3", "Bedroom 3", "up"), ("terrace", "Roof Terrace", "up"))
_ENTITIES = (
    ("light.living", "Living Room Lamp", "living_room", None, "on"),
    ("light.kitchen", "Kitchen Light", "kitchen", None, "off"),
    ("light.bedroom_1", "Bedroom 1 Light", "bedroom_1", None, "off"),
    ("light.bedroom_2", "Bedroom 2 Light", "bedroom_2", None, "on"),
    ("light.bedroom_3", "Bedroom 3 Light", "bedroom_3", None, "off"),
    ("fan.kitchen", "Kitchen Fan", "kitchen", None, "off"),
    ("fan.ceiling", "Ceiling Fan", "bedroom_2", None, "off"),
    ("sensor.living_humidity", "Living Room Humidity", "living_room", "humidity", "45"),
    ("sensor.kitchen_humidity", "Kitchen Humidity", "kitchen", "humidity", "60"),
    ("sensor.remote_battery", "Remote Battery", "living_room", "battery", "80"),
    ("sensor.tv_power", "TV Power", "living_room", "power", "120"),
    ("sensor.tv_energy", "TV Energy", "living_room", "energy", "3"),
    ("sensor.air", "Air Monitor", "living_room", "pm25", "12"),
    ("sensor.barometer", "Barometer", "living_room", "atmospheric_pressure", "1013"),
    ("sensor.lux", "Light Level", "living_room", "illuminance", "300"),
    ("sensor.co2", "CO2 Meter", "living_room", "carbon_dioxide", "600"),
    ("binary_sensor.kitchen_window", "Kitchen Window", "kitchen", "window", "on"),
    ("binary_sensor.bedroom_window", "Bedroom Window", "bedroom_1", "window", "off"),
    ("lock.front", "Front Door", "living_room", None, "locked"),
    ("lock.back", "Back Door", "kitchen", None, "unlocked"),
    ("cover.living_blind", "Living Room Blind", "living_room", "blind", "open"),
    ("cover.bedroom_curtain", "Bedroom Curtain", "bedroom_2", "curtain", "open"),
    ("media_player.kitchen", "Kitchen Speaker", "kitchen", "speaker", "playing"),
    ("media_player.terrace", "Terrace Speaker", "terrace", "speaker", "playing"),
    ("vacuum.downstairs", "Roborock Downstairs", "living_room", None, "docked"),
    ("vacuum.upstairs", "Roborock Upstairs", "bedroom_2", None, "docked"),
)


@pytest.fixture
def house() -> DeviceRegistry:
    return home_of(_AREAS, _ENTITIES, floors=(
        Floor(id="ground", name="Ground Floor", aliases=("downstairs",)),
        Floor(id="up", name="Upstairs")))


def ids(fast: FastPath, text: str) -> set[str]:
    return {i for _, args in calls_of(fast, text) for i in args["entity_ids"]}


def test_a_name_several_rooms_share_acts_only_where_one_device_fits(
        house: DeviceRegistry) -> None:
    fast = FastPath(house)
    # only Bedroom 2 of the three bedrooms has a fan: that one, never the kitchen's
    assert calls_of(fast, "turn on the fan in the bedroom") == [
        ("turn_on", {"entity_ids": ["fan.ceiling"]})]
    # every bedroom has a light: a question, no light switched
    result = fast.understand("turn on the light in the bedroom")
    assert result.clarification and not result.calls
    assert set(result.candidates) == {"light.bedroom_1", "light.bedroom_2", "light.bedroom_3"}


def test_floors_and_rooms_together(house: DeviceRegistry) -> None:
    fast = FastPath(house)
    assert ids(fast, "shut off the upstairs lights") == {"light.bedroom_2", "light.bedroom_3"}
    assert ids(fast, "turn on all the bedroom lights upstairs") == {
        "light.bedroom_2", "light.bedroom_3"}  # not Bedroom 1, downstairs
    assert ids(fast, "turn off the lights downstairs") == {
        "light.living", "light.kitchen", "light.bedroom_1"}


def test_a_kind_alone_is_the_one_device_or_a_question(house: DeviceRegistry) -> None:
    fast = FastPath(house)
    assert not fast.understand("turn on the fan").calls  # two fans, no room said
    assert calls_of(fast, "turn on the fan", area="kitchen") == [
        ("turn_on", {"entity_ids": ["fan.kitchen"]})]
    assert calls_of(fast, "close the curtains") == [
        ("turn_off", {"entity_ids": ["cover.bedroom_curtain"]})]
    assert calls_of(fast, "open the blinds downstairs") == [
        ("turn_on", {"entity_ids": ["cover.living_blind"]})]
    assert not fast.understand("close the curtains downstairs").calls


@pytest.mark.parametrize(("question", "sensor"), [
    ("what is the humidity in the living room", "sensor.living_humidity"),
    ("what's the kitchen humidity", "sensor.kitchen_humidity"),
    ("what is the battery level in the living room", "sensor.remote_battery"),
    ("what is the power usage in the living room", "sensor.tv_power"),
    ("what is the energy consumption in the living room", "sensor.tv_energy"),
    ("what is the air quality in the living room", "sensor.air"),
    ("what is the air pressure in the living room", "sensor.barometer"),
    ("what is the light level in the living room", "sensor.lux"),
    ("what is the co2 in the living room", "sensor.co2"),
])
def test_every_sensor_kind_by_area(house: DeviceRegistry, question: str, sensor: str) -> None:
    assert calls_of(FastPath(house), question) == [("get_state", {"entity_ids": [sensor]})]


def test_a_sensor_question_without_a_room(house: DeviceRegistry) -> None:
    fast = FastPath(house)
    assert ids(fast, "what is the humidity") == {
        "sensor.living_humidity", "sensor.kitchen_humidity"}
    [(_, args)] = calls_of(fast, "what is the humidity", area="kitchen")
    assert args["entity_ids"] == ["sensor.kitchen_humidity"]


@pytest.mark.parametrize(("text", "brightness"), [
    ("set the living room lights to 40 percent", 40),
    ("set the living room lights to forty percent", 40),
    ("set the living room lights to half", 50),
])
def test_percent_words(house: DeviceRegistry, text: str, brightness: int) -> None:
    assert calls_of(FastPath(house), text) == [
        ("set_light", {"entity_ids": ["light.living"], "brightness_pct": brightness})]


def test_relative_brightness(house: DeviceRegistry) -> None:
    fast = FastPath(house)
    assert calls_of(fast, "dim the living room lamp a bit") == [
        ("set_light", {"entity_ids": ["light.living"], "brightness_step_pct": -25})]
    assert calls_of(fast, "turn the kitchen light up") == [
        ("set_light", {"entity_ids": ["light.kitchen"], "brightness_step_pct": 25})]


def test_media_by_place(house: DeviceRegistry) -> None:
    fast = FastPath(house)
    # both speakers play: "outside" is the terrace's, never the kitchen's
    assert calls_of(fast, "pause the music outside") == [
        ("media", {"entity_ids": ["media_player.terrace"], "command": "pause"})]
    assert calls_of(fast, "next song in the kitchen") == [
        ("media", {"entity_ids": ["media_player.kitchen"], "command": "next"})]


def test_vacuums_by_place_and_by_part_of_their_name(house: DeviceRegistry) -> None:
    fast = FastPath(house)
    start = {"command": "start"}
    # the kitchen has no vacuum: the one on its floor cleans it, not the one upstairs
    assert calls_of(fast, "clean the kitchen") == [
        ("vacuum", {"entity_ids": ["vacuum.downstairs"], **start})]
    assert calls_of(fast, "start the vacuum in the bedroom 3") == [
        ("vacuum", {"entity_ids": ["vacuum.upstairs"], **start})]
    assert calls_of(fast, "vacuum downstairs") == [
        ("vacuum", {"entity_ids": ["vacuum.downstairs"], **start})]
    assert calls_of(fast, "stop the upstairs vacuum") == [
        ("vacuum", {"entity_ids": ["vacuum.upstairs"], "command": "return_to_base"})]
    # "the Roborock" fits both: a question
    assert fast.understand("start the roborock").clarification


def test_water_the_garden_is_only_for_an_irrigation_valve(tmp_path: Path) -> None:
    registry = DeviceRegistry(tmp_path / "registry.db")
    registry.upsert(Entity(entity_id="valve.main", name="Water Main", domain="valve"))
    fast = FastPath(registry)
    assert not fast.understand("water the garden").calls  # never the water main
    registry.upsert(Entity(entity_id="valve.lawn", name="Lawn Irrigation", domain="valve"))
    assert calls_of(FastPath(registry), "water the garden") == [
        ("turn_on", {"entity_ids": ["valve.lawn"]})]


@pytest.mark.parametrize(("question", "entities", "state"), [
    ("which lights are on", {"light.living", "light.kitchen", "light.bedroom_1",
                             "light.bedroom_2", "light.bedroom_3"}, "on"),
    ("is any window open", {"binary_sensor.kitchen_window",
                            "binary_sensor.bedroom_window"}, "open"),
    ("are all doors locked", {"lock.front", "lock.back"}, "locked"),
])
def test_house_wide_questions_ask_the_whole_home(house: DeviceRegistry, question: str,
                                                 entities: set[str], state: str) -> None:
    [(tool, args)] = calls_of(FastPath(house), question, area="kitchen")
    assert tool == "get_state" and set(args["entity_ids"]) == entities
    assert args["state"] == state


async def _answer(registry: DeviceRegistry, text: str) -> str:
    skills = SkillRegistry()
    skills.register(HomeControlSkill())

    async def send_nothing(_commands: object) -> None:
        raise AssertionError("a question sends no command")

    [call] = FastPath(registry).understand(text).calls
    context = ToolContext(registry, send_nothing, SafetyPolicy(registry))
    result = await asyncio.wait_for(skills.run(ToolCall(call.tool, call.args), context), 5)
    return result.reply


async def test_answers_come_from_the_registry(house: DeviceRegistry) -> None:
    assert await _answer(house, "which lights are on") == (
        "2 of 5 are on: the Living Room Lamp and the Bedroom 2 Light.")
    assert await _answer(house, "is any window open") == "1 of 2 is open: the Kitchen Window."
    assert await _answer(house, "are all doors locked") == "1 of 2 is locked: the Front Door."
    assert (await _answer(house, "is the kitchen window open")).startswith("Yes,")
    house.upsert(Entity(entity_id="binary_sensor.kitchen_window", name="Kitchen Window",
                        domain="binary_sensor", area="kitchen", device_class="window",
                        state="off"))
    assert await _answer(house, "is any window open") == "None of the 2 is open."
    assert (await _answer(house, "is the kitchen window open")).startswith("No,")


def test_shared_and_derived_names() -> None:
    areas = {"b1": ["Bedroom 1"], "b2": ["Bedroom 2"], "yard": ["Back Yard"],
             "kitchen": ["Kitchen"]}
    shared = shared_area_names(areas)
    assert shared["bedroom"] == ("b1", "b2") and shared["outside"] == ("yard",)
    assert "kitchen" not in shared
    robot = Entity(entity_id="vacuum.r", name="Roborock Downstairs", domain="vacuum")
    assert {"roborock", "downstairs"} <= derived_names(robot, [])
    lamp = Entity(entity_id="light.l", name="Desk Lamp Left", domain="light")
    assert "left" not in derived_names(lamp, [])  # only a vacuum is called by a part


@pytest.mark.parametrize("text", ["what can you do", "What else can you do?", "help me"])
async def test_what_can_you_do_is_answered_without_a_model(text: str) -> None:
    from tests.test_conversation import ask, make_conversation

    conversation, sent = make_conversation()
    response = await conversation.handle(ask(text))
    assert "lights" in response.reply and not sent.commands
    # a command is carried out, not answered with the list of what can be done
    other = await conversation.handle(ask("turn on the kitchen light"))
    assert "lights" not in other.reply.lower().replace("kitchen light", "")


def test_a_thermostat_answers_for_the_temperature(tmp_path: Path) -> None:
    registry = DeviceRegistry(tmp_path / "registry.db")
    registry.upsert(Entity(entity_id="climate.hall", name="Hall Thermostat", domain="climate",
                           state="heat"))
    fast = FastPath(registry)
    assert calls_of(fast, "what is the temperature") == [
        ("get_state", {"entity_ids": ["climate.hall"]})]
    assert not fast.understand("what is the humidity").calls  # it measures no humidity
