"""Compound requests on the fast path: every understood part in order, one reply, and no part
that a bad cut could have made acted on."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from assistant.automation.lists import ListService
from assistant.config import UnderstandingConfig
from assistant.conversation import Conversation
from assistant.messages import ConversationRequest
from assistant.registry import Area, DeviceRegistry, Entity
from assistant.safety import SafetyPolicy
from assistant.understanding.compound import Parts
from assistant.understanding.fastpath import FastPath
from skills.base import SkillRegistry
from skills.home_control import HomeControlSkill
from skills.lists import ListSkill
from tests.test_conversation import Clock, Sent

DEVICES = [
    ("light.kitchen", "Kitchen Light", "kitchen", None, "off"),
    ("light.salt_and_pepper", "Salt and Pepper Lamp", "kitchen", None, "off"),
    ("light.living_room", "Living Room Light", "living_room", None, "off"),
    ("light.lamp", "Lamp", "living_room", None, "on"),
    ("media_player.tv", "TV", "living_room", "tv", "on"),
    ("light.bedroom", "Bedroom Light", "bedroom", None, "off"),
    ("fan.bedroom", "Bedroom Fan", "bedroom", None, "on"),
    ("cover.bedroom_blinds", "Bedroom Blinds", "bedroom", "blind", "closed"),
    ("light.pepper", "Pepper Lamp", "hall", None, "off"),
    ("lock.front_door", "Front Door", "entry", None, "locked"),
    ("lock.back_door", "Back Door", "entry", None, "locked"),
    ("cover.garage_door", "Garage Door", "garage", "garage", "closed"),
]


def make_home() -> DeviceRegistry:
    registry = DeviceRegistry(None)
    for area in ("kitchen", "living_room", "bedroom", "hall", "entry", "garage"):
        registry.set_area(Area(id=area, name=area.replace("_", " ").title()))
    for entity_id, name, area, device_class, state in DEVICES:
        registry.upsert(Entity(entity_id=entity_id, name=name, domain=entity_id.split(".")[0],
                               area=area, device_class=device_class, state=state))
    return registry


class Home:
    """A conversation over ``make_home`` and what it sent to the devices."""

    def __init__(self, clock: Clock | None = None, lists: ListService | None = None) -> None:
        self.registry = make_home()
        self.clock = clock or Clock()
        self.sent = Sent()
        skills = SkillRegistry()
        skills.register(HomeControlSkill())
        if lists is not None:
            skills.register(ListSkill(lists))
        policy = SafetyPolicy(self.registry)
        self.fast_path = FastPath(self.registry, policy=policy)
        self.conversation = Conversation(
            self.registry, skills, self.sent, self.fast_path, None,
            UnderstandingConfig(confirmation_window_s=20), policy=policy, clock=self.clock,
            followup_window_s=120)

    async def say(self, text: str, conversation_id: str = "c1", area: str | None = None):
        return await self.conversation.handle(ConversationRequest(text, conversation_id, area))

    def sent_to(self) -> list[tuple[str, str]]:
        return [(c.entity_id, c.service) for c in self.sent.commands]


async def test_two_commands_run_in_order_with_one_reply() -> None:
    home = Home()
    response = await home.say("turn on the kitchen light and then turn off the lamp")
    assert home.sent_to() == [("light.kitchen", "turn_on"), ("light.lamp", "turn_off")]
    assert response.path == "fast" and response.success
    assert "Kitchen Light" in response.reply and "Lamp" in response.reply


@pytest.mark.parametrize("text", [
    "turn on the kitchen light, then turn on the bedroom light",
    "turn on the kitchen light then turn on the bedroom light",
    "turn on the kitchen light and also turn on the bedroom light",
])
async def test_each_connector_splits(text: str) -> None:
    home = Home()
    await home.say(text)
    assert home.sent_to() == [("light.kitchen", "turn_on"), ("light.bedroom", "turn_on")]


async def test_a_part_without_a_verb_takes_the_one_before() -> None:
    home = Home()
    await home.say("turn off the tv and the lamp")
    assert home.sent_to() == [("media_player.tv", "turn_off"), ("light.lamp", "turn_off")]


async def test_a_comma_list_shares_the_verb() -> None:
    home = Home()
    await home.say("turn on the bedroom light, the kitchen light and the living room light")
    assert home.sent_to() == [("light.bedroom", "turn_on"), ("light.kitchen", "turn_on"),
                              ("light.living_room", "turn_on")]


async def test_rooms_share_the_device_noun_said_at_the_end() -> None:
    home = Home()
    await home.say("turn on both the living room and kitchen lights")
    turned_on = {eid for eid, service in home.sent_to() if service == "turn_on"}
    # the lights of both rooms, not everything in the living room (the TV stays as it is)
    assert turned_on == {"light.living_room", "light.lamp", "light.kitchen",
                         "light.salt_and_pepper"}


async def test_a_bare_room_takes_the_device_kind_of_the_part_before() -> None:
    home = Home()
    await home.say("turn off the living room light and the bedroom")
    # the bedroom's light, not everything in the bedroom (its fan stays on)
    assert home.sent_to() == [("light.living_room", "turn_off"), ("light.bedroom", "turn_off")]


async def test_a_bare_room_without_that_kind_is_told_not_swept() -> None:
    home = Home()
    response = await home.say("turn off the lamp and the bedroom")
    assert home.sent_to() == [("light.lamp", "turn_off")]  # the bedroom has no lamp
    assert "Bedroom" in response.reply and not response.success


async def test_a_place_list_after_a_place_phrase() -> None:
    home = Home()
    await home.say("switch on the lights in the kitchen and the bedroom")
    assert {eid for eid, _ in home.sent_to()} == {"light.kitchen", "light.salt_and_pepper",
                                                  "light.bedroom"}


async def test_a_name_with_and_in_it_is_not_split() -> None:
    home = Home()
    await home.say("turn on the salt and pepper lamp")
    assert home.sent_to() == [("light.salt_and_pepper", "turn_on")]


async def test_a_cut_inside_an_unknown_name_acts_on_nothing() -> None:
    """"pepper lamp" is a device, but here it is only the end of a name nobody has."""
    home = Home()
    response = await home.say("turn on the sugar and pepper lamp")
    assert home.sent_to() == []
    assert not response.success


async def test_a_part_not_understood_is_named_and_the_rest_is_done() -> None:
    home = Home()
    response = await home.say("turn on the kitchen light and bake me a cake")
    assert home.sent_to() == [("light.kitchen", "turn_on")]
    assert '"bake me a cake"' in response.reply and "nothing" in response.reply
    assert not response.success


async def test_a_part_that_needs_a_yes_asks_for_that_part_alone() -> None:
    home = Home()
    response = await home.say("turn on the kitchen light and unlock the front door")
    assert home.sent_to() == [("light.kitchen", "turn_on")]
    assert response.awaiting_confirmation
    assert [(a.tool, a.entity_id) for a in response.pending] == [("unlock", "lock.front_door")]
    assert "Kitchen Light" in response.reply and "Front Door" in response.reply
    await home.say("yes")
    assert home.sent_to() == [("light.kitchen", "turn_on"), ("lock.front_door", "unlock")]


async def test_a_sweep_beside_a_place_is_not_guessed_into_the_speakers_room() -> None:
    """"the lights and the fan in the bedroom": the kitchen lights, where the speaker is,
    may not be what "the lights" meant."""
    home = Home()
    response = await home.say("turn off the lights and the fan in the bedroom", area="kitchen")
    assert ("light.kitchen", "turn_off") not in home.sent_to()
    assert home.sent_to() == [("fan.bedroom", "turn_off")]
    assert '"turn off the lights"' in response.reply


async def test_a_whole_match_is_never_split(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_split(*_: object) -> None:
        raise AssertionError("split although the whole matched")

    home = Home()
    monkeypatch.setattr(Parts, "split", no_split)
    await home.say("turn on the kitchen light")
    assert home.sent_to() == [("light.kitchen", "turn_on")]


async def test_a_sentence_without_a_connector_is_not_split() -> None:
    home = Home()
    assert Parts(home.fast_path).split("turn on the blender", None) is None


@pytest.fixture
async def lists() -> AsyncIterator[ListService]:
    service = ListService(None, make_home())
    await service.start()
    yield service
    await service.close()


async def test_an_item_with_and_in_it_is_one_item(lists: ListService) -> None:
    home = Home(lists=lists)
    response = await home.say("add mac and cheese to my shopping list")
    assert response.success and "mac and cheese" in response.reply
    assert home.sent_to() == []


async def test_a_list_item_and_a_device_command(lists: ListService) -> None:
    home = Home(lists=lists)
    response = await home.say("add milk to my shopping list and turn on the kitchen light")
    assert home.sent_to() == [("light.kitchen", "turn_on")]
    assert "milk" in response.reply and "and turn" not in response.reply


async def test_a_wildcard_never_ends_at_a_cut() -> None:
    """"tick off milk" cut from "tick off milk and honey" would lose the words after the
    cut; whole, the same words are understood."""
    parts = Parts(Home().fast_path)
    whole = parts.understand("tick off milk", None, None)
    assert whole is not None and whole.result.calls
    assert parts.understand("tick off milk", None, None, cut_after=True) is None


async def test_commands_still_match_when_a_skill_is_off() -> None:
    home = Home()
    response = await home.say("add milk to my shopping list and turn on the kitchen light")
    # no list skill here: the list part is told as not done, the light is switched
    assert home.sent_to() == [("light.kitchen", "turn_on")]
    assert not response.success
