"""Grounding: what the model proposes runs only for devices the request names."""

from __future__ import annotations

import pytest

from assistant.conversation import Proposal
from assistant.llm.grounding import Grounding, is_question
from assistant.messages import EntityCommand, ToolCall
from assistant.registry import Area, DeviceRegistry, Entity, Floor
from assistant.safety import SafetyPolicy
from tests.test_conversation import ScriptedReasoner, ask, make_conversation


@pytest.fixture
def home() -> DeviceRegistry:
    registry = DeviceRegistry(None)
    registry.set_floor(Floor(id="up", name="Upstairs"))
    for area, floor in (("kitchen", None), ("entry", None), ("bedroom", "up")):
        registry.set_area(Area(id=area, name=area.title(), floor=floor))
    for entity_id, name, area in [
        ("light.kitchen", "Kitchen Light", "kitchen"), ("light.bedroom", "Bedroom Light", "bedroom"),
        ("switch.coffee", "Coffee Maker Plug", "kitchen"), ("lock.entry", "Front Door", "entry"),
        ("light.entry", "Entry Light", "entry"),
    ]:
        registry.upsert(Entity(entity_id=entity_id, name=name, domain=entity_id.split(".")[0],
                               area=area))
    return registry


def reasons(home: DeviceRegistry, text: str, previous: tuple[str, ...] = ()) -> dict[str, str]:
    grounding = Grounding(home, SafetyPolicy(home), text, previous)
    return {e.entity_id: r for e in home.entities() if (r := grounding.reason(e)) is not None}


def test_a_name_an_area_with_its_kind_and_a_bare_kind_ground(home: DeviceRegistry) -> None:
    assert reasons(home, "switch on the coffee maker plug") == {"switch.coffee": "name"}
    assert reasons(home, "it's too dark in the kitchen") == {"light.kitchen": "area"}
    assert set(reasons(home, "it's too dark")) == {"light.kitchen", "light.bedroom",
                                                   "light.entry"}
    assert set(reasons(home, "turn on the plug")) == {"switch.coffee"}
    assert reasons(home, "lights off upstairs") == {"light.bedroom": "area"}  # a floor


def test_a_kind_with_a_word_nothing_here_has_grounds_nothing(home: DeviceRegistry) -> None:
    assert reasons(home, "turn on the porch plug") == {}
    assert reasons(home, "open the pool cover") == {}


def test_a_room_or_everything_never_grounds_a_lock(home: DeviceRegistry) -> None:
    assert reasons(home, "turn off the entry") == {"light.entry": "area"}
    swept = reasons(home, "turn everything off")
    assert "lock.entry" not in swept and swept["light.kitchen"] == "sweep"
    assert reasons(home, "unlock the front door") == {"lock.entry": "name"}


def test_follow_ups_need_words_that_refer_back(home: DeviceRegistry) -> None:
    previous = ("light.kitchen",)
    assert reasons(home, "turn it off", previous) == {"light.kitchen": "follow-up"}
    assert reasons(home, "brighter", previous) == {"light.kitchen": "follow-up"}
    assert reasons(home, "tell me a joke", previous) == {}


@pytest.mark.parametrize(("text", "about"), [
    ("tell me a joke", False), ("what's the capital of france", False),
    ("find me a recipe for lasagne", False), ("add milk to the shopping list", False),
    ("blorp fizzle wop", False), ("turn on the kitchen light", True),
    ("turn everything off", True), ("it's cold upstairs", True),
])
def test_requests_about_the_home(home: DeviceRegistry, text: str, about: bool) -> None:
    assert Grounding(home, SafetyPolicy(home), text).about_the_home() is about


@pytest.mark.parametrize(("text", "question"), [
    ("which lights are on?", True), ("is the front door locked", True),
    ("what's the temperature", True), ("can you turn on the light?", False),
    ("turn on the light", False), ("please close the blinds?", False),
])
def test_questions_and_requests(text: str, question: bool) -> None:
    assert is_question(text) is question


async def test_a_question_only_reads_states() -> None:
    reasoner = ScriptedReasoner(Proposal((ToolCall("turn_on", {
        "entity_ids": ["light.kitchen", "light.bedroom"]}),)))
    conversation, sent = make_conversation(reasoner)
    # (the fast path answers "which lights are on?" itself: this one goes to the model)
    response = await conversation.handle(ask("which lights did I leave on?"))
    assert response.path == "llm" and sent.commands == [] and not response.actions
    assert "Kitchen Light is off" in response.reply and "Bedroom Light is off" in response.reply


async def test_chit_chat_never_reaches_the_model_or_a_device() -> None:
    reasoner = ScriptedReasoner(Proposal((ToolCall("open", {
        "entity_ids": ["cover.garage_door"]}),)))
    conversation, sent = make_conversation(reasoner)
    response = await conversation.handle(ask("tell me a joke"))
    assert response.reply.startswith("Sorry, I can't do that yet.") and not response.success
    assert reasoner.seen == [] and sent.commands == [] and not response.pending


