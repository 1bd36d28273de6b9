"""Reminders and schedules by voice or text: "remind me at 6 pm to take out the trash",
"every weekday at 07:00 turn on the coffee machine", "every day at sunset close the blinds",
"what schedules do I have", "cancel schedule 2".

The time is said one way of three: a clock time (``time``, or ``hour``/``minute``/
``meridiem``), a delay (``in_minutes``/``in_hours``) or a sun event (``sun_event`` with
``offset_minutes``); ``every`` makes it repeat, ``date``/``day`` place a one-time item. The
argument names are the slot names of assistant/data/sentences_en_schedules.yaml, so the fast
path's slots arrive unchanged. A schedule's commands are checked when it is made
(``rehearse``): what would fail is refused now, and a lock or garage door is confirmed now,
for this schedule, because nobody is there to say yes when it runs.
"""

from __future__ import annotations

import datetime as dt
import functools
from dataclasses import replace
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from assistant.automation.schedules import (
    WEEKEND, WORKDAYS, AtSun, Daily, Once, Schedule, ScheduleKind, ScheduleService, When,
    clock_time, said_duration, said_moment, said_when,
)
from assistant.automation.sun import Location, SunTrigger, sun_event
from assistant.messages import ToolCall, ToolResult
from skills.base import (
    Handler, ScheduledCall, Skill, ToolContext, rehearse, tool,
)
from skills.home_control import said_calls

Weekday = Literal["monday", "tuesday", "wednesday", "thursday", "friday", "saturday",
                  "sunday"]
WEEKDAYS: tuple[str, ...] = Weekday.__args__  # type: ignore[attr-defined]
Every = Literal["day", "weekday", "weekend", "monday", "tuesday", "wednesday", "thursday",
                "friday", "saturday", "sunday"]
Day = Literal["today", "tomorrow", "monday", "tuesday", "wednesday", "thursday", "friday",
              "saturday", "sunday"]
SCHEDULE_TOOLS = frozenset({"add_schedule", "add_reminder", "list_schedules",
                            "cancel_schedule"})
NO_LOCATION = ("I need to know where the home is for sunrise and sunset: set its coordinates "
               "in the config (automation.location: latitude and longitude).")


class WhenArgs(BaseModel):
    """When a reminder or schedule is due; see the module doc."""

    model_config = ConfigDict(extra="forbid")
    time: str | None = Field(None, pattern=r"^([01]?[0-9]|2[0-3]):[0-5][0-9]$",
                             description="clock time, HH:MM in 24 hours")
    hour: int | None = Field(None, ge=0, le=23,
                             description="hour, 0-23, or 1-12 together with meridiem")
    minute: int | None = Field(None, ge=0, le=59)
    meridiem: Literal["am", "pm"] | None = None
    date: dt.date | None = Field(None, description="ISO date of a one-time item")
    day: Day | None = Field(None, description="day of a one-time item")
    in_minutes: int | None = Field(None, ge=1, le=7 * 24 * 60,
                                   description="one time, this many minutes from now")
    in_hours: int | None = Field(None, ge=1, le=7 * 24,
                                 description="one time, this many hours from now")
    every: Every | list[Weekday] | None = Field(
        None, description="repeat: every day, weekday, weekend day, or these weekdays")
    sun_event: Literal["sunrise", "sunset"] | None = None
    offset_minutes: int | None = Field(None, ge=-720, le=720,
                                       description="minutes after sun_event; negative: before")

    @model_validator(mode="after")
    def _said_one_way(self) -> WhenArgs:
        clock = self.time is not None or self.hour is not None
        delay = self.in_minutes is not None or self.in_hours is not None
        sun = self.sun_event is not None
        if clock + delay + sun != 1:
            raise ValueError("say when in exactly one way: a clock time (time, or hour with "
                             "minute and meridiem), a delay (in_minutes, in_hours) or sun_event")
        if self.time is not None and (self.hour, self.minute, self.meridiem) != (None,) * 3:
            raise ValueError("give time or hour/minute/meridiem, not both")
        if self.hour is None and (self.minute is not None or self.meridiem is not None):
            raise ValueError("minute and meridiem need an hour")
        if self.meridiem is not None and not 1 <= (self.hour or 0) <= 12:
            raise ValueError("with am or pm the hour is 1 to 12")
        if self.date is not None and self.day is not None:
            raise ValueError("give date or day, not both")
        if self.every is not None and (self.date is not None or self.day is not None):
            raise ValueError("a repeating item has no date or day")
        if delay and (self.every is not None or self.date is not None or self.day is not None):
            raise ValueError("in_minutes and in_hours are for one time from now, without a day")
        if self.offset_minutes is not None and not sun:
            raise ValueError("offset_minutes goes with sun_event")
        return self


