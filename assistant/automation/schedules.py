"""Reminders and schedules: jobs in the scheduler that say something or run device commands.

A schedule keeps tool calls (as plain dicts) and, when due, hands them to ``execute`` as a
``ScheduledRun``: the same executor and safety policy as a spoken request, with only the
devices confirmed when the schedule was made counting as confirmed. A reminder keeps a
message and is announced where it was set. Both are jobs in the scheduler's SQLite store, so
they survive a restart; everything needed to run one is in the job's data.

Each has a number (1, 2, ... in creation order, kept while it exists) so that "cancel
schedule 2" names it, and a spoken name, "turn on the Kitchen Light every day at 07:00".
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import Any, Literal

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.date import DateTrigger

from assistant.automation.scheduler import Clock, JobDue, JobInfo, Scheduler
from assistant.automation.sun import Location, SunEvent, SunTrigger
from assistant.messages import Announce, Execute, Notice, ScheduledRun, ToolCall

log = logging.getLogger(__name__)

ScheduleKind = Literal["schedule", "reminder"]
KINDS: tuple[ScheduleKind, ...] = ("schedule", "reminder")
WEEKDAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
WORKDAYS = (0, 1, 2, 3, 4)
WEEKEND = (5, 6)
_CRON_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
# Words that say what kind of thing is meant, not which one ("the coffee machine schedule").
_NOT_NAME_WORDS = frozenset({"the", "my", "a", "an", "to", "for", "about", "of", "schedule",
                             "schedules", "reminder", "reminders", "remind", "me", "you"})
_WORD = re.compile(r"[^\W_]+")


# -- when ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Once:
    """One time, at ``at`` (aware)."""

    at: datetime


@dataclass(frozen=True, slots=True)
class Daily:
    """Every day (or only on ``weekdays``, 0 = Monday) at hour:minute, local time."""

    hour: int
    minute: int
    weekdays: tuple[int, ...] | None = None


@dataclass(frozen=True, slots=True)
class AtSun:
    """Every day (or only on ``weekdays``) at sunrise or sunset, moved by ``offset_minutes``
    (negative: before)."""

    event: SunEvent
    offset_minutes: int = 0
    weekdays: tuple[int, ...] | None = None


When = Once | Daily | AtSun


def when_to_data(when: When) -> dict[str, Any]:
    if isinstance(when, Once):
        return {"type": "once", "at": when.at.isoformat()}
    days = None if when.weekdays is None else list(when.weekdays)
    if isinstance(when, Daily):
        return {"type": "daily", "hour": when.hour, "minute": when.minute, "weekdays": days}
    return {"type": "sun", "event": when.event, "offset_minutes": when.offset_minutes,
            "weekdays": days}


def when_from_data(data: dict[str, Any]) -> When:
    days = data.get("weekdays")
    weekdays = None if days is None else tuple(int(d) for d in days)
    if data["type"] == "once":
        return Once(datetime.fromisoformat(data["at"]))
    if data["type"] == "daily":
        return Daily(int(data["hour"]), int(data["minute"]), weekdays)
    if data["type"] == "sun":
        return AtSun(data["event"], int(data["offset_minutes"]), weekdays)
    raise ValueError(f"unknown kind of time {data['type']!r}")


def clock_time(when: datetime) -> str:
    return f"{when:%H:%M}"


def said_days(weekdays: tuple[int, ...] | None) -> str:
    """"every day", "every weekday", "every Monday and Thursday"."""
    days = tuple(sorted(set(weekdays))) if weekdays is not None else tuple(range(7))
    if days == tuple(range(7)):
        return "every day"
    if days == WORKDAYS:
        return "every weekday"
    if days == WEEKEND:
        return "every Saturday and Sunday"
    names = [WEEKDAY_NAMES[d] for d in days]
    return "every " + (names[0] if len(names) == 1
                       else ", ".join(names[:-1]) + f" and {names[-1]}")


def said_duration(minutes: int) -> str:
    """"30 minutes", "1 hour and 15 minutes"."""
    hours, rest = divmod(abs(minutes), 60)
    parts = [f"{hours} hour{'s' if hours != 1 else ''}"] if hours else []
    if rest or not hours:
        parts.append(f"{rest} minute{'s' if rest != 1 else ''}")
    return " and ".join(parts)


def said_offset(minutes: int) -> str:
    """"30 minutes before ", "1 hour and 15 minutes after ", "" for none."""
    if minutes == 0:
        return ""
    return f"{said_duration(minutes)} {'before' if minutes < 0 else 'after'} "


def said_moment(when: datetime, now: datetime) -> str:
    """"today at 18:00", "tomorrow at 09:00", "on Friday at 09:00", "on March 3 at 09:00"."""
    local = when.astimezone(now.tzinfo)
    days = (local.date() - now.date()).days
    if days == 0:
        day = "today"
    elif days == 1:
        day = "tomorrow"
    elif days == -1:
        day = "yesterday"
    elif 1 < days < 7:
        day = f"on {WEEKDAY_NAMES[local.weekday()]}"
    else:
        day = f"on {local:%B} {local.day}" + (f", {local.year}" if local.year != now.year else "")
    return f"{day} at {clock_time(local)}"


def said_when(when: When, now: datetime) -> str:
    """The time of a schedule as said: "every weekday at 07:00", "every day 30 minutes
    before sunset", "today at 18:00"."""
    if isinstance(when, Once):
        return said_moment(when.at, now)
    if isinstance(when, Daily):
        return f"{said_days(when.weekdays)} at {when.hour:02d}:{when.minute:02d}"
    offset = said_offset(when.offset_minutes)
    return f"{said_days(when.weekdays)} {offset or 'at '}{when.event}"


