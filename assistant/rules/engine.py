"""The rule engine: the loaded rules attached to their triggers, checked, and run.

- **Modes** as in Home Assistant: ``single`` (a trigger while running is dropped, logged
  per ``max_exceeded``), ``restart`` (the running one is cancelled first), ``queued`` (one
  after the other, ``max`` running and waiting), ``parallel`` (``max`` at once).
- **Rate limit**: at most ``max_runs_per_minute`` runs of one rule in any minute; the
  excess is skipped and logged once per burst.
- **Loop protection**: a run started by a change the rule itself caused (a command to the
  entity, a publish on the topic, within :data:`LOOP_WINDOW_S`) counts; after
  :data:`LOOP_LIMIT` such runs in a row the rule is disabled and that is announced.
- **Hot reload**: ``load`` keeps rules whose definition did not change as they are (state,
  running runs); changed and removed ones are stopped. Timers and schedules of the
  assistant are other services and are never touched here.
- **Bounds**: a run ends after :data:`MAX_RUN_S` whatever it waits for (each delay or wait
  is at most ``actions.MAX_WAIT_S``); what fails in a run is logged and announced once per
  rule and problem, and never reaches the engine.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo

import tzlocal

from assistant.automation.scheduler import Clock
from assistant.automation.sun import Location
from assistant.messages import Announce, MqttMessage, Notice
from assistant.registry import DeviceRegistry, RegistryChange
from assistant.rules import templates, triggers
from assistant.rules.actions import (
    ActionError,
    Effects,
    Outlets,
    Run,
    RunStopped,
    action_problems,
    announce,
    condition_problems,
)
from assistant.rules.conditions import holds
from assistant.rules.loader import LoadedRule
from assistant.rules.schema import Rule, RuleError
from assistant.rules.triggers import RuleEnv, Subscribe, within
from assistant.safety import SafetyPolicy
from skills.base import CommandSink

log = logging.getLogger(__name__)

MAX_RUN_S = 24 * 3600.0  # a run that is still going after a day is stopped
LOOP_WINDOW_S = 5.0  # a change this soon after the rule caused it counts as its own
LOOP_LIMIT = 10  # runs in a row caused by the rule itself before it is disabled
RATE_WINDOW_S = 60.0
STOP_GRACE_S = 5.0  # how long a cancelled run may take to end
SHUTDOWN_RUN_S = 5.0  # how long ``homeassistant: shutdown`` rules may run at stop

RunResult = Literal["done", "stopped", "failed", "skipped"]


@dataclass(frozen=True, slots=True)
class RuleInfo:
    """One rule, for ``mimo-home rules list``."""

    name: str
    file: str | None
    enabled: bool
    last_triggered: str | None  # ISO time of the last run's start
    running: int
    problem: str | None = None  # why it is not running (a load error, loop protection)


@dataclass(frozen=True, slots=True)
class RunOutcome:
    """How one run ended, for ``mimo-home rules run``."""

    name: str
    result: RunResult
    reason: str = ""


# -- guards ------------------------------------------------------------------------------------


class RateLimit:
    """At most ``per_minute`` starts in any window of a minute on ``clock``."""

    def __init__(self, per_minute: int, clock: Clock) -> None:
        self._per_minute, self._clock = per_minute, clock
        self._starts: collections.deque[datetime] = collections.deque()
        self.warned = False

    def allow(self) -> bool:
        now = self._clock.now()
        while self._starts and (now - self._starts[0]).total_seconds() >= RATE_WINDOW_S:
            self._starts.popleft()
        if len(self._starts) >= self._per_minute:
            return False
        self._starts.append(now)
        self.warned = False
        return True


class LoopGuard:
    """What a rule changed lately, and how many runs in a row its own changes started."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._recent: dict[str, datetime] = {}  # "entity:<id>" / "topic:<t>" -> when
        self.in_a_row = 0

    def changed(self, effects: Effects) -> None:
        now = self._clock.now()
        for entity_id in effects.entities:
            self._recent[f"entity:{entity_id}"] = now
        for topic in effects.topics:
            self._recent[f"topic:{topic}"] = now
        if len(self._recent) > 1000:  # keep it small: only the window matters
            self._recent = {key: when for key, when in self._recent.items()
                            if (now - when).total_seconds() <= LOOP_WINDOW_S}

    def caused_by_self(self, trigger: dict[str, Any]) -> bool:
        key = f"topic:{trigger['topic']}" if trigger.get("platform") == "mqtt" else \
            f"entity:{trigger.get('entity_id')}"
        when = self._recent.get(key)
        return when is not None and (self._clock.now() - when).total_seconds() <= LOOP_WINDOW_S

    def count(self, trigger: dict[str, Any]) -> int:
        """Runs in a row the rule started itself, this one included (0: not its own)."""
        self.in_a_row = self.in_a_row + 1 if self.caused_by_self(trigger) else 0
        return self.in_a_row