class ScheduleArgs(WhenArgs):
    calls: list[ScheduledCall] = Field(..., min_length=1, max_length=16,
                                       description="the commands to run then, as tool calls")


class ReminderArgs(WhenArgs):
    message: str = Field(..., min_length=1, max_length=200,
                         description="what to remind of, e.g. 'take out the trash'")


class ListArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: Literal["schedule", "reminder"] | None = Field(
        None, description="only reminders or only schedules; none: both")


class CancelArgs(ListArgs):
    number: int | None = Field(None, ge=1, description="the number the list gives")
    name: str | None = Field(None, min_length=1, max_length=100,
                             description="words of its name, e.g. 'coffee machine'")

    @model_validator(mode="after")
    def _number_or_name(self) -> CancelArgs:
        if (self.number is None) == (self.name is None):
            raise ValueError("give either the number or the name")
        return self


class WhenError(ValueError):
    """The time cannot be used; the text says why, to the user."""


def _unusable_times_said(handler: Handler) -> Handler:
    """A time that cannot be used (gone by, no sunset that day, no location) is the reply."""

    @functools.wraps(handler)
    async def run(skill: Any, args: BaseModel, ctx: ToolContext) -> ToolResult:
        try:
            return await handler(skill, args, ctx)
        except WhenError as exc:
            return ToolResult(reply=str(exc), success=False)
        except ValueError as exc:  # the service would not keep it
            return ToolResult(reply=f"Sorry, I can't keep that: {exc}.", success=False)

    return run


