"""Timers: scheduler jobs of kind "timer", so they survive a restart.

A due timer either runs the calls it keeps (through ``execute``: the same executor and safety
policy as a spoken request, with only the devices confirmed when it was set counting as
confirmed) and announces the outcome, or announces that it is done. Which timer a request
means is chosen like Home Assistant's timer intents do: by name, area or starting duration,
else the only one, else the most recent one of this conversation or area.
"""

from __future__ import annotations

import logging
import math
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from apscheduler.triggers.date import DateTrigger

from assistant.automation.scheduler import Clock, JobDue, JobInfo, Scheduler
from assistant.messages import Announce, Execute, Notice, ScheduledRun, ToolCall

log = logging.getLogger(__name__)

KIND = "timer"
MIN_S = 1.0
MAX_S = 24 * 3600.0
TOPIC = "timers"  # published as <base>/timers, retained

Publish = Callable[[str, dict[str, Any]], None]


def spoken_duration(seconds: float, *, adjective: bool = False) -> str:
    """ "1 hour, 2 minutes and 3 seconds"; as an adjective ("a 5 minute timer") units stay
    singular. Parts of a second round up: "1 second left" until it is over."""
    total = max(math.ceil(seconds - 1e-6), 0)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [
        f"{value} {unit}{'' if value == 1 or adjective else 's'}"
        for value, unit in ((hours, "hour"), (minutes, "minute"), (secs, "second"))
        if value
    ]
    if not parts:
        return "0 second" if adjective else "0 seconds"
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + f" and {parts[-1]}"


def said_together(phrases: Sequence[str], conjunction: str = "and") -> str:
    """ "a", "a and b", "a, b and c"."""
    if len(phrases) <= 2:
        return f" {conjunction} ".join(phrases)
    return ", ".join(phrases[:-1]) + f" {conjunction} {phrases[-1]}"


def clean_name(name: str | None) -> str | None:
    """A timer's name without the words around it: "the Pizza timer" -> "Pizza"."""
    words = (name or "").replace("-", " ").split()
    if words and words[0].lower() in ("the", "my", "a", "an"):
        words = words[1:]
    if words and words[-1].lower() == "timer":
        words = words[:-1]
    return " ".join(words) or None


def _normalized_name(name: str | None) -> str | None:
    cleaned = clean_name(name)
    return cleaned.lower() if cleaned else None


@dataclass(frozen=True)
class Timer:
    id: str
    name: str | None
    area: str | None
    conversation_id: str | None
    duration_s: float  # as started: "the 5 minute timer" stays that after time is added
    created: datetime
    remaining_s: float
    paused: bool
    calls: tuple[ToolCall, ...] = ()
    confirmed: frozenset[str] = frozenset()
    command: str | None = None  # what its calls do, in words: "turn off the Kitchen Light"
    ends_at: datetime | None = None  # None while paused

    @property
    def label(self) -> str:
        """ "pizza timer", "5 minute timer"."""
        if self.name:
            return f"{self.name} timer"
        return f"{spoken_duration(self.duration_s, adjective=True)} timer"

    @property
    def described(self) -> str:
        """The label and what it will do: "5 minute timer to turn off the Kitchen Light"."""
        return f"{self.label} to {self.command}" if self.command else self.label

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "label": self.label,
            "area": self.area,
            "duration_s": self.duration_s,
            "remaining_s": round(self.remaining_s, 1),
            "paused": self.paused,
            "ends_at": self.ends_at.isoformat() if self.ends_at else None,
            "command": self.command,
        }


@dataclass(frozen=True)
class TimerTarget:
    """Which timer a request names; all None: it names none."""

    name: str | None = None
    area: str | None = None
    start_s: float | None = None  # the duration it was started with

    @property
    def given(self) -> bool:
        return bool(_normalized_name(self.name) or self.area or self.start_s)

    def matches(self, timer: Timer) -> bool:
        wanted = _normalized_name(self.name)
        return (
            (wanted is None or _normalized_name(timer.name) == wanted)
            and (self.area is None or timer.area == self.area)
            and (not self.start_s or abs(timer.duration_s - self.start_s) < 0.5)
        )


class TimerError(ValueError):
    """A timer change that cannot be made (too long, already paused, ...); the text says why."""