# -- schedules -------------------------------------------------------------------------


@dataclass(frozen=True)
class Schedule:
    """A reminder (``message``) or a schedule (``calls``), as kept in its job."""

    id: str
    number: int
    what: str  # "turn on the Kitchen Light", "remind you to take out the trash"
    when: When
    calls: tuple[dict[str, Any], ...]  # {"tool": ..., "args": ...}
    message: str | None
    area: str | None
    conversation_id: str | None
    confirmed: frozenset[str]  # devices the user said yes for when it was made
    created: datetime
    name: str  # what and when, said as of the moment it was read
    next_run: datetime | None = None

    @property
    def kind(self) -> ScheduleKind:
        return "reminder" if self.message is not None else "schedule"

    @property
    def once(self) -> bool:
        return isinstance(self.when, Once)

    def tool_calls(self) -> tuple[ToolCall, ...]:
        return tuple(ToolCall(str(c["tool"]), dict(c.get("args") or {})) for c in self.calls)


class ScheduleService:
    """Makes, lists, cancels and runs reminders and schedules (see the module doc)."""

    def __init__(self, scheduler: Scheduler, *, execute: Execute, announce: Announce,
                 clock: Clock, location: Location | None,
                 publish: Callable[[str, dict[str, Any]], None] | None = None) -> None:
        self._scheduler = scheduler
        self._execute = execute
        self._announce = announce
        self._clock = clock
        self.location = location
        self._publish = publish
        self._unregister = [scheduler.handle("schedule", self._run_schedule),
                            scheduler.handle("reminder", self._remind)]

    def close(self) -> None:
        for unregister in self._unregister:
            unregister()
        self._unregister = []

    @property
    def zone(self) -> tzinfo | None:
        """The home's time zone: the clock's."""
        return self._clock.now().tzinfo

    def now(self) -> datetime:
        return self._clock.now()

    # -- making, finding, cancelling -----------------------------------------------------

    def add(self, when: When, *, what: str, calls: Sequence[dict[str, Any]] = (),
            message: str | None = None, area: str | None = None,
            conversation_id: str | None = None,
            confirmed: Iterable[str] = ()) -> Schedule:
        """Keep a schedule (``calls``) or a reminder (``message``); ValueError when ``when``
        never comes (a time gone by, a sun time without a location)."""
        if (message is None) == (not calls):
            raise ValueError("a schedule has calls, a reminder has a message")
        kind: ScheduleKind = "reminder" if message is not None else "schedule"
        now = self.now()
        if isinstance(when, Once) and when.at < now:
            raise ValueError(f"{said_moment(when.at, now)} has already passed")
        trigger = self._trigger(when)
        first = trigger.get_next_fire_time(None, now)
        if first is None:
            raise ValueError(f"{said_when(when, now)} never comes")
        number = max((s.number for s in self.all()), default=0) + 1
        data = {
            "number": number, "what": what, "when": when_to_data(when),
            "calls": [{"tool": str(c["tool"]), "args": dict(c.get("args") or {})}
                      for c in calls],
            "message": message, "area": area, "conversation_id": conversation_id,
            "confirmed": sorted(set(confirmed)), "created": now.isoformat(),
        }
        job_id = self._scheduler.add(kind, trigger, data=data, name=f"{kind} {number}: {what}",
                                     next_run=first)
        log.info("%s %d made: %s %s", kind, number, what, said_when(when, now))
        self.publish_list()
        made = self._scheduler.get(job_id)
        if made is None:  # a date already passed would have been refused above
            raise ValueError(f"{kind} {number} could not be kept")
        return self._schedule(made, now)

    def all(self, kind: ScheduleKind | None = None) -> list[Schedule]:
        """Reminders and schedules (of ``kind``), by number."""
        now = self.now()
        found = []
        for info in (info for each in KINDS if kind in (None, each)
                     for info in self._scheduler.jobs(each)):
            try:
                found.append(self._schedule(info, now))
            except (KeyError, TypeError, ValueError) as exc:  # kept, not listed; logged
                log.warning("job %s (%s) is not a readable %s: %s", info.id, info.name,
                            info.kind, exc)
        return sorted(found, key=lambda s: s.number)

    def get(self, number: int) -> Schedule | None:
        return next((s for s in self.all() if s.number == number), None)

    def find(self, words: str, kind: ScheduleKind | None = None) -> list[Schedule]:
        """Those whose spoken name has every word of ``words`` ("coffee machine", "call
        mom"), ignoring words that only say "schedule" or "reminder"."""
        wanted = _name_words(words) - _NOT_NAME_WORDS
        if not wanted:
            return []
        return [s for s in self.all(kind)
                if wanted <= _name_words(f"{s.name} {s.message or ''}")]

    def cancel(self, schedule: Schedule) -> bool:
        removed = self._scheduler.remove(schedule.id)
        if removed:
            log.info("%s %d cancelled: %s", schedule.kind, schedule.number, schedule.what)
            self.publish_list()
        return removed

    def publish_list(self) -> None:
        """Publish every reminder and schedule on ``schedules`` (retained by the caller)."""
        if self._publish is None:
            return
        items = [{
            "number": s.number, "id": s.id, "kind": s.kind, "name": s.name, "what": s.what,
            "when": when_to_data(s.when), "message": s.message, "area": s.area,
            "next_run": s.next_run.isoformat() if s.next_run else None,
            "confirmed": sorted(s.confirmed),
        } for s in self.all()]
        self._publish_safely("schedules", {"schedules": items})

    def missed_notice(self, due: JobDue) -> Notice:
        """What to say about a reminder or schedule that came due while the hub was down."""
        schedule = self._schedule(JobInfo(due.id, due.kind, due.name, due.data, None),
                                  self.now())
        moment = said_moment(due.due, self.now())
        if schedule.kind == "reminder":
            text = f"While I was offline, I missed a reminder {moment}: {schedule.message}."
        else:
            text = (f"While I was offline, schedule {schedule.number} ({schedule.what}) was "
                    f"due {moment}; I did not run it.")
        return Notice(kind="missed", text=text, area=schedule.area,
                      conversation_id=schedule.conversation_id,
                      data=self._event(schedule, due, missed=True))

    # -- running -------------------------------------------------------------------------

    async def _run_schedule(self, due: JobDue) -> None:
        schedule = self._schedule(JobInfo(due.id, due.kind, due.name, due.data, None),
                                  self.now())
        run = ScheduledRun(calls=schedule.tool_calls(), origin=f"schedule {schedule.number}",
                           area=schedule.area, confirmed=schedule.confirmed)
        try:
            response = await self._execute(run)
        except Exception:  # noqa: BLE001 - said, logged; the other jobs go on
            log.exception("schedule %d (%s) failed", schedule.number, schedule.what)
            ok, reply = False, "something went wrong inside the hub"
        else:
            ok = response.success and not response.awaiting_confirmation
            reply = response.reply
        event = {**self._event(schedule, due), "success": ok, "reply": reply}
        self._publish_safely("schedules/events", event)
        if not ok:
            await self._announce(Notice(
                kind="schedule",
                text=f"Schedule {schedule.number} ({schedule.what}) did not work: {reply}",
                area=schedule.area, conversation_id=schedule.conversation_id, data=event))
        self.publish_list()

    async def _remind(self, due: JobDue) -> None:
        schedule = self._schedule(JobInfo(due.id, due.kind, due.name, due.data, None),
                                  self.now())
        await self._announce(Notice(kind="reminder", text=f"Reminder: {schedule.message}",
                                    area=schedule.area,
                                    conversation_id=schedule.conversation_id,
                                    data=self._event(schedule, due)))
        self.publish_list()

    # -- internals -----------------------------------------------------------------------

    def _trigger(self, when: When) -> BaseTrigger:
        if isinstance(when, Once):
            return DateTrigger(run_date=when.at, timezone=self.zone)
        if isinstance(when, Daily):
            days = "*" if when.weekdays is None else ",".join(_CRON_DAYS[d]
                                                               for d in when.weekdays)
            return CronTrigger(hour=when.hour, minute=when.minute, day_of_week=days,
                               timezone=self.zone)
        if self.location is None:
            raise ValueError("sunrise and sunset need the home's coordinates in the config "
                             "(automation.location)")
        return SunTrigger(when.event, self.location, offset=when.offset_minutes * 60,
                          days_of_week=when.weekdays)

    def _schedule(self, info: JobInfo, now: datetime) -> Schedule:
        data = info.data
        when = when_from_data(data["when"])
        what = str(data["what"])
        return Schedule(
            id=info.id, number=int(data["number"]), what=what, when=when,
            calls=tuple(data.get("calls") or ()), message=data.get("message"),
            area=data.get("area"), conversation_id=data.get("conversation_id"),
            confirmed=frozenset(data.get("confirmed") or ()),
            created=datetime.fromisoformat(data["created"]),
            name=f"{what} {said_when(when, now)}", next_run=info.next_run)

    @staticmethod
    def _event(schedule: Schedule, due: JobDue, missed: bool = False) -> dict[str, Any]:
        return {"id": schedule.id, "number": schedule.number, "kind": schedule.kind,
                "name": schedule.name, "due": due.due.isoformat(), "missed": missed}

    def _publish_safely(self, topic: str, payload: dict[str, Any]) -> None:
        if self._publish is None:
            return
        try:
            self._publish(topic, payload)
        except Exception:  # noqa: BLE001 - a dashboard's feed must not stop a schedule
            log.exception("could not publish %s", topic)


def _name_words(text: str) -> set[str]:
    """The words of a text, casefolded, plural "s" dropped ("mondays" finds "Monday")."""
    return {w[:-1] if len(w) > 3 and w.endswith("s") else w
            for w in _WORD.findall(text.casefold())}