class ScheduleSkill(Skill):
    name = "schedules"
    summary = ("remind you of things and run devices on a schedule, also at sunrise or "
               "sunset")
    topic_words = frozenset({"remind", "reminder", "reminders", "schedule", "schedules",
                             "every", "daily", "weekday", "weekdays", "weekend", "sunrise",
                             "sunset", "tomorrow", "tonight"})

    def __init__(self, schedules: ScheduleService) -> None:
        self.schedules = schedules

    @tool("add_schedule", "Run commands later or repeatedly: at a clock time, after a delay, "
          "or at sunrise or sunset, once or every day, weekday, weekend or given weekdays.",
          ScheduleArgs)
    @_unusable_times_said
    async def add_schedule(self, args: ScheduleArgs, ctx: ToolContext) -> ToolResult:
        now, when = self._when(args)
        calls = [call.to_call() for call in args.calls]
        if any(call.tool in SCHEDULE_TOOLS for call in calls):
            # rehearsing them would make or cancel schedules now
            return ToolResult(reply="Sorry, a schedule cannot make or cancel schedules.",
                              success=False)
        rehearsal = await rehearse(calls, ctx)
        if rehearsal.problems:
            return ToolResult(reply=f"Sorry, I can't schedule that: "
                              f"{'; '.join(rehearsal.problems)}", success=False)
        if not rehearsal.runnable:
            return ToolResult(reply="Sorry, that would not do anything.", success=False)
        what = said_calls(calls, ctx.registry)
        said = _said(args, when, now)
        if rehearsal.to_confirm:
            again = ToolCall("add_schedule", args.model_dump(mode="json", exclude_none=True))
            return ToolResult(reply=f"{_capitalized(said)} I would {what}. Shall I?",
                              success=False, needs_confirmation=(again,))
        confirmed: frozenset[str] = frozenset()
        if ctx.confirmed:  # kept for the runs: only the devices that needed this yes
            asked = await rehearse(calls, replace(ctx, confirmed=frozenset()))
            confirmed = frozenset(asked.to_confirm) & ctx.confirmed
        self.schedules.add(when, what=what, calls=[{"tool": c.tool, "args": c.args}
                                                    for c in calls],
                           area=ctx.area, conversation_id=ctx.conversation_id,
                           confirmed=confirmed)
        if confirmed:
            return ToolResult(reply=f"{_capitalized(said)} I'll {what}; you confirmed this "
                              "for this schedule.")
        return ToolResult(reply=f"OK, {said} I'll {what}.")

    @tool("add_reminder", "Remind the user of something: at a clock time, after a delay, or "
          "at sunrise or sunset, once or repeating.", ReminderArgs)
    @_unusable_times_said
    async def add_reminder(self, args: ReminderArgs, ctx: ToolContext) -> ToolResult:
        now, when = self._when(args)
        message = args.message.strip().rstrip(".!?").strip()
        if message.casefold().startswith("to "):
            message = message[3:].strip()
        if not message:
            return ToolResult(reply="What should I remind you of?", success=False)
        linked = message.casefold().startswith(("that ", "about "))
        what = f"remind you {'' if linked else 'to '}{message}"
        self.schedules.add(when, what=what, message=message, area=ctx.area,
                           conversation_id=ctx.conversation_id)
        return ToolResult(reply=f"OK, I'll {what} {_said(args, when, now)}.")

    @tool("list_schedules", "List the reminders and schedules, with their numbers.", ListArgs)
    async def list_schedules(self, args: ListArgs, ctx: ToolContext) -> ToolResult:
        found = self.schedules.all(args.kind)
        noun = args.kind or "schedule"
        if not found:
            return ToolResult(reply="You have no reminders." if args.kind == "reminder"
                              else "You have no schedules or reminders.")
        listing = "; ".join(f"{s.number}. {s.name}" for s in found)
        return ToolResult(reply=f"You have {_count(len(found), noun)}: {listing}.")

    @tool("cancel_schedule", "Cancel a reminder or schedule by its number or by words of its "
          "name.", CancelArgs)
    async def cancel_schedule(self, args: CancelArgs, ctx: ToolContext) -> ToolResult:
        if args.number is not None:
            schedule = self.schedules.get(args.number)
            if schedule is None or args.kind not in (None, schedule.kind):
                return ToolResult(reply=f"There is no {args.kind or 'schedule'} "
                                  f"{args.number}.", success=False)
            return self._cancelled(schedule)
        found = self.schedules.find(args.name or "", args.kind)
        if len(found) == 1:
            return self._cancelled(found[0])
        kind = args.kind or "schedule or reminder"
        if not found:
            return ToolResult(reply=f"I couldn't find a {kind} matching \"{args.name}\".",
                              success=False)
        listing = "; ".join(f"{s.number}. {s.name}" for s in found)
        return ToolResult(reply=f"Which one do you mean: {listing}? Say, for example, "
                          f"\"cancel schedule {found[0].number}\".", success=False)

    def _when(self, args: WhenArgs) -> tuple[dt.datetime, When]:
        now = self.schedules.now()
        return now, resolve_when(args, now, self.schedules.location)

    def _cancelled(self, schedule: Schedule) -> ToolResult:
        if not self.schedules.cancel(schedule):  # it ran (and went) in the meantime
            return ToolResult(reply=f"{_capitalized(schedule.kind)} {schedule.number} is "
                              "already gone.", success=False)
        return ToolResult(reply=f"OK, I cancelled {schedule.kind} {schedule.number}: "
                          f"{schedule.name}.")


# -- when --------------------------------------------------------------------------------


def resolve_when(args: WhenArgs, now: dt.datetime, location: Location | None) -> When:
    """The typed time of ``args`` as of ``now``; WhenError says why it cannot be used. A
    one-time clock time already gone by today is tomorrow's; an hour of 1 to 11 without am
    or pm is the next of the two."""
    weekdays = _weekdays(args.every)
    if args.in_minutes is not None or args.in_hours is not None:
        delay = dt.timedelta(minutes=args.in_minutes or 0, hours=args.in_hours or 0)
        return Once((now.astimezone(dt.UTC) + delay).astimezone(now.tzinfo))
    if args.sun_event is not None:
        if location is None:
            raise WhenError(NO_LOCATION)
        offset = args.offset_minutes or 0
        if args.every is not None:
            return AtSun(args.sun_event, offset, weekdays)
        return Once(_next_sun(args, now, location, offset))
    hours, minute = _clock(args)
    if args.every is not None:
        return Daily(hours[0], minute, weekdays)
    return Once(_next_clock(args, now, hours, minute))


