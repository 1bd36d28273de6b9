"""Fast path: recognition, target resolution, clarification, and speed-independent checks."""

import pytest

from assistant.understanding.aliases import derived_area_names, derived_names
from assistant.understanding.fastpath import FastPath
from assistant.understanding.routes import merge_own
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


def test_lock_words_become_lock_tools_and_on_off_words_never_do(home: DeviceRegistry) -> None:
    fast = FastPath(home)
    assert calls_of(fast, "lock the front door") == [
        ("lock", {"entity_ids": ["lock.front_door"]})]
    assert calls_of(fast, "unlock the front door") == [
        ("unlock", {"entity_ids": ["lock.front_door"]})]
    for text in ("turn off the front door", "turn on the front door", "switch off the front door"):
        assert all(c[0] not in {"lock", "unlock"} for c in calls_of(fast, text)), text
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
        ("get_state", {"entity_ids": ["cover.garage_door"], "state": "open"})]
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


def test_device_names_with_underscores_are_said_as_words(home: DeviceRegistry) -> None:
    home.upsert(Entity(entity_id="switch.tasmota_relay_1", name="SONOFF_B1", domain="switch"))
    home.upsert(Entity(entity_id="switch.porch_plug", name="porch-plug", domain="switch",
                       aliases=("Porch Plug",)))
    fast = FastPath(home)
    assert calls_of(fast, "turn on sonoff b1") == [
        ("turn_on", {"entity_ids": ["switch.tasmota_relay_1"]})]  # once, not per spelling
    assert calls_of(fast, "turn off the porch plug") == [
        ("turn_off", {"entity_ids": ["switch.porch_plug"]})]
    assert not fast.understand("turn on sonoff b2").calls


# -- derived names, our own templates, commands without a target -------------------------

@pytest.fixture()
def flat() -> DeviceRegistry:
    """A second invented home: media players, a vacuum, valves, a thermostat, a lock."""
    registry = DeviceRegistry(None)
    for area_id, name in [("den", "Den"), ("lounge", "Lounge"), ("nursery", "Nursery"),
                          ("patio", "Patio"), ("hallway", "Hallway"), ("utility", "Utility")]:
        registry.set_area(Area(id=area_id, name=name))
    entities = [
        ("light.den_lamp", "Den Lamp", "den", None, "on"),
        ("light.reading_lamp", "Reading Lamp", "lounge", None, "on"),
        ("media_player.den_speaker", "Smart Speaker", "den", "speaker", "playing"),
        ("media_player.big_screen", "Big Screen", "lounge", "tv", "playing"),
        ("media_player.lullaby_box", "Lullaby Box", "nursery", "speaker", "paused"),
        ("climate.hall", "Hall Thermostat", "hallway", None, "off"),
        ("vacuum.dusty", "Dusty", "den", None, "docked"),
        ("valve.lawn", "Lawn Sprinkler", "patio", None, "closed"),
        ("valve.mains", "Main Water", "utility", None, "open"),
        ("lock.patio_door", "Patio Door", "patio", None, "locked"),
        ("switch.pond_pump", "Pond Pump Plug", "patio", None, "off"),
    ]
    for entity_id, name, area, device_class, state in entities:
        registry.upsert(Entity(entity_id=entity_id, name=name, domain=entity_id.split(".")[0],
                               area=area, device_class=device_class, state=state))
    return registry