class Runner:
    """A rule's runs under its mode."""

    def __init__(self, name: str, rule: Rule) -> None:
        self._name, self._rule = name, rule
        self.tasks: set[asyncio.Task[RunOutcome]] = set()
        self._queue = asyncio.Lock()  # queued mode: one at a time, in arrival order

    def start(self, body: Callable[[], Any]) -> asyncio.Task[RunOutcome] | None:
        """The new run's task, or None when the mode does not allow one now."""
        mode, previous = self._rule.mode, set(self.tasks)
        if mode == "restart":
            for task in previous:
                task.cancel()
        elif len(self.tasks) >= (1 if mode == "single" else self._rule.max):
            self._exceeded()
            return None

        async def run() -> RunOutcome:
            if mode == "restart" and previous:
                await asyncio.wait(previous, timeout=STOP_GRACE_S)
            if mode == "queued":
                async with self._queue:
                    return await body()
            return await body()

        task = asyncio.get_running_loop().create_task(run(), name=f"rule {self._name}")
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    def _exceeded(self) -> None:
        level = self._rule.max_exceeded
        if level != "silent":
            log.log(logging.getLevelName(level.upper()) if level != "fatal" else logging.CRITICAL,
                    "rule %r: already running (%s mode, max %d); this trigger is dropped",
                    self._name, self._rule.mode, self._rule.max)

    async def stop(self) -> None:
        for task in list(self.tasks):
            task.cancel()
        if self.tasks:
            await asyncio.wait(set(self.tasks), timeout=STOP_GRACE_S)


@dataclass
class _Active:
    """A loaded rule and everything it holds while loaded."""

    name: str
    file: Path | None
    rule: Rule
    runner: Runner
    limit: RateLimit
    guard: LoopGuard
    problem: str | None = None
    broken: bool = False  # it cannot run in this home (see ``problem``)
    enabled: bool = True
    last_triggered: datetime | None = None
    detach: Callable[[], None] | None = None
    events: dict[str, list[triggers.Fire]] = field(default_factory=dict)
    reported: set[str] = field(default_factory=set)