def _said(args: WhenArgs, when: When, now: dt.datetime) -> str:
    """The time as the reply says it: a delay as a delay ("in 20 minutes, at 18:20")."""
    if isinstance(when, Once) and (args.in_minutes is not None or args.in_hours is not None):
        minutes = (args.in_hours or 0) * 60 + (args.in_minutes or 0)
        return f"in {said_duration(minutes)}, at {clock_time(when.at.astimezone(now.tzinfo))}"
    return said_when(when, now)


def _weekdays(every: str | list[str] | None) -> tuple[int, ...] | None:
    if every is None or every == "day":
        return None
    if every == "weekday":
        return WORKDAYS
    if every == "weekend":
        return WEEKEND
    names = [every] if isinstance(every, str) else every
    return tuple(sorted({WEEKDAYS.index(name) for name in names}))


def _clock(args: WhenArgs) -> tuple[list[int], int]:
    """The hours the time may mean (two for "at 6": 06:00 and 18:00), and the minute."""
    if args.time is not None:
        hour, minute = (int(part) for part in args.time.split(":"))
        return [hour], minute
    hour, minute = int(args.hour or 0), args.minute or 0
    if args.meridiem is not None:
        return [hour % 12 + (12 if args.meridiem == "pm" else 0)], minute
    return ([hour, hour + 12] if 1 <= hour <= 11 else [hour]), minute


def _said_day(args: WhenArgs, today: dt.date) -> dt.date | None:
    if args.date is not None:
        return args.date
    if args.day is None:
        return None
    if args.day in ("today", "tomorrow"):
        return today + dt.timedelta(days=args.day == "tomorrow")
    return today + dt.timedelta(days=(WEEKDAYS.index(args.day) - today.weekday()) % 7)


def _next_clock(args: WhenArgs, now: dt.datetime, hours: list[int],
                minute: int) -> dt.datetime:
    day = _said_day(args, now.date())
    # A weekday named may be today or a week on; "today"/"tomorrow"/a date is that day.
    days = [day, day + dt.timedelta(days=7)] if args.day in WEEKDAYS and day else \
        [day] if day else [now.date(), now.date() + dt.timedelta(days=1)]
    for candidate_day in days:
        for hour in hours:
            at = dt.datetime.combine(candidate_day, dt.time(hour, minute), tzinfo=now.tzinfo)
            if at >= now:
                return at
    raise WhenError(f"{_capitalized(said_moment(at, now))} has already passed.")


def _next_sun(args: WhenArgs, now: dt.datetime, location: Location,
              offset: int) -> dt.datetime:
    day = _said_day(args, now.astimezone(location.timezone).date())
    if day is None:
        at = SunTrigger(args.sun_event or "sunset", location,
                        offset=offset * 60).get_next_fire_time(None, now)
        if at is None:
            raise WhenError(f"The sun does not {_sun_verb(args)} here for over a year.")
        return at.astimezone(now.tzinfo)
    event = sun_event(day, args.sun_event or "sunset", location)
    if event is None:
        raise WhenError(f"The sun does not {_sun_verb(args)} here on {day:%B} {day.day}.")
    at = (event.astimezone(dt.UTC) + dt.timedelta(minutes=offset)).astimezone(now.tzinfo)
    if at < now:
        raise WhenError(f"{_capitalized(said_moment(at, now))} has already passed.")
    return at


def _sun_verb(args: WhenArgs) -> str:
    return "rise" if args.sun_event == "sunrise" else "set"


def _capitalized(text: str) -> str:
    return text[:1].upper() + text[1:]


def _count(count: int, noun: ScheduleKind | str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"
