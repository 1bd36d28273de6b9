"""Conversation: confirmation window, hybrid policy, validation of every call."""

from __future__ import annotations

import pytest

from assistant.config import UnderstandingConfig
from assistant.conversation import Conversation, Proposal, ReasonerUnavailable, Turn
from assistant.understanding.fastpath import FastPath
from assistant.messages import ConversationRequest, EntityCommand, ToolCall
from assistant.registry import Area, DeviceRegistry, Entity
from skills.base import SkillRegistry
from skills.home_control import HomeControlSkill


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Sent:
    """The device boundary: records what would go on the wire."""

    def __init__(self) -> None:
        self.commands: list[EntityCommand] = []

    async def __call__(self, commands: list[tuple[Entity, EntityCommand]]) -> None:
        self.commands.extend(c for _, c in commands)


class ScriptedReasoner:
    """Stands in for the LLM where a test depends on the model's choice."""

    status = "ready"

    def __init__(self, proposal: Proposal) -> None:
        self.proposal = proposal
        self.seen: list[tuple[str, tuple[Turn, ...], str | None]] = []

    async def propose(self, text: str, area: str | None, history: tuple[Turn, ...],
                      hint: str | None) -> Proposal:
        self.seen.append((text, history, hint))
        return self.proposal


def make_home() -> DeviceRegistry:
    registry = DeviceRegistry(None)
    for area in ("kitchen", "entry", "garage", "bedroom"):
        registry.set_area(Area(id=area, name=area.title()))
    for entity_id, name, area, device_class, state in [
        ("light.kitchen", "Kitchen Light", "kitchen", None, "off"),
        ("light.bedroom", "Bedroom Light", "bedroom", None, "off"),
        ("lock.front_door", "Front Door", "entry", None, "unlocked"),
        ("cover.garage_door", "Garage Door", "garage", "garage", "closed"),
    ]:
        registry.upsert(Entity(entity_id=entity_id, name=name, domain=entity_id.split(".")[0],
                               area=area, device_class=device_class, state=state))
    return registry


def make_conversation(reasoner=None, clock=None):
    registry = make_home()
    skills = SkillRegistry()
    skills.register(HomeControlSkill())
    sent = Sent()
    conversation = Conversation(registry, skills, sent, FastPath(registry), reasoner,
                                UnderstandingConfig(confirmation_window_s=20),
                                clock=clock or Clock())
    return conversation, sent


def ask(text: str, conversation_id: str = "c1") -> ConversationRequest:
    return ConversationRequest(text, conversation_id)


async def test_plain_command_goes_out_via_the_fast_path() -> None:
    conversation, sent = make_conversation()
    response = await conversation.handle(ask("turn on the kitchen light"))
    assert response.path == "fast" and response.success
    assert sent.commands == [EntityCommand("light.kitchen", "turn_on")]
    assert [(a.tool, a.entity_id) for a in response.actions] == [("turn_on", "light.kitchen")]
    assert "kitchen light" in response.reply.lower()


async def test_lock_needs_a_yes_within_the_window() -> None:
    clock = Clock()
    conversation, sent = make_conversation(clock=clock)
    question = await conversation.handle(ask("lock the front door"))
    assert question.awaiting_confirmation and not sent.commands
    assert "front door" in question.reply.lower() and "?" in question.reply
    done = await conversation.handle(ask("yes"))
    assert done.path == "confirmation"
    assert sent.commands == [EntityCommand("lock.front_door", "lock")]


async def test_no_declines_and_a_late_yes_does_nothing() -> None:
    clock = Clock()
    conversation, sent = make_conversation(clock=clock)
    await conversation.handle(ask("open the garage door"))
    assert "won't" in (await conversation.handle(ask("no"))).reply
    await conversation.handle(ask("unlock the front door"))
    clock.now += 21
    late = await conversation.handle(ask("yes"))
    assert "too late" in late.reply
    assert sent.commands == []


