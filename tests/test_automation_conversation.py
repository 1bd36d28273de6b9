"""Timers, lists and schedules as a user reaches them: through the conversation (fast path,
executor, confirmation), with what runs later going through ``Conversation.run_scheduled``:
the same skills and safety policy, and only the yes given when it was set."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest

from assistant.automation.lists import ListService
from assistant.automation.scheduler import ManualClock, Scheduler
from assistant.automation.timers import TimerService
from assistant.config import UnderstandingConfig
from assistant.conversation import Conversation, Proposal
from assistant.messages import (
    ConversationRequest,
    ConversationResponse,
    EntityCommand,
    Notice,
    ScheduledRun,
    ToolCall,
)
from assistant.safety import SafetyPolicy
from assistant.understanding.fastpath import FastPath
from skills.base import SkillRegistry
from skills.home_control import HomeControlSkill
from skills.lists import ListSkill
from skills.timers import TimerSkill
from tests.safety_support import demo_registry
from tests.test_conversation import ScriptedReasoner, Sent

START = datetime(2026, 3, 2, 8, 0, 0, tzinfo=UTC)


@dataclass
class Hub:
    conversation: Conversation
    scheduler: Scheduler
    clock: ManualClock
    sent: Sent
    notices: list[Notice] = field(default_factory=list)
    told: list[str] = field(default_factory=list)  # what the next reply should say first

    async def say(self, text: str, conversation_id: str = "c1",
                  area: str | None = "kitchen") -> ConversationResponse:
        return await self.conversation.handle(ConversationRequest(text, conversation_id, area))

    async def wait(self, seconds: float) -> None:
        self.clock.advance(seconds)
        await self.scheduler.settle()


@pytest.fixture
async def hub(tmp_path: Path) -> AsyncIterator[Hub]:
    registry = demo_registry()
    policy = SafetyPolicy(registry)
    clock = ManualClock(START)
    sent = Sent()
    scheduler = Scheduler(tmp_path / "jobs.sqlite", clock=clock, timezone=UTC)
    skills = SkillRegistry()
    skills.register(HomeControlSkill())
    lists = ListService(tmp_path / "lists.sqlite", registry)
    await lists.start()
    skills.register(ListSkill(lists))
    made: Hub

    async def execute(run: ScheduledRun) -> ConversationResponse:
        return await made.conversation.run_scheduled(run)

    async def announce(notice: Notice) -> None:
        made.notices.append(notice)

    def told(conversation_id: str | None, area: str | None) -> str:
        return made.told.pop(0) if made.told else ""

    timers = TimerService(scheduler, execute=execute, announce=announce, clock=clock)
    skills.register(TimerSkill(timers))
    conversation = Conversation(registry, skills, sent, FastPath(registry, policy=policy), None,
                                UnderstandingConfig(confirmation_window_s=20), policy=policy,
                                notices_for_reply=told)
    made = Hub(conversation, scheduler, clock, sent)
    scheduler.start()
    yield made
    await scheduler.stop()
    await lists.close()


async def test_a_delayed_command_is_understood_now_and_sent_when_due(hub: Hub) -> None:
    response = await hub.say("turn off the kitchen light in 5 minutes")
    assert response.success and response.path == "fast"
    assert "kitchen light" in response.reply.lower() and "5 minutes" in response.reply
    assert hub.sent.commands == []
    await hub.wait(299)
    assert hub.sent.commands == []
    await hub.wait(1)
    assert hub.sent.commands == [EntityCommand("light.kitchen", "turn_off")]
    assert any("kitchen light" in n.text.lower() for n in hub.notices)


async def test_a_delayed_command_that_is_not_understood_sets_no_timer(hub: Hub) -> None:
    response = await hub.say("in 5 minutes flibber the wobble")
    assert not response.success and "didn't understand" in response.reply
    assert '"flibber the wobble"' in response.reply
    await hub.wait(600)
    assert hub.sent.commands == [] and hub.notices == []


async def test_only_device_commands_are_kept_for_later(hub: Hub) -> None:
    """Rehearsing a list change would make it: such tools are never kept for later."""
    response = await hub.say("in 5 minutes add milk to the shopping list")
    assert not response.success and "only keep device commands" in response.reply
    read = await hub.say("what's on my shopping list")
    assert "milk" not in read.reply.lower()
    await hub.wait(600)
    assert hub.notices == []


async def test_a_delayed_unlock_asks_when_set_and_runs_with_that_yes(hub: Hub) -> None:
    question = await hub.say("unlock the front door in 2 minutes")
    assert question.awaiting_confirmation and "front door" in question.reply.lower()
    assert [(a.tool, a.entity_id) for a in question.pending] == [
        ("start_timer", "lock.front_door")]
    done = await hub.say("yes")
    assert done.success and "confirmed" in done.reply.lower()
    await hub.wait(120)
    assert hub.sent.commands == [EntityCommand("lock.front_door", "unlock")]


async def test_a_delayed_unlock_without_the_yes_never_goes_out(hub: Hub) -> None:
    await hub.say("unlock the front door in 2 minutes")
    refused = await hub.say("no")
    assert "won't" in refused.reply
    await hub.wait(600)
    assert hub.sent.commands == []


async def test_a_scheduled_run_never_counts_an_unconfirmed_device(hub: Hub) -> None:
    unlock = ToolCall("unlock", {"entity_ids": ["lock.front_door"]})
    unconfirmed = await hub.conversation.run_scheduled(ScheduledRun((unlock,), "test"))
    assert not unconfirmed.success and "left the Front Door alone" in unconfirmed.reply
    assert hub.sent.commands == []
    confirmed = await hub.conversation.run_scheduled(ScheduledRun(
        (unlock,), "test", confirmed=frozenset({"lock.front_door"})))
    assert confirmed.success and hub.sent.commands == [
        EntityCommand("lock.front_door", "unlock")]


async def test_an_unheard_notice_comes_first_in_the_next_reply(hub: Hub) -> None:
    hub.told.append("While you were away: your pizza timer is done.")
    response = await hub.say("turn on the kitchen light")
    assert response.reply.startswith("While you were away: your pizza timer is done. ")
    assert "Kitchen Light" in response.reply
    again = await hub.say("turn off the kitchen light")
    assert "pizza" not in again.reply


async def test_timer_by_voice_then_its_status(hub: Hub) -> None:
    started = await hub.say("set a timer for 10 minutes")
    assert started.success and "10 minutes" in started.reply
    await hub.wait(4 * 60)
    status = await hub.say("how much time is left on the timer")
    assert "6 minutes" in status.reply
    await hub.wait(6 * 60)
    assert [n.kind for n in hub.notices] == ["timer"]


async def test_shopping_list_by_voice(hub: Hub) -> None:
    added = await hub.say("add milk to the shopping list")
    assert added.success and "milk" in added.reply.lower()
    read = await hub.say("what's on my shopping list")
    assert "milk" in read.reply.lower() and "eggs" not in read.reply.lower()
    await hub.say("check off milk from my shopping list")
    empty = await hub.say("what's on my shopping list")
    assert "milk" not in empty.reply.lower()


async def test_a_switched_off_skill_leaves_its_words_to_the_rest(tmp_path: Path) -> None:
    registry = demo_registry()
    policy = SafetyPolicy(registry)
    skills = SkillRegistry()
    skills.register(HomeControlSkill())  # no timer skill: automation is off
    conversation = Conversation(registry, skills, Sent(), FastPath(registry, policy=policy),
                                None, UnderstandingConfig(), policy=policy)
    response = await conversation.handle(ConversationRequest("set a timer for 10 minutes"))
    assert not response.success and response.path != "fast"
    assert "couldn't start timer" not in response.reply


def with_reasoner(hub: Hub, *calls: ToolCall) -> ScriptedReasoner:
    reasoner = ScriptedReasoner(Proposal(calls))
    hub.conversation.reasoner = reasoner
    return reasoner


async def test_the_llm_may_start_a_timer_for_a_request_about_one(hub: Hub) -> None:
    with_reasoner(hub, ToolCall("start_timer", {"minutes": 3, "name": "tea"}))
    response = await hub.say("could you keep an eye on the clock for my tea, timer of 3 "
                             "minutes or so")
    assert response.path == "llm" and response.success, response.reply
    await hub.wait(180)
    assert [n.kind for n in hub.notices] == ["timer"]


async def test_the_llm_never_starts_a_timer_on_chit_chat(hub: Hub) -> None:
    reasoner = with_reasoner(hub, ToolCall("start_timer", {"minutes": 3}))
    response = await hub.say("tell me something nice about tea")
    assert not response.success and reasoner.seen == []
    hub.conversation.reasoner = with_reasoner(hub, ToolCall("add_to_list", {"item": "tea"}))
    response = await hub.say("the kitchen light is so pretty")  # about the home, not a list
    read = await hub.say("what's on my shopping list")
    assert "tea" not in read.reply.lower()
    await hub.wait(600)
    assert hub.notices == []


async def test_the_llm_keeps_for_later_only_devices_the_request_names(hub: Hub) -> None:
    later = {"minutes": 5, "calls": [{"tool": "turn_off", "args": {
        "entity_ids": ["light.kitchen", "light.bedroom"]}}]}
    with_reasoner(hub, ToolCall("start_timer", later))
    response = await hub.say("could you switch the kitchen light off in a few minutes, "
                             "like five minutes")
    assert not response.success
    await hub.wait(600)
    assert hub.sent.commands == []
    named = {"minutes": 5, "calls": [{"tool": "turn_off", "args": {
        "entity_ids": ["light.kitchen"]}}]}
    with_reasoner(hub, ToolCall("start_timer", named))
    response = await hub.say("could you switch the kitchen light off in a few minutes, "
                             "like five minutes")
    assert response.success, response.reply
    await hub.wait(300)
    assert hub.sent.commands == [EntityCommand("light.kitchen", "turn_off")]


def test_kept_calls_are_said_by_what_they_do_to_each_device() -> None:
    from skills.home_control import said_calls

    home = demo_registry()
    off = ToolCall("turn_off", {"entity_ids": ["cover.living_room_blinds", "light.kitchen"]})
    assert said_calls([off], home) == "close the Living Room Blinds and turn off the Kitchen Light"
    dim = ToolCall("set_light", {"entity_ids": ["light.kitchen"], "brightness_pct": 30})
    assert said_calls([dim], home) == "adjust the Kitchen Light to 30%"