class TimerService:
    def __init__(
        self,
        scheduler: Scheduler,
        *,
        execute: Execute,
        announce: Announce,
        clock: Clock,
        publish: Publish | None = None,
    ) -> None:
        self._scheduler = scheduler
        self._execute = execute
        self._announce = announce
        self._clock = clock
        self._publish = publish
        self.close = scheduler.handle(KIND, self._due)

    # -- reading ---------------------------------------------------------------------------

    def timers(self, area: str | None = None) -> list[Timer]:
        """The timers (of ``area``), the soonest done first, paused ones last."""
        found = [self._timer(info) for info in self._scheduler.jobs(KIND)]
        found = [t for t in found if area is None or t.area == area]
        return sorted(found, key=lambda t: (t.paused, t.remaining_s))

    def get(self, timer_id: str) -> Timer | None:
        info = self._scheduler.get(timer_id)
        return None if info is None or info.kind != KIND else self._timer(info)

    def select(
        self, target: TimerTarget, *, area: str | None, conversation_id: str | None
    ) -> list[Timer]:
        """The timers ``target`` can mean for a speaker in ``area``: one when it is clear,
        several when a question must say which, none when there is no such timer."""
        every = self.timers()
        matching = [t for t in every if target.matches(t)]
        if len(matching) <= 1:
            return matching
        mine = [t for t in matching if conversation_id and t.conversation_id == conversation_id]
        here = [t for t in matching if area and t.area == area]
        if target.given:
            for scope in (mine, here):
                if len(scope) == 1:
                    return scope
            return matching
        # Nothing named: the one set most recently in this conversation, else in this area.
        for scope in (mine, here):
            if scope:
                return [max(scope, key=lambda t: t.created)]
        return matching

    # -- changing --------------------------------------------------------------------------

    def start(
        self,
        duration_s: float,
        *,
        name: str | None = None,
        area: str | None = None,
        conversation_id: str | None = None,
        calls: Iterable[ToolCall] = (),
        confirmed: Iterable[str] = (),
        command: str | None = None,
    ) -> Timer:
        _check_duration(duration_s)
        now = self._clock.now()
        due = now + timedelta(seconds=duration_s)
        timer = Timer(
            id=uuid.uuid4().hex[:12],
            name=clean_name(name),
            area=area,
            conversation_id=conversation_id,
            duration_s=float(duration_s),
            created=now,
            remaining_s=float(duration_s),
            paused=False,
            calls=tuple(calls),
            confirmed=frozenset(confirmed),
            command=command,
            ends_at=due,
        )
        self._scheduler.add(KIND, DateTrigger(due), data=_data(timer), name=timer.label,
                            job_id=timer.id, next_run=due)
        self.publish_timers()
        return timer

    def cancel(self, timer_id: str) -> Timer | None:
        timer = self.get(timer_id)
        if timer is None or not self._scheduler.remove(timer_id):
            return None
        self.publish_timers()
        return timer

    def cancel_all(self, area: str | None = None) -> list[Timer]:
        cancelled = [t for t in self.timers(area) if self._scheduler.remove(t.id)]
        if cancelled:
            self.publish_timers()
        return cancelled

    def pause(self, timer_id: str) -> Timer:
        timer = self._existing(timer_id)
        if timer.paused:
            raise TimerError(f"The {timer.label} is already paused.")
        paused = replace(timer, paused=True)
        # What is left goes into the data first: a running timer's data ignores it, so a
        # crash between the two writes leaves a sound timer either way.
        self._scheduler.update(timer_id, data=_data(paused))
        self._scheduler.pause(timer_id)
        self.publish_timers()
        return paused

    def resume(self, timer_id: str) -> Timer:
        timer = self._existing(timer_id)
        if not timer.paused:
            raise TimerError(f"The {timer.label} is not paused.")
        self._scheduler.resume(timer_id, self._clock.now() + timedelta(seconds=timer.remaining_s))
        self.publish_timers()
        return replace(timer, paused=False)

    def change(self, timer_id: str, delta_s: float) -> Timer:
        """Add (positive) or remove (negative) time; a timer left with none is done now."""
        timer = self._existing(timer_id)
        remaining = max(timer.remaining_s + delta_s, 0.0)
        if remaining > MAX_S:
            raise TimerError(f"A timer can run for at most {spoken_duration(MAX_S)}.")
        changed = replace(timer, remaining_s=remaining, paused=timer.paused and remaining > 0)
        if changed.paused:  # what is left of a paused timer is kept in its data
            self._scheduler.update(timer_id, data=_data(changed))
        else:
            self._scheduler.resume(timer_id, self._clock.now() + timedelta(seconds=remaining))
        self.publish_timers()
        return changed

    def publish_timers(self) -> None:
        """Publish the list of timers (on every change; the lead also calls it after start)."""
        if self._publish is None:
            return
        try:
            self._publish(TOPIC, {"timers": [t.to_json() for t in self.timers()]})
        except Exception:  # noqa: BLE001 - a broker problem must not undo the change
            log.exception("could not publish the timers")

    # -- internals -------------------------------------------------------------------------

    def _existing(self, timer_id: str) -> Timer:
        timer = self.get(timer_id)
        if timer is None:
            raise TimerError("That timer is not running any more.")
        return timer

    def _timer(self, info: JobInfo) -> Timer:
        if info.next_run is None:  # paused: what was left is kept in its data
            return _timer_from(info.id, info.data, remaining_s=float(
                info.data.get("remaining_s") or 0.0), paused=True, fallback=self._clock.now())
        remaining = max((info.next_run - self._clock.now()).total_seconds(), 0.0)
        return replace(_timer_from(info.id, info.data, remaining_s=remaining, paused=False,
                                   fallback=self._clock.now()), ends_at=info.next_run)

    async def _due(self, due: JobDue) -> None:
        timer = _timer_of_job(due)
        self.publish_timers()  # it is gone from the list
        notice_data = {"timer_id": due.id, "name": timer.name, "label": timer.label}
        if not timer.calls:
            await self._announce(Notice(KIND, f"Your {timer.label} is done.", timer.area,
                                        timer.conversation_id, notice_data))
            return
        run = ScheduledRun(timer.calls, origin=f"timer {timer.name or timer.label}",
                           area=timer.area, conversation_id=timer.conversation_id,
                           confirmed=timer.confirmed)
        try:
            response = await self._execute(run)
            text, success = response.reply, response.success
        except Exception:  # noqa: BLE001 - the timer is over either way; say it failed
            log.exception("the %s could not run its command", timer.label)
            text, success = f"Sorry, the {timer.label} could not run its command.", False
        await self._announce(Notice(KIND, text, timer.area, timer.conversation_id,
                                    {**notice_data, "success": success}))