async def test_yes_only_confirms_in_its_own_conversation() -> None:
    conversation, sent = make_conversation()
    await conversation.handle(ask("unlock the front door", "kitchen-satellite"))
    other = await conversation.handle(ask("yes", "someone-else"))
    assert "nothing waiting" in other.reply
    assert sent.commands == []


async def test_a_new_request_replaces_a_pending_question() -> None:
    conversation, sent = make_conversation()
    await conversation.handle(ask("unlock the front door"))
    await conversation.handle(ask("turn on the kitchen light"))
    assert "nothing waiting" in (await conversation.handle(ask("yes"))).reply
    assert sent.commands == [EntityCommand("light.kitchen", "turn_on")]


async def test_unknown_utterance_without_llm_is_honest() -> None:
    conversation, sent = make_conversation()
    response = await conversation.handle(ask("it's too dark in the kitchen"))
    assert response.reply == "Sorry, I didn't understand that." and not response.success
    assert sent.commands == []


async def test_llm_fallback_runs_valid_calls_through_the_same_executor() -> None:
    reasoner = ScriptedReasoner(Proposal((ToolCall("set_light", {
        "entity_ids": ["light.kitchen"], "brightness_pct": 80}),)))
    conversation, sent = make_conversation(reasoner)
    response = await conversation.handle(ask("it's too dark in the kitchen"))
    assert response.path == "llm"
    assert sent.commands == [EntityCommand("light.kitchen", "turn_on", {"brightness": 204})]
    follow_up = await conversation.handle(ask("and the bedroom too"))
    assert reasoner.seen[-1][1][-1].text == "it's too dark in the kitchen"
    assert follow_up.path == "llm"


@pytest.mark.parametrize("call", [
    ToolCall("turn_on", {"entity_ids": ["light.does_not_exist"]}),
    ToolCall("set_light", {"entity_ids": ["light.kitchen"], "brightness_pct": 10**15}),
    ToolCall("rm_rf", {"entity_ids": ["light.kitchen"]}),
])
async def test_invalid_llm_calls_are_refused_and_nothing_is_sent(call: ToolCall) -> None:
    conversation, sent = make_conversation(ScriptedReasoner(Proposal((call,))))
    response = await conversation.handle(ask("do the thing"))
    assert not response.success and sent.commands == []


async def test_llm_cannot_unlock_without_confirmation() -> None:
    reasoner = ScriptedReasoner(Proposal((ToolCall("unlock", {"entity_ids": ["lock.front_door"]}),
                                          ToolCall("turn_on", {"entity_ids": ["light.kitchen"]}))))
    conversation, sent = make_conversation(reasoner)
    response = await conversation.handle(ask("I'm home, let me in and get the lights"))
    assert response.awaiting_confirmation
    assert sent.commands == [EntityCommand("light.kitchen", "turn_on")]
    await conversation.handle(ask("yes"))
    assert sent.commands[-1] == EntityCommand("lock.front_door", "unlock")


async def test_ambiguity_goes_to_the_llm_with_a_hint_or_asks() -> None:
    conversation, sent = make_conversation()
    conversation.registry.upsert(Entity(entity_id="light.bedroom_lamp", name="Lamp",
                                        domain="light", area="bedroom"))
    conversation.registry.upsert(Entity(entity_id="light.kitchen_lamp", name="Lamp",
                                        domain="light", area="kitchen"))
    asked = await conversation.handle(ask("turn on the lamp"))
    assert asked.clarification and not sent.commands

    class Unavailable(ScriptedReasoner):
        async def propose(self, *args: object) -> Proposal:
            raise ReasonerUnavailable("the model is still loading")

    reasoner = ScriptedReasoner(Proposal(reply="Which lamp, the kitchen or the bedroom one?"))
    conversation.reasoner = reasoner
    answer = await conversation.handle(ask("turn on the lamp"))
    assert reasoner.seen[-1][2] is not None and "Which one" in reasoner.seen[-1][2]
    assert answer.reply.startswith("Which lamp") and not sent.commands
    conversation.reasoner = Unavailable(Proposal())
    failed = await conversation.handle(ask("make it cosy"))
    assert "still loading" in failed.reply