async def test_an_ungrounded_target_becomes_a_question_naming_action_and_device() -> None:
    reasoner = ScriptedReasoner(Proposal((
        ToolCall("turn_on", {"entity_ids": ["light.kitchen"]}),
        ToolCall("turn_on", {"entity_ids": ["light.bedroom"]}))))
    conversation, sent = make_conversation(reasoner)
    response = await conversation.handle(ask("could the kitchen be brighter"))
    assert response.path == "llm"
    assert sent.commands == [EntityCommand("light.kitchen", "turn_on")]
    assert "Do you want me to turn on the Bedroom Light?" in response.reply
    assert [a.entity_id for a in response.pending] == ["light.bedroom"]
    await conversation.handle(ask("no"))
    assert sent.commands == [EntityCommand("light.kitchen", "turn_on")]


async def test_a_request_that_names_a_device_is_about_that_device_only() -> None:
    reasoner = ScriptedReasoner(Proposal((ToolCall("turn_on", {
        "entity_ids": ["light.kitchen", "light.bedroom"]}),)))
    conversation, sent = make_conversation(reasoner)
    response = await conversation.handle(ask("the kitchen light, on with it"))
    assert sent.commands == [EntityCommand("light.kitchen", "turn_on")] and not response.pending


async def test_a_guess_at_many_devices_is_dropped_not_asked() -> None:
    conversation, sent = make_conversation()
    for n in range(4):
        conversation.registry.upsert(Entity(entity_id=f"light.spare_{n}", name=f"Spare {n}",
                                            domain="light", area="bedroom"))
    conversation.reasoner = ScriptedReasoner(Proposal((ToolCall("turn_on", {"entity_ids": [
        "light.kitchen", *(f"light.spare_{n}" for n in range(4))]}),)))
    response = await conversation.handle(ask("could the kitchen be brighter"))
    assert sent.commands == [EntityCommand("light.kitchen", "turn_on")]
    assert not response.pending


async def test_a_dummy_it_is_no_follow_up() -> None:
    reasoner = ScriptedReasoner(Proposal((ToolCall("turn_on", {
        "entity_ids": ["light.kitchen"]}),)))
    conversation, sent = make_conversation(reasoner)
    await conversation.handle(ask("make the kitchen brighter"))
    reasoner.proposal = Proposal((ToolCall("turn_off", {"entity_ids": ["light.kitchen"]}),))
    response = await conversation.handle(ask("it's cold in the bedroom"))
    assert len(sent.commands) == 1 and not response.actions


async def test_the_model_repeating_the_last_turn_does_nothing() -> None:
    reasoner = ScriptedReasoner(Proposal((ToolCall("turn_on", {
        "entity_ids": ["light.kitchen"]}),)))
    conversation, sent = make_conversation(reasoner)
    await conversation.handle(ask("make the kitchen brighter"))
    assert sent.commands == [EntityCommand("light.kitchen", "turn_on")]
    again = await conversation.handle(ask("what is the meaning of life"))
    assert len(sent.commands) == 1 and not again.success


@pytest.mark.parametrize(("text", "tool"), [
    ("turn everything off", "turn_on"), ("shut the blinds", "open"),
    ("switch the lights on", "turn_off"),
])
async def test_a_call_that_does_the_opposite_of_the_request_is_dropped(text: str,
                                                                        tool: str) -> None:
    reasoner = ScriptedReasoner(Proposal((ToolCall(tool, {"entity_ids": ["light.kitchen"]}),)))
    conversation, sent = make_conversation(reasoner)
    response = await conversation.handle(ask(text))
    assert sent.commands == [] and not response.pending and not response.success


async def test_a_compound_request_says_which_part_did_not_happen() -> None:
    reasoner = ScriptedReasoner(Proposal((ToolCall("turn_on", {
        "entity_ids": ["light.kitchen"]}),)))
    conversation, sent = make_conversation(reasoner)
    response = await conversation.handle(ask("kitchen light on, and the bedroom light too"))
    assert sent.commands == [EntityCommand("light.kitchen", "turn_on")]
    assert not response.success and "did nothing with the Bedroom Light" in response.reply


async def test_everything_only_switches_or_opens_and_closes() -> None:
    reasoner = ScriptedReasoner(Proposal((
        ToolCall("set_light", {"entity_ids": ["light.kitchen"], "brightness_pct": 100}),
        ToolCall("turn_off", {"entity_ids": ["light.bedroom"]}))))
    conversation, sent = make_conversation(reasoner)
    await conversation.handle(ask("turn everything off"))
    assert sent.commands == [EntityCommand("light.bedroom", "turn_off")]