def missed_timer_notice(due: JobDue) -> Notice:
    """What to say about a timer that went off while the hub was down (for ``on_missed``)."""
    timer = _timer_of_job(due)
    when = due.due.strftime("%H:%M")
    if timer.calls:
        what = f" to {timer.command}" if timer.command else ""
        text = (f"While I was offline, your {timer.label}{what} was due at {when}; "
                "I did not run it.")
    else:
        text = f"Your {timer.label} went off at {when} while I was offline."
    return Notice("missed", text, timer.area, timer.conversation_id,
                  {"kind": KIND, "timer_id": due.id, "name": timer.name,
                   "due": due.due.isoformat()})


def _timer_of_job(due: JobDue) -> Timer:
    return _timer_from(due.id, due.data, remaining_s=0.0, paused=False, fallback=due.due)


def _timer_from(job_id: str, data: dict[str, Any], *, remaining_s: float, paused: bool,
                fallback: datetime) -> Timer:
    """A timer from its job's data (``fallback``: its creation time when the data lacks it)."""
    return Timer(
        id=job_id,
        name=data.get("name"),
        area=data.get("area"),
        conversation_id=data.get("conversation_id"),
        duration_s=float(data.get("duration_s") or 0.0),
        created=datetime.fromisoformat(data["created"]) if data.get("created") else fallback,
        remaining_s=remaining_s,
        paused=paused,
        calls=tuple(ToolCall(c["tool"], dict(c.get("args") or {}))
                    for c in data.get("calls") or ()),
        confirmed=frozenset(data.get("confirmed") or ()),
        command=data.get("command"),
    )


def _data(timer: Timer) -> dict[str, Any]:
    """A timer as the job's plain data (it is pickled into the job store)."""
    return {
        "name": timer.name,
        "area": timer.area,
        "conversation_id": timer.conversation_id,
        "duration_s": timer.duration_s,
        "created": timer.created.isoformat(),
        "remaining_s": timer.remaining_s if timer.paused else None,
        "calls": [{"tool": c.tool, "args": dict(c.args)} for c in timer.calls],
        "confirmed": sorted(timer.confirmed),
        "command": timer.command,
    }


def _check_duration(seconds: float) -> None:
    if not MIN_S <= seconds <= MAX_S:
        raise TimerError(f"A timer can run from 1 second to {spoken_duration(MAX_S)}.")
