"""Fast path: recognition, target resolution, clarification, and speed-independent checks."""

import pytest

from assistant.fastpath import FastPath
from assistant.registry import Area, DeviceRegistry, Entity, Floor


@pytest.fixture()
def home() -> DeviceRegistry:
    registry = DeviceRegistry(None)
    registry.set_floor(Floor(id="ground", name="Ground Floor", aliases=("downstairs",)))
    registry.set_floor(Floor(id="upper", name="Upper Floor", aliases=("upstairs",)))
    for area_id, name, floor in [("kitchen", "Kitchen", "ground"),
                                 ("bedroom", "Bedroom", "upper"),
                                 ("living_room", "Living Room", "ground"),
                                 ("garage", "Garage", "ground"), ("entry", "Entry", "ground")]:
        registry.set_area(Area(id=area_id, name=name, floor=floor))
    entities = [
        ("light.kitchen_light", "Kitchen Light", "kitchen", None),
        ("light.kitchen_ceiling", "Ceiling Light", "kitchen", None),
        ("light.bedroom_ceiling", "Ceiling Light", "bedroom", None),
        ("light.living_room_lamp", "Reading Lamp", "living_room", None),
        ("lock.front_door", "Front Door", "entry", None),
        ("cover.garage_door", "Garage Door", "garage", "garage"),
        ("climate.thermostat", "Thermostat", "living_room", None),
        ("sensor.kitchen_temperature", "Kitchen Temperature", "kitchen", "temperature"),
    ]
    for entity_id, name, area, device_class in entities:
        registry.upsert(Entity(entity_id=entity_id, name=name, domain=entity_id.split(".")[0],
                               area=area, device_class=device_class, state="off"))
    return registry


def calls_of(fast: FastPath, text: str, area: str | None = None) -> list[tuple[str, dict]]:
    return [(c.tool, c.args) for c in fast.understand(text, area).calls]


def test_named_device_wins_over_area_plus_domain(home: DeviceRegistry) -> None:
    fast = FastPath(home)
    assert calls_of(fast, "turn on the kitchen light") == [
        ("turn_on", {"entity_ids": ["light.kitchen_light"]})]


def test_lock_and_garage_map_to_turn_on_like_home_assistant(home: DeviceRegistry) -> None:
    fast = FastPath(home)
    assert calls_of(fast, "lock the front door") == [
        ("turn_on", {"entity_ids": ["lock.front_door"]})]
    assert calls_of(fast, "unlock the front door") == [
        ("turn_off", {"entity_ids": ["lock.front_door"]})]
    assert calls_of(fast, "open the garage door") == [
        ("turn_on", {"entity_ids": ["cover.garage_door"]})]


def test_brightness_color_and_temperature(home: DeviceRegistry) -> None:
    fast = FastPath(home)
    assert calls_of(fast, "set the kitchen light to 50%") == [
        ("set_light", {"entity_ids": ["light.kitchen_light"], "brightness_pct": 50})]
    assert calls_of(fast, "turn the kitchen light red") == [
        ("set_light", {"entity_ids": ["light.kitchen_light"], "color": "red"})]
    assert calls_of(fast, "set the thermostat to 21 degrees") == [
        ("set_temperature", {"entity_ids": ["climate.thermostat"], "temperature": 21.0})]


def test_same_name_in_two_rooms_asks_which(home: DeviceRegistry) -> None:
    fast = FastPath(home)
    result = fast.understand("turn on the ceiling light")
    assert result.clarification and not result.calls
    assert "kitchen" in result.reply.lower() and "bedroom" in result.reply.lower()
    assert set(result.candidates) == {"light.kitchen_ceiling", "light.bedroom_ceiling"}


def test_speaker_area_disambiguates(home: DeviceRegistry) -> None:
    fast = FastPath(home)
    assert calls_of(fast, "turn on the ceiling light", area="bedroom") == [
        ("turn_on", {"entity_ids": ["light.bedroom_ceiling"]})]


def test_area_and_floor_targets(home: DeviceRegistry) -> None:
    fast = FastPath(home)
    assert calls_of(fast, "turn off the lights in the kitchen") == [
        ("turn_off", {"entity_ids": ["light.kitchen_light", "light.kitchen_ceiling"]})]
    [(tool, args)] = calls_of(fast, "turn off the lights downstairs")
    assert tool == "turn_off" and set(args["entity_ids"]) == {
        "light.kitchen_light", "light.kitchen_ceiling", "light.living_room_lamp"}


def test_state_questions(home: DeviceRegistry) -> None:
    fast = FastPath(home)
    assert calls_of(fast, "is the garage door open") == [
        ("get_state", {"entity_ids": ["cover.garage_door"]})]
    [(tool, args)] = calls_of(fast, "what's the temperature in the kitchen")
    assert tool == "get_state" and args["entity_ids"] == ["sensor.kitchen_temperature"]


def test_no_match_is_honest(home: DeviceRegistry) -> None:
    fast = FastPath(home)
    result = fast.understand("it's too dark in here and I feel gloomy")
    assert not result.matched and not result.calls and result.reply is None


def test_slot_lists_follow_the_registry(home: DeviceRegistry) -> None:
    fast = FastPath(home)
    assert not fast.understand("turn on the disco ball").calls
    home.upsert(Entity(entity_id="switch.disco", name="Disco Ball", domain="switch",
                       area="living_room"))
    assert calls_of(fast, "turn on the disco ball") == [
        ("turn_on", {"entity_ids": ["switch.disco"]})]