def test_derived_names() -> None:
    def derived(name: str, domain: str, area: str, device_class: str | None = None) -> set[str]:
        entity = Entity(entity_id=f"{domain}.x", name=name, domain=domain,
                        device_class=device_class)
        return derived_names(entity, [area], frozenset({area.lower(), "kitchen"}))

    assert {"speaker", "music"} <= derived("Smart Speaker", "media_player", "Den", "speaker")
    assert "study speaker" in derived("Study Smart Speaker", "media_player", "Office")
    assert {"thermostat", "heating"} <= derived("Hall Thermostat", "climate", "Hallway")
    assert "sprinklers" in derived("Lawn Sprinkler", "valve", "Patio")
    assert "pond pump" in derived("Pond Pump Plug", "switch", "Patio")
    assert "reading" in derived("Reading Lamp", "light", "Lounge")
    # A bare "light" or an area's name would turn "the kitchen lights" into one device.
    assert derived("Kitchen Light", "light", "Kitchen") == set()
    assert "smart curtains" in derived("Smart Curtain", "cover", "Den")
    assert "ceiling lights" in derived("Ceiling Light", "light", "Den")
    assert derived("Den Lamp", "light", "Den") == set()
    assert derived("Den Temperature", "sensor", "Den") == set()
    # an air conditioner that cannot heat is not "the heating"
    cooler = Entity(entity_id="climate.ac", name="Window Unit", domain="climate",
                    capabilities={"hvac_modes": ["off", "cool"]})
    assert "ac" in derived_names(cooler, [])
    assert "heating" not in derived_names(cooler, [])


def test_kind_words_reach_the_one_device(flat: DeviceRegistry) -> None:
    fast = FastPath(flat)
    assert calls_of(fast, "set the tv volume to 30") == [
        ("set_volume", {"entity_ids": ["media_player.big_screen"], "volume_pct": 30})]
    assert calls_of(fast, "turn on the heating") == [
        ("turn_on", {"entity_ids": ["climate.hall"]})]
    assert calls_of(fast, "turn on the sprinklers") == [
        ("turn_on", {"entity_ids": ["valve.lawn"]})]
    assert calls_of(fast, "stop the pond pump") == [
        ("turn_off", {"entity_ids": ["switch.pond_pump"]})]
    assert calls_of(fast, "lock the door") == [("lock", {"entity_ids": ["lock.patio_door"]})]


def test_a_derived_name_for_several_devices_asks(flat: DeviceRegistry) -> None:
    fast = FastPath(flat)
    result = fast.understand("turn on the speaker")
    assert result.clarification and not result.calls
    assert set(result.candidates) == {"media_player.den_speaker", "media_player.lullaby_box"}
    # ... unless the room settles it
    assert calls_of(fast, "turn on the speaker in the nursery") == [
        ("turn_on", {"entity_ids": ["media_player.lullaby_box"]})]
    assert calls_of(fast, "turn on the speaker", area="den") == [
        ("turn_on", {"entity_ids": ["media_player.den_speaker"]})]


def test_own_names_win_over_derived_ones(flat: DeviceRegistry) -> None:
    flat.upsert(Entity(entity_id="switch.heater", name="Heater", domain="switch", area="den"))
    fast = FastPath(flat)
    assert calls_of(fast, "turn on the heater") == [
        ("turn_on", {"entity_ids": ["switch.heater"]})]


def test_a_named_device_in_another_room_is_not_taken(flat: DeviceRegistry) -> None:
    fast = FastPath(flat)
    result = fast.understand("turn on the reading lamp in the den")
    assert result.unresolved and not result.calls


def test_area_kind_words_stay_with_the_area(home: DeviceRegistry) -> None:
    fast = FastPath(home)
    [(tool, args)] = calls_of(fast, "turn off the kitchen lights")
    assert tool == "turn_off" and set(args["entity_ids"]) == {
        "light.kitchen_light", "light.kitchen_ceiling"}


def test_media_without_a_target(flat: DeviceRegistry) -> None:
    fast = FastPath(flat)
    # two players are playing in different rooms: ask, unless the speaker's room settles it
    result = fast.understand("pause")
    assert result.clarification and set(result.candidates) == {
        "media_player.den_speaker", "media_player.big_screen"}
    assert calls_of(fast, "pause", area="den") == [
        ("media", {"entity_ids": ["media_player.den_speaker"], "command": "pause"})]
    assert calls_of(fast, "make it louder", area="lounge") == [
        ("set_volume", {"entity_ids": ["media_player.big_screen"], "volume_step_pct": 10})]
    assert calls_of(fast, "turn it down", area="den") == [
        ("set_volume", {"entity_ids": ["media_player.den_speaker"], "volume_step_pct": -10})]
    # the one paused player is the one to resume
    assert calls_of(fast, "resume") == [
        ("media", {"entity_ids": ["media_player.lullaby_box"], "command": "play"})]
    assert calls_of(fast, "skip this song", area="lounge") == [
        ("media", {"entity_ids": ["media_player.big_screen"], "command": "next"})]
    assert calls_of(fast, "pause the music in the nursery") == [
        ("media", {"entity_ids": ["media_player.lullaby_box"], "command": "pause"})]


