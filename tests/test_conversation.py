"""Conversation: confirmation window, hybrid policy, validation of every call."""

from __future__ import annotations

import pytest

from assistant.config import UnderstandingConfig
from assistant.conversation import (
    Conversation,
    Proposal,
    ReasonerUnavailable,
    Turn,
    classify_answer,
)
from assistant.understanding.fastpath import FastPath
from assistant.messages import ConversationRequest, EntityCommand, ToolCall
from assistant.registry import Area, DeviceRegistry, Entity
from assistant.safety import SafetyPolicy
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
    policy = SafetyPolicy(registry)
    conversation = Conversation(registry, skills, sent, FastPath(registry, policy=policy),
                                reasoner, UnderstandingConfig(confirmation_window_s=20),
                                policy=policy, clock=clock or Clock())
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
    response = await conversation.handle(ask("unlock the front door, and get the light"))
    assert response.awaiting_confirmation
    assert sent.commands == [EntityCommand("light.kitchen", "turn_on")]
    await conversation.handle(ask("yes"))
    assert sent.commands[-1] == EntityCommand("lock.front_door", "unlock")


async def test_a_lock_the_request_did_not_name_is_left_alone() -> None:
    reasoner = ScriptedReasoner(Proposal((ToolCall("unlock", {"entity_ids": ["lock.front_door"]}),
                                          ToolCall("turn_on", {"entity_ids": ["light.kitchen"]}))))
    conversation, sent = make_conversation(reasoner)
    response = await conversation.handle(ask("I'm home, let me in and get the lights"))
    assert sent.commands == [EntityCommand("light.kitchen", "turn_on")]
    assert not response.awaiting_confirmation and not response.success
    assert "left the Front Door alone" in response.reply
    assert "nothing waiting" in (await conversation.handle(ask("yes"))).reply


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
    failed = await conversation.handle(ask("make the bedroom cosy"))
    assert "still loading" in failed.reply


@pytest.mark.parametrize(("text", "answer"), [
    ("yes", "yes"), ("Yes please.", "yes"), ("go ahead", "yes"), ("ok do it", "yes"),
    ("no", "no"), ("nope", "no"), ("cancel", "no"), ("don't", "no"),
    ("yes no", "mixed"), ("yes, actually no", "mixed"), ("yeah but wait", "mixed"),
    ("sure, don't", "mixed"), ("yes not now", "mixed"), ("yes turn on the light", "mixed"),
    ("turn on the light", None), ("what time is it", None),
])
def test_only_an_unambiguous_yes_is_a_yes(text: str, answer: str | None) -> None:
    assert classify_answer(text) == answer


@pytest.mark.parametrize("answer", ["yes, actually no", "yes no", "yeah but wait",
                                    "sure, don't", "yes, not the front door"])
async def test_an_answer_that_takes_the_yes_back_refuses(answer: str) -> None:
    conversation, sent = make_conversation()
    question = await conversation.handle(ask("unlock the front door"))
    assert question.awaiting_confirmation
    refused = await conversation.handle(ask(answer))
    assert refused.path == "confirmation" and not refused.actions
    assert "nothing waiting" in (await conversation.handle(ask("yes"))).reply
    assert sent.commands == []


async def test_a_yes_is_bound_to_its_question_and_consumed_once() -> None:
    conversation, sent = make_conversation()
    first = await conversation.handle(ask("unlock the front door"))
    assert first.confirmation_id and [a.entity_id for a in first.pending] == ["lock.front_door"]
    wrong = await conversation.handle(ConversationRequest("yes", "c1", confirmation_id="other"))
    assert "another question" in wrong.reply and sent.commands == []
    again = await conversation.handle(ask("unlock the front door"))
    assert again.confirmation_id != first.confirmation_id
    done = await conversation.handle(ConversationRequest("yes", "c1",
                                                         confirmation_id=again.confirmation_id))
    assert done.success and sent.commands == [EntityCommand("lock.front_door", "unlock")]
    assert "nothing waiting" in (await conversation.handle(ask("yes"))).reply
    assert len(sent.commands) == 1


async def test_the_question_names_the_action_and_every_device() -> None:
    reasoner = ScriptedReasoner(Proposal((
        ToolCall("unlock", {"entity_ids": ["lock.front_door"]}),
        ToolCall("open", {"entity_ids": ["cover.garage_door"]}))))
    conversation, sent = make_conversation(reasoner)
    question = await conversation.handle(ask("unlock the front door and open the garage door"))
    assert "unlock the Front Door" in question.reply and "open the Garage Door" in question.reply
    assert {a.entity_id for a in question.pending} == {"lock.front_door", "cover.garage_door"}
    assert sent.commands == []
    await conversation.handle(ask("yes"))
    assert sent.commands == [EntityCommand("lock.front_door", "unlock"),
                             EntityCommand("cover.garage_door", "open_cover")]


@pytest.mark.parametrize("text", ["turn off the front door", "turn on the front door",
                                  "switch off the front door"])
async def test_on_off_words_never_unlock(text: str) -> None:
    for proposal in (ToolCall("turn_off", {"entity_ids": ["lock.front_door"]}),
                     ToolCall("turn_on", {"entity_ids": ["lock.front_door"]})):
        conversation, sent = make_conversation(ScriptedReasoner(Proposal((proposal,))))
        response = await conversation.handle(ask(text))
        assert not response.success and not response.awaiting_confirmation
        assert sent.commands == [] and not response.pending


async def test_turn_everything_off_never_reaches_the_lock_or_the_garage() -> None:
    everything = ToolCall("turn_off", {"entity_ids": [
        "light.kitchen", "light.bedroom", "lock.front_door", "cover.garage_door"]})
    conversation, sent = make_conversation(ScriptedReasoner(Proposal((everything,))))
    response = await conversation.handle(ask("turn everything off"))
    assert {c.entity_id for c in sent.commands} == {"light.kitchen", "light.bedroom"}
    assert response.success and "Front Door" not in response.reply
    assert "lock.front_door" not in {a.entity_id for a in response.pending}
    assert all(a.entity_id != "lock.front_door" for a in response.actions)


async def test_an_alarm_code_stays_out_of_replies_history_and_the_model() -> None:
    registry_extra = Entity(entity_id="alarm_control_panel.house", name="House Alarm",
                            domain="alarm_control_panel", area="entry", state="armed_away")
    reasoner = ScriptedReasoner(Proposal((ToolCall("alarm", {
        "entity_ids": ["alarm_control_panel.house"], "command": "disarm",
        "code": "<secret>"}),)))
    conversation, sent = make_conversation(reasoner)
    conversation.registry.upsert(registry_extra)
    question = await conversation.handle(ask("disarm the house alarm, code 4321"))
    assert "4321" not in reasoner.seen[-1][0]
    assert "4321" not in str(question.to_json())
    done = await conversation.handle(ask("yes"))
    assert sent.commands == [EntityCommand("alarm_control_panel.house", "alarm_disarm",
                                           {"code": "4321"})]
    assert "4321" not in str(done.to_json())
    history = conversation._states["c1"].history
    assert "4321" not in repr(history)


async def test_what_can_you_do_is_answered_from_the_skills() -> None:
    conversation, sent = make_conversation(ScriptedReasoner(Proposal((
        ToolCall("turn_on", {"entity_ids": ["light.kitchen"]}),))))
    response = await conversation.handle(ask("What can you do?"))
    assert response.reply.startswith("I can ") and HomeControlSkill.summary in response.reply
    assert sent.commands == []