class RuleEngine:
    def __init__(self, registry: DeviceRegistry, *, send: CommandSink, policy: SafetyPolicy,
                 subscribe: Subscribe, publish: Callable[[MqttMessage], None],
                 announce: Announce, clock: Clock, location: Location | None,
                 allow_sensitive: frozenset[str] = frozenset(),
                 max_runs_per_minute: int = 30) -> None:
        self._registry = registry
        self._clock = clock
        self._max_runs = max_runs_per_minute
        zone = location.timezone if location is not None else _zone_of(clock)
        self._changed_at: dict[str, datetime] = {}
        self._known_states: dict[str, str | None] = {}
        self._started_at = clock.now()
        self.env = RuleEnv(
            registry=registry, clock=clock, subscribe=subscribe, location=location,
            timezone=zone,
            render=lambda value, variables: templates.render_value(
                value, variables, registry, clock.now),
            render_bool=lambda template, variables: templates.render_bool(
                template, variables, registry, clock.now),
            last_changed=lambda entity_id: self._changed_at.get(entity_id, self._started_at))
        self._outlets = Outlets(send=send, policy=policy, publish=publish, announce=announce,
                                allow_sensitive=allow_sensitive, changed=self._changed)
        self._rules: dict[str, _Active] = {}
        self._started = False
        self._unsubscribe_registry: Callable[[], None] | None = None
        self._background: set[asyncio.Task[Any]] = set()  # retiring runs, reports

    # -- loading ----------------------------------------------------------------------------

    def load(self, loaded: Iterable[LoadedRule]) -> list[RuleError]:
        """Make ``loaded`` the running set; returns the errors of rules that cannot run here
        (those are listed with their problem and never run)."""
        wanted = {item.name: item for item in loaded}
        errors: list[RuleError] = []
        for name, active in list(self._rules.items()):
            item = wanted.get(name)
            if item is None or item.rule != active.rule or item.file != active.file:
                self._retire(self._rules.pop(name))
        for name, item in wanted.items():
            if name in self._rules:
                continue
            problems = rule_problems(item.rule, item.file, name, self.env.location)
            errors.extend(problems)
            active = _Active(name, item.file, item.rule, Runner(name, item.rule),
                             RateLimit(self._max_runs, self._clock), LoopGuard(self._clock),
                             problem=problems[0].message if problems else None,
                             broken=bool(problems),
                             enabled=item.rule.initial_state and not problems)
            self._rules[name] = active
            if self._started:
                self._attach(active)
        return errors

    def _attach(self, active: _Active) -> None:
        if not active.enabled or active.detach is not None:
            return
        events: dict[str, list[triggers.Fire]] = {}
        try:
            active.detach = triggers.attach(
                active.rule.triggers, self.env,
                lambda variables, active=active: self._triggered(active, variables),
                events=events)
        except Exception as error:  # checked at load; a failure here is still the rule's
            log.exception("rule %r: cannot attach its triggers", active.name)
            active.enabled, active.problem = False, f"its triggers cannot start: {error}"
            return
        active.events = events

    def _detach(self, active: _Active) -> None:
        if active.detach is not None:
            active.detach()
            active.detach = None
        active.events = {}

    def _retire(self, active: _Active) -> None:
        self._detach(active)
        if active.runner.tasks:
            self._spawn(active.runner.stop())

    def _spawn(self, work: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> None:
        """Attach every rule's triggers and fire ``homeassistant: start``."""
        if self._started:
            return
        self._started = True
        self._unsubscribe_registry = self._registry.subscribe(self._note_change)
        for active in self._rules.values():
            self._attach(active)
        for active in list(self._rules.values()):
            for fire in active.events.get("start", []):
                fire({})

    async def stop(self) -> None:
        """Fire ``homeassistant: shutdown`` (briefly), then stop every rule and run."""
        if not self._started:
            return
        before = self._running_tasks()
        for active in list(self._rules.values()):
            for fire in active.events.get("shutdown", []):
                fire({})
        at_shutdown = self._running_tasks() - before
        if at_shutdown:
            await asyncio.wait(at_shutdown, timeout=SHUTDOWN_RUN_S)
        self._started = False
        if self._unsubscribe_registry is not None:
            self._unsubscribe_registry()
            self._unsubscribe_registry = None
        for active in self._rules.values():
            self._detach(active)
        await asyncio.gather(*(active.runner.stop() for active in self._rules.values()))
        if self._background:
            await asyncio.wait(set(self._background), timeout=STOP_GRACE_S)

    def _running_tasks(self) -> set[asyncio.Task[RunOutcome]]:
        return {task for active in self._rules.values() for task in active.runner.tasks}

    def _note_change(self, change: RegistryChange) -> None:
        """When each entity's state last changed, for ``state`` conditions with ``for``."""
        if change.entity_id is None:
            return
        entity = self._registry.get_any(change.entity_id)
        state = entity.state if entity is not None else None
        if self._known_states.get(change.entity_id, state) != state:
            self._changed_at[change.entity_id] = self._clock.now()
        self._known_states[change.entity_id] = state

    # -- listing and running by hand -----------------------------------------------------------

    def rules(self) -> list[RuleInfo]:
        return [RuleInfo(name=a.name, file=str(a.file) if a.file else None, enabled=a.enabled,
                         last_triggered=a.last_triggered.isoformat() if a.last_triggered
                         else None, running=len(a.runner.tasks), problem=a.problem)
                for a in self._rules.values()]

    async def run_rule(self, name: str, variables: dict[str, Any] | None = None) -> RunOutcome:
        """Run ``name``'s actions now, its triggers and conditions skipped (as Home
        Assistant's ``automation.trigger`` does); KeyError for an unknown rule."""
        active = self._rules[name]
        if active.broken:
            return RunOutcome(name, "failed", active.problem or "it cannot run")
        task = self._start_run(active, {**(variables or {}),
                                        "trigger": {"platform": None, "id": "manual"}})
        if task is None:
            return RunOutcome(name, "skipped", f"it is already running ({active.rule.mode} mode)")
        return await task

    # -- runs -------------------------------------------------------------------------------------

    def _triggered(self, active: _Active, trigger: dict[str, Any]) -> None:
        if not active.enabled:
            return
        variables = self._variables(active, trigger)
        if variables is None:
            return
        try:
            if not holds(active.rule.conditions, variables, self.env):
                return
        except Exception as error:
            self._report_soon(active, "conditions", f"its conditions failed: {error}")
            return
        if active.guard.count(trigger) > LOOP_LIMIT:
            self._disable_looping(active)
            return
        if not active.limit.allow():
            if not active.limit.warned:
                active.limit.warned = True
                log.warning("rule %r: more than %d runs in a minute; skipping runs until it "
                            "calms down", active.name, self._max_runs)
            return
        self._start_run(active, variables)

    def _variables(self, active: _Active, trigger: dict[str, Any]) -> dict[str, Any] | None:
        """The run's variables: the rule's, the trigger's own ``variables``, ``trigger`` and
        ``this``; None (reported) when a template in them fails."""
        variables: dict[str, Any] = {"trigger": trigger, "this": self._this(active)}
        try:
            for name, value in active.rule.variables.items():
                variables[name] = self.env.render(value, variables)
            index = trigger.get("idx")
            if index is not None:
                for name, value in active.rule.triggers[int(index)].variables.items():
                    variables[name] = self.env.render(value, variables)
        except Exception as error:
            self._report_soon(active, "variables", f"its variables failed: {error}")
            return None
        return variables

    def _this(self, active: _Active) -> dict[str, Any]:
        return {"entity_id": f"automation.{_slug(active.name)}",
                "state": "on" if active.enabled else "off",
                "attributes": {"friendly_name": active.name, "id": active.rule.id,
                               "current": len(active.runner.tasks),
                               "last_triggered": active.last_triggered}}

    def _start_run(self, active: _Active, variables: dict[str, Any]
                   ) -> asyncio.Task[RunOutcome] | None:
        if "this" not in variables:
            variables["this"] = self._this(active)
        return active.runner.start(lambda: self._execute(active, variables))

    async def _execute(self, active: _Active, variables: dict[str, Any]) -> RunOutcome:
        active.last_triggered = self._clock.now()
        run = Run(active.name, self.env, self._outlets, variables)
        try:
            await within(self._clock, MAX_RUN_S, run.actions(active.rule.actions))
        except RunStopped as stop:
            if stop.error:
                await self._report(active, f"stop:{stop}", f"it stopped with an error: {stop}")
                return RunOutcome(active.name, "failed", str(stop))
            return RunOutcome(active.name, "stopped", str(stop))
        except ActionError as error:
            await self._report(active, str(error), str(error))
            return RunOutcome(active.name, "failed", str(error))
        except TimeoutError:
            await self._report(active, "timeout", "it ran for a day and was stopped")
            return RunOutcome(active.name, "failed", "ran for longer than a day")
        except Exception as error:  # a bug must not reach the engine or the loop
            log.exception("rule %r failed", active.name)
            await self._report(active, type(error).__name__, f"it failed: {error}")
            return RunOutcome(active.name, "failed", str(error))
        return RunOutcome(active.name, "done")

    def _changed(self, rule: str, effects: Effects) -> None:
        active = self._rules.get(rule)
        if active is not None:
            active.guard.changed(effects)

    def _disable_looping(self, active: _Active) -> None:
        active.enabled = False
        active.problem = (f"it kept triggering itself ({LOOP_LIMIT} runs in a row); "
                          "fix it and reload the rules")
        self._detach(active)
        log.warning("rule %r disabled: %s", active.name, active.problem)
        self._report_soon(active, "loop", f"I turned it off: {active.problem}")

    # -- problems -------------------------------------------------------------------------------

    async def _report(self, active: _Active, key: str, text: str) -> None:
        """Log every time; announce once per rule and problem (until the rule is reloaded)."""
        log.warning("rule %r: %s", active.name, text)
        if key in active.reported:
            return
        active.reported.add(key)
        await announce(self._outlets, Notice(kind="rule", text=f"Rule {active.name}: {text}",
                                             data={"rule": active.name}))

    def _report_soon(self, active: _Active, key: str, text: str) -> None:
        self._spawn(self._report(active, key, text))


def rule_problems(rule: Rule, file: Path | None, name: str,
                  location: Location | None) -> list[RuleError]:
    """Why ``rule`` cannot run in this home (for ``rules check`` too), each naming its key;
    empty when it can."""
    found = [(f"triggers[{index}]", problem) for index, trigger in enumerate(rule.triggers)
             if (problem := triggers.check_trigger(trigger, location))]
    found.extend(condition_problems(rule.conditions, location, "conditions"))
    found.extend(action_problems(rule.actions, location, "actions"))
    return [RuleError(file, name, key, message) for key, message in found]


def _zone_of(clock: Clock) -> tzinfo:
    """The clock's zone when it is a named one (a fixed offset knows no summer time), else
    the system's."""
    zone = clock.now().tzinfo
    return zone if isinstance(zone, ZoneInfo) else tzlocal.get_localzone()


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in name.casefold()).strip("_") or "rule"