def test_vacuum_commands(flat: DeviceRegistry) -> None:
    fast = FastPath(flat)
    assert calls_of(fast, "start cleaning") == [
        ("vacuum", {"entity_ids": ["vacuum.dusty"], "command": "start"})]
    assert calls_of(fast, "send dusty back to its dock") == [
        ("vacuum", {"entity_ids": ["vacuum.dusty"], "command": "return_to_base"})]
    assert calls_of(fast, "stop vacuuming") == [  # it ends the cleaning and docks
        ("vacuum", {"entity_ids": ["vacuum.dusty"], "command": "return_to_base"})]


def test_climate_phrasings_and_units(flat: DeviceRegistry) -> None:
    fast = FastPath(flat)
    assert calls_of(fast, "set the temperature to 21 degrees celsius") == [
        ("set_temperature", {"entity_ids": ["climate.hall"], "temperature": 21.0})]
    assert calls_of(fast, "make it 70 degrees fahrenheit") == [
        ("set_temperature", {"entity_ids": ["climate.hall"], "temperature": 21.0})]
    assert calls_of(fast, "set the hall thermostat to 19.5°C") == [
        ("set_temperature", {"entity_ids": ["climate.hall"], "temperature": 19.5})]
    assert calls_of(fast, "heat the hallway") == [
        ("set_hvac_mode", {"entity_ids": ["climate.hall"], "hvac_mode": "heat"})]
    assert calls_of(fast, "stop heating") == [("turn_off", {"entity_ids": ["climate.hall"]})]


def test_light_phrasings(flat: DeviceRegistry) -> None:
    fast = FastPath(flat)
    assert calls_of(fast, "dim the den lamp to half") == [
        ("set_light", {"entity_ids": ["light.den_lamp"], "brightness_pct": 50})]
    assert calls_of(fast, "make the reading light a bit brighter") == [
        ("set_light", {"entity_ids": ["light.reading_lamp"], "brightness_step_pct": 25})]
    assert calls_of(fast, "make the den lamp 10% dimmer") == [
        ("set_light", {"entity_ids": ["light.den_lamp"], "brightness_step_pct": -10})]
    assert calls_of(fast, "turn the den lamp all the way down") == [
        ("set_light", {"entity_ids": ["light.den_lamp"], "brightness_pct": 1})]
    assert calls_of(fast, "dim the lights in the lounge to 30 percent") == [
        ("set_light", {"entity_ids": ["light.reading_lamp"], "brightness_pct": 30})]


def test_valve_phrasings(flat: DeviceRegistry) -> None:
    fast = FastPath(flat)
    assert calls_of(fast, "lawn sprinkler off") == [("turn_off", {"entity_ids": ["valve.lawn"]})]
    assert calls_of(fast, "set the main water to half open") == [
        ("set_position", {"entity_ids": ["valve.mains"], "position": 50})]
    # two valves could be "the water": ask
    assert fast.understand("turn off the water").clarification


def test_own_templates_may_not_replace_upstream_lists() -> None:
    base = {"intents": {}, "lists": {"brightness": {}}, "expansion_rules": {}}
    with pytest.raises(ValueError):
        merge_own(base, {"lists": {"brightness": {"values": []}}})


def test_a_kind_without_a_place_is_not_every_such_device(flat: DeviceRegistry) -> None:
    fast = FastPath(flat)
    result = fast.understand("lights off")
    assert result.clarification and not result.calls
    assert calls_of(fast, "lights off", area="den") == [
        ("turn_off", {"entity_ids": ["light.den_lamp"]})]


