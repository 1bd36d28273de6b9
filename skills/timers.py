"""Timers by voice or text: Home Assistant's timer intents as tools over ``TimerService``.

Argument names are the intents' slot names (``hours``, ``minutes``, ``seconds``, ``name``,
``area``, ``start_hours``, ...), so the fast path's slots arrive unchanged. A timer with
commands (``calls``) is checked when it is set: they are rehearsed through validation and the
safety policy, a problem refuses the timer, and a sensitive device is asked about now, so the
yes is kept with the timer and counts when it runs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from assistant.automation.scheduler import JobNotStoredError
from assistant.automation.timers import (
    MAX_S,
    MIN_S,
    Timer,
    TimerError,
    TimerService,
    TimerTarget,
    said_together,
    spoken_duration,
)
from assistant.messages import ToolCall, ToolResult
from skills.base import (
    ScheduledCall,
    Skill,
    ToolContext,
    call_entity_ids,
    rehearse,
    spoken_names,
    tool,
)
from skills.home_control import said_calls

NO_TIMER = "There is no timer running."


def _zero_if_none(value: Any) -> Any:
    return 0 if value is None else value


class _Length(BaseModel):
    """A length of time as the intents say it: any mix of hours, minutes and seconds."""

    hours: float = Field(0, ge=0, le=24)
    minutes: float = Field(0, ge=0, le=24 * 60)
    seconds: float = Field(0, ge=0, le=24 * 3600)

    _none_is_zero = field_validator("hours", "minutes", "seconds", mode="before")(_zero_if_none)

    @property
    def total_s(self) -> float:
        return self.hours * 3600 + self.minutes * 60 + self.seconds


class StartTimerArgs(_Length):
    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(None, max_length=64, description='e.g. "pizza"')
    calls: list[ScheduledCall] = Field(
        default_factory=list, max_length=16,
        description="commands to run when the timer is done, e.g. turn_off a light")

    @model_validator(mode="after")
    def _length_allowed(self) -> StartTimerArgs:
        if not MIN_S <= self.total_s <= MAX_S:
            raise ValueError("a timer runs from 1 second to 24 hours")
        return self


class TimerTargetArgs(BaseModel):
    """Which timer: by name, area (id) or the length it was started with; none: the only
    one, or the latest set in this conversation or room."""

    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(None, max_length=64)
    area: str | None = Field(None, max_length=64, description="area id")
    start_hours: float | None = Field(None, ge=0, le=24)
    start_minutes: float | None = Field(None, ge=0, le=24 * 60)
    start_seconds: float | None = Field(None, ge=0, le=24 * 3600)

    def target(self) -> TimerTarget:
        parts = (self.start_hours, self.start_minutes, self.start_seconds)
        start = None if all(p is None for p in parts) else (
            (self.start_hours or 0) * 3600 + (self.start_minutes or 0) * 60
            + (self.start_seconds or 0))
        return TimerTarget(name=self.name, area=self.area, start_s=start)


class CancelTimerArgs(TimerTargetArgs):
    all: bool = Field(False, description="cancel every timer (of the area, if given)")


class ChangeTimerArgs(TimerTargetArgs, _Length):
    direction: Literal["add", "remove"]

    @model_validator(mode="after")
    def _some_time(self) -> ChangeTimerArgs:
        if self.total_s <= 0:
            raise ValueError("give the hours, minutes or seconds to add or remove")
        return self


class TimerSkill(Skill):
    name = "timers"
    summary = "set, pause and cancel timers, and run a command after a delay"
    topic_words = frozenset({"timer", "timers", "second", "seconds", "minute", "minutes",
                             "hour", "hours"})

    def __init__(self, timers: TimerService) -> None:
        self.timers = timers

    @tool("start_timer", "Start a timer, optionally named, optionally running commands when "
          "done", StartTimerArgs)
    async def start_timer(self, args: StartTimerArgs, ctx: ToolContext) -> ToolResult:
        try:
            return await self._start_timer(args, ctx)
        except JobNotStoredError:  # a full disk: nothing was set, and the reply says so
            return ToolResult("Sorry, I could not save that timer, so it is not set.",
                              success=False)

    async def _start_timer(self, args: StartTimerArgs, ctx: ToolContext) -> ToolResult:
        length = spoken_duration(args.total_s)
        calls = tuple(c.to_call() for c in args.calls)
        if not calls:
            timer = self._start(args, ctx)
            return ToolResult(f"The {timer.label} is set for {length}." if timer.name
                              else f"Timer set for {length}.")
        if ctx.skills is None:
            return ToolResult("Sorry, I can't run commands later here.", success=False)
        rehearsal = await rehearse(calls, ctx)
        if rehearsal.problems:
            return ToolResult(f"I didn't set that timer. {' '.join(rehearsal.problems)}",
                              success=False)
        command = said_calls(calls, ctx.registry)
        if rehearsal.to_confirm:
            asked = ToolCall("start_timer", args.model_dump(mode="json", exclude_defaults=True))
            return ToolResult(f"I would {command} in {length}. Shall I?", success=False,
                              needs_confirmation=(asked,))
        wanted = [eid for call in calls for eid in call_entity_ids(call)]
        confirmed = sorted({eid for eid in wanted if eid in ctx.confirmed})
        self._start(args, ctx, calls=calls, confirmed=confirmed, command=command)
        reply = f"I'll {command} in {length}."
        if confirmed:
            names = spoken_names([e for e in map(ctx.registry.get, confirmed) if e is not None])
            reply += f" You confirmed {names} for this timer."
        return ToolResult(reply)

    @tool("cancel_timer", "Cancel a timer, or all timers (of an area)", CancelTimerArgs)
    async def cancel_timer(self, args: CancelTimerArgs, ctx: ToolContext) -> ToolResult:
        if args.all:
            cancelled = self.timers.cancel_all(args.area)
            if not cancelled:
                return ToolResult(NO_TIMER, success=False)
            where = f" in the {ctx.registry.area_name(args.area)}" if args.area else ""
            if len(cancelled) == 1:
                return ToolResult(f"Cancelled the {cancelled[0].label}{where}.")
            return ToolResult(f"Cancelled {len(cancelled)} timers{where}.")
        return self._on_one(args, ctx, self._cancel)

    @tool("pause_timer", "Pause a running timer", TimerTargetArgs)
    async def pause_timer(self, args: TimerTargetArgs, ctx: ToolContext) -> ToolResult:
        return self._on_one(args, ctx, lambda timer: _saying(
            "Paused the {label} with {left} left.", self.timers.pause(timer.id)))

    @tool("resume_timer", "Resume a paused timer", TimerTargetArgs)
    async def resume_timer(self, args: TimerTargetArgs, ctx: ToolContext) -> ToolResult:
        return self._on_one(args, ctx, lambda timer: _saying(
            "Resumed the {label}: {left} left.", self.timers.resume(timer.id)))

    @tool("change_timer", "Add time to or remove time from a timer", ChangeTimerArgs)
    async def change_timer(self, args: ChangeTimerArgs, ctx: ToolContext) -> ToolResult:
        amount = spoken_duration(args.total_s)
        adding = args.direction == "add"

        def change(timer: Timer) -> str:
            changed = self.timers.change(timer.id, args.total_s if adding else -args.total_s)
            done = f"Added {amount} to" if adding else f"Removed {amount} from"
            if changed.remaining_s <= 0:
                return f"{done} the {changed.label}: it is done now."
            return _saying(done + " the {label}: {left} left.", changed)

        return self._on_one(args, ctx, change)

    @tool("timer_status", "How much time is left on a timer, or on all of them",
          TimerTargetArgs)
    async def timer_status(self, args: TimerTargetArgs, ctx: ToolContext) -> ToolResult:
        target = args.target()
        found = self._select(target, ctx) if target.given else self.timers.timers()
        if not found:
            return ToolResult(self._none_reply(target, ctx), success=False)
        if len(found) == 1:
            status = _status(found[0])
            return ToolResult(status[:1].upper() + status[1:] + ".")
        return ToolResult(f"{len(found)} timers: {said_together([_status(t) for t in found])}.")

    # -- helpers ---------------------------------------------------------------------------

    def _start(self, args: StartTimerArgs, ctx: ToolContext, **kept: Any) -> Timer:
        return self.timers.start(args.total_s, name=args.name, area=ctx.area,
                                 conversation_id=ctx.conversation_id, **kept)

    def _cancel(self, timer: Timer) -> str:
        if self.timers.cancel(timer.id) is None:
            raise TimerError(NO_TIMER)
        return f"Cancelled the {timer.described}."

    def _on_one(self, args: TimerTargetArgs, ctx: ToolContext,
                act: Callable[[Timer], str]) -> ToolResult:
        """Do ``act`` to the one timer the arguments mean; else say there is none, or ask."""
        timer = self._pick(args, ctx)
        if isinstance(timer, ToolResult):
            return timer
        try:
            return ToolResult(act(timer))
        except TimerError as exc:
            return ToolResult(str(exc), success=False)

    def _pick(self, args: TimerTargetArgs, ctx: ToolContext) -> Timer | ToolResult:
        """The one timer the arguments mean, or the reply that says there is none or asks
        which."""
        target = args.target()
        found = self._select(target, ctx)
        if not found:
            return ToolResult(self._none_reply(target, ctx), success=False)
        if len(found) > 1:
            options = said_together(
                [f"the {t.described} with {spoken_duration(t.remaining_s)} left" for t in found],
                "or")
            return ToolResult(f"Which timer do you mean: {options}?", success=False)
        return found[0]

    def _select(self, target: TimerTarget, ctx: ToolContext) -> list[Timer]:
        found = self.timers.select(target, area=ctx.area, conversation_id=ctx.conversation_id)
        if not found and target.area and not target.name:
            # "the kitchen timer" may be a timer named kitchen, set in another room.
            named = TimerTarget(name=ctx.registry.area_name(target.area), start_s=target.start_s)
            found = self.timers.select(named, area=ctx.area, conversation_id=ctx.conversation_id)
        return found

    def _none_reply(self, target: TimerTarget, ctx: ToolContext) -> str:
        if not target.given or not self.timers.timers():
            return NO_TIMER
        what = f"{target.name.strip()} timer" if target.name else (
            f"{spoken_duration(target.start_s, adjective=True)} timer" if target.start_s
            else "timer")
        where = f" in the {ctx.registry.area_name(target.area)}" if target.area else ""
        return f"There is no {what}{where} running."


def _saying(template: str, timer: Timer) -> str:
    """``template`` with the timer's {label} and the time {left} on it."""
    return template.format(label=timer.label, left=spoken_duration(timer.remaining_s))


def _status(timer: Timer) -> str:
    left = spoken_duration(timer.remaining_s)
    if timer.paused:
        return f"the {timer.described} is paused with {left} left"
    return f"{left} left on the {timer.described}"
