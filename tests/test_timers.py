"""Timers through their tools, on a manual clock and a real SQLite job store: announced when
due, changed and selected like Home Assistant's timer intents, delayed commands run once
through the executor with the yes given when they were set, and all of it across a restart."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from assistant.automation.scheduler import JobDue, ManualClock, Scheduler
from assistant.automation.timers import TimerService, missed_timer_notice, spoken_duration
from assistant.messages import ConversationResponse, Notice, ScheduledRun, ToolCall, ToolResult
from assistant.registry import DeviceRegistry
from assistant.safety import SafetyPolicy
from assistant.understanding.fastpath import FastPath
from skills.base import SkillRegistry, ToolContext, ToolValidationError
from skills.home_control import HomeControlSkill
from skills.timers import TimerSkill
from tests.safety_support import demo_registry
from tests.test_conversation import Sent

START = datetime(2026, 3, 2, 8, 0, 0, tzinfo=UTC)
TURN_OFF_KITCHEN = {"tool": "turn_off", "args": {"entity_ids": ["light.kitchen"]}}
UNLOCK_FRONT_DOOR = {"tool": "unlock", "args": {"entity_ids": ["lock.front_door"]}}


@dataclass
class Hub:
    """Timers as the daemon wires them, with a recording announce and an execute that runs
    the kept calls through the same skills and safety policy (the daemon's Conversation)."""

    store: Path
    registry: DeviceRegistry
    clock: ManualClock = field(default_factory=lambda: ManualClock(START))
    sent: Sent = field(default_factory=Sent)
    notices: list[Notice] = field(default_factory=list)
    runs: list[ScheduledRun] = field(default_factory=list)
    published: list[dict[str, Any]] = field(default_factory=list)
    scheduler: Scheduler | None = None
    timers: TimerService | None = None
    skills: SkillRegistry | None = None

    def start(self) -> None:
        self.scheduler = Scheduler(self.store, clock=self.clock, timezone=UTC,
                                   misfire_grace_s=60, on_missed=self._missed)
        self.timers = TimerService(self.scheduler, execute=self._execute,
                                   announce=self._announce, clock=self.clock,
                                   publish=lambda topic, payload: self.published.append(
                                       {"topic": topic, **payload}))
        self.skills = SkillRegistry()
        self.skills.register(HomeControlSkill())
        self.skills.register(TimerSkill(self.timers))
        self.scheduler.start()

    async def restart(self, down_s: float = 0) -> None:
        assert self.scheduler is not None
        await self.scheduler.stop()
        self.clock.advance(down_s)
        self.start()
        await self.scheduler.settle()

    def context(self, area: str | None = "kitchen", conversation_id: str | None = "c1",
                confirmed: frozenset[str] = frozenset()) -> ToolContext:
        return ToolContext(self.registry, self.sent, SafetyPolicy(self.registry), area=area,
                           confirmed=confirmed, conversation_id=conversation_id,
                           skills=self.skills)

    async def call(self, tool: str, **args: Any) -> ToolResult:
        return await self.run(ToolCall(tool, args))

    async def run(self, call: ToolCall, **context: Any) -> ToolResult:
        assert self.skills is not None
        return await self.skills.run(call, self.context(**context))

    async def wait(self, seconds: float) -> None:
        assert self.scheduler is not None
        self.clock.advance(seconds)
        await self.scheduler.settle()

    async def _execute(self, run: ScheduledRun) -> ConversationResponse:
        self.runs.append(run)
        context = self.context(run.area, run.conversation_id, run.confirmed)
        results = [await self.skills.run(call, context) for call in run.calls]
        return ConversationResponse(" ".join(r.reply for r in results), success=all(
            r.success and not r.needs_confirmation for r in results))

    async def _announce(self, notice: Notice) -> None:
        self.notices.append(notice)

    def _missed(self, due: JobDue) -> None:
        self.notices.append(missed_timer_notice(due))


@pytest.fixture
async def hub(tmp_path: Path) -> AsyncIterator[Hub]:
    made = Hub(tmp_path / "jobs.sqlite", demo_registry())
    made.start()
    yield made
    assert made.scheduler is not None
    await made.scheduler.stop()


def texts(hub: Hub) -> list[str]:
    return [n.text for n in hub.notices]


async def test_timer_is_announced_where_it_was_set_when_due(hub: Hub) -> None:
    result = await hub.call("start_timer", seconds=10)
    assert (result.reply, result.success) == ("Timer set for 10 seconds.", True)
    await hub.wait(9)
    assert hub.notices == []
    await hub.wait(1)
    assert [(n.kind, n.text, n.area, n.conversation_id) for n in hub.notices] == [
        ("timer", "Your 10 second timer is done.", "kitchen", "c1")]
    await hub.wait(600)
    assert len(hub.notices) == 1


async def test_named_timer(hub: Hub) -> None:
    result = await hub.call("start_timer", minutes=12, name="pizza")
    assert result.reply == "The pizza timer is set for 12 minutes."
    await hub.wait(12 * 60)
    assert texts(hub) == ["Your pizza timer is done."]


async def test_status_says_what_is_left(hub: Hub) -> None:
    await hub.call("start_timer", minutes=5, name="pizza")
    await hub.call("start_timer", minutes=2)
    await hub.wait(100)
    one = await hub.call("timer_status", name="pizza")
    assert one.reply == "3 minutes and 20 seconds left on the pizza timer."
    every = await hub.call("timer_status")
    assert every.reply == ("2 timers: 20 seconds left on the 2 minute timer and 3 minutes and "
                           "20 seconds left on the pizza timer.")
    by_length = await hub.call("timer_status", start_minutes=2)
    assert by_length.reply == "20 seconds left on the 2 minute timer."
    missing = await hub.call("timer_status", name="cake")
    assert (missing.reply, missing.success) == ("There is no cake timer running.", False)


async def test_pause_and_resume_keep_what_was_left(hub: Hub) -> None:
    await hub.call("start_timer", minutes=5)
    await hub.wait(60)
    paused = await hub.call("pause_timer")
    assert paused.reply == "Paused the 5 minute timer with 4 minutes left."
    again = await hub.call("pause_timer")
    assert (again.reply, again.success) == ("The 5 minute timer is already paused.", False)
    await hub.wait(3600)
    assert hub.notices == []
    status = await hub.call("timer_status")
    assert status.reply == "The 5 minute timer is paused with 4 minutes left."
    resumed = await hub.call("resume_timer")
    assert resumed.reply == "Resumed the 5 minute timer: 4 minutes left."
    await hub.wait(239)
    assert hub.notices == []
    await hub.wait(1)
    assert texts(hub) == ["Your 5 minute timer is done."]


async def test_add_and_remove_time(hub: Hub) -> None:
    await hub.call("start_timer", minutes=5, name="pizza")
    added = await hub.call("change_timer", name="pizza", minutes=2, direction="add")
    assert added.reply == "Added 2 minutes to the pizza timer: 7 minutes left."
    removed = await hub.call("change_timer", minutes=6, seconds=30, direction="remove")
    assert removed.reply == ("Removed 6 minutes and 30 seconds from the pizza timer: 30 seconds "
                             "left.")
    await hub.wait(29)
    assert hub.notices == []
    await hub.wait(1)
    assert texts(hub) == ["Your pizza timer is done."]


async def test_removing_more_than_is_left_ends_the_timer(hub: Hub) -> None:
    await hub.call("start_timer", minutes=1)
    result = await hub.call("change_timer", minutes=5, direction="remove")
    assert result.reply == "Removed 5 minutes from the 1 minute timer: it is done now."
    await hub.wait(0)
    assert texts(hub) == ["Your 1 minute timer is done."]


async def test_cancel_one_all_and_all_in_an_area(hub: Hub) -> None:
    none = await hub.call("cancel_timer")
    assert (none.reply, none.success) == ("There is no timer running.", False)
    await hub.call("start_timer", minutes=5, name="pizza")
    await hub.call("start_timer", minutes=3, name="tea")
    await hub.run(ToolCall("start_timer", {"minutes": 4}), area="bedroom", conversation_id="c2")
    assert (await hub.call("cancel_timer", name="Pizza")).reply == "Cancelled the pizza timer."
    in_kitchen = await hub.call("cancel_timer", all=True, area="bedroom")
    assert in_kitchen.reply == "Cancelled the 4 minute timer in the Bedroom."
    assert [t.name for t in hub.timers.timers()] == ["tea"]
    await hub.call("start_timer", minutes=8)
    assert (await hub.call("cancel_timer", all=True)).reply == "Cancelled 2 timers."
    await hub.wait(3600)
    assert hub.notices == []


async def test_which_timer_is_meant(hub: Hub) -> None:
    await hub.call("start_timer", minutes=5, name="pizza")
    await hub.wait(1)
    await hub.call("start_timer", minutes=10)
    # Someone elsewhere, with no timer of their own, must say which.
    asked = await hub.run(ToolCall("pause_timer", {}), area="office", conversation_id="c9")
    assert (asked.reply, asked.success) == (
        "Which timer do you mean: the pizza timer with 4 minutes and 59 seconds left or the "
        "10 minute timer with 10 minutes left?", False)
    assert all(not t.paused for t in hub.timers.timers())
    # Here, in the conversation that set them, "the timer" is the latest one.
    assert (await hub.call("pause_timer")).reply == ("Paused the 10 minute timer with 10 "
                                                     "minutes left.")
    by_name = await hub.run(ToolCall("cancel_timer", {"name": "pizza"}), area="office",
                            conversation_id="c9")
    assert by_name.reply == "Cancelled the pizza timer."


async def test_same_length_timers_in_two_rooms_picked_by_area(hub: Hub) -> None:
    await hub.call("start_timer", minutes=5)
    await hub.run(ToolCall("start_timer", {"minutes": 5}), area="bedroom", conversation_id="c2")
    asked = await hub.run(ToolCall("cancel_timer", {"start_minutes": 5}), area="office",
                          conversation_id="c9")
    assert asked.reply.startswith("Which timer do you mean")
    chosen = await hub.run(ToolCall("cancel_timer", {"area": "bedroom"}), area="office",
                           conversation_id="c9")
    assert chosen.reply == "Cancelled the 5 minute timer."
    assert [t.area for t in hub.timers.timers()] == ["kitchen"]


async def test_room_name_said_of_a_timer_named_after_it(hub: Hub) -> None:
    # "cancel the kitchen timer" gives area=kitchen; a timer named Kitchen, set elsewhere.
    await hub.run(ToolCall("start_timer", {"minutes": 5, "name": "kitchen"}), area="office")
    await hub.run(ToolCall("start_timer", {"minutes": 7}), area="office")
    result = await hub.run(ToolCall("cancel_timer", {"area": "kitchen"}), area="office")
    assert result.reply == "Cancelled the kitchen timer."
    assert [t.label for t in hub.timers.timers()] == ["7 minute timer"]
    none = await hub.run(ToolCall("cancel_timer", {"area": "garage"}), area="office")
    assert (none.reply, none.success) == ("There is no timer in the Garage running.", False)


async def test_delayed_command_runs_once_at_its_time(hub: Hub) -> None:
    result = await hub.call("start_timer", minutes=5, calls=[TURN_OFF_KITCHEN])
    assert (result.reply, result.success) == ("I'll turn off the Kitchen Light in 5 minutes.",
                                              True)
    assert hub.sent.commands == []  # checked when set, sent only when due
    status = await hub.call("timer_status")
    assert status.reply == "5 minutes left on the 5 minute timer to turn off the Kitchen Light."
    await hub.wait(299)
    assert hub.runs == [] and hub.sent.commands == []
    await hub.wait(1)
    assert [(r.calls, r.origin, r.area, r.confirmed) for r in hub.runs] == [
        ((ToolCall("turn_off", {"entity_ids": ["light.kitchen"]}),), "timer 5 minute timer",
         "kitchen", frozenset())]
    assert [(c.entity_id, c.service) for c in hub.sent.commands] == [("light.kitchen",
                                                                      "turn_off")]
    assert [(n.kind, n.area) for n in hub.notices] == [("timer", "kitchen")]
    assert "Kitchen Light" in hub.notices[0].text and hub.notices[0].data["success"] is True
    await hub.wait(3600)
    assert len(hub.runs) == 1 and len(hub.sent.commands) == 1


async def test_delayed_unlock_is_confirmed_when_set_and_runs_with_that_yes(hub: Hub) -> None:
    asked = await hub.call("start_timer", minutes=5, calls=[UNLOCK_FRONT_DOOR])
    assert (asked.reply, asked.success) == ("I would unlock the Front Door in 5 minutes. "
                                            "Shall I?", False)
    assert [c.tool for c in asked.needs_confirmation] == ["start_timer"]
    assert hub.timers.timers() == []  # nothing is set before the yes
    # The conversation runs the same call again with the yes for the devices it asked about.
    yes = await hub.run(asked.needs_confirmation[0], confirmed=frozenset({"lock.front_door"}))
    assert yes.reply == ("I'll unlock the Front Door in 5 minutes. You confirmed the Front "
                         "Door for this timer.")
    await hub.wait(299)
    assert hub.sent.commands == []
    await hub.wait(1)
    assert [r.confirmed for r in hub.runs] == [frozenset({"lock.front_door"})]
    assert [(c.entity_id, c.service) for c in hub.sent.commands] == [("lock.front_door",
                                                                      "unlock")]


async def test_unlock_kept_without_a_yes_is_not_actuated(hub: Hub) -> None:
    # The wrong side of the check above: the same timer without the yes sends nothing.
    hub.timers.start(60, area="hallway", calls=[ToolCall(**UNLOCK_FRONT_DOOR)],
                     command="unlock the Front Door")
    await hub.wait(60)
    assert len(hub.runs) == 1 and hub.sent.commands == []
    assert hub.notices[0].data["success"] is False


async def test_delayed_command_with_a_problem_is_refused(hub: Hub) -> None:
    result = await hub.call("start_timer", minutes=5,
                            calls=[{"tool": "turn_off", "args": {"entity_ids": ["light.nope"]}}])
    assert result.success is False and result.reply.startswith("I didn't set that timer.")
    assert "light.nope" in result.reply
    assert hub.timers.timers() == []


async def test_length_must_be_between_one_second_and_a_day(hub: Hub) -> None:
    for args in ({"seconds": 0}, {"hours": 24, "seconds": 1}, {}):
        with pytest.raises(ToolValidationError):
            await hub.call("start_timer", **args)
    assert (await hub.call("start_timer", hours=24)).success
    with pytest.raises(ToolValidationError):
        await hub.call("change_timer", direction="add")


async def test_timers_survive_a_restart(hub: Hub) -> None:
    await hub.call("start_timer", minutes=10, name="pizza")
    await hub.call("start_timer", minutes=20, calls=[TURN_OFF_KITCHEN])
    await hub.wait(60)
    await hub.restart()
    status = await hub.call("timer_status")
    assert status.reply == ("2 timers: 9 minutes left on the pizza timer and 19 minutes left "
                            "on the 20 minute timer to turn off the Kitchen Light.")
    await hub.wait(540)
    assert texts(hub) == ["Your pizza timer is done."]
    await hub.wait(600)
    assert [(c.entity_id, c.service) for c in hub.sent.commands] == [("light.kitchen",
                                                                      "turn_off")]


async def test_paused_timer_survives_a_restart(hub: Hub) -> None:
    await hub.call("start_timer", minutes=3)
    await hub.wait(60)
    await hub.call("pause_timer")
    await hub.restart(down_s=3600)
    assert hub.notices == []
    assert (await hub.call("resume_timer")).reply == "Resumed the 3 minute timer: 2 minutes left."


async def test_timer_missed_while_down_is_reported_not_run(hub: Hub) -> None:
    await hub.call("start_timer", minutes=1)
    await hub.call("start_timer", minutes=2, calls=[TURN_OFF_KITCHEN])
    await hub.restart(down_s=3600)
    assert [(n.kind, n.text, n.area) for n in hub.notices] == [
        ("missed", "Your 1 minute timer went off at 08:01 while I was offline.", "kitchen"),
        ("missed", "While I was offline, your 2 minute timer to turn off the Kitchen Light "
                   "was due at 08:02; I did not run it.", "kitchen")]
    assert hub.runs == [] and hub.sent.commands == []
    assert hub.timers.timers() == []


async def test_timer_due_while_briefly_down_still_goes_off(hub: Hub) -> None:
    await hub.call("start_timer", minutes=1)
    await hub.restart(down_s=90)  # 30 s late, within the 60 s grace
    assert [(n.kind, n.text) for n in hub.notices] == [("timer", "Your 1 minute timer is done.")]


async def test_every_change_publishes_the_list(hub: Hub) -> None:
    await hub.call("start_timer", minutes=5, name="pizza")
    assert hub.published[-1]["topic"] == "timers"
    assert [(t["name"], t["remaining_s"], t["paused"], t["ends_at"])
            for t in hub.published[-1]["timers"]] == [
        ("pizza", 300.0, False, "2026-03-02T08:05:00+00:00")]
    await hub.wait(60)
    await hub.call("pause_timer")
    assert [(t["remaining_s"], t["paused"], t["ends_at"])
            for t in hub.published[-1]["timers"]] == [(240.0, True, None)]
    await hub.call("cancel_timer")
    assert hub.published[-1]["timers"] == []
    count = len(hub.published)
    await hub.call("cancel_timer")  # nothing changed: nothing published
    assert len(hub.published) == count


def test_spoken_durations() -> None:
    assert spoken_duration(100) == "1 minute and 40 seconds"
    assert spoken_duration(3661) == "1 hour, 1 minute and 1 second"
    assert spoken_duration(7200) == "2 hours"
    assert spoken_duration(0.2) == "1 second"  # not over yet
    assert spoken_duration(300, adjective=True) == "5 minute"
    assert spoken_duration(5400, adjective=True) == "1 hour and 30 minute"


@pytest.mark.parametrize(("text", "call"), [
    ("set a pizza timer for 12 minutes", ("start_timer", {"name": "pizza", "minutes": 12})),
    ("set a timer for an hour", ("start_timer", {"hours": 1})),
    ("cancel all timers", ("cancel_timer", {"all": True})),
    ("add 5 minutes to the pizza timer",
     ("change_timer", {"name": "pizza", "minutes": 5, "direction": "add"})),
    ("take 1 minute off the timer", ("change_timer", {"minutes": 1, "direction": "remove"})),
    ("what timers do I have", ("timer_status", {})),
    ("unpause the timer", ("resume_timer", {})),
])
def test_fast_path_routes_timer_intents_to_the_tools(text: str, call: tuple[str, dict]) -> None:
    result = FastPath(demo_registry()).understand(text, "kitchen")
    assert [(c.tool, c.args) for c in result.calls] == [call]


def test_fast_path_leaves_other_requests_alone() -> None:
    result = FastPath(demo_registry()).understand("turn on the kitchen light", "kitchen")
    assert [c.tool for c in result.calls] == ["turn_on"]
