"""Follow-ups on the fast path: read against the last turn of the same conversation while it
is recent, and never acting when there is nothing to refer to."""

from __future__ import annotations

import pytest

from tests.test_compound import Home
from tests.test_conversation import Clock


@pytest.mark.parametrize("follow_up", [
    "and the kitchen too", "the kitchen as well", "and the kitchen", "the kitchen too",
])
async def test_another_room_gets_the_same_action_on_the_same_kind(follow_up: str) -> None:
    home = Home()
    await home.say("turn off the living room light")
    response = await home.say(follow_up)
    # the kitchen's light, not the kitchen's other light (the Salt and Pepper Lamp)
    assert home.sent_to() == [("light.living_room", "turn_off"), ("light.kitchen", "turn_off")]
    assert response.path == "fast" and "Kitchen Light" in response.reply


async def test_a_verb_that_is_also_a_device_noun() -> None:
    home = Home()
    await home.say("switch on the kitchen light")
    await home.say("and the bedroom too")
    assert home.sent_to() == [("light.kitchen", "turn_on"), ("light.bedroom", "turn_on")]


async def test_a_named_device_too() -> None:
    home = Home()
    await home.say("turn on the kitchen light")
    await home.say("and the bedroom fan too")
    assert home.sent_to()[-1] == ("fan.bedroom", "turn_on")


async def test_a_room_follow_up_never_becomes_the_whole_room() -> None:
    home = Home()
    await home.say("turn off the kitchen light")
    await home.say("and the living room too")
    # the living room's lights, never its TV
    assert ("media_player.tv", "turn_off") not in home.sent_to()


async def test_it_is_the_last_target() -> None:
    home = Home()
    await home.say("turn on the kitchen light")
    await home.say("turn it off")
    assert home.sent_to() == [("light.kitchen", "turn_on"), ("light.kitchen", "turn_off")]


async def test_them_is_every_last_target() -> None:
    home = Home()
    await home.say("turn on the kitchen light and the bedroom light")
    await home.say("turn them off")
    assert home.sent_to()[2:] == [("light.kitchen", "turn_off"), ("light.bedroom", "turn_off")]


async def test_brighter_then_more_then_less() -> None:
    home = Home()
    home.registry.upsert(home.registry.get("light.bedroom").model_copy(
        update={"state": "on", "attributes": {"brightness": 128}}))
    await home.say("turn on the bedroom light")

    async def brightness_after(text: str) -> int:
        await home.say(text)
        command = home.sent.commands[-1]
        assert command.entity_id == "light.bedroom"
        return command.params["brightness"]

    # the device does not report back here, so each step starts from 128 again
    assert await brightness_after("make it brighter") > 128
    assert await brightness_after("a bit more") > 128
    assert await brightness_after("less") < 128


async def test_more_after_a_plain_switch_does_nothing() -> None:
    home = Home()
    await home.say("turn on the bedroom light")
    await home.say("more")
    assert home.sent_to() == [("light.bedroom", "turn_on")]


async def test_a_correction_undoes_the_wrong_device_and_says_so() -> None:
    home = Home()
    await home.say("turn on the bedroom light")
    response = await home.say("not that one, the lamp")
    assert home.sent_to() == [("light.bedroom", "turn_on"), ("light.bedroom", "turn_off"),
                              ("light.lamp", "turn_on")]
    assert "turned off the Bedroom Light" in response.reply and "Lamp" in response.reply


async def test_a_correction_of_a_change_that_is_not_a_switch_is_not_undone() -> None:
    home = Home()
    await home.say("make the bedroom light brighter")
    await home.say("no i meant the living room light")
    assert [eid for eid, _ in home.sent_to()] == ["light.bedroom", "light.living_room"]


async def test_undoing_a_garage_door_waits_for_a_yes() -> None:
    home = Home()
    await home.say("open the garage door")
    await home.say("yes")
    response = await home.say("not that one, the bedroom blinds")
    assert home.sent_to() == [("cover.garage_door", "open_cover"),
                              ("cover.bedroom_blinds", "open_cover")]
    assert response.awaiting_confirmation
    assert [a.entity_id for a in response.pending] == ["cover.garage_door"]
    await home.say("yes")
    assert home.sent_to()[-1] == ("cover.garage_door", "close_cover")


async def test_a_wrong_lock_is_undone_only_with_a_yes() -> None:
    home = Home()
    await home.say("unlock the front door")
    await home.say("yes")
    response = await home.say("not that one, the back door")
    assert home.sent_to() == [("lock.front_door", "unlock")]
    assert sorted((a.tool, a.entity_id) for a in response.pending) == [
        ("lock", "lock.front_door"), ("unlock", "lock.back_door")]
    await home.say("yes")
    assert home.sent_to()[1:] == [("lock.front_door", "lock"), ("lock.back_door", "unlock")]


@pytest.mark.parametrize("follow_up", ["turn it off", "and the kitchen too", "a bit more",
                                       "not that one, the lamp"])
async def test_nothing_before_means_nothing_is_done(follow_up: str) -> None:
    home = Home()
    response = await home.say(follow_up)
    assert home.sent_to() == [] and not response.success


async def test_an_expired_turn_is_not_followed() -> None:
    clock = Clock()
    home = Home(clock=clock)
    await home.say("turn on the kitchen light")
    clock.now += 121
    await home.say("turn it off")
    assert home.sent_to() == [("light.kitchen", "turn_on")]


async def test_a_turn_just_inside_the_window_is_followed() -> None:
    clock = Clock()
    home = Home(clock=clock)
    await home.say("turn on the kitchen light")
    clock.now += 119
    await home.say("turn it off")
    assert home.sent_to() == [("light.kitchen", "turn_on"), ("light.kitchen", "turn_off")]


async def test_another_conversation_is_not_followed() -> None:
    home = Home()
    await home.say("turn on the kitchen light", conversation_id="kitchen-satellite")
    await home.say("turn it off", conversation_id="bedroom-satellite")
    assert home.sent_to() == [("light.kitchen", "turn_on")]


async def test_a_turn_that_did_nothing_is_not_followed() -> None:
    home = Home()
    await home.say("unlock the front door")
    await home.say("no")
    await home.say("turn it off")
    assert home.sent_to() == []


async def test_a_pronoun_after_a_lock_still_asks() -> None:
    home = Home()
    await home.say("unlock the front door")
    await home.say("yes")
    response = await home.say("lock it")
    assert home.sent_to() == [("lock.front_door", "unlock")]
    assert response.awaiting_confirmation
