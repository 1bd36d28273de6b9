"""Timers, reminders, schedules, lists and rules: built, started and stopped in one place.

The services (``assistant/automation/``) keep their state in the state directory, so what was
set survives a restart; what they run goes through the conversation's executor and the one
safety policy (``Conversation.run_scheduled``); what they say goes through ``Notices``
(spoken where it was set, published on MQTT, else told in the next reply).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
from collections.abc import Awaitable, Callable
from datetime import tzinfo
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import tzlocal

from assistant.automation.lists import ListService
from assistant.automation.notices import Notices, reply_prefix
from assistant.automation.scheduler import JobDue, Scheduler, SystemClock
from assistant.automation.schedules import ScheduleService
from assistant.automation.sun import Location
from assistant.automation.timers import TimerService, missed_timer_notice
from assistant.config import Config
from assistant.messages import Execute, MqttMessage
from assistant.registry import DeviceRegistry
from assistant.replies import kept_names, replies_for
from assistant.rules.check import check_directory
from assistant.rules.engine import RuleEngine, rule_problems
from assistant.rules.loader import RuleDirectoryWatcher, load_rules_async, save_rule_file
from assistant.safety import SafetyPolicy
from skills.base import CommandSink, SkillRegistry
from skills.lists import ListSkill
from skills.rules import RuleSkill
from skills.schedules import ScheduleSkill
from skills.timers import TimerSkill

log = logging.getLogger(__name__)

Subscribe = Callable[[str, Callable[[MqttMessage], None]], Callable[[], None]]
Speak = Callable[[str, str | None], Awaitable[bool]]
# Published as they happen; everything else under <base>/ is the retained current state.
_EVENT_TOPICS = frozenset({"notices", "schedules/events"})


def local_time_zone(name: str | None) -> tzinfo:
    """The configured zone, else the system's own as a real zone (a fixed UTC offset would
    move daily times by an hour at each daylight-saving change)."""
    return ZoneInfo(name) if name is not None else tzlocal.get_localzone()


def home_location(config: Config, time_zone: tzinfo) -> Location | None:
    place = config.automation.location
    return Location(place.latitude, place.longitude, place.elevation, timezone=time_zone) \
        if place is not None else None


def rules_directory(config: Config) -> Path:
    return config.automation.rules_dir or Path(config.state_dir) / "rules"


def check_rules(config: Config, directory: Path | None = None) -> tuple[str, int]:
    """``mimo-home rules check``: every file's errors, and what this home cannot run (a sun
    trigger without a location, a service no device here takes)."""
    location = home_location(config, local_time_zone(config.automation.time_zone))
    return check_directory(directory or rules_directory(config), rule_check=lambda loaded:
                           rule_problems(loaded.rule, loaded.file, loaded.name, location))


class Automations:
    def __init__(self, config: Config, registry: DeviceRegistry, skills: SkillRegistry, *,
                 send: CommandSink, policy: SafetyPolicy, execute: Execute,
                 publish: Callable[[MqttMessage], None], subscribe: Subscribe) -> None:
        cfg = config.automation
        self.base_topic = config.mqtt.base_topic
        self._publish_message = publish
        self._speak: Speak | None = None
        self.time_zone = local_time_zone(cfg.time_zone)
        self.clock = SystemClock(self.time_zone)
        self.location = home_location(config, self.time_zone)
        state = Path(config.state_dir)
        self.rules_dir = rules_directory(config)
        replies = replies_for(config.understanding.language)
        self.notices = Notices(publish=self._publish, speak=self._say, clock=self.clock,
                               say=lambda text: replies.say(text, keep=kept_names(registry)))
        self.scheduler = Scheduler(state / "automation.sqlite3", clock=self.clock,
                                   timezone=self.time_zone, misfire_grace_s=cfg.misfire_grace_s,
                                   on_missed=self._missed)
        self.timers = TimerService(self.scheduler, execute=execute,
                                   announce=self.notices.announce, clock=self.clock,
                                   publish=self._publish)
        self.schedules = ScheduleService(self.scheduler, execute=execute,
                                         announce=self.notices.announce, clock=self.clock,
                                         location=self.location, publish=self._publish)
        self.lists = ListService(state / "lists.sqlite3", registry, publish=self._publish,
                                 names=tuple(cfg.lists),
                                 ask_which=cfg.unnamed_list == "ask")
        self.rules = RuleEngine(registry, send=send, policy=policy, subscribe=subscribe,
                                publish=publish, announce=self.notices.announce,
                                clock=self.clock, location=self.location,
                                allow_sensitive=frozenset(cfg.rules_allow_sensitive),
                                max_runs_per_minute=cfg.rules_max_runs_per_minute)
        for skill in (TimerSkill(self.timers), ScheduleSkill(self.schedules),
                      ListSkill(self.lists),
                      RuleSkill(self._save_rules, allow_sensitive=cfg.rules_allow_sensitive)):
            skills.register(skill)
        self._watcher: RuleDirectoryWatcher | None = None
        self._reloading: asyncio.Task[None] | None = None
        self._reload_wanted = False
        self._reload_lock = asyncio.Lock()  # one reload at a time, whoever asks
        self._announcing: set[asyncio.Task[None]] = set()  # kept until done

    def use_voice(self, speak: Speak | None) -> None:
        """Speak notices through voice once it runs (None: publish and tell in replies)."""
        self._speak = speak

    def notices_for_reply(self, conversation_id: str | None, area: str | None) -> str:
        return reply_prefix(self.notices.take_for(conversation_id, area))

    async def start(self) -> Callable[[], Awaitable[None]]:
        """Start everything; returns the function that stops it again."""
        await self.lists.start()
        self.scheduler.start()
        self.timers.publish_timers()
        self.schedules.publish_list()
        self.rules_dir.mkdir(parents=True, exist_ok=True)
        await self.reload_rules()
        self.rules.start()
        watcher = RuleDirectoryWatcher(self.rules_dir, self.request_reload)
        try:
            await watcher.start()
            self._watcher = watcher
        except (OSError, RuntimeError) as exc:  # SIGHUP still reloads
            log.error("rule files are not watched for changes (%s); send SIGHUP to reload",
                      exc)
        loop = asyncio.get_running_loop()
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signal.SIGHUP, self.request_reload)
        return self.stop

    async def stop(self) -> None:
        with contextlib.suppress(NotImplementedError, RuntimeError):
            asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)
        if self._watcher is not None:
            await self._watcher.stop()
        if self._reloading is not None:
            self._reloading.cancel()
        await self.rules.stop()
        await self.scheduler.stop()
        await self.lists.close()

    def request_reload(self) -> None:
        """A rule file changed (or SIGHUP): load the directory again; a change made while a
        reload reads the files is read by the next one."""
        self._reload_wanted = True
        if self._reloading is None or self._reloading.done():
            self._reloading = asyncio.get_running_loop().create_task(self._reload_while_wanted())

    async def _reload_while_wanted(self) -> None:
        while self._reload_wanted:
            self._reload_wanted = False
            await self.reload_rules()

    async def reload_rules(self) -> None:
        """Every rule file again; a broken one is logged and never stops the others, and
        rules that did not change keep running (and their timers) undisturbed."""
        async with self._reload_lock:
            if not self.rules_dir.is_dir():
                return
            result = await load_rules_async(self.rules_dir)
            errors = [*result.errors, *self.rules.load(result.rules)]
        for error in errors:
            log.error("rule not loaded: %s", error)
        log.info("%d rules loaded from %s (%d with errors)", len(result.rules),
                 self.rules_dir, len(errors))

    async def _save_rules(self, name: str, rules: list[dict[str, Any]]) -> Path:
        path = await asyncio.to_thread(save_rule_file, self.rules_dir, name, rules)
        await self.reload_rules()
        return path

    async def _say(self, text: str, area: str | None) -> bool:
        return await self._speak(text, area) if self._speak is not None else False

    def _missed(self, job: JobDue) -> None:
        """A job that was due while the hub was down, too long ago to run now: said, never
        dropped in silence."""
        notice = missed_timer_notice(job) if job.kind == "timer" \
            else self.schedules.missed_notice(job)
        task = asyncio.get_running_loop().create_task(self.notices.announce(notice))
        self._announcing.add(task)
        task.add_done_callback(self._announcing.discard)

    def _publish(self, suffix: str, payload: dict[str, Any]) -> None:
        self._publish_message(MqttMessage(
            f"{self.base_topic}/{suffix}", json.dumps(payload, default=str).encode(), qos=1,
            retain=suffix not in _EVENT_TOPICS))