def test_a_derived_name_alone_is_not_a_command(flat: DeviceRegistry) -> None:
    fast = FastPath(flat)
    for fragment in ("heat", "the music", "tv"):
        assert not fast.understand(fragment).calls
    assert calls_of(fast, "louder in the lounge") == [
        ("set_volume", {"entity_ids": ["media_player.big_screen"], "volume_step_pct": 10})]


def test_the_light_with_no_room_asks_unless_all_or_the_speaker_room(home: DeviceRegistry) -> None:
    fast = FastPath(home)
    question = fast.understand("turn on the light")
    assert question.clarification and not question.calls
    assert calls_of(fast, "turn on the light", area="bedroom") == [
        ("turn_on", {"entity_ids": ["light.bedroom_ceiling"]})]
    [(tool, args)] = calls_of(fast, "turn off all the lights")
    assert tool == "turn_off" and len(args["entity_ids"]) == 4


def test_a_singular_request_in_a_room_means_one_device(home: DeviceRegistry) -> None:
    fast = FastPath(home)
    # two lights in the kitchen: the room's own "Kitchen Light" is "the light in the kitchen"
    assert calls_of(fast, "turn on the light in the kitchen") == [
        ("turn_on", {"entity_ids": ["light.kitchen_light"]})]
    [(tool, args)] = calls_of(fast, "turn on the lights in the kitchen")
    assert set(args["entity_ids"]) == {"light.kitchen_light", "light.kitchen_ceiling"}


def test_media_in_a_room_goes_to_the_player_that_plays(home: DeviceRegistry) -> None:
    home.upsert(Entity(entity_id="media_player.den_tv", name="Television", domain="media_player",
                       area="living_room", state="idle"))
    home.upsert(Entity(entity_id="media_player.den_speaker", name="Speaker",
                       domain="media_player", area="living_room", state="playing"))
    fast = FastPath(home)
    [(tool, args)] = calls_of(fast, "pause the music in the living room")
    assert tool == "media" and args["entity_ids"] == ["media_player.den_speaker"]
    home.update_state("media_player.den_tv", "playing")
    result = fast.understand("pause in the living room")
    assert result.clarification and not result.calls


def test_a_question_about_a_room_reports_every_fitting_sensor(home: DeviceRegistry) -> None:
    home.upsert(Entity(entity_id="sensor.kitchen_temperature_2", name="Kitchen Temperature 2",
                       domain="sensor", area="kitchen", device_class="temperature"))
    fast = FastPath(home)
    [(tool, args)] = calls_of(fast, "what's the temperature in the kitchen")
    assert tool == "get_state" and set(args["entity_ids"]) == {
        "sensor.kitchen_temperature", "sensor.kitchen_temperature_2"}


def test_derived_area_names() -> None:
    areas = {"studio": ["Living Room/Kitchen"], "garden": ["Coastal Garden"],
             "guest": ["Guest Bedroom"], "master": ["Master Bedroom"], "pool": ["Pool House"]}
    derived = derived_area_names(areas, taken=frozenset({"pool"}))
    assert derived["studio"] == {"living room", "kitchen"}
    assert derived["garden"] == {"garden"}
    # "bedroom" fits two rooms, "house" is any room, "pool" is a device's name
    assert "guest" not in derived and "master" not in derived and "pool" not in derived


def test_part_of_a_room_name_finds_the_room(home: DeviceRegistry) -> None:
    home.set_area(Area(id="coastal_garden", name="Coastal Garden"))
    home.set_area(Area(id="studio", name="Den/Study"))
    home.upsert(Entity(entity_id="light.path", name="Path Light", domain="light",
                       area="coastal_garden", state="off"))
    home.upsert(Entity(entity_id="light.desk", name="Desk Lamp", domain="light",
                       area="studio", state="off"))
    fast = FastPath(home)
    assert calls_of(fast, "turn on the light in the garden") == [
        ("turn_on", {"entity_ids": ["light.path"]})]
    assert calls_of(fast, "turn off the study light") == [
        ("turn_off", {"entity_ids": ["light.desk"]})]
